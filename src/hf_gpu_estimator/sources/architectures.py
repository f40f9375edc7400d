"""config.json -> exact parameter counts and layer dimensions, per transformers family (pure Python).

The ground truth is transformers itself (v5): for a config ``c``, ``parameter_counts(c).total`` equals
``sum(p.numel() for p in Cls(Config(**c)).parameters())`` for ``Cls = model_class_name(c)``, which
counts tied weights once. Each family below mirrors its ``configuration_<family>.py`` defaults and
``modeling_<family>.py`` module tree; the comments name the file a rule comes from. No torch, no I/O.

Roles (``ParameterCounts.by_role``):

* ``embedding``: token embeddings, learned positional embeddings (gpt2 ``wpe``, bert position and
  token-type tables), and the lm_head when it is tied (it is the same tensor).
* ``attention``: attention projections and their biases, T5's relative position bias table.
* ``mlp``: dense feed-forward layers. ``experts``: routed and shared experts. ``router``: the
  router weight and qwen2_moe's ``shared_expert_gate``.
* ``norm``: every normalization weight and bias (including q/k norms and MLA's latent norms).
* ``lm_head``: an untied output projection, phi's lm_head bias, bert's MLM head transform and bias.
* ``other``: bert's pooler and next-sentence head, gemma3's SigLIP vision tower and projector.

``active`` is what one token touches: the total minus the routed experts it is not sent to.

``Architecture.linears`` lists one block's linear layers by the leaf names peft targets. For MoE
models it describes a MoE block: the routed experts appear as transformers 5 stores them, fused 3-D
parameters ``gate_up_proj`` (out = 2 * moe_intermediate_size) and ``down_proj`` with
``count=num_experts``, then the shared expert's ``gate_proj``/``up_proj``/``down_proj``; the router
is left out. T5's list is an encoder block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hf_gpu_estimator.errors import MalformedConfigError, UnsupportedArchitectureError
from hf_gpu_estimator.spec import ROLES, Architecture, LinearShape, ParameterCounts

__all__ = ["SUPPORTED_MODEL_TYPES", "architecture_from_config", "model_class_name", "parameter_counts"]

_MISSING: Any = object()
#: Upper bounds on config integers, so a hostile or corrupt config.json is a typed error rather than
#: an OverflowError or a multi-GB per-layer tuple. Far above any real model (vocabularies ~2**18,
#: hidden sizes ~2**15, ~100 layers).
_MAX_INT = 1 << 40
_MAX_LAYERS = 100_000
_FULL = "full_attention"
_SLIDING = "sliding_attention"


# --------------------------------------------------------------------------------------------
# Reading fields with transformers' defaults and typed errors.
# --------------------------------------------------------------------------------------------


class _Fields:
    """Typed access to a config mapping; absent fields take the family default."""

    def __init__(self, config: Mapping[str, Any], *, source: str, prefix: str = ""):
        self.config = config
        self.source = source
        self.prefix = prefix

    def _error(self, name: str, value: object, expected: str) -> MalformedConfigError:
        path = f"{self.prefix}{name}"
        return MalformedConfigError(
            self.source,
            f"{self.source}: field {path!r} is {value!r}, expected {expected} "
            f"(fix the value, or remove the field to use transformers' default)",
            field=path,
        )

    def raw(self, name: str, aliases: Sequence[str] = ()) -> Any:
        for key in (name, *aliases):
            if key in self.config:
                return self.config[key]
        return _MISSING

    def _name(self, name: str, aliases: Sequence[str]) -> str:
        for key in (name, *aliases):
            if key in self.config:
                return key
        return name

    def integer(self, name: str, default: int, *, aliases: Sequence[str] = (), minimum: int = 1) -> int:
        value = self.opt_int(name, default, aliases=aliases, minimum=minimum)
        if value is None:
            raise self._error(self._name(name, aliases), None, f"an integer >= {minimum}")
        return value

    def opt_int(
        self, name: str, default: int | None = None, *, aliases: Sequence[str] = (), minimum: int = 1
    ) -> int | None:
        """An optional integer: absent -> ``default``; an explicit JSON null -> ``None``."""
        value = self.raw(name, aliases)
        if value is _MISSING:
            return default
        if value is None:
            return None
        # bool is a subclass of int in Python, but `"hidden_size": true` is a broken config.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(self._name(name, aliases), value, f"an integer >= {minimum}")
        if value < minimum:
            raise self._error(self._name(name, aliases), value, f"an integer >= {minimum}")
        maximum = _MAX_LAYERS if name.endswith("layers") or name == "n_layer" else _MAX_INT
        if value > maximum:
            raise self._error(self._name(name, aliases), value, f"an integer from {minimum} to {maximum:,}")
        return value

    def boolean(self, name: str, default: bool, *, aliases: Sequence[str] = ()) -> bool:
        value = self.raw(name, aliases)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self._error(self._name(name, aliases), value, "true or false")
        return value

    def opt_float(self, name: str, default: float | None) -> float | None:
        value = self.raw(name)
        if value is _MISSING:
            return default
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._error(name, value, "a number or null")
        return float(value)

    def string(self, name: str, default: str, *, aliases: Sequence[str] = ()) -> str:
        value = self.raw(name, aliases)
        if value is _MISSING or value is None:
            return default
        if not isinstance(value, str):
            raise self._error(self._name(name, aliases), value, "a string")
        return value

    def int_list(self, name: str) -> tuple[int, ...] | None:
        value = self.raw(name)
        if value is _MISSING or value is None:
            return None
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, int) for v in value
        ):
            raise self._error(name, value, "a list of integers")
        return tuple(value)

    def layer_types(self, num_layers: int) -> tuple[str, ...] | None:
        value = self.raw("layer_types")
        if value is _MISSING or value is None:
            return None
        if (
            not isinstance(value, (list, tuple))
            or len(value) != num_layers
            or any(v not in (_FULL, _SLIDING) for v in value)
        ):
            raise self._error(
                "layer_types", value, f"a list of {num_layers} entries, each {_FULL!r} or {_SLIDING!r}"
            )
        return tuple(value)

    def sub(self, name: str) -> _Fields:
        value = self.raw(name)
        if value is _MISSING or value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self._error(name, value, "an object (a nested config)")
        return _Fields(value, source=self.source, prefix=f"{self.prefix}{name}.")


# --------------------------------------------------------------------------------------------
# Tallying.
# --------------------------------------------------------------------------------------------


def _lin(in_features: int, out_features: int, bias: bool) -> int:
    """Parameters of ``nn.Linear(in_features, out_features, bias=bias)``."""
    return in_features * out_features + (out_features if bias else 0)


@dataclass
class _Tally:
    roles: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    idle: int = 0  # routed-expert parameters a single token is not sent to

    def add(self, role: str, n: int) -> None:
        self.roles[role] += n

    def counts(self) -> ParameterCounts:
        total = sum(self.roles.values())
        return ParameterCounts(total=total, by_role=dict(self.roles), active=total - self.idle)


@dataclass(frozen=True)
class _Analysis:
    architecture: Architecture
    counts: ParameterCounts


Head = Literal[
    "causal_lm", "base", "masked_lm", "pretraining", "lm_head_model", "seq2seq", "encoder_only", "conditional"
]


# --------------------------------------------------------------------------------------------
# Llama-like decoders: one table of differences, one counting routine.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Style:
    """How one llama-like family differs, read from its configuration_/modeling_ files."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int | None  # None: defaults to num_attention_heads
    head_dim: int | None  # None: hidden_size // num_attention_heads
    max_position_embeddings: int
    tie_word_embeddings: bool
    hidden_act: str = "silu"
    act_field: str = "hidden_act"
    qkv_bias: Callable[[_Fields], bool] = lambda f: False
    o_bias: Callable[[_Fields], bool] = lambda f: False
    mlp_bias: Callable[[_Fields], bool] = lambda f: False
    # Per-head q/k norms: "head" (weight of head_dim), "flat" (heads*head_dim, olmo2),
    # "cohere" (heads*head_dim when use_qk_norm).
    qk_norm: Literal["none", "head", "flat", "cohere"] = "none"
    block_norms: int = 2  # hidden-sized norms per block
    norm_params: int = 1  # parameters per unit of one norm: RMSNorm 1, LayerNorm+bias 2, olmo's 0
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    mlp: Literal["gated", "fused_gated", "plain"] = "gated"
    attn: Literal["separate", "fused_qkv"] = "separate"
    sliding: Literal["none", "all", "qwen2", "qwen2_moe", "qwen3_moe", "alternate", "gemma3"] = "none"
    sliding_window: int | None = None  # config default
    moe: Literal["none", "mixtral", "qwen2_moe", "qwen3_moe"] = "none"
    parallel_attention: bool = False
    softcapping: tuple[float | None, float | None] | None = None  # (attn, final) defaults
    causal_lm: str = ""
    base: str = ""


