"""T5 (encoder-decoder)."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture


def analyze_t5(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_t5.py attribute_map: hidden_size -> d_model, num_attention_heads -> num_heads,
    # num_hidden_layers -> num_layers, head_dim -> d_kv.
    d_model = f.integer("d_model", 512, aliases=("hidden_size",))
    d_kv = f.integer("d_kv", 64, aliases=("head_dim",))
    d_ff = f.integer("d_ff", 2048)
    enc_layers = f.integer("num_layers", 6, aliases=("num_hidden_layers",))
    dec_layers = f.opt_int("num_decoder_layers") or enc_layers
    heads = f.integer("num_heads", 8, aliases=("num_attention_heads",))
    buckets = f.integer("relative_attention_num_buckets", 32)
    vocab = f.integer("vocab_size", 32128)
    proj = f.string("feed_forward_proj", "relu")
    proj_parts = proj.split("-")
    if (len(proj_parts) > 1 and proj_parts[0] != "gated") or len(proj_parts) > 2:
        raise f.error("feed_forward_proj", proj, "'ACT' or 'gated-ACT', e.g. 'relu' or 'gated-gelu'")
    gated = proj_parts[0] == "gated"
    act = "gelu_new" if proj == "gated-gelu" else proj_parts[-1]
    # T5Attention: q, k, v, o without bias; T5DenseGatedActDense (wi_0, wi_1, wo) or T5DenseActDense (wi, wo).
    attention = parts.attention(d_model, heads, heads, d_kv, names=("q", "k", "v", "o"))
    ff = (parts.gated_mlp(d_model, d_ff, names=("wi_0", "wi_1", "wo")) if gated
          else parts.mlp(d_model, d_ff, names=("wi", "wo")))
    rel_bias = parts.params("attention", buckets * heads)  # relative_attention_bias in each stack's first block
    with_decoder = head in ("seq2seq", "conditional")
    # T5Block: self-attention, (decoder: cross-attention,) feed-forward, a T5LayerNorm before each; each stack's
    # final_layer_norm. The decoder is counted, not described layer by layer (linears and layers: the encoder's).
    decoder = (parts.repeated(parts.combine(attention, attention, ff, parts.norm(3 * d_model)), dec_layers),
               rel_bias, parts.norm(d_model)) if with_decoder else ()
    # configuration_t5.py forces tie_word_embeddings=True: shared, both stacks' embed_tokens and lm_head are
    # one tensor.
    s = parts.stack([(attention, parts.norm(2 * d_model), ff)] * enc_layers,
                    outer=(parts.embedding(vocab, d_model), rel_bias, parts.norm(d_model), *decoder))
    arch = Architecture(
        model_type=model_type,
        family="t5",
        num_layers=enc_layers,
        hidden_size=d_model,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=d_kv,
        intermediate_size=d_ff,
        vocab_size=vocab,
        tie_word_embeddings=True,
        max_position_embeddings=None,
        hidden_act=act,
        gated_mlp=gated,
        norm="rmsnorm",
        layer_types=(FULL,) * enc_layers,
        is_encoder_decoder=with_decoder,
        is_decoder=with_decoder,
        num_decoder_layers=dec_layers if with_decoder else None,
        **s.keywords(),
        notes=("linears describe one encoder block; decoder blocks add a cross-attention q/k/v/o",),
    )
    return arch, s.tally


FAMILIES = {
    "t5": Family(
        analyze=analyze_t5, default_class="T5ForConditionalGeneration",
        classes={"T5ForConditionalGeneration": "conditional", "T5Model": "seq2seq", "T5EncoderModel": "encoder_only"},
        dropouts=(("dropout_rate", 0.1), ("dropout_rate", 0.1), ("dropout_rate", 0.1)),  # configuration_t5.py
        native_softmax=True, module=__name__,
    ),
}
