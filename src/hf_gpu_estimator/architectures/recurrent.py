"""Config fields the SSM and hybrid families share: Mamba's dt rank, Mamba2's heads, layer patterns.

The mixers themselves are parts (:mod:`hf_gpu_estimator.architectures.parts`).
"""

from __future__ import annotations

from collections.abc import Mapping

from hf_gpu_estimator.architectures._fields import MAX_LAYERS, MISSING, Fields


def dt_rank(f: Fields, name: str, hidden: int) -> int:
    """Mamba's ``time_step_rank``: ``"auto"`` (the default) is ``ceil(hidden / 16)`` (configuration_mamba.py)."""
    value = f.raw(name)
    if value is MISSING or value == "auto":
        return -(-hidden // 16)
    return f.integer(name, 1)


def pattern_list(f: Fields, name: str, allowed: Mapping[str, str], num_layers: int | None) -> tuple[str, ...] | None:
    """A per-layer list of type names (``layer_types``, ``layers_block_type``), each mapped through ``allowed``
    (legacy names to transformers 5's, configuration_utils._LEGACY_LAYER_TYPE_REMAP); ``None`` when absent."""
    value = f.raw(name)
    if value is MISSING or value is None:
        return None
    expected = f"a list of {num_layers if num_layers is not None else 'per-layer'} entries among {sorted(allowed)}"
    if (not isinstance(value, (list, tuple)) or not value or len(value) > MAX_LAYERS
            or (num_layers is not None and len(value) != num_layers)
            or any(not isinstance(v, str) or v not in allowed for v in value)):
        raise f.error(name, value, expected)
    return tuple(allowed[v] for v in value)


def period_offset(f: Fields, period_name: str, offset_name: str, period: int, offset: int) -> tuple[int, int]:
    """A layer pattern's period and offset (jamba's ``attn_layer_period``/``attn_layer_offset``), with
    transformers' check that the offset is smaller than the period (``validate_architecture``)."""
    p = f.integer(period_name, period)
    o = f.integer(offset_name, offset, minimum=0)
    if o >= p:
        raise f.error(offset_name, o, f"smaller than {period_name}={p}")
    return p, o


#: Per-layer type names transformers accepts, legacy ones remapped (configuration_utils._LEGACY_LAYER_TYPE_REMAP).
MAMBA_OR_ATTENTION = {"mamba": "linear_attention", "linear_attention": "linear_attention",
                      "attention": "full_attention", "full_attention": "full_attention"}


def mamba2_heads(f: Fields, inner: int, heads_name: str, heads: int, head_dim_name: str) -> tuple[int, int]:
    """Mamba2 heads and head width with ``"auto"`` head width = inner // heads, and transformers' check that
    heads * head_dim equals the mixer width (``validate_architecture`` of falcon_h1 / granitemoehybrid)."""
    n = f.integer(heads_name, heads)
    raw = f.raw(head_dim_name)
    d = inner // n if raw is MISSING or raw == "auto" else f.integer(head_dim_name, 1)
    if n * d != inner:
        raise f.error(head_dim_name, raw if raw is not MISSING else "auto",
                      f"{heads_name} * {head_dim_name} equal to the Mamba width {inner}")
    return n, d
