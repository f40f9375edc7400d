"""dots.llm1 (``dots1``): Qwen3-style attention (per-head q/k RMSNorms) with DeepSeek-V3-style experts.

modeling_dots1.py: after ``first_k_dense_replace`` dense layers, every layer routes ``num_experts_per_tok``
of ``n_routed_experts`` (sigmoid scores plus ``e_score_correction_bias``, a buffer) beside
``n_shared_experts`` shared ones (one MLP of ``moe_intermediate_size * n_shared_experts``). Layers at
index ``max_window_layers`` and above slide when ``sliding_window`` is set (Dots1Config.__post_init__).
"""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, SLIDING, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import fused_experts, gated_linears
from hf_gpu_estimator.architectures.recurrent import gqa
from hf_gpu_estimator.spec import FFN, Architecture, Layer, Mixer


def analyze_dots1(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_dots1.py defaults. Its n_routed_experts, n_shared_experts and num_experts_per_tok
    # default to null (the model cannot be built so): here they are required once a layer is MoE.
    d = Dims.read(f, hidden_size=4608, intermediate_size=10944, num_hidden_layers=62, num_attention_heads=32,
                  num_key_value_heads=32, vocab_size=152064, tie_word_embeddings=False, max_position_embeddings=2048)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    moe_inter = f.integer("moe_intermediate_size", 1408)
    bias = f.boolean("attention_bias", False)
    first_dense = min(f.integer("first_k_dense_replace", 0, minimum=0), layers)
    moe_layers = tuple(range(first_dense, layers))
    experts = f.integer("n_routed_experts", 0, aliases=("num_local_experts",)) if moe_layers else 0
    n_shared = f.integer("n_shared_experts", 0, minimum=0) if moe_layers else 0
    top_k = f.integer("num_experts_per_tok", 0) if moe_layers else 0
    if top_k > experts:
        raise f.error("num_experts_per_tok", top_k, f"at most n_routed_experts={experts}")
    window = f.opt_int("sliding_window", 4096)
    max_window = f.integer("max_window_layers", 62, minimum=0)
    types = f.layer_types(layers)
    if types is None:
        types = tuple(SLIDING if window is not None and i >= max_window else FULL for i in range(layers))

    attention = gqa(f, hidden, heads, kv_heads, bias=bias)
    shared_inter = moe_inter * n_shared
    expert = 3 * hidden * moe_inter
    t = Tally()
    t.add("embedding", vocab * hidden)
    for i in range(layers):
        t.add("attention", attention.params)
        t.add("norm", 2 * hidden + 2 * head_dim)  # input/post_attention_layernorm, q_norm, k_norm
        if i >= first_dense:
            t.add("experts", experts * expert + 3 * hidden * shared_inter)
            t.add("router", experts * hidden)  # Dots1TopkRouter.weight (float32)
            t.idle += (experts - top_k) * expert
        else:
            t.add("mlp", 3 * hidden * inter)
    t.add("norm", hidden)
    if head == "causal_lm" and not d.tie_word_embeddings:
        t.add("lm_head", vocab * hidden)

    sliding = Mixer(kind="sliding", heads=heads, kv_heads=kv_heads, head_dim=head_dim, window=window)
    dense = FFN(kind="dense", intermediate=inter)
    # Dots1TopkRouter: float32 router logits, sigmoid scores, float32 top-k weights (modeling_dots1.py).
    routed = FFN(kind="moe", intermediate=moe_inter, experts=experts, top_k=top_k, shared=shared_inter,
                 fp32_routing=True)
    per_layer = tuple(Layer(mixer=attention.mixer if types[i] == FULL else sliding,
                            ffn=dense if i < first_dense else routed) for i in range(layers))
    linears = attention.linears + (gated_linears(hidden, inter, False) if first_dense else ())
    if moe_layers:
        linears += fused_experts(hidden, moe_inter, experts)
    arch = d.architecture(
        model_type, attention_bias=bias, layer_types=types,
        sliding_window=window if SLIDING in types else None, qk_norm="head",
        num_experts=experts, num_experts_per_tok=top_k, moe_intermediate_size=moe_inter if moe_layers else 0,
        num_shared_experts=n_shared, shared_expert_intermediate_size=shared_inter,
        num_dense_layers=first_dense, moe_layers=moe_layers, linears=linears, per_layer=per_layer,
        notes=("routing: sigmoid scores plus e_score_correction_bias (a buffer), group-limited top-k; "
               "the router weight is float32",) if moe_layers else (),
    )
    return arch, t


FAMILIES = {
    "dots1": Family(analyze=analyze_dots1, default_class="Dots1ForCausalLM",
                    classes={"Dots1ForCausalLM": "causal_lm", "Dots1Model": "base"}, module=__name__),
}
