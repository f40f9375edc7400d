"""What a fine-tuning recipe adds to the model's own tensors: 4-bit layers that keep their input, LoRA
dropout, a LoRA adapter on the output head, the k-bit recipe's fp32 casts, the loss implementation,
optimizer-in-backward and activation offloading. Pure arithmetic; sizes are bytes per token unless the
name says otherwise. Each term is kept apart from memory/activations.py (which follows transformers'
own forward) so a framework profile (frameworks.py) switches it on or off.
"""

from __future__ import annotations

from dataclasses import dataclass

from hf_gpu_estimator.frameworks import LITGPT_HEAD_CHUNK_TOKENS, TORCHTUNE_OUTPUT_CHUNKS, framework_profile
from hf_gpu_estimator.memory.activations import (
    LayerActivations,
    _group_of,
    effective_attention,
    layers_holding,
    loss_bytes,
    sdpa_gets_mask,
)
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.spec import ATTENTION_KINDS, Architecture, LinearShape
from hf_gpu_estimator.workload import Workload


def _targeted(arch: Architecture, workload: Workload, linear: LinearShape) -> bool:
    from hf_gpu_estimator.memory.weights import lora_module_targets

    targets = lora_module_targets(arch, workload)
    return "all-linear" in targets or linear.name in targets


def _per_layer(arch: Architecture, linear: LinearShape) -> float:
    """Mean number of ``linear`` per decoder layer (hybrids hold attention linears in some layers only)."""
    return layers_holding(arch, linear) / max(1, arch.num_layers)


@dataclass(frozen=True, kw_only=True)
class RecipeLayer:
    """Per-token bytes one decoder layer saves beyond memory/activations.py, by cause."""

    dropout: float = 0.0
    quantized_inputs: float = 0.0
    kbit_casts: float = 0.0
    own_model: float = 0.0  # the framework's own decoder (own_model_layer_saved); may be negative

    @property
    def total(self) -> float:
        return self.dropout + self.quantized_inputs + self.kbit_casts + self.own_model


def recipe_layer_saved(arch: Architecture, workload: Workload) -> RecipeLayer:
    """Extra bytes per token per decoder layer saved for backward by the recipe (LoRA / QLoRA only).

    * LoRA dropout p > 0 (peft ``LoraLayer``: ``lora_B(lora_A(dropout(x)))``, one ``nn.Dropout`` per
      adapted module): dropout saves a bool mask per element; without autocast ``lora_A`` saves the dropped
      copy instead of ``x``; under autocast it saves its own 16-bit cast either way (already counted).
    * A 4-bit base whose matmul keeps its input (bitsandbytes < 0.43.2 ``MatMul4Bit``: ``ctx.tensors =
      (A, B)``) keeps each distinct layer input alive: one per stream the block's linears read, unless a
      LoRA adapter already saves that very tensor.
    * The k-bit recipe's fp32 casts (peft ``prepare_model_for_kbit_training``) make the norms' weights fp32,
      so each normalized tensor saved by ``weight * x`` is fp32, and the checkpointed layer input is fp32.
    """
    own = own_model_layer_saved(arch, workload)
    if workload.method == "full":
        return RecipeLayer(own_model=own)
    c = BYTES[workload.precision.compute_dtype]
    mixed = workload.precision.mixed
    linears = [lin for lin in arch.linears if lin.count == 1]
    dropout = 0.0
    # Streams (attn_in, attn_out, mlp_in, mlp_out) and the width of the tensor each reads.
    streams: dict[str, int] = {}
    lora_keeps_x: dict[str, bool] = {}
    for lin in linears:
        group = _group_of(lin) or lin.name
        share = _per_layer(arch, lin)
        streams[group] = max(streams.get(group, 0), lin.in_features)
        if not _targeted(arch, workload, lin):
            continue
        if workload.lora_dropout > 0:
            dropout += share * lin.in_features * (1 if mixed else c + 1)
        # Without autocast and without dropout, lora_A saves x itself (memory/activations.py counts it once).
        lora_keeps_x[group] = lora_keeps_x.get(group, False) or (not mixed and workload.lora_dropout == 0)
    if workload.lora_dropout > 0 and not mixed:
        # lora_A saves the dropped copies, counted above, not the x activations.py counted once per stream.
        dropout -= sum(c * streams[g] * _stream_share(arch, linears, g) for g in
                       {(_group_of(lin) or lin.name) for lin in linears if _targeted(arch, workload, lin)})
    quantized = 0.0
    if workload.method == "qlora" and workload.quantized_saves_input:
        quantized = sum(c * width * _stream_share(arch, linears, g) for g, width in streams.items()
                        if not lora_keeps_x.get(g, False))
    casts = 0.0
    if workload.method == "qlora" and workload.kbit_fp32_casts and c < 4:
        # fp32 norm weights: the saved normalized tensors are fp32, and the residual stream (fp32 embeddings)
        # that checkpointing keeps per layer is fp32.
        casts = (4 - c) * arch.hidden_size * (1 if workload.gradient_checkpointing else arch.norms_per_layer)
    return RecipeLayer(dropout=dropout, quantized_inputs=quantized, kbit_casts=casts, own_model=own)


