"""Mamba and Mamba2: attention-free stacks of SSM mixers (no feed-forward part)."""

from __future__ import annotations

from hf_gpu_estimator.architectures._fields import Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import NO_DROPOUT, Family
from hf_gpu_estimator.architectures.parts import Part, embedding, lm_head, mamba1, mamba2, norm, stack
from hf_gpu_estimator.architectures.recurrent import dt_rank
from hf_gpu_estimator.spec import Architecture


def _ssm_stack(f: Fields, model_type: str, head: Head, *, hidden: int, layers: int, vocab: int, tie: bool,
               part: Part, notes: tuple[str, ...]) -> tuple[Architecture, Tally]:
    # modeling_mamba.py / modeling_mamba2.py: embeddings, per block one RMSNorm + mixer, norm_f, lm_head.
    s = stack([(part, norm(hidden))] * layers,
              outer=(embedding(vocab, hidden), norm(hidden), lm_head(vocab, hidden, head, tied=tie)))
    arch = Architecture(
        model_type=model_type, family=model_type, num_layers=layers, hidden_size=hidden,
        num_attention_heads=0, num_key_value_heads=0, head_dim=0, intermediate_size=0, vocab_size=vocab,
        tie_word_embeddings=tie, max_position_embeddings=None, hidden_act=f.string("hidden_act", "silu"),
        norms_per_layer=1, layer_types=("linear_attention",) * layers, notes=notes, **s.keywords(),
    )
    return arch, s.tally


def analyze_mamba(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_mamba.py: intermediate_size = expand * hidden_size; time_step_rank "auto" = ceil(hidden/16).
    hidden = f.integer("hidden_size", 768)
    layers = f.integer("num_hidden_layers", 32)
    vocab = f.integer("vocab_size", 50280)
    inner = f.integer("expand", 2) * hidden
    part = mamba1(hidden, inner, f.integer("state_size", 16), f.integer("conv_kernel", 4),
                  dt_rank(f, "time_step_rank", hidden), proj_bias=f.boolean("use_bias", False),
                  conv_bias=f.boolean("use_conv_bias", True))
    return _ssm_stack(f, model_type, head, hidden=hidden, layers=layers, vocab=vocab,
                      tie=f.boolean("tie_word_embeddings", True), part=part, notes=())


def analyze_mamba2(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_mamba2.py: the mixer's width is expand * hidden_size and must equal num_heads * head_dim
    # (validate_architecture); time_step_rank is read but builds no module in Mamba2Mixer.
    hidden = f.integer("hidden_size", 4096)
    layers = f.integer("num_hidden_layers", 64)
    vocab = f.integer("vocab_size", 32768)
    heads = f.integer("num_heads", 128)
    head_dim = f.integer("head_dim", 64)
    inner = f.integer("expand", 2) * hidden
    if heads * head_dim != inner:
        raise f.error("num_heads", heads, f"num_heads * head_dim ({heads} * {head_dim}) equal to "
                                          f"expand * hidden_size ({inner}), as transformers requires")
    groups = f.integer("n_groups", 8)
    if heads % groups:
        raise f.error("n_groups", groups, f"a divisor of num_heads={heads}")
    part = mamba2(hidden, inner, heads, head_dim, groups, f.integer("state_size", 128),
                  f.integer("conv_kernel", 4), proj_bias=f.boolean("use_bias", False),
                  conv_bias=f.boolean("use_conv_bias", True), chunk=f.integer("chunk_size", 256))
    return _ssm_stack(f, model_type, head, hidden=hidden, layers=layers, vocab=vocab,
                      tie=f.boolean("tie_word_embeddings", False), part=part, notes=())


FAMILIES = {
    "mamba": Family(analyze=analyze_mamba, default_class="MambaForCausalLM",
                    classes={"MambaForCausalLM": "causal_lm", "MambaModel": "base"},
                    dropouts=NO_DROPOUT, module=__name__),
    "mamba2": Family(analyze=analyze_mamba2, default_class="Mamba2ForCausalLM",
                     classes={"Mamba2ForCausalLM": "causal_lm", "Mamba2Model": "base"},
                     dropouts=NO_DROPOUT, module=__name__),
}
