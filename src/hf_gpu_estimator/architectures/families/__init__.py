"""One module per family; each exports ``FAMILIES``: model_type -> Family. Adding a module here registers it."""

from __future__ import annotations

from collections.abc import Mapping

from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.families import (
    bamba,
    bert,
    dbrx,
    deepseek_v3,
    dory,
    dots1,
    falcon,
    falcon_h1,
    gemma3,
    gemma3n,
    gemma4,
    glm4_moe,
    gpt2,
    gpt_neox,
    gpt_oss,
    granitemoehybrid,
    hrm_text,
    jamba,
    kimi_linear,
    lfm2,
    llama4,
    llama_like,
    mamba,
    musicgen,
    nemotron_h,
    phi,
    qwen3_next,
    rwkv,
    t5,
    vision_language,
    xlstm,
)

_MODULES = (llama_like, gemma3, deepseek_v3, phi, gpt2, gpt_neox, falcon, bert, t5, gpt_oss, llama4, glm4_moe,
            vision_language, mamba, qwen3_next, jamba, granitemoehybrid, falcon_h1, nemotron_h, lfm2, gemma3n, gemma4, dory,
            dbrx, dots1, bamba, rwkv, xlstm, hrm_text, musicgen, kimi_linear)


def _collect() -> dict[str, Family]:
    out: dict[str, Family] = {}
    for module in _MODULES:
        for model_type, family in module.FAMILIES.items():
            if model_type in out:
                raise RuntimeError(f"model_type {model_type!r} registered twice ({module.__name__})")
            out[model_type] = family
    return out


#: model_type -> Family, for every family module.
FAMILIES: Mapping[str, Family] = _collect()


def model_types_by_module() -> dict[str, tuple[str, ...]]:
    """Family module name (``...families.llama_like``) -> the model types it registers, sorted (for docs/coverage.md)."""
    out: dict[str, list[str]] = {}
    for model_type, family in sorted(FAMILIES.items()):
        out.setdefault(family.module, []).append(model_type)
    return {module: tuple(types) for module, types in out.items()}
