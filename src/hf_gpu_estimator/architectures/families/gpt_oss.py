"""gpt-oss: MoE on every layer (biased router and experts), attention sinks, alternating sliding/full layers."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, SLIDING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture


def analyze_gpt_oss(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_gpt_oss.py defaults; modeling_gpt_oss.py module tree.
    d = Dims.read(f, hidden_size=2880, num_hidden_layers=36, num_attention_heads=64, num_key_value_heads=8,
                  head_dim=64, intermediate_size=2880, vocab_size=201088, tie_word_embeddings=False,
                  max_position_embeddings=131072)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    experts = f.integer("num_local_experts", 128, aliases=("num_experts",))
    top_k = f.integer("num_experts_per_tok", 4)
    bias = f.boolean("attention_bias", True)
    window = f.opt_int("sliding_window", 128)
    if top_k > experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_local_experts={experts}")
    # GptOssConfig.__post_init__: even indices slide, odd ones attend to everything.
    layer_types = f.layer_types(layers) or tuple(SLIDING if (i + 1) % 2 else FULL for i in range(layers))

    # q/k/v/o with attention_bias, plus GptOssAttention.sinks: one learned logit per head.
    attention = parts.attention(hidden, heads, kv_heads, head_dim, qkv_bias=bias, sinks=True)
    mixers = {FULL: attention, SLIDING: parts.windowed(attention, window=window) if window else attention}
    # GptOssExperts: gate_up_proj (E, H, 2I) + bias (E, 2I), down_proj (E, I, H) + bias (E, H);
    # GptOssTopKRouter: weight and bias.
    moe = parts.moe(parts.routed_experts(hidden, inter, experts, top_k, bias=True),
                    router=experts * hidden + experts, clamped_swiglu=True)
    norms = parts.norm(2 * hidden)
    s = parts.stack([(mixers.get(kind, attention), norms, moe) for kind in layer_types],
                    outer=(parts.embedding(vocab, hidden), parts.norm(hidden),
                           parts.lm_head(vocab, hidden, head, tied=d.tie_word_embeddings)))
    arch = d.architecture(
        model_type,
        family="gpt_oss",
        attention_bias=bias,
        layer_types=layer_types,
        sliding_window=window if SLIDING in layer_types else None,
        **s.keywords(),
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
    return arch, s.tally


FAMILIES = {
    "gpt_oss": Family(
        analyze=analyze_gpt_oss, default_class="GptOssForCausalLM",
        classes={"GptOssForCausalLM": "causal_lm", "GptOssModel": "base"},
        native_softmax=True,  # eager_attention_forward: softmax(..., dtype=combined_logits.dtype)
        supports_sdpa=False,  # GptOssPreTrainedModel._supports_sdpa = False (the sinks): "sdpa" runs eager
        module=__name__,
    ),
}
