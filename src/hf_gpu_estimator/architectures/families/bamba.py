"""Bamba: Mamba2 layers with full-attention layers at ``attn_layer_indices``, each followed by a SwiGLU MLP."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.parts import mamba2_from_fields
from hf_gpu_estimator.spec import Architecture

LINEAR = "linear_attention"


def analyze_bamba(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_bamba.py defaults; modeling_bamba.py module tree (BambaDecoderLayer: input_layernorm,
    # a BambaMixer or a BambaAttention, pre_ff_layernorm, BambaMLP; final_layernorm).
    d = Dims.read(f, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128000, tie_word_embeddings=False, max_position_embeddings=262144)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    mlp_bias = f.boolean("mlp_bias", False)
    attention = parts.gqa(f, hidden, d.num_attention_heads, d.num_key_value_heads,
                          bias=f.boolean("attention_bias", False))
    mamba = mamba2_from_fields(f, hidden)
    # BambaConfig.layers_block_type: attention at the listed indices, Mamba elsewhere (all Mamba by default).
    indices = set(f.int_list("attn_layer_indices") or ())
    types = tuple(FULL if i in indices else LINEAR for i in range(layers))
    mixers = {FULL: attention, LINEAR: mamba}
    norms = parts.norm(2 * hidden)  # input_layernorm, pre_ff_layernorm
    mlp = parts.gated_mlp(hidden, inter, bias=mlp_bias)
    s = parts.stack([(mixers[kind], norms, mlp) for kind in types],
                    outer=(parts.embedding(vocab, hidden), parts.norm(hidden),  # final_layernorm
                           parts.lm_head(vocab, hidden, head, tied=d.tie_word_embeddings)),
                    linears=(*(mixers[k] for k in dict.fromkeys(types)), mlp))
    arch = d.architecture(model_type, attention_bias=f.boolean("attention_bias", False), layer_types=types,
                          **s.keywords())
    return arch, s.tally


FAMILIES = {
    "bamba": Family(analyze=analyze_bamba, default_class="BambaForCausalLM",
                    classes={"BambaForCausalLM": "causal_lm", "BambaModel": "base"}, module=__name__),
}
