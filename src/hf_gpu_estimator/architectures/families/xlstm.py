"""xLSTM (xLSTM-7B as transformers implements it): blocks of an mLSTM layer (a matrix-memory linear attention
with exponential input and sigmoid forget gates per head) and a SwiGLU feed-forward, each after an RMSNorm."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import NO_DROPOUT, Family
from hf_gpu_estimator.spec import FFN, Architecture, LinearShape, Mixer


def _round_up(x: float, multiple: int) -> int:
    # configuration_xlstm.py round_up_to_next_multiple_of, float arithmetic included.
    return int(((x + multiple - 1) // multiple) * multiple)


def analyze_xlstm(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_xlstm.py defaults (hidden_size falls back to embedding_dim, num_hidden_layers to
    # num_blocks); modeling_xlstm.py module tree (xLSTMBlock: norm_mlstm, xLSTMLayer, norm_ffn,
    # xLSTMFeedForward; out_norm; lm_head).
    hidden = f.opt_int("hidden_size", None) or f.integer("embedding_dim", 4096)
    layers = f.opt_int("num_hidden_layers", None) or f.integer("num_blocks", 32)
    vocab = f.integer("vocab_size", 50304)
    # xLSTMForCausalLM declares no tied weights: its lm_head is its own whatever tie_word_embeddings says.
    tie = False
    heads = f.integer("num_heads", 8)
    bias = f.boolean("use_bias", False)
    qk = int(hidden * (f.opt_float("qk_dim_factor", 0.5, positive=True) or 0.5))
    v = int(hidden * (f.opt_float("v_dim_factor", 1.0, positive=True) or 1.0))
    up = _round_up(hidden * (f.opt_float("ffn_proj_factor", 2.667, positive=True) or 2.667),
                   f.integer("ffn_round_up_to_multiple_of", 64))
    fused = f.string("weight_mode", "single") == "fused"
    if fused:
        mixer_linears = (
            LinearShape(name="qkv_opreact", in_features=hidden, out_features=2 * qk + 2 * v, bias=bias,
                        group="state"),
            LinearShape(name="ifgate_preact", in_features=hidden, out_features=2 * heads, bias=True, group="state"),
        )
        ffn_linears = (LinearShape(name="proj_up_gate_z", in_features=hidden, out_features=2 * up, bias=bias),)
    else:
        mixer_linears = (
            LinearShape(name="q", in_features=hidden, out_features=qk, bias=bias, group="state"),
            LinearShape(name="k", in_features=hidden, out_features=qk, bias=bias, group="state"),
            LinearShape(name="v", in_features=hidden, out_features=v, bias=bias, group="state"),
            LinearShape(name="ogate_preact", in_features=hidden, out_features=v, bias=bias, group="state"),
            LinearShape(name="igate_preact", in_features=hidden, out_features=heads, bias=True, group="state"),
            LinearShape(name="fgate_preact", in_features=hidden, out_features=heads, bias=True, group="state"),
        )
        ffn_linears = (
            LinearShape(name="proj_up_gate", in_features=hidden, out_features=up, bias=bias, group="mlp_in"),
            LinearShape(name="proj_up", in_features=hidden, out_features=up, bias=bias, group="mlp_in"),
        )
    mixer_linears += (LinearShape(name="out_proj", in_features=v, out_features=hidden, bias=bias, group="state"),)
    ffn_linears += (LinearShape(name="proj_down", in_features=up, out_features=hidden, bias=bias, group="mlp_out"),)
    v_head = v // heads
    norm = hidden * (2 if bias else 1)  # xLSTMRMSNorm: weight, and a bias with use_bias

    # xLSTMCache per layer: the matrix memory C (heads, qk_head, v_head), the normalizer n (heads, qk_head) and
    # the stabilizer m (heads, 1); the chunkwise kernel runs in chunks of chunk_size.
    qk_head = qk // heads
    mlstm = parts.of_linears("attention", mixer_linears, mixer=Mixer(
        kind="linear", heads=heads, kv_heads=heads, head_dim=qk_head, v_head_dim=v_head, inner=v,
        state_elements=heads * qk_head * v_head + heads * qk_head + heads, chunk=f.integer("chunk_size", 64)))
    ffn = parts.of_linears("mlp", ffn_linears, ffn=FFN(kind="dense", intermediate=up))
    # norm_mlstm, norm_ffn, the multi-head norm (heads * v_head wide); out_norm has no bias.
    norms = parts.norm(2 * norm + heads * v_head * (2 if bias else 1))
    s = parts.stack([(mlstm, norms, ffn)] * layers,
                    outer=(parts.embedding(vocab, hidden), parts.norm(hidden),
                           parts.lm_head(vocab, hidden, head, tied=tie)))
    arch = Architecture(
        model_type=model_type, family=model_type, num_layers=layers, hidden_size=hidden,
        num_attention_heads=0, num_key_value_heads=0, head_dim=0, intermediate_size=up, vocab_size=vocab,
        tie_word_embeddings=tie, max_position_embeddings=None, hidden_act="silu",
        layer_types=("linear_attention",) * layers, **s.keywords(),
        # xLSTMForCausalLM.forward takes no logits_to_keep and soft-caps every position's fp32 logits.
        last_logits_only=False, final_logit_softcapping=f.opt_float("output_logit_soft_cap", 30.0, positive=True),
        notes=("the mLSTM layers take the linear kind's activation terms, itemized on gated DeltaNet's torch path "
               "(memory/activations.py), not on mLSTM's; unverified for xLSTM beyond its coverage-matrix trace "
               "(docs/coverage.md)",),
    )
    return arch, s.tally


FAMILIES = {
    "xlstm": Family(analyze=analyze_xlstm, default_class="xLSTMForCausalLM",
                    classes={"xLSTMForCausalLM": "causal_lm", "xLSTMModel": "base"}, dropouts=NO_DROPOUT,
                    module=__name__),
}