def _attention_bias(f: _Fields) -> bool:
    return f.boolean("attention_bias", False)


_LLAMA_LIKE: dict[str, _Style] = {
    # configuration_llama.py; modeling_llama.py (attention_bias on q/k/v/o, mlp_bias on the MLP).
    "llama": _Style(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=None, head_dim=None, max_position_embeddings=2048,
        tie_word_embeddings=False, qkv_bias=_attention_bias, o_bias=_attention_bias,
        mlp_bias=lambda f: f.boolean("mlp_bias", False),
        causal_lm="LlamaForCausalLM", base="LlamaModel",
    ),
    # configuration_mistral.py: sliding_window defaults to 4096 and applies to every layer.
    "mistral": _Style(
        vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, head_dim=None, max_position_embeddings=4096 * 32,
        tie_word_embeddings=False, sliding="all", sliding_window=4096,
        causal_lm="MistralForCausalLM", base="MistralModel",
    ),
    # configuration_mixtral.py: num_local_experts=8, top-2, experts use intermediate_size.
    "mixtral": _Style(
        vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, head_dim=None, max_position_embeddings=4096 * 32,
        tie_word_embeddings=False, sliding="all", sliding_window=None, moe="mixtral",
        causal_lm="MixtralForCausalLM", base="MixtralModel",
    ),
    # modeling_qwen2.py: q/k/v always have a bias, o_proj never.
    "qwen2": _Style(
        vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, head_dim=None, max_position_embeddings=32768,
        tie_word_embeddings=False, qkv_bias=lambda f: True, sliding="qwen2", sliding_window=4096,
        causal_lm="Qwen2ForCausalLM", base="Qwen2Model",
    ),
    # configuration_qwen2_moe.py / modeling_qwen2_moe.py: qkv_bias, shared expert with a sigmoid gate.
    "qwen2_moe": _Style(
        vocab_size=151936, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
        num_attention_heads=16, num_key_value_heads=16, head_dim=None, max_position_embeddings=32768,
        tie_word_embeddings=False, qkv_bias=lambda f: f.boolean("qkv_bias", True), sliding="qwen2_moe",
        sliding_window=4096, moe="qwen2_moe",
        causal_lm="Qwen2MoeForCausalLM", base="Qwen2MoeModel",
    ),
    # configuration_qwen3.py: head_dim defaults to 128 (not hidden/heads); q_norm/k_norm per head.
    "qwen3": _Style(
        vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, head_dim=128, max_position_embeddings=32768,
        tie_word_embeddings=False, qkv_bias=_attention_bias, o_bias=_attention_bias, qk_norm="head",
        sliding="qwen2", sliding_window=4096,
        causal_lm="Qwen3ForCausalLM", base="Qwen3Model",
    ),
    "qwen3_moe": _Style(
        vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=24,
        num_attention_heads=32, num_key_value_heads=4, head_dim=None, max_position_embeddings=32768,
        tie_word_embeddings=False, qkv_bias=_attention_bias, o_bias=_attention_bias, qk_norm="head",
        sliding="qwen3_moe", sliding_window=4096, moe="qwen3_moe",
        causal_lm="Qwen3MoeForCausalLM", base="Qwen3MoeModel",
    ),
    # configuration_gemma.py: head_dim 256, tied embeddings, gelu_pytorch_tanh.
    "gemma": _Style(
        vocab_size=256000, hidden_size=3072, intermediate_size=24576, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=16, head_dim=256, max_position_embeddings=8192,
        tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh",
        qkv_bias=_attention_bias, o_bias=_attention_bias,
        causal_lm="GemmaForCausalLM", base="GemmaModel",
    ),
    # modeling_gemma2.py: four norms per block; layers alternate sliding/full; softcapping 50/30.
    "gemma2": _Style(
        vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=8192,
        tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh", act_field="hidden_activation",
        qkv_bias=_attention_bias, o_bias=_attention_bias, block_norms=4, sliding="alternate",
        sliding_window=4096, softcapping=(50.0, 30.0),
        causal_lm="Gemma2ForCausalLM", base="Gemma2Model",
    ),
    # modeling_gemma3.py: gemma2 plus q_norm/k_norm; 5 sliding layers then 1 full by default.
    "gemma3_text": _Style(
        vocab_size=262208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=131072,
        tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh", act_field="hidden_activation",
        qkv_bias=_attention_bias, o_bias=_attention_bias, qk_norm="head", block_norms=4,
        sliding="gemma3", sliding_window=4096, softcapping=(None, None),
        causal_lm="Gemma3ForCausalLM", base="Gemma3TextModel",
    ),
    # modeling_phi3.py: fused qkv_proj and gate_up_proj, no biases.
    "phi3": _Style(
        vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=None, head_dim=None, max_position_embeddings=4096,
        tie_word_embeddings=False, mlp="fused_gated", attn="fused_qkv", sliding="all", sliding_window=None,
        causal_lm="Phi3ForCausalLM", base="Phi3Model",
    ),
    # modeling_olmo.py: OlmoLayerNorm has no parameters.
    "olmo": _Style(
        vocab_size=50304, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=None, head_dim=None, max_position_embeddings=2048,
        tie_word_embeddings=False, qkv_bias=_attention_bias, o_bias=_attention_bias,
        norm="layernorm", norm_params=0,
        causal_lm="OlmoForCausalLM", base="OlmoModel",
    ),
    # modeling_olmo2.py: post-norms only, q_norm/k_norm over all heads.
    "olmo2": _Style(
        vocab_size=50304, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=None, head_dim=None, max_position_embeddings=2048,
        tie_word_embeddings=False, qkv_bias=_attention_bias, o_bias=_attention_bias, qk_norm="flat",
        causal_lm="Olmo2ForCausalLM", base="Olmo2Model",
    ),
    # modeling_starcoder2.py: LayerNorm with bias, plain MLP c_fc/c_proj, use_bias everywhere.
    "starcoder2": _Style(
        vocab_size=49152, hidden_size=3072, intermediate_size=12288, num_hidden_layers=30,
        num_attention_heads=24, num_key_value_heads=2, head_dim=None, max_position_embeddings=4096,
        tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh",
        qkv_bias=lambda f: f.boolean("use_bias", True), o_bias=lambda f: f.boolean("use_bias", True),
        mlp_bias=lambda f: f.boolean("use_bias", True), norm="layernorm", norm_params=2, mlp="plain",
        sliding="all", sliding_window=None,
        causal_lm="Starcoder2ForCausalLM", base="Starcoder2Model",
    ),
    # modeling_cohere.py: one weight-only LayerNorm per block, attention and MLP in parallel.
    "cohere": _Style(
        vocab_size=256000, hidden_size=8192, intermediate_size=22528, num_hidden_layers=40,
        num_attention_heads=64, num_key_value_heads=None, head_dim=None, max_position_embeddings=8192,
        tie_word_embeddings=True, qkv_bias=_attention_bias, o_bias=_attention_bias, qk_norm="cohere",
        block_norms=1, norm="layernorm", parallel_attention=True,
        causal_lm="CohereForCausalLM", base="CohereModel",
    ),
    # modeling_granite.py: llama with scalar multipliers (no parameters).
    "granite": _Style(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=None, head_dim=None, max_position_embeddings=2048,
        tie_word_embeddings=False, qkv_bias=_attention_bias, o_bias=_attention_bias,
        mlp_bias=lambda f: f.boolean("mlp_bias", False),
        causal_lm="GraniteForCausalLM", base="GraniteModel",
    ),
}  # fmt: skip


