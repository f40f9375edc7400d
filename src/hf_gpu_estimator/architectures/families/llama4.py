"""Llama 4: MoE with a shared expert (interleaved with dense layers), chunked attention on RoPE layers, vision."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import CHUNKED, FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import with_vision
from hf_gpu_estimator.spec import Architecture, VisionTower


def analyze_llama4_text(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_llama4.py Llama4TextConfig defaults; modeling_llama4.py module tree.
    # intermediate_size: the experts' and the shared expert's width.
    d = Dims.read(f, hidden_size=5120, num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8,
                  head_dim=128, intermediate_size=8192, vocab_size=202048, tie_word_embeddings=False,
                  max_position_embeddings=4096 * 32)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, head_dim, tie = d.num_attention_heads, d.num_key_value_heads, d.head_dim, d.tie_word_embeddings
    inter_mlp = f.integer("intermediate_size_mlp", 16384)  # dense layers
    experts = f.integer("num_local_experts", 16, aliases=("num_experts",))
    top_k = f.integer("num_experts_per_tok", 1)
    bias = f.boolean("attention_bias", False)
    chunk = f.opt_int("attention_chunk_size", 8192)
    if top_k > experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_local_experts={experts}")
    # Llama4TextConfig.__post_init__: no_rope_layers[i] == 1 means layer i uses RoPE (every 4th does not);
    # moe_layers every interleave_moe_layer_step-th layer; RoPE layers attend within chunks.
    rope = f.int_list("no_rope_layers") or tuple(
        int((i + 1) % f.integer("no_rope_layer_interval", 4) != 0) for i in range(layers))
    if len(rope) != layers:
        raise f.error("no_rope_layers", list(rope), f"a list of {layers} entries (0 or 1)")
    given_moe = f.int_list("moe_layers")
    if given_moe is None:
        step = f.integer("interleave_moe_layer_step", 1)
        given_moe = tuple(range(step - 1, layers, step))
    moe_layers = tuple(sorted({i for i in given_moe if 0 <= i < layers}))
    layer_types = f.layer_types(layers, (FULL, CHUNKED)) or tuple(
        CHUNKED if r and chunk is not None else FULL for r in rope)

    # Llama4TextL2Norm (the q/k norm of RoPE layers) has no parameters: Llama4TextAttention builds it
    # ``if config.use_qk_norm and self.use_rope``.
    attention = parts.attention(hidden, heads, kv_heads, head_dim, qkv_bias=bias)
    l2 = f.boolean("use_qk_norm", True)
    mixers = {(kind, r): parts.with_mixer(
        parts.windowed(attention, chunk=chunk) if kind == CHUNKED and chunk else attention, l2_qk_norm=bool(l2 and r))
        for kind in (FULL, CHUNKED) for r in (0, 1)}
    norms = parts.norm(2 * hidden)
    # Llama4TextExperts: gate_up_proj (E, H, 2I), down_proj (E, I, H); Llama4Router: Linear(hidden, experts,
    # bias=False); shared_expert. Llama4TextMoe: routed_in = hidden_states.repeat(num_experts, 1), one bmm over
    # all experts (scores zero for the unrouted ones): every expert sees every token.
    moe = parts.moe(parts.routed_experts(hidden, inter, experts, top_k), router=experts * hidden,
                    shared=parts.gated_mlp(hidden, inter, role="experts"), dense_experts=True)
    dense = parts.gated_mlp(hidden, inter_mlp)
    moe_set = set(moe_layers)
    s = parts.stack(
        [(mixers[kind, int(bool(r))], norms, moe if i in moe_set else dense)
         for i, (kind, r) in enumerate(zip(layer_types, rope, strict=True))],
        outer=(parts.embedding(vocab, hidden), parts.norm(hidden), parts.lm_head(vocab, hidden, head, tied=tie)),
        linears=(attention, moe if moe_layers else dense),  # a MoE block where there is one
    )
    arch = d.architecture(
        model_type,
        family="llama4",
        intermediate_size=inter_mlp,
        attention_bias=bias,
        layer_types=layer_types,
        num_shared_experts=1 if moe_layers else 0,
        **s.keywords(),
        notes=(
            f"chunked attention (attention_chunk_size={chunk}) on the RoPE layers, full attention on the NoPE "
            "layers (every no_rope_layer_interval-th); the cache of a chunked layer is capped at its chunk "
            "(cache_utils.ChunkedSlidingLayer)",
            "router: sigmoid of the top-k logits scales the expert *inputs*; every token also runs the shared "
            "expert; routed experts are stored (num_experts, in_features, out_features)",
        ),
    )
    return arch, s.tally


def _llama4_vision(v: Fields, text_hidden: int) -> tuple[int, int, int, VisionTower]:
    """(vision tower, projector, tokens per tile, shape) of Llama4VisionModel + Llama4MultiModalProjector."""
    hidden = v.integer("hidden_size", 768)
    layers = v.integer("num_hidden_layers", 34)
    heads = v.integer("num_attention_heads", 16)
    inter = v.integer("intermediate_size", 5632)
    channels = v.integer("num_channels", 3)
    image = v.integer("image_size", 448)
    patch = v.integer("patch_size", 14)
    out_dim = v.integer("vision_output_dim", 7680)
    proj_in = v.integer("projector_input_dim", 4096)
    proj_out = v.integer("projector_output_dim", 4096)
    ratio = v.opt_float("pixel_shuffle_ratio", 0.5) or 0.5
    if not 0 < ratio <= 1:
        raise v.error("pixel_shuffle_ratio", ratio, "a number in (0, 1]")
    patches = (image // patch) ** 2
    n = channels * patch * patch * hidden  # Llama4UnfoldConvolution: Linear(C*p*p, hidden, bias=False)
    n += hidden + (patches + 1) * hidden  # class_embedding, positional_embedding_vlm
    n += 2 * 2 * hidden  # layernorm_pre, layernorm_post
    n += layers * (4 * lin(hidden, hidden, True) + lin(hidden, inter, True) + lin(inter, hidden, True) + 4 * hidden)
    n += lin(inter, proj_in, False) + lin(proj_out, proj_out, False)  # vision_adapter (Llama4VisionMLP2)
    projector = lin(out_dim, text_hidden, False)  # Llama4MultiModalProjector.linear_1
    shape = VisionTower(projector="llama4", hidden=hidden, heads=heads, intermediate=inter, layers=layers,
                        patch=patch, image=image, class_token=True)
    return n, projector, int(patches * ratio * ratio), shape


def analyze_llama4(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # Llama4ForConditionalGeneration: vision_model + multi_modal_projector + language_model (Llama4ForCausalLM).
    text = f.sub("text_config")
    arch, t = analyze_llama4_text(text, "llama4_text", "causal_lm" if head == "conditional" else "base")
    tower, projector, per_tile, vision = _llama4_vision(f.sub("vision_config"), arch.hidden_size)
    arch = with_vision(arch, t, model_type=model_type, tower=tower, projector=projector, tokens=per_tile,
                       vision=vision, notes=(
        f"tokens_per_image={per_tile}: one image_size tile, (image_size/patch_size)^2 x "
        "pixel_shuffle_ratio^2 (Llama4VisionPixelShuffleMLP); the processor splits larger images into "
        "several tiles plus a global view, each adding as many",))
    return arch, t


FAMILIES = {
    "llama4_text": Family(
        analyze=analyze_llama4_text, default_class="Llama4ForCausalLM",
        classes={"Llama4ForCausalLM": "causal_lm", "Llama4TextModel": "base"}, module=__name__,
    ),
    "llama4": Family(
        analyze=analyze_llama4, default_class="Llama4ForConditionalGeneration",
        classes={"Llama4ForConditionalGeneration": "conditional"}, module=__name__,
    ),
}
