"""Jamba: Mamba layers with an attention layer every ``attn_layer_period``, MoE every ``expert_layer_period``."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.recurrent import dt_rank, period_offset
from hf_gpu_estimator.spec import Architecture

LINEAR = "linear_attention"


def analyze_jamba(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_jamba.py defaults; modeling_jamba.py (JambaAttentionDecoderLayer / JambaMambaDecoderLayer).
    d = Dims.read(f, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=65536, tie_word_embeddings=False, max_position_embeddings=262144)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    num_experts = f.integer("num_experts", 16, aliases=("num_local_experts",))
    top_k = f.integer("num_experts_per_tok", 2)
    attn_period, attn_offset = period_offset(f, "attn_layer_period", "attn_layer_offset", 8, 4)
    expert_period, expert_offset = period_offset(f, "expert_layer_period", "expert_layer_offset", 2, 1)
    attention = parts.gqa(f, hidden, d.num_attention_heads, d.num_key_value_heads, bias=False)
    # JambaMambaMixer: Mamba1 with RMSNorms on dt, B and C.
    mamba = parts.mamba1(hidden, f.integer("mamba_expand", 2) * hidden, f.integer("mamba_d_state", 16),
                         f.integer("mamba_d_conv", 4), dt_rank(f, "mamba_dt_rank", hidden),
                         proj_bias=f.boolean("mamba_proj_bias", False), conv_bias=f.boolean("mamba_conv_bias", True),
                         bc_norms=True)
    # JambaConfig.layers_block_type / layers_num_experts: a layer with one expert is a dense JambaMLP.
    types = tuple(FULL if i % attn_period == attn_offset else LINEAR for i in range(layers))
    is_moe = [i % expert_period == expert_offset and num_experts > 1 for i in range(layers)]
    if any(is_moe) and top_k > num_experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_experts={num_experts}")

    mixers = {FULL: attention, LINEAR: mamba}
    norms = parts.norm(2 * hidden)  # input_layernorm, pre_ff_layernorm
    dense = parts.gated_mlp(hidden, inter)
    # JambaExperts: fused gate_up_proj + down_proj; JambaTopKRouter.weight.
    moe = parts.moe(parts.routed_experts(hidden, inter, num_experts, top_k), router=num_experts * hidden)
    s = parts.stack(
        [(mixers[kind], norms, moe if is_moe[i] else dense) for i, kind in enumerate(types)],
        outer=(parts.embedding(vocab, hidden), parts.norm(hidden),  # final_layernorm
               parts.lm_head(vocab, hidden, head, tied=d.tie_word_embeddings)),
        # Both mixer kinds' linears, then a dense MLP's where a layer has one, then the experts'.
        linears=(*(mixers[k] for k in dict.fromkeys(types)), *((dense,) if not all(is_moe) else ()),
                 *((moe,) if any(is_moe) else ())),
    )
    return d.architecture(model_type, layer_types=types, **s.keywords()), s.tally


FAMILIES = {
    "jamba": Family(analyze=analyze_jamba, default_class="JambaForCausalLM",
                    classes={"JambaForCausalLM": "causal_lm", "JambaModel": "base"}, module=__name__),
}
