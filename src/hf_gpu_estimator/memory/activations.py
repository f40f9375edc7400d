"""Activations: what transformers' forward keeps for backward, and the transient buffers of a step.

Every size here is *bytes per token* (one position of one sequence) unless the name says
otherwise; the caller multiplies by ``batch_size * seq_len``. The terms follow the real code
paths of transformers 5 on CUDA (modeling_llama.py and siblings, integrations/sdpa_attention.py,
loss/loss_utils.py) under PyTorch autograd and autocast:

* RMSNorm computes in fp32: ``x.to(float32)`` is saved by ``pow``/``mul`` (4 B/elem), the
  normalized tensor cast back to the input dtype is saved by ``weight * x``; the output is saved
  by the linear layers that read it. Under autocast each linear casts its fp32 input separately
  and saves its own bf16 copy (autocast caches casts of leaf weights only).
* Rotary: ``q * cos + rotate_half(q) * sin`` saves only cos/sin; the rotated q/k are new
  tensors. Under mixed precision cos/sin are fp32 (computed from the fp32 embeddings), so the
  rotated q/k are fp32 and SDPA's autocast casts them back to bf16.
* SDPA (flash for 16-bit, memory-efficient for fp32) saves q, k, v, the output and the fp32
  log-sum-exp per head; eager materializes the scores: the fp32 softmax is saved and its
  16-bit cast is saved by the second matmul.
* The loss upcasts the logits to fp32 (``logits.float()``); ``log_softmax`` saves its fp32 output.
* Without gradient checkpointing, a training forward still builds a DynamicCache
  (``use_cache`` defaults to the config's ``True``), holding a copy of every layer's k and v.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from hf_gpu_estimator.memory.recurrent import (
    KDA_INPUT_READERS,
    recurrent_backward_bytes,
    recurrent_inference_bytes,
    recurrent_saved_bytes,
)
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.spec import ATTENTION_KINDS, FFN, STATE_KINDS, Architecture, Layer, LinearShape, Mixer
from hf_gpu_estimator.workload import Workload

#: Log-sum-exp kept by flash / memory-efficient attention for backward: fp32 per head per query.
LSE_BYTES = 4

#: Tensors of the MLP width an activation saves for backward, and how many are alive at once when
#: it runs without autograd. ACT2FN (transformers/activations.py): silu, gelu, gelu_pytorch_tanh,
#: relu are single ATen ops saving their input; "gelu_new" is written out in Python
#: (0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))) and saves x, tanh(...), 0.5 * x and
#: 1 + tanh(...).
_ACT_SAVED = {"gelu_new": 4, "gelu_fast": 4, "quick_gelu": 2}
#: "relu2" (ReLUSquaredActivation: relu, then torch.square) holds the projection, relu's output and the square:
#: three (exact-mode trace of arcee at 4 x 2048 tokens, sdpa: the prefill peaks there). "xielu" without the
#: xielu CUDA package runs transformers' Python fallback (XIELUActivation._xielu_python: torch.where over two
#: written-out branches): the projection, four MLP-wide intermediates and a boolean one (torch.where's condition) at the
#: traced peak of apertus (4 x 2048, sdpa), 5.5 in the compute dtype.
_ACT_ALIVE = {"gelu_new": 4, "gelu_fast": 4, "quick_gelu": 3, "relu2": 3, "xielu": 5.5}


def act_saved_bytes(hidden_act: str, compute_bytes: int, mixed: bool) -> int:
    """Bytes per MLP-width element an activation saves. Under autocast the Python gelu_new runs
    ``pow`` in fp32 (an autocast fp32 op), so x**3's input, tanh, 1 + tanh are fp32 and 0.5 * x
    stays 16-bit: 4 + 4 + 4 + 2 bytes."""
    if hidden_act in ("gelu_new", "gelu_fast") and mixed:
        return 14
    return _ACT_SAVED.get(hidden_act, 1) * compute_bytes


@dataclass(frozen=True, kw_only=True)
class LayerActivations:
    """Per-token bytes of one decoder layer during training."""

    saved: float  # kept from forward until this layer's backward
    training_cache: float  # DynamicCache copies of k/v (training without checkpointing)
    forward_transient: float  # extra bytes alive at the layer's forward peak, beyond ``saved``
    backward_transient: float  # gradient buffers alive while the layer's backward runs
    checkpoint: float  # what non-reentrant checkpointing keeps per layer (the layer input)
    #: saved + training_cache of the largest distinct layer: what recomputing one layer under
    #: checkpointing rebuilds at worst (a hybrid's Mamba layer saves far more than its mean).
    largest: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Dims:
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    v_head_dim: int
    vocab: int
    mlp_inputs: int  # linear layers reading the MLP input (gate+up = 2; fused gate_up = 1; plain = 1)
    attn_inputs: int  # linear layers reading the attention input (q,k,v = 3; fused qkv = 1)
    gated: bool
    qk_head_dim: int  # per-head q/k width (MLA: nope + rope)


def fused_gate_up(arch: Architecture) -> bool:
    """Whether the gated MLP's gate and up projections are one linear layer of 2 x intermediate outputs (phi3's
    gate_up_proj; moshi's fc1, split by a view in MoshiGatingMLP.forward)."""
    return arch.gated_mlp and any(
        lin.name == "gate_up_proj" or (lin.name in _MLP_IN and lin.in_features == arch.hidden_size
                                       and lin.out_features == 2 * arch.intermediate_size)
        for lin in arch.linears)


def dims(arch: Architecture) -> Dims:
    names = {lin.name for lin in arch.linears}
    attn_inputs = 1 if names & {"qkv_proj", "c_attn", "query_key_value", "Wqkv"} else 3
    if arch.is_mla:
        attn_inputs = 2  # q_a_proj (or q_proj) and kv_a_proj_with_mqa
    mlp_inputs = 2 if arch.gated_mlp and not fused_gate_up(arch) else 1
    qk = arch.head_dim
    if arch.is_mla:
        qk = int(arch.qk_nope_head_dim or 0) + int(arch.qk_rope_head_dim or 0)
    return Dims(
        hidden=arch.hidden_size, intermediate=arch.intermediate_size, heads=arch.num_attention_heads,
        kv_heads=arch.num_key_value_heads, head_dim=arch.head_dim, v_head_dim=arch.v_head_dim or arch.head_dim,
        vocab=arch.vocab_size, mlp_inputs=mlp_inputs, attn_inputs=attn_inputs, gated=arch.gated_mlp,
        qk_head_dim=qk,
    )  # fmt: skip