def _layer_types_llama_like(f: _Fields, s: _Style, num_layers: int) -> tuple[tuple[str, ...], int | None]:
    """Per-layer attention kinds and the window, as each family's config __post_init__ derives them."""
    if s.sliding == "none":
        return (_FULL,) * num_layers, None
    window = f.opt_int("sliding_window", s.sliding_window)
    if s.sliding == "all":
        # Mistral, Mixtral, Phi3, Starcoder2: a non-null sliding_window applies to every layer.
        kind = _SLIDING if window is not None else _FULL
        return (kind,) * num_layers, window
    if s.sliding in ("qwen2", "qwen2_moe", "qwen3_moe"):
        use = f.boolean("use_sliding_window", False)
        window = window if use else None
        if s.sliding == "qwen3_moe":  # modeling_qwen3_moe.py: every layer reads config.sliding_window
            return ((_SLIDING if window is not None else _FULL),) * num_layers, window
        given = f.layer_types(num_layers)
        if given is not None:
            return given, window if _SLIDING in given else None
        max_window_layers = f.integer("max_window_layers", 28, minimum=0)
        if s.sliding == "qwen2":  # configuration_qwen2.py / configuration_qwen3.py
            types = tuple(
                _SLIDING if window is not None and i >= max_window_layers else _FULL for i in range(num_layers)
            )
        else:  # configuration_qwen2_moe.py: odd layers below max_window_layers
            types = tuple(
                _SLIDING if (i + 1) % 2 and i < max_window_layers and use else _FULL for i in range(num_layers)
            )
        return types, window if _SLIDING in types else None
    given = f.layer_types(num_layers)
    if given is not None:
        return given, window
    if s.sliding == "alternate":  # configuration_gemma2.py: even indices slide
        return tuple(_SLIDING if (i + 1) % 2 else _FULL for i in range(num_layers)), window
    # configuration_gemma3.py: `sliding_window_pattern` (default 6): every 6th layer is full.
    pattern = f.integer("sliding_window_pattern", 6)
    return tuple(_SLIDING if (i + 1) % pattern else _FULL for i in range(num_layers)), window


def _analyze_llama_like(f: _Fields, model_type: str, head: Head) -> tuple[Architecture, _Tally]:
    s = _LLAMA_LIKE[model_type]
    hidden = f.integer("hidden_size", s.hidden_size)
    layers = f.integer("num_hidden_layers", s.num_hidden_layers)
    heads = f.integer("num_attention_heads", s.num_attention_heads)
    kv_heads = f.opt_int("num_key_value_heads", s.num_key_value_heads) or heads
    head_dim = f.opt_int("head_dim", s.head_dim) or hidden // heads
    inter = f.integer("intermediate_size", s.intermediate_size)
    vocab = f.integer("vocab_size", s.vocab_size)
    tie = f.boolean("tie_word_embeddings", s.tie_word_embeddings)
    qkv_bias, o_bias, mlp_bias = s.qkv_bias(f), s.o_bias(f), s.mlp_bias(f)
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    layer_types, window = _layer_types_llama_like(f, s, layers)

    # Mixture of experts: which layers, how many experts, their width.
    num_experts = top_k = moe_inter = shared_inter = 0
    moe_layers: tuple[int, ...] = ()
    if s.moe == "mixtral":
        num_experts = f.integer("num_local_experts", 8, aliases=("num_experts",))
        top_k = f.integer("num_experts_per_tok", 2)
        moe_inter = inter
        moe_layers = tuple(range(layers))
    elif s.moe in ("qwen2_moe", "qwen3_moe"):
        qwen2 = s.moe == "qwen2_moe"
        num_experts = f.integer("num_experts", 60 if qwen2 else 128, aliases=("num_local_experts",), minimum=0)
        top_k = f.integer("num_experts_per_tok", 4 if qwen2 else 8)
        moe_inter = f.integer("moe_intermediate_size", 1408 if qwen2 else 768)
        if qwen2:
            shared_inter = f.integer("shared_expert_intermediate_size", 5632)
        step = f.integer("decoder_sparse_step", 1)
        mlp_only = set(f.int_list("mlp_only_layers") or ())
        # modeling_qwen2_moe.py / modeling_qwen3_moe.py: Qwen*MoeDecoderLayer.__init__
        moe_layers = tuple(
            i for i in range(layers) if i not in mlp_only and num_experts > 0 and (i + 1) % step == 0
        )
        if top_k > num_experts and moe_layers:
            raise f._error("num_experts_per_tok", top_k, f"at most num_experts={num_experts}")
    if s.moe == "mixtral" and top_k > num_experts:
        raise f._error("num_experts_per_tok", top_k, f"at most num_local_experts={num_experts}")

    t = _Tally()
    t.add("embedding", vocab * hidden)
    if s.attn == "fused_qkv":
        attn = _lin(hidden, q_out + 2 * kv_out, qkv_bias) + _lin(q_out, hidden, o_bias)
    else:
        attn = _lin(hidden, q_out, qkv_bias) + 2 * _lin(hidden, kv_out, qkv_bias) + _lin(q_out, hidden, o_bias)
    if s.mlp == "plain":
        dense_mlp = _lin(hidden, inter, mlp_bias) + _lin(inter, hidden, mlp_bias)
    else:
        dense_mlp = 2 * _lin(hidden, inter, mlp_bias) + _lin(inter, hidden, mlp_bias)
    norms = s.block_norms * hidden * s.norm_params
    if s.qk_norm == "head":
        norms += 2 * head_dim
    elif s.qk_norm == "flat":
        norms += q_out + kv_out
    elif s.qk_norm == "cohere" and f.boolean("use_qk_norm", False):
        norms += q_out + kv_out
    expert = 3 * hidden * moe_inter  # fused gate_up_proj (2*I x H) + down_proj (H x I), no bias
    moe_set = set(moe_layers)
    for i in range(layers):
        t.add("attention", attn)
        t.add("norm", norms)
        if i in moe_set:
            t.add("experts", num_experts * expert)
            t.add("router", num_experts * hidden)
            t.idle += (num_experts - top_k) * expert
            if shared_inter:
                t.add("experts", 3 * hidden * shared_inter)
                t.add("router", hidden)  # shared_expert_gate: Linear(hidden, 1, bias=False)
        else:
            t.add("mlp", dense_mlp)
    t.add("norm", hidden * s.norm_params)  # final norm
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)

    linears = _attention_linears(s, hidden, q_out, kv_out, qkv_bias, o_bias)
    if moe_layers:
        linears += (
            LinearShape(name="gate_up_proj", in_features=hidden, out_features=2 * moe_inter, count=num_experts),
            LinearShape(name="down_proj", in_features=moe_inter, out_features=hidden, count=num_experts),
        )
        if shared_inter:
            linears += _gated_linears(hidden, shared_inter, False)
    elif s.mlp == "plain":
        linears += (
            LinearShape(name="c_fc", in_features=hidden, out_features=inter, bias=mlp_bias),
            LinearShape(name="c_proj", in_features=inter, out_features=hidden, bias=mlp_bias),
        )
    elif s.mlp == "fused_gated":
        linears += (
            LinearShape(name="gate_up_proj", in_features=hidden, out_features=2 * inter),
            LinearShape(name="down_proj", in_features=inter, out_features=hidden),
        )
    else:
        linears += _gated_linears(hidden, inter, mlp_bias)

    attn_cap, final_cap = None, None
    if s.softcapping is not None:
        attn_cap = f.opt_float("attn_logit_softcapping", s.softcapping[0])
        final_cap = f.opt_float("final_logit_softcapping", s.softcapping[1])
    arch = Architecture(
        model_type=model_type,
        family=model_type,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", s.max_position_embeddings),
        hidden_act=f.string(s.act_field, s.hidden_act),
        gated_mlp=s.mlp != "plain",
        norm=s.norm,
        attention_bias=qkv_bias or o_bias,
        parallel_attention=s.parallel_attention,
        layer_types=layer_types,
        sliding_window=window,
        attn_logit_softcapping=attn_cap,
        final_logit_softcapping=final_cap,
        num_experts=num_experts if moe_layers else 0,
        num_experts_per_tok=top_k if moe_layers else 0,
        moe_intermediate_size=moe_inter if moe_layers else 0,
        num_shared_experts=1 if shared_inter and moe_layers else 0,
        shared_expert_intermediate_size=shared_inter if moe_layers else 0,
        moe_layers=moe_layers,
        linears=linears,
    )
    return arch, t


