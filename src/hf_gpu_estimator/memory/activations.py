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

from dataclasses import dataclass

from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.spec import Architecture
from hf_gpu_estimator.workload import Workload

#: Log-sum-exp kept by flash / memory-efficient attention for backward: fp32 per head per query.
LSE_BYTES = 4


@dataclass(frozen=True, kw_only=True)
class LayerActivations:
    """Per-token bytes of one decoder layer during training."""

    saved: float  # kept from forward until this layer's backward
    training_cache: float  # DynamicCache copies of k/v (training without checkpointing)
    forward_transient: float  # extra bytes alive at the layer's forward peak, beyond ``saved``
    backward_transient: float  # gradient buffers alive while the layer's backward runs
    checkpoint: float  # what non-reentrant checkpointing keeps per layer (the layer input)


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


def dims(arch: Architecture) -> Dims:
    names = {lin.name for lin in arch.linears}
    attn_inputs = 1 if names & {"qkv_proj", "c_attn", "query_key_value", "Wqkv"} else 3
    if arch.is_mla:
        attn_inputs = 2  # q_a_proj (or q_proj) and kv_a_proj_with_mqa
    mlp_inputs = 2 if arch.gated_mlp and "gate_up_proj" not in names else 1
    qk = arch.head_dim
    if arch.is_mla:
        qk = int(arch.qk_nope_head_dim or 0) + int(arch.qk_rope_head_dim or 0)
    return Dims(
        hidden=arch.hidden_size, intermediate=arch.intermediate_size, heads=arch.num_attention_heads,
        kv_heads=arch.num_key_value_heads, head_dim=arch.head_dim, v_head_dim=arch.v_head_dim or arch.head_dim,
        vocab=arch.vocab_size, mlp_inputs=mlp_inputs, attn_inputs=attn_inputs, gated=arch.gated_mlp,
        qk_head_dim=qk,
    )  # fmt: skip


def effective_attention(arch: Architecture, workload: Workload) -> str:
    """The attention implementation transformers really runs.

    Models with attention-logit softcapping (gemma2) do not support SDPA (``_supports_sdpa = False``):
    transformers falls back to eager. flash_attention_2 keeps the same saved tensors as SDPA's flash
    backend.
    """
    if arch.attn_logit_softcapping and workload.attn_implementation == "sdpa":
        return "eager"
    return workload.attn_implementation


def norm_bytes(hidden: int, input_bytes: int, *, rms: bool) -> float:
    """Saved by one norm: fp32 copy of the input and the normalized tensor (RMSNorm); LayerNorm
    (native_layer_norm) saves its input and fp32 mean/rstd per token."""
    if rms:
        return 4 * hidden + input_bytes * hidden + 4
    return input_bytes * hidden + 8


def _saves_input(name_group: tuple[str, ...], workload: Workload) -> bool:
    """Does a linear layer save its input? Only when its weight takes a gradient: every linear in full
    training; under LoRA, the targeted ones (lora_A reads the input), since ``y = x W^T`` with a frozen
    ``W`` needs only ``W`` for the input gradient. bitsandbytes' MatMul4Bit likewise keeps only the
    packed weight."""
    if workload.method == "full":
        return True
    targets = set(workload.lora_targets)
    return "all-linear" in targets or bool(targets & set(name_group))


_ATTN_IN = ("q_proj", "k_proj", "v_proj", "qkv_proj", "c_attn", "query_key_value", "Wqkv", "q_a_proj",
            "kv_a_proj_with_mqa", "query", "key", "value")
_ATTN_OUT = ("o_proj", "c_proj", "dense", "out_proj", "o")
_MLP_IN = ("gate_proj", "up_proj", "gate_up_proj", "c_fc", "dense_h_to_4h", "fc1", "w1", "w3", "wi", "wi_0", "wi_1")
_MLP_OUT = ("down_proj", "c_proj", "dense_4h_to_h", "fc2", "w2", "wo")


