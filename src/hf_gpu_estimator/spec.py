"""ModelSpec: what is in a model, derived without loading weights."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: Bytes per element of the dtypes that safetensors headers use.
DTYPE_BYTES: Mapping[str, float] = {
    "F64": 8, "I64": 8, "U64": 8,
    "F32": 4, "I32": 4, "U32": 4,
    "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1,
    "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75,
}  # fmt: skip

#: torch-style dtype names <-> safetensors names.
TORCH_TO_SAFETENSORS: Mapping[str, str] = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "int8": "I8", "uint8": "U8",
    "int32": "I32", "int64": "I64", "int16": "I16", "bool": "BOOL",
}  # fmt: skip

Provenance = Literal["header", "config", "catalog", "module", "default"]
Role = Literal["embedding", "attention", "mlp", "experts", "router", "norm", "lm_head", "other"]
ROLES: tuple[Role, ...] = ("embedding", "attention", "mlp", "experts", "router", "norm", "lm_head", "other")

#: Inputs other than text that some parameters are reached by only (:attr:`ParameterCounts.off_text_path`):
#: a vision tower with its projector; an audio tower with its projector; cross-attention over states a
#: text-only step does not have (an encoder the checkpoint does not hold, or the image features of
#: mllama's cross-attention layers).
OffTextInput = Literal["vision", "audio", "cross_attention"]
OFF_TEXT_INPUTS: tuple[OffTextInput, ...] = ("vision", "audio", "cross_attention")


@dataclass(frozen=True, kw_only=True)
class TensorInfo:
    """One tensor as a safetensors header describes it."""

    name: str
    dtype: str  # safetensors name, e.g. "BF16"
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return int(self.numel * DTYPE_BYTES[self.dtype])


@dataclass(frozen=True, kw_only=True)
class QuantizationConfig:
    """A checkpoint's (or a requested) quantization, parsed.

    ``method`` is one of ``bitsandbytes``, ``gptq``, ``awq``, ``fp8``, ``gguf``, ``compressed-tensors``,
    ``none``; ``bits`` the stored bits per weight of the quantized linear layers (before scales).
    """

    method: str
    bits: float
    group_size: int | None = None
    quant_type: str | None = None  # nf4, fp4, int8, Q4_K_M, e4m3 ...
    double_quant: bool = False
    compute_dtype: str | None = None
    modules_not_converted: tuple[str, ...] = ()
    #: From the safetensors headers, when they were read: the logical parameters held in quantized
    #: storage, and the bytes of that storage (packed or 8-bit weights, scales, zero points, state).
    quantized_parameters: int | None = None
    quantized_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class ParameterCounts:
    """Exact parameter counts, as ``sum(p.numel() for p in model.parameters())`` gives them.

    ``by_role`` splits ``total`` into :data:`ROLES`; the values add up to ``total``. ``active``
    is what one token uses (MoE: routed experts per token plus shared), equal to ``total``
    for dense models.
    """

    total: int
    by_role: Mapping[str, int]
    active: int
    #: Parameters a text-only step never reaches, by the input that reaches them (:data:`OFF_TEXT_INPUTS`):
    #: their modules do not run, so a training step gives them no gradient and AdamW no state.
    off_text_path: Mapping[str, int] = field(default_factory=dict)
    #: Parameters ``from_pretrained`` keeps in float32 when asked for a 16-bit dtype, by that dtype
    #: (``"bfloat16"``/``"float16"``; the model's ``_keep_in_fp32_modules(_strict)``): known from tensor names.
    kept_fp32: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if sum(self.by_role.values()) != self.total:
            raise ValueError(f"by_role sums to {sum(self.by_role.values())}, total is {self.total}")
        unknown = set(self.off_text_path) - set(OFF_TEXT_INPUTS)
        if unknown or any(n < 0 for n in self.off_text_path.values()) or sum(self.off_text_path.values()) > self.total:
            raise ValueError(f"off_text_path {dict(self.off_text_path)} must name inputs among {OFF_TEXT_INPUTS} "
                             f"and hold at most the {self.total} parameters")
        if any(n < 0 or n > self.total for n in self.kept_fp32.values()):
            raise ValueError(f"kept_fp32 {dict(self.kept_fp32)} must hold at most the {self.total} parameters")

    @property
    def embedding(self) -> int:
        return self.by_role.get("embedding", 0)

    @property
    def lm_head(self) -> int:
        return self.by_role.get("lm_head", 0)


@dataclass(frozen=True, kw_only=True)
class LinearShape:
    """A linear layer inside one decoder block, with the module name peft would target."""

    name: str  # leaf name: q_proj, k_proj, gate_proj, c_attn, query_key_value, ...
    in_features: int
    out_features: int
    count: int = 1  # how many of these in one block (MoE experts: num_experts)
    bias: bool = False
    #: Which stream it reads or writes, where the name alone does not say (GPT-2 has a ``c_proj`` in
    #: attention and in the MLP): "attn_in", "attn_out", "mlp_in", "mlp_out", or "state" for the
    #: projections of a recurrent mixer (Mamba's ``out_proj``); empty: known by name.
    group: Literal["", "attn_in", "attn_out", "mlp_in", "mlp_out", "state"] = ""


MixerKind = Literal["full", "sliding", "chunked", "mla", "linear", "ssm", "conv", "wkv", "cross", "none"]
#: Mixer kinds that keep a cache growing with the sequence (keys/values or a latent per token).
ATTENTION_KINDS: frozenset[str] = frozenset({"full", "sliding", "chunked", "mla", "cross"})
#: Mixer kinds that keep a fixed-size recurrent state per sequence instead.
STATE_KINDS: frozenset[str] = frozenset({"linear", "ssm", "conv", "wkv"})


@dataclass(frozen=True, kw_only=True)
class Mixer:
    """The token mixer of one layer, with what its cache or state holds.

    * ``full``: causal attention over every previous token. ``sliding``: over the last ``window``
      tokens. ``chunked``: within fixed ``chunk``-token blocks (llama4). Any of them may carry
      ``sinks`` (a learned per-head logit added to the softmax, gpt-oss): no cache of its own.
    * ``mla``: multi-head latent attention, caching ``kv_lora_rank + rope_dim`` per token.
    * ``linear``: linear attention (gated DeltaNet, ...): a recurrent state of ``state_elements``
      per sequence plus a convolution state of ``conv_elements``, independent of the length.
    * ``ssm``: a state-space block (Mamba/Mamba2): same two states.
    * ``conv``: a gated short convolution (LFM2): a convolution state only (``state_elements`` 0).
    * ``wkv``: RWKV-4's time mix, a per-channel recurrence over ``inner`` channels run token by token:
      ``state_elements`` holds its numerator, denominator and running maximum (3 x ``inner``), and
      ``conv_elements`` the token-shift states (the last token's input to the time mix and to the
      channel mix, ``conv_kernel`` 1).
    * ``cross``: attention over an encoder's (or an image's) tokens: its cache holds the
      ``source_tokens`` it attends, whatever the text length; with none (a text-only workload) the
      layer does no work and keeps nothing (transformers' MllamaTextModel skips a cross-attention
      layer that has no cross-attention states and nothing cached).
    * ``none``: no token mixer (a feed-forward-only block: Nemotron-H's MLP and MoE blocks).

    ``kv_shared``: an attention layer that reads the keys and values of an earlier layer of its kind
    and keeps no cache of its own (gemma3n's last ``num_kv_shared_layers``).

    For attention kinds, ``heads``/``kv_heads``/``head_dim``/``v_head_dim`` are the attention
    shapes; for ``linear``/``ssm`` they describe the projections (heads and head width) and
    ``inner`` is the width of the mixer's inner stream (e.g. Mamba's ``expand * hidden``) and
    ``conv_elements`` is ``channels x conv_kernel``.
    """

    kind: MixerKind
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    v_head_dim: int = 0  # 0: same as head_dim
    window: int | None = None
    chunk: int | None = None
    sinks: bool = False
    kv_lora_rank: int = 0
    rope_dim: int = 0
    state_elements: int = 0
    conv_elements: int = 0
    conv_kernel: int = 0
    inner: int = 0
    kv_shared: bool = False
    source_tokens: int = 0  # cross: tokens of the source it attends (per sequence)
    #: q and k pass through a weightless per-head L2 norm computed in fp32 (llama4's Llama4TextL2Norm on
    #: its RoPE layers): what it saves is not a model-wide ``Architecture.qk_norm``.
    l2_qk_norm: bool = False
    #: BigBird's block-sparse attention (modeling_big_bird.py ``BigBirdBlockSparseAttention``): blocks of
    #: ``block_size`` tokens attend to two global blocks, three sliding ones and ``random_blocks`` random ones;
    #: 0 for dense attention. See :meth:`block_sparse_at`.
    block_size: int = 0
    random_blocks: int = 0

    def block_sparse_at(self, tokens: int) -> bool:
        """Whether the attention runs block-sparse over ``tokens`` tokens: BigBirdModel.forward switches to full
        attention up to ``(5 + 2 x random_blocks) x block_size`` tokens."""
        return bool(self.block_size) and tokens > (5 + 2 * self.random_blocks) * self.block_size
    #: ``linear``: the chunked scan transformers' torch path runs. ``gated_delta``: gated DeltaNet's
    #: (modeling_qwen3_next.py ``torch_chunk_gated_delta_rule``: one decay per head and token); ``kda``: Kimi
    #: delta attention's (modeling_kimi_linear.py ``chunk_kimi_delta_attention``, bailing_hybrid's copy: a decay
    #: per key channel, so its pairwise decay is ``chunk x chunk x head_dim`` per head and chunk).
    scan: Literal["gated_delta", "kda"] = "gated_delta"

    @property
    def value_dim(self) -> int:
        return self.v_head_dim or self.head_dim

    @property
    def has_cache(self) -> bool:
        return self.kind in ATTENTION_KINDS

    def cache_elements_per_token(self) -> int:
        """Elements one token adds to this layer's cache (0 for recurrent kinds)."""
        if self.kind == "mla":
            return self.kv_lora_rank + self.rope_dim
        if not self.has_cache or self.kv_shared:
            return 0
        return self.kv_heads * (self.head_dim + self.value_dim)

    def cached_tokens(self, tokens: int) -> int:
        """Tokens this layer's cache holds after ``tokens`` tokens (transformers' caches: a sliding
        layer keeps ``window - 1``, DynamicSlidingWindowLayer; a chunked layer keeps its window the
        same way, cache_utils.ChunkedSlidingLayer)."""
        if not self.has_cache or self.kv_shared:
            return 0
        if self.kind == "cross":
            return self.source_tokens
        if self.kind == "sliding" and self.window:
            return min(tokens, self.window - 1)
        if self.kind == "chunked" and self.chunk:
            return min(tokens, self.chunk - 1)
        return tokens


@dataclass(frozen=True, kw_only=True)
class FFN:
    """The feed-forward part of one layer: ``dense`` (``gated``: SwiGLU/GeGLU, three matrices),
    ``moe`` (``experts`` routed experts of width ``intermediate``, ``top_k`` per token, plus shared
    experts of total width ``shared``), or ``none`` (a mixer-only layer: Mamba, Jamba's SSM blocks)."""

    kind: Literal["dense", "moe", "none"]
    intermediate: int = 0
    gated: bool = True
    experts: int = 0
    top_k: int = 0
    shared: int = 0
    #: Every expert processes every token, weighted by its router score (llama4's Llama4TextMoe repeats
    #: the input for each expert and runs one batched matmul): activations scale with ``experts``.
    dense_experts: bool = False
    #: The routed experts carry biases, which transformers' grouped_mm path gathers per routed token
    #: (integrations/moe.py ``gate_up_proj_bias[expert_ids_g]``): a ``2 x intermediate`` (gated) copy
    #: per routed token, alive until the experts return.
    expert_bias: bool = False
    #: The experts' gating is gpt-oss's clamped SwiGLU (modeling_gpt_oss.py ``GptOssExperts._apply_gate``):
    #: ``gate.clamp``, ``up.clamp``, ``gate * sigmoid(gate * alpha)``, ``(up + 1) * glu``, each a new
    #: ``intermediate``-wide tensor, where a plain GLU makes ``act(gate)`` and the product.
    clamped_swiglu: bool = False
    #: The router computes in float32 (deepseek_v2/v3's TopkRouter casts its input and weight to fp32 and
    #: never casts back): in training F.linear saves the fp32 copy of the input, and transformers'
    #: grouped_mm path multiplies the 16-bit expert outputs by fp32 routing weights
    #: (integrations/moe.py ``proj_out * sample_weights_g``), so the weighted outputs are float32.
    fp32_routing: bool = False
    #: The routed experts run one at a time in a Python loop over the experts any token chose (modeling_dbrx.py
    #: ``DbrxExperts.forward``: a gather of the expert's tokens, its GLU, the weighted output ``index_add_``-ed
    #: into a zeros buffer of the layer's tokens), not through grouped_mm over every routed copy at once.
    looped_experts: bool = False

    @property
    def routed_copies(self) -> int:
        """Copies of each token the routed experts hold at once."""
        return self.experts if self.dense_experts else self.top_k


@dataclass(frozen=True, kw_only=True)
class Layer:
    """One decoder layer: a mixer and a feed-forward part.

    ``parallel`` is a second mixer reading the same normalized input, its output summed with the
    mixer's (falcon_h1: attention as ``mixer``, Mamba2 as ``parallel``; transformers caches both in one
    ``LinearAttentionAndFullAttentionLayer``, cache_utils.py).
    """

    mixer: Mixer
    ffn: FFN
    parallel: Mixer | None = None

    @property
    def mixers(self) -> tuple[Mixer, ...]:
        return (self.mixer,) if self.parallel is None else (self.mixer, self.parallel)


#: The vision encoders llama.cpp's clip graph builds (tools/mtmd/clip.cpp ``clip_image_build_graph``), by the
#: mmproj file's ``clip.projector_type`` family: gemma3 (SigLIP), qwen2.5vl / qwen3vl (Qwen's merger ViTs), pixtral
#: (Mistral 3), llama4, llava (a CLIP or SigLIP tower with an MLP projector).
VisionProjector = Literal["gemma3", "qwen2.5vl", "qwen3vl", "pixtral", "llama4", "llava"]


@dataclass(frozen=True, kw_only=True)
class VisionTower:
    """A vision-language model's image encoder as the mmproj file describes it (what llama.cpp's clip sizes
    its graph from): the ViT's width, heads, MLP width and depth, the patch and image sides in pixels."""

    projector: VisionProjector
    hidden: int
    heads: int
    intermediate: int
    layers: int
    patch: int
    image: int
    #: A gated (SwiGLU) MLP: gate and up products are alive together (Pixtral, Qwen2.5-VL).
    gated: bool = False
    #: Patches merged per side into one token after the ViT (spatial_merge_size; 1: none).
    merge: int = 1
    #: A class token ahead of the patches (CLIP, Llama 4).
    class_token: bool = False
    #: Windowed-attention layers read an ``n_pos x n_pos`` mask (Qwen2.5-VL's fullatt_block_indexes).
    window_attention: bool = False
    #: Qwen3-VL deepstack mergers: ViT layers whose output feeds an extra merger.
    deepstack: int = 0


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """The layer dimensions the memory and speed models need.

    ``layers`` is the truth: one :class:`Layer` (mixer, ffn) per decoder layer, grouped in
    ``layer_groups``. The scalar fields describe the representative attention and MLP shapes (the
    attention layers of a hybrid, the experts of a MoE), for what is uniform across layers (LoRA
    targets, speed). A family that leaves ``per_layer`` empty gets ``layers`` derived from the scalar
    fields (``layer_types``, ``sliding_window``, ``moe_layers``, MLA ranks), so ``dataclasses.replace``
    re-derives them. Optional fields are ``None`` or 0 when the architecture does not have the
    feature. ``layer_types`` has one entry per decoder layer: ``"full_attention"`` or
    ``"sliding_attention"`` (the attention view; ``layers`` has every kind).
    """

    model_type: str
    family: str  # the dimension model used (several model_types share one)
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int | None = None
    hidden_act: str = "silu"
    gated_mlp: bool = True  # SwiGLU/GeGLU (3 matrices) vs plain MLP (2)
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    attention_bias: bool = False
    parallel_attention: bool = False  # attention and MLP read the same input (falcon, neox, phi)
    layer_types: tuple[str, ...] = ()
    sliding_window: int | None = None
    attn_logit_softcapping: float | None = None
    final_logit_softcapping: float | None = None
    # Value head dim when it differs from head_dim (MLA).
    v_head_dim: int | None = None
    # Mixture of experts.
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    moe_fp32_routing: bool = False  # the derived MoE layers' FFN.fp32_routing
    num_dense_layers: int = 0  # leading dense layers before MoE ones (deepseek_v3 first_k_dense_replace)
    moe_layers: tuple[int, ...] = ()  # indices of MoE layers
    # Multi-head latent attention (deepseek).
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    # Encoder-decoder / encoder-only.
    is_encoder_decoder: bool = False
    is_decoder: bool = True  # False for encoder-only models (bert)
    # Attention without a causal mask (a RoBERTa-style causal-LM class whose config leaves is_decoder unset):
    # no 4-D mask without padding; generate's DynamicCache is still filled (the layers update any cache given).
    bidirectional: bool = False
    num_decoder_layers: int | None = None
    # Linear layers of one (dense) block, for LoRA and quantization.
    linears: tuple[LinearShape, ...] = ()
    # Normalization details that change what is saved for backward: "gemma" RMSNorm computes
    # (x * w) in fp32 and casts after; gemma2/3 add post-attention and post-MLP norms (4 per
    # layer); qwen3/gemma3 normalize q and k per head ("head"), olmo2 over the projection ("full").
    norm_style: Literal["llama", "gemma"] = "llama"
    norms_per_layer: int = 2
    qk_norm: Literal["head", "full"] | None = None
    # Dropout probabilities in training (a saved bool mask per dropped tensor): after the
    # embeddings, on the residual branches, on the attention probabilities.
    embedding_dropout: float = 0.0
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    # Eager attention runs softmax in the scores' dtype rather than fp32 (gpt2, bert, t5, falcon).
    native_softmax: bool = False
    # Hidden-wide tensors (compute dtype) a decoder layer itself keeps bound while its feed-forward runs without
    # autograd, beside its input (which the model's layer loop keeps bound until the layer returns): 2 for a
    # pre-norm block (the residual after attention and the normed MLP input, modeling_llama.py
    # LlamaDecoderLayer); 1 where the MLP reads the residual itself (post-norm olmo2, BERT's post-LN layer); 3 or
    # more where the block also keeps its attention output or normed input bound (GPT-2's ``attn_output``).
    # Inference only; read per family from the modeling code and checked against the long-context traces.
    ffn_held_hidden: int = 2
    # Rotary embedding computed in float32 without autograd: fp32 tensors of one rotated tensor's size (queries,
    # then keys) alive while it is rotated (0: rotation in the compute dtype). ``rotary_fp32_inputs``: both q and k
    # are cast to fp32 before either is rotated, so both copies stay alive (modeling_cohere.py). Inference only.
    rotary_fp32_alive: float = 0.0
    rotary_fp32_inputs: bool = False
    # SDPA gets a per-head additive mask [batch, heads, query, key] in the compute dtype, built from a batch-wide
    # additive copy of the causal mask and its boolean comparison (modeling_doge.py prepare_dynamic_mask).
    sdpa_head_mask: bool = False
    # The MLP normalizes its product before the down projection (an RMS/L2 "ffn_sub_norm" over the MLP width, fp32
    # inside): MLP-wide tensors in the compute dtype still bound while the norm holds its two fp32 copies (bitnet:
    # 1, the product; dory: 3, its scaled gate and up beside it); 0 without such a norm. Inference only.
    ffn_sub_norm_alive: int = 0
    # Non-persistent buffers the model builds when it loads (not in the checkpoint, not parameters): boolean causal
    # masks of max_position_embeddings squared (GPTBigCodeModel.bias, GPTNeoSelfAttention.bias per layer), bytes.
    buffer_bytes: int = 0
    # Score-sized tensors (compute dtype) a model's own eager attention keeps alive at its softmax beyond the
    # standard function's (transformers' eager_attention_forward): the unmasked scores bound under a second name
    # (bloom), a zeros tensor baddbmm adds to (gpt_neox_japanese), the previous layer's probabilities kept by the
    # model's loop (``outputs = block(...)`` until the next block returns: falcon, bloom). Inference only.
    eager_held_scores: int = 0
    # Eager attention computes its scores in fp32 whatever the compute dtype (modeling_flint.py
    # eager_attention_forward: ``torch.matmul(query.float(), key_states.float().transpose(2, 3))`` with autocast
    # off), so the masked scores, the sink column's concatenation and the softmax are fp32. Read with sinks.
    fp32_scores: bool = False
    # The sinks are an fp32 parameter whatever the compute dtype (modeling_deepseek_v4.py, modeling_hy_v4.py:
    # ``nn.Parameter(..., dtype=torch.float32)``, in _keep_in_fp32_modules_strict), so eager attention's
    # ``torch.cat([attn_weights, sinks])`` promotes the 16-bit scores to fp32. Read with sinks.
    fp32_sinks: bool = False
    # Compressed attention (DeepSeek-V4's compressed-sparse and heavily-compressed layers): the compressor's
    # entries, one per ``compressed_key_rate`` tokens on the densest such layer, join the keys
    # (modeling_deepseek_v4.py DeepseekV4Attention.forward: ``torch.cat([kv, compressed_kv], dim=2)``); 0 without.
    compressed_key_rate: int = 0
    # A DeepSeek-sparse-attention token indexer ahead of attention (deepseek_v32, glm_moe_dsa, axk2, hy_v4):
    # (index heads, index head dim); 0 when absent.
    indexer_heads: int = 0
    indexer_head_dim: int = 0
    # The indexer scores one key per this many tokens: DeepSeek-V4's scores the compressed-sparse compressor's
    # entries (modeling_deepseek_v4.py DeepseekV4Indexer.forward); 1: every token (deepseek_v32).
    indexer_key_stride: int = 1
    # PreTrainedModel._supports_sdpa: when False transformers runs eager attention for "sdpa".
    supports_sdpa: bool = True
    # The forward takes logits_to_keep, so generate's prefill computes the last position's logits only;
    # False: logits for every prompt position (whisper's WhisperForCausalLM).
    last_logits_only: bool = True
    # How the causal-LM forward computes its training loss. True: transformers' ForCausalLMLoss, which upcasts the
    # logits to fp32 first (loss/loss_utils.py ``logits = logits.float()``). False: ``nn.CrossEntropyLoss()`` on the
    # head's output in the compute dtype (modeling_bart.py ``BartForCausalLM.forward`` and the other decoders of
    # encoder-decoder classes, whisper, trocr, xlnet, cpmant, musicgen; transformers 5.25).
    loss_upcast: bool = True
    # Output heads whose logits the forward stacks (MusicgenForCausalLM: one lm_head per codebook, then
    # ``torch.stack([head(h) for head in self.lm_heads], dim=1)``): each head's output and the stack, per position;
    # in training, one loss per head, computed one after another. 1 for a single head.
    logit_heads: int = 1
    # What the counts include or leave out, in words (e.g. a multimodal wrapper's vision tower).
    notes: tuple[str, ...] = ()
    #: One (mixer, ffn) per layer as the family describes it; empty for uniform models, whose
    #: ``layers`` are derived from the scalar fields (so ``dataclasses.replace`` re-derives them).
    per_layer: tuple[Layer, ...] = ()
    #: Decoder layers with weights of their own, where ``layers`` lists some more than once because they run
    #: more than once per forward (dory's looped section: ``layers`` is the order of the runs); 0: ``num_layers``.
    weight_layers: int = 0
    #: Layer calls that keep tensors for backward where the others run under ``torch.no_grad()`` (hrm_text's
    #: recurrence); 0: every layer.
    grad_layers: int = 0
    #: The decoder layers' RMSNorms carry a weight (False: hrm_text's weightless ``HrmTextRMSNorm``, whose
    #: ``x * rsqrt(...)`` product no weight multiply saves).
    norm_weight: bool = True
    #: The effective per-layer description (``per_layer``, or derived): what memory/ reads.
    layers: tuple[Layer, ...] = field(init=False, repr=False, compare=False)
    # Images: parameters of the vision tower + projector, and the tokens one image adds to the sequence.
    vision_parameters: int = 0
    tokens_per_image: int = 0
    #: The vision encoder's dimensions (None: no vision tower, or one whose shape is not read).
    vision: VisionTower | None = None
    #: Tokens one image gives the cross-attention layers to attend (mllama: tiles x patches); 0: images
    #: join the text sequence instead (``tokens_per_image``).
    cross_tokens_per_image: int = 0
    #: Qwen3-VL deepstack: vision features added to the first N layers' hidden states (the count of
    #: ``vision_config.deepstack_visual_indexes``); llama.cpp widens its input embedding to ``hidden x (1 + N)``.
    deepstack_layers: int = 0
    # "family" (a family module), or "generic" (standard config fields only: see assumptions).
    derivation: Literal["family", "generic"] = "family"

    def __post_init__(self) -> None:
        if self.per_layer and len(self.per_layer) != self.num_layers:
            raise ValueError(f"{len(self.per_layer)} layers given for num_layers={self.num_layers}")
        object.__setattr__(self, "layers", self.per_layer or _derived_layers(self))
        # Count by identity first (families reuse one Layer object per kind: cheap for 100k layers),
        # then merge equal layers built separately.
        by_id: dict[int, list] = {}
        for layer in self.layers:
            entry = by_id.get(id(layer))
            if entry is None:
                by_id[id(layer)] = [layer, 1]
            else:
                entry[1] += 1
        groups: dict[Layer, int] = {}
        for layer, count in by_id.values():
            groups[layer] = groups.get(layer, 0) + count
        object.__setattr__(self, "_groups", tuple(groups.items()))

    @property
    def layer_groups(self) -> tuple[tuple[Layer, int], ...]:
        """Distinct layers with how many times each occurs, in first-seen order (for fast sums)."""
        return self._groups  # type: ignore[attr-defined]

    @property
    def stored_layers(self) -> int:
        """Decoder layers with weights of their own (``num_layers`` unless some layers run more than once)."""
        return self.weight_layers or self.num_layers

    @property
    def mixer_kinds(self) -> tuple[str, ...]:
        """The distinct mixer kinds, in first-seen order."""
        return tuple(dict.fromkeys(layer.mixer.kind for layer, _ in self.layer_groups))

    @property
    def attention_layers(self) -> int:
        return sum(n for layer, n in self.layer_groups if layer.mixer.has_cache)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def sliding_layers(self) -> int:
        return sum(n for layer, n in self.layer_groups if layer.mixer.kind == "sliding")


def _derived_layers(arch: Architecture) -> tuple[Layer, ...]:
    """Per-layer (mixer, ffn) from the uniform scalar fields, for families that describe no layers."""
    if arch.is_mla:
        attention = {None: Mixer(kind="mla", heads=arch.num_attention_heads, kv_heads=arch.num_key_value_heads,
                                 head_dim=arch.head_dim, v_head_dim=arch.v_head_dim or 0,
                                 kv_lora_rank=int(arch.kv_lora_rank or 0), rope_dim=int(arch.qk_rope_head_dim or 0))}
    else:
        full = Mixer(kind="full", heads=arch.num_attention_heads, kv_heads=arch.num_key_value_heads,
                     head_dim=arch.head_dim, v_head_dim=arch.v_head_dim or 0)
        attention = {None: full}
        if arch.sliding_window:
            attention["sliding_attention"] = Mixer(
                kind="sliding", heads=arch.num_attention_heads, kv_heads=arch.num_key_value_heads,
                head_dim=arch.head_dim, v_head_dim=arch.v_head_dim or 0, window=arch.sliding_window)
    dense = FFN(kind="dense", intermediate=arch.intermediate_size, gated=arch.gated_mlp)
    moe_inter = arch.moe_intermediate_size or arch.intermediate_size
    moe = FFN(kind="moe", intermediate=moe_inter, gated=arch.gated_mlp, experts=arch.num_experts,
              top_k=arch.num_experts_per_tok,
              shared=arch.shared_expert_intermediate_size or moe_inter * arch.num_shared_experts,
              fp32_routing=arch.moe_fp32_routing) if arch.num_experts else dense
    moe_set = set(arch.moe_layers) if arch.moe_layers else (
        set(range(arch.num_dense_layers, arch.num_layers)) if arch.num_experts else set())
    types = arch.layer_types or ()
    made: dict[tuple[int, int], Layer] = {}  # one Layer object per (mixer, ffn): cheap to group
    layers = []
    for i in range(arch.num_layers):
        kind = types[i] if i < len(types) else None
        mixer = attention.get(kind, attention[None])
        ffn = moe if i in moe_set else dense
        layer = made.get((id(mixer), id(ffn)))
        if layer is None:
            layer = made[(id(mixer), id(ffn))] = Layer(mixer=mixer, ffn=ffn)
        layers.append(layer)
    return tuple(layers)


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Everything known about a model, and where each fact came from."""

    id: str
    architecture: Architecture | None
    parameters: ParameterCounts
    #: dtype the checkpoint stores its floating weights in (torch name, e.g. "bfloat16").
    stored_dtype: str
    #: Bytes on disk of the checkpoint's tensors (parameters, buffers, duplicates, packed data).
    checkpoint_bytes: int | None = None
    #: Checkpoint bytes per safetensors dtype name.
    checkpoint_bytes_by_dtype: Mapping[str, int] = field(default_factory=dict)
    quantization: QuantizationConfig | None = None
    config: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)
    tensors: tuple[TensorInfo, ...] = field(default=(), repr=False, compare=False)
    #: fact -> where it came from: {"parameters": "header", "architecture": "config", ...}
    provenance: Mapping[str, Provenance] = field(default_factory=dict)
    revision: str | None = None
    source_url: str | None = None  # catalog entries: the public source of the numbers
    assumptions: tuple[str, ...] = ()

    @property
    def num_parameters(self) -> int:
        return self.parameters.total