def _attention_linears(
    s: _Style, hidden: int, q_out: int, kv_out: int, qkv_bias: bool, o_bias: bool
) -> tuple[LinearShape, ...]:
    if s.attn == "fused_qkv":
        return (
            LinearShape(name="qkv_proj", in_features=hidden, out_features=q_out + 2 * kv_out, bias=qkv_bias),
            LinearShape(name="o_proj", in_features=q_out, out_features=hidden, bias=o_bias),
        )
    return (
        LinearShape(name="q_proj", in_features=hidden, out_features=q_out, bias=qkv_bias),
        LinearShape(name="k_proj", in_features=hidden, out_features=kv_out, bias=qkv_bias),
        LinearShape(name="v_proj", in_features=hidden, out_features=kv_out, bias=qkv_bias),
        LinearShape(name="o_proj", in_features=q_out, out_features=hidden, bias=o_bias),
    )


def _gated_linears(hidden: int, inter: int, bias: bool) -> tuple[LinearShape, ...]:
    return (
        LinearShape(name="gate_proj", in_features=hidden, out_features=inter, bias=bias),
        LinearShape(name="up_proj", in_features=hidden, out_features=inter, bias=bias),
        LinearShape(name="down_proj", in_features=inter, out_features=hidden, bias=bias),
    )


# --------------------------------------------------------------------------------------------
# Gemma3 multimodal wrapper (text model + SigLIP vision tower + projector).
# --------------------------------------------------------------------------------------------


