"""GPT-NeoX (Pythia, GPT-NeoX-20B)."""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import DERIVED, Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape


def analyze_gpt_neox(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    d = Dims.read(f, hidden_size=6144, num_hidden_layers=44, num_attention_heads=64, num_key_value_heads=DERIVED,
                  head_dim=DERIVED, intermediate_size=24576, vocab_size=50432, tie_word_embeddings=False,
                  max_position_embeddings=2048, hidden_act="gelu")
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    tie = d.tie_word_embeddings
    bias = f.boolean("attention_bias", True)
    linears = (
        LinearShape(name="query_key_value", in_features=hidden, out_features=3 * hidden, bias=bias),
        LinearShape(name="dense", in_features=hidden, out_features=hidden, bias=bias),
        LinearShape(name="dense_h_to_4h", in_features=hidden, out_features=inter, bias=True),
        LinearShape(name="dense_4h_to_h", in_features=inter, out_features=hidden, bias=True),
    )
    t = Tally()
    t.add("embedding", vocab * hidden)  # embed_in
    t.add("attention", layers * (lin(hidden, 3 * hidden, bias) + lin(hidden, hidden, bias)))
    t.add("mlp", layers * (lin(hidden, inter, True) + lin(inter, hidden, True)))
    t.add("norm", layers * 2 * 2 * hidden + 2 * hidden)  # two LayerNorms per layer + final_layer_norm
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)
    arch = d.architecture(
        model_type,
        family="gpt_neox",
        gated_mlp=False,
        norm="layernorm",
        attention_bias=bias,
        parallel_attention=f.boolean("use_parallel_residual", True),
        layer_types=(FULL,) * layers,
        linears=linears,
    )
    return arch, t


FAMILIES = {
    "gpt_neox": Family(
        analyze=analyze_gpt_neox, default_class="GPTNeoXForCausalLM",
        classes={"GPTNeoXForCausalLM": "causal_lm", "GPTNeoXModel": "base"},
        dropouts=(("hidden_dropout", 0.0), ("hidden_dropout", 0.0), ("attention_dropout", 0.0)),
        module=__name__,
    ),
}
