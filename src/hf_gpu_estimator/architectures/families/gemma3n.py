"""Gemma 3n text model: AltUp, Laurel, per-layer input embeddings, and KV sharing across the last layers.

The last ``num_kv_shared_layers`` layers build no k/v projections and read the keys and values of the last
earlier layer of their kind (sliding or full; ``Gemma3nTextConfig.kv_sharing_modes``): their Mixers carry
``kv_shared=True`` and hold no cache, so the KV cache counts only the first layers.

Roles: ``embedding`` includes the per-layer input table ``embed_tokens_per_layer``; AltUp (the extra
residual streams' projections and per-layer predict/correct coefficients), Laurel (a low-rank residual) and
the per-layer input projections are ``other``.
"""

from __future__ import annotations

from hf_gpu_estimator.architectures._fields import FULL, SLIDING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import attention_linears, gated_linears
from hf_gpu_estimator.spec import FFN, Architecture, Layer, Mixer


def _intermediate(f: Fields, layers: int) -> tuple[int, ...]:
    # Gemma3nTextConfig: one width for all layers, or one per layer.
    value = f.raw("intermediate_size")
    if isinstance(value, (list, tuple)):
        widths = f.int_list("intermediate_size") or ()
        if len(widths) != layers or any(w < 1 or w > 1 << 40 for w in widths):
            raise f.error("intermediate_size", value, f"an integer or a list of {layers} positive integers")
        return widths
    return (f.integer("intermediate_size", 16_384),) * layers


def analyze_gemma3n_text(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_gemma3n.py Gemma3nTextConfig defaults; modeling_gemma3n.py module tree.
    hidden = f.integer("hidden_size", 2048)
    layers = f.integer("num_hidden_layers", 35)
    heads = f.integer("num_attention_heads", 8)
    kv_heads = f.integer("num_key_value_heads", 2)
    head_dim = f.integer("head_dim", 256)
    vocab = f.integer("vocab_size", 262_400)
    tie = f.boolean("tie_word_embeddings", True)
    bias = f.boolean("attention_bias", False)
    widths = _intermediate(f, layers)
    per_layer_vocab = f.integer("vocab_size_per_layer_input", 262_144)
    per_layer = f.integer("hidden_size_per_layer_input", 256)
    n = f.integer("altup_num_inputs", 4)
    rank = f.integer("laurel_rank", 64)
    window = f.integer("sliding_window", 512)
    shared = f.integer("num_kv_shared_layers", 15, minimum=0)
    types = f.layer_types(layers) or tuple(FULL if (i + 1) % 5 == 0 else SLIDING for i in range(layers))
    first_shared = layers - shared
    if shared and (first_shared < 1 or set(types[:first_shared]) != set(types)):
        raise f.error("num_kv_shared_layers", shared, "fewer than num_hidden_layers, leaving at least one layer "
                      "of each layer type before the shared ones (Gemma3nTextConfig.kv_sharing_modes)")
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    attn_linears = attention_linears(hidden, q_out, kv_out, bias, bias)

    def lin(i: int, o: int) -> int:
        return i * o + (o if bias else 0)

    t = Tally()
    t.add("embedding", vocab * hidden + per_layer_vocab * layers * per_layer)
    t.add("other", hidden * layers * per_layer)  # per_layer_model_projection
    t.add("norm", per_layer + hidden)  # per_layer_projection_norm, final norm
    t.add("other", 2 * (n - 1) * hidden * hidden)  # altup_projections, altup_unembed_projections
    for i in range(layers):
        reuse = i >= first_shared
        t.add("attention", 2 * lin(hidden, q_out) + (0 if reuse else 2 * lin(hidden, kv_out)))
        t.add("norm", head_dim * (1 if reuse else 2))  # q_norm (+ k_norm); v_norm has no weight
        t.add("norm", 4 * hidden)  # input, post_attention, pre_feedforward, post_feedforward
        t.add("mlp", 3 * hidden * widths[i])
        # Gemma3nTextAltUp: correct_output_scale, correction_coefs, prediction_coefs, modality_router, router_norm.
        t.add("other", hidden + n * n + n * n * n + hidden * n)
        t.add("norm", hidden)
        t.add("other", 2 * hidden * rank)  # Gemma3nTextLaurelBlock linear_left, linear_right
        t.add("norm", hidden)  # post_laurel_norm
        t.add("other", 2 * hidden * per_layer)  # per_layer_input_gate, per_layer_projection
        t.add("norm", hidden)  # post_per_layer_input_norm
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)

    def mixer(i: int) -> Mixer:
        kind = "sliding" if types[i] == SLIDING else "full"
        return Mixer(kind=kind, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                     window=window if kind == "sliding" else None, kv_shared=i >= first_shared)

    arch = Architecture(
        model_type=model_type, family="gemma3n_text", num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=max(widths),
        vocab_size=vocab, tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 32_768),
        hidden_act=f.string("hidden_activation", "gelu_pytorch_tanh"), attention_bias=bias, layer_types=types,
        sliding_window=window if SLIDING in types else None,
        final_logit_softcapping=f.opt_float("final_logit_softcapping", 30.0),
        linears=attn_linears + gated_linears(hidden, max(widths), False), norm_style="gemma",
        norms_per_layer=4, qk_norm="head",
        per_layer=tuple(Layer(mixer=mixer(i), ffn=FFN(kind="dense", intermediate=widths[i])) for i in range(layers)),
        notes=(f"the last {shared} layers reuse the keys and values of earlier layers and keep no KV cache",)
        if shared else (),
    )
    return arch, t


FAMILIES = {
    "gemma3n_text": Family(analyze=analyze_gemma3n_text, default_class="Gemma3nForCausalLM",
                           classes={"Gemma3nForCausalLM": "causal_lm", "Gemma3nTextModel": "base"},
                           module=__name__),
}