def _siglip_vision(v: _Fields) -> int:
    """Parameters of transformers' SiglipVisionModel (modeling_siglip.py) for a vision_config."""
    hidden = v.integer("hidden_size", 768)
    inter = v.integer("intermediate_size", 3072)
    layers = v.integer("num_hidden_layers", 12)
    v.integer("num_attention_heads", 12)
    channels = v.integer("num_channels", 3)
    image = v.integer("image_size", 224)
    patch = v.integer("patch_size", 16)
    n = channels * patch * patch * hidden + hidden  # patch_embedding Conv2d with bias
    n += (image // patch) ** 2 * hidden  # position_embedding
    block = 4 * _lin(hidden, hidden, True) + _lin(hidden, inter, True) + _lin(inter, hidden, True)
    n += layers * (block + 2 * 2 * hidden)  # two LayerNorms with bias per encoder layer
    n += 2 * hidden  # post_layernorm
    if v.boolean("vision_use_head", True):
        # SiglipMultiheadAttentionPoolingHead: probe, nn.MultiheadAttention, LayerNorm, MLP.
        n += hidden + (3 * hidden * hidden + 3 * hidden) + _lin(hidden, hidden, True) + 2 * hidden
        n += _lin(hidden, inter, True) + _lin(inter, hidden, True)
    return n


def _analyze_gemma3(f: _Fields, model_type: str, head: Head) -> tuple[Architecture, _Tally]:
    text = f.sub("text_config")
    arch, t = _analyze_llama_like(text, "gemma3_text", "base")
    vision = f.sub("vision_config")
    vision_hidden = vision.integer("hidden_size", 768)
    tower = _siglip_vision(vision)
    # modeling_gemma3.py Gemma3MultiModalProjector: a (vision_hidden x text_hidden) matrix + RMSNorm.
    projector = vision_hidden * arch.hidden_size + vision_hidden
    t.add("other", tower + projector)
    # Gemma3ForConditionalGeneration ties lm_head by the top-level tie_word_embeddings (default True).
    tie = f.boolean("tie_word_embeddings", True)
    if head == "conditional" and not tie:
        t.add("lm_head", arch.vocab_size * arch.hidden_size)
    arch = _replace(
        arch,
        model_type=model_type,
        tie_word_embeddings=tie,
        notes=(
            f"counts include the SigLIP vision tower ({tower:,} parameters) and the multimodal "
            f"projector ({projector:,}) under role 'other'; the dimensions are the language model's",
        ),
    )
    return arch, t


def _replace(arch: Architecture, **changes: Any) -> Architecture:
    return dataclasses.replace(arch, **changes)


# --------------------------------------------------------------------------------------------
# DeepSeek-V3: MLA + MoE with shared experts and leading dense layers.
# --------------------------------------------------------------------------------------------


def _analyze_deepseek_v3(f: _Fields, model_type: str, head: Head) -> tuple[Architecture, _Tally]:
    # configuration_deepseek_v3.py defaults; modeling_deepseek_v3.py module tree. The config's
    # num_nextn_predict_layers (MTP) has no module in transformers, so it is not counted.
    hidden = f.integer("hidden_size", 7168)
    inter = f.integer("intermediate_size", 18432)
    moe_inter = f.integer("moe_intermediate_size", 2048)
    layers = f.integer("num_hidden_layers", 61)
    heads = f.integer("num_attention_heads", 128)
    kv_heads = f.opt_int("num_key_value_heads", 128) or heads
    n_shared = f.integer("n_shared_experts", 1, minimum=0)
    n_routed = f.integer("n_routed_experts", 256, aliases=("num_local_experts",))
    kv_rank = f.integer("kv_lora_rank", 512)
    q_rank = f.opt_int("q_lora_rank", 1536)
    rope = f.integer("qk_rope_head_dim", 64)
    v_dim = f.integer("v_head_dim", 128)
    nope = f.integer("qk_nope_head_dim", 128)
    top_k = f.integer("num_experts_per_tok", 8)
    first_dense = f.integer("first_k_dense_replace", 3, minimum=0)
    vocab = f.integer("vocab_size", 129280)
    tie = f.boolean("tie_word_embeddings", False)
    bias = f.boolean("attention_bias", False)
    if top_k > n_routed:
        raise f._error("num_experts_per_tok", top_k, f"at most n_routed_experts={n_routed}")
    qk_dim = nope + rope

    if q_rank is None:
        q_linears = (LinearShape(name="q_proj", in_features=hidden, out_features=heads * qk_dim),)
        q_norm = 0
    else:
        q_linears = (
            LinearShape(name="q_a_proj", in_features=hidden, out_features=q_rank, bias=bias),
            LinearShape(name="q_b_proj", in_features=q_rank, out_features=heads * qk_dim),
        )
        q_norm = q_rank
    attn_linears = q_linears + (
        LinearShape(name="kv_a_proj_with_mqa", in_features=hidden, out_features=kv_rank + rope, bias=bias),
        LinearShape(name="kv_b_proj", in_features=kv_rank, out_features=heads * (nope + v_dim)),
        LinearShape(name="o_proj", in_features=heads * v_dim, out_features=hidden, bias=bias),
    )
    attn = sum(_lin(x.in_features, x.out_features, x.bias) for x in attn_linears)
    shared_inter = moe_inter * n_shared
    expert = 3 * hidden * moe_inter
    moe_layers = tuple(i for i in range(layers) if i >= first_dense)

    t = _Tally()
    t.add("embedding", vocab * hidden)
    for i in range(layers):
        t.add("attention", attn)
        t.add("norm", 2 * hidden + q_norm + kv_rank)
        if i >= first_dense:
            t.add("experts", n_routed * expert + 3 * hidden * shared_inter)
            t.add("router", n_routed * hidden)  # gate.weight; e_score_correction_bias is a buffer
            t.idle += (n_routed - top_k) * expert
        else:
            t.add("mlp", 3 * hidden * inter)
    t.add("norm", hidden)
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)

    linears = attn_linears
    if moe_layers:
        linears += (
            LinearShape(name="gate_up_proj", in_features=hidden, out_features=2 * moe_inter, count=n_routed),
            LinearShape(name="down_proj", in_features=moe_inter, out_features=hidden, count=n_routed),
        )
        if shared_inter:
            linears += _gated_linears(hidden, shared_inter, False)
    else:
        linears += _gated_linears(hidden, inter, False)
    arch = Architecture(
        model_type=model_type,
        family="deepseek_v3",
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=qk_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 4096),
        hidden_act=f.string("hidden_act", "silu"),
        attention_bias=bias,
        layer_types=(_FULL,) * layers,
        v_head_dim=v_dim,
        num_experts=n_routed if moe_layers else 0,
        num_experts_per_tok=top_k if moe_layers else 0,
        moe_intermediate_size=moe_inter if moe_layers else 0,
        num_shared_experts=n_shared if moe_layers else 0,
        shared_expert_intermediate_size=shared_inter if moe_layers else 0,
        num_dense_layers=min(first_dense, layers),
        moe_layers=moe_layers,
        q_lora_rank=q_rank,
        kv_lora_rank=kv_rank,
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        linears=linears,
        notes=("num_nextn_predict_layers (MTP) is not counted: transformers builds no module for it",),
    )
    return arch, t


# --------------------------------------------------------------------------------------------
# Phi (phi-1, phi-1.5, phi-2): parallel block, LayerNorm, biases everywhere, lm_head bias.
# --------------------------------------------------------------------------------------------


def _analyze_phi(f: _Fields, model_type: str, head: Head) -> tuple[Architecture, _Tally]:
    hidden = f.integer("hidden_size", 2048)
    inter = f.integer("intermediate_size", 8192)
    layers = f.integer("num_hidden_layers", 24)
    heads = f.integer("num_attention_heads", 32)
    kv_heads = f.opt_int("num_key_value_heads") or heads
    head_dim = f.opt_int("head_dim") or hidden // heads
    vocab = f.integer("vocab_size", 51200)
    tie = f.boolean("tie_word_embeddings", False)
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    linears = (
        LinearShape(name="q_proj", in_features=hidden, out_features=q_out, bias=True),
        LinearShape(name="k_proj", in_features=hidden, out_features=kv_out, bias=True),
        LinearShape(name="v_proj", in_features=hidden, out_features=kv_out, bias=True),
        LinearShape(name="dense", in_features=q_out, out_features=hidden, bias=True),
        LinearShape(name="fc1", in_features=hidden, out_features=inter, bias=True),
        LinearShape(name="fc2", in_features=inter, out_features=hidden, bias=True),
    )
    attn = sum(_lin(x.in_features, x.out_features, True) for x in linears[:4])
    mlp = sum(_lin(x.in_features, x.out_features, True) for x in linears[4:])
    norms = 2 * hidden  # input_layernorm (weight + bias); attention and MLP read the same input
    if f.boolean("qk_layernorm", False):
        norms += 2 * 2 * (hidden // heads)  # modeling_phi.py: LayerNorm(hidden // heads) for q and k
    t = _Tally()
    t.add("embedding", vocab * hidden)
    t.add("attention", layers * attn)
    t.add("mlp", layers * mlp)
    t.add("norm", layers * norms + 2 * hidden)  # + final_layernorm
    if head == "causal_lm":
        # modeling_phi.py: lm_head = Linear(hidden, vocab, bias=True); only the weight can be tied.
        t.add("lm_head", vocab + (0 if tie else vocab * hidden))
    arch = Architecture(
        model_type=model_type,
        family="phi",
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 2048),
        hidden_act=f.string("hidden_act", "gelu_new"),
        gated_mlp=False,
        norm="layernorm",
        attention_bias=True,
        parallel_attention=True,
        layer_types=(_FULL,) * layers,
        linears=linears,
    )
    return arch, t


# --------------------------------------------------------------------------------------------
# GPT-2: Conv1D layers (weight stored in x out), learned positions, tied head.
# --------------------------------------------------------------------------------------------


