"""Jamba: Mamba layers with an attention layer every ``attn_layer_period``, MoE every ``expert_layer_period``."""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import fused_experts, gated_linears
from hf_gpu_estimator.architectures.recurrent import dt_rank, gqa, mamba1, merge_linears, period_offset
from hf_gpu_estimator.spec import FFN, Architecture, Layer

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
    attention = gqa(f, hidden, d.num_attention_heads, d.num_key_value_heads, bias=False)
    # JambaMambaMixer: Mamba1 with RMSNorms on dt, B and C.
    mamba = mamba1(hidden, f.integer("mamba_expand", 2) * hidden, f.integer("mamba_d_state", 16),
                   f.integer("mamba_d_conv", 4), dt_rank(f, "mamba_dt_rank", hidden),
                   proj_bias=f.boolean("mamba_proj_bias", False), conv_bias=f.boolean("mamba_conv_bias", True),
                   bc_norms=True)
    # JambaConfig.layers_block_type / layers_num_experts: a layer with one expert is a dense JambaMLP.
    types = tuple(FULL if i % attn_period == attn_offset else LINEAR for i in range(layers))
    moe_layers = tuple(i for i in range(layers) if i % expert_period == expert_offset and num_experts > 1)
    if moe_layers and top_k > num_experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_experts={num_experts}")

    t = Tally()
    t.add("embedding", vocab * hidden)
    expert = 3 * hidden * inter  # JambaExperts: fused gate_up_proj + down_proj
    moe_set = set(moe_layers)
    for i in range(layers):
        part = attention if types[i] == FULL else mamba
        t.add("attention", part.params)
        t.add("norm", part.norm + 2 * hidden)  # input_layernorm, pre_ff_layernorm
        if i in moe_set:
            t.add("experts", num_experts * expert)
            t.add("router", num_experts * hidden)  # JambaTopKRouter.weight
            t.idle += (num_experts - top_k) * expert
        else:
            t.add("mlp", 3 * hidden * inter)
    t.add("norm", hidden)  # final_layernorm
    if head == "causal_lm" and not d.tie_word_embeddings:
        t.add("lm_head", vocab * hidden)

    dense = FFN(kind="dense", intermediate=inter)
    moe = FFN(kind="moe", intermediate=inter, experts=num_experts, top_k=top_k)
    per_layer = tuple(Layer(mixer=attention.mixer if types[i] == FULL else mamba.mixer,
                            ffn=moe if i in moe_set else dense) for i in range(layers))
    ffn_linears = gated_linears(hidden, inter, False) if len(moe_layers) < layers else ()
    if moe_layers:
        ffn_linears += (
            *fused_experts(hidden, inter, num_experts),
        )
    kinds = tuple(dict.fromkeys(types))
    arch = d.architecture(
        model_type, layer_types=types,
        num_experts=num_experts if moe_layers else 0, num_experts_per_tok=top_k if moe_layers else 0,
        moe_intermediate_size=inter if moe_layers else 0, moe_layers=moe_layers,
        linears=merge_linears(*(attention.linears if k == FULL else mamba.linears for k in kinds), ffn_linears),
        per_layer=per_layer,
    )
    return arch, t


FAMILIES = {
    "jamba": Family(analyze=analyze_jamba, default_class="JambaForCausalLM",
                    classes={"JambaForCausalLM": "causal_lm", "JambaModel": "base"}, module=__name__),
}