_SEPARATE_QKV = ("q_proj", "k_proj", "v_proj")


def own_model_layer_saved(arch: Architecture, workload: Workload) -> float:
    """Per-token bytes one decoder layer of LitGPT's own model saves beyond the transformers forward that
    memory/activations.py follows (profile ``fused_qkv_model``); negative where it saves less. Itemized
    from the tensors autograd saves in one block of litgpt/model.py + litgpt/lora.py at 43c44323 (and
    lit_gpt at 8641822), traced on fake tensors at bf16:

    * ``CausalSelfAttention.forward`` splits one fused qkv output. Multi-head (``n_query_groups ==
      n_head``): ``v`` is a reshape *view* of that output, so SDPA's saved ``v`` keeps the q and k parts
      alive too (2 x heads x head_dim). Grouped/multi-query: ``k`` and ``v`` are ``expand``-ed to every
      query head and copied by ``reshape``, and SDPA saves the copies, where transformers passes the
      kv heads (``enable_gqa``): 2 x (heads - kv heads) x head_dim more, in the layers transformers
      gives no mask (with one it repeats k and v too).
    * ``LoRAQKVLinear`` (LoRA on the fused qkv): one ``lora_dropout`` over the shared input where peft
      drops it once per adapted q/k/v projection (recipe_layer_saved counts one per projection); when
      only some of q/k/v are adapted, ``zero_pad``'s ``index_copy`` saves its source, the adapted
      projections' deltas (derivatives.yaml ``index_copy``: ``grad.index_select(dim,
      index).expand_as(source)``).
    * The attention output is reshaped to a new tensor before ``proj``; with dropout on a LoRA ``proj``
      its dropped copy is saved besides SDPA's output (recipe_layer_saved takes the stream as already
      counted).
    * ``LLaMAMLP`` keeps ``fc_1`` and ``fc_2`` apart where a checkpoint fuses them (Phi-3
      ``gate_up_proj``): a second LoRA dropout on the MLP input.

    The rank-r LoRA intermediates (``lora_B``'s saved input, r per adapted linear) are left out, as
    for peft.
    """
    if not framework_profile(workload.framework).fused_qkv_model or arch.is_mla or not arch.num_attention_heads:
        return 0.0
    if effective_attention(arch, workload) == "eager":
        return 0.0  # LitGPT's eager path (softcapping, sliding windows) is not itemized
    c = BYTES[workload.precision.compute_dtype]
    mixed = workload.precision.mixed
    H = arch.hidden_size
    a, g, hs = arch.num_attention_heads, arch.num_key_value_heads, arch.head_dim
    share = max((_per_layer(arch, lin) for lin in arch.linears if _group_of(lin) == "attn_in"), default=1.0)
    if g == a:
        saved = 2 * c * a * hs
    else:
        # Where transformers hands SDPA a mask (a sliding window the sequence outgrows) it repeats k and v
        # to every head too, so the expanded copies are already counted there.
        attention = [(layer, n) for layer, n in arch.layer_groups
                     if any(m.kind in ATTENTION_KINDS for m in layer.mixers)]
        unmasked = sum(n for layer, n in attention
                       if not any(sdpa_gets_mask(m, workload.seq_len) for m in layer.mixers))
        saved = 2 * c * (a - g) * hs * unmasked / max(1, sum(n for _, n in attention))
    if workload.method == "full":
        return share * saved
    linears = {lin.name: lin for lin in arch.linears if lin.count == 1}
    p = workload.lora_dropout
    dropped = 1 if mixed else c + 1  # bool mask (+ the dropped copy lora_A saves without autocast)
    qkv = [linears[n] for n in _SEPARATE_QKV if n in linears and _targeted(arch, workload, linears[n])]
    if len(qkv) > 1 and p > 0:
        saved -= (len(qkv) - 1) * H * dropped
    if 0 < len(qkv) < 3 and all(n in linears for n in _SEPARATE_QKV):
        saved += c * sum(lin.out_features for lin in qkv)
    proj = [lin for lin in linears.values() if _group_of(lin) == "attn_out" and _targeted(arch, workload, lin)]
    if proj and p > 0 and not mixed:
        saved += c * a * hs
    fused_up = linears.get("gate_up_proj")
    if fused_up is not None and _targeted(arch, workload, fused_up) and p > 0:
        saved += H * dropped
    return share * saved