def decoder_layer_activations(arch: Architecture, workload: Workload, *, seq_len: int) -> LayerActivations:
    """Per-token activation bytes of one decoder layer in training (see module docstring)."""
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
    H, I, a, k, vd, qk = d.hidden, d.intermediate, d.heads, d.kv_heads, d.v_head_dim, d.qk_head_dim
    attn_in = _saves_input(_ATTN_IN, workload)
    attn_out = _saves_input(_ATTN_OUT, workload)
    mlp_in = _saves_input(_MLP_IN, workload)
    mlp_out = _saves_input(_MLP_OUT, workload)

    def norm(readers_save: bool, readers: int) -> float:
        # fp32 input copy (pow/mul) + rsqrt; the normalized cast is saved by ``weight *`` only when
        # the norm weight trains; the output is saved once by its readers (or once per reader
        # under autocast, each casting separately).
        out = 0.0
        if rms:
            out += 4 * H + 4 + (r * H if full else 0)
        else:
            out += r * H + 8
        if readers_save:
            out += readers * c * H if (mixed and r == 4) else c * H
        return out

    saved = 0.0
    if arch.parallel_attention:
        saved += norm(attn_in or mlp_in, (d.attn_inputs if attn_in else 0) + (d.mlp_inputs if mlp_in else 0))
    else:
        saved += norm(attn_in, d.attn_inputs) + norm(mlp_in, d.mlp_inputs)

    attn = effective_attention(arch, workload)
    repeat = a != k
    if attn == "eager":
        mask_bytes = 4 if r == 4 else c
        saved += c * a * qk  # q (cast to the compute dtype under autocast)
        saved += c * (a if repeat else k) * qk  # k, repeated to every head for GQA
        saved += c * (a if repeat else k) * vd  # v
        saved += (4 + c) * a * seq_len  # fp32 softmax (saved by softmax) + its cast (saved by matmul)
        saved += c * a * vd  # transposed, contiguous output, read by o_proj
        forward_transient = mask_bytes * a * seq_len + mask_bytes * seq_len  # masked scores; the 4-D mask
    else:
        saved += c * a * qk + c * k * qk + c * k * vd + c * a * vd + LSE_BYTES * a
        forward_transient = qe * a * qk + 2 * c * H  # fp32 q before SDPA's cast; projection outputs
    del attn_out  # o_proj reads the attention output, which attention already saves
    training_cache = 0.0
    if not workload.gradient_checkpointing:
        training_cache = qe * k * qk + c * k * vd
        if arch.is_mla:
            training_cache = c * (int(arch.kv_lora_rank or 0) + int(arch.qk_rope_head_dim or 0))

    # MLP: act saves its input, the product saves both factors, down saves the product when it trains.
    inter = I
    copies = 1
    if arch.is_moe:
        inter = arch.moe_intermediate_size or I
        copies = arch.num_experts_per_tok
    per_mlp = (3 if d.gated else 1) * c * inter + (c * inter if mlp_out else 0)
    mlp = per_mlp * copies
    if arch.is_moe:
        mlp += c * H * copies  # token copies gathered per expert
        if arch.num_shared_experts or arch.shared_expert_intermediate_size:
            shared_inter = arch.shared_expert_intermediate_size or inter * max(1, arch.num_shared_experts)
            mlp += (3 if d.gated else 1) * c * shared_inter + (c * shared_inter if mlp_out else 0)
        mlp += 4 * arch.num_experts  # router logits in fp32 (softmax saved)
    saved += mlp
    backward_transient = 3 * c * inter * copies + 2 * r * H
    return LayerActivations(
        saved=saved, training_cache=training_cache, forward_transient=forward_transient,
        backward_transient=backward_transient, checkpoint=r * H,
    )  # fmt: skip


def loss_bytes(arch: Architecture, workload: Workload) -> tuple[float, float, float]:
    """Per-token bytes of the output head and loss: (saved after forward, peak during the loss,
    peak at the start of backward).

    ``logits = lm_head(h)`` in the compute dtype, ``.float()`` copy (none when already fp32),
    ``log_softmax`` saves its fp32 output. The model output keeps the 16-bit logits alive until the
    training step drops it. Backward: nll's fp32 gradient plus log_softmax's fp32 input gradient
    next to the saved output.
    """
    precision = workload.precision
    c = BYTES[precision.compute_dtype]
    V = arch.vocab_size
    upcast = 0 if c == 4 else 4
    softcap = 2 * c if arch.final_logit_softcapping else 0  # tanh saves its output; divided logits
    saved = 4 * V + softcap
    during = c * V + upcast * V + 4 * V + softcap
    backward = 4 * V + 4 * V + 4 * V
    return saved, during, backward


def inference_layer_transient(arch: Architecture, *, compute_bytes: int, attn: str, seq_len: int,
                              query_len: int) -> float:
    """Peak per-token bytes alive inside one decoder layer under ``torch.no_grad`` (prefill or decode),
    excluding the KV cache. ``seq_len`` is the key length (for eager's score matrix)."""
    d = dims(arch)
    c = compute_bytes
    H = d.hidden
    inter = arch.moe_intermediate_size * arch.num_experts_per_tok if arch.is_moe else d.intermediate
    if arch.is_moe and (arch.shared_expert_intermediate_size or arch.num_shared_experts):
        inter = max(inter, arch.shared_expert_intermediate_size or arch.moe_intermediate_size)
    # MLP: residual + input + act(gate) + up + product alive at the multiply.
    mlp = 2 * c * H + (3 if d.gated else 2) * c * inter
    # RMSNorm: input + fp32 copy + fp32 normalized.
    norm = c * H + 8 * H
    attn_bytes = 2 * c * H + c * (d.heads * d.qk_head_dim * 2 + d.kv_heads * (d.qk_head_dim + d.v_head_dim) * 2)
    if attn == "eager":
        # scores (scaled, masked), fp32 softmax and its cast: per query position, over seq_len keys.
        attn_bytes += (2 * c + 4) * d.heads * seq_len + c * seq_len
    return max(mlp, norm, attn_bytes)