def _analyze_gpt2(f: _Fields, model_type: str, head: Head) -> tuple[Architecture, _Tally]:
    # configuration_gpt2.py attribute_map: hidden_size -> n_embd, num_hidden_layers -> n_layer, ...
    hidden = f.integer("n_embd", 768, aliases=("hidden_size",))
    layers = f.integer("n_layer", 12, aliases=("num_hidden_layers",))
    heads = f.integer("n_head", 12, aliases=("num_attention_heads",))
    positions = f.integer("n_positions", 1024, aliases=("max_position_embeddings",))
    inner = f.opt_int("n_inner") or 4 * hidden
    vocab = f.integer("vocab_size", 50257)
    tie = f.boolean("tie_word_embeddings", True)
    cross = f.boolean("add_cross_attention", False)
    linears = (
        LinearShape(name="c_attn", in_features=hidden, out_features=3 * hidden, bias=True),
        LinearShape(name="c_proj", in_features=hidden, out_features=hidden, bias=True),
        LinearShape(name="c_fc", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="c_proj", in_features=inner, out_features=hidden, bias=True),
    )
    attn = _lin(hidden, 3 * hidden, True) + _lin(hidden, hidden, True)
    norms = 2 * 2 * hidden  # ln_1, ln_2
    if cross:  # crossattention: c_attn (2E), q_attn (E), c_proj (E); ln_cross_attn
        attn += _lin(hidden, 2 * hidden, True) + 2 * _lin(hidden, hidden, True)
        norms += 2 * hidden
    t = _Tally()
    t.add("embedding", vocab * hidden + positions * hidden)  # wte + wpe
    t.add("attention", layers * attn)
    t.add("mlp", layers * (_lin(hidden, inner, True) + _lin(inner, hidden, True)))
    t.add("norm", layers * norms + 2 * hidden)  # + ln_f
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)
    arch = Architecture(
        model_type=model_type,
        family="gpt2",
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=inner,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=positions,
        hidden_act=f.string("activation_function", "gelu_new"),
        gated_mlp=False,
        norm="layernorm",
        attention_bias=True,
        layer_types=(_FULL,) * layers,
        linears=linears,
    )
    return arch, t


# --------------------------------------------------------------------------------------------
# GPT-NeoX (Pythia, GPT-NeoX-20B).
# --------------------------------------------------------------------------------------------


def _analyze_gpt_neox(f: _Fields, model_type: str, head: Head) -> tuple[Architecture, _Tally]:
    hidden = f.integer("hidden_size", 6144)
    layers = f.integer("num_hidden_layers", 44)
    heads = f.integer("num_attention_heads", 64)
    inter = f.integer("intermediate_size", 24576)
    vocab = f.integer("vocab_size", 50432)
    tie = f.boolean("tie_word_embeddings", False)
    bias = f.boolean("attention_bias", True)
    linears = (
        LinearShape(name="query_key_value", in_features=hidden, out_features=3 * hidden, bias=bias),
        LinearShape(name="dense", in_features=hidden, out_features=hidden, bias=bias),
        LinearShape(name="dense_h_to_4h", in_features=hidden, out_features=inter, bias=True),
        LinearShape(name="dense_4h_to_h", in_features=inter, out_features=hidden, bias=True),
    )
    t = _Tally()
    t.add("embedding", vocab * hidden)  # embed_in
    t.add("attention", layers * (_lin(hidden, 3 * hidden, bias) + _lin(hidden, hidden, bias)))
    t.add("mlp", layers * (_lin(hidden, inter, True) + _lin(inter, hidden, True)))
    t.add("norm", layers * 2 * 2 * hidden + 2 * hidden)  # two LayerNorms per layer + final_layer_norm
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)
    arch = Architecture(
        model_type=model_type,
        family="gpt_neox",
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 2048),
        hidden_act=f.string("hidden_act", "gelu"),
        gated_mlp=False,
        norm="layernorm",
        attention_bias=bias,
        parallel_attention=f.boolean("use_parallel_residual", True),
        layer_types=(_FULL,) * layers,
        linears=linears,
    )
    return arch, t


# --------------------------------------------------------------------------------------------
# Falcon (falcon-7b/40b/180b, falcon-rw).
# --------------------------------------------------------------------------------------------


def _analyze_falcon(f: _Fields, model_type: str, head: Head) -> tuple[Architecture, _Tally]:
    # configuration_falcon.py: n_embed is a legacy alias of hidden_size; num_kv_heads defaults to
    # num_attention_heads; ffn_hidden_size to 4 * hidden_size.
    hidden = f.integer("n_embed", 4544, aliases=("hidden_size",))  # n_embed wins, as in __post_init__
    layers = f.integer("num_hidden_layers", 32)
    heads = f.integer("num_attention_heads", 71)
    num_kv = f.opt_int("num_kv_heads") or heads
    ffn = f.opt_int("ffn_hidden_size") or 4 * hidden
    vocab = f.integer("vocab_size", 65024)
    tie = f.boolean("tie_word_embeddings", True)
    new_arch = f.boolean("new_decoder_architecture", False)
    multi_query = f.boolean("multi_query", True)
    parallel = f.boolean("parallel_attn", True)
    bias = f.boolean("bias", False)
    num_ln = f.opt_int("num_ln_in_parallel_attn")
    head_dim = hidden // heads
    # modeling_falcon.py FalconAttention.__init__
    if new_arch:
        qkv_out, kv_heads = (num_kv * 2 + heads) * head_dim, num_kv
    elif multi_query:
        qkv_out, kv_heads = hidden + 2 * head_dim, 1
    else:
        qkv_out, kv_heads = 3 * hidden, num_kv
    # modeling_falcon.py FalconDecoderLayer.__init__
    if num_ln is None and new_arch:
        num_ln = 2
    block_lns = 2 if (not parallel or num_ln == 2) else 1
    linears = (
        LinearShape(name="query_key_value", in_features=hidden, out_features=qkv_out, bias=bias),
        LinearShape(name="dense", in_features=hidden, out_features=hidden, bias=bias),
        LinearShape(name="dense_h_to_4h", in_features=hidden, out_features=ffn, bias=bias),
        LinearShape(name="dense_4h_to_h", in_features=ffn, out_features=hidden, bias=bias),
    )
    t = _Tally()
    t.add("embedding", vocab * hidden)
    t.add("attention", layers * (_lin(hidden, qkv_out, bias) + _lin(hidden, hidden, bias)))
    t.add("mlp", layers * (_lin(hidden, ffn, bias) + _lin(ffn, hidden, bias)))
    t.add("norm", layers * block_lns * 2 * hidden + 2 * hidden)  # + ln_f
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)
    arch = Architecture(
        model_type=model_type,
        family="falcon",
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=ffn,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 2048),
        hidden_act=f.string("activation", "gelu"),
        gated_mlp=False,
        norm="layernorm",
        attention_bias=bias,
        parallel_attention=parallel or new_arch,
        layer_types=(_FULL,) * layers,
        linears=linears,
    )
    return arch, t


# --------------------------------------------------------------------------------------------
# BERT (encoder-only).
# --------------------------------------------------------------------------------------------


