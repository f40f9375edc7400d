"""The generic family: any decoder config read through transformers' standard field names.

For a ``model_type`` with no family module, the dimensions come from the standard fields
(``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``,
``head_dim``, ``intermediate_size``, ``vocab_size``), resolved through the model type's
``attribute_map`` (``n_embd`` for ``hidden_size`` ...) and its config defaults, both recorded from
transformers by ``scripts/build_generic_data.py`` in ``generic_data.json``; a multimodal wrapper's
``text_config`` is read instead of the wrapper. Layer kinds come from ``layer_types`` (or
``layers_block_type``) and the sliding-window fields; experts from the MoE fields.

Parameter counts from the config alone assume llama-style blocks (q/k/v/o projections, a gated MLP
for SiLU activations and a plain one otherwise, two RMSNorms per block); with the checkpoint's
safetensors headers the counts are exact (sources/headers.py counts the tensors). Everything it
returns is marked ``derivation="generic"`` and says so in its notes.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import MISSING, Fields, Head, Tally
from hf_gpu_estimator.architectures.blocks import attention_linears
from hf_gpu_estimator.spec import Architecture, Mixer

#: Names other configs use for the standard fields, beyond the model type's own ``attribute_map``.
_ALIASES: Mapping[str, tuple[str, ...]] = {
    "hidden_size": ("d_model", "n_embd", "dim", "model_dim", "embed_dim"),
    "num_hidden_layers": ("n_layer", "num_layers", "n_layers"),
    "num_attention_heads": ("n_head", "num_heads", "n_heads"),
    "num_key_value_heads": ("num_kv_heads", "n_head_kv", "n_kv_heads", "multi_query_group_num"),
    "head_dim": ("d_kv", "kv_channels", "attention_head_dim"),
    "intermediate_size": ("ffn_hidden_size", "n_inner", "d_ff", "ffn_dim", "ffn_intermediate_size", "dff"),
    "vocab_size": ("padded_vocab_size", "n_vocab"),
    "max_position_embeddings": ("n_positions", "max_seq_len", "max_sequence_length", "seq_length", "n_ctx"),
    "hidden_act": ("activation_function", "hidden_activation", "activation", "act_fn"),
    "num_experts": ("num_local_experts", "n_routed_experts", "moe_num_experts"),
    "num_experts_per_tok": ("moe_topk", "moe_k", "num_experts_per_token", "moe_top_k"),
    "moe_intermediate_size": ("expert_intermediate_size", "moe_ffn_hidden_size"),
    "sliding_window": ("sliding_window_size",),
    "layer_types": ("layers_block_type", "block_types"),
}  # fmt: skip

#: SiLU-family activations go with gated (SwiGLU) MLPs in the transformers decoders that use them;
#: GELU/ReLU decoders are split between gated and plain, so plain is assumed (headers give the truth).
_GATED_ACTS = frozenset({"silu", "swish", "swiglu"})

#: ``layer_types`` values -> mixer kinds (transformers' names across model types).
_KINDS: tuple[tuple[str, str], ...] = (
    ("sliding", "sliding"), ("chunk", "chunked"), ("linear", "linear"), ("mamba", "ssm"), ("ssm", "ssm"),
    ("conv", "ssm"), ("recurrent", "linear"), ("rwkv", "linear"), ("cross", "cross"),
)  # fmt: skip


@lru_cache(maxsize=1)
def _data() -> Mapping[str, Any]:
    text = resources.files("hf_gpu_estimator.architectures").joinpath("generic_data.json").read_text()
    return json.loads(text)


def transformers_version() -> str:
    """The transformers version ``generic_data.json`` was recorded from."""
    return str(_data().get("transformers", "unknown"))


#: The generic family's error as the coverage matrix measured it (docs/coverage.md; tests/test_coverage.py
#: recomputes it from the committed traces and fails when it drifts): the analytic peak against the traced
#: peak of transformers' own code, over the traced types the generic family estimates (default configs
#: cut to a few layers, with the checkpoint's headers), |error| median and worst, and how many of them
#: are within 10 % (inference) and 15 % (training) with exact parameter counts.
GENERIC_MEASURED = {"types": 129, "within": 129, "inference_median": 0.000, "inference_worst": 0.066,
                    "training_median": 0.000, "training_worst": 0.143}

GENERIC_TOLERANCE = (
    f"over the {GENERIC_MEASURED['types']} model types the coverage matrix traced, {GENERIC_MEASURED['within']} "
    f"are within 10 % (inference) and 15 % (training) of exact-mode traces, |error| median "
    f"{GENERIC_MEASURED['inference_median']:.1%} / {GENERIC_MEASURED['training_median']:.1%}, worst "
    f"{GENERIC_MEASURED['inference_worst']:.1%} / {GENERIC_MEASURED['training_worst']:.1%} (inference / training), "
    "with the checkpoint's headers"
)


def generic_assumption(model_type: str) -> str:
    """The assumption line every generic estimate carries; for a model type the record does not know (a newer
    transformers than the record, or remote code), the line that says so and names the recorded version."""
    if model_type not in known_model_types():
        return (f"{model_type!r} is not among the model types recorded from transformers {transformers_version()} "
                "(a newer transformers, or remote code, which is never run): read through transformers' standard "
                "config field names and their common aliases, with no recorded defaults; parameter counts are "
                "exact only from the checkpoint's safetensors headers; --exact traces it where the installed "
                "transformers implements it")
    return (f"{model_type!r} is estimated by the generic family (transformers' standard config fields, no family "
            f"module): {GENERIC_TOLERANCE} (docs/coverage.md); --exact traces the real code")


def generic_supports_sdpa(model_type: str) -> bool:
    """The causal-LM class's ``_supports_sdpa`` as recorded from transformers (True when unrecorded)."""
    return bool(_data().get("model_types", {}).get(model_type, {}).get("supports_sdpa", True))


