"""GPT-2 (Conv1D layers, weight stored in x out) and GPT-BigCode (nn.Linear, multi-query attention):
learned positions, tied head."""

from __future__ import annotations

from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape


def analyze_gpt2(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_gpt2.py / configuration_gpt_bigcode.py attribute_map: hidden_size -> n_embd,
    # num_hidden_layers -> n_layer, ...
    bigcode = model_type == "gpt_bigcode"
    hidden = f.integer("n_embd", 768, aliases=("hidden_size",))
    layers = f.integer("n_layer", 12, aliases=("num_hidden_layers",))
    heads = f.integer("n_head", 12, aliases=("num_attention_heads",))
    # GPTBigCodeConfig: multi_query (default true) keeps one key/value head; c_attn fuses q, k and v.
    kv_heads = 1 if bigcode and f.boolean("multi_query", True) else heads
    kv_dim = kv_heads * (hidden // heads)
    positions = f.integer("n_positions", 1024, aliases=("max_position_embeddings",))
    inner = f.opt_int("n_inner") or 4 * hidden
    vocab = f.integer("vocab_size", 50257)
    tie = f.boolean("tie_word_embeddings", True)
    cross = f.boolean("add_cross_attention", False)
    linears = (
        LinearShape(name="c_attn", in_features=hidden, out_features=hidden + 2 * kv_dim, bias=True),
        LinearShape(name="c_proj", in_features=hidden, out_features=hidden, bias=True, group="attn_out"),
        LinearShape(name="c_fc", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="c_proj", in_features=inner, out_features=hidden, bias=True, group="mlp_out"),
    )
    attn = lin(hidden, hidden + 2 * kv_dim, True) + lin(hidden, hidden, True)
    norms = 2 * 2 * hidden  # ln_1, ln_2
    if cross:  # crossattention: c_attn (2E), q_attn (E), c_proj (E); ln_cross_attn
        attn += lin(hidden, 2 * hidden, True) + 2 * lin(hidden, hidden, True)
        norms += 2 * hidden
    t = Tally()
    t.add("embedding", vocab * hidden + positions * hidden)  # wte + wpe
    t.add("attention", layers * attn)
    t.add("mlp", layers * (lin(hidden, inner, True) + lin(inner, hidden, True)))
    t.add("norm", layers * norms + 2 * hidden)  # + ln_f
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)
    arch = Architecture(
        model_type=model_type,
        family=model_type,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=inner,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=positions,
        hidden_act=f.string("activation_function", "gelu_pytorch_tanh" if bigcode else "gelu_new"),
        gated_mlp=False,
        norm="layernorm",
        attention_bias=True,
        layer_types=(FULL,) * layers,
        linears=linears,
        notes=(("multi-query attention: one key/value head cached; eager attention expands it to every head "
                "(repeat_kv) before the score matmul",) if bigcode and kv_heads == 1 else ()),
    )
    return arch, t


FAMILIES = {
    "gpt2": Family(
        analyze=analyze_gpt2, default_class="GPT2LMHeadModel",
        classes={"GPT2LMHeadModel": "causal_lm", "GPT2Model": "base"},
        dropouts=(("embd_pdrop", 0.1), ("resid_pdrop", 0.1), ("attn_pdrop", 0.1)),  # configuration_gpt2.py
        native_softmax=True, module=__name__,
    ),
    # modeling_gpt_bigcode.py eager_attention_forward: softmax in float32, unlike gpt2.
    "gpt_bigcode": Family(
        analyze=analyze_gpt2, default_class="GPTBigCodeForCausalLM",
        classes={"GPTBigCodeForCausalLM": "causal_lm", "GPTBigCodeModel": "base"},
        dropouts=(("embd_pdrop", 0.1), ("resid_pdrop", 0.1), ("attn_pdrop", 0.1)),  # configuration_gpt_bigcode.py
        module=__name__,
    ),
}