def effective_attention(arch: Architecture, workload: Workload, compute_dtype: str | None = None) -> str:
    """The attention implementation transformers really runs, as far as memory goes.

    * Models whose class says ``_supports_sdpa = False`` (gemma2's softcapping, gpt-oss's sinks)
      run eager: transformers falls back to it.
    * SDPA in fp32 with grouped-query attention: transformers passes ``enable_gqa=True`` (no mask,
      head_dim <= 256; integrations/sdpa_attention.py use_gqa_in_sdpa), flash refuses fp32 and the
      memory-efficient kernel refuses GQA (sdp_utils.cpp), so PyTorch runs the math backend, which
      materializes the scores like eager. Measured on an H200: Qwen2.5-0.5B fp32, batch 4 x 2048,
      4.24 GiB allocated where a fused kernel would need 2.6 GiB.
    * flash_attention_2 keeps the same saved tensors as SDPA's flash backend.
    """
    attn = workload.attn_implementation
    if (arch.attn_logit_softcapping or not arch.supports_sdpa) and attn == "sdpa":
        return "eager"
    if compute_dtype is None:
        compute_dtype = workload.precision.compute_dtype if workload.is_training else (workload.dtype or "bfloat16")
    if attn == "sdpa" and compute_dtype == "float32" and arch.num_attention_heads != arch.num_key_value_heads \
            and (arch.head_dim or 0) <= 256:
        return "eager"
    return attn


def norm_bytes(hidden: int, input_bytes: int, *, rms: bool) -> float:
    """Saved by one norm: fp32 copy of the input and the normalized tensor (RMSNorm); LayerNorm
    (native_layer_norm) saves its input and fp32 mean/rstd per token."""
    if rms:
        return 4 * hidden + input_bytes * hidden + 4
    return input_bytes * hidden + 8


#: Linear layers by the stream they read or write, by peft leaf name (``LinearShape.group`` overrides).
_ATTN_IN = ("q_proj", "k_proj", "v_proj", "qkv_proj", "c_attn", "query_key_value", "Wqkv", "q_a_proj", "q_b_proj",
            "kv_a_proj_with_mqa", "kv_b_proj", "query", "key", "value")
_ATTN_OUT = ("o_proj", "dense", "out_proj", "o")
_MLP_IN = ("gate_proj", "up_proj", "gate_up_proj", "c_fc", "dense_h_to_4h", "fc1", "w1", "w3", "wi", "wi_0", "wi_1")
_MLP_OUT = ("down_proj", "dense_4h_to_h", "fc2", "w2", "wo")
_GROUPS = {"attn_in": _ATTN_IN, "attn_out": _ATTN_OUT, "mlp_in": _MLP_IN, "mlp_out": _MLP_OUT}


def _group_of(linear: LinearShape) -> str:
    if linear.group:
        return linear.group
    for group, names in _GROUPS.items():
        if linear.name in names:
            return group
    return ""


def _holds(layer: Layer, group: str) -> bool:
    """Whether a layer has the linears of ``group``: attention linears the attention layers, MLP linears the
    dense-FFN layers and MoE layers with a shared expert, recurrent projections the state-space layers."""
    if group in ("attn_in", "attn_out"):
        return any(m.kind in ATTENTION_KINDS for m in layer.mixers)
    if group in ("mlp_in", "mlp_out"):
        return layer.ffn.kind == "dense" or (layer.ffn.kind == "moe" and bool(layer.ffn.shared))
    if group == "state":
        return any(m.kind in STATE_KINDS for m in layer.mixers)
    return True


def first_adapted_layer(arch: Architecture, targets: frozenset[str], *, experts: bool = False) -> int:
    """The index of the first decoder layer holding a LoRA-targeted linear (``targets``: peft's module names, or
    ``all-linear``; ``experts``: adapters on the fused expert stacks, in the MoE layers); ``num_layers`` when none.

    Without gradient checkpointing nothing below it requires a gradient (the embedding and the frozen layers before
    it): autograd records no graph there, so those layers save nothing for backward (exact-mode trace of a 4-layer
    qwen3_next with LoRA on ``o_proj``, whose only attention layer is the last). Checkpointing calls
    ``enable_input_require_grads`` (transformers ``gradient_checkpointing_enable`` for peft models, TRL), which makes
    every layer's input require one."""
    everything = "all-linear" in targets
    groups = {_group_of(lin) for lin in arch.linears if lin.count == 1 and (everything or lin.name in targets)}
    for i, layer in enumerate(arch.layers):
        if any(_holds(layer, g) if g else True for g in groups) or (experts and layer.ffn.kind == "moe"):
            return i
    return arch.num_layers