def generic_native_softmax(model_type: str) -> bool:
    """Whether the causal-LM class's eager attention runs softmax in the scores' dtype (no fp32 upcast), as
    recorded from its modeling file by ``scripts/build_generic_data.py`` (False when unrecorded)."""
    return bool(_data().get("model_types", {}).get(model_type, {}).get("native_softmax", False))


def persistent_buffers(model_type: str) -> frozenset[str] | None:
    """Name suffixes of the persistent buffers transformers registers for ``model_type`` (what a checkpoint
    stores beside its parameters), recorded from the meta-device model; None when not recorded."""
    recorded = _data().get("model_types", {}).get(model_type, {}).get("buffers")
    return frozenset(recorded) if isinstance(recorded, list) else None


def keep_in_fp32(model_type: str) -> dict[str, tuple[str, ...]]:
    """Module-name patterns ``from_pretrained`` loads in float32 whatever the requested dtype, by requested dtype
    (``"bfloat16"``, ``"float16"``): transformers ``PreTrainedModel._get_dtype_plan`` (``_keep_in_fp32_modules_strict``
    for both, ``_keep_in_fp32_modules`` for float16 only), matched as regular expressions searched in each
    parameter name (``core_model_loading``'s glob alternation, ``*`` as ``.*``). Recorded by
    ``scripts/build_generic_data.py``; empty when the type keeps none or is unrecorded."""
    recorded = _data().get("model_types", {}).get(model_type, {}).get("keep_in_fp32") or {}
    return {dtype: tuple(patterns) for dtype, patterns in recorded.items()}
def eager_sinks(model_type: str) -> tuple[bool, bool]:
    """(sinks, fp32 scores) of the causal-LM class's eager attention as recorded from its modeling file by
    ``scripts/build_generic_data.py``: a learned sink column appended to the scores before the softmax, and scores
    computed from fp32 queries and keys (False, False when unrecorded)."""
    entry = _data().get("model_types", {}).get(model_type, {})
    return bool(entry.get("eager_sinks", False)), bool(entry.get("fp32_scores", False))


def fp32_router(model_type: str) -> bool:
    """Whether the causal-LM class's MoE router computes in fp32 (``F.linear(hidden_states.type(torch.float32),
    ...)``), as recorded from its modeling file by ``scripts/build_generic_data.py`` (False when unrecorded)."""
    return bool(_data().get("model_types", {}).get(model_type, {}).get("fp32_router", False))


def kept_fp32_unknown(model_type: str) -> str | None:
    """The assumption line of a model known without tensor names (config.json alone, the bundled catalog) whose type
    keeps modules in float32 on a 16-bit load (:func:`keep_in_fp32`): their parameters are counted in the load
    dtype. None when the type keeps none."""
    patterns = sorted({p for ps in keep_in_fp32(model_type).values() for p in ps})
    if not patterns:
        return None
    return (f"from_pretrained keeps the modules matching {', '.join(patterns)} in float32 on a 16-bit load "
            "(_keep_in_fp32_modules); without the checkpoint's tensor names their parameters are counted in the "
            "load dtype (point at the repository for its headers)")


def computes_last_logits_only(model_type: str) -> bool:
    """Whether the causal-LM class's forward takes ``logits_to_keep`` (generate's prefill then computes the last
    position's logits only); recorded from transformers (True when unrecorded)."""
    return bool(_data().get("model_types", {}).get(model_type, {}).get("logits_to_keep", True))


