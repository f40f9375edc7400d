"""Cutting a default config to a few decoder layers, every layer kind kept (the coverage matrices' input).

Each model type is taken at its default configuration (``AutoConfig.for_model(model_type)``, with the recorded
repairs of :mod:`matrix.repairs`) and cut to a few decoder layers with every distinct layer kind kept
(:func:`cut_config`). The cutting helpers take a transformers config object but never import torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from matrix.repairs import (CONFIG_OVERRIDES, DERIVED_LAYER_COUNTS, LAYER_PATTERNS, MIN_LAYERS_BY_TYPE,
                            WORKLOAD_SETTINGS, override_changes, repair)

#: The fewest decoder layers a cut config keeps (two: layer-to-layer effects stay visible).
MIN_LAYERS = 2

#: A per-layer list with more distinct values than this describes layers one by one (indices,
#: per-layer objects), not a pattern of layer kinds to keep.
MAX_KINDS = 6

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

#: Fields that say "the last N layers are different" (gemma3n's KV-sharing layers): keep the first of
#: them, and the cut config has that one layer of the kind.
TRAILING_FIELDS = ("num_kv_shared_layers",)

#: Derived per-layer properties that are recomputed from the layer count (gemma4 marks the last layer
#: of each attention type ``store``): not kinds to keep by prefix.
IGNORED_PROPERTIES = ("kv_sharing_modes",)

#: Repeating patterns given once (``recurrent_gemma``'s ``block_types``): keep one full cycle.
PATTERN_FIELDS = ("block_types", "hybrid_override_pattern_cycle")

#: Names of the decoder-layer count, in the order they are looked up (after the attribute_map).
_LAYER_FIELDS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers")

#: Encoder-decoder configs count the stacks apart (num_hidden_layers maps to one of them): cut both.
_PAIRED_LAYER_FIELDS = ("encoder_layers", "decoder_layers", "num_decoder_layers")

#: Second names of the decoder-layer count kept beside it: cut with it. xLSTMConfig fills ``num_blocks``
#: from ``num_hidden_layers``, builds its blocks from ``num_blocks`` and sizes its cache from
#: ``num_hidden_layers`` (configuration_xlstm.py, modeling_xlstm.py), so cutting one alone leaves blocks
#: without a cache entry (``KeyError: 2`` in the trace).
_ALIAS_LAYER_FIELDS = ("num_blocks",)

#: Sub-configs holding the language model of a wrapper, in the order they are looked up.
TEXT_CONFIGS = ("text_config", "decoder", "decoder_config", "language_config", "llm_config")


@dataclass(frozen=True, kw_only=True)
class CutConfig:
    """A default config cut to a few layers, and what the cut changed."""

    model_type: str
    config: Mapping[str, Any]  # the cut config.json mapping
    layers: tuple[int, int]  # (default, kept) decoder layers
    changes: Mapping[str, str]  # dotted field → "old → new" (lists summarized)

    @property
    def config_hash(self) -> str:
        settings = WORKLOAD_SETTINGS.get(self.model_type)
        # The per-workload settings are part of what was traced (absent for most types: their hash is the
        # config's alone).
        return config_hash({**self.config, "_workload_settings": settings} if settings else self.config)

    def workload_config(self, workload: str) -> dict[str, Any]:
        """The config traced for ``workload`` (a key of :data:`WORKLOADS`): the cut config with the
        type's :data:`WORKLOAD_SETTINGS` for that workload."""
        return {**self.config, **WORKLOAD_SETTINGS.get(self.model_type, {}).get(workload, {})}


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