def _analyze_bert(f: _Fields, model_type: str, head: Head) -> tuple[Architecture, _Tally]:
    hidden = f.integer("hidden_size", 768)
    layers = f.integer("num_hidden_layers", 12)
    heads = f.integer("num_attention_heads", 12)
    inter = f.integer("intermediate_size", 3072)
    vocab = f.integer("vocab_size", 30522)
    positions = f.integer("max_position_embeddings", 512)
    type_vocab = f.integer("type_vocab_size", 2, minimum=0)
    tie = f.boolean("tie_word_embeddings", True)
    is_decoder = f.boolean("is_decoder", False)
    cross = f.boolean("add_cross_attention", False)
    if cross and not is_decoder:
        raise f._error("add_cross_attention", True, "false unless is_decoder is true (modeling_bert.py BertLayer)")
    inner = heads * (hidden // heads)  # all_head_size
    linears = (
        LinearShape(name="query", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="key", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="value", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="dense", in_features=hidden, out_features=hidden, bias=True),
        LinearShape(name="dense", in_features=hidden, out_features=inter, bias=True),
        LinearShape(name="dense", in_features=inter, out_features=hidden, bias=True),
    )
    attn = 3 * _lin(hidden, inner, True) + _lin(hidden, hidden, True)  # self + output.dense
    attention_lns = 2 * hidden
    if cross:
        attn, attention_lns = 2 * attn, 2 * attention_lns
    t = _Tally()
    # word, position and token-type tables; the embedding LayerNorm is a norm.
    t.add("embedding", (vocab + positions + type_vocab) * hidden)
    t.add("norm", 2 * hidden)
    t.add("attention", layers * attn)
    t.add("mlp", layers * (_lin(hidden, inter, True) + _lin(inter, hidden, True)))
    t.add("norm", layers * (attention_lns + 2 * hidden))
    if head in ("base", "pretraining"):
        t.add("other", _lin(hidden, hidden, True))  # pooler
    if head in ("masked_lm", "pretraining", "lm_head_model"):
        # BertLMPredictionHead: transform dense + LayerNorm, decoder (weight tied to the word
        # embeddings, decoder.bias tied to predictions.bias when tie_word_embeddings).
        t.add("lm_head", _lin(hidden, hidden, True) + vocab)
        t.add("norm", 2 * hidden)
        if not tie:
            t.add("lm_head", vocab * hidden + vocab)
    if head == "pretraining":
        t.add("other", _lin(hidden, 2, True))  # seq_relationship (next-sentence prediction)
    arch = Architecture(
        model_type=model_type,
        family="bert",
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=positions,
        hidden_act=f.string("hidden_act", "gelu"),
        gated_mlp=False,
        norm="layernorm",
        attention_bias=True,
        layer_types=(_FULL,) * layers,
        is_decoder=is_decoder,
        linears=linears,
    )
    return arch, t


# --------------------------------------------------------------------------------------------
# T5 (encoder-decoder).
# --------------------------------------------------------------------------------------------


def _analyze_t5(f: _Fields, model_type: str, head: Head) -> tuple[Architecture, _Tally]:
    # configuration_t5.py attribute_map: hidden_size -> d_model, num_attention_heads -> num_heads,
    # num_hidden_layers -> num_layers, head_dim -> d_kv.
    d_model = f.integer("d_model", 512, aliases=("hidden_size",))
    d_kv = f.integer("d_kv", 64, aliases=("head_dim",))
    d_ff = f.integer("d_ff", 2048)
    enc_layers = f.integer("num_layers", 6, aliases=("num_hidden_layers",))
    dec_layers = f.opt_int("num_decoder_layers") or enc_layers
    heads = f.integer("num_heads", 8, aliases=("num_attention_heads",))
    buckets = f.integer("relative_attention_num_buckets", 32)
    vocab = f.integer("vocab_size", 32128)
    proj = f.string("feed_forward_proj", "relu")
    parts = proj.split("-")
    if (len(parts) > 1 and parts[0] != "gated") or len(parts) > 2:
        raise f._error("feed_forward_proj", proj, "'ACT' or 'gated-ACT', e.g. 'relu' or 'gated-gelu'")
    gated = parts[0] == "gated"
    act = "gelu_new" if proj == "gated-gelu" else parts[-1]
    inner = heads * d_kv
    attn = 3 * d_model * inner + inner * d_model  # q, k, v, o without bias
    ff = (3 if gated else 2) * d_model * d_ff
    rel_bias = buckets * heads  # relative_attention_bias in the first block of each stack
    with_decoder = head in ("seq2seq", "conditional")
    t = _Tally()
    # configuration_t5.py forces tie_word_embeddings=True: shared, both stacks' embed_tokens and
    # lm_head are one tensor.
    t.add("embedding", vocab * d_model)
    t.add("attention", enc_layers * attn + rel_bias)
    t.add("mlp", enc_layers * ff)
    t.add("norm", enc_layers * 2 * d_model + d_model)
    if with_decoder:
        t.add("attention", dec_layers * 2 * attn + rel_bias)
        t.add("mlp", dec_layers * ff)
        t.add("norm", dec_layers * 3 * d_model + d_model)
    ff_linears = (
        (
            LinearShape(name="wi_0", in_features=d_model, out_features=d_ff),
            LinearShape(name="wi_1", in_features=d_model, out_features=d_ff),
        )
        if gated
        else (LinearShape(name="wi", in_features=d_model, out_features=d_ff),)
    )
    linears = (
        LinearShape(name="q", in_features=d_model, out_features=inner),
        LinearShape(name="k", in_features=d_model, out_features=inner),
        LinearShape(name="v", in_features=d_model, out_features=inner),
        LinearShape(name="o", in_features=inner, out_features=d_model),
        *ff_linears,
        LinearShape(name="wo", in_features=d_ff, out_features=d_model),
    )
    arch = Architecture(
        model_type=model_type,
        family="t5",
        num_layers=enc_layers,
        hidden_size=d_model,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=d_kv,
        intermediate_size=d_ff,
        vocab_size=vocab,
        tie_word_embeddings=True,
        max_position_embeddings=None,
        hidden_act=act,
        gated_mlp=gated,
        norm="rmsnorm",
        layer_types=(_FULL,) * enc_layers,
        is_encoder_decoder=with_decoder,
        is_decoder=with_decoder,
        num_decoder_layers=dec_layers if with_decoder else None,
        linears=linears,
        notes=("linears describe one encoder block; decoder blocks add a cross-attention q/k/v/o",),
    )
    return arch, t


# --------------------------------------------------------------------------------------------
# Registry.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Family:
    analyze: Callable[[_Fields, str, Head], tuple[Architecture, _Tally]]
    default_class: str
    classes: Mapping[str, Head]  # transformers class name -> which head it carries


def _decoder(model_type: str) -> _Family:
    s = _LLAMA_LIKE[model_type]
    return _Family(_analyze_llama_like, s.causal_lm, {s.causal_lm: "causal_lm", s.base: "base"})


_FAMILIES: dict[str, _Family] = {
    **{mt: _decoder(mt) for mt in _LLAMA_LIKE},
    "gemma3": _Family(
        _analyze_gemma3,
        "Gemma3ForConditionalGeneration",
        {"Gemma3ForConditionalGeneration": "conditional", "Gemma3Model": "base"},
    ),
    "deepseek_v3": _Family(
        _analyze_deepseek_v3,
        "DeepseekV3ForCausalLM",
        {"DeepseekV3ForCausalLM": "causal_lm", "DeepseekV3Model": "base"},
    ),
    "phi": _Family(_analyze_phi, "PhiForCausalLM", {"PhiForCausalLM": "causal_lm", "PhiModel": "base"}),
    "gpt2": _Family(_analyze_gpt2, "GPT2LMHeadModel", {"GPT2LMHeadModel": "causal_lm", "GPT2Model": "base"}),
    "gpt_neox": _Family(
        _analyze_gpt_neox, "GPTNeoXForCausalLM", {"GPTNeoXForCausalLM": "causal_lm", "GPTNeoXModel": "base"}
    ),
    "falcon": _Family(
        _analyze_falcon, "FalconForCausalLM", {"FalconForCausalLM": "causal_lm", "FalconModel": "base"}
    ),
    "bert": _Family(
        _analyze_bert,
        "BertForMaskedLM",
        {
            "BertForMaskedLM": "masked_lm",
            "BertModel": "base",
            "BertForPreTraining": "pretraining",
            "BertLMHeadModel": "lm_head_model",
        },
    ),
    "t5": _Family(
        _analyze_t5,
        "T5ForConditionalGeneration",
        {"T5ForConditionalGeneration": "conditional", "T5Model": "seq2seq", "T5EncoderModel": "encoder_only"},
    ),
}

#: model_type values whose counts this module derives exactly from config.json alone.
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_FAMILIES))


