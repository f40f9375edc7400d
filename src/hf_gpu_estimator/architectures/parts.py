"""Parts: one builder per kind of token mixer or feed-forward block, and ``stack()`` that sums them.

A :class:`Part` carries, for one instance in one layer, its parameters by role, its linear layers (peft
leaf names) and what it does: a :class:`~hf_gpu_estimator.spec.Mixer` (attention, MLA, Mamba, gated
DeltaNet, short conv) or an :class:`~hf_gpu_estimator.spec.FFN` (dense MLP, routed experts), or neither
(a norm, the embeddings, the head). A family reads its fields, builds the parts its modeling file has,
and gives the layer pattern as one tuple of parts per layer; :func:`stack` sums the roles, builds the
per-layer :class:`~hf_gpu_estimator.spec.Layer` list and the block's linears, and derives the
Architecture's MoE fields from the layers, so the counts and the description cannot disagree.

The recurrent mixers' cache shapes follow transformers 5 ``cache_utils.LinearAttentionLayer``: the
convolution state is the conv input ``(batch, channels, seq)`` cut to ``(batch, channels, conv_kernel)``
(``update_conv_state`` is called with ``conv_kernel_size=<the kernel>``), so ``conv_elements = channels *
kernel``; the recurrent state is whatever tensor the scan returns (``zeros_like``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hf_gpu_estimator.architectures._fields import Fields, Head, Tally, lin
from hf_gpu_estimator.architectures.blocks import attention_linears, fused_experts, gated_linears
from hf_gpu_estimator.architectures.recurrent import mamba2_heads
from hf_gpu_estimator.spec import FFN, Layer, LinearShape, Mixer

#: The mixer and FFN of a layer that has none (Nemotron-H's single-part blocks, Mamba's mixer-only blocks).
NO_MIXER = Mixer(kind="none")
NO_FFN = FFN(kind="none")


@dataclass(frozen=True)
class Part:
    """One module of a layer (or of the model around the layers): parameters by role, linears, what it does.

    Attributes:
        params: parameters of one instance, by role (:data:`~hf_gpu_estimator.spec.ROLES`).
        linears: its linear layers, by the leaf names peft targets.
        mixer: the token mixer it is, if it is one.
        ffn: the feed-forward part it is, if it is one.
        idle: parameters one token does not reach (the routed experts it is not sent to).
        off_text: parameters only another input reaches, by that input (``ParameterCounts.off_text_path``).
    """

    params: Mapping[str, int] = field(default_factory=dict)
    linears: tuple[LinearShape, ...] = ()
    mixer: Mixer | None = None
    ffn: FFN | None = None
    idle: int = 0
    off_text: Mapping[str, int] = field(default_factory=dict)

    def role(self, name: str) -> int:
        """Parameters of one instance in role ``name``."""
        return self.params.get(name, 0)


def _linear_params(linears: Sequence[LinearShape]) -> int:
    return sum(lin(x.in_features, x.out_features, x.bias) * x.count for x in linears)


def of_linears(role: str, linears: tuple[LinearShape, ...], *, mixer: Mixer | None = None,
               ffn: FFN | None = None) -> Part:
    """A module that is its linear layers (a family's own projection names and shapes): their parameters
    in ``role``, and what it does."""
    return Part(params={role: _linear_params(linears)}, linears=linears, mixer=mixer, ffn=ffn)


def combine(*parts: Part, ffn: FFN | None = None, mixer: Mixer | None = None) -> Part:
    """Several modules counted as one part: roles and idle parameters summed, linears in order; the mixer
    and FFN are the first given (or ``mixer``/``ffn``)."""
    params: dict[str, int] = {}
    off_text: dict[str, int] = {}
    for p in parts:
        for role, n in p.params.items():
            params[role] = params.get(role, 0) + n
        for source, n in p.off_text.items():
            off_text[source] = off_text.get(source, 0) + n
    return Part(params=params, linears=tuple(x for p in parts for x in p.linears),
                mixer=mixer or next((p.mixer for p in parts if p.mixer is not None), None),
                ffn=ffn or next((p.ffn for p in parts if p.ffn is not None), None),
                idle=sum(p.idle for p in parts), off_text=off_text)


def repeated(part: Part, n: int) -> Part:
    """``n`` copies of ``part`` counted as one, describing no layer (a stack the Architecture does not list
    layer by layer: T5's decoder)."""
    return Part(params={role: n * count for role, count in part.params.items()}, idle=n * part.idle,
                off_text={source: n * count for source, count in part.off_text.items()})


def reached_only_by(part: Part, source: str) -> Part:
    """``part`` with all its parameters reached only by the input ``source`` (``OFF_TEXT_INPUTS``): a
    text-only step never runs it, so training gives it no gradient and no optimizer state."""
    return dataclasses.replace(part, off_text={source: sum(part.params.values())})


# --------------------------------------------------------------------------------------------
# Parts around the layers, and norms.
# --------------------------------------------------------------------------------------------


def params(role: str, n: int) -> Part:
    """``n`` parameters in ``role`` with nothing else to describe (a norm, an embedding table, a bias)."""
    return Part(params={role: n})


def norm(n: int) -> Part:
    """Normalization weights (and biases): ``n`` parameters in role ``norm``."""
    return params("norm", n)


def embedding(vocab: int, hidden: int) -> Part:
    """The token embedding table."""
    return params("embedding", vocab * hidden)


def lm_head(vocab: int, hidden: int, head: Head, *, tied: bool) -> Part:
    """An untied output projection of a causal LM (a tied one is the embedding table, counted once)."""
    return params("lm_head", vocab * hidden if head == "causal_lm" and not tied else 0)


# --------------------------------------------------------------------------------------------
# Attention mixers.
# --------------------------------------------------------------------------------------------


def attention(hidden: int, heads: int, kv_heads: int, head_dim: int, *, qkv_bias: bool = False,
              o_bias: bool | None = None, fused: bool = False, names: tuple[str, ...] | None = None,
              q_gate: bool = False, qk_norm: int = 0, sinks: bool = False) -> Part:
    """Multi-head / grouped-query attention: q/k/v/o projections (``fused``: one ``qkv_proj``, as phi3).

    Args:
        o_bias: the output projection's bias; ``None``: as q/k/v.
        names: other leaf names of the projections, in order (lfm2's ``out_proj``, dbrx's ``Wqkv``).
        q_gate: ``q_proj`` also makes a per-channel output gate, doubling its width (qwen3_next).
        qk_norm: parameters of q/k norms (per head: ``2 * head_dim``; over the projection: its width).
        sinks: a learned logit per head joins the softmax (gpt-oss ``GptOssAttention.sinks``).
    """
    o_bias = qkv_bias if o_bias is None else o_bias
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    linears = attention_linears(hidden, q_out, kv_out, qkv_bias, o_bias, fused=fused)
    if q_gate:
        linears = (dataclasses.replace(linears[0], out_features=2 * q_out), *linears[1:])
    if names is not None:
        linears = tuple(dataclasses.replace(x, name=n) for x, n in zip(linears, names, strict=True))
    return Part(params={"attention": _linear_params(linears) + (heads if sinks else 0), "norm": qk_norm},
                linears=linears, mixer=Mixer(kind="full", heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                                             sinks=sinks))


def gqa(f: Fields, hidden: int, heads: int, kv_heads: int, *, bias: bool, o_name: str = "o_proj",
        qk_norm: bool = False, head_dim: int | None = None) -> Part:
    """A plain grouped-query attention block (q/k/v/o, one bias flag) as the hybrids' modeling files build it:
    ``head_dim`` is the config's ``head_dim`` when present, else ``head_dim`` (a config class default), else
    ``hidden // heads`` (``getattr(config, "head_dim", ...)``); ``num_key_value_heads`` must divide the heads.
    ``qk_norm``: RMSNorms on q and k per head (``head_dim`` weights each)."""
    if heads % kv_heads:
        raise f.error("num_key_value_heads", kv_heads, f"a divisor of num_attention_heads={heads}")
    head_dim = f.opt_int("head_dim", head_dim) or hidden // heads
    return attention(hidden, heads, kv_heads, head_dim, qkv_bias=bias, qk_norm=2 * head_dim if qk_norm else 0,
                     names=("q_proj", "k_proj", "v_proj", o_name))


def with_mixer(part: Part, **changes: Any) -> Part:
    """The same part with its mixer's ``changes`` (a :class:`~hf_gpu_estimator.spec.Mixer` field each)."""
    if part.mixer is None:
        raise ValueError("with_mixer() takes a mixer part")
    return dataclasses.replace(part, mixer=dataclasses.replace(part.mixer, **changes))


def windowed(part: Part, *, window: int | None = None, chunk: int | None = None) -> Part:
    """The same attention over the last ``window`` tokens (``sliding``) or within ``chunk``-token blocks."""
    return with_mixer(part, kind="chunked" if chunk is not None else "sliding", window=window, chunk=chunk)


def mla(hidden: int, heads: int, kv_heads: int, *, q_rank: int | None, kv_rank: int, nope: int, rope: int,
        v_dim: int, bias: bool) -> Part:
    """DeepSeek's multi-head latent attention (modeling_deepseek_v3.py ``DeepseekV3Attention``).

    q: ``q_proj`` (no ``q_lora_rank``) or ``q_a_proj`` -> RMSNorm(q_rank) -> ``q_b_proj``; kv:
    ``kv_a_proj_with_mqa`` (hidden -> kv_rank + rope) -> RMSNorm(kv_rank) -> ``kv_b_proj``; ``o_proj``.
    ``attention_bias`` reaches q_a, kv_a and o only. The cache holds ``kv_rank + rope`` per token.
    """
    qk_dim = nope + rope
    if q_rank is None:
        q = (LinearShape(name="q_proj", in_features=hidden, out_features=heads * qk_dim),)
    else:
        q = (LinearShape(name="q_a_proj", in_features=hidden, out_features=q_rank, bias=bias),
             LinearShape(name="q_b_proj", in_features=q_rank, out_features=heads * qk_dim))
    linears = q + (
        LinearShape(name="kv_a_proj_with_mqa", in_features=hidden, out_features=kv_rank + rope, bias=bias),
        LinearShape(name="kv_b_proj", in_features=kv_rank, out_features=heads * (nope + v_dim)),
        LinearShape(name="o_proj", in_features=heads * v_dim, out_features=hidden, bias=bias),
    )
    return Part(params={"attention": _linear_params(linears), "norm": (q_rank or 0) + kv_rank}, linears=linears,
                mixer=Mixer(kind="mla", heads=heads, kv_heads=kv_heads, head_dim=qk_dim, v_head_dim=v_dim,
                            kv_lora_rank=kv_rank, rope_dim=rope))


# --------------------------------------------------------------------------------------------
# Recurrent mixers.
# --------------------------------------------------------------------------------------------


def _state_part(linears: tuple[LinearShape, ...], extra: int, norm_params: int, mixer: Mixer) -> Part:
    return Part(params={"attention": _linear_params(linears) + extra, "norm": norm_params}, linears=linears,
                mixer=mixer)


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
    extra = inner * kernel + (inner if conv_bias else 0) + inner * state + inner
    mixer = Mixer(kind="ssm", inner=inner, state_elements=inner * state, conv_elements=inner * kernel,
                  conv_kernel=kernel)
    return _state_part(linears, extra, dt_rank + 2 * state if bc_norms else 0, mixer)


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
    mixer = Mixer(kind="ssm", heads=heads, head_dim=head_dim, inner=inner,
                  state_elements=heads * head_dim * state, conv_elements=conv_dim * kernel, conv_kernel=kernel,
                  chunk=chunk or None)
    extra = conv_dim * kernel + (conv_dim if conv_bias else 0) + 3 * heads
    return _state_part(linears, extra, inner if gated_norm else 0, mixer)


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


def gated_deltanet(hidden: int, k_heads: int, v_heads: int, k_dim: int, v_dim: int, kernel: int, *,
                   split: bool = False) -> Part:
    """modeling_qwen3_next.py ``Qwen3NextGatedDeltaNet`` (and modeling_qwen3_5.py ``Qwen3_5GatedDeltaNet``,
    ``split``).

    in_proj_qkvz (hidden -> 2*key_dim + 2*value_dim), in_proj_ba (hidden -> 2*v_heads), depthwise conv1d over
    conv_dim = 2*key_dim + value_dim (no bias), dt_bias and A_log (v_heads), gated RMSNorm (v_dim), out_proj.
    Qwen3.5 splits the input projections into in_proj_qkv (2*key_dim + value_dim), in_proj_z (value_dim),
    in_proj_b and in_proj_a (v_heads each): the same parameters under four names.
    The recurrent state is (v_heads, k_dim, v_dim) per sequence, in fp32 (torch_chunk_gated_delta_rule).
    """
    key_dim, value_dim = k_heads * k_dim, v_heads * v_dim
    conv_dim = 2 * key_dim + value_dim
    inputs = (
        LinearShape(name="in_proj_qkv", in_features=hidden, out_features=2 * key_dim + value_dim, group="state"),
        LinearShape(name="in_proj_z", in_features=hidden, out_features=value_dim, group="state"),
        LinearShape(name="in_proj_b", in_features=hidden, out_features=v_heads, group="state"),
        LinearShape(name="in_proj_a", in_features=hidden, out_features=v_heads, group="state"),
    ) if split else (
        LinearShape(name="in_proj_qkvz", in_features=hidden, out_features=2 * key_dim + 2 * value_dim, group="state"),
        LinearShape(name="in_proj_ba", in_features=hidden, out_features=2 * v_heads, group="state"),
    )
    linears = (*inputs, LinearShape(name="out_proj", in_features=value_dim, out_features=hidden, group="state"))
    mixer = Mixer(kind="linear", heads=v_heads, kv_heads=k_heads, head_dim=k_dim, v_head_dim=v_dim,
                  inner=value_dim, state_elements=v_heads * k_dim * v_dim, conv_elements=conv_dim * kernel,
                  conv_kernel=kernel)
    return _state_part(linears, conv_dim * kernel + 2 * v_heads, v_dim, mixer)


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
    mixer = Mixer(kind="linear", scan="kda", heads=heads, kv_heads=heads, head_dim=head_dim, inner=width,
                  state_elements=heads * head_dim * head_dim, conv_elements=3 * width * kernel, conv_kernel=kernel)
    return _state_part(linears, 3 * width * kernel + width + heads, head_dim, mixer)


def short_conv(hidden: int, kernel: int, bias: bool) -> Part:
    """modeling_lfm2.py ``Lfm2ShortConv``: in_proj (hidden -> 3*hidden), depthwise conv (hidden x kernel), out_proj.

    Only a convolution state is cached: (hidden, kernel) per sequence (``conv_L_cache``).
    """
    linears = (
        LinearShape(name="in_proj", in_features=hidden, out_features=3 * hidden, bias=bias, group="state"),
        LinearShape(name="out_proj", in_features=hidden, out_features=hidden, bias=bias, group="state"),
    )
    mixer = Mixer(kind="conv", inner=hidden, conv_elements=hidden * kernel, conv_kernel=kernel)
    return _state_part(linears, hidden * kernel + (hidden if bias else 0), 0, mixer)


# --------------------------------------------------------------------------------------------
# Feed-forward parts.
# --------------------------------------------------------------------------------------------


def gated_mlp(hidden: int, inter: int, *, bias: bool = False, role: str = "mlp", fused: bool = False,
              names: tuple[str, ...] | None = None) -> Part:
    """A SwiGLU/GeGLU MLP: gate, up and down projections (``fused``: one ``gate_up_proj`` and ``down_proj``,
    as phi3, without biases; ``names``: other leaf names in that order, as lfm2's ``w1``, ``w3``, ``w2``).
    ``role``: ``experts`` for a shared expert."""
    if fused:
        linears: tuple[LinearShape, ...] = (
            LinearShape(name="gate_up_proj", in_features=hidden, out_features=2 * inter),
            LinearShape(name="down_proj", in_features=inter, out_features=hidden),
        )
    else:
        linears = gated_linears(hidden, inter, bias)
    if names is not None:
        linears = tuple(dataclasses.replace(x, name=n) for x, n in zip(linears, names, strict=True))
    return Part(params={role: _linear_params(linears)}, linears=linears,
                ffn=FFN(kind="dense", intermediate=inter))


def mlp(hidden: int, inter: int, *, bias: bool = False, names: tuple[str, str] = ("up_proj", "down_proj"),
        role: str = "mlp") -> Part:
    """A plain two-matrix MLP (``act(x W1) W2``): ``names`` are the in and out projections' leaf names."""
    linears = (
        LinearShape(name=names[0], in_features=hidden, out_features=inter, bias=bias),
        LinearShape(name=names[1], in_features=inter, out_features=hidden, bias=bias),
    )
    return Part(params={role: _linear_params(linears)}, linears=linears,
                ffn=FFN(kind="dense", intermediate=inter, gated=False))


def routed_experts(hidden: int, inter: int, experts: int, top_k: int, *, gated: bool = True, bias: bool = False,
                   width: int | None = None, linears: tuple[LinearShape, ...] | None = None) -> Part:
    """``experts`` expert MLPs of width ``inter`` of which a token runs ``top_k`` (the router apart).

    Stored as transformers 5 stores them (``fused_experts``: 3-D ``gate_up_proj`` and ``down_proj``, with
    ``bias``: gpt-oss), or, not ``gated``, an ``up_proj`` and ``down_proj`` per expert (Nemotron-H) reading
    ``width`` (the hidden size, or a latent). ``linears``: other stored shapes of the same parameters (dbrx's
    ``w1``/``v1``/``w2``).
    """
    width = width or hidden
    if linears is None:
        if gated:
            linears = fused_experts(width, inter, experts, bias=bias)
        else:
            linears = (LinearShape(name="up_proj", in_features=width, out_features=inter, count=experts, bias=bias),
                       LinearShape(name="down_proj", in_features=inter, out_features=width, count=experts,
                                   bias=bias))
    expert = _linear_params(linears) // experts if experts else 0
    return Part(params={"experts": experts * expert}, linears=linears, idle=(experts - top_k) * expert,
                ffn=FFN(kind="moe", intermediate=inter, gated=gated, experts=experts, top_k=top_k, expert_bias=bias))


def shared_expert_gate(hidden: int) -> Part:
    """Qwen2-MoE's ``shared_expert_gate``: ``Linear(hidden, 1, bias=False)`` reading the MoE input, whose sigmoid
    scales the shared expert's output (modeling_qwen2_moe.py ``Qwen2MoeSparseMoeBlock``); counted with the router."""
    return of_linears("router", (LinearShape(name="shared_expert_gate", in_features=hidden, out_features=1,
                                             group="mlp_in"),))


def moe(routed: Part, *, router: int, shared: Part | None = None, always: Sequence[Part] = (),
        **details: Any) -> Part:
    """A mixture-of-experts block: the ``routed`` experts, the ``router``'s parameters, a ``shared`` expert
    every token runs (its width is the FFN's ``shared``) and other modules every token runs (``always``:
    Nemotron-H's latent projections). ``details``: further :class:`~hf_gpu_estimator.spec.FFN` fields
    (``fp32_routing``, ``dense_experts``, ``clamped_swiglu``)."""
    if routed.ffn is None or routed.ffn.kind != "moe":
        raise ValueError("moe() takes routed_experts()")
    ffn = dataclasses.replace(routed.ffn, shared=shared.ffn.intermediate if shared and shared.ffn else 0,
                              **details)
    return combine(routed, params("router", router), *((shared,) if shared else ()), *always, ffn=ffn)


# --------------------------------------------------------------------------------------------
# The stack.
# --------------------------------------------------------------------------------------------


def merge_linears(*groups: tuple[LinearShape, ...]) -> tuple[LinearShape, ...]:
    """The union of several layer kinds' linears, first occurrence of each (name, shape) kept."""
    seen: dict[tuple[str, int, int, int, bool], LinearShape] = {}
    for group in groups:
        for x in group:
            seen.setdefault((x.name, x.in_features, x.out_features, x.count, x.bias), x)
    return tuple(seen.values())


@dataclass(frozen=True)
class Stack:
    """Layers built from parts: the parameter tally, one :class:`Layer` per layer and one block's linears."""

    tally: Tally
    layers: tuple[Layer, ...]
    linears: tuple[LinearShape, ...]
    #: Layers with weights of their own when ``layers`` lists the runs of a looped model; 0: one per layer.
    weight_layers: int = 0

    @property
    def moe_layers(self) -> tuple[int, ...]:
        return tuple(i for i, layer in enumerate(self.layers) if layer.ffn.kind == "moe")

    @property
    def moe(self) -> FFN | None:
        """The first MoE layer's FFN (the representative experts), or ``None``."""
        return next((layer.ffn for layer in self.layers if layer.ffn.kind == "moe"), None)

    @property
    def leading_dense(self) -> int:
        """Layers before the first MoE layer (all of them when none is MoE)."""
        moe = self.moe_layers
        return moe[0] if moe else len(self.layers)

    def keywords(self) -> dict[str, Any]:
        """Architecture keywords derived from the layers: ``per_layer``, ``linears`` and the MoE fields
        (``num_experts`` ... of the first MoE layer, 0 without one; ``moe_layers``)."""
        moe = self.moe
        return {
            "per_layer": self.layers, "linears": self.linears, "moe_layers": self.moe_layers,
            "num_experts": moe.experts if moe else 0, "num_experts_per_tok": moe.top_k if moe else 0,
            "moe_intermediate_size": moe.intermediate if moe else 0,
            "shared_expert_intermediate_size": moe.shared if moe else 0, "weight_layers": self.weight_layers,
        }


def stack(pattern: Sequence[Sequence[Part]], *, outer: Sequence[Part] = (),
          linears: Sequence[Part] | None = None, merge: bool = True,
          runs: Sequence[Sequence[Part]] | None = None) -> Stack:
    """Sum ``pattern`` (one tuple of parts per layer) and the ``outer`` parts (embeddings, final norm, head).

    A layer's mixer is its first part with a mixer (a second one runs beside it: ``Layer.parallel``,
    falcon_h1), its FFN the part with an FFN; a layer without one gets ``Mixer(kind="none")`` or
    ``FFN(kind="none")``. ``linears`` lists one block's linear layers: the linears of the given parts in
    order, else of every distinct part in the order the pattern first uses it (a hybrid's list holds every
    layer kind's), each (name, shape) once; ``merge=False`` keeps repeats (RWKV's time mix and channel mix
    each have a ``receptance`` of the same shape). ``runs``: the layers in the order one forward runs them,
    where that is not ``pattern`` (a looped model runs some layers more than once: their parameters count
    once, their activations and caches once per run). Layers made of the same part objects share one
    :class:`Layer` (cheap to group).
    """
    tally = Tally()
    made: dict[tuple[int, ...], Layer] = {}
    counts: dict[tuple[int, ...], int] = {}
    blocks: dict[tuple[int, ...], Sequence[Part]] = {}
    for block in pattern:
        key = tuple(map(id, block))
        if key not in blocks:
            blocks[key] = block
            counts[key] = 0
        counts[key] += 1
    for key, n in counts.items():
        for part in blocks[key]:
            _add(tally, part, n)
    for part in outer:
        _add(tally, part, 1)
    layers = tuple(_layer(block, made) for block in (pattern if runs is None else runs))
    if linears is None:
        linears = list({id(p): p for block in blocks.values() for p in block}.values())
    groups = [p.linears for p in linears]
    return Stack(tally=tally, layers=layers,
                 linears=merge_linears(*groups) if merge else tuple(x for g in groups for x in g),
                 weight_layers=len(pattern) if runs is not None else 0)


def _layer(block: Sequence[Part], made: dict[tuple[int, ...], Layer]) -> Layer:
    key = tuple(map(id, block))
    layer = made.get(key)
    if layer is None:
        mixers = [p.mixer for p in block if p.mixer is not None]
        ffns = [p.ffn for p in block if p.ffn is not None]
        if len(mixers) > 2 or len(ffns) > 1:
            raise ValueError(f"a layer takes at most two mixers and one FFN, got {len(mixers)} and {len(ffns)}")
        layer = made[key] = Layer(mixer=mixers[0] if mixers else NO_MIXER, ffn=ffns[0] if ffns else NO_FFN,
                                  parallel=mixers[1] if len(mixers) > 1 else None)
    return layer


def _add(tally: Tally, part: Part, n: int) -> None:
    for role, count in part.params.items():
        tally.add(role, n * count)
    for source, count in part.off_text.items():
        tally.add_off_text(source, n * count)
    tally.idle += n * part.idle
