"""Qwen3-Next and Qwen3.5: gated DeltaNet linear attention with gated full attention every 4th layer.

Qwen3-Next (modeling_qwen3_next.py) and the Qwen3.5 MoE text model (modeling_qwen3_5_moe.py) put a MoE block
with a shared expert in every layer; the dense Qwen3.5 text model (modeling_qwen3_5.py) a gated MLP. The
Qwen3.5 wrappers (``qwen3_5``, ``qwen3_5_moe``) add Qwen3-VL's vision model without deepstack mergers.
"""

from __future__ import annotations

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._dims import Dims
from hf_gpu_estimator.architectures._fields import FULL, Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.families.vision_language import qwen_vision_wrap
from hf_gpu_estimator.architectures.recurrent import pattern_list
from hf_gpu_estimator.spec import Architecture

LINEAR = "linear_attention"

#: Class defaults of each text config (configuration_qwen3_next.py, configuration_qwen3_5.py Qwen3_5TextConfig,
#: configuration_qwen3_5_moe.py Qwen3_5MoeTextConfig, transformers 5.25): hidden, intermediate, layers, heads,
#: KV heads, vocabulary, experts, top-k, expert width, shared-expert width. Qwen3_5MoeTextConfig has no
#: intermediate_size (no dense layer): the expert width's default stands in.
_DEFAULTS = {
    "qwen3_next": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=48, num_attention_heads=16,
                       num_key_value_heads=2, vocab_size=151936, experts=(512, 10, 512, 512)),
    "qwen3_5_text": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=32, num_attention_heads=16,
                         num_key_value_heads=4, vocab_size=248320, experts=None),
    "qwen3_5_moe_text": dict(hidden_size=2048, intermediate_size=512, num_hidden_layers=40, num_attention_heads=16,
                             num_key_value_heads=2, vocab_size=248320, experts=(256, 8, 512, 512)),
}  # fmt: skip
#: The wrapper types and their text model types.
_TEXT_TYPES = {"qwen3_5": "qwen3_5_text", "qwen3_5_moe": "qwen3_5_moe_text"}


def _analyze_text(f: Fields, model_type: str, head: Head, text_type: str) -> tuple[Architecture, Tally]:
    defaults = _DEFAULTS[text_type]
    experts_default = defaults["experts"]
    d = Dims.read(f, hidden_size=defaults["hidden_size"], intermediate_size=defaults["intermediate_size"],
                  num_hidden_layers=defaults["num_hidden_layers"], num_attention_heads=defaults["num_attention_heads"],
                  num_key_value_heads=defaults["num_key_value_heads"], head_dim=256, required=True,
                  vocab_size=defaults["vocab_size"], tie_word_embeddings=False, max_position_embeddings=32768)
    hidden, inter, layers, vocab = d.hidden_size, d.intermediate_size, d.num_layers, d.vocab_size
    heads, kv_heads, head_dim = d.num_attention_heads, d.num_key_value_heads, d.head_dim
    bias = f.boolean("attention_bias", False)
    k_heads = f.integer("linear_num_key_heads", 16)
    v_heads = f.integer("linear_num_value_heads", 32)
    if v_heads % k_heads:
        raise f.error("linear_num_value_heads", v_heads, f"a multiple of linear_num_key_heads={k_heads}")
    split = text_type != "qwen3_next"
    deltanet = parts.gated_deltanet(hidden, k_heads, v_heads, f.integer("linear_key_head_dim", 128),
                                    f.integer("linear_value_head_dim", 128), f.integer("linear_conv_kernel_dim", 4),
                                    split=split)
    if experts_default is None:  # Qwen3_5DecoderLayer: a gated MLP in every layer
        num_experts, top_k, moe_inter, shared_inter = 0, 0, 0, 0
        is_moe = [False] * layers
    else:
        num_experts = f.integer("num_experts", experts_default[0], minimum=0)
        top_k = f.integer("num_experts_per_tok", experts_default[1])
        moe_inter = f.integer("moe_intermediate_size", experts_default[2])
        shared_inter = f.integer("shared_expert_intermediate_size", experts_default[3])
        if text_type == "qwen3_next":
            # Qwen3NextDecoderLayer: a sparse MoE block unless listed in mlp_only_layers or off the sparse step.
            step = f.integer("decoder_sparse_step", 1)
            mlp_only = set(f.int_list("mlp_only_layers") or ())
            is_moe = [i not in mlp_only and num_experts > 0 and (i + 1) % step == 0 for i in range(layers)]
        else:  # Qwen3_5MoeDecoderLayer: Qwen3_5MoeSparseMoeBlock in every layer
            if num_experts < 1:
                raise f.error("num_experts", num_experts, "at least 1 (every Qwen3.5 MoE layer routes to experts)")
            is_moe = [True] * layers
        if any(is_moe) and top_k > num_experts:
            raise f.error("num_experts_per_tok", top_k, f"at most num_experts={num_experts}")

    # Qwen3NextConfig / Qwen3_5TextConfig.__post_init__: layer_types, else linear attention except every
    # `full_attention_interval`-th layer (default 4).
    types = pattern_list(f, "layer_types", {LINEAR: LINEAR, FULL: FULL}, layers)
    if types is None:
        interval = f.integer("full_attention_interval", 4)
        types = tuple(LINEAR if (i + 1) % interval else FULL for i in range(layers))

    # Qwen3NextAttention / Qwen3_5Attention: q_proj doubles its output (query and an output gate), q_norm/k_norm
    # per head.
    attention = parts.attention(hidden, heads, kv_heads, head_dim, qkv_bias=bias, q_gate=True, qk_norm=2 * head_dim)
    mixers = {FULL: attention, LINEAR: deltanet}
    norms = parts.norm(2 * hidden)
    dense = parts.gated_mlp(hidden, inter) if not all(is_moe) else None
    moe = None
    if any(is_moe):
        # Fused experts (gate_up_proj + down_proj, no bias); gate.weight + shared_expert_gate (hidden -> 1).
        moe = parts.moe(parts.routed_experts(hidden, moe_inter, num_experts, top_k), router=num_experts * hidden,
                        shared=parts.gated_mlp(hidden, shared_inter, role="experts"),
                        always=(parts.shared_expert_gate(hidden),))
    kinds = tuple(dict.fromkeys(types))
    s = parts.stack(
        [(mixers[kind], norms, moe if is_moe[i] else dense) for i, kind in enumerate(types)],
        outer=(parts.embedding(vocab, hidden), parts.norm(hidden),
               parts.lm_head(vocab, hidden, head, tied=d.tie_word_embeddings)),
        # Both mixer kinds' linears, then the MoE block's, then a dense MLP's where a layer has one.
        linears=(*(mixers[k] for k in kinds), *((moe,) if moe is not None else ()),
                 *((dense,) if dense is not None else ())),
    )
    any_moe = bool(s.moe_layers)
    arch = d.architecture(
        model_type, attention_bias=bias, layer_types=types, num_shared_experts=1 if any_moe else 0,
        norm_style="gemma", qk_norm="head", **s.keywords(),
        notes=("linears lists the linear layers of both layer kinds (gated DeltaNet and gated attention); "
               "each layer has one of them",) if len(kinds) > 1 else (),
    )
    return arch, s.tally