def previous_output_bytes(arch: Architecture, workload: Workload, quantized_inputs: float) -> float:
    """Per-token bytes the previous micro-batch leaves alive through the next forward (profile
    ``keeps_previous_output``): LitGPT's ``fit`` rebinds ``logits`` only when the next ``model(...)``
    returns, so the old logits (16-bit, every chunk) stay until the new head has run. The old graph's
    nodes live as long: bitsandbytes < 0.43.2 ``MatMul4Bit`` keeps ``ctx.tensors = (A, B)`` as a plain
    attribute, not ``save_for_backward``, so backward does not free it and each 4-bit layer's input of
    the previous step stays too (``quantized_inputs``: all decoder layers' share, plus the head's input).
    """
    if not framework_profile(workload.framework).keeps_previous_output:
        return 0.0
    c = BYTES[workload.precision.compute_dtype]
    held = c * output_width(arch, workload)
    if workload.method == "qlora" and workload.quantized_saves_input and not workload.gradient_checkpointing:
        held += quantized_inputs + (c * arch.hidden_size if workload.quantize_lm_head else 0)
    return held


def output_width(arch: Architecture, workload: Workload) -> int:
    """Values per token the model's head outputs: the vocabulary, or a classification head's labels."""
    return arch.vocab_size if workload.head == "causal-lm" else workload.num_labels


def dequantized_bytes(arch: Architecture, workload: Workload, *, head: bool) -> int:
    """Bytes of one 4-bit linear dequantized for its matmul when the 4-bit state is fp16 (profile
    ``fp16_quant_state``): bitsandbytes ``dequantize_4bit`` allocates ``QuantState.dtype`` (fp16) and
    ``MatMul4Bit`` casts it to the input's dtype (``.to(A.dtype)``), both alive during the cast. ``head``:
    the output head (4-bit under Fabric's BitsandbytesPrecision), else the largest decoder linear."""
    if workload.method != "qlora" or not framework_profile(workload.framework).fp16_quant_state:
        return 0
    if head:
        if not workload.quantize_lm_head:
            return 0
        largest = arch.vocab_size * arch.hidden_size
    else:
        largest = max((lin.in_features * lin.out_features for lin in arch.linears), default=0)
    cast = 0 if workload.precision.compute_dtype == "float16" else BYTES[workload.precision.compute_dtype]
    return largest * (2 + cast)


