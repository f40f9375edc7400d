"""One module per family; each exports ``FAMILIES``: model_type -> Family. Adding a module here registers it."""

from __future__ import annotations

from collections.abc import Mapping

from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.families import (
    bert,
    deepseek_v3,
    falcon,
    gemma3,
    gpt2,
    gpt_neox,
    llama_like,
    phi,
    t5,
)

_MODULES = (llama_like, gemma3, deepseek_v3, phi, gpt2, gpt_neox, falcon, bert, t5)


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
