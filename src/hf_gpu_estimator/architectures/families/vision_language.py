"""Vision-language wrappers: a llama-like language model + a vision tower + a projector.

The counted class is the ``*ForConditionalGeneration``; the dimensions are the language model's; the
vision tower and projector are role ``other`` and ``Architecture.vision_parameters``.
``tokens_per_image`` is what one image adds to the language model's sequence. Models with dynamic
resolution have no fixed count: for them it is the count for a 1024 x 1024-pixel image (the
reference named in the notes), computed by the processor's rule.
"""

from __future__ import annotations

import dataclasses
import math

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import DERIVED, Dims
from hf_gpu_estimator.architectures._fields import MISSING, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import clip_vision, siglip_vision, vit_tower, with_vision
from hf_gpu_estimator.architectures.families.llama_like import LLAMA_LIKE, _attention_bias, _Style, analyze_llama_like
from hf_gpu_estimator.spec import Architecture, VisionTower

#: Side of the reference image for dynamic-resolution models, in pixels.
REFERENCE_IMAGE_SIDE = 1024


def _wrap(
    f: Fields, model_type: str, head: Head, arch: Architecture, t: Tally, *, tower: int, projector: int,
    tie_default: bool, tokens: int, tokens_note: str, extra_notes: tuple[str, ...] = (), tie: bool | None = None,
    vision: VisionTower | None = None,
) -> tuple[Architecture, Tally]:
    """Add the vision parts and the wrapper's lm_head (tied by the top-level tie_word_embeddings, or ``tie``
    where the wrapper's config resolves it otherwise)."""
    tie = f.boolean("tie_word_embeddings", tie_default) if tie is None else tie
    if head == "conditional" and not tie:
        t.add("lm_head", arch.vocab_size * arch.hidden_size)
    arch = with_vision(arch, t, model_type=model_type, tower=tower, projector=projector, tokens=tokens,
                       notes=(tokens_note, *extra_notes), tie_word_embeddings=tie, vision=vision)
    return arch, t


# --------------------------------------------------------------------------------------------
# Mistral 3 (Mistral-Small-3.1): Pixtral vision tower + patch-merging projector.
# --------------------------------------------------------------------------------------------

#: configuration_mistral3.py sub_configs_defaults: the text model built when text_config is absent
#: (a present text_config takes its own model type's class defaults instead).
_MISTRAL3_TEXT = {"model_type": "mistral", "head_dim": 128, "hidden_size": 5120, "intermediate_size": 32768,
                  "max_position_embeddings": 131072, "num_attention_heads": 32, "num_hidden_layers": 40,
                  "num_key_value_heads": 8, "sliding_window": None, "vocab_size": 131072}  # fmt: skip
#: configuration_mistral3.py: the Pixtral vision config built when vision_config is absent.
_MISTRAL3_VISION = {"intermediate_size": 4096, "hidden_size": 1024, "patch_size": 14, "image_size": 1540,
                    "num_hidden_layers": 24, "num_attention_heads": 16}  # fmt: skip
#: configuration_pixtral.py class defaults (a present vision_config).
_PIXTRAL_DEFAULTS = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_channels": 3,
                     "image_size": 1024, "patch_size": 16}  # fmt: skip


def _sub_or(f: Fields, name: str, defaults: dict) -> Fields:
    """A nested config; when absent, the wrapper's documented defaults for it."""
    if f.raw(name) is MISSING or f.raw(name) is None:
        return Fields(defaults, source=f.source, prefix=f"{f.prefix}{name}.")
    return f.sub(name)


def _text_style(text: Fields, allowed: tuple[str, ...]) -> str:
    model_type = text.string("model_type", allowed[0])
    if model_type not in allowed:
        raise text.error("model_type", model_type, f"one of {', '.join(allowed)}")
    return model_type


