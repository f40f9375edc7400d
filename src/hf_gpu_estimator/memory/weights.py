"""Weights: dtypes, quantized storage and LoRA adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hf_gpu_estimator.errors import ConflictingOptionsError
from hf_gpu_estimator.memory.activations import layers_holding
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.quantization import linear_bits_per_weight
from hf_gpu_estimator.spec import ModelSpec, QuantizationConfig
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
    trainable_params: int  # requires_grad
    trainable_dtype: str
    adapter_params: int  # LoRA parameters (included in trainable_params)
    adapter_bytes: int
    formula: str
    #: Trainable parameters the step's inputs do not reach, by input (ParameterCounts.off_text_path: a
    #: vision tower without images ...): their modules do not run, so they get no gradient or optimizer state.
    unreached: Mapping[str, int] = field(default_factory=dict)

    @property
    def unreached_params(self) -> int:
        return sum(self.unreached.values())

    @property
    def updated_params(self) -> int:
        """Trainable parameters that get a gradient (and optimizer state) in the step."""
        return self.trainable_params - self.unreached_params

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
    total = 0
    matched = False
    for linear in arch.linears:
        if linear.count != 1:
            continue
        if everything or linear.name in targets:
            matched = True
            # A hybrid's attention linears live only in its attention layers, its Mamba projections
            # only in the Mamba layers.
            total += workload.lora_rank * (linear.in_features + linear.out_features) * layers_holding(arch, linear)
    if workload.lora_on_lm_head:
        from hf_gpu_estimator.memory.recipe import head_adapter_params

        total += head_adapter_params(arch, workload)
        matched = True
    if not matched:
        names = ", ".join(sorted({lin.name for lin in arch.linears if lin.count == 1}))
        raise ConflictingOptionsError("lora_targets", ",".join(workload.lora_targets),
                                      f"matches no linear layer of {arch.model_type}",
                                      fix=f"use module names among: {names}, or all-linear")
    return total


#: Inputs besides text that a workload with images reaches: the vision tower and projector, and the
#: cross-attention layers that read the image features (mllama); only vision-language models take images.
IMAGE_INPUTS: frozenset[str] = frozenset({"vision", "cross_attention"})


def step_inputs(workload: Workload) -> frozenset[str]:
    """What a step feeds the model besides text (keys of ParameterCounts.off_text_path)."""
    return IMAGE_INPUTS if workload.images else frozenset()


def plan_weights(spec: ModelSpec, workload: Workload, *, inputs: frozenset[str] | None = None) -> WeightPlan:
    """Resolve dtypes, quantization and trainable parameters for ``workload``.

    ``inputs``: what the step feeds besides text (default: :func:`step_inputs` of ``workload``); full
    training updates only the parameters those inputs and the text reach.

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
    workload, _ = resolve_quantization(spec, workload)
    quant = workload.quantization
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
    stored_q = spec.quantization
    if quant == "dequantized":
        formula += f": the checkpoint's {checkpoint_quantization(spec)} weights dequantized on load"
    elif quant != "none" and quant == checkpoint_quantization(spec) and stored_q is not None \
            and stored_q.quantized_parameters and stored_q.quantized_bytes:
        # The loader keeps the checkpoint's quantized tensors as stored (packed ints, float8, MXFP4
        # blocks, bnb 4-bit) with their scales: their bytes come from the safetensors headers.
        quantized_params = stored_q.quantized_parameters
        rest = total - quantized_params
        weights_bytes = stored_q.quantized_bytes + rest * BYTES[weight_dtype]
        bits = 8 * stored_q.quantized_bytes / quantized_params
        formula = (f"{quantized_params:,} quantized params as stored ({quant}: {stored_q.quantized_bytes:,} B with "
                   f"scales, from the headers) + {rest:,} other params x {BYTES[weight_dtype]} B ({weight_dtype})")
        return _finish_plan(spec, workload, weight_dtype=weight_dtype, compute_dtype=compute_dtype, quant=quant,
                            quantized_params=quantized_params, bits=bits, weights_bytes=weights_bytes,
                            formula=formula, inputs=inputs)  # fmt: skip
    elif quant != "none":
        quantized_params = sum(counts.by_role.get(role, 0) for role in quantized_roles(quant))
        if quant.startswith("gguf:"):
            return _gguf_plan(spec, workload, quant, weight_dtype)
        bits = linear_bits_per_weight(quant, double_quant=workload.double_quant, group_size=(spec.quantization.group_size if spec.quantization and
                                                          spec.quantization.group_size else 128))
        if quant == "int8" and spec.architecture is not None:
            # LLM.int8 keeps one fp32 scale per output row (Int8Params.SCB).
            extra_bytes = 4 * sum(lin.out_features * lin.count for lin in spec.architecture.linears) \
                * spec.architecture.stored_layers
        formula = (f"{quantized_params:,} linear params x {bits:.3f} bits ({quant}) + "
                   f"{total - quantized_params:,} other params x {BYTES[weight_dtype]} B ({weight_dtype})")
    weights_bytes = int(quantized_params * bits / 8 + (total - quantized_params) * BYTES[weight_dtype] + extra_bytes)
    return _finish_plan(spec, workload, weight_dtype=weight_dtype, compute_dtype=compute_dtype, quant=quant,
                        quantized_params=quantized_params, bits=bits, weights_bytes=weights_bytes, formula=formula,
                        inputs=inputs)


