"""DBRX: fused-QKV grouped-query attention and a routed-expert FFN in every block, bias-free LayerNorms.

The dimensions sit in two nested configs (configuration_dbrx.py): ``attn_config`` (``kv_n_heads``,
``clip_qkv``, ``rope_theta``) and ``ffn_config`` (``ffn_hidden_size``, ``moe_num_experts``,
``moe_top_k``); the top level names them ``d_model``, ``n_heads``, ``n_layers``, ``max_seq_len``.
"""

from __future__ import annotations

from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import FFN, Architecture, Layer, LinearShape, Mixer


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
    linears = (
        LinearShape(name="Wqkv", in_features=hidden, out_features=hidden + 2 * kv_heads * head_dim),
        LinearShape(name="out_proj", in_features=hidden, out_features=hidden),
        LinearShape(name="w1", in_features=hidden, out_features=inter, count=experts),
        LinearShape(name="v1", in_features=hidden, out_features=inter, count=experts),
        LinearShape(name="w2", in_features=inter, out_features=hidden, count=experts),
    )
    expert = 3 * hidden * inter
    t = Tally()
    t.add("embedding", vocab * hidden)
    for _ in range(layers):
        t.add("attention", sum(lin(x.in_features, x.out_features, False) for x in linears[:2]))
        t.add("norm", 2 * hidden)  # norm_1, norm_2: LayerNorm(bias=False)
        t.add("experts", experts * expert)
        t.add("router", experts * hidden)
        t.idle += (experts - top_k) * expert
    t.add("norm", hidden)  # norm_f
    if head == "causal_lm":
        t.add("lm_head", vocab * hidden)

    layer = Layer(mixer=Mixer(kind="full", heads=heads, kv_heads=kv_heads, head_dim=head_dim),
                  ffn=FFN(kind="moe", intermediate=inter, experts=experts, top_k=top_k, looped_experts=True))
    arch = Architecture(
        model_type=model_type, family=model_type, num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=inter,
        vocab_size=vocab, tie_word_embeddings=False,
        max_position_embeddings=f.integer("max_seq_len", 2048, aliases=("max_position_embeddings",)),
        hidden_act=str((ffn.raw("ffn_act_fn") or {}).get("name", "silu")) if isinstance(
            ffn.raw("ffn_act_fn"), dict) else "silu",
        norm="layernorm", layer_types=(FULL,) * layers,
        num_experts=experts, num_experts_per_tok=top_k, moe_intermediate_size=inter,
        moe_layers=tuple(range(layers)), linears=linears, per_layer=(layer,) * layers,
        notes=("routing: softmax over the experts, top-k, weights renormalized by their p-norm "
               "(moe_normalize_expert_weights); DbrxExperts runs the routed experts one by one",
               "attn_config.attn_pdrop (attention dropout) is not modelled: 0 in DBRX's checkpoints"),
    )
    return arch, t


FAMILIES = {
    "dbrx": Family(analyze=analyze_dbrx, default_class="DbrxForCausalLM",
                   classes={"DbrxForCausalLM": "causal_lm", "DbrxModel": "base"},
                   dropouts=(("emb_pdrop", 0.0), ("resid_pdrop", 0.0), ("", 0.0)), module=__name__),
}