def _family(config: Mapping[str, Any]) -> tuple[_Fields, str, _Family]:
    source = "config.json"
    if not isinstance(config, Mapping):
        raise MalformedConfigError(
            source, f"{source}: expected a JSON object (a mapping), got {type(config).__name__}"
        )
    name = config.get("_name_or_path")
    if isinstance(name, str) and name:
        source = f"{name}/config.json"
    model_type = config.get("model_type")
    if model_type is None:
        raise MalformedConfigError(
            source,
            f"{source}: field 'model_type' is missing; add the model_type transformers uses "
            f"(one of {', '.join(SUPPORTED_MODEL_TYPES)})",
            field="model_type",
        )
    if not isinstance(model_type, str):
        raise MalformedConfigError(
            source, f"{source}: field 'model_type' is {model_type!r}, expected a string", field="model_type"
        )
    family = _FAMILIES.get(model_type)
    if family is None:
        raise UnsupportedArchitectureError(model_type, SUPPORTED_MODEL_TYPES)
    return _Fields(config, source=source), model_type, family


def _class_and_head(f: _Fields, family: _Family) -> tuple[str, Head]:
    architectures = f.raw("architectures")
    if architectures is not _MISSING and architectures is not None:
        if not isinstance(architectures, (list, tuple)) or not all(isinstance(a, str) for a in architectures):
            raise f._error("architectures", architectures, "a list of class names")
        if architectures and architectures[0] in family.classes:
            return architectures[0], family.classes[architectures[0]]
    return family.default_class, family.classes[family.default_class]


def _analyze(config: Mapping[str, Any]) -> _Analysis:
    f, model_type, family = _family(config)
    class_name, head = _class_and_head(f, family)
    arch, tally = family.analyze(f, model_type, head)
    architectures = f.raw("architectures")
    if isinstance(architectures, (list, tuple)) and architectures and architectures[0] != class_name:
        arch = _replace(
            arch,
            notes=(
                *arch.notes,
                f"architectures[0]={architectures[0]!r} has no counting rule here; counted {class_name} "
                "(its task head, if any, is not included)",
            ),
        )
    return _Analysis(architecture=arch, counts=tally.counts())


def model_class_name(config: Mapping[str, Any]) -> str:
    """The transformers class whose parameters :func:`parameter_counts` counts.

    ``config["architectures"][0]`` when it is a class this module knows how to count for the
    family, else the family's default class (``*ForCausalLM``, ``T5ForConditionalGeneration``,
    ``BertForMaskedLM``, ``Gemma3ForConditionalGeneration``).

    Args:
        config: a parsed config.json.

    Returns:
        A class name in the ``transformers`` namespace.

    Raises:
        UnsupportedArchitectureError: ``model_type`` is not in :data:`SUPPORTED_MODEL_TYPES`.
        MalformedConfigError: ``model_type`` or ``architectures`` is missing or mistyped.

    Example:
        >>> model_class_name({"model_type": "llama"})
        'LlamaForCausalLM'
    """
    f, _, family = _family(config)
    return _class_and_head(f, family)[0]


def architecture_from_config(config: Mapping[str, Any]) -> Architecture:
    """The layer dimensions of a config, with transformers' defaults for absent fields.

    Args:
        config: a parsed config.json (for ``gemma3``, the wrapper with ``text_config``; the
            dimensions returned are the language model's).

    Returns:
        The :class:`~hf_gpu_estimator.spec.Architecture`.

    Raises:
        UnsupportedArchitectureError: ``model_type`` is not in :data:`SUPPORTED_MODEL_TYPES`.
        MalformedConfigError: a field we need has the wrong type or an impossible value.

    Example:
        >>> a = architecture_from_config({"model_type": "mistral", "num_hidden_layers": 2})
        >>> a.num_key_value_heads, a.head_dim, a.layer_types
        (8, 128, ('sliding_attention', 'sliding_attention'))
    """
    arch = _analyze(config).architecture
    return dataclasses.replace(arch, **_dropouts(config, arch.model_type), **_norm_details(arch.model_type))


def _norm_details(model_type: str) -> dict[str, Any]:
    """Per-family normalization layout (modeling_<family>.py): gemma's RMSNorm flavour, gemma2/3's
    extra post-norms, qwen3/gemma3 per-head q/k norms, olmo2's q/k norms over the projection."""
    out: dict[str, Any] = {}
    if model_type in ("gemma", "gemma2", "gemma3", "gemma3_text"):
        out["norm_style"] = "gemma"
    if model_type in ("gemma2", "gemma3", "gemma3_text"):
        out["norms_per_layer"] = 4
    if model_type in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text"):
        out["qk_norm"] = "head"
    elif model_type == "olmo2":
        out["qk_norm"] = "full"
    return out


#: Dropout fields per family and transformers' config defaults: (embedding, hidden, attention).
_DROPOUT_FIELDS: Mapping[str, tuple[tuple[str, float], tuple[str, float], tuple[str, float]]] = {
    "gpt2": (("embd_pdrop", 0.1), ("resid_pdrop", 0.1), ("attn_pdrop", 0.1)),  # configuration_gpt2.py
    "bert": (("hidden_dropout_prob", 0.1), ("hidden_dropout_prob", 0.1), ("attention_probs_dropout_prob", 0.1)),
    "t5": (("dropout_rate", 0.1), ("dropout_rate", 0.1), ("dropout_rate", 0.1)),  # configuration_t5.py
    "phi": (("embd_pdrop", 0.0), ("resid_pdrop", 0.0), ("attention_dropout", 0.0)),  # configuration_phi.py
    "phi3": (("embd_pdrop", 0.0), ("resid_pdrop", 0.0), ("attention_dropout", 0.0)),
    "gpt_neox": (("hidden_dropout", 0.0), ("hidden_dropout", 0.0), ("attention_dropout", 0.0)),
    "falcon": (("hidden_dropout", 0.0), ("hidden_dropout", 0.0), ("attention_dropout", 0.0)),
}


def _dropouts(config: Mapping[str, Any], model_type: str) -> dict[str, float]:
    fields = _DROPOUT_FIELDS.get(model_type, (("", 0.0), ("", 0.0), ("attention_dropout", 0.0)))
    source = config.get("text_config") if isinstance(config.get("text_config"), Mapping) else config
    out = {}
    for name, (key, default) in zip(("embedding_dropout", "hidden_dropout", "attention_dropout"), fields):
        value = source.get(key, default) if key else default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise MalformedConfigError("config.json", f"config.json: field {key!r} is {value!r}, expected a "
                                       "probability in [0, 1) (fix the value, or remove the field)", field=key)
        out[name] = float(value)
    return out


def parameter_counts(config: Mapping[str, Any]) -> ParameterCounts:
    """Exact parameter counts of ``model_class_name(config)`` built from ``config``.

    Equal to ``sum(p.numel() for p in model.parameters())`` (tied weights once), split by role
    (see the module docstring), with ``active`` the parameters one token uses.

    Args:
        config: a parsed config.json.

    Returns:
        The :class:`~hf_gpu_estimator.spec.ParameterCounts`.

    Raises:
        UnsupportedArchitectureError: ``model_type`` is not in :data:`SUPPORTED_MODEL_TYPES`.
        MalformedConfigError: a field we need has the wrong type or an impossible value.

    Example:
        >>> parameter_counts({"model_type": "gpt2"}).total  # gpt2 (124M)
        124439808
    """
    return _analyze(config).counts
