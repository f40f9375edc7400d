"""Exact parameter counts from safetensors header tensors, corrected for what is not a parameter.

A checkpoint's tensors are not its parameters: it also stores buffers (rotary ``inv_freq``,
GPT-2's causal-mask ``attn.bias``), may store a tied output layer twice, and quantized
checkpoints store packed integers plus scales. Each correction made here is reported as one
line, so a user can see why the count differs from the sum of the header's shapes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hf_gpu_estimator.errors import MalformedConfigError, UnsupportedArchitectureError, excerpt
from hf_gpu_estimator.spec import (
    ROLES,
    TORCH_TO_SAFETENSORS,
    Architecture,
    ModelSpec,
    ParameterCounts,
    Provenance,
    QuantizationConfig,
    Role,
    TensorInfo,
)

SAFETENSORS_TO_TORCH: Mapping[str, str] = {v: k for k, v in TORCH_TO_SAFETENSORS.items()}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
#: Element types that, in a checkpoint with a quantization_config, hold quantized weights as they are
#: (compressed-tensors / FineGrainedFP8 float8, LLM.int8 and W8A8 int8): one byte per parameter.
_QUANTIZED_DTYPES = frozenset({"F8_E4M3", "F8_E5M2", "I8"})

# Buffers that checkpoints carry but modules do not register as parameters:
#  - rotary inv_freq: persistent in transformers < 4.31 llama, so llama-2 era checkpoints hold it;
#  - GPT-2 attn.bias (causal mask, 4-D) and attn.masked_bias (scalar): modeling_gpt2.py buffers;
#  - position_ids: BERT-style embeddings buffer; cos/sin caches of older rotary modules.
_BUFFER_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(^|\.)inv_freq$"), "rotary_emb.inv_freq"),
    (re.compile(r"(^|\.)attn\.masked_bias$"), "attn.masked_bias"),
    (re.compile(r"(^|\.)(cos|sin)_cached$"), "rotary cos/sin cache"),
    (re.compile(r"(^|\.)position_ids$"), "position_ids"),
)
# Persistent buffers of a model type transformers implements are recorded per type in generic_data.json
# (architectures.generic.persistent_buffers), which also knows where a name usually a buffer is a parameter
# (laguna's router e_score_correction_bias); these patterns serve the types without a record.
_RECORDED_BUFFER_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Persistent buffers transformers' modules register (register_buffer), recorded from the meta-device
    # models of transformers 5.24: the MoE router's correction bias (deepseek_v3 and 27 other types;
    # ernie4_5_moe keeps it as a parameter under ``moe_statics``), xIELU's beta/eps (apertus), the
    # lightning-attention decays (minimax), phi4-multimodal's audio normalizer, zaya's balancing biases,
    # deepseek_v4's hash-routing table, gemma4's per-layer scalar.
    (re.compile(r"(?<!moe_statics)\.e_score_correction_bias$"), "e_score_correction_bias"),
    (re.compile(r"(^|\.)act_fn\.(beta|eps)$"), "xIELU beta/eps"),
    (re.compile(r"(^|\.)(slope_rate|query_decay|key_decay|diagonal_decay)$"), "lightning-attention decays"),
    (re.compile(r"(^|\.)(global_mean|global_invstd)$"), "audio normalizer statistics"),
    (re.compile(r"(^|\.)(balancing_biases|tid2eid)$"), "router buffers"),
    (re.compile(r"(^|\.)layers\.\d+\.layer_scalar$"), "gemma4 layer_scalar"),
    # lfm2_moe's routing bias (Lfm2MoeSparseMoeBlock registers an nn.Buffer; afmoe's ``mlp.expert_bias``
    # is an nn.Parameter and stays counted).
    (re.compile(r"(^|\.)feed_forward\.expert_bias$"), "lfm2_moe expert_bias"),
)
_GPT2_MASK = re.compile(r"(^|\.)attn\.bias$")

# Quantization side tensors: scales, zero points, codebooks, permutations, serialized state.
# GPTQ/AWQ: qzeros, scales, g_idx (auto-gptq/autoawq QuantLinear); bitsandbytes 4-bit:
# weight.absmax/quant_map/nested_*/quant_state.* (bnb.nn.Params4bit serialization); LLM.int8:
# SCB and weight_format (bnb.nn.Int8Params); FP8: weight_scale(_inv), input_scale, k/v_scale;
# compressed-tensors: weight_zero_point, weight_global_scale, weight_shape; MXFP4: *_scales.
_AUX_SUFFIXES = (
    ".qzeros", ".g_idx", ".weight.absmax", ".weight.quant_map", ".weight.nested_absmax", ".weight.nested_quant_map",
    ".SCB", ".weight_format", ".weight_scale_inv", ".weight_scale", ".input_scale", ".k_scale", ".v_scale",
    ".weight_zero_point", ".weight_global_scale", ".input_global_scale", ".weight_shape", ".output_scale",
)  # fmt: skip

_EMBEDDING_NAMES = re.compile(r"(^|\.)(embed_tokens|wte|word_embeddings|tok_embeddings|embed_in)\.weight$")
_LM_HEAD = re.compile(r"(^|\.)(lm_head|embed_out)\.weight$")

_ROLE_PATTERNS: tuple[tuple[Role, re.Pattern[str]], ...] = (
    ("lm_head", re.compile(r"(^|\.)(lm_head|embed_out)(\.|$)")),
    ("norm", re.compile(r"(^|\.)(ln_\w*|\w*norm\w*)(\.|$)", re.IGNORECASE)),
    ("embedding", re.compile(r"(^|\.)(embed_tokens|wte|wpe|word_embeddings|position_embeddings|token_type_embeddings|"
                             r"embed_positions|tok_embeddings|embed_in|embeddings)(\.|$)")),
    ("router", re.compile(r"(^|\.)(router|shared_expert_gate)(\.|$)|"
                          r"(^|\.)(mlp|block_sparse_moe|moe|feed_forward)\.gate\.(weight|bias|e_score_correction_bias)$|"
                          r"e_score_correction_bias$")),
    ("experts", re.compile(r"(^|\.)(experts|shared_experts?)(\.|$)")),
    ("attention", re.compile(r"(^|\.)\w*(attn|attention)\w*(\.|$)")),
    ("mlp", re.compile(r"(^|\.)(mlp|ffn|feed_forward|block_sparse_moe|moe)(\.|$)")),
)  # fmt: skip


#: Towers a text-only step does not run, by tensor-name segment: vision (gemma3/got_ocr2 ``vision_tower``,
#: fuyu ``vision_embed_tokens``, phi4-multimodal ``image_embed``, git ``image_encoder``/``visual_projection``)
#: and audio (moss ``audio_tower``, phi4-multimodal ``audio_embed``).
_VISION = re.compile(r"(^|\.)(vision|visual|image|video)\w*(\.|$)")
_AUDIO = re.compile(r"(^|\.)(audio|speech|acoustic)\w*(\.|$)")
#: A multimodal projector serves the tower beside it (vision when there is one, else audio).
_PROJECTOR = re.compile(r"(^|\.)(multi_modal_projector|multimodal_projector|mm_projector)(\.|$)")
#: Cross-attention of a decoder layer (bart-style ``encoder_attn``, prophetnet/mllama ``cross_attn``, bert
#: ``crossattention``) with its own norm and gates; blt's ``cross_attn_layers`` are its own stacks, not these.
_CROSS = re.compile(r"(^|\.)(encoder_attn|cross_attn|crossattention)(_layer_norm|_layernorm|_attn_gate|_mlp_gate)?"
                    r"(\.|$)")
_SELF_ATTENTION = re.compile(r"(^|\.)(self_attn|self_attention|attention|attn)\.")
_LAYER_PREFIX = re.compile(r"^(.*?(?:^|\.)(?:layers|layer|h|blocks|block)\.\d+\.)")


def off_text_path(params: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Parameters a text-only step never reaches, by the input that does (:data:`~hf_gpu_estimator.spec.OFF_TEXT_INPUTS`).

    From parameter names (pairs of name and element count): vision and audio towers with their projector;
    the cross-attention of decoder layers when no encoder stack sits beside the decoder (``X.decoder.`` without
    ``X.encoder.``: a ``*ForCausalLM`` of an encoder-decoder model, whose forward skips it without encoder
    states, modeling_bart.py BartDecoderLayer); a layer whose only attention is cross-attention is skipped
    whole (modeling_mllama.py MllamaTextModel.forward without image states).
    """
    params = list(params)
    names = [n for n, _ in params]
    has_vision = any(_VISION.search(n) for n in names)
    encoders = {p for p in {_decoder_owner(n) for n in names} - {None}
                if any(n.startswith(f"{p}.encoder." if p else "encoder.") for n in names)}
    cross_layers: set[str] = set()
    self_layers: set[str] = set()
    for n in names:
        m = _LAYER_PREFIX.match(n)
        if m is None:
            continue
        rest = n[len(m.group(1)):]
        (cross_layers if _CROSS.match(rest) else self_layers if _SELF_ATTENTION.match(rest) else set()).add(m.group(1))
    whole = cross_layers - self_layers
    out: dict[str, int] = {}
    for n, numel in params:
        if _AUDIO.search(n):
            key = "audio"
        elif _VISION.search(n):
            key = "vision"
        elif _PROJECTOR.search(n):
            key = "vision" if has_vision or not any(_AUDIO.search(x) for x in names) else "audio"
        elif _CROSS.search(n) or ((m := _LAYER_PREFIX.match(n)) is not None and m.group(1) in whole):
            if _decoder_owner(n) in encoders:
                continue  # an encoder-decoder model: the decoder's cross-attention reads the encoder it holds
            key = "cross_attention"
        else:
            continue
        out[key] = out.get(key, 0) + numel
    return out


