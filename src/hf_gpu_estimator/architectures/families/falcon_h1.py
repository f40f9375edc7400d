"""Falcon-H1: every layer runs attention and a Mamba2 mixer side by side on the same input, then an MLP.

Each layer is described as ``Layer(mixer=<full attention>, parallel=<Mamba2>)``: both read the normalized
input and their outputs are summed (modeling_falcon_h1.py ``FalconH1DecoderLayer.forward``), and transformers
caches both for the layer (``layer_types`` are all ``"hybrid"``: cache_utils.LinearAttentionAndFullAttentionLayer).
"""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.recurrent import mamba2_heads
from hf_gpu_estimator.spec import Architecture


def analyze_falcon_h1(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_falcon_h1.py defaults; modeling_falcon_h1.py module tree.
    d = Dims.read(f, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128000, tie_word_embeddings=False, max_position_embeddings=8192)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    mlp_bias = f.boolean("mlp_bias", False)
    attention = parts.gqa(f, hidden, d.num_attention_heads, d.num_key_value_heads,
                          bias=f.boolean("attention_bias", False))
    # FalconH1Mixer: width mamba_d_ssm (default 1024), else mamba_expand * hidden_size; the gated RMSNorm
    # exists only with mamba_rms_norm; out_proj's bias is projectors_bias.
    inner = f.opt_int("mamba_d_ssm", 1024) or f.integer("mamba_expand", 2) * hidden
    m_heads, m_head_dim = mamba2_heads(f, inner, "mamba_n_heads", 128, "mamba_d_head")
    groups = f.integer("mamba_n_groups", 1)
    if m_heads % groups:
        raise f.error("mamba_n_groups", groups, f"a divisor of mamba_n_heads={m_heads}")
    mamba = parts.mamba2(hidden, inner, m_heads, m_head_dim, groups, f.integer("mamba_d_state", 256),
                         f.integer("mamba_d_conv", 4), proj_bias=f.boolean("mamba_proj_bias", False),
                         conv_bias=f.boolean("mamba_conv_bias", True), out_bias=f.boolean("projectors_bias", False),
                         gated_norm=f.boolean("mamba_rms_norm", False))
    # Each layer: attention and Mamba2 side by side, input_layernorm and pre_ff_layernorm, the MLP.
    block = (attention, mamba, parts.norm(2 * hidden), parts.gated_mlp(hidden, inter, bias=mlp_bias))
    s = parts.stack([block] * layers,
                    outer=(parts.embedding(vocab, hidden), parts.norm(hidden),  # final_layernorm
                           parts.lm_head(vocab, hidden, head, tied=d.tie_word_embeddings)))
    arch = d.architecture(
        model_type, attention_bias=f.boolean("attention_bias", False),
        parallel_attention=True, layer_types=("hybrid",) * layers, **s.keywords(),
    )
    return arch, s.tally


FAMILIES = {
    "falcon_h1": Family(analyze=analyze_falcon_h1, default_class="FalconH1ForCausalLM",
                        classes={"FalconH1ForCausalLM": "causal_lm", "FalconH1Model": "base"}, module=__name__),
}
