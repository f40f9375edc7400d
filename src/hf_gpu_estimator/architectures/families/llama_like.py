"""Llama-like decoders: one table of differences, one counting routine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, SLIDING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture


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
    qkv_bias: Callable[[Fields], bool] = lambda f: False
    o_bias: Callable[[Fields], bool] = lambda f: False
    mlp_bias: Callable[[Fields], bool] = lambda f: False
    # Per-head q/k norms: "head" (weight of head_dim), "flat" (heads*head_dim, olmo2),
    # "cohere" (heads*head_dim when use_qk_norm).
    qk_norm: Literal["none", "head", "flat", "cohere"] = "none"
    block_norms: int = 2  # hidden-sized norms per block
    norm_params: int = 1  # parameters per unit of one norm: RMSNorm 1, LayerNorm+bias 2, olmo's 0
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    mlp: Literal["gated", "fused_gated", "plain"] = "gated"
    attn: Literal["separate", "fused_qkv"] = "separate"
    sliding: Literal["none", "all", "qwen2", "qwen2_moe", "qwen3_moe", "alternate", "gemma3", "smollm3", "olmo3"] = (
        "none")
    sliding_window: int | None = None  # config default
    moe: Literal["none", "mixtral", "qwen2_moe", "qwen3_moe", "ernie4_5_moe"] = "none"
    lm_head_bias: Callable[[Fields], bool] = lambda f: False
    parallel_attention: bool = False
    ffn_held_hidden: int = 2  # Architecture.ffn_held_hidden
    rotary_fp32: tuple[float, bool] = (0.0, False)  # Architecture.rotary_fp32_alive, rotary_fp32_inputs
    softcapping: tuple[float | None, float | None] | None = None  # (attn, final) defaults
    # RMSNorm flavour: gemma computes (x * (1 + w)) in fp32 and casts after (modeling_gemma.py).
    norm_style: Literal["llama", "gemma"] = "llama"
    dropouts: tuple[tuple[str, float], tuple[str, float], tuple[str, float]] = (
        ("", 0.0), ("", 0.0), ("attention_dropout", 0.0))
    experts_default: int = 8  # mixtral-style num_local_experts default
    # qwen-style MoE defaults (num_experts, num_experts_per_tok, moe_intermediate_size); None: the row's own.
    qwen_moe_defaults: tuple[int, int, int] | None = None
    causal_lm: str = ""
    base: str = ""


def _attention_bias(f: Fields) -> bool:
    return f.boolean("attention_bias", False)


def _use_bias(f: Fields) -> bool:
    return f.boolean("use_bias", False)


LLAMA_LIKE: dict[str, _Style] = {
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
        qkv_bias=_attention_bias, o_bias=_attention_bias, norm_style="gemma",
        causal_lm="GemmaForCausalLM", base="GemmaModel",
    ),
    # modeling_gemma2.py: four norms per block; layers alternate sliding/full; softcapping 50/30.
    "gemma2": _Style(
        vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=8192,
        tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh", act_field="hidden_activation",
        qkv_bias=_attention_bias, o_bias=_attention_bias, block_norms=4, sliding="alternate",
        sliding_window=4096, softcapping=(50.0, 30.0), norm_style="gemma",
        causal_lm="Gemma2ForCausalLM", base="Gemma2Model",
    ),
    # modeling_gemma3.py: gemma2 plus q_norm/k_norm; 5 sliding layers then 1 full by default.
    "gemma3_text": _Style(
        vocab_size=262208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=131072,
        tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh", act_field="hidden_activation",
        qkv_bias=_attention_bias, o_bias=_attention_bias, qk_norm="head", block_norms=4,
        sliding="gemma3", sliding_window=4096, softcapping=(None, None), norm_style="gemma",
        causal_lm="Gemma3ForCausalLM", base="Gemma3TextModel",
    ),
    # modeling_phi3.py: fused qkv_proj and gate_up_proj, no biases.
    "phi3": _Style(
        vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=None, head_dim=None, max_position_embeddings=4096,
        tie_word_embeddings=False, mlp="fused_gated", attn="fused_qkv", sliding="all", sliding_window=None,
        dropouts=(("embd_pdrop", 0.0), ("resid_pdrop", 0.0), ("attention_dropout", 0.0)),  # configuration_phi3.py
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
        ffn_held_hidden=1,  # Olmo2DecoderLayer: the MLP reads the residual (post-norms)
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
        rotary_fp32=(4, True),  # apply_rotary_pos_emb: q.float(), k.float(), then the interleaved rotation
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
    # configuration_smollm3.py / modeling_smollm3.py: llama with NoPE on every 4th layer
    # (no_rope_layers: no parameters, no cache change); with use_sliding_window, the NoPE layers slide.
    "smollm3": _Style(
        vocab_size=128256, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
        num_attention_heads=16, num_key_value_heads=4, head_dim=None, max_position_embeddings=32768,
        tie_word_embeddings=True, qkv_bias=_attention_bias, o_bias=_attention_bias,
        mlp_bias=lambda f: f.boolean("mlp_bias", False), sliding="smollm3", sliding_window=None,
        causal_lm="SmolLM3ForCausalLM", base="SmolLM3Model",
    ),
    # configuration_olmo3.py / modeling_olmo3.py: olmo2 (post-norms, flat q/k norms) with 3 sliding
    # layers (window 4096) then 1 full.
    "olmo3": _Style(
        vocab_size=50304, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=None, head_dim=None, max_position_embeddings=2048,
        tie_word_embeddings=False, qkv_bias=_attention_bias, o_bias=_attention_bias, qk_norm="flat",
        sliding="olmo3", sliding_window=4096, ffn_held_hidden=1,
        causal_lm="Olmo3ForCausalLM", base="Olmo3Model",
    ),
    # configuration_ernie4_5.py / modeling_ernie4_5.py: use_bias on q/k/v/o and the MLP, head_dim 128.
    "ernie4_5": _Style(
        vocab_size=103424, hidden_size=1024, intermediate_size=3072, num_hidden_layers=18,
        num_attention_heads=16, num_key_value_heads=2, head_dim=128, max_position_embeddings=131072,
        tie_word_embeddings=True, qkv_bias=_use_bias, o_bias=_use_bias, mlp_bias=_use_bias,
        rotary_fp32=(3, False),  # apply_rotary_pos_emb: (q.float() * cos) + (rotate_half(q).float() * sin)
        causal_lm="Ernie4_5ForCausalLM", base="Ernie4_5Model",
    ),
    # configuration_ernie4_5_moe.py / modeling_ernie4_5_moe.py: MoE layers from moe_layer_start_index to
    # moe_layer_end_index every moe_layer_interval; shared experts (moe_num_shared_experts x
    # moe_intermediate_size, use_bias); the router's e_score_correction_bias is an nn.Parameter; the
    # lm_head carries a bias when use_bias (kept when the weight is tied).
    "ernie4_5_moe": _Style(
        vocab_size=103424, hidden_size=2560, intermediate_size=12288, num_hidden_layers=28,
        num_attention_heads=20, num_key_value_heads=4, head_dim=None, max_position_embeddings=131072,
        tie_word_embeddings=True, qkv_bias=_use_bias, o_bias=_use_bias, mlp_bias=_use_bias,
        moe="ernie4_5_moe", lm_head_bias=_use_bias, rotary_fp32=(3, False),  # as ernie4_5
        causal_lm="Ernie4_5_MoeForCausalLM", base="Ernie4_5_MoeModel",
    ),
    # configuration_phimoe.py / modeling_phimoe.py: mixtral with LayerNorm (+bias), attention_bias,
    # lm_head_bias, 16 experts top-2, sliding_window (default null) on every layer.
    "phimoe": _Style(
        vocab_size=32064, hidden_size=4096, intermediate_size=6400, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, head_dim=None, max_position_embeddings=4096 * 32,
        tie_word_embeddings=False, qkv_bias=_attention_bias, o_bias=_attention_bias,
        norm="layernorm", norm_params=2, sliding="all", sliding_window=None, moe="mixtral",
        lm_head_bias=lambda f: f.boolean("lm_head_bias", False), experts_default=16,
        causal_lm="PhimoeForCausalLM", base="PhimoeModel",
    ),
}  # fmt: skip


def _layer_types_llama_like(f: Fields, s: _Style, num_layers: int) -> tuple[tuple[str, ...], int | None]:
    """Per-layer attention kinds and the window, as each family's config __post_init__ derives them."""
    if s.sliding == "none":
        return (FULL,) * num_layers, None
    # A window of 0 (qwen2_moe's default config when use_sliding_window is false) means none.
    window = f.opt_int("sliding_window", s.sliding_window, minimum=0) or None
    if s.sliding == "all":
        # Mistral, Mixtral, Phi3, Starcoder2: a non-null sliding_window applies to every layer.
        kind = SLIDING if window is not None else FULL
        return (kind,) * num_layers, window
    if s.sliding in ("qwen2", "qwen2_moe", "qwen3_moe"):
        use = f.boolean("use_sliding_window", False)
        window = window if use else None
        if s.sliding == "qwen3_moe":  # modeling_qwen3_moe.py: every layer reads config.sliding_window
            return ((SLIDING if window is not None else FULL),) * num_layers, window
        given = f.layer_types(num_layers)
        if given is not None:
            return given, window if SLIDING in given else None
        max_window_layers = f.integer("max_window_layers", 28, minimum=0)
        if s.sliding == "qwen2":  # configuration_qwen2.py / configuration_qwen3.py
            types = tuple(
                SLIDING if window is not None and i >= max_window_layers else FULL for i in range(num_layers)
            )
        else:  # configuration_qwen2_moe.py: odd layers below max_window_layers
            types = tuple(
                SLIDING if (i + 1) % 2 and i < max_window_layers and use else FULL for i in range(num_layers)
            )
        return types, window if SLIDING in types else None
    if s.sliding == "smollm3":  # configuration_smollm3.py
        use = f.boolean("use_sliding_window", False)
        given = f.layer_types(num_layers)
        if given is None:
            no_rope = _no_rope_layers(f, num_layers)
            given = tuple(SLIDING if use and window is not None and not r else FULL for r in no_rope)
        # modeling_smollm3.py: a layer slides only when use_sliding_window and its type says so.
        return given, window if use and window is not None and SLIDING in given else None
    given = f.layer_types(num_layers)
    if given is not None:
        return given, window
    if s.sliding == "olmo3":  # configuration_olmo3.py: every 4th layer full
        return tuple(SLIDING if (i + 1) % 4 else FULL for i in range(num_layers)), window
    if s.sliding == "alternate":  # configuration_gemma2.py: even indices slide
        return tuple(SLIDING if (i + 1) % 2 else FULL for i in range(num_layers)), window
    # configuration_gemma3.py: `sliding_window_pattern` (default 6): every 6th layer is full.
    pattern = f.integer("sliding_window_pattern", 6)
    return tuple(SLIDING if (i + 1) % pattern else FULL for i in range(num_layers)), window


