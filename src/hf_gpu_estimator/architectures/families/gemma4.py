"""Gemma 4: sliding and full layers of different shapes, per-layer input embeddings, KV sharing, optional MoE,
and the multimodal wrapper with its vision and audio towers.

Sliding layers use ``head_dim`` and ``num_key_value_heads``; full layers ``global_head_dim`` and, where
``attention_k_eq_v`` (the keys are the values: no ``v_proj``), ``num_global_key_value_heads``
(``Gemma4TextConfig.__post_init__`` builds that ``per_layer_config``). The last ``num_kv_shared_layers``
layers build no k/v projections and read the keys and values of the last earlier layer of their kind
(``Gemma4TextConfig.kv_sharing_modes``): their Mixers carry ``kv_shared=True`` and hold no cache; with
``use_double_wide_mlp`` their MLP is twice as wide. ``enable_moe_block`` adds routed experts beside each
layer's dense MLP.

Roles: ``embedding`` includes the per-layer input table ``embed_tokens_per_layer``; the per-layer input
gates and projections and ``per_layer_model_projection`` are ``other``; the vision and audio towers and their
projections into the text width are ``other``, reached only by an image or an audio clip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import FULL, MISSING, SLIDING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import with_vision
from hf_gpu_estimator.architectures.families.gemma3n import first_kv_shared_layer
from hf_gpu_estimator.spec import Architecture

#: Gemma4TextConfig.__post_init__: without layer_types, every sixth layer is full ("by default 5:1").
_PATTERN = 6


def _types(f: Fields, layers: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The layer types and a note when the last one was made full (Gemma4TextConfig.__post_init__ forces it,
    with a warning)."""
    types = f.layer_types(layers) or tuple(SLIDING if (i + 1) % _PATTERN else FULL for i in range(layers))
    if types[-1] != FULL:
        return (*types[:-1], FULL), ("the last layer is full attention whatever layer_types says "
                                     "(Gemma4TextConfig.__post_init__ forces it)",)
    return types, ()


def _overrides(f: Fields, layers: int) -> dict[int, Fields]:
    """``per_layer_config`` as a config.json may carry it: layer index (a string) -> that layer's head_dim and
    num_key_value_heads."""
    value = f.raw("per_layer_config")
    if value is MISSING or value is None:
        return {}
    if not isinstance(value, Mapping):
        raise f.error("per_layer_config", value, "a mapping of layer index to head_dim / num_key_value_heads")
    out: dict[int, Fields] = {}
    for key, layer in value.items():
        index = int(key) if isinstance(key, str) and key.isdigit() else key
        if not isinstance(index, int) or not 0 <= index < layers or not isinstance(layer, Mapping):
            raise f.error("per_layer_config", value, f"layer indices below {layers}, each with a mapping")
        out[index] = Fields(layer, source=f.source, prefix=f"{f.prefix}per_layer_config.{key}.")
    return out


