"""Bamba: Mamba2 layers with full-attention layers at ``attn_layer_indices``, each followed by a SwiGLU MLP."""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import gated_linears
from hf_gpu_estimator.architectures.recurrent import gqa, mamba2_from_fields, merge_linears
from hf_gpu_estimator.spec import FFN, Architecture, Layer

LINEAR = "linear_attention"


def analyze_bamba(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_bamba.py defaults; modeling_bamba.py module tree (BambaDecoderLayer: input_layernorm,
    # a BambaMixer or a BambaAttention, pre_ff_layernorm, BambaMLP; final_layernorm).
    d = Dims.read(f, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128000, tie_word_embeddings=False, max_position_embeddings=262144)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    mlp_bias = f.boolean("mlp_bias", False)
    attention = gqa(f, hidden, d.num_attention_heads, d.num_key_value_heads, bias=f.boolean("attention_bias", False))
    mamba = mamba2_from_fields(f, hidden)
    # BambaConfig.layers_block_type: attention at the listed indices, Mamba elsewhere (all Mamba by default).
    indices = set(f.int_list("attn_layer_indices") or ())
    types = tuple(FULL if i in indices else LINEAR for i in range(layers))
    mlp = gated_linears(hidden, inter, mlp_bias)

    t = Tally()
    t.add("embedding", vocab * hidden)
    for kind in types:
        part = attention if kind == FULL else mamba
        t.add("attention", part.params)
        t.add("norm", part.norm + 2 * hidden)  # the mixer's gated norm; input_layernorm, pre_ff_layernorm
    t.add("mlp", layers * sum(lin(x.in_features, x.out_features, x.bias) for x in mlp))
    t.add("norm", hidden)  # final_layernorm
    if head == "causal_lm" and not d.tie_word_embeddings:
        t.add("lm_head", vocab * hidden)

    ffn = FFN(kind="dense", intermediate=inter)
    kinds = tuple(dict.fromkeys(types))
    arch = d.architecture(
        model_type, attention_bias=f.boolean("attention_bias", False),
        layer_types=types,
        linears=merge_linears(*(attention.linears if k == FULL else mamba.linears for k in kinds), mlp),
        per_layer=tuple(Layer(mixer=attention.mixer if k == FULL else mamba.mixer, ffn=ffn) for k in types),
    )
    return arch, t


FAMILIES = {
    "bamba": Family(analyze=analyze_bamba, default_class="BambaForCausalLM",
                    classes={"BambaForCausalLM": "causal_lm", "BambaModel": "base"}, module=__name__),
}
