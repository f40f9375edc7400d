"""GPT-NeoX (Pythia, GPT-NeoX-20B)."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import DERIVED, Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape, Mixer


def analyze_gpt_neox(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    d = Dims.read(f, hidden_size=6144, num_hidden_layers=44, num_attention_heads=64, num_key_value_heads=DERIVED,
                  head_dim=DERIVED, intermediate_size=24576, vocab_size=50432, tie_word_embeddings=False,
                  max_position_embeddings=2048, hidden_act="gelu")
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    bias = f.boolean("attention_bias", True)
    # GPTNeoXAttention: query_key_value (hidden -> 3 * hidden) and dense; GPTNeoXMLP with biases.
    attention = parts.of_linears("attention", (
        LinearShape(name="query_key_value", in_features=hidden, out_features=3 * hidden, bias=bias),
        LinearShape(name="dense", in_features=hidden, out_features=hidden, bias=bias),
    ), mixer=Mixer(kind="full", heads=d.num_attention_heads, kv_heads=d.num_key_value_heads, head_dim=d.head_dim))
    mlp = parts.mlp(hidden, inter, bias=True, names=("dense_h_to_4h", "dense_4h_to_h"))
    s = parts.stack([(attention, parts.norm(2 * 2 * hidden), mlp)] * layers,  # two LayerNorms per layer
                    outer=(parts.embedding(vocab, hidden), parts.norm(2 * hidden),  # embed_in, final_layer_norm
                           parts.lm_head(vocab, hidden, head, tied=d.tie_word_embeddings)))
    arch = d.architecture(
        model_type,
        family="gpt_neox",
        gated_mlp=False,
        norm="layernorm",
        attention_bias=bias,
        parallel_attention=f.boolean("use_parallel_residual", True),
        layer_types=(FULL,) * layers,
        **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "gpt_neox": Family(
        analyze=analyze_gpt_neox, default_class="GPTNeoXForCausalLM",
        classes={"GPTNeoXForCausalLM": "causal_lm", "GPTNeoXModel": "base"},
        dropouts=(("hidden_dropout", 0.0), ("hidden_dropout", 0.0), ("attention_dropout", 0.0)),
        module=__name__,
    ),
}