def own_layer_saved(arch: Architecture, workload: Workload) -> float | None:
    """Bytes per token one torchtune decoder layer saves for backward, full finetune without checkpointing; ``None``
    where the framework runs no traced layer of its own for this model.

    torchtune v0.5.0 ``TransformerSelfAttentionLayer`` from the llama3_2 builder (RMSNorm as ``F.rms_norm`` on an
    fp32 copy, RoPE from the gathered cache of packed positions, keys and values expanded to the query heads,
    SwiGLU), traced in bf16 on the CPU (benchmarks/training_runs/torchtune_layer.py, torch 2.13) at 3B's shapes
    and at two small ones (kv heads = heads and heads / 2): eager it saves 8 I + 28 H + 4 head_dim + 4 heads + 8
    bytes per token; compiled per layer (``training.compile_model``, inductor) 6 I + 16 H + 2 head_dim + 4 heads +
    8 (the norms keep their 16-bit input and a reciprocal, SiLU and the product are recomputed). torchtune's
    llama builders take head_dim = hidden / heads, so the query width is H. A single kv head expands as a view
    and saves less: not covered.
    """
    if workload.method != "full" or workload.gradient_checkpointing:
        return None
    if not framework_profile(workload.framework).own_decoder_layer:
        return None
    if (arch.is_moe or arch.is_mla or arch.parallel_attention or arch.attention_bias or not arch.gated_mlp
            or arch.hidden_act != "silu" or arch.norm != "rmsnorm" or arch.mixer_kinds != ("full",)
            or arch.num_key_value_heads < 2 or arch.num_attention_heads * arch.head_dim != arch.hidden_size):
        return None
    H, I, hd, nh = arch.hidden_size, arch.intermediate_size, arch.head_dim, arch.num_attention_heads
    if workload.torch_compile:
        return 6 * I + 16 * H + 2 * hd + 4 * nh + 8
    return 8 * I + 28 * H + 4 * hd + 4 * nh + 8