def computes_loss_upcast(model_type: str) -> bool:
    """Whether the causal-LM class's forward computes its loss through ``self.loss_function`` (ForCausalLMLoss:
    fp32 logits first) rather than ``nn.CrossEntropyLoss()`` on the head's output in its own dtype; recorded from
    its source by ``scripts/build_generic_data.py`` (True when unrecorded)."""
    return bool(_data().get("model_types", {}).get(model_type, {}).get("loss_upcast", True))


def uses_conv1d(model_type: str) -> bool:
    """Whether the causal-LM class builds its projections as transformers' ``Conv1D`` (weights stored
    ``in x out``, pytorch_utils.py), as recorded from the meta-device model (False when unrecorded)."""
    return bool(_data().get("model_types", {}).get(model_type, {}).get("conv1d", False))


def fused_experts(model_type: str) -> tuple[str, ...]:
    """Leaf names of the 3-D parameters a MoE type's expert modules hold in transformers 5 (``gate_up_proj``,
    ``down_proj``), as recorded from the meta-device model; empty for a type with none or unrecorded."""
    return tuple(_data().get("model_types", {}).get(model_type, {}).get("fused_experts", ()))


def bnb_unfuses_experts(model_type: str) -> bool:
    """Whether transformers swaps the type's fused experts for per-expert ``nn.Linear`` modules before bitsandbytes
    quantizes (``quantizers/base.py`` ``MODULES_TO_PATCH_FOR_QUANTIZATION``), as recorded."""
    return bool(_data().get("model_types", {}).get(model_type, {}).get("bnb_unfuses_experts", False))


def peft_moe_targets(model_type: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]] | None:
    """peft's LoRA target conversion for a MoE type whose transformers-4 expert linears became fused parameters
    (peft ``utils/transformers_weight_conversion.py``, recorded with its version): each transformers-4 name and
    the parameter it targets now, and per fused parameter the names fused into it; None when peft leaves the
    type's targets alone."""
    layout = _data().get("model_types", {}).get(model_type, {}).get("peft_moe")
    tables = _data().get("peft_moe", {})
    if not layout or layout not in tables.get("targets", {}):
        return None
    fused = {name: tuple(olds) for name, olds in tables.get("fused", {}).get(layout, {}).items()}
    return dict(tables["targets"][layout]), fused


def known_model_types() -> frozenset[str]:
    """Every model type the recorded transformers implements (causal LMs, their text models, wrappers)."""
    return frozenset(_data().get("model_types", {}))


class _Standard:
    """Standard-name access over a config, through aliases and the recorded defaults."""

    def __init__(self, f: Fields, model_type: str):
        entry = _data().get("model_types", {}).get(model_type, {})
        self.f = f
        self.attribute_map: Mapping[str, str] = entry.get("attribute_map", {})
        self.defaults: Mapping[str, Any] = entry.get("defaults", {})

    def names(self, name: str) -> tuple[str, ...]:
        mapped = self.attribute_map.get(name)
        return tuple(dict.fromkeys(((mapped,) if mapped else ()) + (name,) + _ALIASES.get(name, ())))

    def _default_int(self, name: str, default: int | None) -> int | None:
        value = self.defaults.get(name, default)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def integer(self, name: str, default: int | None = None, *, minimum: int = 1) -> int:
        names = self.names(name)
        value = self.f.opt_int(names[0], self._default_int(name, default), aliases=names[1:], minimum=minimum)
        if value is None:
            raise self.f.error(names[0], None, f"an integer >= {minimum} (the generic family needs it)")
        return value

    def opt_int(self, name: str, *, minimum: int = 1) -> int | None:
        names = self.names(name)
        return self.f.opt_int(names[0], self._default_int(name, None), aliases=names[1:], minimum=minimum)

    def boolean(self, name: str, default: bool) -> bool:
        names = self.names(name)
        fallback = self.defaults.get(name, default)
        return self.f.boolean(names[0], fallback if isinstance(fallback, bool) else default, aliases=names[1:])

    def string(self, name: str, default: str) -> str:
        value = self.raw(name)
        if isinstance(value, str):
            return value
        fallback = self.defaults.get(name, default)
        return fallback if isinstance(fallback, str) else default

    def raw(self, name: str) -> Any:
        names = self.names(name)
        return self.f.raw(names[0], names[1:])


def _text_fields(f: Fields, model_type: str) -> tuple[Fields, str]:
    """A multimodal wrapper's language model config (``text_config``), else the config itself."""
    text = f.raw("text_config")
    if isinstance(text, Mapping):
        inner = text.get("model_type")
        entry = _data().get("model_types", {}).get(model_type, {})
        return f.sub("text_config"), inner if isinstance(inner, str) else str(entry.get("text_model_type", model_type))
    return f, model_type


