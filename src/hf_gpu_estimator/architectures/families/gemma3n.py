"""Gemma 3n text model: AltUp, Laurel, per-layer input embeddings, and KV sharing across the last layers.

The last ``num_kv_shared_layers`` layers build no k/v projections and read the keys and values of the last
earlier layer of their kind (sliding or full; ``Gemma3nTextConfig.kv_sharing_modes``): their Mixers carry
``kv_shared=True`` and hold no cache, so the KV cache counts only the first layers.

Roles: ``embedding`` includes the per-layer input table ``embed_tokens_per_layer``; AltUp (the extra
residual streams' projections and per-layer predict/correct coefficients), Laurel (a low-rank residual) and
the per-layer input projections are ``other``.
"""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import FULL, SLIDING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture


def _intermediate(f: Fields, layers: int) -> tuple[int, ...]:
    # Gemma3nTextConfig: one width for all layers, or one per layer.
    value = f.raw("intermediate_size")
    if isinstance(value, (list, tuple)):
        widths = f.int_list("intermediate_size") or ()
        if len(widths) != layers or any(w < 1 or w > 1 << 40 for w in widths):
            raise f.error("intermediate_size", value, f"an integer or a list of {layers} positive integers")
        return widths
    return (f.integer("intermediate_size", 16_384),) * layers


def first_kv_shared_layer(f: Fields, types: tuple[str, ...], shared: int, config_class: str) -> int:
    """The first of the last ``shared`` layers, which read the cache of the last earlier layer of their type:
    each type must have such a layer (``kv_sharing_modes`` of Gemma3nTextConfig and Gemma4TextConfig)."""
    first = len(types) - shared
    if shared and (first < 1 or set(types[:first]) != set(types)):
        raise f.error("num_kv_shared_layers", shared, "fewer than num_hidden_layers, leaving at least one layer "
                      f"of each layer type before the shared ones ({config_class}.kv_sharing_modes)")
    return first


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
    first_shared = first_kv_shared_layer(f, types, shared, "Gemma3nTextConfig")
    # Gemma3nTextAttention: q/k/v/o (attention_bias), q_norm and k_norm per head (v_norm has no weight); the
    # kv-shared layers build neither k/v projections nor k_norm and keep no cache.
    own = parts.attention(hidden, heads, kv_heads, head_dim, qkv_bias=bias, qk_norm=2 * head_dim)
    q, _, _, o = own.linears
    reuse = parts.of_linears("attention", (q, o), mixer=parts.with_mixer(own, kv_shared=True).mixer)
    reuse = parts.combine(reuse, parts.norm(head_dim))
    attention = {(kind, shared_kv): parts.windowed(a, window=window) if kind == SLIDING else a
                 for kind in (FULL, SLIDING) for shared_kv, a in ((False, own), (True, reuse))}
    mlps = {w: parts.gated_mlp(hidden, w) for w in dict.fromkeys(widths)}
    # input, post_attention, pre_feedforward, post_feedforward norms; Gemma3nTextAltUp (correct_output_scale,
    # correction_coefs, prediction_coefs, modality_router, router_norm); Gemma3nTextLaurelBlock (linear_left,
    # linear_right, post_laurel_norm); per_layer_input_gate, per_layer_projection, post_per_layer_input_norm.
    extras = parts.combine(parts.norm(4 * hidden + hidden + hidden + hidden),
                           parts.params("other", hidden + n * n + n * n * n + hidden * n + 2 * hidden * rank
                                        + 2 * hidden * per_layer))
    s = parts.stack(
        [(attention[types[i], i >= first_shared], extras, mlps[widths[i]]) for i in range(layers)],
        outer=(parts.params("embedding", vocab * hidden + per_layer_vocab * layers * per_layer),
               parts.params("other", hidden * layers * per_layer),  # per_layer_model_projection
               parts.norm(per_layer + hidden),  # per_layer_projection_norm, final norm
               parts.params("other", 2 * (n - 1) * hidden * hidden),  # altup_projections, altup_unembed_projections
               parts.lm_head(vocab, hidden, head, tied=tie)),
        linears=(own, parts.gated_mlp(hidden, max(widths))),
    )

    arch = Architecture(
        model_type=model_type, family="gemma3n_text", num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=max(widths),
        vocab_size=vocab, tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 32_768),
        hidden_act=f.string("hidden_activation", "gelu_pytorch_tanh"), attention_bias=bias, layer_types=types,
        sliding_window=window if SLIDING in types else None,
        final_logit_softcapping=f.opt_float("final_logit_softcapping", 30.0),
        norm_style="gemma", norms_per_layer=4, qk_norm="head", **s.keywords(),
        notes=(f"the last {shared} layers reuse the keys and values of earlier layers and keep no KV cache",)
        if shared else (),
    )
    return arch, s.tally


FAMILIES = {
    "gemma3n_text": Family(analyze=analyze_gemma3n_text, default_class="Gemma3nForCausalLM",
                           classes={"Gemma3nForCausalLM": "causal_lm", "Gemma3nTextModel": "base"},
                           module=__name__),
}