#: The LoRA targets unsloth's fast kernels need on a llama-style layer: ``FastLlamaModel.patch_peft_model``
#: (unsloth/models/llama.py at 4aa34a0afa) swaps in ``apply_lora_qkv`` only when q, k and v all carry an adapter,
#: ``apply_lora_mlp_swiglu`` only when gate, up and down do, ``apply_lora_o`` for o, each only with lora_dropout 0
#: and no bias; other layers keep peft's LoRA modules.
_UNSLOTH_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def fast_lora_layer(arch: Architecture, workload: Workload) -> LayerActivations | None:
    """Per-token bytes of one llama-style decoder layer under unsloth's own kernels (profile ``fast_lora_layer``),
    LoRA or QLoRA on the seven projections without dropout; ``None`` where unsloth keeps peft's modules or the
    architecture is not one it patches this way. From the code at unsloth 2024.12.4 (4aa34a0afa):

    * ``LlamaDecoderLayer_fast_forward``: two ``fast_rms_layernorm`` calls, ``Fast_RMS_Layernorm.forward``
      (kernels/rms_layernorm.py) saving its input ``X`` and one fp32 ``r`` per row, its output a new tensor.
    * ``LoRA_QKV.forward`` (kernels/fast_lora.py) saves only its input (the normalized tensor): Q, K, V come
      from ``matmul_lora`` under the autograd function, so the rank-r products are not saved.
      ``Fast_RoPE_Embedding`` (kernels/rope_embedding.py) rotates Q and K in place and keeps only the
      cos/sin cache.
    * ``flash_attn_func(Q, K, V, causal=True)`` saves q, k, v (kv heads, no expansion), its output and an
      fp32 log-sum-exp per head; without flash-attn (attn_implementation other than flash_attention_2)
      xformers' path ``reshape``s K and V to every query head while the input needs a gradient, and
      those copies are what it saves.
    * ``LoRA_W`` (o_proj) saves its input, the attention output already saved; the residual add a new
      tensor; ``LoRA_MLP.forward`` saves its input and the gate and up outputs ``e`` and ``g``, not their
      SwiGLU product (``swiglu_fg_kernel``'s ``h`` is recomputed in backward).

    ``saved`` is the layer's total, ``checkpoint`` its input. The backward's peak is in ``LoRA_MLP.backward``:
    beside the saved tensors, the output's gradient and ``DW = matmul_lora(dY, downW.t(), ...)``, whose
    ``out += (X @ A) @ (s * B)`` allocates a second intermediate-wide tensor before the add; the SwiGLU
    backward (``swiglu_DWf_DW_dfg_kernel``) then writes into ``DW``, ``e`` and ``g`` and ``dX`` into the saved
    input (``out = X``). The attention's backward (flash-attn: dq, dk, dv, kv grads expanded to every head for
    grouped queries, an fp32 dq accumulator) comes after the MLP's saved tensors are freed.
    """
    profile = framework_profile(workload.framework)
    if not profile.fast_lora_layer or workload.method == "full" or workload.lora_dropout > 0:
        return None
    if not set(_UNSLOTH_TARGETS) <= set(workload.lora_targets) and "all-linear" not in workload.lora_targets:
        return None
    if (arch.is_moe or arch.is_mla or arch.parallel_attention or arch.attention_bias or not arch.gated_mlp
            or arch.hidden_act != "silu" or arch.norm != "rmsnorm" or arch.mixer_kinds != ("full",)
            or not arch.num_attention_heads):
        return None
    names = {lin.name for lin in arch.linears}
    if not set(_UNSLOTH_TARGETS) <= names:
        return None
    c = BYTES[workload.precision.compute_dtype]
    H, I = arch.hidden_size, arch.intermediate_size
    a, g, hd = arch.num_attention_heads, arch.num_key_value_heads, arch.head_dim
    kv = g if workload.attn_implementation == "flash_attention_2" else a  # xformers saves K, V per query head
    norms = 2 * (c * H + 4)  # each Fast_RMS_Layernorm: its input and fp32 r
    attention = c * H + c * (2 * a * hd + 2 * kv * hd) + 4 * a  # LoRA_QKV's X; Q, out, K, V; lse
    mlp = c * H + 2 * c * I  # LoRA_MLP's X, e, g
    saved = norms + attention + mlp
    mlp_backward = c * H + 2 * c * I  # dY, DW and matmul_lora's LoRA term
    # flash-attn backward: dq, dk, dv (dk, dv at every query head for grouped queries), the fp32 dq accumulator,
    # beside LoRA_W's input gradient, once the MLP's e, g and X are gone.
    attention_backward = (c * (3 * a + (2 * g if g != a else 0)) * hd + 4 * a * hd + 4 * a + c * a * hd
                          - c * (H + 2 * I))
    return LayerActivations(saved=saved, training_cache=0.0, forward_transient=c * I + 2 * c * H,
                            backward_transient=max(mlp_backward, attention_backward), checkpoint=c * H,
                            largest=saved - c * H)


def _stream_share(arch: Architecture, linears: list[LinearShape], group: str) -> float:
    return max((_per_layer(arch, lin) for lin in linears if (_group_of(lin) or lin.name) == group), default=0.0)


def head_adapter_params(arch: Architecture, workload: Workload) -> int:
    """LoRA on the output head: ``r * (hidden + vocab)`` (peft/LitGPT target ``lm_head``)."""
    if workload.method == "full" or not workload.lora_on_lm_head:
        return 0
    return workload.lora_rank * (arch.hidden_size + arch.vocab_size)


def head_adapter_bytes(arch: Architecture, workload: Workload) -> tuple[float, float]:
    """(saved, forward transient) bytes per token of a LoRA adapter on the head: the dropout mask and
    copy (or 16-bit cast) ``lora_A`` saves, its rank-r output saved by ``lora_B``, and ``lora_B``'s
    vocabulary-wide output before it is added to the logits."""
    if workload.method == "full" or not workload.lora_on_lm_head:
        return 0.0, 0.0
    c = BYTES[workload.precision.compute_dtype]
    H = arch.hidden_size
    saved = workload.lora_rank * c
    if workload.lora_dropout > 0:
        saved += H * (1 if workload.precision.mixed else c + 1)
    elif workload.precision.mixed:
        saved += H * c
    return saved, arch.vocab_size * c


#: Per token, the fused cross-entropy's saved row max and log-sum-exp (two fp32 values), inductor's
#: ``cpp_fused__log_softmax_..._nll_loss_forward`` outputs ``amax`` and ``log`` (benchmarks/training_runs/compiled_loss.py).
COMPILED_CE_ROW_BYTES = 8


