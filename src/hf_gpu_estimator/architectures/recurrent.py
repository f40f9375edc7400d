"""Recurrent token mixers shared by the SSM and hybrid families: Mamba, Mamba2, gated DeltaNet, KDA, short conv.

Each builder returns a :class:`Part`: the mixer's parameters by role, its linear layers (peft leaf names)
and the :class:`~hf_gpu_estimator.spec.Mixer` with the states transformers caches for it. The cache
shapes follow transformers 5 ``cache_utils.LinearAttentionLayer``: the convolution state is the conv
input ``(batch, channels, seq)`` cut to ``(batch, channels, conv_kernel)`` (``update_conv_state`` is
called with ``conv_kernel_size=<the kernel>``), so ``conv_elements = channels * kernel``; the recurrent
state is whatever tensor the scan returns (``zeros_like``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hf_gpu_estimator.architectures._fields import MAX_LAYERS, MISSING, Fields, lin
from hf_gpu_estimator.spec import LinearShape, Mixer


@dataclass(frozen=True)
class Part:
    """One mixer: parameters in its projections/conv/scan vectors, in its norms, its linears, its Mixer."""

    params: int
    norm: int
    linears: tuple[LinearShape, ...]
    mixer: Mixer


def mamba1(hidden: int, inner: int, state: int, kernel: int, dt_rank: int, *, proj_bias: bool, conv_bias: bool,
           bc_norms: bool = False) -> Part:
    """modeling_mamba.py ``MambaMixer`` (and jamba's ``JambaMambaMixer`` with ``bc_norms``: RMSNorms on dt, B, C).

    in_proj (hidden -> 2*inner), depthwise conv1d (inner x kernel), x_proj (inner -> dt_rank + 2*state, no bias),
    dt_proj (dt_rank -> inner, bias), A_log (inner x state), D (inner), out_proj (inner -> hidden).
    """
    linears = (
        LinearShape(name="in_proj", in_features=hidden, out_features=2 * inner, bias=proj_bias, group="state"),
        LinearShape(name="x_proj", in_features=inner, out_features=dt_rank + 2 * state, group="state"),
        LinearShape(name="dt_proj", in_features=dt_rank, out_features=inner, bias=True, group="state"),
        LinearShape(name="out_proj", in_features=inner, out_features=hidden, bias=proj_bias, group="state"),
    )
    params = sum(lin(x.in_features, x.out_features, x.bias) for x in linears)
    params += inner * kernel + (inner if conv_bias else 0) + inner * state + inner
    norm = dt_rank + 2 * state if bc_norms else 0
    mixer = Mixer(kind="ssm", inner=inner, state_elements=inner * state, conv_elements=inner * kernel,
                  conv_kernel=kernel)
    return Part(params, norm, linears, mixer)


def mamba2(hidden: int, inner: int, heads: int, head_dim: int, groups: int, state: int, kernel: int, *,
           proj_bias: bool, conv_bias: bool, out_bias: bool | None = None, gated_norm: bool = True,
           chunk: int = 0) -> Part:
    """modeling_mamba2.py ``Mamba2Mixer`` (also falcon_h1, nemotron_h, granitemoehybrid).

    conv_dim = inner + 2*groups*state; in_proj (hidden -> inner + conv_dim + heads); depthwise conv1d over
    conv_dim; dt_bias, A_log, D (heads each); gated RMSNorm (inner, optional in falcon_h1); out_proj.
    The SSM state is (heads, head_dim, state) per sequence. ``chunk``: the torch scan's chunk length
    (``config.chunk_size``; 0: :data:`~hf_gpu_estimator.memory.activations.MAMBA2_CHUNK`).
    """
    conv_dim = inner + 2 * groups * state
    out_bias = proj_bias if out_bias is None else out_bias
    linears = (
        LinearShape(name="in_proj", in_features=hidden, out_features=inner + conv_dim + heads, bias=proj_bias,
                    group="state"),
        LinearShape(name="out_proj", in_features=inner, out_features=hidden, bias=out_bias, group="state"),
    )
    params = sum(lin(x.in_features, x.out_features, x.bias) for x in linears)
    params += conv_dim * kernel + (conv_dim if conv_bias else 0) + 3 * heads
    mixer = Mixer(kind="ssm", heads=heads, head_dim=head_dim, inner=inner,
                  state_elements=heads * head_dim * state, conv_elements=conv_dim * kernel, conv_kernel=kernel,
                  chunk=chunk or None)
    return Part(params, inner if gated_norm else 0, linears, mixer)


def gated_deltanet(hidden: int, k_heads: int, v_heads: int, k_dim: int, v_dim: int, kernel: int) -> Part:
    """modeling_qwen3_next.py ``Qwen3NextGatedDeltaNet``.

    in_proj_qkvz (hidden -> 2*key_dim + 2*value_dim), in_proj_ba (hidden -> 2*v_heads), depthwise conv1d over
    conv_dim = 2*key_dim + value_dim (no bias), dt_bias and A_log (v_heads), gated RMSNorm (v_dim), out_proj.
    The recurrent state is (v_heads, k_dim, v_dim) per sequence, in fp32 (torch_chunk_gated_delta_rule).
    """
    key_dim, value_dim = k_heads * k_dim, v_heads * v_dim
    conv_dim = 2 * key_dim + value_dim
    linears = (
        LinearShape(name="in_proj_qkvz", in_features=hidden, out_features=2 * key_dim + 2 * value_dim, group="state"),
        LinearShape(name="in_proj_ba", in_features=hidden, out_features=2 * v_heads, group="state"),
        LinearShape(name="out_proj", in_features=value_dim, out_features=hidden, group="state"),
    )
    params = sum(lin(x.in_features, x.out_features, x.bias) for x in linears) + conv_dim * kernel + 2 * v_heads
    mixer = Mixer(kind="linear", heads=v_heads, kv_heads=k_heads, head_dim=k_dim, v_head_dim=v_dim,
                  inner=value_dim, state_elements=v_heads * k_dim * v_dim, conv_elements=conv_dim * kernel,
                  conv_kernel=kernel)
    return Part(params, v_dim, linears, mixer)


def kimi_delta(hidden: int, heads: int, head_dim: int, kernel: int, *, low_rank_gates: bool) -> Part:
    """Kimi delta attention (KDA): modeling_kimi_linear.py ``KimiLinearDeltaAttention`` (``low_rank_gates``) and
    modeling_bailing_hybrid.py ``BailingHybridDeltaAttention``.

    q/k/v projections (hidden -> heads*head_dim each, no bias), a depthwise conv1d over the three (no bias),
    the forget gate (kimi: f_a_proj hidden -> head_dim, f_b_proj head_dim -> heads*head_dim; bailing: one
    f_proj), dt_bias (heads*head_dim) and A_log (heads), b_proj (hidden -> heads), the output gate (kimi:
    g_a_proj/g_b_proj; bailing: g_proj), a gated RMSNorm (head_dim) and o_proj. Keys and values share the head
    width; the recurrent state is (heads, head_dim, head_dim) per sequence, in fp32 (``chunk_kimi_delta_attention``
    computes in float32 and the layer casts the final state ``.to(torch.float32)``).
    """
    width = heads * head_dim

    def linear(name: str, n_in: int, n_out: int) -> LinearShape:
        return LinearShape(name=name, in_features=n_in, out_features=n_out, group="state")

    def gate(prefix: str) -> tuple[LinearShape, ...]:
        if low_rank_gates:
            return linear(f"{prefix}_a_proj", hidden, head_dim), linear(f"{prefix}_b_proj", head_dim, width)
        return (linear(f"{prefix}_proj", hidden, width),)

    linears = (
        *(linear(name, hidden, width) for name in ("q_proj", "k_proj", "v_proj")),
        *gate("f"), linear("b_proj", hidden, heads), *gate("g"), linear("o_proj", width, hidden),
    )
    params = sum(lin(x.in_features, x.out_features, x.bias) for x in linears) + 3 * width * kernel + width + heads
    mixer = Mixer(kind="linear", scan="kda", heads=heads, kv_heads=heads, head_dim=head_dim, inner=width,
                  state_elements=heads * head_dim * head_dim, conv_elements=3 * width * kernel, conv_kernel=kernel)
    return Part(params, head_dim, linears, mixer)


def short_conv(hidden: int, kernel: int, bias: bool) -> Part:
    """modeling_lfm2.py ``Lfm2ShortConv``: in_proj (hidden -> 3*hidden), depthwise conv (hidden x kernel), out_proj.

    Only a convolution state is cached: (hidden, kernel) per sequence (``conv_L_cache``).
    """
    linears = (
        LinearShape(name="in_proj", in_features=hidden, out_features=3 * hidden, bias=bias, group="state"),
        LinearShape(name="out_proj", in_features=hidden, out_features=hidden, bias=bias, group="state"),
    )
    params = sum(lin(x.in_features, x.out_features, x.bias) for x in linears) + hidden * kernel
    params += hidden if bias else 0
    return Part(params, 0, linears, Mixer(kind="conv", inner=hidden, conv_elements=hidden * kernel,
                                                      conv_kernel=kernel))


def merge_linears(*groups: tuple[LinearShape, ...]) -> tuple[LinearShape, ...]:
    """The union of several layer kinds' linears, first occurrence of each (name, shape) kept."""
    seen: dict[tuple[str, int, int, int, bool], LinearShape] = {}
    for group in groups:
        for x in group:
            seen.setdefault((x.name, x.in_features, x.out_features, x.count, x.bias), x)
    return tuple(seen.values())


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


def gqa(f: Fields, hidden: int, heads: int, kv_heads: int, *, bias: bool, o_name: str = "o_proj",
        qk_norm: int = 0, head_dim: int | None = None) -> Part:
    """A plain grouped-query attention block (q/k/v/o) as a Part: ``head_dim`` is the config's ``head_dim``
    when present, else ``head_dim`` (a config class default), else ``hidden // heads``
    (``getattr(config, "head_dim", ...)`` in the hybrids' modeling files); ``qk_norm``: parameters of
    per-head q/k norms."""
    if heads % kv_heads:
        raise f.error("num_key_value_heads", kv_heads, f"a divisor of num_attention_heads={heads}")
    head_dim = f.opt_int("head_dim", head_dim) or hidden // heads
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    linears = (
        LinearShape(name="q_proj", in_features=hidden, out_features=q_out, bias=bias),
        LinearShape(name="k_proj", in_features=hidden, out_features=kv_out, bias=bias),
        LinearShape(name="v_proj", in_features=hidden, out_features=kv_out, bias=bias),
        LinearShape(name=o_name, in_features=q_out, out_features=hidden, bias=bias),
    )
    params = sum(lin(x.in_features, x.out_features, x.bias) for x in linears)
    return Part(params, qk_norm, linears, Mixer(kind="full", heads=heads, kv_heads=kv_heads, head_dim=head_dim))


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


def mamba2_from_fields(f: Fields, hidden: int) -> Part:
    """The Mamba2 mixer of the IBM hybrids (bamba's ``BambaMixer``, granitemoehybrid's
    ``GraniteMoeHybridMambaLayer``) from their shared ``mamba_*`` fields and configuration defaults:
    width ``mamba_expand * hidden_size``, 128 heads of ``"auto"`` width, one group, state 256, kernel 4,
    conv bias, no projection bias, gated RMSNorm."""
    inner = f.integer("mamba_expand", 2) * hidden
    heads, head_dim = mamba2_heads(f, inner, "mamba_n_heads", 128, "mamba_d_head")
    groups = f.integer("mamba_n_groups", 1)
    if heads % groups:
        raise f.error("mamba_n_groups", groups, f"a divisor of mamba_n_heads={heads}")
    return mamba2(hidden, inner, heads, head_dim, groups, f.integer("mamba_d_state", 256),
                  f.integer("mamba_d_conv", 4), proj_bias=f.boolean("mamba_proj_bias", False),
                  conv_bias=f.boolean("mamba_conv_bias", True))
