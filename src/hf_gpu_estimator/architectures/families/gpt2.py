"""GPT-2 (Conv1D layers, weight stored in x out) and GPT-BigCode (nn.Linear, multi-query attention):
learned positions, tied head."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import DERIVED, Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import FFN, Architecture, LinearShape, Mixer


def analyze_gpt2(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_gpt2.py / configuration_gpt_bigcode.py attribute_map: hidden_size -> n_embd,
    # num_hidden_layers -> n_layer, ...
    bigcode = model_type == "gpt_bigcode"
    d = Dims.read(f, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=DERIVED,
                  head_dim=DERIVED, intermediate_size=None, vocab_size=50257, tie_word_embeddings=True,
                  max_position_embeddings=1024, hidden_act="gelu_pytorch_tanh" if bigcode else "gelu_new",
                  names={"hidden_size": ("n_embd", "hidden_size"),
                         "num_hidden_layers": ("n_layer", "num_hidden_layers"),
                         "num_attention_heads": ("n_head", "num_attention_heads"), "intermediate_size": ("n_inner",),
                         "max_position_embeddings": ("n_positions", "max_position_embeddings"),
                         "hidden_act": ("activation_function",)})
    hidden, inner, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, positions, tie = d.num_attention_heads, d.max_position_embeddings, d.tie_word_embeddings
    # GPTBigCodeConfig: multi_query (default true) keeps one key/value head; c_attn fuses q, k and v.
    kv_heads = 1 if bigcode and f.boolean("multi_query", True) else heads
    kv_dim = kv_heads * (hidden // heads)
    cross = f.boolean("add_cross_attention", False)
    attn = (LinearShape(name="c_attn", in_features=hidden, out_features=hidden + 2 * kv_dim, bias=True),
            LinearShape(name="c_proj", in_features=hidden, out_features=hidden, bias=True, group="attn_out"))
    norms = 2 * 2 * hidden  # ln_1, ln_2
    if cross:  # crossattention: c_attn (2E), q_attn (E), c_proj (E); ln_cross_attn
        cross_attn = lin(hidden, 2 * hidden, True) + 2 * lin(hidden, hidden, True)
        norms += 2 * hidden
    attention = parts.combine(
        parts.of_linears("attention", attn, mixer=Mixer(kind="full", heads=heads, kv_heads=kv_heads,
                                                        head_dim=d.head_dim)),
        parts.params("attention", cross_attn if cross else 0))
    mlp = parts.of_linears("mlp", (
        LinearShape(name="c_fc", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="c_proj", in_features=inner, out_features=hidden, bias=True, group="mlp_out"),
    ), ffn=FFN(kind="dense", intermediate=inner, gated=False))
    s = parts.stack([(attention, parts.norm(norms), mlp)] * layers,
                    outer=(parts.params("embedding", vocab * hidden + positions * hidden),  # wte + wpe
                           parts.norm(2 * hidden),  # ln_f
                           parts.lm_head(vocab, hidden, head, tied=tie)))
    arch = d.architecture(
        model_type,
        num_key_value_heads=kv_heads,
        gated_mlp=False,
        norm="layernorm",
        attention_bias=True,
        layer_types=(FULL,) * layers,
        **s.keywords(),
        notes=(("multi-query attention: one key/value head cached; eager attention expands it to every head "
                "(repeat_kv) before the score matmul",) if bigcode and kv_heads == 1 else ()),
    )
    return arch, s.tally


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