#: Cut Cross Entropy per token (cut_cross_entropy 24.12.3 cce.py ``LinearCrossEntropyFunction``, called by
#: unsloth_zoo ``fused_linear_cross_entropy`` with ``shift=True``): saved, the fp32 log-sum-exp and the int32
#: (row, column) offsets of the valid shifted targets (utils.py ``_build_flat_valids``); while the loss runs also
#: ``nonzero``'s int64 pairs and the fp32 negative dot (indexed_dot.py). Its backward adds ``de = zeros_like(e)``,
#: one hidden-wide row (cce_backward.py ``cce_backward_kernel``).
CCE_ROW_SAVED = 4 + 8
CCE_ROW_FORWARD = 16 + 4
#: unsloth's ``Fast_CrossEntropyLoss`` splits a vocabulary over MAX_FUSED_SIZE = 65536 into chunks, one fp32
#: log-sum-exp per chunk and row (unsloth/kernels/cross_entropy_loss.py at 4aa34a0afa); it saves the 16-bit
#: logits, the row log-sum-exp and the labels, and its backward writes the logits' gradient into them.
FAST_CE_MAX_FUSED = 65536


def loss_constant_bytes(arch: Architecture, workload: Workload) -> tuple[int, int]:
    """(forward, backward) bytes of the loss that do not grow with the tokens: Cut Cross Entropy's fp32 mean
    logit per vocabulary entry (``return_logit_avg`` for gradient filtering) and, in backward, ``dc =
    zeros_like(c)``, a gradient the size of the output head, allocated whether or not the head trains
    (cce_backward.py ``cce_backward_kernel``, cut_cross_entropy 24.12.3)."""
    if workload.loss != "cce" or workload.head != "causal-lm":
        return 0, 0
    c = BYTES[workload.precision.compute_dtype]
    avg = 4 * arch.vocab_size
    return avg, avg + c * arch.vocab_size * arch.hidden_size


