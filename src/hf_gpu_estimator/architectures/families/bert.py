"""BERT (encoder-only)."""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import DERIVED, Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape


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
    inner = heads * (hidden // heads)  # all_head_size
    linears = (
        LinearShape(name="query", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="key", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="value", in_features=hidden, out_features=inner, bias=True),
        LinearShape(name="dense", in_features=hidden, out_features=hidden, bias=True),
        LinearShape(name="dense", in_features=hidden, out_features=inter, bias=True),
        LinearShape(name="dense", in_features=inter, out_features=hidden, bias=True),
    )
    attn = 3 * lin(hidden, inner, True) + lin(hidden, hidden, True)  # self + output.dense
    attention_lns = 2 * hidden
    if cross:
        attn, attention_lns = 2 * attn, 2 * attention_lns
    t = Tally()
    # word, position and token-type tables; the embedding LayerNorm is a norm.
    t.add("embedding", (vocab + positions + type_vocab) * hidden)
    t.add("norm", 2 * hidden)
    t.add("attention", layers * attn)
    t.add("mlp", layers * (lin(hidden, inter, True) + lin(inter, hidden, True)))
    t.add("norm", layers * (attention_lns + 2 * hidden))
    if head in ("base", "pretraining"):
        t.add("other", lin(hidden, hidden, True))  # pooler
    if head in ("masked_lm", "pretraining", "lm_head_model"):
        # BertLMPredictionHead: transform dense + LayerNorm, decoder (weight tied to the word
        # embeddings, decoder.bias tied to predictions.bias when tie_word_embeddings).
        t.add("lm_head", lin(hidden, hidden, True) + vocab)
        t.add("norm", 2 * hidden)
        if not tie:
            t.add("lm_head", vocab * hidden + vocab)
    if head == "pretraining":
        t.add("other", lin(hidden, 2, True))  # seq_relationship (next-sentence prediction)
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
        linears=linears,
    )
    return arch, t


FAMILIES = {
    "bert": Family(
        analyze=analyze_bert, default_class="BertForMaskedLM",
        classes={"BertForMaskedLM": "masked_lm", "BertModel": "base", "BertForPreTraining": "pretraining",
                 "BertLMHeadModel": "lm_head_model"},
        dropouts=(("hidden_dropout_prob", 0.1), ("hidden_dropout_prob", 0.1), ("attention_probs_dropout_prob", 0.1)),
        native_softmax=True, module=__name__,
    ),
}