def layers_holding(arch: Architecture, linear: LinearShape) -> int:
    """How many decoder layers contain ``linear``: attention linears live in the attention layers, MLP
    linears in the dense-FFN layers (and MoE layers with shared experts, which reuse the names),
    recurrent projections in the state-space / linear-attention layers; all layers for uniform models.

    Weight layers, not runs: a looped model (dory's recurrent section, hrm_text's two stacks) runs some of
    its layers more than once, and its ``layers`` list each run; the count is scaled by
    ``stored_layers / num_layers`` (the looped layers are alike)."""
    group = _group_of(linear)
    held = sum(n for layer, n in arch.layer_groups if _holds(layer, group)) if group else 0
    held = held or arch.num_layers
    if arch.stored_layers != arch.num_layers:
        held = max(1, held * arch.stored_layers // arch.num_layers)
    return held


#: MLA's linears reading the layer input; q_b_proj and kv_b_proj read the normalized latents
#: (modeling_deepseek_v3.py DeepseekV3Attention).
_MLA_HIDDEN_READERS = ("q_proj", "q_a_proj", "kv_a_proj_with_mqa")


def _savers(arch: Architecture, workload: Workload, group: str, *, moe: bool,
            names: tuple[str, ...] | None = None) -> int:
    """How many linear layers of ``group`` (of ``names`` when given) save their input for backward.

    ``y = x W^T`` needs ``x`` only for the weight gradient: every linear saves it in full training;
    under LoRA only the targeted ones do (their lora_A reads the input), a frozen linear keeps only
    its weight. bitsandbytes' MatMul4Bit likewise keeps only the packed weight.
    """
    in_group = [lin.name for lin in arch.linears if lin.count == 1 and _group_of(lin) == group
                and (names is None or lin.name in names)]
    if workload.method == "full":
        if moe and group == "mlp_in":
            # The router (not in ``linears``) reads the MoE input; the experts read gathered copies,
            # counted with the experts. Shared experts read it too.
            return 1 + len(in_group)
        if moe and group == "mlp_out":
            return 1  # each routed copy's down projection saves its input (per copy, see caller)
        return len(in_group)
    from hf_gpu_estimator.memory.weights import lora_module_targets

    targets = lora_module_targets(arch, workload)
    if "all-linear" in targets:
        return len(in_group)
    return sum(1 for n in in_group if n.split(".")[-1] in targets)


def decoder_layer_activations(arch: Architecture, workload: Workload, *, seq_len: int) -> LayerActivations:
    """Per-token activation bytes of one decoder layer in training (see module docstring).

    Cached on what it depends on (not the batch size), so the planner's sweeps stay cheap.
    """
    key = (id(arch), workload.precision.name, workload.method, workload.lora_targets, workload.framework,
           workload.attn_implementation, workload.gradient_checkpointing, seq_len)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is arch:  # the identity check guards against a reused id()
        return hit[1]
    value = _decoder_layer_activations(arch, workload, seq_len)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[key] = (arch, value)
    return value


_CACHE: dict[tuple[object, ...], tuple[Architecture, LayerActivations]] = {}


def _decoder_layer_activations(arch: Architecture, workload: Workload, seq_len: int) -> LayerActivations:
    """The per-layer mean of what each distinct layer saves (sums over layers stay exact), and the
    largest transients."""
    groups = arch.layer_groups
    if len(groups) == 1:
        one = _layer_activations(arch, groups[0][0], workload, seq_len)
        return dataclasses.replace(one, largest=one.saved + one.training_cache)
    parts = [(_layer_activations(arch, layer, workload, seq_len), n) for layer, n in groups]
    total = sum(n for _, n in parts)

    def mean(name: str) -> float:
        return sum(getattr(part, name) * n for part, n in parts) / total

    return LayerActivations(
        saved=mean("saved"), training_cache=mean("training_cache"), checkpoint=mean("checkpoint"),
        forward_transient=max(part.forward_transient for part, _ in parts),
        backward_transient=max(part.backward_transient for part, _ in parts),
        largest=max(part.saved + part.training_cache for part, _ in parts),
    )  # fmt: skip


def _layer_activations(arch: Architecture, layer: Layer, workload: Workload, seq_len: int) -> LayerActivations:
    if layer.mixer.kind == "cross" and not layer.mixer.source_tokens:
        # Nothing to attend: the layer is skipped whole (spec.Mixer, ``cross``).
        return LayerActivations(saved=0.0, training_cache=0.0, forward_transient=0.0, backward_transient=0.0,
                                checkpoint=0.0)
    d = dims(arch)
    precision = workload.precision
    mixed = precision.mixed
    full = workload.method == "full"
    c = BYTES[precision.compute_dtype]
    # The residual stream takes the dtype of the embeddings: fp32 parameters under mixed precision
    # (embedding is not an autocast op), the compute dtype otherwise. A LoRA base is loaded in the
    # compute dtype, so its stream is 16-bit.
    r = 4 if (mixed and full) else c
    # q/k after rotary: promoted to fp32 when cos/sin are fp32 (fp32 embeddings), else compute dtype.
    qe = 4 if r == 4 else c
    rms = arch.norm == "rmsnorm"
    H = d.hidden
    ffn, mixer = layer.ffn, layer.mixer
    is_moe = ffn.kind == "moe"
    I = ffn.intermediate or d.intermediate
    # Linear inputs are saved once and shared by the readers, except under mixed precision where
    # every reader saves its own 16-bit cast: autocast casts fp32 inputs per call (it caches only
    # leaf weights), and peft casts a LoRA layer's input to the fp32 adapter dtype first
    # (LoraLayer._cast_input_dtype), which autocast then casts back per layer.
    per_module = mixed and (not full or r == 4)

    def linear_inputs(savers: int, size: int, *, already_saved: bool) -> float:
        if savers == 0:
            return 0.0
        if per_module:
            return savers * c * size
        return 0.0 if already_saved else c * size

    recurrent = mixer.kind in STATE_KINDS
    # A recurrent mixer reads the layer input through one in_proj (the attention linears are not its
    # own); a feed-forward-only block (mixer "none") has no mixer input at all.
    if mixer.kind == "none":
        attn_in = 0
    elif recurrent:
        attn_in = (KDA_INPUT_READERS if mixer.scan == "kda" else 1) if full else 0
    else:
        attn_in = _savers(arch, workload, "attn_in", moe=is_moe,
                          names=_MLA_HIDDEN_READERS if mixer.kind == "mla" else None)
    attn_out = _savers(arch, workload, "attn_out", moe=is_moe)
    mlp_in = _savers(arch, workload, "mlp_in", moe=is_moe) if ffn.kind != "none" else 0
    mlp_out = _savers(arch, workload, "mlp_out", moe=is_moe) if ffn.kind != "none" else 0

    def norm(width: int = H) -> float:
        # RMSNorm: fp32 input copy (pow/mul) + rsqrt; llama's ``weight * x.to(dtype)`` saves the
        # normalized cast, gemma's ``(x * (1 + w)).type_as`` the fp32 normalized tensor, only when
        # the norm weight trains. LayerNorm (native_layer_norm): input + fp32 mean/rstd.
        if rms:
            trained = (4 if arch.norm_style == "gemma" else r) * width if full and arch.norm_weight else 0
            return 4 * width + 4 + trained
        return r * width + 8

    saved = 0.0
    if arch.parallel_attention:
        saved += norm() + linear_inputs(attn_in + mlp_in, H, already_saved=False)
    else:
        # A single-part block (Mamba, a Nemotron-H MLP block) has one norm; mixer + MLP the family's count.
        norms = arch.norms_per_layer if ffn.kind != "none" and mixer.kind != "none" else 1
        saved += norms * norm() + linear_inputs(attn_in, H, already_saved=False) \
            + linear_inputs(mlp_in, H, already_saved=False)
    if layer.parallel is not None:  # falcon_h1: a Mamba2 mixer beside attention, reading the same input
        saved_parallel, _ = recurrent_saved_bytes(layer.parallel, compute_bytes=c, hidden=H, seq_len=seq_len,
                                               autocast=mixed)
        saved += saved_parallel
    if mixer.kind == "none":
        forward_transient, training_cache = 0.0, 0.0
    elif recurrent:
        saved_mixer, forward_transient = recurrent_saved_bytes(mixer, compute_bytes=c, hidden=H, seq_len=seq_len,
                                                                autocast=mixed)
        saved += saved_mixer
        training_cache = 0.0
    else:
        saved_attn, forward_transient, training_cache = _attention_saved(
            arch, workload, seq_len, d, c=c, r=r, qe=qe, attn_out=attn_out, norm=norm, linear_inputs=linear_inputs,
            mixer=mixer)
        saved += saved_attn
    inter = I
    mixer_backward = recurrent_backward_bytes(mixer, seq_len=seq_len, autocast=mixed) if recurrent else 0.0
    if ffn.kind == "none":
        return LayerActivations(saved=saved, training_cache=training_cache, forward_transient=forward_transient,
                                backward_transient=2 * r * H + max(3 * c * max(mixer.inner, H), mixer_backward),
                                checkpoint=r * H)
    ffn_saved = _ffn_saved(arch, ffn, workload, d, c=c, inter=inter, mlp_out=mlp_out, linear_inputs=linear_inputs)
    saved += ffn_saved
    # Dropout in training saves a bool mask per dropped element (native_dropout): the two residual
    # branches; eager's dropped probabilities (saved by the second matmul instead of their cast,
    # so only the mask is extra). SDPA's fused dropout keeps an RNG seed.
    if arch.hidden_dropout:
        saved += 2 * H
    copies = ffn.routed_copies if is_moe else 1
    inter = (ffn.intermediate or I) if is_moe else I
    # Backward runs the feed-forward part first: its saved tensors are freed before the mixer's buffers grow.
    backward_transient = max(3 * c * inter * copies, mixer_backward - ffn_saved) + 2 * r * H
    return LayerActivations(
        saved=saved, training_cache=training_cache, forward_transient=forward_transient,
        backward_transient=backward_transient, checkpoint=r * H,
    )  # fmt: skip


def sdpa_gets_mask(mixer: Mixer, seq_len: int) -> bool:
    """Whether transformers hands SDPA an explicit mask for this layer at ``seq_len`` keys (no padding):
    masking_utils ``_ignore_causal_mask_sdpa`` drops a causal mask for ``is_causal``, but a sliding or
    chunked one only while the keys fit in the window (``kv_length < local_attention_size``)."""
    local = mixer.window if mixer.kind == "sliding" else mixer.chunk if mixer.kind == "chunked" else None
    return local is not None and seq_len >= local


def _attention_saved(arch: Architecture, workload: Workload, seq_len: int, d: Dims, *, c: int, r: int, qe: int,
                     attn_out: int, norm: Callable[..., float], linear_inputs: Callable[..., float],
                     mixer: Mixer) -> tuple[float, float, float]:
    """(saved, forward transient, training cache) per token of an attention mixer."""
    a, k, vd, qk, H = d.heads, d.kv_heads, d.v_head_dim, d.qk_head_dim, d.hidden
    mixed = workload.precision.mixed
    saved = 0.0
    if arch.qk_norm == "head":
        # Per-head RMSNorm of q and k (its input is the projection output, in the compute dtype).
        saved += norm(a * qk) + norm(k * qk) - 8 + 4 * (a + k)  # rsqrt per head, not per token
    elif arch.qk_norm == "full":
        saved += norm(a * qk) + norm(k * qk)

    if mixer.l2_qk_norm:
        # Llama4TextL2Norm (modeling_llama4.py): ``x.float() * rsqrt(x.pow(2).mean(-1) + eps)``, then
        # ``type_as(x)``: the fp32 copies of q and k and an rsqrt per head are saved; the 16-bit result is
        # the q/k attention reads (counted there).
        saved += 4 * (a + k) * qk + 4 * (a + k)
    if arch.is_mla:
        # MLA (modeling_deepseek_v3.py DeepseekV3Attention): q_a_layernorm and kv_a_layernorm normalize
        # the low-rank latents (an RMSNorm each: fp32 copy, 16-bit cast, output); q_b_proj saves the
        # normalized q latent, and the normalized kv latent stays alive beside the cache's copy that
        # kv_b_proj reads (exact-mode trace of a deepseek_v3 config). kv_b_proj's output holds the
        # non-rotary keys and the values, which SDPA saves as a view of it: the keys' share is extra.
        q_rank, kv_rank = int(arch.q_lora_rank or 0), int(arch.kv_lora_rank or 0)
        if q_rank:
            q_b = _savers(arch, workload, "attn_in", moe=False, names=("q_b_proj",))
            saved += norm(q_rank) + linear_inputs(q_b, q_rank, already_saved=False)
        saved += norm(kv_rank) + c * kv_rank + c * k * int(arch.qk_nope_head_dim or 0)

    attn = effective_attention(arch, workload)
    repeat = a != k
    if mixer.block_sparse_at(seq_len):
        # Block-sparse attention runs whatever the implementation asked, and writes no cache.
        saved += c * a * qk + c * k * (qk + vd) + block_sparse_saved_bytes(mixer, c, H, seq_len, mixed=mixed)
        saved += linear_inputs(attn_out, a * vd, already_saved=False)
        return saved, c * a * seq_len, 0.0
    if attn == "eager":
        mask_bytes = 4 if r == 4 else c
        saved += c * a * qk  # q (cast to the compute dtype under autocast)
        saved += c * (a if repeat else k) * qk  # k, repeated to every head for GQA
        saved += c * (a if repeat else k) * vd  # v
        # fp32 softmax (saved by softmax) + its 16-bit cast (saved by the second matmul; in fp32
        # the cast is a no-op and the matmul saves the softmax output itself).
        # softmax's output (fp32 where the model asks for it, or autocast runs softmax in fp32),
        # then what the second matmul saves: the dropout output (+ its bool mask), or the 16-bit
        # cast of the probabilities (nothing new when softmax already ran in the compute dtype).
        s_b = c if (arch.native_softmax and not mixed) else 4
        if arch.attention_dropout:
            saved += (s_b + c + 1) * a * seq_len
        else:
            saved += (s_b + (c if s_b != c else 0)) * a * seq_len
        if arch.attn_logit_softcapping:
            saved += c * a * seq_len  # tanh(scores / cap) saves its output (gemma2)
        saved += linear_inputs(attn_out, a * vd, already_saved=False)  # transposed, contiguous output
        forward_transient = mask_bytes * a * seq_len + mask_bytes * seq_len  # masked scores; the 4-D mask
    else:
        # SDPA saves q, k, v, its output and the logsumexp. With a mask transformers does not pass enable_gqa
        # (sdpa_attention.py use_gqa_in_sdpa): k and v are repeated to every head (repeat_kv, new tensors SDPA
        # saves), and SDPA turns the boolean mask into an additive one in the compute dtype, which the
        # memory-efficient kernel saves: a (batch, 1, S, S) tensor per layer. Exact-mode trace of a
        # llama4_text config (chunked layers, 512 tokens, chunk 128).
        masked = sdpa_gets_mask(mixer, seq_len)
        kv = a if masked else k
        saved += c * a * qk + c * kv * qk + c * kv * vd + c * a * vd + LSE_BYTES * a + (c * seq_len if masked else 0)
        saved += linear_inputs(attn_out, a * vd, already_saved=True)
        forward_transient = qe * a * qk + 2 * c * H  # fp32 q before SDPA's cast; projection outputs
    # The DynamicCache a training forward builds (use_cache=True) holds copies of k and v, and
    # attention reads (and saves) those copies: nothing extra, except where attention saves a
    # different tensor: SDPA's bf16 cast of an fp32 k (mixed precision), eager's repeated k/v (GQA).
    training_cache = 0.0
    if not workload.gradient_checkpointing:
        if arch.is_mla:
            training_cache = c * (int(arch.kv_lora_rank or 0) + int(arch.qk_rope_head_dim or 0))
        elif attn == "eager" and repeat:
            training_cache = qe * k * qk + c * k * vd
        elif qe != c:
            training_cache = qe * k * qk

    return saved, forward_transient, training_cache


def _ffn_saved(arch: Architecture, ffn: FFN, workload: Workload, d: Dims, *, c: int, inter: int, mlp_out: int,
               linear_inputs: Callable[..., float]) -> float:
    """Bytes per token a dense or MoE feed-forward part saves for backward."""
    precision = workload.precision
    mixed = precision.mixed
    full = workload.method == "full"
    H = d.hidden
    # MLP: act saves its input, the product saves both factors, down saves the product when it trains.
    copies = 1
    # Gated: act saves the gate output, the product saves act(gate) and up; plain: act's tensors.
    act_bytes = act_saved_bytes(arch.hidden_act, c, mixed) + (2 * c if ffn.gated else 0)
    if ffn.kind == "moe":
        inter = ffn.intermediate or inter
        copies = ffn.routed_copies
        # transformers 5 runs the routed experts through grouped_mm (integrations/moe.py
        # grouped_mm_experts_forward), which autocast does not touch: they compute in the expert
        # weights' dtype (fp32 under mixed precision). Per routed token: the gathered input, the
        # fused gate/up output, act(gate), the product, and the expert output saved by the
        # routing-weight multiply.
        e = BYTES[precision.param_dtype] if full else c
        per_mlp = e * (2 * H + 4 * inter) if ffn.gated else e * (2 * H + 2 * inter)
        if ffn.clamped_swiglu:
            # sigmoid saves its output, ``gate * sigmoid`` the clamped gate, ``(up + 1) * glu`` both
            # factors: the clamped gate, glu and up + 1 beyond a plain GLU's act(gate).
            per_mlp += e * 3 * inter
        if not full:
            # A matmul whose weight takes no gradient keeps no input: frozen experts (LoRA elsewhere) save neither
            # the gathered input nor the down projection's input; an expert stack under LoRA (peft's MoE target
            # conversion, memory/weights.py expert_lora) keeps its own. Exact-mode traces of qwen3_moe (2 layers,
            # hidden 512, 32 experts, top 4) at 1024 and 2048 tokens: per routed copy and layer, q_proj,v_proj
            # saves 2,752 B less than the full-training count and all-linear 302 B less.
            from hf_gpu_estimator.memory.weights import expert_lora

            adapted = expert_lora(arch, workload)
            stacks = adapted.params if adapted is not None else {}
            per_mlp -= e * ((0 if "gate_up_proj" in stacks else H) + (0 if "down_proj" in stacks else inter))
    else:
        per_mlp = act_bytes * inter + linear_inputs(mlp_out, inter, already_saved=False)
    mlp = per_mlp * copies
    if ffn.kind == "moe":
        if ffn.shared:
            mlp += act_bytes * ffn.shared + linear_inputs(mlp_out, ffn.shared, already_saved=False)
        mlp += 4 * ffn.experts  # router logits in fp32 (softmax saved)
        if ffn.fp32_routing and full and not mixed and c != 4:
            # A float32 router (DeepseekV3TopkRouter: F.linear(hidden_states.type(torch.float32), ...))
            # saves the fp32 copy of its input for its weight's gradient; autocast would cast it back to
            # 16 bits (counted with the MoE input's readers).
            mlp += 4 * H
    return mlp


def loss_bytes(arch: Architecture, workload: Workload) -> tuple[float, float, float]:
    """Per-token bytes of the output head and loss: (saved after forward, peak during the loss,
    peak at the start of backward).

    ``logits = lm_head(h)`` in the compute dtype, ``.float()`` copy (none when already fp32),
    ``log_softmax`` saves its fp32 output. The model output keeps the 16-bit logits alive until the
    training step drops it. Backward: nll's fp32 gradient plus log_softmax's fp32 input gradient
    next to the saved output.

    Without the upcast (``arch.loss_upcast`` False: ``nn.CrossEntropyLoss()`` on the 16-bit logits), the
    ATen composite (aten/src/ATen/native/LossNLL.cpp ``cross_entropy_loss_symint``) runs ``log_softmax`` in the
    logits' dtype and saves its 16-bit output. Under autocast ``nll_loss`` (autocast's fp32 list,
    ATen/autocast_mode.h) takes an fp32 copy of it, which its backward keeps (derivatives.yaml
    ``nll_loss_forward`` saves ``self``); backward starts with nll's fp32 gradient beside both. Without autocast
    everything stays 16-bit: saved log-probabilities, then nll's and log_softmax's 16-bit gradients. Exact-mode
    traces of bart, mbart, pegasus, marian ... at 2 x 2048 tokens (docs/coverage-long.md) peak at that backward.
    """
    precision = workload.precision
    c = BYTES[precision.compute_dtype]
    V = arch.vocab_size
    upcast = 0 if c == 4 else 4
    softcap = 2 * c if arch.final_logit_softcapping else 0  # tanh saves its output; divided logits
    if not arch.loss_upcast and c < 4:
        if precision.mixed:  # 16-bit log-probabilities + nll's fp32 copy; backward: + nll's fp32 gradient
            saved, during, backward = (c + 4) * V, (2 * c + 4) * V, (c + 8) * V
        else:  # 16-bit log-probabilities; backward: + nll's and log_softmax's 16-bit gradients
            saved, during, backward = c * V, 2 * c * V, 3 * c * V
        saved, during = saved + softcap, during + softcap
    else:
        saved = 4 * V + softcap
        during = c * V + upcast * V + 4 * V + softcap
        backward = 4 * V + 4 * V + 4 * V
    if arch.final_logit_softcapping:
        # tanh backward: the 16-bit gradient next to the saved tanh output (measured by trace).
        backward += c * V
    K = arch.logit_heads
    if K > 1:
        # One head per codebook (modeling_musicgen.py MusicgenForCausalLM.forward, transformers 5.25): the K heads'
        # logits are stacked (kept by the output), then each codebook's ``logits[:, k].contiguous()`` goes through
        # the loss in turn, so every codebook's saved tensors are alive at the last one, beside its contiguous copy.
        # Backward (a zeros tensor of the stacked shape per codebook's select and their running sum) peaks at the
        # forward's level (exact-mode traces of musicgen and musicgen_melody at 2 x 2048 tokens).
        during = K * c * V + K * saved + c * V
        return K * saved, during, during
    return saved, during, backward


def eager_score_bytes(compute_bytes: int, *, native_softmax: bool = False, float16: bool = False) -> int:
    """Peak bytes per attention-score element inside eager attention without autograd.

    ``softmax(x, dtype=float32)`` on CUDA writes fp32 straight from an fp16 input (half_to_float)
    but converts a bf16 input to an fp32 copy first (aten/src/ATen/native/SoftMax.cpp ``softmax``).
    Measured on an H200: Llama-2-7B fp16 at 4096 tokens 8 bytes per score element, TinyLlama
    bf16 10 bytes.
    """
    c = compute_bytes
    if native_softmax:
        return 2 * c  # scores and their scaled/masked/softmaxed successor
    if c == 4:
        return 8  # scores + softmax output; the casts are no-ops
    copy = 0 if float16 else 4
    return max(2 * c, c + copy + 4, c + 4 + c)


def inference_layer_transient(arch: Architecture, *, compute_bytes: int, attn: str, seq_len: int,
                              query_len: int, batch_size: int = 1, float16: bool = False) -> float:
    """Peak per-token bytes alive inside one decoder layer under ``torch.no_grad`` (prefill or decode),
    excluding the KV cache: the largest over the model's distinct layers. ``seq_len`` is the key
    length (for eager's score matrix); ``batch_size`` decides whether a broadcast matmul copies (the indexer's)."""
    d = dims(arch)
    c = compute_bytes
    H = d.hidden
    # RMSNorm: input + fp32 copy + fp32 normalized.
    peak = float(c * H + 8 * H)
    kinds = {layer.mixer.kind for layer, _ in arch.layer_groups}
    sinks = any(m.sinks for layer, _ in arch.layer_groups for m in layer.mixers)
    # Keys per query: a compressed-attention layer appends its compressor's entries to the keys
    # (Architecture.compressed_key_rate).
    keys = seq_len + (seq_len // arch.compressed_key_rate if arch.compressed_key_rate else 0)
    # Sinks kept in fp32 promote the concatenated scores to fp32 (Architecture.fp32_sinks).
    promoted = arch.fp32_sinks and not arch.fp32_scores and c < 4
    if kinds & ATTENTION_KINDS:
        attn_bytes = 2 * c * H + c * (d.heads * d.qk_head_dim * 2 + d.kv_heads * (d.qk_head_dim + d.v_head_dim) * 2)
        attn_bytes = max(attn_bytes, _rotary_fp32_bytes(arch, d, c))
        if attn == "sdpa" and arch.sdpa_head_mask:
            # modeling_doge.py DogeAttention.prepare_dynamic_mask: torch.where makes an additive copy of the boolean
            # causal mask in the compute dtype ([batch, 1, query, key]), ``!= 0`` a boolean one, and masked_fill the
            # per-head mask SDPA receives (exact-mode trace of doge at 4 x 2048 tokens, sdpa: the three at the
            # prefill peak inside attention, beside the residual, the normed input and the rotated queries; the
            # layer's keys and values are the cache's, counted by the caller). Longer than its keep_window_size
            # (2048) the mask is also top-k filtered, which is not traced.
            attn_bytes = max(attn_bytes, 2 * c * H + c * d.heads * d.qk_head_dim + (c * d.heads + c + 1) * seq_len)
        if arch.compressed_key_rate:
            # The 4-D mask concatenated with the compressor's block bias (one column per compressed key, bound
            # with its own extra column): modeling_deepseek_v4.py DeepseekV4Attention.forward,
            # DeepseekV4CSACompressor.forward.
            attn_bytes += c * (keys + keys - seq_len + 1)
        if attn == "eager" and sinks and promoted:
            # Sinks in fp32 (modeling_deepseek_v4.py eager_attention_forward): torch.cat promotes the masked
            # 16-bit scores to fp32, the max-subtracted copy and softmax's output are fp32 and one column wider,
            # and ``probs[..., :-1].to(value_states.dtype)`` writes a 16-bit copy while the masked scores are
            # still bound: 2 x 2 + 2 x 4 bytes per score in bf16. Exact-mode trace of deepseek_v4 at 1 x 8192
            # tokens (64 heads, 8192 + 2048 keys on its compressed-sparse layer): 61,444 of the 62,876 MiB of
            # activations at the prefill peak are these four tensors.
            attn_bytes += d.heads * (2 * c * keys + 2 * 4 * (keys + 1))
        elif attn == "eager" and sinks:
            # Attention sinks (modeling_gpt_oss.py eager_attention_forward): the masked scores stay bound
            # while torch.cat appends the sink column and the row max is subtracted, and softmax runs in
            # the scores' dtype: three score tensors, two of them one column wider (the 4-D masks are
            # counted per forward by the caller). Flint's scores are fp32 (Architecture.fp32_scores): the
            # masked scores, the concatenation and the softmax output, 12 bytes per score, beside the keys and
            # values repeated to the query heads (repeat_kv) where they are grouped (exact-mode trace of flint
            # at 4 x 2048 tokens: 6,146 MiB of fp32 scores and 128 MiB of repeated keys and values at the peak).
            s = 4 if arch.fp32_scores else c
            attn_bytes += s * d.heads * (keys + 2 * (keys + 1))
            if arch.fp32_scores and d.kv_heads < d.heads:
                attn_bytes += c * d.heads * (d.qk_head_dim + d.v_head_dim)
        elif attn == "eager":
            attn_bytes = max(attn_bytes, _eager_softmax_bytes(arch, d, c, keys, float16=float16))
        elif attn == "sdpa" and query_len > 1 and any(sdpa_gets_mask(m, seq_len) for layer, _ in arch.layer_groups
                                                        for m in layer.mixers if m.kind in ATTENTION_KINDS):
            # A boolean mask rules flash out; the memory-efficient kernel takes it as an additive mask,
            # ``where(logical_not(mask), -inf, 0)`` in the query dtype (convert_boolean_attn_mask, torch 2.13
            # sdp_utils): the negated boolean copy and the additive one beside the mask, per query and key.
            # Exact-mode trace of modernbert-decoder at 1 x 8192 tokens (sliding layers of 128): 192 of the 356 MiB
            # of activations at the prefill peak, inside a sliding layer's attention.
            attn_bytes = max(attn_bytes, _at_attention_bytes(arch, d, c) + (1 + c) * seq_len)
        sparse = [m for layer, _ in arch.layer_groups for m in layer.mixers if m.block_sparse_at(query_len)]
        if sparse:
            attn_bytes = max(block_sparse_inference_bytes(m, c, H, query_len) for m in sparse)
        peak = max(peak, attn_bytes, _indexer_bytes(arch, c, seq_len, query_len=query_len, batch_size=batch_size))
    # While a layer's feed-forward runs, the model's loop still holds the layer's input (``hidden_states =
    # decoder_layer(hidden_states, ...)``, modeling_llama.py LlamaModel.forward and its siblings) beside the
    # embeddings (from the second layer on they are distinct tensors), and the layer holds its own
    # (Architecture.ffn_held_hidden; the feed-forward terms count 2). Exact-mode traces of the long-context matrix
    # (llama at 4 x 2048 tokens, sdpa: the embeddings, layer 0's output, layer 1's residual and normed input beside
    # the MLP at the prefill peak).
    layer_held = (c * H if arch.num_layers > 1 else 0) + (arch.ffn_held_hidden - 2) * c * H
    for layer, _ in arch.layer_groups:
        for mixer in layer.mixers:
            if mixer.kind in STATE_KINDS:
                peak = max(peak, 2 * c * H + (recurrent_inference_bytes(mixer, compute_bytes=c, hidden=H,
                                                                         seq_len=query_len)
                                              if query_len > 1 else 4 * c * (mixer.inner or H)))
        held = 0
        if layer.mixer.block_sparse_at(query_len):
            # The dense probabilities block-sparse attention returns (see block_sparse_inference_bytes), kept by
            # the layer (modeling_big_bird.py BigBirdLayer: ``self_attention_outputs[1:]``) through the MLP.
            held = c * d.heads * query_len
        elif attn == "eager" and layer.mixer.kind in ATTENTION_KINDS:
            # Eager attention returns its probabilities in the compute dtype and the decoder layer keeps
            # them bound (``hidden_states, _ = self.self_attn(...)``, modeling_llama.py and most siblings)
            # until it returns: alive through the feed-forward. With sinks they are a slice of the
            # softmax output, which keeps the sink column (modeling_gpt_oss.py ``probs[..., :-1]``), unless cast
            # to a new tensor (modeling_flint.py ``[..., :-1].to(value_states.dtype)``; fp32 sinks likewise).
            held = c * d.heads * (keys + (1 if layer.mixer.sinks and not arch.fp32_scores and not promoted else 0))
        ffn = _ffn_inference_bytes(arch, layer.ffn, c, H, d.intermediate) + held + layer_held
        if layer.mixer.kind == "wkv":
            # RWKV-4's channel mix (modeling_rwkv.py RwkvFeedForward) shifts its input by one token and
            # mixes it into the key and receptance inputs: three hidden-wide tensors beyond the MLP's; the
            # block (RwkvBlock.forward) keeps the time mix's output alive until it returns (its input is the
            # loop's, counted above). Live tensors at the traced prefill peak of an rwkv config (inside the
            # channel mix). Its squared ReLU is inline (torch.square(torch.relu(self.key(key)))): the projection
            # is freed before the square, two MLP-wide tensors where ACT2FN's "relu2" module holds three.
            ffn += 4 * c * H - (_ACT_ALIVE.get(arch.hidden_act, 2) - 2) * c * (layer.ffn.intermediate or d.intermediate)
        peak = max(peak, ffn)
    return peak


def _block_fractions(mixer: Mixer, tokens: int) -> tuple[float, float]:
    """(middle, random) of BigBird's block-sparse attention: the share of the query blocks that take the
    banded path (all but the first two and last two) and that gather random blocks (all but the first and last)."""
    blocks = tokens / mixer.block_size
    return max(0.0, blocks - 4) / blocks, max(0.0, blocks - 2) / blocks


def block_sparse_inference_bytes(mixer: Mixer, c: int, hidden: int, tokens: int) -> float:
    """Per-token bytes alive at the end of BigBird's block-sparse attention without autograd
    (modeling_big_bird.py ``BigBirdBlockSparseAttention.bigbird_block_sparse_attention``, transformers 5.25): the
    dense ``attention_probs`` (zeros of [batch, heads, seq, seq] in the compute dtype, filled from the blocks'
    weights, built whether or not attentions are output); per middle query block the band's products (sliding,
    global and random keys), their concatenation and its softmax; the random blocks' fp32 mask and gathered keys
    and values; the sliding keys and values; the first and last query blocks' products and softmax against every
    key; the residual, normed input, q, k, v and the context. Exact-mode trace of big_bird at 4 x 2048 tokens
    (block 64, 3 random blocks, 12 heads of 64): 954 of the 995 MiB of activations at the prefill peak (the rest:
    the second and second-to-last query blocks' own products)."""
    h, d, bs, r = mixer.heads, mixer.head_dim, mixer.block_size, mixer.random_blocks
    middle, rand = _block_fractions(mixer, tokens)
    return (c * h * tokens + 3 * c * h * (5 + r) * bs * middle + 4 * h * r * bs * rand + 2 * c * h * r * d * rand
            + 2 * c * h * 3 * d * middle + 4 * c * h * bs + 6 * c * hidden)


def block_sparse_saved_bytes(mixer: Mixer, c: int, hidden: int, tokens: int, *, mixed: bool) -> float:
    """Per-token bytes BigBird's block-sparse attention saves for backward beyond q, k and v (see
    :func:`block_sparse_inference_bytes`): per middle query block the band's softmax output (fp32 under autocast,
    an autocast fp32 op) with the 16-bit casts of its sliding and random slices that the context matmuls read and a
    contiguous copy of one three-block slice, the sliding keys and values and the gathered random keys'
    contiguous slice; the first and last query blocks' softmax outputs and their 16-bit casts and copies; the
    transposed contiguous keys and values. Itemized from the tensors saved in an exact-mode trace of big_bird
    training at 2 x 2048 tokens, bf16-mixed (238.6 MiB per layer)."""
    h, d, bs, r = mixer.heads, mixer.head_dim, mixer.block_size, mixer.random_blocks
    middle, _ = _block_fractions(mixer, tokens)
    soft = 4 if mixed else c
    casts = c if mixed else 0
    band = h * middle * (soft * (5 + r) * bs + casts * (3 + r) * bs + c * 3 * bs + c * d * (2 * 3 + r))
    ends = 2 * h * bs * (soft + 2 * c)
    return band + ends + 2 * c * hidden


def _rotary_fp32_bytes(arch: Architecture, d: Dims, c: int) -> float:
    """Per-token bytes alive inside attention while a float32 rotary embedding rotates the queries, then the keys
    (no autograd; 0 without :attr:`Architecture.rotary_fp32_alive`): the residual and normed input, the
    query projection in the compute dtype (the layer's key and value projections are the size of its cache entry,
    counted by the caller), and per rotated tensor ``rotary_fp32_alive`` fp32 copies of it; while the keys rotate,
    the rotated fp32 queries too, and with ``rotary_fp32_inputs`` the fp32 copy of the other input.
    Exact-mode traces at 4 x 2048 tokens, sdpa (docs/coverage-long.md): ernie4_5 ``(q.float() * cos) +
    (rotate_half(q).float() * sin)``: three fp32 query-sized tensors at the peak; cohere (``q = q.float(); k =
    k.float()`` first): the two copies, the rotated queries and three key-sized tensors; modernbert-decoder
    (``rotate_half(q.float())``): three and a half."""
    alive = arch.rotary_fp32_alive
    if not alive:
        return 0.0
    q = d.heads * d.qk_head_dim
    k = d.kv_heads * d.qk_head_dim
    inputs = arch.rotary_fp32_inputs
    rotating_q = 4 * alive * q + (4 * k if inputs else 0)
    rotating_k = 4 * q + (4 * q if inputs else 0) + 4 * alive * k
    return 2 * c * d.hidden + c * q + max(rotating_q, rotating_k)


def _indexer_bytes(arch: Architecture, c: int, seq_len: int, *, query_len: int, batch_size: int) -> float:
    """Per-token bytes alive inside a DeepSeek-sparse-attention token indexer (no autograd), whatever the attention
    implementation: ``torch.matmul(q.float() [b, s, heads, dim], k.float() [b, 1, dim, t])`` broadcasts the keys
    over the queries; where the batch and the queries are both longer than one, the expanded keys cannot be viewed
    as one batch dimension, so matmul materializes them in fp32 (``dim`` floats per query and key) beside its fp32
    scores (``heads`` per query and key); one request (or one query) is a view, no copy. Then the scaling (``*
    softmax_scale``) writes a second score tensor, ``relu`` a third once the first is freed
    (modeling_deepseek_v32.py DeepseekV32Indexer.forward, transformers 5.25; the axk2 and hy_v4 indexers are the
    same code). The residual and normed input stay alive. Exact-mode traces of axk2 (16 index heads of 128): 612
    bytes per query and key at the peak at 4 x 2048 tokens; at 1 x 8192 the bmm output and its scaled copy, 8192
    MiB of the 8739 MiB of activations at the peak, inside the indexer. DeepSeek-V4's indexer scores the CSA
    compressor's entries, one key per ``Architecture.indexer_key_stride`` tokens (modeling_deepseek_v4.py
    DeepseekV4IndexerScorer.forward: the same broadcast matmul; its attention, not the indexer, holds the traced
    peaks)."""
    if not arch.indexer_heads:
        return 0.0
    h, dim = arch.indexer_heads, arch.indexer_head_dim
    copy = 4 * dim if batch_size > 1 and query_len > 1 else 0
    return 2 * c * arch.hidden_size + max(copy + 4 * h, 8 * h) * (seq_len // arch.indexer_key_stride)


def _eager_softmax_bytes(arch: Architecture, d: Dims, c: int, seq_len: int, *, float16: bool) -> float:
    """Per-token bytes alive inside eager attention at its softmax (no autograd), past the rotary step.

    The residual and the normed input, the rotated queries, the keys and values repeated to the query heads
    where they are grouped (repeat_kv copies; the layer's own keys and values are the cache's tensors, counted
    with the cache, unless the model keeps no cache), and per score element the masked scores,
    softmax(dtype=float32)'s fp32 copy of its input (none when already fp32) and its fp32 output (ATen softmax
    with a dtype casts first), plus the scores a model keeps beyond those (Architecture.eager_held_scores). The
    additive 4-D mask is built once per forward and counted by the caller. Exact-mode traces of the long-context
    matrix (docs/coverage-long.md; llama at 4 x 2048 tokens: 5120 MiB of scores and 192 MiB of residual, normed
    input and queries beside the cache and the mask).
    """
    per_score = eager_score_bytes(c, native_softmax=arch.native_softmax, float16=float16) \
        + c * arch.eager_held_scores
    return _at_attention_bytes(arch, d, c) + per_score * d.heads * seq_len


def _at_attention_bytes(arch: Architecture, d: Dims, c: int) -> float:
    """Per-token bytes alive when the attention function starts, past the rotary step (no autograd): the
    residual and the normed input, the rotated queries, the keys and values repeated to the query heads where
    they are grouped (repeat_kv copies), and the layer's own keys and values where the model keeps no cache (a
    decoder's are the cache's tensors, counted with the cache)."""
    kv_width = d.qk_head_dim + d.v_head_dim
    repeated = c * d.heads * kv_width if d.kv_heads < d.heads else 0
    own_kv = 0 if arch.is_decoder else c * d.kv_heads * kv_width
    return 2 * c * d.hidden + c * d.heads * d.qk_head_dim + repeated + own_kv


def _expert_extra_alive(ffn: FFN, inter: int) -> int:
    """Elements per routed token the experts hold at their inference peak beyond a plain GLU's: the
    gathered biases of the up projection (alive until the experts return) and the clamped SwiGLU's
    three extra tensors (clamped gate and up, ``up + 1``; see :class:`spec.FFN`). Exact-mode trace of
    a gpt-oss config (hidden 256, 8 experts, top-2): six ``intermediate``-wide tensors per routed
    token at the gating's last multiply plus the 2 x intermediate gathered bias and gate/up output."""
    extra = (2 if ffn.gated else 1) * inter if ffn.expert_bias else 0
    return extra + (3 * inter if ffn.clamped_swiglu else 0)


def _ffn_inference_bytes(arch: Architecture, ffn: FFN, c: int, H: int, default_inter: int) -> float:
    if ffn.kind == "none":
        return 0.0
    inter = ffn.intermediate or default_inter
    if ffn.kind != "moe":
        # MLP: residual + input + act(gate) + up + product alive at the multiply (gated; a fused gate_up_proj's
        # output stays whole beside them, exact-mode trace of glm at 4 x 2048 tokens); the activation's own
        # temporaries otherwise.
        fused = 1 if ffn.gated and fused_gate_up(arch) else 0
        mlp = (3 + fused if ffn.gated else max(2, _ACT_ALIVE.get(arch.hidden_act, 2))) * c * inter
        if arch.ffn_sub_norm_alive:
            # The sub-norm's fp32 copy of the product and its square (``x.to(float32)``, ``x.pow(2)``) beside what
            # the MLP still binds (modeling_bitnet.py BitNetMLP.forward, modeling_dory.py DoryMLP.forward).
            # Exact-mode traces at 4 x 2048 tokens, sdpa: both prefills peak inside ffn_sub_norm.
            mlp = max(mlp, (arch.ffn_sub_norm_alive * c + 8) * inter)
        return 2 * c * H + mlp
    if ffn.looped_experts:
        # One expert at a time (FFN.looped_experts): the zeros output buffer of every token, the previous
        # expert's weighted output (still bound while the next expert runs) and, for the expert running, its
        # gathered tokens, their gathered copy's twin, up, act(gate) and the product, beside the residual and the
        # normed input. Its share of the tokens is top_k / experts when the routing is even (exact-mode trace of
        # dbrx at 4 x 2048 tokens, 4 experts, top-1: 2,479 of the 8,192 tokens on the busiest expert, random
        # weights).
        share = ffn.top_k / max(1, ffn.experts)
        return 2 * c * H + c * H + share * (3 * c * H + (3 if ffn.gated else 2) * c * inter)
    # grouped_mm experts (integrations/moe.py grouped_mm_experts_forward), per routed token: at the
    # gating, the gathered input stays alive with the fused gate/up output, act(gate) and the product;
    # at the end, the gathered input, the down projection's output, the output weighted by the routing
    # weights (in their dtype) and its copy restored to token order (``weighted_out[inv_perm]``).
    # Exact-mode trace of a deepseek_v3 config (hidden 256, expert width 128, top-2, fp32 routing): the
    # prefill peaks at that reorder.
    gating = c * (H + (4 if ffn.gated else 2) * inter + _expert_extra_alive(ffn, inter))
    weighted = 4 if ffn.fp32_routing else c
    reorder = 2 * c * H + 2 * weighted * H
    mlp = 2 * c * H + ffn.routed_copies * max(gating, reorder)
    if ffn.shared:
        mlp = max(mlp, 2 * c * H + 3 * c * ffn.shared) + c * H
    return mlp
