"""Qwen3-Next: gated DeltaNet linear attention with gated full attention every 4th layer, MoE + shared expert."""

from __future__ import annotations

from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import attention_linears, fused_experts, gated_linears
from hf_gpu_estimator.architectures.recurrent import gated_deltanet, merge_linears, pattern_list
from hf_gpu_estimator.spec import FFN, Architecture, Layer, LinearShape, Mixer

LINEAR = "linear_attention"


def analyze_qwen3_next(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_qwen3_next.py defaults; modeling_qwen3_next.py module tree.
    d = Dims.read(f, hidden_size=2048, intermediate_size=5632, num_hidden_layers=48, num_attention_heads=16,
                  num_key_value_heads=2, head_dim=256, required=True, vocab_size=151936, tie_word_embeddings=False,
                  max_position_embeddings=32768)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    bias = f.boolean("attention_bias", False)
    k_heads = f.integer("linear_num_key_heads", 16)
    v_heads = f.integer("linear_num_value_heads", 32)
    if v_heads % k_heads:
        raise f.error("linear_num_value_heads", v_heads, f"a multiple of linear_num_key_heads={k_heads}")
    deltanet = gated_deltanet(hidden, k_heads, v_heads, f.integer("linear_key_head_dim", 128),
                              f.integer("linear_value_head_dim", 128), f.integer("linear_conv_kernel_dim", 4))
    num_experts = f.integer("num_experts", 512, minimum=0)
    top_k = f.integer("num_experts_per_tok", 10)
    moe_inter = f.integer("moe_intermediate_size", 512)
    shared_inter = f.integer("shared_expert_intermediate_size", 512)
    step = f.integer("decoder_sparse_step", 1)
    mlp_only = set(f.int_list("mlp_only_layers") or ())

    # Qwen3NextConfig.__post_init__: layer_types, else linear attention except every
    # `full_attention_interval`-th layer (default 4).
    types = pattern_list(f, "layer_types", {LINEAR: LINEAR, FULL: FULL}, layers)
    if types is None:
        interval = f.integer("full_attention_interval", 4)
        types = tuple(LINEAR if (i + 1) % interval else FULL for i in range(layers))
    # Qwen3NextDecoderLayer: a sparse MoE block unless listed in mlp_only_layers or off the sparse step.
    moe_layers = tuple(i for i in range(layers)
                       if i not in mlp_only and num_experts > 0 and (i + 1) % step == 0)
    if moe_layers and top_k > num_experts:
        raise f.error("num_experts_per_tok", top_k, f"at most num_experts={num_experts}")

    # Qwen3NextAttention: q_proj doubles its output (query and an output gate), q_norm/k_norm per head.
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    attn_linears = (
        LinearShape(name="q_proj", in_features=hidden, out_features=2 * q_out, bias=bias),
        *attention_linears(hidden, q_out, kv_out, bias, bias)[1:],
    )
    attn = sum(lin(x.in_features, x.out_features, x.bias) for x in attn_linears)
    expert = 3 * hidden * moe_inter  # fused gate_up_proj + down_proj, no bias (Qwen3NextExperts)

    t = Tally()
    t.add("embedding", vocab * hidden)
    moe_set = set(moe_layers)
    for i in range(layers):
        if types[i] == FULL:
            t.add("attention", attn)
            t.add("norm", 2 * head_dim)
        else:
            t.add("attention", deltanet.params)
            t.add("norm", deltanet.norm)
        t.add("norm", 2 * hidden)
        if i in moe_set:
            t.add("experts", num_experts * expert + 3 * hidden * shared_inter)
            t.add("router", num_experts * hidden + hidden)  # gate.weight + shared_expert_gate (hidden -> 1)
            t.idle += (num_experts - top_k) * expert
        else:
            t.add("mlp", 3 * hidden * inter)
    t.add("norm", hidden)
    if head == "causal_lm" and not d.tie_word_embeddings:
        t.add("lm_head", vocab * hidden)

    full = Mixer(kind="full", heads=heads, kv_heads=kv_heads, head_dim=head_dim)
    dense = FFN(kind="dense", intermediate=inter)
    moe = FFN(kind="moe", intermediate=moe_inter, experts=num_experts, top_k=top_k, shared=shared_inter)
    per_layer = tuple(Layer(mixer=full if types[i] == FULL else deltanet.mixer,
                            ffn=moe if i in moe_set else dense) for i in range(layers))
    ffn_linears: tuple[LinearShape, ...] = ()
    if moe_layers:
        ffn_linears += (
            *fused_experts(hidden, moe_inter, num_experts),
            *gated_linears(hidden, shared_inter, False),
        )
    if len(moe_layers) < layers:
        ffn_linears += gated_linears(hidden, inter, False)
    mixers = tuple(dict.fromkeys(types))
    linears = merge_linears(*(attn_linears if k == FULL else deltanet.linears for k in mixers), ffn_linears)
    arch = d.architecture(
        model_type, attention_bias=bias, layer_types=types,
        num_experts=num_experts if moe_layers else 0, num_experts_per_tok=top_k if moe_layers else 0,
        moe_intermediate_size=moe_inter if moe_layers else 0, num_shared_experts=1 if moe_layers else 0,
        shared_expert_intermediate_size=shared_inter if moe_layers else 0, moe_layers=moe_layers,
        linears=linears, norm_style="gemma", qk_norm="head", per_layer=per_layer,
        notes=("linears lists the linear layers of both layer kinds (gated DeltaNet and gated attention); "
               "each layer has one of them",) if len(mixers) > 1 else (),
    )
    return arch, t


FAMILIES = {
    "qwen3_next": Family(
        analyze=analyze_qwen3_next, default_class="Qwen3NextForCausalLM",
        classes={"Qwen3NextForCausalLM": "causal_lm", "Qwen3NextModel": "base"}, module=__name__,
    ),
}
