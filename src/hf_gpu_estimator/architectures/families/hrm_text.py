"""HRM-Text: two weight-tied transformer stacks (H and L) run in a hierarchical recurrence."""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import DERIVED, Dims
from hf_gpu_estimator.architectures._fields import FULL, MISSING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.spec import Architecture, LinearShape


def analyze_hrm_text(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    """configuration_hrm_text.py defaults, modeling_hrm_text.py's module tree.

    ``HrmTextModel`` holds two stacks (``H_module``, ``L_module``) of ``num_layers_per_stack`` decoder
    layers each. Its forward runs them ``H_cycles x (L_cycles + 1)`` times (``L_cycles`` L-stack calls,
    then one H-stack call, per H cycle), and every call of a layer writes its own cache slot: the config
    keeps ``num_hidden_layers = num_layers_per_stack x H_cycles x (L_cycles + 1)``, and transformers'
    ``DynamicCache(config=...)`` holds that many layers. The architecture therefore has one layer per
    attention call (the cache and the activations), while the weights are those of the two stacks.
    """
    h_cycles = f.integer("H_cycles", 2)
    l_cycles = f.integer("L_cycles", 3)
    given_per_stack = f.opt_int("num_layers_per_stack", None)
    # HrmTextAttention: k/v project to num_attention_heads x head_dim (no GQA field).
    d = Dims.read(f, hidden_size=1536, num_hidden_layers=16 if given_per_stack is None else
                  given_per_stack * h_cycles * (l_cycles + 1), num_attention_heads=12,
                  num_key_value_heads=DERIVED, head_dim=128, required=True, intermediate_size=4096,
                  vocab_size=151808, tie_word_embeddings=False, max_position_embeddings=2048)
    hidden, inter, vocab, tie = d.hidden_size, d.intermediate_size, d.vocab_size, d.tie_word_embeddings
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    if given_per_stack is None:
        # A config without num_layers_per_stack: num_hidden_layers is the per-stack count, and
        # HrmTextConfig.__post_init__ derives the number of calls from it.
        per_stack = d.num_layers
        calls = per_stack * h_cycles * (l_cycles + 1)
    else:
        per_stack, calls = given_per_stack, d.num_layers
    if calls != per_stack * h_cycles * (l_cycles + 1):
        raise f.error("num_hidden_layers", calls, f"num_layers_per_stack x H_cycles x (L_cycles + 1) = "
                                                  f"{per_stack * h_cycles * (l_cycles + 1)}")
    # HrmTextModel.forward runs the L stack's first L_cycles - n iterations of H cycle h under torch.no_grad(), n
    # from L_bp_cycles left-padded with 1s to H_cycles entries (default [2]); every H-stack call keeps its tensors.
    bp = f.raw("L_bp_cycles")
    bp = [2] if bp is MISSING or bp is None else bp
    if not isinstance(bp, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in bp):
        raise f.error("L_bp_cycles", bp, "a list of integers")
    padded = [1] * max(0, h_cycles - len(bp)) + bp
    grad_l = sum(min(max(padded[h] if h < len(padded) else 1, 0), l_cycles) for h in range(h_cycles))
    bias = f.boolean("attention_bias", False)
    mlp_bias = f.boolean("mlp_bias", False)
    # HrmTextAttention: q/k/v/o and a sigmoid output gate (hidden -> heads x head_dim); the MLP is SwiGLU.
    # Its RMSNorms (input, post-attention, each stack's final_norm) have no weight.
    attention = parts.attention(hidden, heads, kv_heads, head_dim, qkv_bias=bias)
    attention = parts.combine(attention, parts.of_linears("attention", (LinearShape(
        name="gate_proj", in_features=hidden, out_features=heads * head_dim, bias=bias, group="attn_in"),)))
    mlp = parts.gated_mlp(hidden, inter, bias=mlp_bias)
    block = (attention, mlp)
    stacks = 2 * per_stack
    s = parts.stack([block] * stacks, runs=[block] * calls, merge=False,
                    outer=(parts.embedding(vocab, hidden),
                           parts.params("other", hidden),  # z_L_init, the L stack's initial state (frozen)
                           parts.lm_head(vocab, hidden, head, tied=tie)))
    arch = d.architecture(
        model_type,
        family="hrm_text",
        num_layers=calls,
        grad_layers=per_stack * (grad_l + h_cycles),
        norm_weight=False,  # HrmTextRMSNorm: x * rsqrt(mean(x^2) + eps), no weight
        attention_bias=bias,
        layer_types=(FULL,) * calls,
        **s.keywords(),
        notes=((f"{stacks} weight layers (two stacks of {per_stack}) called {calls} times by the H/L recurrence, "
                "one cache slot per call"),),
    )
    return arch, s.tally


FAMILIES = {
    "hrm_text": Family(
        analyze=analyze_hrm_text, default_class="HrmTextForCausalLM",
        classes={"HrmTextForCausalLM": "causal_lm", "HrmTextModel": "base"},
        module=__name__,
    ),
}