def _decoder_owner(name: str) -> str | None:
    """The module holding the decoder stack a name sits in (``model`` for ``model.decoder.…``), if any."""
    if name.startswith("decoder."):
        return ""
    return name.split(".decoder.")[0] if ".decoder." in name else None


def role_of(name: str) -> Role:
    """The :data:`~hf_gpu_estimator.spec.ROLES` entry a tensor name belongs to, by name pattern."""
    # DBRX holds its attention and both block norms in one module named norm_attn_norm
    # (modeling_dbrx.py DbrxNormAttentionNorm): the container's name says nothing of the role.
    name = name.replace(".norm_attn_norm.", ".")
    for role, pattern in _ROLE_PATTERNS:
        if pattern.search(name):
            return role
    return "other"


@dataclass(frozen=True, kw_only=True)
class CheckpointCounts:
    """What a checkpoint's tensors say: exact parameter counts, stored bytes, and the corrections made."""

    parameters: ParameterCounts
    checkpoint_bytes: int
    checkpoint_bytes_by_dtype: Mapping[str, int]
    #: Floating dtype (torch name) holding most parameter bytes; ``None`` if no floating tensors.
    dominant_float_dtype: str | None
    assumptions: tuple[str, ...] = field(default=())
    #: Logical parameters in quantized storage (packed ints, float8, MXFP4 blocks, bnb 4-bit, int8)
    #: and the bytes of that storage with its scales, zero points and state tensors.
    quantized_parameters: int = 0
    quantized_bytes: int = 0


