"""Phi (phi-1, phi-1.5, phi-2): parallel block, LayerNorm, biases everywhere, lm_head bias."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture


def analyze_phi(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    d = Dims.read(f, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                  vocab_size=51200, tie_word_embeddings=False, max_position_embeddings=2048, hidden_act="gelu_new")
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    tie = d.tie_word_embeddings
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    attention = parts.attention(hidden, heads, kv_heads, head_dim, qkv_bias=True,
                                names=("q_proj", "k_proj", "v_proj", "dense"))
    mlp = parts.mlp(hidden, inter, bias=True, names=("fc1", "fc2"))
    norms = 2 * hidden  # input_layernorm (weight + bias); attention and MLP read the same input
    if f.boolean("qk_layernorm", False):
        norms += 2 * 2 * (hidden // heads)  # modeling_phi.py: LayerNorm(hidden // heads) for q and k
    # modeling_phi.py: lm_head = Linear(hidden, vocab, bias=True); only the weight can be tied.
    s = parts.stack([(attention, parts.norm(norms), mlp)] * layers,
                    outer=(parts.embedding(vocab, hidden), parts.norm(2 * hidden),  # final_layernorm
                           parts.lm_head(vocab, hidden, head, tied=tie),
                           parts.params("lm_head", vocab if head == "causal_lm" else 0)))
    arch = d.architecture(
        model_type,
        family="phi",
        gated_mlp=False,
        norm="layernorm",
        attention_bias=True,
        parallel_attention=True,
        layer_types=(FULL,) * layers,
        **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "phi": Family(
        analyze=analyze_phi, default_class="PhiForCausalLM", classes={"PhiForCausalLM": "causal_lm", "PhiModel": "base"},
        dropouts=(("embd_pdrop", 0.0), ("resid_pdrop", 0.0), ("attention_dropout", 0.0)),  # configuration_phi.py
        module=__name__,
    ),
}
