"""Nemotron-H: a stack of single-part blocks, each a Mamba2 mixer, an attention layer, an MLP or a MoE.

Every block is one ``Layer`` with one part: Mamba2 and attention blocks have ``FFN(kind="none")``, MLP and
MoE blocks ``Mixer(kind="none")`` (modeling_nemotron_h.py ``NemotronHBlock``: one RMSNorm and one mixer).
"""

from __future__ import annotations

from hf_gpu_estimator.architectures._fields import MISSING, Fields, Head, Tally, lin
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.recurrent import gqa, mamba2, merge_linears, pattern_list
from hf_gpu_estimator.spec import FFN, Architecture, Layer, LinearShape, Mixer

MAMBA, ATTENTION, MLP, MOE = "linear_attention", "full_attention", "mlp", "moe"
#: NemotronHConfig._pattern_to_list: hybrid_override_pattern characters.
_PATTERN = {"M": MAMBA, "E": MOE, "*": ATTENTION, "-": MLP}
#: layers_block_type names, legacy ones remapped (configuration_utils._LEGACY_LAYER_TYPE_REMAP).
_TYPES = {MAMBA: MAMBA, ATTENTION: ATTENTION, MLP: MLP, MOE: MOE, "mamba": MAMBA, "attention": ATTENTION}


def _block_types(f: Fields) -> tuple[str, ...]:
    # NemotronHConfig.__post_init__: layers_block_type (alias layer_types), else hybrid_override_pattern, else
    # the default four blocks; num_hidden_layers is ignored (the count is the list's length).
    for name in ("layers_block_type", "layer_types"):
        types = pattern_list(f, name, _TYPES, None)
        if types is not None:
            return types
    pattern = f.raw("hybrid_override_pattern")
    if pattern is None or pattern is MISSING:
        return (MAMBA, MOE, ATTENTION, MLP)
    if not isinstance(pattern, str) or not pattern or any(c not in _PATTERN for c in pattern) \
            or len(pattern) > 100_000:
        raise f.error("hybrid_override_pattern", pattern, "a string of the characters M, E, * and -")
    return tuple(_PATTERN[c] for c in pattern)