def _index_lists(text: Mapping[str, Any], num_layers: int) -> list[str]:
    """Fields listing layer indices: the known names, and any ``*layers``/``*idxs``/``*ids``/``*indices``
    field holding strictly increasing ints below the layer count (llama4's ``moe_layers``)."""
    out = []
    for name, value in text.items():
        if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            continue
        increasing = all(a < b for a, b in zip(value, value[1:])) and all(0 <= i < num_layers for i in value)
        named = name.endswith(("layers", "idxs", "ids", "indices", "indexes"))
        if name in INDEX_LIST_FIELDS or (named and increasing and len(value) > 1):
            out.append(name)
    return out


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
        distinct = {json.dumps(v, sort_keys=True, default=str) for v in values}
        if len(distinct) > MAX_KINDS:
            continue  # one value per layer (indices, per-layer objects): not a pattern of kinds
        multiple = len(values) // num_layers
        keep = max(keep, _kinds_prefix(list(values), multiple))
    for name in _index_lists(text, num_layers):
        indices = text[name]
        if indices:
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
    for name in TRAILING_FIELDS:
        value = text.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < num_layers:
            keep = max(keep, num_layers - value + 1)
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
    text_key = next((k for k in TEXT_CONFIGS if isinstance(full.get(k), dict)), None)
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
    derived_count = DERIVED_LAYER_COUNTS.get(model_type)
    derived_field = None
    if derived_count is not None and isinstance(text.get(derived_count[0]), int):
        derived_field, field_name = field_name, derived_count[0]
    num_layers = int(text[field_name])
    patterned: dict[str, str] = {}
    for name, (pattern, what) in LAYER_PATTERNS.get(model_type, {}).items():
        patterned[prefix + name] = f"{_summary(text.get(name))} → {what} (a real checkpoint's layer pattern)"
        text[name] = pattern(num_layers)
    per_layer: dict[str, list[Any]] = {}
    indexed = _index_lists(text, num_layers)
    for name, value in text.items():
        if name in indexed or name in PATTERN_FIELDS or not isinstance(value, list) or not value:
            continue
        if len(value) % num_layers == 0 and len(value) >= num_layers:
            per_layer[name] = value
    derived: dict[str, list[Any]] = {}
    if text_obj is not None:
        for name in dir(type(text_obj)):
            if name.startswith("_") or name in per_layer or name in IGNORED_PROPERTIES \
                    or not isinstance(getattr(type(text_obj), name, None), property):
                continue
            try:
                value = getattr(text_obj, name)
            except Exception:  # a property that needs fields this config lacks  # noqa: BLE001
                continue
            if isinstance(value, (list, tuple)) and len(value) == num_layers and num_layers > 1:
                derived[name] = list(value)
    keep = layers_to_keep(text, num_layers, {**per_layer, **derived})
    if model_type in MIN_LAYERS_BY_TYPE:
        keep = min(num_layers, max(keep, MIN_LAYERS_BY_TYPE[model_type][0]))
    for name in _PAIRED_LAYER_FIELDS + _ALIAS_LAYER_FIELDS:
        value = text.get(name)
        if name != field_name and isinstance(value, int) and not isinstance(value, bool) and value > keep:
            text[name] = keep
            changes[prefix + name] = f"{value} → {keep}"
    if keep < num_layers:
        text[field_name] = keep
        changes[prefix + field_name] = f"{num_layers} → {keep}"
        if derived_field is not None and derived_count is not None:
            value, text[derived_field] = text[derived_field], derived_count[1](text, keep)
            changes[prefix + derived_field] = f"{value} → {text[derived_field]}"
        for name in TRAILING_FIELDS:
            value = text.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= num_layers:
                text[name] = keep - (num_layers - value)  # all layers shared (an assistant model) stays all
                changes[prefix + name] = f"{value} → {text[name]}"
        for name, value in per_layer.items():
            multiple = len(value) // num_layers
            text[name] = value[: keep * multiple]
            changes[prefix + name] = f"{_summary(value)} → first {keep * multiple}"
        for name, value in text.items():
            # Per-layer overrides keyed by layer index (gemma4's per_layer_config).
            if isinstance(value, dict) and value and all(str(k).isdigit() for k in value):
                kept_keys = {k: v for k, v in value.items() if int(k) < keep}
                if len(kept_keys) != len(value):
                    text[name] = kept_keys
                    changes[prefix + name] = f"layers {sorted(int(k) for k in value)} → {sorted(int(k) for k in kept_keys)}"
        for name in _index_lists(text, num_layers):
            indices = text[name]
            if indices:
                kept = [i for i in indices if i < keep]
                if kept != indices:
                    text[name] = kept
                    changes[prefix + name] = f"{indices} → {kept}"
    for name, note in patterned.items():
        changes[name] = f"{note}, then {changes[name]}" if name in changes else note
    repair(model_type, text, changes, prefix)
    top = full if text_key else text  # CutConfig.workload_config sets them on the top-level config
    for workload, settings in WORKLOAD_SETTINGS.get(model_type, {}).items():
        for name, value in settings.items():
            changes[f"{workload}: {name}"] = f"{top.get(name)!r} → {value!r} (this workload only)"
    out = dict(full)
    if text_key:
        out[text_key] = text
    else:
        out = text
    return CutConfig(model_type=model_type, config=out, layers=(num_layers, keep), changes=changes)


def default_cut_config(model_type: str) -> CutConfig:
    """``AutoConfig.for_model(model_type)`` cut by :func:`cut_config` (needs transformers).

    Where transformers rejects the default config itself, the per-type :data:`CONFIG_OVERRIDES` are passed to
    ``for_model`` and recorded in the changes.
    """
    import transformers

    overrides, why = CONFIG_OVERRIDES.get(model_type, ({}, ""))
    config = transformers.AutoConfig.for_model(model_type, **overrides)
    cut = cut_config(config)
    if not overrides:
        return cut
    return replace(cut, changes={**override_changes(config, overrides, why), **cut.changes})
