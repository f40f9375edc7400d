"""DBRX: fused-QKV grouped-query attention and a routed-expert FFN in every block, bias-free LayerNorms.

The dimensions sit in two nested configs (configuration_dbrx.py): ``attn_config`` (``kv_n_heads``,
``clip_qkv``, ``rope_theta``) and ``ffn_config`` (``ffn_hidden_size``, ``moe_num_experts``,
``moe_top_k``); the top level names them ``d_model``, ``n_heads``, ``n_layers``, ``max_seq_len``.
"""

from __future__ import annotations

from dataclasses import replace

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape


def analyze_dbrx(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_dbrx.py defaults (DbrxConfig, DbrxAttentionConfig, DbrxFFNConfig); modeling_dbrx.py.
    hidden = f.integer("d_model", 2048, aliases=("hidden_size",))
    layers = f.integer("n_layers", 24, aliases=("num_hidden_layers",))
    heads = f.integer("n_heads", 16, aliases=("num_attention_heads",))
    vocab = f.integer("vocab_size", 32000)
    attn = f.sub("attn_config")
    ffn = f.sub("ffn_config")
    kv_heads = attn.integer("kv_n_heads", 1)
    inter = ffn.integer("ffn_hidden_size", 3584)
    experts = ffn.integer("moe_num_experts", 4)
    top_k = ffn.integer("moe_top_k", 1)
    if hidden % heads:
        raise f.error("n_heads", heads, f"a divisor of d_model={hidden}")
    if heads % kv_heads:
        raise attn.error("kv_n_heads", kv_heads, f"a divisor of n_heads={heads}")
    if top_k > experts:
        raise ffn.error("moe_top_k", top_k, f"at most moe_num_experts={experts}")
    if f.boolean("tie_word_embeddings", False):
        raise f.error("tie_word_embeddings", True, "false (DbrxConfig.validate_architecture refuses tied embeddings)")
    head_dim = hidden // heads  # DbrxAttention: d_model // n_heads, no head_dim field

    # DbrxAttention: one fused Wqkv, out_proj, no biases. DbrxExpertGLU: w1, v1, w2 are 2-D parameters
    # of (experts * ffn_hidden_size, d_model), w2 applied transposed; the router is a bias-free Linear.
    attention = parts.attention(hidden, heads, kv_heads, head_dim, fused=True, names=("Wqkv", "out_proj"))
    stored = (LinearShape(name="w1", in_features=hidden, out_features=inter, count=experts),
              LinearShape(name="v1", in_features=hidden, out_features=inter, count=experts),
              LinearShape(name="w2", in_features=inter, out_features=hidden, count=experts))
    moe = parts.moe(parts.routed_experts(hidden, inter, experts, top_k, linears=stored), router=experts * hidden)
    # DbrxExperts.forward loops over the hit experts (no grouped_mm): memory/activations.py's looped_experts.
    moe = replace(moe, ffn=replace(moe.ffn, looped_experts=True))
    norms = parts.norm(2 * hidden)  # norm_1, norm_2: LayerNorm(bias=False)
    s = parts.stack([(attention, norms, moe)] * layers,
                    outer=(parts.embedding(vocab, hidden), parts.norm(hidden),  # norm_f
                           parts.lm_head(vocab, hidden, head, tied=False)))
    arch = Architecture(
        model_type=model_type, family=model_type, num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=inter,
        vocab_size=vocab, tie_word_embeddings=False,
        max_position_embeddings=f.integer("max_seq_len", 2048, aliases=("max_position_embeddings",)),
        hidden_act=str((ffn.raw("ffn_act_fn") or {}).get("name", "silu")) if isinstance(
            ffn.raw("ffn_act_fn"), dict) else "silu",
        norm="layernorm", layer_types=(FULL,) * layers,
        **s.keywords(),
        notes=("routing: softmax over the experts, top-k, weights renormalized by their p-norm "
               "(moe_normalize_expert_weights); DbrxExperts runs the routed experts one by one",
               "attn_config.attn_pdrop (attention dropout) is not modelled: 0 in DBRX's checkpoints"),
    )
    return arch, s.tally


FAMILIES = {
    "dbrx": Family(analyze=analyze_dbrx, default_class="DbrxForCausalLM",
                   classes={"DbrxForCausalLM": "causal_lm", "DbrxModel": "base"},
                   dropouts=(("emb_pdrop", 0.0), ("resid_pdrop", 0.0), ("", 0.0)), module=__name__),
}