def count_parameters(
    tensors: Iterable[TensorInfo],
    *,
    config: Mapping[str, object] | None = None,
    architecture: Architecture | None = None,
    quantization: QuantizationConfig | None = None,
) -> CheckpointCounts:
    """Exact parameter counts of a checkpoint from its header tensors.

    Args:
        tensors: Every tensor of every shard.
        config: config.json, for ``tie_word_embeddings`` when ``architecture`` is unknown.
        architecture: Dimensions, for tied embeddings and MoE active counts.
        quantization: The checkpoint's quantization, for the packing factor of packed weights.

    Returns:
        Counts as ``sum(p.numel() for p in model.parameters())`` of the unquantized model gives
        them, and one assumption line per kind of correction.
    """
    tensors = tuple(tensors)
    by_name = {t.name: t for t in tensors}
    bytes_by_dtype: Counter[str] = Counter()
    for t in tensors:
        bytes_by_dtype[t.dtype] += t.nbytes

    by_role: dict[str, int] = dict.fromkeys(ROLES, 0)
    float_bytes: Counter[str] = Counter()
    skipped_buffers: Counter[str] = Counter()
    aux_count = 0
    aux_bytes = 0
    quantized_params = 0
    quantized_bytes = 0
    packed: Counter[str] = Counter()
    routed_expert_params = 0
    tied_dropped: str | None = None
    notes: list[str] = []
    counted: list[tuple[str, int]] = []

    tie = _tie_flag(config, architecture)
    buffer_patterns = _BUFFER_PATTERNS + _RECORDED_BUFFER_PATTERNS
    recorded = _recorded_buffers(config)
    if recorded is not None:
        buffer_patterns = _BUFFER_PATTERNS + tuple(
            (re.compile(rf"(^|\.){re.escape(suffix)}$"), suffix.rsplit(".", 1)[-1]) for suffix in recorded)
    embedding_shapes = {t.shape for t in tensors if _EMBEDDING_NAMES.search(t.name)}
    qbits = _packing_bits(quantization, by_name, notes)

    for t in tensors:
        name = t.name
        buffer = next((label for pattern, label in buffer_patterns if pattern.search(name)), None)
        if buffer is None and _GPT2_MASK.search(name) and len(t.shape) == 4:
            buffer = "attn.bias (causal mask)"
        if buffer is not None:
            skipped_buffers[buffer] += 1
            continue
        if _is_aux(name, by_name):
            aux_count += 1
            aux_bytes += t.nbytes
            continue
        numel = t.numel
        logical_name = name
        before = sum(packed.values())
        if name.endswith(".qweight"):
            numel = t.numel * 32 // qbits
            packed[f"GPTQ/AWQ qweight (int32, {32 // qbits} values per element)"] += 1
            logical_name = name[: -len(".qweight")] + ".weight"
        elif name.endswith(".weight_packed"):
            numel = t.numel * 32 // qbits
            packed[f"compressed-tensors weight_packed (int32, {32 // qbits} values per element)"] += 1
            logical_name = name[: -len(".weight_packed")] + ".weight"
        elif name.endswith("_blocks") and t.dtype == "U8" and f"{name[: -len('_blocks')]}_scales" in by_name:
            numel = t.numel * 2
            packed["MXFP4 *_blocks (uint8, 2 values per byte)"] += 1
            logical_name = name[: -len("_blocks")]
        elif t.dtype == "U8" and _is_bnb4(name, by_name):
            # bnb packs two 4-bit values per uint8 (bitsandbytes functional.quantize_4bit); the
            # logical shape sits in the quant_state tensor's bytes, which a header read never sees.
            numel = t.numel * 2
            packed["bitsandbytes 4-bit weight (uint8, 2 values per byte)"] += 1
        elif tie and tied_dropped is None and _LM_HEAD.search(name) and t.shape in embedding_shapes:
            tied_dropped = name
            continue
        role = role_of(logical_name)
        by_role[role] += numel
        counted.append((logical_name, numel))
        if sum(packed.values()) > before or (quantization is not None and t.dtype in _QUANTIZED_DTYPES):
            # float8 / int8 weights of a quantized checkpoint are quantized storage too (their scales are aux).
            quantized_params += numel
            quantized_bytes += t.nbytes
        elif t.dtype in FLOAT_DTYPES:
            float_bytes[t.dtype] += t.nbytes
        if role == "experts" and not re.search(r"shared_experts?", logical_name):
            routed_expert_params += numel

    assumptions: list[str] = []
    if skipped_buffers:
        what = ", ".join(f"{label} ×{n}" for label, n in sorted(skipped_buffers.items()))
        assumptions.append(f"not counted as parameters: {sum(skipped_buffers.values())} buffers stored in the checkpoint ({what})")
    if tied_dropped:
        assumptions.append(
            f"{tied_dropped} is stored but tied to the input embeddings (tie_word_embeddings=true): counted once"
        )
    for label, n in sorted(packed.items()):
        assumptions.append(f"logical parameter count of {n} packed tensors: {label}")
    if aux_count:
        assumptions.append(f"not counted as parameters: {aux_count} quantization scale/zero-point/state tensors")
    assumptions.extend(notes)

    total = sum(by_role.values())
    active = total
    if architecture is not None and architecture.is_moe and architecture.num_experts_per_tok:
        # One token passes through top-k of the routed experts; shared experts always run.
        inactive = routed_expert_params * (architecture.num_experts - architecture.num_experts_per_tok)
        active = total - inactive // architecture.num_experts
    dominant = max(float_bytes, key=lambda d: float_bytes[d]) if float_bytes else None
    return CheckpointCounts(
        parameters=ParameterCounts(total=total, by_role={r: n for r, n in by_role.items() if n}, active=active,
                                   off_text_path=off_text_path(counted), kept_fp32=kept_fp32_counts(counted, config)),
        checkpoint_bytes=sum(bytes_by_dtype.values()),
        checkpoint_bytes_by_dtype=dict(bytes_by_dtype),
        dominant_float_dtype=SAFETENSORS_TO_TORCH.get(dominant) if dominant else None,
        assumptions=tuple(assumptions),
        quantized_parameters=quantized_params,
        quantized_bytes=quantized_bytes + aux_bytes if quantized_params else 0,
    )


