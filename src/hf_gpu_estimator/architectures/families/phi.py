"""Phi (phi-1, phi-1.5, phi-2): parallel block, LayerNorm, biases everywhere, lm_head bias."""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape


def analyze_phi(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    d = Dims.read(f, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                  vocab_size=51200, tie_word_embeddings=False, max_position_embeddings=2048, hidden_act="gelu_new")
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    tie = d.tie_word_embeddings
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    linears = (
        LinearShape(name="q_proj", in_features=hidden, out_features=q_out, bias=True),
        LinearShape(name="k_proj", in_features=hidden, out_features=kv_out, bias=True),
        LinearShape(name="v_proj", in_features=hidden, out_features=kv_out, bias=True),
        LinearShape(name="dense", in_features=q_out, out_features=hidden, bias=True),
        LinearShape(name="fc1", in_features=hidden, out_features=inter, bias=True),
        LinearShape(name="fc2", in_features=inter, out_features=hidden, bias=True),
    )
    attn = sum(lin(x.in_features, x.out_features, True) for x in linears[:4])
    mlp = sum(lin(x.in_features, x.out_features, True) for x in linears[4:])
    norms = 2 * hidden  # input_layernorm (weight + bias); attention and MLP read the same input
    if f.boolean("qk_layernorm", False):
        norms += 2 * 2 * (hidden // heads)  # modeling_phi.py: LayerNorm(hidden // heads) for q and k
    t = Tally()
    t.add("embedding", vocab * hidden)
    t.add("attention", layers * attn)
    t.add("mlp", layers * mlp)
    t.add("norm", layers * norms + 2 * hidden)  # + final_layernorm
    if head == "causal_lm":
        # modeling_phi.py: lm_head = Linear(hidden, vocab, bias=True); only the weight can be tied.
        t.add("lm_head", vocab + (0 if tie else vocab * hidden))
    arch = d.architecture(
        model_type,
        family="phi",
        gated_mlp=False,
        norm="layernorm",
        attention_bias=True,
        parallel_attention=True,
        layer_types=(FULL,) * layers,
        linears=linears,
    )
    return arch, t


FAMILIES = {
    "phi": Family(
        analyze=analyze_phi, default_class="PhiForCausalLM", classes={"PhiForCausalLM": "causal_lm", "PhiModel": "base"},
        dropouts=(("embd_pdrop", 0.0), ("resid_pdrop", 0.0), ("attention_dropout", 0.0)),  # configuration_phi.py
        module=__name__,
    ),
}
