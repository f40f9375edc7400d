"""DeepSeek-V2/V3: MLA + MoE with shared experts and leading dense layers.

The two differ in defaults and in routing, not in their module trees (modeling_deepseek_v2.py,
modeling_deepseek_v3.py): V2 routes by softmax then top-k ("greedy", or "group_limited_greedy"),
has an ``mlp_bias`` option on the dense and shared MLPs, and its config leaves ``num_experts_per_tok``
null; V3 routes by sigmoid plus a per-expert correction bias (a buffer, not a parameter) with
group-limited top-k, and no MLP biases.
"""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture

#: Config defaults that differ: configuration_deepseek_v3.py, configuration_deepseek_v2.py.
_DEFAULTS = {
    "deepseek_v3": {"hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
                    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
                    "n_shared_experts": 1, "n_routed_experts": 256, "num_experts_per_tok": 8,
                    "first_k_dense_replace": 3, "vocab_size": 129280, "max_position_embeddings": 4096},
    "deepseek_v2": {"hidden_size": 4096, "intermediate_size": 11008, "moe_intermediate_size": 1407,
                    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": None,
                    "n_shared_experts": 2, "n_routed_experts": 64, "num_experts_per_tok": None,
                    "first_k_dense_replace": 0, "vocab_size": 102400, "max_position_embeddings": 2048},
}  # fmt: skip


def analyze_deepseek_v3(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_deepseek_v3.py / _v2.py defaults; modeling_deepseek_v3.py / _v2.py module trees. The
    # config's num_nextn_predict_layers (MTP) has no module in transformers, so it is not counted.
    d = _DEFAULTS[model_type]
    v2 = model_type == "deepseek_v2"
    hidden = f.integer("hidden_size", d["hidden_size"])
    inter = f.integer("intermediate_size", d["intermediate_size"])
    moe_inter = f.integer("moe_intermediate_size", d["moe_intermediate_size"])
    layers = f.integer("num_hidden_layers", d["num_hidden_layers"])
    heads = f.integer("num_attention_heads", d["num_attention_heads"])
    kv_heads = f.opt_int("num_key_value_heads", d["num_key_value_heads"]) or heads
    n_shared = f.integer("n_shared_experts", d["n_shared_experts"], minimum=0)
    n_routed = f.integer("n_routed_experts", d["n_routed_experts"], aliases=("num_local_experts",))
    kv_rank = f.integer("kv_lora_rank", 512)
    q_rank = f.opt_int("q_lora_rank", 1536)
    rope = f.integer("qk_rope_head_dim", 64)
    v_dim = f.integer("v_head_dim", 128)
    nope = f.integer("qk_nope_head_dim", 128)
    given_top_k = f.opt_int("num_experts_per_tok", d["num_experts_per_tok"])
    top_k = given_top_k or 0  # deepseek_v2's default is null: no routed expert is counted as active
    first_dense = f.integer("first_k_dense_replace", d["first_k_dense_replace"], minimum=0)
    vocab = f.integer("vocab_size", d["vocab_size"])
    tie = f.boolean("tie_word_embeddings", False)
    bias = f.boolean("attention_bias", False)
    mlp_bias = v2 and f.boolean("mlp_bias", False)  # DeepseekV2MLP: dense layers and shared experts
    if top_k > n_routed:
        raise f.error("num_experts_per_tok", top_k, f"at most n_routed_experts={n_routed}")
    attention = parts.mla(hidden, heads, kv_heads, q_rank=q_rank, kv_rank=kv_rank, nope=nope, rope=rope,
                          v_dim=v_dim, bias=bias)
    norms = parts.norm(2 * hidden)
    dense = parts.gated_mlp(hidden, inter, bias=mlp_bias)  # DeepseekV2MLP / DeepseekV3MLP
    shared = parts.gated_mlp(hidden, moe_inter * n_shared, bias=mlp_bias, role="experts") if n_shared else None
    # gate.weight (e_score_correction_bias is a buffer). DeepseekV2/V3TopkRouter: F.linear on float32 input
    # and weight, softmax/sigmoid in fp32, top-k weights scaled and returned as float32.
    moe = parts.moe(parts.routed_experts(hidden, moe_inter, n_routed, top_k), router=n_routed * hidden,
                    shared=shared, fp32_routing=True)
    s = parts.stack(
        [(attention, norms, dense if i < first_dense else moe) for i in range(layers)],
        outer=(parts.embedding(vocab, hidden), parts.norm(hidden), parts.lm_head(vocab, hidden, head, tied=tie)),
        linears=(attention, moe if first_dense < layers else dense),  # a MoE block where there is one
    )
    any_moe = bool(s.moe_layers)
    arch = Architecture(
        model_type=model_type,
        family=model_type,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=nope + rope,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", d["max_position_embeddings"]),
        hidden_act=f.string("hidden_act", "silu"),
        attention_bias=bias,
        layer_types=(FULL,) * layers,
        v_head_dim=v_dim,
        num_shared_experts=n_shared if any_moe else 0,
        moe_fp32_routing=any_moe,
        num_dense_layers=s.leading_dense,
        q_lora_rank=q_rank,
        kv_lora_rank=kv_rank,
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        notes=(
            "num_nextn_predict_layers (MTP) is not counted: transformers builds no module for it",
            *(("num_experts_per_tok is null (transformers' default): no routed expert counted as active",)
              if given_top_k is None and any_moe else ()),
            *(("routing: softmax over the experts, then top-k (topk_method greedy or group_limited_greedy); "
               "the router runs in float32",) if v2 else
              ("routing: sigmoid scores plus e_score_correction_bias (a buffer), group-limited top-k",)),
        ),
        **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "deepseek_v3": Family(
        analyze=analyze_deepseek_v3, default_class="DeepseekV3ForCausalLM",
        classes={"DeepseekV3ForCausalLM": "causal_lm", "DeepseekV3Model": "base"}, module=__name__,
    ),
    "deepseek_v2": Family(
        analyze=analyze_deepseek_v3, default_class="DeepseekV2ForCausalLM",
        classes={"DeepseekV2ForCausalLM": "causal_lm", "DeepseekV2Model": "base"}, module=__name__,
    ),
}
