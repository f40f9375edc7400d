"""Falcon (falcon-7b/40b/180b, falcon-rw)."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import DERIVED, Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape, Mixer


def analyze_falcon(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_falcon.py: n_embed is a legacy alias of hidden_size; num_kv_heads defaults to
    # num_attention_heads; ffn_hidden_size to 4 * hidden_size.
    d = Dims.read(f, hidden_size=4544, num_hidden_layers=32, num_attention_heads=71, head_dim=DERIVED,
                  intermediate_size=None, vocab_size=65024, tie_word_embeddings=True, max_position_embeddings=2048,
                  hidden_act="gelu",
                  names={"hidden_size": ("n_embed", "hidden_size"),  # n_embed wins, as in __post_init__
                         "num_key_value_heads": ("num_kv_heads",), "intermediate_size": ("ffn_hidden_size",),
                         "hidden_act": ("activation",)})
    hidden, ffn, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, num_kv, head_dim, tie = d.num_attention_heads, d.num_key_value_heads, d.head_dim, d.tie_word_embeddings
    new_arch = f.boolean("new_decoder_architecture", False)
    multi_query = f.boolean("multi_query", True)
    parallel = f.boolean("parallel_attn", True)
    bias = f.boolean("bias", False)
    num_ln = f.opt_int("num_ln_in_parallel_attn")
    # modeling_falcon.py FalconAttention.__init__
    if new_arch:
        qkv_out, kv_heads = (num_kv * 2 + heads) * head_dim, num_kv
    elif multi_query:
        qkv_out, kv_heads = hidden + 2 * head_dim, 1
    else:
        qkv_out, kv_heads = 3 * hidden, num_kv
    # modeling_falcon.py FalconDecoderLayer.__init__
    if num_ln is None and new_arch:
        num_ln = 2
    block_lns = 2 if (not parallel or num_ln == 2) else 1
    attention = parts.of_linears("attention", (
        LinearShape(name="query_key_value", in_features=hidden, out_features=qkv_out, bias=bias),
        LinearShape(name="dense", in_features=hidden, out_features=hidden, bias=bias),
    ), mixer=Mixer(kind="full", heads=heads, kv_heads=kv_heads, head_dim=head_dim))
    mlp = parts.mlp(hidden, ffn, bias=bias, names=("dense_h_to_4h", "dense_4h_to_h"))
    s = parts.stack([(attention, parts.norm(block_lns * 2 * hidden), mlp)] * layers,
                    outer=(parts.embedding(vocab, hidden), parts.norm(2 * hidden),  # ln_f
                           parts.lm_head(vocab, hidden, head, tied=tie)))
    arch = d.architecture(
        model_type,
        family="falcon",
        num_key_value_heads=kv_heads,
        gated_mlp=False,
        norm="layernorm",
        attention_bias=bias,
        parallel_attention=parallel or new_arch,
        layer_types=(FULL,) * layers,
        **s.keywords(),
        # FalconModel.forward binds each block's (output, attention probabilities) to ``outputs`` until the next
        # block returns: one layer's eager probabilities stay alive through the next layer's attention
        # (modeling_falcon.py, transformers 5.25; traced: 12.35 bytes per score element at 4 x 2048 tokens).
        eager_held_scores=1 if layers > 1 else 0,
    )
    return arch, s.tally


FAMILIES = {
    "falcon": Family(
        analyze=analyze_falcon, default_class="FalconForCausalLM",
        classes={"FalconForCausalLM": "causal_lm", "FalconModel": "base"},
        dropouts=(("hidden_dropout", 0.0), ("hidden_dropout", 0.0), ("attention_dropout", 0.0)),
        module=__name__,  # eager softmax in fp32 (modeling_falcon.py eager_attention_forward, transformers 5.25)
    ),
}
