"""MusicGen and MusicGen-Melody audio decoders (``MusicgenForCausalLM``): one token stream per codebook."""

from __future__ import annotations

from collections.abc import Mapping

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import DERIVED, Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape, Mixer


def analyze_musicgen(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    """configuration_musicgen.py ``MusicgenDecoderConfig`` defaults, modeling_musicgen.py's module tree.

    ``MusicgenForCausalLM`` is the decoder of the composite model (its ``decoder`` config): the
    ``num_codebooks`` token streams each have an embedding of ``vocab_size + 1`` rows (the extra one
    is the pad/BOS id) summed into one hidden state, and a head of their own. Each layer has
    self-attention, cross-attention to the conditioning (MusicGen only: MusicGen-Melody prepends its
    conditioning to the sequence instead) and a plain ``fc1``/``fc2`` MLP, LayerNorms before each;
    positions are a sinusoidal buffer (no parameters). The T5 text encoder and the EnCodec audio
    model of ``MusicgenForConditionalGeneration`` are not part of it.
    """
    d = f.sub("decoder") if isinstance(f.raw("decoder"), Mapping) else f  # the composite config's decoder
    dims = Dims.read(d, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=DERIVED,
                     head_dim=DERIVED, intermediate_size=4096, vocab_size=2048, tie_word_embeddings=None,
                     max_position_embeddings=2048, hidden_act="gelu",
                     names={"intermediate_size": ("ffn_dim",), "hidden_act": ("activation_function",)})
    hidden, inter, layers, vocab = dims.hidden_size, dims.intermediate_size, dims.num_layers, dims.vocab_size
    codebooks = d.integer("num_codebooks", 4)
    cross = model_type in ("musicgen", "musicgen_decoder")
    # MusicgenAttention: q/k/v/out_proj, hidden x hidden, no bias; fc1/fc2 without bias; a LayerNorm (weight and
    # bias) before self-attention, cross-attention (MusicGen) and the MLP, and the decoder's last.
    self_attn = parts.of_linears("attention", (
        *(LinearShape(name=n, in_features=hidden, out_features=hidden) for n in ("q_proj", "k_proj", "v_proj")),
        LinearShape(name="out_proj", in_features=hidden, out_features=hidden),
    ), mixer=Mixer(kind="full", heads=dims.num_attention_heads, kv_heads=dims.num_key_value_heads,
                   head_dim=dims.head_dim))
    mlp = parts.mlp(hidden, inter, names=("fc1", "fc2"))
    # MusicgenDecoderLayer skips encoder_attn without encoder states: a decoder-only step never reaches it (as
    # sources/headers.off_text_path finds from the tensor names).
    block = (self_attn, parts.norm(2 * 2 * hidden), mlp)
    if cross:
        block += (parts.reached_only_by(parts.combine(parts.params("attention", self_attn.role("attention")),
                                                      parts.norm(2 * hidden)), "cross_attention"),)
    s = parts.stack([block] * layers, linears=(self_attn, mlp),
                    outer=(parts.params("embedding", codebooks * (vocab + 1) * hidden), parts.norm(2 * hidden),
                           # lm_heads: one per codebook, no bias
                           parts.params("lm_head", codebooks * vocab * hidden if head == "causal_lm" else 0)))
    arch = dims.architecture(
        model_type,
        family="musicgen",
        gated_mlp=False,
        norm="layernorm",
        # encoder_attn_layer_norm runs only with encoder states (MusicgenDecoderLayer.forward, modeling_musicgen.py
        # transformers 5.25): a decoder-only step normalizes twice per layer.
        norms_per_layer=2,
        layer_types=(FULL,) * layers,
        # MusicgenForCausalLM.forward (and the melody one) takes no logits_to_keep and stacks one head's logits per
        # codebook (modeling_musicgen.py, transformers 5.25): generate's prefill computes every position's; the
        # training loss runs per codebook.
        last_logits_only=False,
        logit_heads=codebooks,
        # MusicgenMelodyDecoder.forward keeps each layer's outputs (its attention probabilities included) in
        # ``layer_outputs`` until the next layer returns (modeling_musicgen_melody.py, transformers 5.25).
        eager_held_scores=1 if model_type == "musicgen_melody" and layers > 1 else 0,
        **s.keywords(),
        notes=((f"the audio decoder (MusicgenForCausalLM): {codebooks} codebook streams, each with its own "
                "embedding and head; the text encoder and the audio codec are not counted"),),
    )
    return arch, s.tally


_FAMILY = {
    "analyze": analyze_musicgen,
    # MusicgenDecoder: dropout after the embeddings and on both residual branches; attention_dropout.
    "dropouts": (("dropout", 0.1), ("dropout", 0.1), ("attention_dropout", 0.0)),
    # Eager softmax in the scores' dtype (modeling_musicgen.py / modeling_musicgen_melody.py
    # eager_attention_forward: softmax(attn_weights, dim=-1), transformers 5.25).
    "native_softmax": True,
    "module": __name__,
}

FAMILIES = {
    "musicgen": Family(default_class="MusicgenForCausalLM", classes={"MusicgenForCausalLM": "causal_lm"},
                       **_FAMILY),
    "musicgen_melody": Family(default_class="MusicgenMelodyForCausalLM",
                              classes={"MusicgenMelodyForCausalLM": "causal_lm"}, **_FAMILY),
}
