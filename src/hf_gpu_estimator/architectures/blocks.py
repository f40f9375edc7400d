"""Shared building blocks: attention and MLP linear shapes (the parts build on them), vision towers."""

from __future__ import annotations

import dataclasses
from typing import Any

from hf_gpu_estimator.architectures._fields import Fields, Tally, lin
from hf_gpu_estimator.spec import Architecture, LinearShape, VisionProjector, VisionTower


def attention_linears(
    hidden: int, q_out: int, kv_out: int, qkv_bias: bool, o_bias: bool, *, fused: bool = False
) -> tuple[LinearShape, ...]:
    """q/k/v/o projections (``fused``: one ``qkv_proj``, as phi3)."""
    if fused:
        return (
            LinearShape(name="qkv_proj", in_features=hidden, out_features=q_out + 2 * kv_out, bias=qkv_bias),
            LinearShape(name="o_proj", in_features=q_out, out_features=hidden, bias=o_bias),
        )
    return (
        LinearShape(name="q_proj", in_features=hidden, out_features=q_out, bias=qkv_bias),
        LinearShape(name="k_proj", in_features=hidden, out_features=kv_out, bias=qkv_bias),
        LinearShape(name="v_proj", in_features=hidden, out_features=kv_out, bias=qkv_bias),
        LinearShape(name="o_proj", in_features=q_out, out_features=hidden, bias=o_bias),
    )


def fused_experts(hidden: int, inter: int, experts: int, *, bias: bool = False) -> tuple[LinearShape, ...]:
    """Routed experts as transformers 5 stores them: fused 3-D ``gate_up_proj`` (out = 2 x inter) and
    ``down_proj`` parameters, ``count=experts`` (not nn.Linear: peft's all-linear skips them)."""
    return (
        LinearShape(name="gate_up_proj", in_features=hidden, out_features=2 * inter, count=experts, bias=bias),
        LinearShape(name="down_proj", in_features=inter, out_features=hidden, count=experts, bias=bias),
    )


def mla_linears(hidden: int, heads: int, *, q_rank: int | None, kv_rank: int, nope: int, rope: int, v_dim: int,
                bias: bool) -> tuple[LinearShape, ...]:
    """Multi-head latent attention's projections (modeling_deepseek_v3.py ``DeepseekV3Attention``): q_proj, or
    q_a_proj/q_b_proj with a ``q_rank``; kv_a_proj_with_mqa (the latent and the shared rotary key), kv_b_proj
    (the latent to every head's non-rotary key and value), o_proj. ``bias`` (attention_bias) reaches q_a_proj,
    kv_a_proj_with_mqa and o_proj only."""
    qk_dim = nope + rope
    if q_rank is None:
        q: tuple[LinearShape, ...] = (LinearShape(name="q_proj", in_features=hidden, out_features=heads * qk_dim),)
    else:
        q = (LinearShape(name="q_a_proj", in_features=hidden, out_features=q_rank, bias=bias),
             LinearShape(name="q_b_proj", in_features=q_rank, out_features=heads * qk_dim))
    return q + (
        LinearShape(name="kv_a_proj_with_mqa", in_features=hidden, out_features=kv_rank + rope, bias=bias),
        LinearShape(name="kv_b_proj", in_features=kv_rank, out_features=heads * (nope + v_dim)),
        LinearShape(name="o_proj", in_features=heads * v_dim, out_features=hidden, bias=bias),
    )


def gated_linears(hidden: int, inter: int, bias: bool) -> tuple[LinearShape, ...]:
    """A SwiGLU/GeGLU MLP: gate, up and down projections."""
    return (
        LinearShape(name="gate_proj", in_features=hidden, out_features=inter, bias=bias),
        LinearShape(name="up_proj", in_features=hidden, out_features=inter, bias=bias),
        LinearShape(name="down_proj", in_features=inter, out_features=hidden, bias=bias),
    )




