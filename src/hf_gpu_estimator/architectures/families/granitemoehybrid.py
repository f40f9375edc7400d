"""Granite 4 (granitemoehybrid): Mamba2 and attention layers, each with MoE experts plus a shared MLP."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.recurrent import MAMBA_OR_ATTENTION, pattern_list
from hf_gpu_estimator.spec import Architecture


def analyze_granitemoehybrid(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_granitemoehybrid.py defaults; modeling_granitemoehybrid.py module tree.
    d = Dims.read(f, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                  vocab_size=32000, tie_word_embeddings=False, max_position_embeddings=2048)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, tie = d.num_attention_heads, d.num_key_value_heads, d.tie_word_embeddings
    num_experts = f.opt_int("num_local_experts", 8, minimum=0) or 0
    top_k = f.opt_int("num_experts_per_tok", 2) or 0
    shared = f.integer("shared_intermediate_size", 1024)
    attention = parts.gqa(f, hidden, heads, kv_heads, bias=f.boolean("attention_bias", False))
    mamba = parts.mamba2_from_fields(f, hidden)
    # GraniteMoeHybridConfig.__post_init__: layer_types default to all Mamba ("linear_attention").
    types = pattern_list(f, "layer_types", MAMBA_OR_ATTENTION, layers) or ("linear_attention",) * layers
    if num_experts and top_k > num_experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_local_experts={num_experts}")

    mixers = {FULL: attention, "linear_attention": mamba}
    norms = parts.norm(2 * hidden)
    # GraniteMoeHybridMLP (the shared MLP, or the only one without experts): input_linear (2 * shared) and
    # output_linear, no biases.
    shared_mlp = parts.gated_mlp(hidden, shared, fused=True, names=("input_linear", "output_linear"),
                                 role="experts" if num_experts else "mlp")
    # GraniteMoeHybridExperts: fused gate_up_proj + down_proj; the router's weight.
    ffn = parts.moe(parts.routed_experts(hidden, inter, num_experts, top_k), router=num_experts * hidden,
                    shared=shared_mlp) if num_experts else shared_mlp
    s = parts.stack([(mixers[kind], norms, ffn) for kind in types],
                    outer=(parts.embedding(vocab, hidden), parts.norm(hidden),
                           parts.lm_head(vocab, hidden, head, tied=tie)),
                    linears=(*(mixers[k] for k in dict.fromkeys(types)), ffn))
    arch = d.architecture(
        model_type, intermediate_size=shared if not num_experts else inter, layer_types=types,
        num_shared_experts=1 if num_experts else 0, **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "granitemoehybrid": Family(
        analyze=analyze_granitemoehybrid, default_class="GraniteMoeHybridForCausalLM",
        classes={"GraniteMoeHybridForCausalLM": "causal_lm", "GraniteMoeHybridModel": "base"}, module=__name__,
    ),
}
