"""LFM2: gated short-convolution layers and attention layers, each followed by a SwiGLU MLP."""

from __future__ import annotations

from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.recurrent import gqa, merge_linears, pattern_list, short_conv
from hf_gpu_estimator.spec import FFN, Architecture, Layer, LinearShape

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
    # configuration_lfm2.py defaults (block_ff_dim and tie_embedding override the standard names).
    hidden = f.integer("hidden_size", 2560)
    layers = f.integer("num_hidden_layers", 32)
    heads = f.integer("num_attention_heads", 32)
    kv_heads = f.integer("num_key_value_heads", 8)
    vocab = f.integer("vocab_size", 65536)
    tie = f.boolean("tie_embedding", True, aliases=("tie_word_embeddings",))
    inter = _mlp_width(f, f.integer("block_ff_dim", 12288, aliases=("intermediate_size",)))
    attention = gqa(f, hidden, heads, kv_heads, bias=False, o_name="out_proj")
    head_dim = attention.mixer.head_dim
    conv = short_conv(hidden, f.integer("conv_L_cache", 3), f.boolean("conv_bias", False))
    # Lfm2Config.__post_init__: layer_types, else attention at full_attn_idxs (default: every layer).
    types = pattern_list(f, "layer_types", {FULL: FULL, CONV: CONV}, layers)
    if types is None:
        idxs = f.int_list("full_attn_idxs")
        full = set(range(layers)) if idxs is None else set(idxs)
        types = tuple(FULL if i in full else CONV for i in range(layers))
    mlp = (
        LinearShape(name="w1", in_features=hidden, out_features=inter),
        LinearShape(name="w3", in_features=hidden, out_features=inter),
        LinearShape(name="w2", in_features=inter, out_features=hidden),
    )

    t = Tally()
    t.add("embedding", vocab * hidden)
    for kind in types:
        if kind == FULL:
            t.add("attention", attention.params)
            t.add("norm", 2 * head_dim)  # q_layernorm, k_layernorm
        else:
            t.add("attention", conv.params)
        t.add("norm", 2 * hidden)  # operator_norm, ffn_norm
        t.add("mlp", sum(lin(x.in_features, x.out_features, False) for x in mlp))
    t.add("norm", hidden)  # embedding_norm (applied after the last layer)
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)

    ffn = FFN(kind="dense", intermediate=inter)
    kinds = tuple(dict.fromkeys(types))
    arch = Architecture(
        model_type=model_type, family=model_type, num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=inter,
        vocab_size=vocab, tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 128_000), layer_types=types,
        qk_norm="head", linears=merge_linears(*(attention.linears if k == FULL else conv.linears for k in kinds), mlp),
        per_layer=tuple(Layer(mixer=attention.mixer if k == FULL else conv.mixer, ffn=ffn) for k in types),
    )
    return arch, t


FAMILIES = {
    "lfm2": Family(analyze=analyze_lfm2, default_class="Lfm2ForCausalLM",
                   classes={"Lfm2ForCausalLM": "causal_lm", "Lfm2Model": "base"},
                   dropouts=(("", 0.0), ("", 0.0), ("", 0.0)), module=__name__),
}