def analyze_qwen3_next(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_qwen3_next.py defaults; modeling_qwen3_next.py module tree.
    return _analyze_text(f, model_type, head, "qwen3_next")


def analyze_qwen3_5_text(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    # configuration_qwen3_5.py / configuration_qwen3_5_moe.py text configs; Qwen3_5ForCausalLM /
    # Qwen3_5MoeForCausalLM module trees.
    return _analyze_text(f, model_type, head, model_type)


def analyze_qwen3_5(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    """Qwen3_5ForConditionalGeneration / Qwen3_5MoeForConditionalGeneration: the text model, Qwen3_5VisionModel
    (Qwen3-VL's vision model with one merger and no deepstack mergers) and the wrapper's lm_head."""
    text_type = _TEXT_TYPES[model_type]
    if head == "causal_lm":  # Qwen3_5ForCausalLM built from the wrapper's config: the text model alone
        return _analyze_text(f.sub("text_config"), model_type, head, text_type)
    arch, t = _analyze_text(f.sub("text_config"), model_type, "base", text_type)
    return qwen_vision_wrap(f, model_type, head, arch, t, deepstack=False)


FAMILIES = {
    "qwen3_next": Family(
        analyze=analyze_qwen3_next, default_class="Qwen3NextForCausalLM",
        classes={"Qwen3NextForCausalLM": "causal_lm", "Qwen3NextModel": "base"}, module=__name__,
    ),
    "qwen3_5_text": Family(
        analyze=analyze_qwen3_5_text, default_class="Qwen3_5ForCausalLM",
        classes={"Qwen3_5ForCausalLM": "causal_lm", "Qwen3_5TextModel": "base"}, module=__name__,
    ),
    "qwen3_5_moe_text": Family(
        analyze=analyze_qwen3_5_text, default_class="Qwen3_5MoeForCausalLM",
        classes={"Qwen3_5MoeForCausalLM": "causal_lm", "Qwen3_5MoeTextModel": "base"}, module=__name__,
    ),
    "qwen3_5": Family(
        analyze=analyze_qwen3_5, default_class="Qwen3_5ForConditionalGeneration",
        classes={"Qwen3_5ForConditionalGeneration": "conditional", "Qwen3_5Model": "base",
                 "Qwen3_5ForCausalLM": "causal_lm"}, module=__name__,
    ),
    "qwen3_5_moe": Family(
        analyze=analyze_qwen3_5, default_class="Qwen3_5MoeForConditionalGeneration",
        classes={"Qwen3_5MoeForConditionalGeneration": "conditional", "Qwen3_5MoeModel": "base",
                 "Qwen3_5MoeForCausalLM": "causal_lm"}, module=__name__,
    ),
}
