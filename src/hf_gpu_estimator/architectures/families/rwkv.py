"""RWKV (RWKV-4 as transformers implements it): per layer a time mix (a per-channel WKV recurrence) and a
channel mix (a squared-ReLU MLP gated by a receptance), both reading a token-shifted copy of their input."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import NO_DROPOUT, Family
from hf_gpu_estimator.spec import FFN, Architecture, LinearShape, Mixer


def analyze_rwkv(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_rwkv.py defaults (attention_hidden_size and intermediate_size default to hidden_size
    # and 4 * hidden_size); modeling_rwkv.py module tree.
    hidden = f.integer("hidden_size", 4096)
    layers = f.integer("num_hidden_layers", 32)
    vocab = f.integer("vocab_size", 50277)
    tie = f.boolean("tie_word_embeddings", False)
    inner = f.opt_int("attention_hidden_size", None) or hidden
    inter = f.opt_int("intermediate_size", None) or 4 * hidden
    # RwkvModel.forward's state: five (batch, hidden, layers) tensors; two token-shift states in the model
    # dtype, the WKV numerator, denominator and maximum in fp32.
    mixer = Mixer(kind="wkv", inner=inner, state_elements=3 * inner, conv_elements=2 * hidden, conv_kernel=1)
    # RwkvSelfAttention: key, value, receptance (hidden -> attention_hidden_size), output; no biases;
    # time_decay and time_first (attention width), time_mix_key/value/receptance (hidden).
    time_mix = parts.combine(parts.of_linears("attention", (
        LinearShape(name="key", in_features=hidden, out_features=inner, group="state"),
        LinearShape(name="value", in_features=hidden, out_features=inner, group="state"),
        LinearShape(name="receptance", in_features=hidden, out_features=inner, group="state"),
        LinearShape(name="output", in_features=inner, out_features=hidden, group="state"),
    ), mixer=mixer), parts.params("attention", 2 * inner + 3 * hidden))
    # RwkvFeedForward: key (hidden -> intermediate), receptance (hidden -> hidden), value back;
    # time_mix_key and time_mix_receptance (hidden).
    channel_mix = parts.combine(parts.of_linears("mlp", (
        LinearShape(name="key", in_features=hidden, out_features=inter, group="mlp_in"),
        LinearShape(name="receptance", in_features=hidden, out_features=hidden, group="mlp_in"),
        LinearShape(name="value", in_features=inter, out_features=hidden, group="mlp_out"),
    ), ffn=FFN(kind="dense", intermediate=inter, gated=False)), parts.params("mlp", 2 * hidden))
    # ln1 and ln2 per block (LayerNorm: weight and bias); the first block's pre_ln, ln_out.
    s = parts.stack([(time_mix, parts.norm(4 * hidden), channel_mix)] * layers, merge=False,
                    outer=(parts.embedding(vocab, hidden), parts.norm(2 * hidden + 2 * hidden),
                           parts.lm_head(vocab, hidden, head, tied=tie)))  # RwkvForCausalLM.head
    arch = Architecture(
        model_type=model_type, family=model_type, num_layers=layers, hidden_size=hidden,
        num_attention_heads=0, num_key_value_heads=0, head_dim=0, intermediate_size=inter, vocab_size=vocab,
        tie_word_embeddings=tie, max_position_embeddings=f.integer("context_length", 1024),
        hidden_act="relu2", gated_mlp=False, norm="layernorm", layer_types=("linear_attention",) * layers,
        **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "rwkv": Family(analyze=analyze_rwkv, default_class="RwkvForCausalLM",
                   classes={"RwkvForCausalLM": "causal_lm", "RwkvModel": "base"}, dropouts=NO_DROPOUT,
                   module=__name__),
}
