"""GLM-4.5 (glm4_moe): GQA attention (optional per-head q/k norms) + DeepSeek-V3-style MoE after dense layers."""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import attention_linears, fused_experts, gated_linears
from hf_gpu_estimator.spec import Architecture


def analyze_glm4_moe(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_glm4_moe.py defaults; modeling_glm4_moe.py module tree.
    # Glm4MoeAttention: getattr(config, "head_dim", hidden_size // num_attention_heads).
    d = Dims.read(f, hidden_size=4096, intermediate_size=10944, num_hidden_layers=46, num_attention_heads=96,
                  num_key_value_heads=8, vocab_size=151552, tie_word_embeddings=False, max_position_embeddings=131072)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    tie = d.tie_word_embeddings
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    moe_inter = f.integer("moe_intermediate_size", 1408)
    n_shared = f.integer("n_shared_experts", 1, minimum=0)
    n_routed = f.integer("n_routed_experts", 128, aliases=("num_local_experts",))
    top_k = f.integer("num_experts_per_tok", 8)
    first_dense = f.integer("first_k_dense_replace", 1, minimum=0)
    bias = f.boolean("attention_bias", False)  # q/k/v only; o_proj never has a bias
    qk_norm = f.boolean("use_qk_norm", False)
    if top_k > n_routed:
        raise f.error("num_experts_per_tok", top_k, f"at most n_routed_experts={n_routed}")
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    shared_inter = moe_inter * n_shared
    expert = 3 * hidden * moe_inter
    moe_layers = tuple(range(min(first_dense, layers), layers))

    t = Tally()
    t.add("embedding", vocab * hidden)
    t.add("attention", layers * (lin(hidden, q_out, bias) + 2 * lin(hidden, kv_out, bias) + lin(q_out, hidden, False)))
    t.add("norm", layers * (2 * hidden + (2 * head_dim if qk_norm else 0)) + hidden)
    n_moe = len(moe_layers)
    t.add("mlp", (layers - n_moe) * 3 * hidden * inter)
    t.add("experts", n_moe * (n_routed * expert + 3 * hidden * shared_inter))
    t.add("router", n_moe * n_routed * hidden)  # gate.weight; e_score_correction_bias is a buffer
    t.idle += n_moe * (n_routed - top_k) * expert
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)

    linears = attention_linears(hidden, q_out, kv_out, bias, False)
    if moe_layers:
        linears += (
            *fused_experts(hidden, moe_inter, n_routed),
        )
        if shared_inter:
            linears += gated_linears(hidden, shared_inter, False)
    else:
        linears += gated_linears(hidden, inter, False)
    arch = d.architecture(
        model_type,
        family="glm4_moe",
        attention_bias=bias,
        layer_types=(FULL,) * layers,
        num_experts=n_routed if moe_layers else 0,
        num_experts_per_tok=top_k if moe_layers else 0,
        moe_intermediate_size=moe_inter if moe_layers else 0,
        num_shared_experts=n_shared if moe_layers else 0,
        shared_expert_intermediate_size=shared_inter if moe_layers else 0,
        num_dense_layers=min(first_dense, layers),
        moe_layers=moe_layers,
        moe_fp32_routing=bool(moe_layers),  # Glm4MoeTopkRouter: float32 logits and top-k weights
        linears=linears,
        qk_norm="head" if qk_norm else None,
        notes=(
            "num_nextn_predict_layers (MTP) is not counted: transformers builds no module for it",
            "routing: sigmoid scores plus e_score_correction_bias (a float32 buffer), group-limited top-k; "
            "rotary embedding on partial_rotary_factor (default 0.5) of each head",
        ),
    )
    return arch, t


FAMILIES = {
    "glm4_moe": Family(
        analyze=analyze_glm4_moe, default_class="Glm4MoeForCausalLM",
        classes={"Glm4MoeForCausalLM": "causal_lm", "Glm4MoeModel": "base"}, module=__name__,
    ),
}