def kept_fp32_counts(counted: list[tuple[str, int]], config: Mapping[str, object] | None) -> dict[str, int]:
    """Counted parameters ``from_pretrained`` keeps in float32, by requested dtype: the names the config's model
    type's recorded ``_keep_in_fp32_modules(_strict)`` patterns match (a regular-expression search per name, as
    transformers' ``core_model_loading`` applies its dtype plan)."""
    if config is None or not isinstance(config.get("model_type"), str):
        return {}
    from hf_gpu_estimator.architectures.generic import keep_in_fp32

    out = {}
    for dtype, patterns in keep_in_fp32(str(config["model_type"])).items():
        pattern = re.compile("|".join(f"(?:{p.replace('*', '.*')})" for p in patterns))
        n = sum(numel for name, numel in counted if pattern.search(name))
        if n:
            out[dtype] = n
    return out


def _recorded_buffers(config: Mapping[str, object] | None) -> frozenset[str] | None:
    """The persistent-buffer name suffixes transformers registers for the config's model type, if recorded."""
    if config is None or not isinstance(config.get("model_type"), str):
        return None
    from hf_gpu_estimator.architectures.generic import persistent_buffers

    return persistent_buffers(str(config["model_type"]))


def _tie_flag(config: Mapping[str, object] | None, architecture: Architecture | None) -> bool:
    if architecture is not None:
        return architecture.tie_word_embeddings
    if config is not None:
        value = config.get("tie_word_embeddings")
        if value is None and isinstance(config.get("text_config"), Mapping):
            value = config["text_config"].get("tie_word_embeddings")  # type: ignore[union-attr]
        return bool(value)
    return False


