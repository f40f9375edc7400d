"""The coverage matrix: every causal-LM type of the installed transformers, analytic vs traced.

Each model type is taken at its default configuration (``AutoConfig.for_model(model_type)``),
cut to a few decoder layers with every distinct layer kind kept (:func:`cut_config`), and
traced once in exact mode for :data:`WORKLOADS` by ``benchmarks/coverage_traces.py``. The
traces are committed as data (:data:`DATA_PATH`), keyed by the torch and transformers versions
and a hash of the cut config, so ``tests/test_coverage.py`` recomputes only the analytic side.

The cutting helpers take a transformers config object but never import torch; the rest of the
module is plain data and arithmetic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where the traces live (repository checkout; the data is not shipped in the wheel).
DATA_PATH = Path(__file__).resolve().parents[2] / "tests" / "data" / "coverage_traces.json"

#: The fixed workloads, as :func:`hf_gpu_estimator.workload.make_workload` keywords.
WORKLOADS: Mapping[str, Mapping[str, Any]] = {
    "inference": {"task": "inference", "batch_size": 1, "seq_len": 128, "new_tokens": 16, "dtype": "bfloat16",
                  "attn_implementation": "sdpa"},
    "training": {"task": "training", "batch_size": 1, "seq_len": 128, "precision": "bf16-true",
                 "optimizer": "adamw", "gradient_checkpointing": False, "attn_implementation": "sdpa"},
}  # fmt: skip

#: Relative error allowed between the analytic ``allocated_peak_bytes`` (without the cuBLAS
#: workspace, which a trace on fake tensors cannot see) and the traced peak (issue 11).
TOLERANCE: Mapping[str, float] = {"inference": 0.10, "training": 0.15}

#: The fewest decoder layers a cut config keeps (two: layer-to-layer effects stay visible).
MIN_LAYERS = 2

#: Per-layer list fields that hold layer *indices* (not one entry per layer).
INDEX_LIST_FIELDS = ("mlp_only_layers", "full_attn_idxs", "cross_attention_layers", "hybrid_layer_ids",
                     "moe_layers_indices", "attn_layer_indices", "global_attn_layers", "no_rope_layers_indices")

#: Fields that say "the first N layers are different" (dense before MoE): keep N + 1 layers.
LEADING_FIELDS = ("first_k_dense_replace", "num_dense_layers", "moe_layer_start_index")

#: Fields that give a period of a layer pattern (every N-th layer is different): keep N layers.
PERIOD_FIELDS = ("decoder_sparse_step", "moe_layer_interval", "interleave_moe_layer_step", "no_rope_layer_interval",
                 "sliding_window_pattern", "_sliding_window_pattern", "global_attn_every_n_layers",
                 "attn_layer_period", "expert_layer_period", "full_attn_interval", "moe_layer_freq")

#: Offsets that go with a period field: keep offset + 1 layers.
OFFSET_FIELDS = ("attn_layer_offset", "expert_layer_offset")

#: Repeating patterns given once (``recurrent_gemma``'s ``block_types``): keep one full cycle.
PATTERN_FIELDS = ("block_types", "hybrid_override_pattern_cycle")

#: Names of the decoder-layer count, in the order they are looked up (after the attribute_map).
_LAYER_FIELDS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers")

#: Sub-configs holding the language model of a wrapper, in the order they are looked up.
_TEXT_CONFIGS = ("text_config", "decoder", "decoder_config", "language_config", "llm_config")


@dataclass(frozen=True, kw_only=True)
class CutConfig:
    """A default config cut to a few layers, and what the cut changed."""

    model_type: str
    config: Mapping[str, Any]  # the cut config.json mapping
    layers: tuple[int, int]  # (default, kept) decoder layers
    changes: Mapping[str, str]  # dotted field → "old → new" (lists summarized)

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


def config_hash(config: Mapping[str, Any]) -> str:
    """A short stable hash of a config mapping (sorted JSON, sha256)."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _layer_field(config: Mapping[str, Any], attribute_map: Mapping[str, str]) -> str | None:
    mapped = attribute_map.get("num_hidden_layers")
    for name in (mapped, *_LAYER_FIELDS):
        if name and isinstance(config.get(name), int) and not isinstance(config.get(name), bool):
            return name
    return None


