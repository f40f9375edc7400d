"""Weights: dtypes, quantized storage and LoRA adapters."""

from __future__ import annotations

from dataclasses import dataclass

from hf_gpu_estimator.errors import ConflictingOptionsError
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.quantization import linear_bits_per_weight
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload

#: by_role entries made of the decoder blocks' linear layers: what bitsandbytes, GPTQ and AWQ
#: replace. Embeddings and lm_head stay in the compute dtype (transformers'
#: get_keys_to_not_convert keeps the output layer; nn.Embedding is not a Linear). The few
#: biases and q/k norms inside attention are counted as quantized: < 0.1 % of the role.
QUANTIZED_ROLES = ("attention", "mlp", "experts", "router")


@dataclass(frozen=True, kw_only=True)
class WeightPlan:
    """How the model's parameters sit in memory for one workload (whole model, before sharding)."""

    weight_dtype: str  # dtype of the unquantized parameters
    compute_dtype: str
    quantization: str
    total_params: int
    quantized_params: int  # stored at ``quantized_bits`` per weight
    quantized_bits: float
    weights_bytes: int  # all base parameters as stored
    trainable_params: int
    trainable_dtype: str
    adapter_params: int  # LoRA parameters (included in trainable_params)
    adapter_bytes: int
    formula: str

    @property
    def weight_bytes_per_param(self) -> int:
        return BYTES[self.weight_dtype]

    @property
    def compute_bytes(self) -> int:
        return BYTES[self.compute_dtype]

    @property
    def trainable_bytes_per_param(self) -> int:
        return BYTES[self.trainable_dtype]


def checkpoint_float_dtype(spec: ModelSpec) -> str:
    """The floating dtype the checkpoint stores, as a name the memory model knows."""
    dtype = spec.stored_dtype
    return dtype if dtype in ("float32", "float16", "bfloat16") else "bfloat16"


def lora_parameters(spec: ModelSpec, workload: Workload) -> int:
    """Trainable LoRA parameters: ``r * (in + out)`` per targeted linear layer (peft LoraLayer A and B).

    ``all-linear`` targets every linear layer of the decoder blocks (peft's INCLUDE_LINEAR_LAYERS_SHORTHAND,
    which excludes the output layer). Fused MoE expert weights are not nn.Linear and are not targeted.
    """
    arch = spec.architecture
    if arch is None or not arch.linears:
        # No layer shapes (header-only source): peft's default q_proj/v_proj on a square-ish block.
        raise ConflictingOptionsError("method", workload.method, "needs the model's layer shapes",
                                      fix="inspect a model with a config.json (or pass a supported config)")
    targets = set(workload.lora_targets)
    everything = "all-linear" in targets
    per_layer = 0
    matched = False
    for linear in arch.linears:
        if linear.count != 1:
            continue
        if everything or linear.name in targets:
            matched = True
            per_layer += workload.lora_rank * (linear.in_features + linear.out_features)
    if not matched:
        names = ", ".join(sorted({lin.name for lin in arch.linears if lin.count == 1}))
        raise ConflictingOptionsError("lora_targets", ",".join(workload.lora_targets),
                                      f"matches no linear layer of {arch.model_type}",
                                      fix=f"use module names among: {names}, or all-linear")
    return per_layer * arch.num_layers