def _chunk_tokens(workload: Workload) -> int:
    if workload.loss == "chunked":
        return min(LITGPT_HEAD_CHUNK_TOKENS, workload.seq_len)
    return max(1, workload.seq_len // TORCHTUNE_OUTPUT_CHUNKS)


def loss_terms(arch: Architecture, workload: Workload) -> tuple[float, float, float]:
    """Per-token (saved, during the loss, at the start of backward) bytes of the head and loss for
    ``workload.loss`` (frameworks.LOSS_KINDS); ``hf`` is :func:`activations.loss_bytes`.

    * ``hf-fp32-logits`` (transformers 4.3x-4.4x ``LlamaForCausalLM.forward``: ``logits = logits.float()``
      returned in the output, ``shift_logits = logits[..., :-1, :].contiguous()``): the fp32 logits, their
      shifted copy and the fp32 log_softmax together; the fp32 logits stay alive through backward.
    * ``hf-shifted-copy`` (transformers 4.46-4.48 ``loss_utils.ForCausalLMLoss``: ``logits.float()`` then
      ``logits[..., :-1, :].contiguous()``): ``hf`` plus the fp32 shifted copy while the loss runs.
    * ``chunked`` (LitGPT ``lm_head_chunk_size=128`` + ``chunked_cross_entropy``): every 16-bit chunk kept
      in a list and each chunk's 16-bit log_softmax saved; no fp32 copy.
    * ``chunked-fp32`` (torchtune ``CEWithChunkedOutputLoss``): 16-bit chunks kept, each upcast to fp32 in
      turn, its fp32 log_softmax saved.
    * ``cce`` (unsloth_zoo ``fused_linear_cross_entropy`` -> Cut Cross Entropy): no logits at all; a few bytes a
      row (``CCE_ROW_SAVED``) and, in backward, the head input's gradient (``loss_constant_bytes``: the rest).
    * ``fast-ce`` (unsloth ``fast_cross_entropy_loss``): the 16-bit logits saved once, the gradient written into
      them; under autocast accelerate's fp32 copy of the returned logits while the forward ends.
    """
    c = BYTES[workload.precision.compute_dtype]
    if workload.head == "causal-lm" and workload.loss == "cce":
        return CCE_ROW_SAVED, CCE_ROW_SAVED + CCE_ROW_FORWARD, CCE_ROW_SAVED + c * arch.hidden_size
    if workload.head == "causal-lm" and workload.loss == "fast-ce":
        V = arch.vocab_size
        chunks = -(-V // FAST_CE_MAX_FUSED)
        # accelerate's convert_outputs_to_fp32 (Accelerator.prepare_model under fp16/bf16 autocast) upcasts the
        # logits CausalLM_fast_forward returns while the 16-bit ones are alive; the copy goes with the outputs.
        upcast = 4 * V if workload.precision.mixed else 0
        return c * V + 4, c * V + 4 + 4 + 4 * chunks + upcast, c * V + 4
    if workload.head == "classification":
        # transformers 5 GenericForSequenceClassification: ``score`` gives [batch, seq, num_labels] logits in the
        # compute dtype, of which one row per sequence is pooled; ForSequenceClassificationLoss runs on the
        # pooled rows only. Backward: the gather's gradient, zeros of the logits' shape.
        L = workload.num_labels
        return 0.0, c * L, c * L
    V = arch.vocab_size
    compiled = workload.torch_compile and framework_profile(workload.framework).compiles_loss
    if workload.loss == "hf":
        if compiled and workload.method != "full" and workload.parallelism.num_gpus == 1:
            # torchtune compile=True, loss torch.nn.CrossEntropyLoss: only lora_finetune_single_device keeps the
            # compiled loss (``self._loss_fn = training.compile_loss(...)``); the full-finetune and every distributed
            # recipe drop compile_loss's return value, so a whole loss stays eager there (recipes/*.py at v0.5.0;
            # more than one GPU is taken as lora_finetune_distributed). The eager head
            # upcasts (16-bit output and its fp32 copy together), the compiled loss saves its fp32 input and
            # allocates only the fp32 gradient in backward (benchmarks/training_runs/compiled_loss.py).
            head16 = c * V if c < 4 else 0
            return (4 * V + COMPILED_CE_ROW_BYTES, head16 + 4 * V + COMPILED_CE_ROW_BYTES,
                    8 * V + COMPILED_CE_ROW_BYTES)
        return loss_bytes(arch, workload)
    if workload.loss in ("hf-fp32-logits", "hf-shifted-copy") and not arch.loss_upcast:
        # Both kinds describe the upcasting loss of LlamaForCausalLM / ForCausalLMLoss at those releases; a class
        # recorded without the upcast calls nn.CrossEntropyLoss() on its 16-bit head output itself, without a
        # shifted copy (modeling_bart.py BartForCausalLM.forward, transformers 4.46.0 and 5.25).
        return loss_bytes(arch, workload)
    if workload.loss == "hf-fp32-logits":
        return 8 * V, 12 * V, 16 * V
    if workload.loss == "hf-shifted-copy":
        saved, during, backward = loss_bytes(arch, workload)
        return saved, during + 4 * V, backward
    share = _chunk_tokens(workload) / max(1, workload.seq_len)
    if workload.loss == "chunked":
        return 2 * c * V, 2 * c * V, 2 * c * V + 2 * c * V * share
    if compiled:
        # torchtune compiles ``compute_cross_entropy`` (one chunk's ``.float()`` + cross_entropy): the fused
        # forward reads the 16-bit chunk, saves it with a max and a log-sum-exp per token and allocates nothing
        # vocabulary-wide; its backward allocates only the chunk's 16-bit gradient and frees the chunk
        # (benchmarks/training_runs/compiled_loss.py).
        row = COMPILED_CE_ROW_BYTES
        return c * V + row, c * V + row, c * V * (1 + share) + row
    up = 0 if c == 4 else 4  # the chunk's fp32 copy
    return c * V + 4 * V, c * V + 4 * V + up * V * share, c * V + 4 * V + 2 * 4 * V * share
