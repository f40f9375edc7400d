"""Kimi Linear and Ling 3 (bailing_hybrid): Kimi delta attention (KDA) layers with MLA every few layers, DeepSeek-V3 MoE.

The two share their decoder (modeling_bailing_hybrid.py's ``BailingHybridDecoderLayer`` is kimi_linear's) and
their chunked KDA scan; they differ in defaults, in KDA's gates (Kimi: low-rank ``f_a_proj``/``f_b_proj`` and
``g_a_proj``/``g_b_proj``; Ling: full-width ``f_proj`` and ``g_proj``) and in MLA (Kimi: no positional encoding,
``KimiLinearModel`` deletes its rotary embedding; Ling: interleaved rotary and a per-head sigmoid output gate
``g_proj``).
"""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import FULL, MISSING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.parts import Part, kimi_delta
from hf_gpu_estimator.architectures.recurrent import pattern_list
from hf_gpu_estimator.spec import Architecture, LinearShape

LINEAR = "linear_attention"

#: Config defaults that differ: configuration_kimi_linear.py, configuration_bailing_hybrid.py (transformers 5.25).
_DEFAULTS = {
    "kimi_linear": {"hidden_size": 2304, "intermediate_size": 9216, "moe_intermediate_size": 1024,
                    "num_hidden_layers": 27, "num_attention_heads": 32, "num_experts": 256, "first_k_dense_replace": 1,
                    "vocab_size": 163840, "model_max_length": 1048576},
    "bailing_hybrid": {"hidden_size": 2560, "intermediate_size": 6144, "moe_intermediate_size": 768,
                       "num_hidden_layers": 42, "num_attention_heads": 32, "num_experts": 512,
                       "first_k_dense_replace": 2, "vocab_size": 157184, "model_max_length": 262144},
}  # fmt: skip


def _kda(f: Fields, model_type: str, hidden: int, heads: int) -> Part:
    """The KDA mixer with the config's linear-attention fields, read as each config class's ``__post_init__`` does.

    kimi_linear: a checkpoint's ``linear_attn_config`` (``head_dim``, ``num_heads``, ``short_conv_kernel_size``)
    wins over ``linear_head_dim``/``linear_num_heads``/``linear_conv_kernel_dim`` (128, 32, 4). bailing_hybrid:
    ``linear_head_dim`` = ``head_dim`` (128), ``linear_num_heads`` = ``num_attention_heads``,
    ``linear_conv_kernel_dim`` = ``short_conv_kernel_size`` (4); a saved config's own ``linear_*`` fields win
    (PreTrainedConfig sets the extra keyword arguments after ``__post_init__``), and its ``head_dim`` is then
    MLA's rotary width, which the KDA layers do not read.
    """
    if model_type == "kimi_linear":
        sub = f.sub("linear_attn_config")
        return kimi_delta(hidden, sub.integer("num_heads", f.integer("linear_num_heads", 32)),
                          sub.integer("head_dim", f.integer("linear_head_dim", 128)),
                          sub.integer("short_conv_kernel_size", f.integer("linear_conv_kernel_dim", 4)),
                          low_rank_gates=True)
    return kimi_delta(hidden, f.integer("linear_num_heads", heads),
                      f.integer("linear_head_dim", 128) if f.raw("linear_head_dim") is not MISSING
                      else f.integer("head_dim", 128),
                      f.integer("linear_conv_kernel_dim", f.integer("short_conv_kernel_size", 4)),
                      low_rank_gates=False)


def _layer_types(f: Fields, model_type: str, layers: int) -> tuple[str, ...]:
    """``layer_types`` as given, else kimi_linear's checkpoint lists (``linear_attn_config.full_attn_layers`` and
    ``kda_layers``, 1-indexed), else the default pattern (kimi_linear: MLA at every 4th layer from index 4;
    bailing_hybrid: the last layer of every ``layer_group_size`` (6))."""
    types = pattern_list(f, "layer_types", {LINEAR: LINEAR, FULL: FULL}, layers)
    if types is not None:
        return types
    if model_type == "kimi_linear":
        sub = f.sub("linear_attn_config")
        full, kda = sub.int_list("full_attn_layers"), sub.int_list("kda_layers")
        if full is not None and kda is not None:
            listed = {i: FULL for i in full} | {i: LINEAR for i in kda}
            if sorted(listed) != list(range(1, layers + 1)):
                raise sub.error("full_attn_layers", list(full), f"with kda_layers, every layer 1..{layers} once")
            return tuple(listed[i + 1] for i in range(layers))
        return tuple(FULL if i and i % 4 == 0 else LINEAR for i in range(layers))
    group = f.integer("layer_group_size", 6)
    return tuple(FULL if (i + 1) % group == 0 else LINEAR for i in range(layers))


