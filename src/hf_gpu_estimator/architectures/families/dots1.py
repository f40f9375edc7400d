"""dots.llm1 (``dots1``): Qwen3-style attention (per-head q/k RMSNorms) with DeepSeek-V3-style experts.

modeling_dots1.py: after ``first_k_dense_replace`` dense layers, every layer routes ``num_experts_per_tok``
of ``n_routed_experts`` (sigmoid scores plus ``e_score_correction_bias``, a buffer) beside
``n_shared_experts`` shared ones (one MLP of ``moe_intermediate_size * n_shared_experts``). Layers at
index ``max_window_layers`` and above slide when ``sliding_window`` is set (Dots1Config.__post_init__).
"""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, SLIDING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture


def analyze_dots1(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_dots1.py defaults. Its n_routed_experts, n_shared_experts and num_experts_per_tok
    # default to null (the model cannot be built so): here they are required once a layer is MoE.
    d = Dims.read(f, hidden_size=4608, intermediate_size=10944, num_hidden_layers=62, num_attention_heads=32,
                  num_key_value_heads=32, vocab_size=152064, tie_word_embeddings=False, max_position_embeddings=2048)
    hidden, layers = d.hidden_size, d.num_layers
    moe_inter = f.integer("moe_intermediate_size", 1408)
    bias = f.boolean("attention_bias", False)
    first_dense = min(f.integer("first_k_dense_replace", 0, minimum=0), layers)
    any_moe = first_dense < layers
    experts = f.integer("n_routed_experts", 0, aliases=("num_local_experts",)) if any_moe else 0
    n_shared = f.integer("n_shared_experts", 0, minimum=0) if any_moe else 0
    top_k = f.integer("num_experts_per_tok", 0) if any_moe else 0
    if top_k > experts:
        raise f.error("num_experts_per_tok", top_k, f"at most n_routed_experts={experts}")
    window = f.opt_int("sliding_window", 4096)
    max_window = f.integer("max_window_layers", 62, minimum=0)
    types = f.layer_types(layers)
    if types is None:
        types = tuple(SLIDING if window is not None and i >= max_window else FULL for i in range(layers))

    # input/post_attention_layernorm; q_norm, k_norm per head.
    attention = parts.gqa(f, hidden, d.num_attention_heads, d.num_key_value_heads, bias=bias, qk_norm=True)
    mixers = {FULL: attention, SLIDING: parts.windowed(attention, window=window)}
    norms = parts.norm(2 * hidden)
    dense = parts.gated_mlp(hidden, d.intermediate_size)
    routed = parts.routed_experts(hidden, moe_inter, experts, top_k)
    # Dots1TopkRouter: float32 weight, float32 router logits, sigmoid scores, float32 top-k weights.
    shared = parts.gated_mlp(hidden, moe_inter * n_shared, role="experts") if n_shared else None
    moe = parts.moe(routed, router=experts * hidden, shared=shared, fp32_routing=True)
    s = parts.stack(
        [(mixers[kind], norms, dense if i < first_dense else moe) for i, kind in enumerate(types)],
        outer=(parts.embedding(d.vocab_size, hidden), parts.norm(hidden),
               parts.lm_head(d.vocab_size, hidden, head, tied=d.tie_word_embeddings)),
        # One block's linears: the attention, a dense MLP when there is one, the routed experts.
        linears=(attention, *((dense,) if first_dense else ()), *((routed,) if any_moe else ())),
    )
    arch = d.architecture(
        model_type, attention_bias=bias, layer_types=types,
        sliding_window=window if SLIDING in types else None, qk_norm="head",
        num_shared_experts=n_shared, num_dense_layers=s.leading_dense, **s.keywords(),
        notes=("routing: sigmoid scores plus e_score_correction_bias (a buffer), group-limited top-k; "
               "the router weight is float32",) if any_moe else (),
    )
    return arch, s.tally


FAMILIES = {
    "dots1": Family(analyze=analyze_dots1, default_class="Dots1ForCausalLM",
                    classes={"Dots1ForCausalLM": "causal_lm", "Dots1Model": "base"}, module=__name__),
}