def _mixer_kind(value: object) -> str:
    text = str(value).lower()
    for key, kind in _KINDS:
        if key in text:
            return kind
    return "full"


def analyze_generic(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    """Dimensions and per-layer kinds from standard fields; llama-style counts (see module docstring)."""
    tf, text_type = _text_fields(f, model_type)
    s = _Standard(tf, text_type)
    hidden = s.integer("hidden_size")
    layers = s.integer("num_hidden_layers")
    states = _state_mixers(tf, hidden)
    attention_free = s.opt_int("num_attention_heads") is None and bool(states)
    # A pure state-space model (Mamba) has no attention fields: every layer is its recurrent kind.
    heads = 1 if attention_free else s.integer("num_attention_heads")
    kv_heads = s.opt_int("num_key_value_heads") or heads
    if s.boolean("multi_query", False):
        kv_heads = 1
    head_dim = (s.opt_int("head_dim") or hidden // heads) if not attention_free else 0
    inter = s.opt_int("intermediate_size") or 4 * hidden
    vocab = s.integer("vocab_size")
    # tie_word_embeddings only ties where the model class declares the tie (recorded per type).
    tie = s.boolean("tie_word_embeddings", True) and bool(
        _data().get("model_types", {}).get(model_type, {}).get("ties_lm_head", True))
    # Without an activation field of its own, the activation module the class builds (openai-gpt's MLP runs
    # ACT_FNS[config.afn], gelu_new for its default "gelu"; recorded from the meta-device model).
    act = s.string("hidden_act", str(_data().get("model_types", {}).get(model_type, {}).get("activation", "silu")))
    gated = act in _GATED_ACTS
    bias = s.boolean("attention_bias", False)
    window = s.opt_int("sliding_window")
    chunk = s.opt_int("attention_chunk_size")

    experts = s.opt_int("num_experts", minimum=0) or 0
    if not s.boolean("is_moe", True):
        # An explicit switch beside the expert fields (configuration_doge.py: is_moe=False keeps the dense MLP
        # although num_experts and num_experts_per_tok have defaults): the layers are dense.
        experts = 0
    top_k = (s.opt_int("num_experts_per_tok") or 0) if experts else 0
    moe_inter = s.opt_int("moe_intermediate_size") or inter
    shared = s.opt_int("shared_expert_intermediate_size", minimum=0) or 0
    n_shared = s.opt_int("n_shared_experts", minimum=0) or tf.opt_int("num_shared_experts", None, minimum=0) or 0
    if not shared and n_shared:
        shared = n_shared * moe_inter
    if experts and top_k > experts:
        raise tf.error("num_experts_per_tok", top_k, f"at most the {experts} experts")
    first_dense = tf.opt_int("first_k_dense_replace", 0, minimum=0) or 0
    mlp_only = set(tf.int_list("mlp_only_layers") or ())
    step = tf.opt_int("decoder_sparse_step", 1) or 1

    kinds = _layer_kinds(tf, s, layers, window, chunk)
    compressed_key_rate, indexer_key_stride = _compression(tf, s)
    sinks, fp32_scores = eager_sinks(model_type)
    # BigBird's block-sparse attention (configuration_big_bird.py attention_type, block_size 64,
    # num_random_blocks 3); the decoder of an encoder-decoder (bigbird_pegasus) attends in full.
    sparse: dict[str, int] = {}
    if tf.string("attention_type", "") == "block_sparse" and not tf.boolean("is_encoder_decoder", False):
        sparse = {"block_size": tf.integer("block_size", 64), "random_blocks": tf.integer("num_random_blocks", 3)}
    if attention_free:
        kinds = [next(iter(states))] * layers
    mixers: dict[str, Mixer] = {}

    def mixer(kind: str) -> Mixer:
        if kind not in mixers:
            if kind in ("linear", "ssm"):
                # A "linear_attention" layer type where the config describes only a state-space mixer: zamba2 names
                # its Mamba2 blocks so (configuration_zamba2.py layers_block_type).
                fallback = states.get("ssm") if kind == "linear" and "linear" not in states else None
                mixers[kind] = states.get(kind) or fallback or Mixer(kind=kind, inner=hidden)
            elif kind == "sliding":
                # Sliding layers with their own head counts (configuration_inkling.py swa_num_attention_heads,
                # swa_num_key_value_heads, swa_head_dim: 16 KV heads on the sliding layers, 8 on the others).
                mixers[kind] = Mixer(kind=kind, heads=tf.opt_int("swa_num_attention_heads", heads) or heads,
                                     kv_heads=tf.opt_int("swa_num_key_value_heads", kv_heads) or kv_heads,
                                     head_dim=tf.opt_int("swa_head_dim", head_dim) or head_dim, window=window,
                                     sinks=sinks)
            else:
                mixers[kind] = Mixer(kind=kind, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                                     chunk=chunk if kind == "chunked" else None, sinks=sinks, **sparse)
        return mixers[kind]

    # A router with a score-correction bias (DeepSeek-V3's noaux_tc routing: modeling_deepseek_v3.py
    # DeepseekV3TopkRouter, ``F.linear(hidden_states.float(), self.weight.float())``, and its copies) returns fp32
    # routing weights, so the weighted expert outputs are fp32 (FFN.fp32_routing); so does a router recorded as
    # computing in fp32 from its modeling file.
    fp32_routing = fp32_router(model_type) or any(
        b.endswith("e_score_correction_bias") for b in persistent_buffers(model_type) or ())
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    attention = parts.of_linears("attention", attention_linears(hidden, q_out, kv_out, bias, bias))
    blocks: dict[str, parts.Part] = {}

    def block(kind: str) -> parts.Part:
        if kind not in blocks:
            m = mixer(kind)
            # A recurrent block: in_proj (x, z and the state inputs) + out_proj, roughly 3 x hidden x inner.
            blocks[kind] = dataclasses.replace(attention, mixer=m) if m.has_cache else \
                parts.Part(params={"attention": 3 * hidden * max(m.inner, hidden)}, mixer=m)
        return blocks[kind]

    dense = parts.gated_mlp(hidden, inter) if gated else parts.mlp(hidden, inter)
    if experts and top_k:
        shared_mlp = (parts.gated_mlp(hidden, shared, role="experts") if gated
                      else parts.mlp(hidden, shared, role="experts")) if shared else None
        moe = parts.moe(parts.routed_experts(hidden, moe_inter, experts, top_k, gated=gated),
                        router=experts * hidden, shared=shared_mlp, fp32_routing=fp32_routing)
    norms = parts.norm(2 * hidden)
    is_moe = [experts > 0 and top_k > 0 and i >= first_dense and i not in mlp_only and (i + 1) % step == 0
              for i in range(len(kinds))]
    st = parts.stack(
        [(block(kind), norms, moe if is_moe[i] else dense) for i, kind in enumerate(kinds)],
        outer=(parts.embedding(vocab, hidden), parts.norm(hidden),
               parts.params("lm_head", vocab * hidden if head in ("causal_lm", "conditional") and not tie else 0)),
        # The MoE block's linears (the fused expert stacks, a shared expert) where the model has MoE layers, as the
        # families list them; the dense MLP's otherwise.
        linears=(attention, moe if any(is_moe) else dense),
    )
    moe_layers = st.moe_layers
    decoder, decoder_note = _decoder(tf, model_type)
    arch = Architecture(
        model_type=model_type,
        family="generic",
        bidirectional=not decoder,
        eager_held_scores=_eager_held_scores(model_type, layers),
        fp32_scores=fp32_scores,
        ffn_held_hidden=_ffn_held_hidden(tf, model_type),
        rotary_fp32_alive=_ROTARY_FP32.get(model_type, (0.0, False, ""))[0],
        rotary_fp32_inputs=_ROTARY_FP32.get(model_type, (0.0, False, ""))[1],
        sdpa_head_mask=model_type == "doge",  # modeling_doge.py DogeAttention.prepare_dynamic_mask
        # modeling_bitnet.py BitNetMLP.forward: ``down_proj(ffn_sub_norm(act_fn(gate_proj(x)) * up_proj(x)))``.
        ffn_sub_norm_alive=1 if model_type == "bitnet" else 0,
        # modeling_gpt_neo.py GPTNeoSelfAttention.__init__: a non-persistent boolean mask of max_position_embeddings
        # squared per attention layer (``self.bias = nn.Buffer(bias, persistent=False)``).
        buffer_bytes=layers * (_position_limit(s) or 0) ** 2 if model_type == "gpt_neo" else 0,
        fp32_sinks=sinks and any(re.search(p, "self_attn.sinks") for p in keep_in_fp32(model_type).get("bfloat16", ())),
        compressed_key_rate=compressed_key_rate,
        # A DeepSeek-sparse-attention token indexer (configuration_deepseek_v32.py index_n_heads, index_head_dim).
        indexer_heads=(tf.opt_int("index_n_heads", 0, minimum=0) or 0) if _has_indexer(s, model_type) else 0,
        indexer_head_dim=tf.opt_int("index_head_dim", 0, minimum=0) or 0,
        indexer_key_stride=indexer_key_stride,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=_position_limit(s),
        hidden_act=act,
        gated_mlp=gated,
        attention_bias=bias,
        layer_types=tuple("sliding_attention" if k == "sliding" else "full_attention" for k in kinds),
        sliding_window=window if "sliding" in kinds else None,
        num_shared_experts=(n_shared or (1 if shared else 0)) if moe_layers else 0,
        **st.keywords(),
        # A router computing in fp32 (recorded from the modeling file): the routing weights, and the experts'
        # weighted outputs, are fp32 (exact-mode trace of minicpm5_moe at 4 x 2048 tokens: the prefill peaks at the
        # fp32 weighted output and its reordered copy).
        moe_fp32_routing=bool(moe_layers) and fp32_routing,
        derivation="generic",
        last_logits_only=computes_last_logits_only(model_type),
        # ``logits = tanh(logits / cap) * cap`` before the loss where the config sets it (modeling_nanochat.py
        # NanoChatForCausalLM.forward, like gemma2's): tanh saves its output.
        final_logit_softcapping=tf.opt_float("final_logit_softcapping", None, positive=True),
        notes=(f"{model_type!r} has no family module: dimensions from transformers' standard config fields "
               "(generic family); parameter counts are exact only from the checkpoint's safetensors headers",
               *decoder_note),
    )
    return arch, st.tally


#: Score-sized tensors a type's own eager attention keeps alive at its softmax beyond transformers' standard
#: eager function (Architecture.eager_held_scores), with the source; the previous layer's share counts only with
#: two layers or more. Read in transformers 5.25, checked against the long-context traces (docs/coverage-long.md).
_EAGER_HELD_SCORES: Mapping[str, tuple[int, int, str]] = {
    # (held in every layer, held from the second layer on, why)
    "bloom": (1, 1, "modeling_bloom.py BloomAttention.forward keeps the unmasked attention_scores bound beside "
                    "the masked attn_weights; BloomModel.forward keeps the previous block's probabilities in "
                    "``outputs``"),
    "cpmant": (1, 0, "modeling_cpmant.py CpmAntModel.forward computes one per-head relative position bias "
                     "[batch, heads, query, key] in the compute dtype for the whole forward, added to every "
                     "layer's scores"),
    "diffllama": (1, 0, "modeling_diffllama.py DiffLlamaAttention.forward runs eager attention twice (one call per "
                        "half of the values) and keeps the first call's probabilities (attn_weights) bound "
                        "through the second"),
    "doge": (1, 0, "modeling_doge.py DogeAttention.prepare_dynamic_mask builds a per-head [batch, heads, query, key] "
                   "mask in the compute dtype, passed to eager attention as its additive mask"),
    "megatron-bert": (0, 1, "modeling_megatron_bert.py MegatronBertEncoder.forward keeps the previous layer's "
                            "outputs (its attention probabilities included) in ``layer_outputs``"),
    "mpt": (0, 1, "MptModel.forward keeps the previous block's probabilities (``outputs = block(...)``); its ALiBi "
                  "bias (fp32) makes the scores fp32 before masked_fill and softmax (modeling_mpt.py MptAttention)"),
    "openai-gpt": (1, 0, "modeling_openai.py Attention._attn masks with ``w = w * b + -1e4 * (1 - b)``: the scores, "
                         "their masked product and the sum alive at once (three score tensors, one more than "
                         "at its native softmax)"),
    "rembert": (0, 1, "modeling_rembert.py RemBertEncoder.forward keeps the previous layer's outputs (its "
                      "attention probabilities included) in ``layer_outputs``"),
    "roformer": (0, 1, "modeling_roformer.py RoFormerEncoder.forward keeps the previous layer's outputs (its "
                       "attention probabilities included) in ``layer_outputs``"),
    "xlnet": (2, 0, "modeling_xlnet.py XLNetRelativeAttention.rel_attn_core keeps the content scores (ac) and the "
                    "shifted position scores (bd) bound beside the summed, scaled scores and their softmax; the "
                    "position scores are first computed over klen + qlen relative positions (two score tensors) and "
                    "index_select'ed to klen"),
    "gpt_neox_japanese": (1, 1, "modeling_gpt_neox_japanese.py _attn keeps the zeros tensor baddbmm adds to "
                                "(attn_scores); GPTNeoXJapaneseModel.forward keeps the previous layer's "
                                "probabilities in ``outputs``"),
}


def _eager_held_scores(model_type: str, layers: int) -> int:
    every, later, _ = _EAGER_HELD_SCORES.get(model_type, (0, 0, ""))
    return every + (later if layers > 1 else 0)


_BERT_LAYER = ("its BertLayer-style layer (modeling_bert.py BertLayer.feed_forward_chunk) feeds the attention "
               "output, already normed (post-LN), to the intermediate and keeps it as the output's residual")

#: Hidden-wide tensors a type's decoder layer keeps bound while its feed-forward runs without autograd
#: (Architecture.ffn_held_hidden; 2 when not listed), with the source. Read in transformers 5.25, checked against
#: the long-context traces (docs/coverage-long.md: the live tensors at the sdpa prefill peak).
_FFN_HELD_HIDDEN: Mapping[str, tuple[int, str]] = {
    **{t: (1, _BERT_LAYER) for t in ("bert-generation", "camembert", "data2vec-text", "electra", "ernie", "rembert",
                                     "roberta", "roc_bert", "roformer", "xlm-roberta")},
    "roberta-prelayernorm": (1, "modeling_roberta_prelayernorm.py RobertaPreLayerNormIntermediate rebinds its "
                                "LayerNorm output to the dense projection's: the attention output alone stays"),
    "exaone4": (1, "modeling_exaone4.py Exaone4DecoderLayer: post-norms only, the MLP reads the residual"),
    "flex_olmo": (1, "modeling_flex_olmo.py FlexOlmoDecoderLayer: post-norms only, the MLP reads the residual"),
    "ctrl": (4, "modeling_ctrl.py EncoderLayer.forward keeps ``normed``, ``attn_output``, ``out1`` (the residual) "
                "and ``out2`` (layernorm2's output) bound through the feed-forward"),
    "stablelm": (4, "modeling_stablelm.py StableLmDecoderLayer.forward without use_parallel_residual keeps "
                    "input_layernorm's output (``hidden_states``), ``self_attn_output``, the residual and "
                    "post_attention_layernorm's output bound through the MLP; with it, the normed input and "
                    "``self_attn_output``"),
}


_COHERE_ROTARY = "apply_rotary_pos_emb casts q and k to float32 first (``q = q.float(); k = k.float()``), then rotates"

#: Float32 rotary embeddings (Architecture.rotary_fp32_alive, rotary_fp32_inputs), with the source; read in
#: transformers 5.25, checked against the long-context traces (docs/coverage-long.md).
_ROTARY_FP32: Mapping[str, tuple[float, bool, str]] = {
    **{t: (4, True, _COHERE_ROTARY) for t in ("cohere2", "cohere2_moe", "ergo")},
    "modernbert-decoder": (3.5, False, "modeling_modernbert_decoder.py apply_rotary_pos_emb: ``(q.float() * cos) + "
                                       "(rotate_half(q.float()) * sin)``, rotate_half's negated half beside"),
}


#: Types whose token indexer exists only on the layers of one ``layer_types`` entry (modeling_minimax_m3_vl.py
#: MiniMaxM3VLAttention: ``MiniMaxM3VLIndexer(...) if config.layer_types[layer_idx] == "minimax_m3_sparse"``).
_INDEXED_LAYER_TYPE: Mapping[str, str] = {"minimax_m3_vl_text": "minimax_m3_sparse"}


def _has_indexer(s: _Standard, model_type: str) -> bool:
    kind = _INDEXED_LAYER_TYPE.get(model_type)
    if kind is None:
        return True
    given = s.raw("layer_types")
    return not isinstance(given, (list, tuple)) or kind in given


def _ffn_held_hidden(tf: Fields, model_type: str) -> int:
    if model_type == "stablelm" and tf.boolean("use_parallel_residual", False):
        return 2
    return _FFN_HELD_HIDDEN.get(model_type, (2, ""))[0]


def _decoder(tf: Fields, model_type: str) -> tuple[bool, tuple[str, ...]]:
    """Whether the causal-LM class runs as a decoder (causal attention), and the note saying otherwise: a class
    that reads ``config.is_decoder`` (recorded per type) runs bidirectionally unless the config sets it
    (modeling_roberta.py RobertaModel.forward: ``create_bidirectional_mask`` and ``use_cache = False`` when
    ``not config.is_decoder``). ``use_cache = False`` only drops the cache from the output: every layer still
    updates the cache it is given (RobertaSelfAttention.forward), and generate passes a DynamicCache, so the
    cache fills as a decoder's does (exact-mode traces of camembert and xlm-roberta at 4 x 2048 tokens)."""
    if not _data().get("model_types", {}).get(model_type, {}).get("reads_is_decoder", False):
        return True, ()
    if tf.boolean("is_decoder", False):
        return True, ()
    return False, (f"config.is_decoder is false: {model_type} attends bidirectionally (no causal mask), as "
                   "transformers runs it; generate's KV cache still fills (every layer updates the cache it is "
                   "given)",)


def _position_limit(s: _Standard) -> int | None:
    """``max_position_embeddings``, or None where the model has no limit: configs that say so with -1
    (XLNetConfig.max_position_embeddings: "one of the few models that has no sequence length limit")."""
    names = s.names("max_position_embeddings")
    value = s.f.opt_int(names[0], s._default_int("max_position_embeddings", None), aliases=names[1:], minimum=-1)
    return value if value is not None and value > 0 else None


def _layer_kinds(tf: Fields, s: _Standard, layers: int, window: int | None, chunk: int | None) -> list[str]:
    given = s.raw("layer_types")
    if isinstance(given, (list, tuple)) and given:
        if len(given) != layers or not all(isinstance(v, str) for v in given):
            raise tf.error("layer_types", given, f"a list of {layers} layer-type names")
        return [_mixer_kind(v) for v in given]
    if window is not None and tf.raw("use_sliding_window") is not False:
        return ["sliding"] * layers
    if chunk is not None:
        return ["chunked"] * layers
    return ["full"] * layers


#: DeepSeek-V4's compression rate per layer type where the config names none (configuration_deepseek_v4.py
#: default_compress_rates, transformers 5.25), and the legacy per-layer ``compress_ratios`` values' layer types.
_COMPRESS_RATES = {"compressed_sparse_attention": 4, "heavily_compressed_attention": 128}


def _compression(tf: Fields, s: _Standard) -> tuple[int, int]:
    """(the densest compressed layer's rate, the indexer's key stride) of compressed attention (DeepSeek-V4:
    ``layer_types`` naming compressed-sparse or heavily-compressed layers, their rates in ``compress_rates`` or the
    legacy per-layer ``compress_ratios``; configuration_deepseek_v4.py): (0, 1) without. The indexer belongs to the
    compressed-sparse compressor and scores its entries (modeling_deepseek_v4.py DeepseekV4CSACompressor)."""
    given = tf.raw("compress_rates")
    rates = dict(_COMPRESS_RATES)
    if isinstance(given, Mapping):
        for name, rate in given.items():
            if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
                raise tf.error(f"compress_rates.{name}", rate, "an integer >= 1")
            rates[str(name)] = rate
    elif given is not MISSING and given is not None:
        raise tf.error("compress_rates", given, "a mapping of layer type to compression rate")
    types = s.raw("layer_types")
    used = [rates[t] for t in types if isinstance(t, str) and t in rates] if isinstance(types, (list, tuple)) else []
    legacy = tf.int_list("compress_ratios")
    if not used and legacy:
        used = [r for r in legacy if r > 0]
    if not used:
        return 0, 1
    return min(used), rates["compressed_sparse_attention"]


def _state_mixers(tf: Fields, hidden: int) -> dict[str, Mixer]:
    """Recurrent-state shapes from the usual Mamba / Mamba2 / linear-attention fields."""
    out: dict[str, Mixer] = {}

    def first(*names: str) -> int | None:
        for name in names:
            value = tf.opt_int(name, None)
            if value:
                return value
        return None

    d_state = first("state_size", "ssm_state_size", "mamba_d_state")
    if d_state:
        inner = first("mamba_intermediate_size") or (first("expand", "mamba_expand") or 2) * hidden
        kernel = first("conv_kernel", "mamba_d_conv") or 4
        # zamba2's names (configuration_zamba2.py n_mamba_heads, mamba_headdim, mamba_ngroups) beside the usual ones;
        # its own head dim first (its head_dim is the attention's).
        groups = first("n_groups", "mamba_n_groups", "mamba_ngroups") or 1
        n_heads = first("mamba_n_heads", "n_mamba_heads", "num_heads")
        head = first("mamba_d_head", "mamba_headdim", "head_dim")
        if n_heads and head and n_heads * head == inner:  # Mamba2: heads x head_dim x state
            state, conv = n_heads * head * d_state, (inner + 2 * groups * d_state) * kernel
        else:  # Mamba1: inner x state
            state, conv = inner * d_state, inner * kernel
        mamba2 = bool(n_heads and head and n_heads * head == inner)
        out["ssm"] = Mixer(kind="ssm", heads=n_heads if mamba2 else 0, head_dim=head if mamba2 else 0,
                           state_elements=state, conv_elements=conv, conv_kernel=kernel, inner=inner,
                           chunk=first("chunk_size") if mamba2 else None)
    nk, nv = first("linear_num_key_heads"), first("linear_num_value_heads")
    dk, dv = first("linear_key_head_dim"), first("linear_value_head_dim")
    if nk and nv and dk and dv:
        kernel = first("linear_conv_kernel_dim") or 4
        out["linear"] = Mixer(kind="linear", heads=nv, head_dim=dv, state_elements=nv * dk * dv,
                              conv_elements=(2 * nk * dk + nv * dv) * kernel, conv_kernel=kernel, inner=nv * dv)
    return out