def analyze_nemotron_h(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_nemotron_h.py defaults (and its legacy mamba_* aliases); modeling_nemotron_h.py.
    hidden = f.integer("hidden_size", 4096)
    vocab = f.integer("vocab_size", 131072)
    # NemotronHForCausalLM declares no tied weights (_tied_weights_keys = {}): lm_head is its own tensor
    # whatever tie_word_embeddings says.
    tie = False
    types = _block_types(f)
    layers = len(types)
    given_layers = f.opt_int("num_hidden_layers", None)  # type-checked, then ignored as transformers does
    heads = f.integer("num_attention_heads", 32)
    kv_heads = f.opt_int("num_key_value_heads", 8) or heads
    attention = gqa(f, hidden, heads, kv_heads, bias=False, head_dim=128)  # NemotronHAttention: no biases
    m_heads = f.integer("mamba_num_heads", 128)
    m_head_dim = f.integer("mamba_head_dim", 64)
    groups = f.integer("n_groups", 8, aliases=("mamba_n_groups",))
    if m_heads % groups:
        raise f.error("n_groups", groups, f"a divisor of mamba_num_heads={m_heads}")
    bias = f.boolean("use_bias", False)
    mamba = mamba2(hidden, m_heads * m_head_dim, m_heads, m_head_dim, groups, f.integer("ssm_state_size", 128),
                   f.integer("conv_kernel", 4, aliases=("mamba_d_conv",)), proj_bias=bias,
                   conv_bias=f.boolean("use_conv_bias", True, aliases=("mamba_conv_bias",)),
                   # The torch scan's chunk (configuration_nemotron_h.py chunk_size, default 128; mamba_chunk_size
                   # is read into it).
                   chunk=f.integer("chunk_size", 128, aliases=("mamba_chunk_size",)))
    inter = f.integer("intermediate_size", 21504)
    mlp_bias = f.boolean("mlp_bias", False)
    mlp_linears = (
        LinearShape(name="up_proj", in_features=hidden, out_features=inter, bias=mlp_bias),
        LinearShape(name="down_proj", in_features=inter, out_features=hidden, bias=mlp_bias),
    )
    num_experts = f.integer("n_routed_experts", 8, aliases=("num_local_experts",))
    top_k = f.integer("num_experts_per_tok", 2)
    moe_inter = f.integer("moe_intermediate_size", 7688)
    shared = f.integer("moe_shared_expert_intermediate_size", 7688)
    latent = f.opt_int("moe_latent_size", None)
    if MOE in types and top_k > num_experts:
        raise f.error("num_experts_per_tok", top_k, f"at most n_routed_experts={num_experts}")
    width = latent or hidden
    expert = 2 * moe_inter * width  # NemotronHExperts: up_proj and down_proj, no gate
    moe_always = lin(hidden, shared, mlp_bias) + lin(shared, hidden, mlp_bias)  # shared_experts
    if latent:
        moe_always += lin(hidden, latent, mlp_bias) + lin(latent, hidden, mlp_bias)  # fc1/fc2_latent_proj
    moe_linears = (
        LinearShape(name="up_proj", in_features=width, out_features=moe_inter, count=num_experts),
        LinearShape(name="down_proj", in_features=moe_inter, out_features=width, count=num_experts),
        LinearShape(name="up_proj", in_features=hidden, out_features=shared, bias=mlp_bias),
        LinearShape(name="down_proj", in_features=shared, out_features=hidden, bias=mlp_bias),
    )
    if latent:
        moe_linears += (
            LinearShape(name="fc1_latent_proj", in_features=hidden, out_features=latent, bias=mlp_bias),
            LinearShape(name="fc2_latent_proj", in_features=latent, out_features=hidden, bias=mlp_bias),
        )

    t = Tally()
    t.add("embedding", vocab * hidden)
    none = Mixer(kind="none")
    blocks = {
        MAMBA: Layer(mixer=mamba.mixer, ffn=FFN(kind="none")),
        ATTENTION: Layer(mixer=attention.mixer, ffn=FFN(kind="none")),
        MLP: Layer(mixer=none, ffn=FFN(kind="dense", intermediate=inter, gated=False)),
        # NemotronHTopkRouter: float32 router logits and top-k weights (modeling_nemotron_h.py).
        MOE: Layer(mixer=none, ffn=FFN(kind="moe", intermediate=moe_inter, gated=False, experts=num_experts,
                                       top_k=top_k, shared=shared, fp32_routing=True)),
    }
    for kind in types:
        t.add("norm", hidden)
        if kind == MAMBA:
            t.add("attention", mamba.params)
            t.add("norm", mamba.norm)
        elif kind == ATTENTION:
            t.add("attention", attention.params)
        elif kind == MLP:
            t.add("mlp", sum(lin(x.in_features, x.out_features, x.bias) for x in mlp_linears))
        else:
            t.add("experts", num_experts * expert + moe_always)
            t.add("router", num_experts * hidden)  # NemotronHTopkRouter.weight (fp32); the bias is a buffer
            t.idle += (num_experts - top_k) * expert
    t.add("norm", hidden)  # norm_f
    if head == "causal_lm" and not tie:
        t.add("lm_head", vocab * hidden)

    groups_linears = {MAMBA: mamba.linears, ATTENTION: attention.linears, MLP: mlp_linears, MOE: moe_linears}
    kinds = tuple(dict.fromkeys(types))
    moe_layers = tuple(i for i, k in enumerate(types) if k == MOE)
    notes = ["each block has one part (Mamba2, attention, MLP or MoE); linears lists the linear layers of "
             "every block kind present"]
    if given_layers is not None and given_layers != layers:
        notes.append(f"num_hidden_layers={given_layers} is ignored: transformers builds the {layers} blocks the "
                     "layer pattern lists")
    if f.opt_int("num_nextn_predict_layers", 0, minimum=0):
        notes.append("num_nextn_predict_layers (MTP) is not counted: transformers builds no module for it")
    arch = Architecture(
        model_type=model_type, family=model_type, num_layers=layers, hidden_size=hidden,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=attention.mixer.head_dim,
        intermediate_size=inter, vocab_size=vocab, tie_word_embeddings=tie,
        max_position_embeddings=f.integer("max_position_embeddings", 4096),
        hidden_act=f.string("mlp_hidden_act", "relu2"), gated_mlp=False, norms_per_layer=1, layer_types=types,
        num_experts=num_experts if moe_layers else 0, num_experts_per_tok=top_k if moe_layers else 0,
        moe_intermediate_size=moe_inter if moe_layers else 0, num_shared_experts=1 if moe_layers else 0,
        shared_expert_intermediate_size=shared if moe_layers else 0, moe_layers=moe_layers,
        linears=merge_linears(*(groups_linears[k] for k in kinds)),
        per_layer=tuple(blocks[k] for k in types), notes=tuple(notes),
    )
    return arch, t


FAMILIES = {
    "nemotron_h": Family(analyze=analyze_nemotron_h, default_class="NemotronHForCausalLM",
                         classes={"NemotronHForCausalLM": "causal_lm", "NemotronHModel": "base"},
                         module=__name__),
}