def _finish_plan(spec: ModelSpec, workload: Workload, *, weight_dtype: str, compute_dtype: str, quant: str,
                 quantized_params: int, bits: float, weights_bytes: int, formula: str,
                 inputs: frozenset[str] | None) -> WeightPlan:  # fmt: skip
    total = spec.parameters.total
    precision = workload.precision
    kept = spec.parameters.kept_fp32.get(weight_dtype, 0)
    if kept and not (workload.is_training and workload.method == "full"):
        # from_pretrained(dtype=...) keeps the model's _keep_in_fp32_modules(_strict) in float32 (transformers
        # PreTrainedModel._get_dtype_plan); full training holds every parameter in its precision's dtype.
        extra = kept * (BYTES["float32"] - BYTES[weight_dtype])
        weights_bytes += extra
        formula += f" + {kept:,} params kept in float32 by from_pretrained (_keep_in_fp32_modules): {extra:,} B more"
    buffers = spec.architecture.buffer_bytes if spec.architecture is not None else 0
    if buffers:
        weights_bytes += buffers
        formula += f" + {buffers:,} B of non-persistent buffers (causal-mask tables)"
    adapter_params = 0
    adapter_bytes = 0
    unreached: dict[str, int] = {}
    if not workload.is_training:
        trainable, trainable_dtype = 0, weight_dtype
    elif workload.method == "full":
        trainable, trainable_dtype = total, precision.param_dtype
        fed = step_inputs(workload) if inputs is None else inputs
        unreached = {k: n for k, n in spec.parameters.off_text_path.items() if k not in fed and n}
    else:
        adapter_params = lora_parameters(spec, workload)
        trainable, trainable_dtype = adapter_params, precision.param_dtype
        adapter_bytes = adapter_params * BYTES[trainable_dtype]
    return WeightPlan(
        weight_dtype=weight_dtype, compute_dtype=compute_dtype, quantization=quant, total_params=total,
        quantized_params=quantized_params, quantized_bits=bits, weights_bytes=weights_bytes,
        trainable_params=trainable, trainable_dtype=trainable_dtype, adapter_params=adapter_params,
        adapter_bytes=adapter_bytes, formula=formula, unreached=unreached,
    )  # fmt: skip


def quantized_roles(quantization: str) -> tuple[str, ...]:
    """The ``by_role`` entries a scheme quantizes.

    MXFP4 (gpt-oss): the experts only (its modules_to_not_convert keep attention, router, embeddings
    and head). Block FP8 (DeepSeek-V3, FineGrainedFP8): attention, MLP and expert linears; the
    router gate stays in the checkpoint dtype. Others: every decoder linear (:data:`QUANTIZED_ROLES`).
    """
    if quantization == "mxfp4":
        return ("experts",)
    if quantization == "fp8":
        return ("attention", "mlp", "experts")
    return QUANTIZED_ROLES


def checkpoint_quantization(spec: ModelSpec) -> str:
    """The checkpoint's own quantization as a workload name (``"none"`` for an unquantized checkpoint)."""
    return quantization_name(spec.quantization)


def quantization_name(q: QuantizationConfig | None) -> str:
    """A parsed ``quantization_config`` as a workload quantization name."""
    if q is None:
        return "none"
    method = q.method.lower()
    if method == "bitsandbytes":
        return "int8" if q.bits == 8 else (q.quant_type or "nf4")
    if method in ("gptq", "awq"):
        return f"{method}-{int(q.bits)}bit"
    if method in ("fp8", "mxfp4"):
        return method
    if method == "compressed-tensors":
        kind = (q.quant_type or "").lower()
        if kind.startswith("float") and int(q.bits) == 8:
            return "fp8"
        if kind.startswith("int") and int(q.bits) == 4:
            return "w4a16"
        if kind.startswith("int") and int(q.bits) == 8:
            return "w8a8"
    if method == "gguf":
        return "none"  # GGUF files are planned by llama.cpp's model (memory.llamacpp), not here
    return "none"



