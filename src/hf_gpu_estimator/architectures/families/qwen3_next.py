"""Qwen3-Next: gated DeltaNet linear attention with gated full attention every 4th layer, MoE + shared expert."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.recurrent import pattern_list
from hf_gpu_estimator.spec import Architecture

LINEAR = "linear_attention"


def analyze_qwen3_next(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_qwen3_next.py defaults; modeling_qwen3_next.py module tree.
    d = Dims.read(f, hidden_size=2048, intermediate_size=5632, num_hidden_layers=48, num_attention_heads=16,
                  num_key_value_heads=2, head_dim=256, required=True, vocab_size=151936, tie_word_embeddings=False,
                  max_position_embeddings=32768)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    bias = f.boolean("attention_bias", False)
    k_heads = f.integer("linear_num_key_heads", 16)
    v_heads = f.integer("linear_num_value_heads", 32)
    if v_heads % k_heads:
        raise f.error("linear_num_value_heads", v_heads, f"a multiple of linear_num_key_heads={k_heads}")
    deltanet = parts.gated_deltanet(hidden, k_heads, v_heads, f.integer("linear_key_head_dim", 128),
                                    f.integer("linear_value_head_dim", 128), f.integer("linear_conv_kernel_dim", 4))
    num_experts = f.integer("num_experts", 512, minimum=0)
    top_k = f.integer("num_experts_per_tok", 10)
    moe_inter = f.integer("moe_intermediate_size", 512)
    shared_inter = f.integer("shared_expert_intermediate_size", 512)
    step = f.integer("decoder_sparse_step", 1)
    mlp_only = set(f.int_list("mlp_only_layers") or ())

    # Qwen3NextConfig.__post_init__: layer_types, else linear attention except every
    # `full_attention_interval`-th layer (default 4).
    types = pattern_list(f, "layer_types", {LINEAR: LINEAR, FULL: FULL}, layers)
    if types is None:
        interval = f.integer("full_attention_interval", 4)
        types = tuple(LINEAR if (i + 1) % interval else FULL for i in range(layers))
    # Qwen3NextDecoderLayer: a sparse MoE block unless listed in mlp_only_layers or off the sparse step.
    is_moe = [i not in mlp_only and num_experts > 0 and (i + 1) % step == 0 for i in range(layers)]
    if any(is_moe) and top_k > num_experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_experts={num_experts}")

    # Qwen3NextAttention: q_proj doubles its output (query and an output gate), q_norm/k_norm per head.
    attention = parts.attention(hidden, heads, kv_heads, head_dim, qkv_bias=bias, q_gate=True, qk_norm=2 * head_dim)
    mixers = {FULL: attention, LINEAR: deltanet}
    norms = parts.norm(2 * hidden)
    dense = parts.gated_mlp(hidden, inter)
    # Qwen3NextExperts (fused gate_up_proj + down_proj, no bias); gate.weight + shared_expert_gate (hidden -> 1).
    moe = parts.moe(parts.routed_experts(hidden, moe_inter, num_experts, top_k), router=num_experts * hidden,
                    shared=parts.gated_mlp(hidden, shared_inter, role="experts"), always=(parts.shared_expert_gate(hidden),))
    kinds = tuple(dict.fromkeys(types))
    s = parts.stack(
        [(mixers[kind], norms, moe if is_moe[i] else dense) for i, kind in enumerate(types)],
        outer=(parts.embedding(vocab, hidden), parts.norm(hidden),
               parts.lm_head(vocab, hidden, head, tied=d.tie_word_embeddings)),
        # Both mixer kinds' linears, then the MoE block's, then a dense MLP's where a layer has one.
        linears=(*(mixers[k] for k in kinds), *((moe,) if any(is_moe) else ()),
                 *((dense,) if not all(is_moe) else ())),
    )
    any_moe = bool(s.moe_layers)
    arch = d.architecture(
        model_type, attention_bias=bias, layer_types=types, num_shared_experts=1 if any_moe else 0,
        norm_style="gemma", qk_norm="head", **s.keywords(),
        notes=("linears lists the linear layers of both layer kinds (gated DeltaNet and gated attention); "
               "each layer has one of them",) if len(kinds) > 1 else (),
    )
    return arch, s.tally


FAMILIES = {
    "qwen3_next": Family(
        analyze=analyze_qwen3_next, default_class="Qwen3NextForCausalLM",
        classes={"Qwen3NextForCausalLM": "causal_lm", "Qwen3NextModel": "base"}, module=__name__,
    ),
}
