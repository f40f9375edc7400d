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

    def __post_init__(self) -> None:
        if sum(self.by_role.values()) != self.total:
            raise ValueError(f"by_role sums to {sum(self.by_role.values())}, total is {self.total}")

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


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """The layer dimensions the memory and speed models need.

    Optional fields are ``None`` or 0 when the architecture does not have the feature.
    ``layer_types`` has one entry per decoder layer: ``"full_attention"`` or
    ``"sliding_attention"``.
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
    # What the counts include or leave out, in words (e.g. a multimodal wrapper's vision tower).
    notes: tuple[str, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def sliding_layers(self) -> int:
        return sum(1 for t in self.layer_types if t == "sliding_attention")


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