def analyze_mistral3(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # modeling_mistral3.py (Mistral3MultiModalProjector, Mistral3PatchMerger); modeling_pixtral.py.
    text = _sub_or(f, "text_config", _MISTRAL3_TEXT)
    text_type = _text_style(text, ("mistral", "llama"))
    arch, t = analyze_llama_like(text, text_type, "base")
    given = f.raw("vision_config") not in (MISSING, None)
    v = f.sub("vision_config") if given else Fields(_MISTRAL3_VISION, source=f.source, prefix="vision_config.")
    d = _PIXTRAL_DEFAULTS if given else {**_PIXTRAL_DEFAULTS, **_MISTRAL3_VISION}
    hidden = v.integer("hidden_size", d["hidden_size"])
    inter = v.integer("intermediate_size", d["intermediate_size"])
    layers = v.integer("num_hidden_layers", d["num_hidden_layers"])
    channels = v.integer("num_channels", d["num_channels"])
    image = v.integer("image_size", d["image_size"])
    patch = v.integer("patch_size", d["patch_size"])
    heads = v.integer("num_attention_heads", 16)
    # PixtralVisionModel: patch_conv (no bias), ln_pre, per layer two RMSNorms + q/k/v/o + gated MLP, no biases.
    tower = channels * patch * patch * hidden + hidden
    tower += layers * (4 * hidden * hidden + 3 * hidden * inter + 2 * hidden)
    merge = f.integer("spatial_merge_size", 2)
    feature_layer = f.raw("vision_feature_layer")
    n_features = len(feature_layer) if isinstance(feature_layer, (list, tuple)) else 1
    bias = f.boolean("multimodal_projector_bias", False)
    projector = hidden + hidden * merge * merge * hidden  # norm + patch_merger.merging_layer
    projector += lin(hidden * n_features, arch.hidden_size, bias) + lin(arch.hidden_size, arch.hidden_size, bias)
    # PixtralProcessor: one token per merged (patch*merge)-pixel cell, plus one [IMG_BREAK]/[IMG_END] per row.
    side = min(REFERENCE_IMAGE_SIDE, image)
    cells = math.ceil(side / (patch * merge))
    tokens = cells * (cells + 1)
    vision = VisionTower(projector="pixtral", hidden=hidden, heads=heads, intermediate=inter, layers=layers,
                         patch=patch, image=image, gated=True, merge=merge)
    return _wrap(
        f, model_type, head, arch, t, tower=tower, projector=projector, tie_default=True, tokens=tokens, vision=vision,
        tokens_note=(f"tokens_per_image={tokens}: a {side} x {side}-pixel image (images up to image_size={image}) "
                     f"gives {cells} x {cells} merged patches plus {cells} row-break/end tokens (PixtralProcessor)"),
    )


# --------------------------------------------------------------------------------------------
# Qwen2.5-VL and Qwen3-VL: windowed / deepstack ViTs with a patch merger.
# --------------------------------------------------------------------------------------------

# configuration_qwen2_5_vl.py Qwen2_5_VLTextConfig: qwen2 (q/k/v bias) with its own defaults.
_QWEN2_5_VL_TEXT = dataclasses.replace(
    LLAMA_LIKE["qwen2"], vocab_size=152064, hidden_size=8192, intermediate_size=29568, num_hidden_layers=80,
    num_attention_heads=64, num_key_value_heads=8, max_position_embeddings=32768, tie_word_embeddings=False)
# configuration_qwen3_vl.py Qwen3VLTextConfig: qwen3 (per-head q/k norms, head_dim 128), no sliding window.
_QWEN3_VL_TEXT = dataclasses.replace(
    LLAMA_LIKE["qwen3"], num_key_value_heads=32, max_position_embeddings=128000, sliding="none",
    qkv_bias=_attention_bias, o_bias=_attention_bias)

# configuration_qwen3_vl_moe.py Qwen3VLMoeTextConfig: qwen3_moe blocks with qwen2_moe-sized defaults
# (60 experts, top-4, width 1408), head_dim hidden/heads, tied, no sliding window.
_QWEN3_VL_MOE_TEXT = dataclasses.replace(
    LLAMA_LIKE["qwen3_moe"], vocab_size=151936, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
    num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=128000, tie_word_embeddings=True,
    sliding="none", qwen_moe_defaults=(60, 4, 1408))


def _qwen_tokens(patch: int, merge: int) -> tuple[int, str]:
    """Qwen2-VL image processor smart_resize: sides rounded to multiples of patch*merge; one token per cell."""
    cells = round(REFERENCE_IMAGE_SIDE / (patch * merge))
    tokens = cells * cells
    return tokens, (f"tokens_per_image={tokens}: a {REFERENCE_IMAGE_SIDE} x {REFERENCE_IMAGE_SIDE}-pixel image, "
                    f"sides rounded to multiples of {patch * merge} pixels (smart_resize), one token per "
                    f"{patch * merge}-pixel cell, plus vision_start/vision_end; resolution is dynamic "
                    "(min_pixels/max_pixels of the processor)")


def _qwen_text(f: Fields) -> Fields:
    # Qwen2_5_VLConfig.__post_init__: Hub configs saved flat keep the text fields at the top level.
    return f.sub("text_config") if f.raw("text_config") not in (MISSING, None) else f


def analyze_qwen2_5_vl(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # modeling_qwen2_5_vl.py: Qwen2_5_VisionTransformerPretrainedModel + Qwen2_5_VLPatchMerger.
    text = _qwen_text(f)
    arch, t = analyze_llama_like(text, "qwen2", "base", style=_QWEN2_5_VL_TEXT)
    v = f.sub("vision_config")
    hidden = v.integer("hidden_size", 3584)
    inter = v.integer("intermediate_size", 3420)
    depth = v.integer("depth", 32, aliases=("num_hidden_layers",))
    channels = v.integer("in_channels", 3)
    patch = v.integer("patch_size", 14)
    temporal = v.integer("temporal_patch_size", 2)
    merge = v.integer("spatial_merge_size", 2)
    out = v.integer("out_hidden_size", 3584)
    heads = v.integer("num_heads", 16)
    tower = channels * temporal * patch * patch * hidden  # Conv3d patch embedding, no bias
    # per block: two RMSNorms, fused qkv + proj with biases, gated MLP with biases.
    tower += depth * (2 * hidden + lin(hidden, 3 * hidden, True) + lin(hidden, hidden, True)
                      + 2 * lin(hidden, inter, True) + lin(inter, hidden, True))
    wide = hidden * merge * merge
    merger = hidden + lin(wide, wide, True) + lin(wide, out, True)  # ln_q + two-layer MLP
    # Qwen2_5_VLConfig: an untied root tie_word_embeddings follows a text_config that ties.
    tie_default = text.boolean("tie_word_embeddings", False) if text is not f else False
    tokens, note = _qwen_tokens(patch, merge)
    vision = VisionTower(projector="qwen2.5vl", hidden=hidden, heads=heads, intermediate=inter, layers=depth,
                         patch=patch, image=REFERENCE_IMAGE_SIDE, gated=True, merge=merge,
                         window_attention=True)  # windowed layers but fullatt_block_indexes
    return _wrap(f, model_type, head, arch, t, tower=tower, projector=merger, tie_default=tie_default,
                 tokens=tokens, tokens_note=note, vision=vision)


def _qwen3_vl_vision(v: Fields, *, deepstack: bool = True) -> tuple[int, int, VisionTower]:
    """(tower, mergers, shape) of modeling_qwen3_vl.py Qwen3VLVisionModel (``deepstack=False``: modeling_qwen3_5.py
    Qwen3_5VisionModel, which builds no deepstack mergers whatever deepstack_visual_indexes says)."""
    hidden = v.integer("hidden_size", 1152)
    inter = v.integer("intermediate_size", 4304)
    depth = v.integer("depth", 27, aliases=("num_hidden_layers",))
    channels = v.integer("in_channels", 3)
    patch = v.integer("patch_size", 16)
    temporal = v.integer("temporal_patch_size", 2)
    merge = v.integer("spatial_merge_size", 2)
    out = v.integer("out_hidden_size", 3584)
    positions = v.integer("num_position_embeddings", 2304)
    deepstack_on, deepstack = deepstack, v.int_list("deepstack_visual_indexes")
    n_deepstack = (3 if deepstack is None else len(deepstack)) if deepstack_on else 0
    tower = channels * temporal * patch * patch * hidden + hidden  # Conv3d with bias
    tower += positions * hidden  # pos_embed
    # per block: two LayerNorms with bias, fused qkv + proj, linear_fc1/linear_fc2, all with biases.
    tower += depth * (4 * hidden + lin(hidden, 3 * hidden, True) + lin(hidden, hidden, True)
                      + lin(hidden, inter, True) + lin(inter, hidden, True))
    wide = hidden * merge * merge
    mlp = lin(wide, wide, True) + lin(wide, out, True)
    # merger normalizes before the shuffle (hidden); each deepstack merger after it (hidden * merge^2).
    mergers = 2 * hidden + mlp + n_deepstack * (2 * wide + mlp)
    shape = VisionTower(projector="qwen3vl", hidden=hidden, heads=v.integer("num_heads", 16), intermediate=inter,
                        layers=depth, patch=patch, image=REFERENCE_IMAGE_SIDE, merge=merge, deepstack=n_deepstack)
    return tower, mergers, shape


def _analyze_qwen3_vl(
    f: Fields, model_type: str, head: Head, *, text_type: str, style: _Style
) -> tuple[Architecture, Tally]:
    # modeling_qwen3_vl.py / modeling_qwen3_vl_moe.py: one vision model and deepstack mergers over a qwen3
    # (dense) or qwen3_moe language model.
    text = f.sub("text_config")
    arch, t = analyze_llama_like(text, text_type, "base", style=style)
    return qwen_vision_wrap(f, model_type, head, arch, t, deepstack=True)


def qwen_vision_wrap(f: Fields, model_type: str, head: Head, arch: Architecture, t: Tally, *,
                     deepstack: bool) -> tuple[Architecture, Tally]:
    """A language model's architecture with the Qwen3-VL vision model of ``f["vision_config"]`` and the wrapper's
    lm_head (untied unless the top-level tie_word_embeddings says so)."""
    tower, mergers, vision = _qwen3_vl_vision(f.sub("vision_config"), deepstack=deepstack)
    tokens, note = _qwen_tokens(vision.patch, vision.merge)
    extra = ("deepstack: features of deepstack_visual_indexes are added to the first "
             "language-model layers' hidden states at the image positions",) if vision.deepstack else ()
    arch, t = _wrap(f, model_type, head, arch, t, tower=tower, projector=mergers, tie_default=False,
                    tokens=tokens, tokens_note=note, vision=vision, extra_notes=extra)
    return dataclasses.replace(arch, deepstack_layers=vision.deepstack), t


def analyze_qwen3_vl(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    return _analyze_qwen3_vl(f, model_type, head, text_type="qwen3", style=_QWEN3_VL_TEXT)


def analyze_qwen3_vl_moe(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    return _analyze_qwen3_vl(f, model_type, head, text_type="qwen3_moe", style=_QWEN3_VL_MOE_TEXT)


# --------------------------------------------------------------------------------------------
# LLaVA and LLaVA-NeXT (granite-vision): a CLIP or SigLIP tower + a two-layer projector.
# --------------------------------------------------------------------------------------------

#: configuration_llava.py / configuration_llava_next.py sub_configs_defaults: the CLIP tower built when
#: vision_config is absent (a present vision_config takes its own model type's class defaults instead).
_LLAVA_VISION = {"model_type": "clip_vision_model", "intermediate_size": 4096, "hidden_size": 1024,
                 "patch_size": 14, "image_size": 336, "num_hidden_layers": 24, "num_attention_heads": 16}  # fmt: skip
#: The vision towers a llava wrapper builds (AutoModel.from_config(vision_config)) and the class tokens
#: each puts before its patches (CLIP's class embedding; SigLIP has none).
_LLAVA_TOWERS = {"clip_vision_model": (clip_vision, 1), "siglip_vision_model": (siglip_vision, 0)}
#: configuration_llava_next.py: image_grid_pinpoints when the config has none.
_LLAVA_NEXT_PINPOINTS = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))


def _best_resolution(side: int, pinpoints: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """image_processing_utils.select_best_resolution for a ``side`` x ``side`` image: the pinpoint that keeps
    the most of the image, then wastes the least."""
    best, kept_best, waste_best = pinpoints[0], -1, math.inf
    for height, width in pinpoints:
        scale = min(width / side, height / side)
        kept = min(int(side * scale) * int(side * scale), side * side)
        waste = width * height - kept
        if kept > kept_best or (kept == kept_best and waste < waste_best):
            best, kept_best, waste_best = (height, width), kept, waste
    return best


def _llava_next_tokens(f: Fields, image: int, patch: int, extra: int) -> tuple[int, str]:
    """LlavaNextProcessor._get_number_of_features for the reference square image: the base view, the
    high-resolution grid of the best pinpoint (unpadded) and one newline token per grid row."""
    given = f.raw("image_grid_pinpoints")
    if given in (MISSING, None):
        pinpoints = _LLAVA_NEXT_PINPOINTS
    elif isinstance(given, (list, tuple)) and given and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, int) and x > 0 for x in p)
            for p in given):
        pinpoints = tuple((int(p[0]), int(p[1])) for p in given)
    else:
        raise f.error("image_grid_pinpoints", given, "a list of [height, width] pairs")
    side = REFERENCE_IMAGE_SIDE
    height, width = _best_resolution(side, pinpoints)
    cells = image // patch
    rows, cols = cells * (height // image), cells * (width // image)
    # A grid of another shape than the square image: the padding rows or columns are removed.
    if rows > cols:
        rows -= 2 * ((rows - cols) // 2)
    else:
        cols -= 2 * ((cols - rows) // 2)
    tokens = rows * cols + rows + cells * cells + extra
    return tokens, (f"tokens_per_image={tokens}: a {side} x {side}-pixel image takes the {height} x {width} "
                    f"grid of image_grid_pinpoints: {rows} x {cols} features of its tiles, {rows} newline tokens and "
                    f"the {cells} x {cells}-patch base view (LlavaNextProcessor); resolution is dynamic")


def _llava_text(text: Fields) -> tuple[Architecture, Tally]:
    """The language model a llava wrapper builds (AutoModel.from_config(text_config)), without its head."""
    text_type = text.string("model_type", "llama")
    if text_type in LLAMA_LIKE:
        return analyze_llama_like(text, text_type, "base")
    from hf_gpu_estimator.architectures.families import FAMILIES  # the registry imports this module

    family = FAMILIES.get(text_type)
    if family is not None:
        return family.analyze(text, text_type, "base")
    from hf_gpu_estimator.architectures.generic import analyze_generic

    return analyze_generic(text, text_type, "base")


def analyze_llava(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # modeling_llava.py / modeling_llava_next.py: vision_tower, multi_modal_projector (linear_1 over the
    # concatenated feature layers, linear_2), llava_next's image_newline, language_model, lm_head.
    given = f.raw("vision_config") not in (MISSING, None)
    v = f.sub("vision_config") if given else Fields(_LLAVA_VISION, source=f.source, prefix="vision_config.")
    vision_type = v.string("model_type", "clip_vision_model")
    if vision_type not in _LLAVA_TOWERS:
        from hf_gpu_estimator.architectures.generic import analyze_generic

        arch, t = analyze_generic(f, model_type, head)
        note = (f"the {vision_type!r} vision tower and the projector are not counted (the llava family counts "
                f"{' and '.join(_LLAVA_TOWERS)} towers); the counts are the language model's")
        return dataclasses.replace(arch, notes=(*arch.notes, note)), t
    tower_of, class_tokens = _LLAVA_TOWERS[vision_type]
    tower = tower_of(v)
    vision_hidden = v.integer("hidden_size", 768)
    image = v.integer("image_size", 224)
    patch = v.integer("patch_size", 32 if vision_type == "clip_vision_model" else 16)
    arch, t = _llava_text(_sub_or(f, "text_config", {"model_type": "llama"}))
    feature_layer = f.raw("vision_feature_layer")
    n_features = len(feature_layer) if isinstance(feature_layer, (list, tuple)) else 1
    bias = f.boolean("multimodal_projector_bias", True)
    projector = lin(vision_hidden * n_features, arch.hidden_size, bias) + lin(arch.hidden_size, arch.hidden_size, bias)
    # The processor counts the class token only where the strategy keeps it ("full"; "default" drops it).
    strategy = f.string("vision_feature_select_strategy", "default")
    extra = class_tokens - (1 if strategy == "default" else 0)
    if model_type == "llava_next":
        projector += arch.hidden_size  # image_newline
        tokens, note = _llava_next_tokens(f, image, patch, extra)
    else:
        cells = image // patch
        tokens = cells * cells + extra
        note = (f"tokens_per_image={tokens}: every image is resized to {image} x {image} pixels, "
                f"{cells} x {cells} patches of {patch} (LlavaProcessor)")
    # configuration_llava.py forwards a text_config's tie_word_embeddings to a wrapper that does not tie;
    # configuration_llava_next.py reads the wrapper's only.
    tie = f.boolean("tie_word_embeddings", False)
    if model_type == "llava" and f.raw("text_config") not in (MISSING, None):
        tie = tie or f.sub("text_config").boolean("tie_word_embeddings", False)
    vision = vit_tower(v, projector="llava", patch=patch, class_token=class_tokens == 1)
    return _wrap(f, model_type, head, arch, t, tower=tower, projector=projector, tie_default=tie, tie=tie,
                 tokens=tokens, tokens_note=note, vision=vision)


# --------------------------------------------------------------------------------------------
# Mllama (Llama 3.2 Vision): cross-attention layers read the image; the text sequence holds one token.
# --------------------------------------------------------------------------------------------


def _mllama_vision(v: Fields, text_hidden: int) -> tuple[int, int, int]:
    """(tower, projector, vision tokens per image) of modeling_mllama.py MllamaVisionModel."""
    hidden = v.integer("hidden_size", 1280)
    layers = v.integer("num_hidden_layers", 32)
    global_layers = v.integer("num_global_layers", 8)
    inter = v.integer("intermediate_size", 5120)
    channels = v.integer("num_channels", 3)
    image = v.integer("image_size", 448)
    patch = v.integer("patch_size", 14)
    tiles = v.integer("max_num_tiles", 4)
    out_dim = v.integer("vision_output_dim", 7680)
    ratios = v.raw("supported_aspect_ratios")
    n_ratios = len(ratios) if isinstance(ratios, (list, tuple)) else 8  # MllamaVisionConfig default: 8
    patches = (image // patch) ** 2 + 1
    n = channels * patch * patch * hidden + hidden  # patch_embedding (no bias), class_embedding
    n += 1 + patches * hidden + (n_ratios + 1) * tiles * patches * hidden  # gated_positional_embedding
    n += 2 * (1 + (n_ratios + 1) * tiles * hidden)  # pre/post tile positional embeddings (gated)
    n += 2 * 2 * hidden  # layernorm_pre, layernorm_post
    block = 4 * hidden * hidden + lin(hidden, inter, True) + lin(inter, hidden, True) + 4 * hidden
    n += layers * block + global_layers * (block + 2)  # global layers add gate_attn, gate_ffn
    projector = lin(out_dim, text_hidden, True)
    return n, projector, tiles * patches


def analyze_mllama(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_mllama.py / modeling_mllama.py MllamaForConditionalGeneration.
    text = f.sub("text_config")
    d = Dims.read(text, hidden_size=4096, num_hidden_layers=40, num_attention_heads=32, num_key_value_heads=8,
                  head_dim=DERIVED, intermediate_size=14336, vocab_size=128256, tie_word_embeddings=None,
                  max_position_embeddings=131072)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    cross = text.int_list("cross_attention_layers")
    cross = (3, 8, 13, 18, 23, 28, 33, 38) if cross is None else cross
    cross_set = {i for i in cross if 0 <= i < layers}
    attention = parts.attention(hidden, heads, kv_heads, head_dim)
    mlp = parts.gated_mlp(hidden, inter)
    norms = parts.norm(2 * hidden)
    # A cross-attention layer: the same projections attending the image states, cross_attn_attn_gate and
    # cross_attn_mlp_gate (tanh gates), q_norm and k_norm. MllamaTextModel.forward skips it whole when there
    # are no image states (and nothing cached): text-only steps never reach it.
    cross = parts.reached_only_by(parts.combine(
        parts.with_mixer(attention, kind="cross"), parts.params("attention", 2), parts.norm(2 * head_dim),
        norms, mlp), "cross_attention")
    tower, projector, vision_tokens = _mllama_vision(f.sub("vision_config"), hidden)
    s = parts.stack(
        [(cross,) if i in cross_set else (attention, norms, mlp) for i in range(layers)],
        # MllamaTextModel.embed_tokens: vocab_size + 8 rows.
        outer=(parts.params("embedding", (vocab + 8) * hidden),
               parts.norm(hidden),
               # never tied (modeling_mllama.py leaves _tied_weights_keys out)
               parts.params("lm_head", vocab * hidden if head == "conditional" else 0),
               parts.reached_only_by(parts.params("other", tower + projector), "vision")),
        linears=(attention, mlp),
    )
    arch = d.architecture(
        model_type,
        family="mllama",
        layer_types=("full_attention",) * layers,
        **s.keywords(),
        vision_parameters=tower + projector,
        tokens_per_image=1,
        cross_tokens_per_image=vision_tokens,
        notes=(
            f"counts include the vision model ({tower:,} parameters) and the projector ({projector:,}) under role "
            "'other'; the dimensions are the language model's",
            f"tokens_per_image=1: the text holds one <|image|> token per image; the {len(cross_set)} cross-attention "
            f"layers instead cache keys/values of {vision_tokens} vision tokens per image (max_num_tiles x "
            "((image_size/patch_size)^2 + 1)), independent of the text length, and have no self-attention cache",
        ),
    )
    return arch, s.tally


FAMILIES = {
    "mistral3": Family(
        analyze=analyze_mistral3, default_class="Mistral3ForConditionalGeneration",
        classes={"Mistral3ForConditionalGeneration": "conditional", "Mistral3Model": "base"}, module=__name__,
    ),
    "qwen2_5_vl": Family(
        analyze=analyze_qwen2_5_vl, default_class="Qwen2_5_VLForConditionalGeneration",
        classes={"Qwen2_5_VLForConditionalGeneration": "conditional", "Qwen2_5_VLModel": "base"},
        module=__name__,
    ),
    "qwen3_vl": Family(
        analyze=analyze_qwen3_vl, default_class="Qwen3VLForConditionalGeneration",
        classes={"Qwen3VLForConditionalGeneration": "conditional", "Qwen3VLModel": "base"}, module=__name__,
    ),
    "qwen3_vl_moe": Family(
        analyze=analyze_qwen3_vl_moe, default_class="Qwen3VLMoeForConditionalGeneration",
        classes={"Qwen3VLMoeForConditionalGeneration": "conditional", "Qwen3VLMoeModel": "base"},
        module=__name__,
    ),
    "llava": Family(
        analyze=analyze_llava, default_class="LlavaForConditionalGeneration",
        classes={"LlavaForConditionalGeneration": "conditional", "LlavaModel": "base"}, module=__name__,
    ),
    "llava_next": Family(
        analyze=analyze_llava, default_class="LlavaNextForConditionalGeneration",
        classes={"LlavaNextForConditionalGeneration": "conditional", "LlavaNextModel": "base"}, module=__name__,
    ),
    "mllama": Family(
        analyze=analyze_mllama, default_class="MllamaForConditionalGeneration",
        classes={"MllamaForConditionalGeneration": "conditional", "MllamaModel": "base"}, module=__name__,
    ),
}
