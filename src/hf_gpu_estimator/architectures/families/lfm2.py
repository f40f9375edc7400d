"""LFM2: gated short-convolution layers and attention layers, each followed by a SwiGLU MLP; LFM2-MoE
(``lfm2_moe``) replaces the MLP after its first ``num_dense_layers`` layers with routed experts."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import NO_DROPOUT, Family
from hf_gpu_estimator.architectures.recurrent import pattern_list
from hf_gpu_estimator.spec import Architecture

CONV = "conv"


def _mlp_width(f: Fields, inter: int) -> int:
    # modeling_lfm2.py Lfm2MLP: with block_auto_adjust_ff_dim, 2/3 of the width, scaled by
    # block_ffn_dim_multiplier and rounded up to block_multiple_of.
    if not f.boolean("block_auto_adjust_ff_dim", True):
        return inter
    inter = int(2 * inter / 3)
    multiplier = f.opt_float("block_ffn_dim_multiplier", 1.0)
    if multiplier is not None:
        if not 0 < multiplier < 1e6:
            raise f.error("block_ffn_dim_multiplier", multiplier, "a positive number")
        multiple = f.integer("block_multiple_of", 256)
        inter = multiple * -(-int(multiplier * inter) // multiple)
    if inter < 1:
        raise f.error("intermediate_size", inter, "a width that stays >= 1 after block_auto_adjust_ff_dim")
    return inter


def analyze_lfm2(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_lfm2.py / configuration_lfm2_moe.py defaults (block_ff_dim and tie_embedding override
    # the standard names).
    moe = model_type == "lfm2_moe"
    hidden = f.integer("hidden_size", 2048 if moe else 2560)
    layers = f.integer("num_hidden_layers", 32)
    heads = f.integer("num_attention_heads", 32)
    kv_heads = f.integer("num_key_value_heads", 8)
    vocab = f.integer("vocab_size", 65536)
    tie = f.boolean("tie_embedding", True, aliases=("tie_word_embeddings",))
    if moe:  # Lfm2MoeMLP takes intermediate_size as it is (no block_auto_adjust_ff_dim)
        inter = f.integer("intermediate_size", 7168)
        moe_inter = f.integer("moe_intermediate_size", 1792)
        experts = f.integer("num_experts", 32)
        top_k = f.integer("num_experts_per_tok", 4)
        dense_layers = f.integer("num_dense_layers", 2, minimum=0)
        if top_k > experts:
            raise f.error("num_experts_per_tok", top_k, f"at most num_experts={experts}")
    else:
        inter = _mlp_width(f, f.integer("block_ff_dim", 12288, aliases=("intermediate_size",)))
        moe_inter = experts = top_k = 0
        dense_layers = layers
    # Lfm2Attention: q/k/v and out_proj without biases; q_layernorm, k_layernorm per head.
    attention = parts.gqa(f, hidden, heads, kv_heads, bias=False, o_name="out_proj", qk_norm=True)
    head_dim = attention.mixer.head_dim
    conv = parts.short_conv(hidden, f.integer("conv_L_cache", 3), f.boolean("conv_bias", False))
    # Lfm2Config.__post_init__: layer_types, else attention at full_attn_idxs (default: every layer).
    # Lfm2MoeConfig derives nothing (its modeling file indexes layer_types, so transformers cannot build
    # the model without them): counted as Lfm2Config's default, attention in every layer, and said so.
    types = pattern_list(f, "layer_types", {FULL: FULL, CONV: CONV}, layers)
    unset_types = types is None and moe
    if types is None:
        idxs = f.int_list("full_attn_idxs")
        full = set(range(layers)) if idxs is None else set(idxs)
        types = tuple(FULL if i in full else CONV for i in range(layers))

    mixers = {FULL: attention, CONV: conv}
    norms = parts.norm(2 * hidden)  # operator_norm, ffn_norm
    dense = parts.gated_mlp(hidden, inter, names=("w1", "w3", "w2"))
    # Lfm2MoeSparseMoeBlock: fused experts, the router's weight; expert_bias is a buffer.
    routed = parts.moe(parts.routed_experts(hidden, moe_inter, experts, top_k), router=experts * hidden)
    s = parts.stack(
        [(mixers[kind], norms, dense if i < dense_layers else routed) for i, kind in enumerate(types)],
        outer=(parts.embedding(vocab, hidden), parts.norm(hidden),  # embedding_norm (after the last layer)
               parts.lm_head(vocab, hidden, head, tied=tie)),
        linears=(*(mixers[k] for k in dict.fromkeys(types)), *((dense,) if dense_layers else ()),
                 *((routed,) if dense_layers < layers else ())),
    )
    any_moe = bool(s.moe_layers)
    arch = Architecture(
        model_type=model_type, family=model_type, num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=inter,
        vocab_size=vocab, tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 128_000), layer_types=types,
        qk_norm="head", num_dense_layers=s.leading_dense, **s.keywords(),
        notes=(*(("routing: sigmoid scores plus expert_bias (a float32 buffer) pick the top-k; "
                  "the experts run through transformers' experts implementation",) if any_moe else ()),
               *(("layer_types is unset (transformers cannot build lfm2_moe without it): every layer is "
                  "counted as attention",) if unset_types else ())),
    )
    return arch, s.tally


FAMILIES = {
    "lfm2": Family(analyze=analyze_lfm2, default_class="Lfm2ForCausalLM",
                   classes={"Lfm2ForCausalLM": "causal_lm", "Lfm2Model": "base"},
                   dropouts=NO_DROPOUT, module=__name__),
    "lfm2_moe": Family(analyze=analyze_lfm2, default_class="Lfm2MoeForCausalLM",
                       classes={"Lfm2MoeForCausalLM": "causal_lm", "Lfm2MoeModel": "base"},
                       dropouts=NO_DROPOUT, module=__name__),
}