def mxfp4_kernels_run_on(gpu: object | None) -> bool | None:
    """Whether transformers keeps MXFP4 packed on ``gpu`` (``None``: no GPU named, so unknown).

    transformers ``quantizers/quantizer_mxfp4.py`` (``Mxfp4HfQuantizer.validate_environment``):
    a prequantized MXFP4 model stays packed on CUDA devices of compute capability >= 7.5 and on
    Intel XPUs (with triton >= 3.4 / 3.5 and the ``kernels`` package), and is dequantized to bf16
    anywhere else (no CUDA/XPU device: CPU, Apple MPS, Gaudi; or compute capability < 7.5).
    In the GPU catalog only the V100 (compute capability 7.0) is NVIDIA and below 7.5; ROCm
    devices report their gfx version as the capability (MI200/MI300 >= 9.0).
    """
    if gpu is None:
        return None
    vendor = str(getattr(gpu, "vendor", "")).lower()
    name = str(getattr(gpu, "name", "")).upper()
    if vendor == "nvidia":
        return not name.startswith(("V100", "P100", "P40", "K80"))
    if vendor == "amd":
        return True
    if vendor == "intel":
        return not name.startswith("GAUDI")
    return False  # apple (MPS) and anything without CUDA or XPU


def resolve_quantization(spec: ModelSpec, workload: Workload, *, gpu: object | None = None) -> tuple[Workload, tuple[str, ...]]:
    """The workload with the checkpoint's own quantization applied, and what was decided.

    A prequantized checkpoint (GPTQ, AWQ, bitsandbytes, FP8, compressed-tensors, MXFP4) loads
    quantized: ``--quantization`` left at ``none`` becomes the checkpoint's, for inference and for
    LoRA (PEFT trains adapters on the quantized base); full training dequantizes it (quantized
    weights take no gradients). MXFP4 stays packed where transformers' kernels run
    (:func:`mxfp4_kernels_run_on`) and becomes ``dequantized`` (bf16) elsewhere and for training.

    Raises:
        ConflictingOptionsError: ``--quantization`` names a different scheme than the checkpoint's,
            or ``--method qlora`` on a checkpoint that is already quantized another way.
    """
    ckpt = checkpoint_quantization(spec)
    asked = workload.quantization
    if ckpt == "none" or asked == "dequantized" or (asked == ckpt and not (ckpt == "mxfp4" and workload.is_training)):
        return workload, ()
    if workload.is_training and workload.method == "full":
        if asked != "none":
            return workload, ()  # make_workload already refuses a quantized full training
        return workload, (f"full training: the checkpoint's {ckpt} weights are dequantized to the precision's "
                          "dtype (quantized weights take no gradients)",)  # fmt: skip
    if asked != "none":
        if workload.method == "qlora":
            raise ConflictingOptionsError(
                "method", "qlora", f"quantizes the base with bitsandbytes, but the checkpoint is already quantized "
                f"({ckpt}, from its quantization_config)",
                fix="use --method lora: PEFT trains adapters on the checkpoint's quantized base")  # fmt: skip
        raise ConflictingOptionsError(
            "quantization", asked, f"contradicts the checkpoint's own quantization ({ckpt}, from its "
            "quantization_config)", fix=f"drop --quantization (the checkpoint loads as {ckpt}), or use an "
            "unquantized checkpoint")  # fmt: skip
    if ckpt == "mxfp4":
        runs = mxfp4_kernels_run_on(gpu)
        if workload.is_training or runs is False:
            why = ("training: transformers' MXFP4 layers are not trainable (Mxfp4HfQuantizer.is_trainable)"
                   if workload.is_training else f"{getattr(gpu, 'name', gpu)} has no MXFP4 triton kernels "
                   "(transformers needs CUDA compute capability >= 7.5 or an Intel XPU)")  # fmt: skip
            return workload.with_(quantization="dequantized", dtype=workload.dtype or "bfloat16"), (
                f"MXFP4 checkpoint dequantized to {workload.dtype or 'bfloat16'} on load: {why}",)
        where = "on " + str(getattr(gpu, "name", gpu)) if runs else "assuming a GPU with the kernels"
        return workload.with_(quantization="mxfp4"), (
            f"MXFP4 experts kept packed (4.25 bits per weight) {where}: transformers runs them with the triton "
            "kernels on CUDA compute capability >= 7.5 or Intel XPU (triton >= 3.4 and the kernels package), and "
            "dequantizes them to bf16 elsewhere (quantizers/quantizer_mxfp4.py)",)  # fmt: skip
    return workload.with_(quantization=ckpt), (f"the checkpoint is prequantized ({ckpt}): loaded quantized, as "
                                               "transformers keeps it",)  # fmt: skip


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