def analyze_gemma4_text(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_gemma4.py Gemma4TextConfig defaults; modeling_gemma4.py module tree (transformers 5.25).
    hidden = f.integer("hidden_size", 2304)
    layers = f.integer("num_hidden_layers", 30)
    heads = f.integer("num_attention_heads", 8)
    kv_heads = f.integer("num_key_value_heads", 4)
    head_dim = f.integer("head_dim", 256)
    global_head_dim = f.opt_int("global_head_dim", 512)
    k_eq_v = f.boolean("attention_k_eq_v", False)
    global_kv = f.opt_int("num_global_key_value_heads", None)
    vocab = f.integer("vocab_size", 262_144)
    tie = f.boolean("tie_word_embeddings", True)
    bias = f.boolean("attention_bias", False)
    inter = f.integer("intermediate_size", 9216)
    double = f.boolean("use_double_wide_mlp", False)
    per_layer = f.integer("hidden_size_per_layer_input", 256, minimum=0)
    per_layer_vocab = f.integer("vocab_size_per_layer_input", 262_144, minimum=0)
    window = f.integer("sliding_window", 512)
    shared = f.integer("num_kv_shared_layers", 0, minimum=0)
    types, type_notes = _types(f, layers)
    first_shared = first_kv_shared_layer(f, types, shared, "Gemma4TextConfig")
    # Gemma4TextConfig.__post_init__: full layers take global_head_dim, and num_global_key_value_heads only
    # where attention_k_eq_v; a config.json's own per_layer_config replaces that.
    overrides = _overrides(f, layers)
    if global_head_dim is None and not overrides:
        raise f.error("global_head_dim", None, "an integer >= 1 (or a per_layer_config)")
    full_kv = global_kv if k_eq_v and global_kv is not None else kv_heads

    def shape(i: int) -> tuple[int, int]:
        if overrides:
            layer = overrides.get(i)
            if layer is None:
                return head_dim, kv_heads
            return layer.integer("head_dim", head_dim), layer.integer("num_key_value_heads", kv_heads)
        return (global_head_dim or head_dim, full_kv) if types[i] == FULL else (head_dim, kv_heads)

    # Gemma4TextAttention: q/o always, q_norm per head; k/v projections and k_norm (v_norm has no weight) only
    # in layers that keep their own cache; full layers with attention_k_eq_v have no v_proj (v is k).
    attention: dict[tuple[str, int, int, bool], parts.Part] = {}

    def mixer(i: int) -> parts.Part:
        dim, kvh = shape(i)
        key = (types[i], dim, kvh, i >= first_shared)
        if key not in attention:
            own = parts.attention(hidden, heads, kvh, dim, qkv_bias=bias, qk_norm=2 * dim)
            q, k, v, o = own.linears
            if i >= first_shared:
                part = parts.combine(parts.of_linears("attention", (q, o), mixer=own.mixer), parts.norm(dim))
                part = parts.with_mixer(part, kv_shared=True)
            elif k_eq_v and types[i] == FULL:
                part = parts.combine(parts.of_linears("attention", (q, k, o), mixer=own.mixer), parts.norm(2 * dim))
            else:
                part = own
            attention[key] = parts.windowed(part, window=window) if types[i] == SLIDING else part
        return attention[key]

    # Gemma4TextMLP: gate/up/down, twice as wide in the kv-shared layers with use_double_wide_mlp.
    mlps = {w: parts.gated_mlp(hidden, w) for w in dict.fromkeys((inter, 2 * inter if double else inter))}
    moe = f.boolean("enable_moe_block", False)
    if moe:
        experts = f.integer("num_experts", 1)
        top_k = f.integer("top_k_experts", 1)
        moe_inter = f.integer("moe_intermediate_size", 1)
        if top_k > experts:
            raise f.error("top_k_experts", top_k, f"at most num_experts={experts}")
        # Gemma4TextRouter (proj, scale, per_expert_scale) and Gemma4TextExperts (fused gate_up_proj,
        # down_proj) beside the dense MLP, which every token runs.
        ffns = {w: parts.moe(parts.routed_experts(hidden, moe_inter, experts, top_k),
                             router=hidden * experts + hidden + experts, shared=mlp) for w, mlp in mlps.items()}
    else:
        ffns = mlps
    # input, post_attention, pre_feedforward, post_feedforward norms (+ pre_feedforward_layernorm_2,
    # post_feedforward_layernorm_1/_2 with MoE); per_layer_input_gate, per_layer_projection,
    # post_per_layer_input_norm where hidden_size_per_layer_input.
    extras = parts.combine(parts.norm((4 + (3 if moe else 0) + (1 if per_layer else 0)) * hidden),
                           parts.params("other", 2 * hidden * per_layer))

    def width(i: int) -> int:
        return 2 * inter if double and i >= first_shared else inter

    outer = [parts.params("embedding", vocab * hidden), parts.norm(hidden),
             parts.lm_head(vocab, hidden, head, tied=tie)]
    if per_layer:
        # embed_tokens_per_layer packs every layer's table; per_layer_model_projection, per_layer_projection_norm.
        outer += [parts.params("embedding", per_layer_vocab * layers * per_layer),
                  parts.params("other", hidden * layers * per_layer), parts.norm(per_layer)]
    s = parts.stack([(mixer(i), extras, ffns[width(i)]) for i in range(layers)], outer=outer)

    shared_note = (f"the last {shared} layers reuse the keys and values of earlier layers and keep no KV cache; "
                   "the published checkpoint stores their k_proj, v_proj and k_norm all the same "
                   "(Gemma4TextModel._keys_to_ignore_on_load_unexpected), counted here as transformers builds it",)
    arch = Architecture(
        model_type=model_type, family="gemma4_text", num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=inter,
        vocab_size=vocab, tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 131_072),
        hidden_act=f.string("hidden_activation", "gelu_pytorch_tanh"), attention_bias=bias, layer_types=types,
        sliding_window=window if SLIDING in types else None,
        final_logit_softcapping=f.opt_float("final_logit_softcapping", None),
        norm_style="gemma", norms_per_layer=4, qk_norm="head", **s.keywords(),
        notes=(*type_notes,
               f"full-attention layers: head_dim {shape(types.index(FULL))[0]}, "
               f"{shape(types.index(FULL))[1]} key/value heads{' (keys are the values)' if k_eq_v else ''}",
               *(shared_note if shared else ())),
    )
    return arch, s.tally


# --------------------------------------------------------------------------------------------
# The multimodal wrapper.
# --------------------------------------------------------------------------------------------


