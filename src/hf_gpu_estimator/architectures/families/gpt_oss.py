"""gpt-oss: MoE on every layer (biased router and experts), attention sinks, alternating sliding/full layers."""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, SLIDING, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import attention_layers, attention_linears, fused_experts
from hf_gpu_estimator.spec import FFN, Architecture


def analyze_gpt_oss(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_gpt_oss.py defaults; modeling_gpt_oss.py module tree.
    d = Dims.read(f, hidden_size=2880, num_hidden_layers=36, num_attention_heads=64, num_key_value_heads=8,
                  head_dim=64, intermediate_size=2880, vocab_size=201088, tie_word_embeddings=False,
                  max_position_embeddings=131072)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    tie = d.tie_word_embeddings
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    experts = f.integer("num_local_experts", 128, aliases=("num_experts",))
    top_k = f.integer("num_experts_per_tok", 4)
    bias = f.boolean("attention_bias", True)
    window = f.opt_int("sliding_window", 128)
    if top_k > experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_local_experts={experts}")
    # GptOssConfig.__post_init__: even indices slide, odd ones attend to everything.
    layer_types = f.layer_types(layers) or tuple(SLIDING if (i + 1) % 2 else FULL for i in range(layers))
    q_out, kv_out = heads * head_dim, kv_heads * head_dim

    # GptOssExperts: gate_up_proj (E, H, 2I) + bias (E, 2I), down_proj (E, I, H) + bias (E, H).
    expert = lin(hidden, 2 * inter, True) + lin(inter, hidden, True)
    t = Tally()
    t.add("embedding", vocab * hidden)
    # q/k/v/o with attention_bias, plus GptOssAttention.sinks: one learned logit per head.
    t.add("attention", layers * (lin(hidden, q_out, bias) + 2 * lin(hidden, kv_out, bias)
                                 + lin(q_out, hidden, bias) + heads))
    t.add("experts", layers * experts * expert)
    t.add("router", layers * lin(hidden, experts, True))  # GptOssTopKRouter: weight and bias
    t.add("norm", layers * 2 * hidden + hidden)
    t.idle += layers * (experts - top_k) * expert
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)

    moe = FFN(kind="moe", intermediate=inter, experts=experts, top_k=top_k, expert_bias=True, clamped_swiglu=True)
    per_layer = attention_layers(layer_types, (moe,) * layers, heads=heads, kv_heads=kv_heads,
                                 head_dim=head_dim, window=window, sinks=True)
    linears = attention_linears(hidden, q_out, kv_out, bias, bias) + (
        *fused_experts(hidden, inter, experts, bias=True),
    )
    arch = d.architecture(
        model_type,
        family="gpt_oss",
        attention_bias=bias,
        layer_types=layer_types,
        sliding_window=window if SLIDING in layer_types else None,
        num_experts=experts,
        num_experts_per_tok=top_k,
        moe_intermediate_size=inter,
        moe_layers=tuple(range(layers)),
        linears=linears,
        per_layer=per_layer,
        notes=(
            "every attention layer has sinks: a learned logit per head joins the softmax; eager attention "
            "(modeling_gpt_oss.eager_attention_forward) concatenates it to the scores, subtracts the row max and "
            "runs softmax in the scores' dtype: about three score-sized tensors (one column wider) per layer "
            "instead of one; sinks keep no cache of their own",
            "router (weight + bias, softmax over the top-k logits) and experts carry biases; experts apply a "
            "clamped SwiGLU (swiglu_limit, swiglu_alpha) whose gate and up halves are interleaved in gate_up_proj",
            "routed experts are stored (num_experts, in_features, out_features) in transformers, the transpose of "
            "most MoE families; released checkpoints keep them in MXFP4 (a checkpoint-format matter)",
        ),
    )
    return arch, t


FAMILIES = {
    "gpt_oss": Family(
        analyze=analyze_gpt_oss, default_class="GptOssForCausalLM",
        classes={"GptOssForCausalLM": "causal_lm", "GptOssModel": "base"},
        native_softmax=True,  # eager_attention_forward: softmax(..., dtype=combined_logits.dtype)
        supports_sdpa=False,  # GptOssPreTrainedModel._supports_sdpa = False (the sinks): "sdpa" runs eager
        module=__name__,
    ),
}