def _no_rope_layers(f: Fields, num_layers: int) -> tuple[int, ...]:
    """configuration_smollm3.py: 1 = the layer uses RoPE; by default every ``no_rope_layer_interval``-th does not."""
    given = f.int_list("no_rope_layers")
    if given is not None:
        if len(given) != num_layers:
            raise f.error("no_rope_layers", list(given), f"a list of {num_layers} entries (0 or 1)")
        return given
    interval = f.integer("no_rope_layer_interval", 4)
    return tuple(int((i + 1) % interval != 0) for i in range(num_layers))


def analyze_llama_like(
    f: Fields, model_type: str, head: Head, style: _Style | None = None
) -> tuple[Architecture, Tally]:
    """Count a llama-like decoder; ``style`` overrides the row of ``model_type`` (VL text models)."""
    s = style or LLAMA_LIKE[model_type]
    d = Dims.read(f, hidden_size=s.hidden_size, num_hidden_layers=s.num_hidden_layers,
                  num_attention_heads=s.num_attention_heads, num_key_value_heads=s.num_key_value_heads,
                  head_dim=s.head_dim, intermediate_size=s.intermediate_size, vocab_size=s.vocab_size,
                  tie_word_embeddings=s.tie_word_embeddings, max_position_embeddings=s.max_position_embeddings,
                  hidden_act=s.hidden_act, names={"hidden_act": (s.act_field,)})
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, head_dim, tie = d.num_attention_heads, d.num_key_value_heads, d.head_dim, d.tie_word_embeddings
    qkv_bias, o_bias, mlp_bias = s.qkv_bias(f), s.o_bias(f), s.mlp_bias(f)
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    layer_types, window = _layer_types_llama_like(f, s, layers)

    # Mixture of experts: which layers, how many experts, their width.
    num_experts = top_k = moe_inter = shared_inter = 0
    n_shared = 1  # shared experts behind shared_inter (qwen2_moe: one of that width)
    moe_layers: tuple[int, ...] = ()
    if s.moe == "mixtral":
        num_experts = f.integer("num_local_experts", s.experts_default, aliases=("num_experts",))
        top_k = f.integer("num_experts_per_tok", 2)
        moe_inter = inter
        moe_layers = tuple(range(layers))
    elif s.moe in ("qwen2_moe", "qwen3_moe"):
        qwen2 = s.moe == "qwen2_moe"
        experts_d, top_k_d, moe_inter_d = s.qwen_moe_defaults or ((60, 4, 1408) if qwen2 else (128, 8, 768))
        num_experts = f.integer("num_experts", experts_d, aliases=("num_local_experts",), minimum=0)
        top_k = f.integer("num_experts_per_tok", top_k_d)
        moe_inter = f.integer("moe_intermediate_size", moe_inter_d)
        if qwen2:
            shared_inter = f.integer("shared_expert_intermediate_size", 5632)
        step = f.integer("decoder_sparse_step", 1)
        mlp_only = set(f.int_list("mlp_only_layers") or ())
        # modeling_qwen2_moe.py / modeling_qwen3_moe.py: Qwen*MoeDecoderLayer.__init__
        moe_layers = tuple(
            i for i in range(layers) if i not in mlp_only and num_experts > 0 and (i + 1) % step == 0
        )
        if top_k > num_experts and moe_layers:
            raise f.error("num_experts_per_tok", top_k, f"at most num_experts={num_experts}")
    elif s.moe == "ernie4_5_moe":
        # configuration_ernie4_5_moe.py attribute_map: num_experts -> moe_num_experts, num_experts_per_tok -> moe_k.
        num_experts = f.integer("moe_num_experts", 64, aliases=("num_experts",))
        top_k = f.integer("moe_k", 6, aliases=("num_experts_per_tok",))
        moe_inter = f.integer("moe_intermediate_size", 1536)
        n_shared = f.integer("moe_num_shared_experts", 2, minimum=0)
        shared_inter = moe_inter * n_shared
        start = f.integer("moe_layer_start_index", 1, minimum=0)
        end = f.integer("moe_layer_end_index", -1, minimum=-1)
        end = layers - 1 if end == -1 else end
        interval = f.integer("moe_layer_interval", 1)
        # modeling_ernie4_5_moe.py Ernie4_5_MoeDecoderLayer.__init__
        moe_layers = tuple(i for i in range(layers) if (i + 1) % interval == 0 and start <= i <= end)
        if top_k > num_experts and moe_layers:
            raise f.error("moe_k", top_k, f"at most moe_num_experts={num_experts}")
    if s.moe == "mixtral" and top_k > num_experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_local_experts={num_experts}")

    qk_norm = {"head": 2 * head_dim, "flat": q_out + kv_out}.get(s.qk_norm, 0)
    if s.qk_norm == "cohere" and f.boolean("use_qk_norm", False):
        qk_norm = q_out + kv_out
    attention = parts.attention(hidden, heads, kv_heads, head_dim, qkv_bias=qkv_bias, o_bias=o_bias,
                                fused=s.attn == "fused_qkv", qk_norm=qk_norm)
    # A sliding layer without a window attends to everything.
    mixers = {FULL: attention, SLIDING: parts.windowed(attention, window=window) if window else attention}
    norms = parts.norm(s.block_norms * hidden * s.norm_params)
    if s.mlp == "plain":
        dense = parts.mlp(hidden, inter, bias=mlp_bias, names=("c_fc", "c_proj"))
    else:
        dense = parts.gated_mlp(hidden, inter, bias=mlp_bias, fused=s.mlp == "fused_gated")
    ffn = dense
    if moe_layers:
        routed = parts.routed_experts(hidden, moe_inter, num_experts, top_k)
        if s.moe == "ernie4_5_moe":
            # moe_statics.e_score_correction_bias is an nn.Parameter; the shared experts take use_bias.
            shared = parts.gated_mlp(hidden, shared_inter, bias=mlp_bias, role="experts") if shared_inter else None
            ffn = parts.moe(routed, router=num_experts * hidden + num_experts, shared=shared)
        elif shared_inter:
            # qwen2_moe: shared_expert, and shared_expert_gate: Linear(hidden, 1, bias=False).
            ffn = parts.moe(routed, router=num_experts * hidden, shared=parts.gated_mlp(hidden, shared_inter, role="experts"),
                            always=(parts.shared_expert_gate(hidden),))
        else:
            ffn = parts.moe(routed, router=num_experts * hidden)
    moe_set = set(moe_layers)
    # The lm_head bias stays its own parameter when the weight is tied.
    head_bias = parts.params("lm_head", vocab if head == "causal_lm" and s.lm_head_bias(f) else 0)
    st = parts.stack(
        [(mixers.get(kind, attention), norms, ffn if i in moe_set else dense) for i, kind in enumerate(layer_types)],
        outer=(parts.embedding(vocab, hidden), parts.norm(hidden * s.norm_params),  # the final norm
               parts.lm_head(vocab, hidden, head, tied=tie), head_bias),
        linears=(attention, ffn),  # a MoE block where there is one
    )

    attn_cap, final_cap = None, None
    if s.softcapping is not None:
        attn_cap = f.opt_float("attn_logit_softcapping", s.softcapping[0])
        final_cap = f.opt_float("final_logit_softcapping", s.softcapping[1])
    arch = d.architecture(
        model_type,
        gated_mlp=s.mlp != "plain",
        norm=s.norm,
        attention_bias=qkv_bias or o_bias,
        parallel_attention=s.parallel_attention,
        ffn_held_hidden=s.ffn_held_hidden,
        rotary_fp32_alive=s.rotary_fp32[0],
        rotary_fp32_inputs=s.rotary_fp32[1],
        layer_types=layer_types,
        sliding_window=window,
        attn_logit_softcapping=attn_cap,
        final_logit_softcapping=final_cap,
        num_shared_experts=n_shared if shared_inter and moe_layers else 0,
        norm_style=s.norm_style,
        # gemma2/3 add post-attention and post-MLP norms (modeling_gemma2.py): 4 per block.
        norms_per_layer=4 if s.block_norms == 4 else 2,
        qk_norm={"head": "head", "flat": "full"}.get(s.qk_norm),
        **st.keywords(),
    )
    return arch, st.tally


FAMILIES = {
    mt: Family(analyze=analyze_llama_like, default_class=s.causal_lm,
               classes={s.causal_lm: "causal_lm", s.base: "base"},
               dropouts=s.dropouts, module=__name__)
    for mt, s in LLAMA_LIKE.items()
}