def _summary(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"[{len(value)} entries]"
    return repr(value)


def _kinds_prefix(values: list[Any], multiple: int) -> int:
    """Smallest number of layers whose entries hold every distinct value of ``values``."""
    wanted = {json.dumps(v, sort_keys=True, default=str) for v in values}
    seen: set[str] = set()
    for i, v in enumerate(values):
        seen.add(json.dumps(v, sort_keys=True, default=str))
        if seen == wanted:
            return i // multiple + 1
    return len(values) // multiple


def layers_to_keep(text: Mapping[str, Any], num_layers: int, per_layer: Mapping[str, list[Any]]) -> int:
    """How many leading layers keep every distinct layer kind of a decoder config.

    Args:
        text: the decoder's config mapping (top level or a wrapper's text config).
        num_layers: its layer count.
        per_layer: lists with one entry per layer (config fields and the config object's
            derived per-layer properties such as Jamba's ``layers_block_type``).
    """
    keep = MIN_LAYERS
    for values in per_layer.values():
        multiple = len(values) // num_layers
        keep = max(keep, _kinds_prefix(list(values), multiple))
    for name in INDEX_LIST_FIELDS:
        indices = text.get(name)
        if isinstance(indices, (list, tuple)) and indices and all(isinstance(i, int) for i in indices):
            first = min(indices)
            # Keep the first listed layer and one that is not listed.
            first_unlisted = next((i for i in range(num_layers) if i not in set(indices)), 0)
            keep = max(keep, first + 1, first_unlisted + 1)
    for name in LEADING_FIELDS:
        value = text.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            keep = max(keep, value + 1)
    for name in PERIOD_FIELDS:
        value = text.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 1:
            keep = max(keep, value)
    for name in OFFSET_FIELDS:
        value = text.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            keep = max(keep, value + 1)
    for name in PATTERN_FIELDS:
        value = text.get(name)
        if isinstance(value, (list, tuple)) and value:
            keep = max(keep, len(value))
    return min(keep, num_layers)


def cut_config(config: Any) -> CutConfig:
    """Cut a transformers config object to a few decoder layers, every layer kind kept.

    The decoder is the top-level config or a wrapper's text config (``text_config`` ...).
    Fields with one entry per layer (``layer_types``, ``layers_block_type``, ``mlp_layer_types``,
    per-layer head counts ...) are cut to match; index lists (``mlp_only_layers`` ...) drop the
    indices past the cut. Vision and audio towers are kept whole (a text workload never runs
    them; their weights count as they are).

    Args:
        config: a ``transformers.PretrainedConfig``.

    Returns:
        The cut config mapping (``config.to_dict()`` with the changes), and the changes.
    """
    full = config.to_dict()
    model_type = str(full.get("model_type") or getattr(config, "model_type", ""))
    text_key = next((k for k in _TEXT_CONFIGS if isinstance(full.get(k), dict)), None)
    text_obj = getattr(config, text_key, None) if text_key else config
    if text_key is not None and not hasattr(text_obj, "to_dict"):
        text_obj = None
    text = dict(full[text_key]) if text_key else dict(full)
    attribute_map = dict(getattr(type(text_obj), "attribute_map", {}) or {}) if text_obj is not None else {}
    field_name = _layer_field(text, attribute_map)
    changes: dict[str, str] = {}
    prefix = f"{text_key}." if text_key else ""
    if field_name is None:
        return CutConfig(model_type=model_type, config=full, layers=(0, 0), changes={})
    num_layers = int(text[field_name])
    per_layer: dict[str, list[Any]] = {}
    for name, value in text.items():
        if name in INDEX_LIST_FIELDS or name in PATTERN_FIELDS or not isinstance(value, list) or not value:
            continue
        if len(value) % num_layers == 0 and len(value) >= num_layers:
            per_layer[name] = value
    derived: dict[str, list[Any]] = {}
    if text_obj is not None:
        for name in dir(type(text_obj)):
            if name.startswith("_") or name in per_layer or not isinstance(getattr(type(text_obj), name, None), property):
                continue
            try:
                value = getattr(text_obj, name)
            except Exception:  # a property that needs fields this config lacks  # noqa: BLE001
                continue
            if isinstance(value, (list, tuple)) and len(value) == num_layers and num_layers > 1:
                derived[name] = list(value)
    keep = layers_to_keep(text, num_layers, {**per_layer, **derived})
    if keep < num_layers:
        text[field_name] = keep
        changes[prefix + field_name] = f"{num_layers} → {keep}"
        for name, value in per_layer.items():
            multiple = len(value) // num_layers
            text[name] = value[: keep * multiple]
            changes[prefix + name] = f"{_summary(value)} → first {keep * multiple}"
        for name in INDEX_LIST_FIELDS:
            indices = text.get(name)
            if isinstance(indices, list) and indices and all(isinstance(i, int) for i in indices):
                kept = [i for i in indices if i < keep]
                if kept != indices:
                    text[name] = kept
                    changes[prefix + name] = f"{indices} → {kept}"
    out = dict(full)
    if text_key:
        out[text_key] = text
    else:
        out = text
    return CutConfig(model_type=model_type, config=out, layers=(num_layers, keep), changes=changes)


def default_cut_config(model_type: str) -> CutConfig:
    """``AutoConfig.for_model(model_type)`` cut by :func:`cut_config` (needs transformers)."""
    import transformers

    return cut_config(transformers.AutoConfig.for_model(model_type))


def load_data(path: Path = DATA_PATH) -> dict[str, Any]:
    """The committed traces: ``{"versions": ..., "workloads": ..., "entries": {model_type: {...}}}``."""
    if not path.exists():
        return {"entries": {}}
    return json.loads(path.read_text())
