"""Nemotron-H: a stack of single-part blocks, each a Mamba2 mixer, an attention layer, an MLP or a MoE.

Every block is one ``Layer`` with one part: Mamba2 and attention blocks have ``FFN(kind="none")``, MLP and
MoE blocks ``Mixer(kind="none")`` (modeling_nemotron_h.py ``NemotronHBlock``: one RMSNorm and one mixer).
"""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import MISSING, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.recurrent import pattern_list
from hf_gpu_estimator.spec import Architecture

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
    attention = parts.gqa(f, hidden, heads, kv_heads, bias=False, head_dim=128)  # NemotronHAttention: no biases
    m_heads = f.integer("mamba_num_heads", 128)
    m_head_dim = f.integer("mamba_head_dim", 64)
    groups = f.integer("n_groups", 8, aliases=("mamba_n_groups",))
    if m_heads % groups:
        raise f.error("n_groups", groups, f"a divisor of mamba_num_heads={m_heads}")
    bias = f.boolean("use_bias", False)
    mamba = parts.mamba2(hidden, m_heads * m_head_dim, m_heads, m_head_dim, groups, f.integer("ssm_state_size", 128),
                         f.integer("conv_kernel", 4, aliases=("mamba_d_conv",)), proj_bias=bias,
                         conv_bias=f.boolean("use_conv_bias", True, aliases=("mamba_conv_bias",)),
                         # The torch scan's chunk (configuration_nemotron_h.py chunk_size, default 128;
                         # mamba_chunk_size is read into it).
                         chunk=f.integer("chunk_size", 128, aliases=("mamba_chunk_size",)))
    inter = f.integer("intermediate_size", 21504)
    mlp_bias = f.boolean("mlp_bias", False)
    num_experts = f.integer("n_routed_experts", 8, aliases=("num_local_experts",))
    top_k = f.integer("num_experts_per_tok", 2)
    moe_inter = f.integer("moe_intermediate_size", 7688)
    shared = f.integer("moe_shared_expert_intermediate_size", 7688)
    latent = f.opt_int("moe_latent_size", None)
    if MOE in types and top_k > num_experts:
        raise f.error("num_experts_per_tok", top_k, f"at most n_routed_experts={num_experts}")

    # NemotronHExperts: up_proj and down_proj, no gate, reading the latent when there is one; shared_experts;
    # fc1/fc2_latent_proj. NemotronHTopkRouter: weight (fp32; the bias is a buffer), float32 router logits and
    # top-k weights (modeling_nemotron_h.py).
    latent_proj = (parts.mlp(hidden, latent, bias=mlp_bias, names=("fc1_latent_proj", "fc2_latent_proj"),
                             role="experts"),) if latent else ()
    moe = parts.moe(parts.routed_experts(hidden, moe_inter, num_experts, top_k, gated=False, width=latent),
                    router=num_experts * hidden, fp32_routing=True, always=latent_proj,
                    shared=parts.mlp(hidden, shared, bias=mlp_bias, role="experts"))
    blocks = {MAMBA: mamba, ATTENTION: attention, MLP: parts.mlp(hidden, inter, bias=mlp_bias), MOE: moe}
    norm = parts.norm(hidden)  # NemotronHBlock.norm
    s = parts.stack([(blocks[k], norm) for k in types],
                    outer=(parts.embedding(vocab, hidden), parts.norm(hidden),  # norm_f
                           parts.lm_head(vocab, hidden, head, tied=tie)))
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
        num_shared_experts=1 if MOE in types else 0, notes=tuple(notes), **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "nemotron_h": Family(analyze=analyze_nemotron_h, default_class="NemotronHForCausalLM",
                         classes={"NemotronHForCausalLM": "causal_lm", "NemotronHModel": "base"},
                         module=__name__),
}
