"""Dory (NVIDIA Nemotron-Labs Dory): a looped normalized transformer (nGPT) with a recurrent middle section.

modeling_dory.py: the decoder layers split into an input section (``n_input_layers``), a recurrent
section (``n_recurrent_layers``) that runs ``n_recurrent_loops`` times, and an output section
(``n_output_layers``). Each layer is gemma2's sandwich layer on the unit sphere: L2 norms without
weights (input, post-attention, pre- and post-feed-forward, the attention's ``attn_sub_norm`` and the
MLP's ``ffn_sub_norm``; q and k per head), afmoe's gated attention (an output ``gate_proj``) plus the
learned scales ``sqk`` and ``s_gate``, a SwiGLU MLP with ``suv_gate``/``suv_up`` and the residual rates
``lambda_1``/``lambda_2``. The lm_head carries a per-token ``logit_scale``.

config.json writes each decoder layer as two blocks, an attention entry and an ``"mlp"`` entry in
``layer_types``, with every layer count doubled (DoryConfig.to_dict); DoryConfig.__post_init__ halves
them back. This module reads both forms.

The architecture's ``per_layer`` lists the layers in the order one forward runs them: the recurrent
section once per loop. Each run saves its own activations, and with ``recurrent_kv_cache_mode``
``"per_loop"`` (the default) keeps its own cache (DoryModel.forward appends a copy of the recurrent
cache layers per extra loop); with ``"last_loop"`` only the last loop writes one. Parameters are
counted once per distinct layer.
"""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, SLIDING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape


def analyze_dory(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_dory.py defaults.
    blocks = f.raw("layer_types")
    # The released form lists (attention, "mlp") per layer and doubles the counts (DoryConfig.to_dict).
    paired = isinstance(blocks, list) and "mlp" in blocks
    scale = 2 if paired else 1
    d = Dims.read(f, hidden_size=2560, intermediate_size=7168, num_hidden_layers=36 * scale, num_attention_heads=16,
                  num_key_value_heads=4, head_dim=256, required=True, vocab_size=131072, tie_word_embeddings=False,
                  max_position_embeddings=8192)
    hidden, inter, vocab, tie = d.hidden_size, d.intermediate_size, d.vocab_size, d.tie_word_embeddings
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    layers = d.num_layers // scale
    window = f.integer("sliding_window", 1024)
    n_input = f.integer("n_input_layers", 8 * scale, minimum=0) // scale
    n_output = f.integer("n_output_layers", 8 * scale, minimum=0) // scale
    n_recurrent_raw = f.opt_int("n_recurrent_layers")
    n_recurrent = n_recurrent_raw // scale if n_recurrent_raw is not None else layers - n_input - n_output
    loops = f.integer("n_recurrent_loops", 2)
    if n_input + n_recurrent + n_output != layers:
        raise f.error("n_recurrent_layers", n_recurrent_raw,
                      f"n_input_layers + n_recurrent_layers + n_output_layers = num_hidden_layers ({layers})")
    if paired:
        types = tuple(blocks[::2])
        if len(types) != layers or any(t not in (FULL, SLIDING) for t in types):
            raise f.error("layer_types", blocks, f"{layers} (attention, 'mlp') pairs")
    else:
        types = f.layer_types(layers) or tuple(FULL if (i + 1) % 4 == 0 else SLIDING for i in range(layers))
    per_loop_cache = f.string("recurrent_kv_cache_mode", "per_loop") == "per_loop"

    bias = f.boolean("attention_bias", False)
    mlp_bias = f.boolean("mlp_bias", False)
    q_out = heads * head_dim
    # AfmoeAttention's output gate: sigmoid(gate_proj(x)) scales the attention output; sqk, s_gate.
    full = parts.combine(
        parts.attention(hidden, heads, kv_heads, head_dim, qkv_bias=bias),
        parts.of_linears("attention", (LinearShape(name="gate_proj", in_features=hidden, out_features=q_out,
                                                   bias=False, group="attn_in"),)),
        parts.params("attention", 2 * q_out))
    mlp = parts.combine(parts.gated_mlp(hidden, inter, bias=mlp_bias), parts.params("mlp", 2 * inter))  # suv_*
    rates = parts.params("other", 2 * hidden)  # lambda_1, lambda_2 (the residual interpolation rates)
    attention = {FULL: full, SLIDING: parts.windowed(full, window=window)}
    # A recurrent layer's earlier loops under "last_loop" read the cache without writing one.
    reading = {k: parts.with_mixer(a, kv_shared=True) for k, a in attention.items()}
    weights = [(attention[kind], mlp, rates) for kind in types]
    reads = [(reading[kind], mlp, rates) for kind in types]
    # DoryModel.forward runs self.layers[:n_input], then [n_input:n_input + n_recurrent] once per loop, then
    # [num_hidden_layers - n_output:]: Python slices, also where a derived n_recurrent_layers is negative.
    end = n_input + n_recurrent
    order = weights[:n_input]
    for loop in range(loops):
        order += (weights if per_loop_cache or loop == loops - 1 else reads)[n_input:end]
    order += weights[layers - n_output:]
    s = parts.stack(weights, runs=order, linears=(full, mlp), merge=False,
                    outer=(parts.embedding(vocab, hidden),
                           # DoryLMHead: weight + logit_scale
                           parts.params("lm_head", vocab + (0 if tie else vocab * hidden) if head == "causal_lm"
                                        else 0)))
    arch = d.architecture(
        model_type,
        family="dory",
        num_layers=len(order),
        attention_bias=bias,
        layer_types=tuple(layer.mixer.kind == "sliding" and SLIDING or FULL for layer in s.layers),
        sliding_window=window,
        # Sandwich norms (4) plus attn_sub_norm and ffn_sub_norm, all L2 norms without weights.
        norms_per_layer=6,
        qk_norm="head",
        **s.keywords(),
        notes=((f"{layers} decoder layers; the {n_recurrent} recurrent ones run {loops} times per forward, so the "
                f"layer list has {len(order)} entries (activations and caches per run, parameters once)"),),
    )
    return arch, s.tally


FAMILIES = {
    "dory": Family(
        analyze=analyze_dory, default_class="DoryForCausalLM",
        classes={"DoryForCausalLM": "causal_lm", "DoryModel": "base"},
        module=__name__,
    ),
}
