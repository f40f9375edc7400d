"""T5 (encoder-decoder)."""

from __future__ import annotations

from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape


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
    parts = proj.split("-")
    if (len(parts) > 1 and parts[0] != "gated") or len(parts) > 2:
        raise f.error("feed_forward_proj", proj, "'ACT' or 'gated-ACT', e.g. 'relu' or 'gated-gelu'")
    gated = parts[0] == "gated"
    act = "gelu_new" if proj == "gated-gelu" else parts[-1]
    inner = heads * d_kv
    attn = 3 * d_model * inner + inner * d_model  # q, k, v, o without bias
    ff = (3 if gated else 2) * d_model * d_ff
    rel_bias = buckets * heads  # relative_attention_bias in the first block of each stack
    with_decoder = head in ("seq2seq", "conditional")
    t = Tally()
    # configuration_t5.py forces tie_word_embeddings=True: shared, both stacks' embed_tokens and
    # lm_head are one tensor.
    t.add("embedding", vocab * d_model)
    t.add("attention", enc_layers * attn + rel_bias)
    t.add("mlp", enc_layers * ff)
    t.add("norm", enc_layers * 2 * d_model + d_model)
    if with_decoder:
        t.add("attention", dec_layers * 2 * attn + rel_bias)
        t.add("mlp", dec_layers * ff)
        t.add("norm", dec_layers * 3 * d_model + d_model)
    ff_linears = (
        (
            LinearShape(name="wi_0", in_features=d_model, out_features=d_ff),
            LinearShape(name="wi_1", in_features=d_model, out_features=d_ff),
        )
        if gated
        else (LinearShape(name="wi", in_features=d_model, out_features=d_ff),)
    )
    linears = (
        LinearShape(name="q", in_features=d_model, out_features=inner),
        LinearShape(name="k", in_features=d_model, out_features=inner),
        LinearShape(name="v", in_features=d_model, out_features=inner),
        LinearShape(name="o", in_features=inner, out_features=d_model),
        *ff_linears,
        LinearShape(name="wo", in_features=d_ff, out_features=d_model),
    )
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
        linears=linears,
        notes=("linears describe one encoder block; decoder blocks add a cross-attention q/k/v/o",),
    )
    return arch, t


FAMILIES = {
    "t5": Family(
        analyze=analyze_t5, default_class="T5ForConditionalGeneration",
        classes={"T5ForConditionalGeneration": "conditional", "T5Model": "seq2seq", "T5EncoderModel": "encoder_only"},
        dropouts=(("dropout_rate", 0.1), ("dropout_rate", 0.1), ("dropout_rate", 0.1)),  # configuration_t5.py
        native_softmax=True, module=__name__,
    ),
}