def _is_aux(name: str, by_name: Mapping[str, TensorInfo]) -> bool:
    if name.endswith(_AUX_SUFFIXES) or ".weight.quant_state." in name:
        return True
    if name.endswith(".scales"):  # GPTQ/AWQ scales sit next to a qweight
        return f"{name[: -len('.scales')]}.qweight" in by_name
    if name.endswith("_scales"):  # MXFP4 scales sit next to *_blocks
        return f"{name[: -len('_scales')]}_blocks" in by_name
    return False


def _is_bnb4(name: str, by_name: Mapping[str, TensorInfo]) -> bool:
    return name.endswith(".weight") and (
        f"{name}.absmax" in by_name or any(k.startswith(f"{name}.quant_state.") for k in by_name)
    )


def _packing_bits(
    quantization: QuantizationConfig | None, by_name: Mapping[str, TensorInfo], notes: list[str]
) -> int:
    """Bits per packed value of int32-packed weights (GPTQ/AWQ qweight, compressed-tensors weight_packed)."""
    if not any(n.endswith((".qweight", ".weight_packed")) for n in by_name):
        return 4
    if quantization is not None and quantization.method in ("gptq", "awq", "compressed-tensors"):
        bits = int(quantization.bits)
        if bits in (2, 3, 4, 8):
            return bits
    notes.append("packed int32 weights without a quantization_config giving bits: assumed 4-bit packing")
    return 4