def _vision_tower(v: Fields) -> int:
    """Gemma4VisionModel: patch embedder (input_proj, 2-D position table), encoder layers (q/k/v/o, q/k norms,
    four norms, gated MLP; all without bias); the pooler has no weights (Gemma4VisionConfig defaults)."""
    hidden = v.integer("hidden_size", 768)
    inter = v.integer("intermediate_size", 3072)
    layers = v.integer("num_hidden_layers", 16)
    heads = v.integer("num_attention_heads", 12)
    kv_heads = v.integer("num_key_value_heads", 12)
    head_dim = v.integer("head_dim", 64)
    patch = v.integer("patch_size", 16)
    positions = v.integer("position_embedding_size", 10 * 1024)
    layer = (2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + 2 * head_dim
             + 3 * hidden * inter + 4 * hidden)
    return 3 * patch * patch * hidden + 2 * positions * hidden + layers * layer


def _audio_tower(a: Fields) -> tuple[int, int]:
    """Gemma4AudioModel (a conformer): the parameters and the output width (``output_proj_dims``)."""
    hidden = a.integer("hidden_size", 1024)
    layers = a.integer("num_hidden_layers", 12)
    heads = a.integer("num_attention_heads", 8)
    kernel = a.integer("conv_kernel_size", 5)
    out = a.integer("output_proj_dims", 1536)
    channels = a.int_list("subsampling_conv_channels") or (128, 32)
    if len(channels) != 2 or min(channels) < 1:
        raise a.error("subsampling_conv_channels", list(channels), "two positive integers")
    c0, c1 = channels
    # Gemma4AudioSubSampleConvProjection: two 3x3 convolutions without bias, each with a bias-free LayerNorm,
    # and input_proj_linear from (c0 // 4) * c1 features.
    n = c0 * 9 + c0 + c1 * c0 * 9 + c1 + (c0 // 4) * c1 * hidden
    # Gemma4AudioLayer: two feed-forward modules (4x wide, pre/post norms), attention (q, k, v, post,
    # relative_k_proj, per_dim_scale), light conv (linear_start 2x, linear_end, depthwise conv without bias,
    # two norms) and three norms.
    feed_forward = 8 * hidden * hidden + 2 * hidden
    attention = 5 * hidden * hidden + hidden // heads
    conv = 3 * hidden * hidden + hidden * kernel + 2 * hidden
    n += layers * (2 * feed_forward + attention + conv + 3 * hidden)
    return n + hidden * out + out, out  # output_proj with bias


def _present(f: Fields, name: str) -> bool:
    return f.raw(name) not in (MISSING, None)


def analyze_gemma4(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # modeling_gemma4.py Gemma4Model: language_model, vision_tower + embed_vision and audio_tower + embed_audio
    # when their configs are present (Gemma4Config: both optional); Gemma4MultimodalEmbedder is one bias-free
    # projection into the text width after a weightless norm.
    text = f.sub("text_config") if _present(f, "text_config") else Fields({}, source=f.source, prefix="text_config.")
    arch, t = analyze_gemma4_text(text, "gemma4_text", "base")
    tie = f.boolean("tie_word_embeddings", True)
    if head == "conditional" and not tie:
        t.add("lm_head", arch.vocab_size * arch.hidden_size)
    notes: list[str] = []
    if _present(f, "audio_config"):
        tower, width = _audio_tower(f.sub("audio_config"))
        audio = tower + width * arch.hidden_size
        t.add("other", audio)
        t.add_off_text("audio", audio)
        notes.append(f"counts include the audio tower and its projection ({audio:,} parameters) under role 'other'")
    if _present(f, "vision_config"):
        v = f.sub("vision_config")
        tower = _vision_tower(v)
        projector = v.integer("hidden_size", 768) * arch.hidden_size
        # Gemma4Config.vision_soft_tokens_per_image, else the vision config's default_output_length.
        tokens = f.integer("vision_soft_tokens_per_image", v.integer("default_output_length", 280))
        arch = with_vision(arch, t, model_type=model_type, tower=tower, projector=projector, tokens=tokens,
                           notes=(f"tokens_per_image={tokens} (vision_soft_tokens_per_image)", *notes),
                           tie_word_embeddings=tie)
        return arch, t
    return dataclasses.replace(arch, model_type=model_type, tie_word_embeddings=tie,
                               notes=(*arch.notes, *notes)), t


FAMILIES = {
    "gemma4_text": Family(analyze=analyze_gemma4_text, default_class="Gemma4ForCausalLM",
                          classes={"Gemma4ForCausalLM": "causal_lm", "Gemma4TextModel": "base"}, module=__name__),
    "gemma4": Family(analyze=analyze_gemma4, default_class="Gemma4ForConditionalGeneration",
                     classes={"Gemma4ForConditionalGeneration": "conditional", "Gemma4Model": "base"},
                     module=__name__),
}