def plan_weights(spec: ModelSpec, workload: Workload) -> WeightPlan:
    """Resolve dtypes, quantization and trainable parameters for ``workload``.

    Dtype rules (what users of transformers/Lightning/peft get):
      * inference: ``--dtype`` or the checkpoint's dtype (transformers 5 loads ``dtype="auto"``);
      * full training: the precision's parameter dtype (fp32 for the ``*-mixed`` precisions);
      * LoRA: the frozen base in ``--dtype``, else the compute dtype (``from_pretrained(dtype=bf16)`` is
        the norm); adapters in the precision's parameter dtype (peft upcasts adapters to fp32 under
        mixed precision; Lightning's ``*-true`` precisions cast the whole module);
      * QLoRA: linear layers 4-bit, the rest in the compute dtype (``bnb_4bit_compute_dtype``).
    """
    counts = spec.parameters
    total = counts.total
    precision = workload.precision
    quant = workload.quantization
    if spec.quantization is not None and quant == "none" and not workload.is_training:
        quant = _checkpoint_quantization(spec)
    stored = checkpoint_float_dtype(spec)

    if not workload.is_training:
        weight_dtype = workload.dtype or stored
        compute_dtype = weight_dtype
    elif workload.method == "full":
        weight_dtype = precision.param_dtype
        compute_dtype = precision.compute_dtype
    else:
        weight_dtype = workload.dtype or precision.compute_dtype
        compute_dtype = precision.compute_dtype

    quantized_params = 0
    bits = 8.0 * BYTES[weight_dtype]
    extra_bytes = 0.0
    formula = f"{total:,} params x {BYTES[weight_dtype]} B ({weight_dtype})"
    if quant != "none":
        quantized_params = sum(counts.by_role.get(role, 0) for role in QUANTIZED_ROLES)
        if quant.startswith("gguf:"):
            return _gguf_plan(spec, workload, quant, weight_dtype)
        bits = linear_bits_per_weight(quant, group_size=(spec.quantization.group_size if spec.quantization and
                                                          spec.quantization.group_size else 128))
        if quant == "int8" and spec.architecture is not None:
            # LLM.int8 keeps one fp32 scale per output row (Int8Params.SCB).
            extra_bytes = 4 * sum(lin.out_features * lin.count for lin in spec.architecture.linears) \
                * spec.architecture.num_layers
        formula = (f"{quantized_params:,} linear params x {bits:.3f} bits ({quant}) + "
                   f"{total - quantized_params:,} other params x {BYTES[weight_dtype]} B ({weight_dtype})")
    weights_bytes = int(quantized_params * bits / 8 + (total - quantized_params) * BYTES[weight_dtype] + extra_bytes)

    adapter_params = 0
    adapter_bytes = 0
    if not workload.is_training:
        trainable, trainable_dtype = 0, weight_dtype
    elif workload.method == "full":
        trainable, trainable_dtype = total, precision.param_dtype
    else:
        adapter_params = lora_parameters(spec, workload)
        trainable, trainable_dtype = adapter_params, precision.param_dtype
        adapter_bytes = adapter_params * BYTES[trainable_dtype]
    return WeightPlan(
        weight_dtype=weight_dtype, compute_dtype=compute_dtype, quantization=quant, total_params=total,
        quantized_params=quantized_params, quantized_bits=bits, weights_bytes=weights_bytes,
        trainable_params=trainable, trainable_dtype=trainable_dtype, adapter_params=adapter_params,
        adapter_bytes=adapter_bytes, formula=formula,
    )  # fmt: skip


def _checkpoint_quantization(spec: ModelSpec) -> str:
    q = spec.quantization
    if q is None:
        return "none"
    method = q.method.lower()
    if method == "bitsandbytes":
        return "int8" if q.bits == 8 else (q.quant_type or "nf4")
    if method in ("gptq", "awq"):
        return f"{method}-{int(q.bits)}bit"
    if method == "fp8":
        return "fp8"
    return "none"


def _gguf_plan(spec: ModelSpec, workload: Workload, quant: str, weight_dtype: str) -> WeightPlan:
    """llama.cpp storage: each tensor in the type ``llama-quantize`` gives it (quantization.gguf_tensor_types)."""
    from hf_gpu_estimator.quantization import gguf_scheme_bytes

    counts = spec.parameters
    kind = quant.split(":", 1)[1]
    total_bytes, by_type = gguf_scheme_bytes(spec, kind)
    mix = ", ".join(f"{name} {nbytes / 2**20:,.0f} MiB" for name, nbytes in sorted(by_type.items(), key=lambda kv: -kv[1]))
    return WeightPlan(
        weight_dtype=weight_dtype, compute_dtype=weight_dtype, quantization=quant, total_params=counts.total,
        quantized_params=counts.total, quantized_bits=8 * total_bytes / max(1, counts.total),
        weights_bytes=int(total_bytes), trainable_params=0, trainable_dtype=weight_dtype, adapter_params=0,
        adapter_bytes=0,
        formula=f"llama-quantize {kind} per-tensor types (src/llama-quant.cpp llama_tensor_get_type): {mix}",
    )  # fmt: skip
