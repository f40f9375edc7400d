"""Granite 4 (granitemoehybrid): Mamba2 and attention layers, each with MoE experts plus a shared MLP."""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import fused_experts
from hf_gpu_estimator.architectures.recurrent import (
    MAMBA_OR_ATTENTION,
    gqa,
    mamba2_from_fields,
    merge_linears,
    pattern_list,
)
from hf_gpu_estimator.spec import FFN, Architecture, Layer, LinearShape


def analyze_granitemoehybrid(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_granitemoehybrid.py defaults; modeling_granitemoehybrid.py module tree.
    d = Dims.read(f, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                  vocab_size=32000, tie_word_embeddings=False, max_position_embeddings=2048)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, tie = d.num_attention_heads, d.num_key_value_heads, d.tie_word_embeddings
    num_experts = f.opt_int("num_local_experts", 8, minimum=0) or 0
    top_k = f.opt_int("num_experts_per_tok", 2) or 0
    shared = f.integer("shared_intermediate_size", 1024)
    attention = gqa(f, hidden, heads, kv_heads, bias=f.boolean("attention_bias", False))
    mamba = mamba2_from_fields(f, hidden)
    # GraniteMoeHybridConfig.__post_init__: layer_types default to all Mamba ("linear_attention").
    types = pattern_list(f, "layer_types", MAMBA_OR_ATTENTION, layers) or ("linear_attention",) * layers
    if num_experts and top_k > num_experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_local_experts={num_experts}")

    t = Tally()
    t.add("embedding", vocab * hidden)
    expert = 3 * hidden * inter  # GraniteMoeHybridExperts: fused gate_up_proj + down_proj
    shared_mlp = 3 * hidden * shared  # GraniteMoeHybridMLP: input_linear (2 * shared) + output_linear
    for kind in types:
        part = attention if kind == FULL else mamba
        t.add("attention", part.params)
        t.add("norm", part.norm + 2 * hidden)
        if num_experts:
            t.add("experts", num_experts * expert + shared_mlp)
            t.add("router", num_experts * hidden)
            t.idle += (num_experts - top_k) * expert
        else:
            t.add("mlp", shared_mlp)
    t.add("norm", hidden)
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)

    ffn_linears = (
        LinearShape(name="input_linear", in_features=hidden, out_features=2 * shared),
        LinearShape(name="output_linear", in_features=shared, out_features=hidden),
    )
    if num_experts:
        ffn = FFN(kind="moe", intermediate=inter, experts=num_experts, top_k=top_k, shared=shared)
        ffn_linears = (
            *fused_experts(hidden, inter, num_experts),
        ) + ffn_linears
    else:
        ffn = FFN(kind="dense", intermediate=shared)
    per_layer = tuple(Layer(mixer=attention.mixer if k == FULL else mamba.mixer, ffn=ffn) for k in types)
    kinds = tuple(dict.fromkeys(types))
    arch = d.architecture(
        model_type, intermediate_size=shared if not num_experts else inter, layer_types=types,
        num_experts=num_experts, num_experts_per_tok=top_k if num_experts else 0,
        moe_intermediate_size=inter if num_experts else 0, num_shared_experts=1 if num_experts else 0,
        shared_expert_intermediate_size=shared if num_experts else 0,
        moe_layers=tuple(range(layers)) if num_experts else (),
        linears=merge_linears(*(attention.linears if k == FULL else mamba.linears for k in kinds), ffn_linears),
        per_layer=per_layer,
    )
    return arch, t


FAMILIES = {
    "granitemoehybrid": Family(
        analyze=analyze_granitemoehybrid, default_class="GraniteMoeHybridForCausalLM",
        classes={"GraniteMoeHybridForCausalLM": "causal_lm", "GraniteMoeHybridModel": "base"}, module=__name__,
    ),
}
