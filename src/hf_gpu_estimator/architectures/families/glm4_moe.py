"""GLM-4.5 (glm4_moe): GQA attention (optional per-head q/k norms) + DeepSeek-V3-style MoE after dense layers."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture


def analyze_glm4_moe(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_glm4_moe.py defaults; modeling_glm4_moe.py module tree.
    # Glm4MoeAttention: getattr(config, "head_dim", hidden_size // num_attention_heads).
    d = Dims.read(f, hidden_size=4096, intermediate_size=10944, num_hidden_layers=46, num_attention_heads=96,
                  num_key_value_heads=8, vocab_size=151552, tie_word_embeddings=False, max_position_embeddings=131072)
    hidden, layers = d.hidden_size, d.num_layers
    moe_inter = f.integer("moe_intermediate_size", 1408)
    n_shared = f.integer("n_shared_experts", 1, minimum=0)
    n_routed = f.integer("n_routed_experts", 128, aliases=("num_local_experts",))
    top_k = f.integer("num_experts_per_tok", 8)
    first_dense = min(f.integer("first_k_dense_replace", 1, minimum=0), layers)
    bias = f.boolean("attention_bias", False)  # q/k/v only; o_proj never has a bias
    qk_norm = f.boolean("use_qk_norm", False)
    if top_k > n_routed:
        raise f.error("num_experts_per_tok", top_k, f"at most n_routed_experts={n_routed}")

    attention = parts.attention(hidden, d.num_attention_heads, d.num_key_value_heads, d.head_dim, qkv_bias=bias,
                                o_bias=False, qk_norm=2 * d.head_dim if qk_norm else 0)
    norms = parts.norm(2 * hidden)
    dense = parts.gated_mlp(hidden, d.intermediate_size)
    shared = parts.gated_mlp(hidden, moe_inter * n_shared, role="experts") if n_shared else None
    # gate.weight (e_score_correction_bias is a buffer); Glm4MoeTopkRouter: float32 logits and top-k weights.
    moe = parts.moe(parts.routed_experts(hidden, moe_inter, n_routed, top_k), router=n_routed * hidden,
                    shared=shared, fp32_routing=True)
    s = parts.stack(
        [(attention, norms, dense if i < first_dense else moe) for i in range(layers)],
        outer=(parts.embedding(d.vocab_size, hidden), parts.norm(hidden),
               parts.lm_head(d.vocab_size, hidden, head, tied=d.tie_word_embeddings)),
        linears=(attention, moe if first_dense < layers else dense),  # a MoE block where there is one
    )
    any_moe = bool(s.moe_layers)
    arch = d.architecture(
        model_type,
        family="glm4_moe",
        attention_bias=bias,
        layer_types=(FULL,) * layers,
        num_shared_experts=n_shared if any_moe else 0,
        num_dense_layers=s.leading_dense,
        moe_fp32_routing=any_moe,
        qk_norm="head" if qk_norm else None,
        notes=(
            "num_nextn_predict_layers (MTP) is not counted: transformers builds no module for it",
            "routing: sigmoid scores plus e_score_correction_bias (a float32 buffer), group-limited top-k; "
            "rotary embedding on partial_rotary_factor (default 0.5) of each head",
        ),
        **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "glm4_moe": Family(
        analyze=analyze_glm4_moe, default_class="Glm4MoeForCausalLM",
        classes={"Glm4MoeForCausalLM": "causal_lm", "Glm4MoeModel": "base"}, module=__name__,
    ),
}