def analyze_kimi_linear(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_kimi_linear.py / configuration_bailing_hybrid.py defaults and attribute maps (num_experts,
    # num_experts_per_token, num_shared_experts, model_max_length are the stored names); modeling_kimi_linear.py /
    # modeling_bailing_hybrid.py module trees. bailing_hybrid's num_mtp_layers are not built (BailingHybridModel
    # ignores their weights on load).
    d = _DEFAULTS[model_type]
    kimi = model_type == "kimi_linear"
    hidden = f.integer("hidden_size", d["hidden_size"])
    inter = f.integer("intermediate_size", d["intermediate_size"])
    moe_inter = f.integer("moe_intermediate_size", d["moe_intermediate_size"])
    layers = f.integer("num_hidden_layers", d["num_hidden_layers"])
    heads = f.integer("num_attention_heads", d["num_attention_heads"])
    kv_heads = f.opt_int("num_key_value_heads", 32) or heads
    vocab = f.integer("vocab_size", d["vocab_size"])
    tie = f.boolean("tie_word_embeddings", False)
    n_routed = f.integer("num_experts", d["num_experts"], aliases=("num_local_experts",))
    top_k = f.integer("num_experts_per_token", 8, aliases=("num_experts_per_tok",))
    n_shared = f.integer("num_shared_experts", 1, aliases=("n_shared_experts",), minimum=0)
    kv_rank = f.integer("kv_lora_rank", 512)
    q_rank = f.opt_int("q_lora_rank", None)
    rope = f.integer("qk_rope_head_dim", 64)
    nope = f.integer("qk_nope_head_dim", 128)
    v_dim = f.integer("v_head_dim", 128)
    bias = f.boolean("attention_bias", False)
    if top_k > n_routed:
        raise f.error("num_experts_per_token", top_k, f"at most num_experts={n_routed}")
    kda = _kda(f, model_type, hidden, heads)
    types = _layer_types(f, model_type, layers)
    mlp_types = pattern_list(f, "mlp_layer_types", {"dense": "dense", "sparse": "sparse"}, layers)
    if mlp_types is None:
        # KimiLinearConfig reads first_k_dense_replace from its keyword arguments; bailing_hybrid has the field.
        first = f.integer("first_k_dense_replace", d["first_k_dense_replace"], minimum=0)
        mlp_types = tuple("dense" if i < first else "sparse" for i in range(layers))
    moe_layers = tuple(i for i, kind in enumerate(mlp_types) if kind == "sparse")

    attention = parts.mla(hidden, heads, kv_heads, q_rank=q_rank, kv_rank=kv_rank, nope=nope, rope=rope,
                          v_dim=v_dim, bias=bias)
    if not kimi:  # BailingHybridAttention: a per-head sigmoid output gate
        attention = parts.combine(attention, parts.of_linears(
            "attention", (LinearShape(name="g_proj", in_features=hidden, out_features=heads),)))
    mixers = {FULL: attention, LINEAR: kda}
    norms = parts.norm(2 * hidden)
    dense = parts.gated_mlp(hidden, inter)
    routed = parts.routed_experts(hidden, moe_inter, n_routed, top_k)
    shared = parts.gated_mlp(hidden, moe_inter * n_shared, role="experts") if n_shared else None
    # KimiLinearTopkRouter / BailingHybridTopkRouter (DeepseekV3TopkRouter): fp32 logits and routing weights; the
    # router's e_score_correction_bias is a buffer.
    moe = parts.moe(routed, router=n_routed * hidden, shared=shared, fp32_routing=True)
    kinds = tuple(dict.fromkeys(types))
    s = parts.stack(
        [(mixers[kind], norms, moe if ffn == "sparse" else dense) for kind, ffn in zip(types, mlp_types, strict=True)],
        outer=(parts.embedding(vocab, hidden), parts.norm(hidden), parts.lm_head(vocab, hidden, head, tied=tie)),
        # One block's linears: each layer kind's mixer (in the order the layers first use them), then the routed
        # and shared experts, then the dense MLP.
        linears=(*(mixers[k] for k in kinds), *((routed, *((shared,) if shared else ())) if moe_layers else ()),
                 *((dense,) if len(moe_layers) < layers else ())),
    )
    notes: list[str] = []
    if len(kinds) > 1:
        notes.append("linears lists the linear layers of both layer kinds (KDA and MLA); each layer has one of them")
    if not kimi:
        notes.append("MLA's per-head sigmoid output gate (g_proj; its product saves the attention output in "
                     "training) is not in the activation terms: one heads x v_head_dim tensor per token per MLA "
                     "layer")
        notes.append("the KDA layers' conv1d, dt_bias and A_log, the routers' gate.weight and "
                     "e_score_correction_bias stay float32 (_keep_in_fp32_modules_strict); counted in the "
                     "checkpoint dtype")
        limits = f.raw("expert_swiglu_limit_list")
        if isinstance(limits, list) and any(limits):
            notes.append("expert_swiglu_limit_list clamps the experts' gate and up outputs (two more "
                         "intermediate-wide tensors per routed token): not modelled")
    arch = Architecture(
        model_type=model_type, family="kimi_linear", num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=nope + rope, intermediate_size=inter,
        vocab_size=vocab, tie_word_embeddings=tie,
        max_position_embeddings=f.integer("model_max_length", d["model_max_length"],
                                          aliases=("max_position_embeddings",)),
        hidden_act=f.string("hidden_act", "silu"), attention_bias=bias, layer_types=types, v_head_dim=v_dim,
        num_shared_experts=n_shared if moe_layers else 0, moe_fp32_routing=bool(moe_layers),
        q_lora_rank=q_rank, kv_lora_rank=kv_rank, qk_nope_head_dim=nope, qk_rope_head_dim=rope,
        notes=tuple(notes), **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "kimi_linear": Family(
        analyze=analyze_kimi_linear, default_class="KimiLinearForCausalLM",
        classes={"KimiLinearForCausalLM": "causal_lm", "KimiLinearModel": "base"}, module=__name__,
    ),
    "bailing_hybrid": Family(
        analyze=analyze_kimi_linear, default_class="BailingHybridForCausalLM",
        classes={"BailingHybridForCausalLM": "causal_lm", "BailingHybridModel": "base"}, module=__name__,
    ),
}