def build_spec(
    *,
    model_id: str,
    config: Mapping[str, object] | None,
    tensors: tuple[TensorInfo, ...] | None,
    revision: str | None = None,
    parameter_source: Provenance = "header",
    assumptions: Iterable[str] = (),
) -> ModelSpec:
    """Assemble a ModelSpec from config.json and/or header tensors.

    With tensors, counts come from them (the truth about the checkpoint) and the config formula
    of :mod:`~hf_gpu_estimator.architectures` cross-checks them; without, counts come
    from config.json alone.

    Raises:
        UnsupportedArchitectureError: no tensors and a model_type with no dimension model.
        MalformedConfigError: a config field of the wrong type.
    """
    from hf_gpu_estimator import architectures
    from hf_gpu_estimator.architectures.checkpoint import check_against_config, refine_generic
    from hf_gpu_estimator.architectures.generic import generic_assumption, kept_fp32_unknown
    from hf_gpu_estimator.sources.config import quantization_from_config, stored_dtype_from_config

    notes = list(assumptions)
    provenance: dict[str, Provenance] = {}
    if tensors is not None and not tensors:
        from hf_gpu_estimator.errors import MalformedHeaderError

        said = (f"config.json describes a {excerpt(config.get('model_type'))} model" if config
                else "there is no config.json")
        raise MalformedHeaderError(model_id, f"the safetensors headers list no tensors, and {said}: the checkpoint "
                                   "is empty or truncated; re-download it")  # fmt: skip
    config = dict(config) if config is not None else None
    quantization = quantization_from_config(config, source=model_id) if config else None
    stored = stored_dtype_from_config(config, source=model_id) if config else None
    architecture = None
    if config is not None:
        try:
            architecture = architectures.architecture_from_config(config)
        except MalformedConfigError as e:
            e.config = config  # the analytic layer model rejects it; exact mode may still trace it
            raise
        except UnsupportedArchitectureError as e:
            if tensors is None:
                e.config = config  # exact mode traces it without an analytic family
                raise
            notes.append(
                f"model_type {config.get('model_type')!r} is not one transformers implements: exact counts from the "
                "safetensors headers; layer dimensions unknown, so only the weights are estimated"
            )
        else:
            provenance["architecture"] = "config"
            if tensors is not None:
                check_against_config(architecture, tensors, config, source=f"{model_id}/config.json")
                if architecture.derivation == "generic":
                    architecture = refine_generic(architecture, tensors)
    if tensors is not None:
        counts = count_parameters(tensors, config=config, architecture=architecture, quantization=quantization)
        notes.extend(counts.assumptions)
        parameters = counts.parameters
        provenance["parameters"] = parameter_source
        if architecture is not None and architecture.derivation == "family":
            expected = architectures.parameter_counts(config).total
            if expected != parameters.total:
                notes.append(
                    f"the checkpoint holds {parameters.total:,} parameters but config.json's formula gives "
                    f"{expected:,} ({parameters.total - expected:+,}): using the checkpoint's count"
                )
        checkpoint_bytes: int | None = counts.checkpoint_bytes
        bytes_by_dtype = counts.checkpoint_bytes_by_dtype
        if stored is None and counts.dominant_float_dtype is not None:
            stored = counts.dominant_float_dtype
            provenance["stored_dtype"] = parameter_source
    else:
        if config is None:
            raise ValueError("build_spec needs a config or tensors")
        parameters = architectures.parameter_counts(config)
        provenance["parameters"] = "config"
        kept = kept_fp32_unknown(str(config.get("model_type", "")))
        if kept:
            notes.append(kept)
        checkpoint_bytes, bytes_by_dtype = None, {}
        if architecture is not None and architecture.derivation == "generic":
            notes.append("generic family without safetensors headers: parameter counts assume llama-style blocks "
                         "(approximate; point at the checkpoint for exact counts)")
    if architecture is not None and architecture.derivation == "generic":
        notes.append(generic_assumption(architecture.model_type))
    if stored is not None and "stored_dtype" not in provenance:
        provenance["stored_dtype"] = "config"
    if stored is None:
        stored = "float32"
        provenance["stored_dtype"] = "default"
        notes.append("no dtype in config.json or header: assumed float32 (transformers' default)")
    if quantization is not None:
        provenance["quantization"] = "config"
        if tensors is not None and counts.quantized_parameters:
            from dataclasses import replace

            quantization = replace(quantization, quantized_parameters=counts.quantized_parameters,
                                   quantized_bytes=counts.quantized_bytes)  # fmt: skip
    return ModelSpec(
        id=model_id,
        architecture=architecture,
        parameters=parameters,
        stored_dtype=stored,
        checkpoint_bytes=checkpoint_bytes,
        checkpoint_bytes_by_dtype=bytes_by_dtype,
        quantization=quantization,
        config=config or {},
        tensors=tensors or (),
        provenance=provenance,
        revision=revision,
        assumptions=tuple(notes),
    )
