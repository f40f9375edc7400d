"""BERT (encoder-only)."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import DERIVED, Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape, Mixer


def analyze_bert(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    d = Dims.read(f, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=DERIVED,
                  head_dim=DERIVED, intermediate_size=3072, vocab_size=30522, tie_word_embeddings=True,
                  max_position_embeddings=512, hidden_act="gelu")
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, positions, tie = d.num_attention_heads, d.max_position_embeddings, d.tie_word_embeddings
    type_vocab = f.integer("type_vocab_size", 2, minimum=0)
    is_decoder = f.boolean("is_decoder", False)
    cross = f.boolean("add_cross_attention", False)
    if cross and not is_decoder:
        raise f.error("add_cross_attention", True, "false unless is_decoder is true (modeling_bert.py BertLayer)")
    inner = heads * d.head_dim  # all_head_size
    # BertSelfAttention: query/key/value (hidden -> all_head_size), BertSelfOutput.dense (hidden x hidden), with
    # biases; a decoder with add_cross_attention has a second such attention. BertIntermediate.dense,
    # BertOutput.dense.
    attention = parts.of_linears("attention", (
        LinearShape(name="query", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="key", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="value", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="dense", in_features=hidden, out_features=hidden, bias=True),
    ), mixer=Mixer(kind="full", heads=heads, kv_heads=d.num_key_value_heads, head_dim=d.head_dim))
    attention_lns = 2 * hidden
    if cross:
        attention = parts.combine(attention, parts.params("attention", attention.role("attention")))
        attention_lns *= 2
    mlp = parts.mlp(hidden, inter, bias=True, names=("dense", "dense"))
    # Word, position and token-type tables, and the embedding LayerNorm.
    outer = [parts.params("embedding", (vocab + positions + type_vocab) * hidden), parts.norm(2 * hidden)]
    if head in ("base", "pretraining"):
        outer.append(parts.params("other", lin(hidden, hidden, True)))  # pooler
    if head in ("masked_lm", "pretraining", "lm_head_model"):
        # BertLMPredictionHead: transform dense + LayerNorm, decoder (weight tied to the word
        # embeddings, decoder.bias tied to predictions.bias when tie_word_embeddings).
        outer += [parts.params("lm_head", lin(hidden, hidden, True) + vocab), parts.norm(2 * hidden),
                  parts.params("lm_head", 0 if tie else vocab * hidden + vocab)]
    if head == "pretraining":
        outer.append(parts.params("other", lin(hidden, 2, True)))  # seq_relationship (next-sentence prediction)
    s = parts.stack([(attention, parts.norm(attention_lns + 2 * hidden), mlp)] * layers, outer=outer, merge=False)
    arch = d.architecture(
        model_type,
        family="bert",
        gated_mlp=False,
        norm="layernorm",
        attention_bias=True,
        layer_types=(FULL,) * layers,
        # BertLMHeadModel generates: every layer updates the cache generate passes, whatever is_decoder says
        # (modeling_bert.py BertSelfAttention.forward); without is_decoder its attention is bidirectional.
        is_decoder=is_decoder or head == "lm_head_model",
        bidirectional=not is_decoder,
        **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "bert": Family(
        analyze=analyze_bert, default_class="BertForMaskedLM",
        classes={"BertForMaskedLM": "masked_lm", "BertModel": "base", "BertForPreTraining": "pretraining",
                 "BertLMHeadModel": "lm_head_model"},
        dropouts=(("hidden_dropout_prob", 0.1), ("hidden_dropout_prob", 0.1), ("attention_probs_dropout_prob", 0.1)),
        native_softmax=True, module=__name__,
    ),
}