def with_vision(arch: Architecture, t: Tally, *, model_type: str, tower: int, projector: int, tokens: int,
                notes: tuple[str, ...], tower_note: str = "", vision: VisionTower | None = None,
                **changes: Any) -> Architecture:
    """A vision-language wrapper around the language model ``arch``: the vision tower and projector are
    counted under role ``other`` and off the text path (a text-only step never reaches them), and one
    image adds ``tokens`` to the sequence; ``vision`` is the tower's shape. ``changes`` are further
    Architecture fields (tie_word_embeddings)."""
    t.add("other", tower + projector)
    t.add_off_text("vision", tower + projector)
    tower_note = tower_note or (f"counts include the vision tower ({tower:,} parameters) and the projector "
                                f"({projector:,}) under role 'other'; the dimensions are the language model's")
    return dataclasses.replace(arch, model_type=model_type, vision_parameters=tower + projector, tokens_per_image=tokens,
                               vision=vision, notes=(*arch.notes, tower_note, *notes), **changes)


def _vit_layer(hidden: int, inter: int) -> int:
    """One CLIP/SigLIP encoder layer: q/k/v/out and fc1/fc2, all with biases, two LayerNorms with bias."""
    return 4 * lin(hidden, hidden, True) + lin(hidden, inter, True) + lin(inter, hidden, True) + 2 * 2 * hidden


def _vit_shape(v: Fields, *, patch: int) -> tuple[int, int, int, int, int, int]:
    """``(hidden, intermediate, layers, channels, image, patch)`` of a CLIP or SigLIP vision_config, with the
    class defaults both share (ViT-B) and the family's patch size."""
    hidden = v.integer("hidden_size", 768)
    inter = v.integer("intermediate_size", 3072)
    layers = v.integer("num_hidden_layers", 12)
    v.integer("num_attention_heads", 12)
    return (hidden, inter, layers, v.integer("num_channels", 3), v.integer("image_size", 224),
            v.integer("patch_size", patch))


def vit_tower(v: Fields, *, projector: VisionProjector, patch: int, class_token: bool) -> VisionTower:
    """The shape of a CLIP or SigLIP vision_config (the class defaults both share, the family's patch size)."""
    hidden, inter, layers, _, image, patch = _vit_shape(v, patch=patch)
    return VisionTower(projector=projector, hidden=hidden, heads=v.integer("num_attention_heads", 12),
                       intermediate=inter, layers=layers, patch=patch, image=image, class_token=class_token)


def siglip_vision(v: Fields) -> int:
    """Parameters of transformers' SiglipVisionModel (modeling_siglip.py) for a vision_config."""
    hidden, inter, layers, channels, image, patch = _vit_shape(v, patch=16)
    n = channels * patch * patch * hidden + hidden  # patch_embedding Conv2d with bias
    n += (image // patch) ** 2 * hidden  # position_embedding
    n += layers * _vit_layer(hidden, inter)
    n += 2 * hidden  # post_layernorm
    if v.boolean("vision_use_head", True):
        # SiglipMultiheadAttentionPoolingHead: probe, nn.MultiheadAttention, LayerNorm, MLP.
        n += hidden + (3 * hidden * hidden + 3 * hidden) + lin(hidden, hidden, True) + 2 * hidden
        n += lin(hidden, inter, True) + lin(inter, hidden, True)
    return n


def clip_vision(v: Fields) -> int:
    """Parameters of transformers' CLIPVisionModel (modeling_clip.py, no projection) for a vision_config."""
    hidden, inter, layers, channels, image, patch = _vit_shape(v, patch=32)
    n = hidden + channels * patch * patch * hidden  # class_embedding, patch_embedding Conv2d without bias
    n += ((image // patch) ** 2 + 1) * hidden  # position_embedding: the patches and the class token
    n += 2 * 2 * hidden  # pre_layrnorm, post_layernorm
    return n + layers * _vit_layer(hidden, inter)
