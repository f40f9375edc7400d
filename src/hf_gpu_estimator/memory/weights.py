"""Weights: dtypes, quantized storage and LoRA adapters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hf_gpu_estimator.errors import ConflictingOptionsError
from hf_gpu_estimator.memory.activations import layers_holding
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.quantization import linear_bits_per_weight
from hf_gpu_estimator.spec import Architecture, ModelSpec, QuantizationConfig
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
    which excludes the output layer). Fused MoE expert weights are not nn.Linear: peft targets them as
    parameters only through its conversion of transformers-4 names (:func:`peft_expert_targets`), which
    then adds ``r' * experts * (in + out)`` per targeted expert stack and ``r * (hidden + experts)`` for the
    router.
    """
    arch = spec.architecture
    if arch is None or not arch.linears:
        # No layer shapes (header-only source): peft's default q_proj/v_proj on a square-ish block.
        raise ConflictingOptionsError("method", workload.method, "needs the model's layer shapes",
                                      fix="inspect a model with a config.json (or pass a supported config)")
    experts = peft_expert_targets(spec, workload)
    targets = lora_module_targets(arch, workload)
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
    if experts is not None and (experts.params or experts.router):
        matched = True
        total += experts.adapter_params
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


@dataclass(frozen=True, kw_only=True)
class ExpertLoRA:
    """What peft's MoE target conversion makes of a LoRA config on a transformers-5 MoE model."""

    #: Module names still targeted as ``nn.Linear`` (the converted names leave this set: a dense layer's or a
    #: shared expert's ``gate_proj``/``up_proj``/``down_proj`` then get no adapter).
    module_targets: frozenset[str]
    #: Targeted fused expert parameters and the rank multiplier of each (``gate_up_proj``: 2, two names fused).
    params: Mapping[str, int]
    router: bool  # the router's ``gate.weight`` (a 2-D parameter, rank r)
    adapter_params: int  # lora_A and lora_B of the expert stacks and routers, every MoE layer
    #: Elements of one MoE layer's targeted expert stacks: what each forward materializes as W + B A.
    stack_elements: int
    moe_layers: int


def peft_expert_targets(spec: ModelSpec, workload: Workload) -> ExpertLoRA | None:
    """peft's conversion of LoRA targets on a MoE type whose transformers-4 expert linears became fused parameters
    (peft 0.20+ ``convert_peft_config_for_transformers``, ``utils/transformers_weight_conversion.py``, run by
    ``get_peft_model`` under transformers 5): ``all-linear`` resolves to the block's linear names plus the old
    expert and router names; each old name in the targets (``gate_proj``, ``up_proj``, ``down_proj``, ``gate``;
    Mixtral's ``w1``, ``w3``, ``w2``, ``gate``) becomes a parameter target (``gate_up_proj`` at rank 2r when
    both of its names are given, ``down_proj``, ``gate.weight``) and leaves the module targets. peft wraps each
    stack in a ``ParamWrapper``: ``lora_A`` is ``(r' x experts, in)``, ``lora_B`` ``(out, r' x experts)``.
    None for other types, other frameworks, and targets that name no converted module.

    Raises:
        ConflictingOptionsError: one of two fused names without the other (peft's ValueError "Cannot convert
            PEFT target(s) ... because they are fused"), or LoRA dropout on a converted target (peft's
            ``ParamWrapper`` raises "does not work with lora_dropout != 0", peft 0.21.2 ``tuners/lora/layer.py``).
    """
    return expert_lora(spec.architecture, workload)


def expert_lora(arch: Architecture | None, workload: Workload) -> ExpertLoRA | None:
    """:func:`peft_expert_targets` from the architecture alone (what the per-layer activation code holds)."""
    from hf_gpu_estimator.architectures.generic import peft_moe_targets

    if arch is None or workload.framework != "hf" or not workload.is_training or workload.method == "full":
        return None
    tables = peft_moe_targets(arch.model_type)
    if tables is None:
        return None
    mapping, fused = tables
    asked = set(workload.lora_targets)
    if "all-linear" in asked:
        asked = (asked - {"all-linear"}) | {lin.name for lin in arch.linears if lin.count == 1} | set(mapping)
    converted = {name for name in asked if any(name == old or name.endswith(f".{old}") for old in mapping)}
    if not converted:
        return None
    params: dict[str, int] = {}
    router = False
    for name in converted:
        old = next(o for o in mapping if name == o or name.endswith(f".{o}"))
        new = mapping[old]
        if new == "gate.weight":
            router = True
            continue
        olds = fused.get(new, (old,))
        present = {o for o in olds if any(n == o or n.endswith(f".{o}") for n in converted)}
        if len(present) < len(olds):
            raise ConflictingOptionsError(
                "lora_targets", ",".join(workload.lora_targets),
                f"names {', '.join(sorted(present))} but not {', '.join(sorted(set(olds) - present))}: peft fuses "
                f"them into {arch.model_type}'s {new} expert parameter and refuses one without the other",
                fix=f"target all of {', '.join(olds)}, or none")
        params[new] = len(olds)
    if workload.lora_dropout:
        raise ConflictingOptionsError(
            "lora_dropout", workload.lora_dropout,
            f"is refused by peft's ParamWrapper, which carries the LoRA its MoE target conversion puts on "
            f"{arch.model_type}'s expert and router parameters for {', '.join(sorted(converted))}",
            fix="set lora_dropout 0, or leave the expert and router names out of the LoRA targets")
    moe_groups = [(layer, n) for layer, n in arch.layer_groups if layer.ffn.kind == "moe"]
    moe_layers = sum(n for _, n in moe_groups)
    if arch.stored_layers != arch.num_layers:
        moe_layers = max(1, moe_layers * arch.stored_layers // arch.num_layers)
    r = workload.lora_rank
    per_layer = 0
    stack = 0
    for lin in arch.linears:
        if lin.count > 1 and lin.name in params:
            per_layer += r * params[lin.name] * lin.count * (lin.in_features + lin.out_features)
            stack += lin.count * lin.in_features * lin.out_features
    if router and moe_groups:
        per_layer += r * (arch.hidden_size + int(moe_groups[0][0].ffn.experts or 0))
    return ExpertLoRA(module_targets=frozenset(asked - converted), params=params, router=router,
                      adapter_params=per_layer * moe_layers, stack_elements=stack, moe_layers=moe_layers)


def peft_targets_before_conversion(model_type: str, modules: Iterable[str], parameters: Iterable[str]) -> tuple[str, ...]:
    """The LoRA targets, as :func:`peft_expert_targets` reads them, of a peft config that its MoE target conversion
    already ran on (a live model: ``target_modules`` less the converted names, ``target_parameters`` the fused
    stacks and ``gate.weight``): each targeted parameter goes back to the transformers-4 names peft converted into it
    (``gate_up_proj`` -> ``gate_proj`` and ``up_proj``). Parameters the type's tables do not name are left out."""
    from hf_gpu_estimator.architectures.generic import peft_moe_targets

    targets = set(modules)
    tables = peft_moe_targets(model_type)
    if tables is not None:
        mapping, _ = tables
        for param in parameters:
            targets |= {old for old, new in mapping.items() if param == new or param.endswith(f".{new}")}
    return tuple(sorted(targets))


def lora_module_targets(arch: Architecture | None, workload: Workload) -> frozenset[str]:
    """The LoRA targets peft matches against ``nn.Linear`` modules (``all-linear`` kept as the shorthand): the
    workload's, less the names peft's MoE conversion moves onto the expert parameters (:func:`expert_lora`). The one
    answer to "which linears carry an adapter" for the parameter count, the saved activations and the step."""
    experts = expert_lora(arch, workload)
    return experts.module_targets if experts is not None else frozenset(workload.lora_targets)


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
        kept_experts = bnb_keeps_experts(spec, workload)
        quantized_params = sum(counts.by_role.get(role, 0) for role in quantized_roles(quant, keep_experts=kept_experts))
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
        if kept_experts:
            formula += (f", the {counts.by_role.get('experts', 0):,} routed-expert params among them: bitsandbytes "
                        "replaces nn.Linear modules only, and transformers 5 holds the experts as fused 3-D "
                        "parameters (integrations/bitsandbytes.py replace_with_bnb_linear; bitsandbytes issue #1849)")
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


def quantized_roles(quantization: str, *, keep_experts: bool = False) -> tuple[str, ...]:
    """The ``by_role`` entries a scheme quantizes.

    MXFP4 (gpt-oss): the experts only (its modules_to_not_convert keep attention, router, embeddings
    and head). Block FP8 (DeepSeek-V3, FineGrainedFP8): attention, MLP and expert linears; the
    router gate stays in the checkpoint dtype. Others: every decoder linear (:data:`QUANTIZED_ROLES`),
    the routed experts apart with ``keep_experts`` (:func:`bnb_keeps_experts`).
    """
    if quantization == "mxfp4":
        return ("experts",)
    if quantization == "fp8":
        return ("attention", "mlp", "experts")
    if keep_experts:
        return tuple(role for role in QUANTIZED_ROLES if role != "experts")
    return QUANTIZED_ROLES


#: The bitsandbytes schemes transformers applies by replacing ``nn.Linear`` modules.
BNB_SCHEMES = frozenset({"nf4", "fp4", "int8"})


def bnb_keeps_experts(spec: ModelSpec, workload: Workload) -> bool:
    """Whether ``from_pretrained`` with bitsandbytes leaves the routed experts unquantized: transformers 5 stores
    them as fused 3-D parameters (``Qwen3MoeExperts.gate_up_proj``), and ``replace_with_bnb_linear`` replaces
    ``nn.Linear`` and ``Conv1D`` modules only (transformers 5.25 ``integrations/bitsandbytes.py``; bitsandbytes
    issue #1849), unless transformers first swaps the experts for per-expert linears (Llama 4's,
    ``MODULES_TO_PATCH_FOR_QUANTIZATION``). A serving engine's own loader (``weights_loader="engine"``) and a
    framework with its own MoE modules quantize them."""
    from hf_gpu_estimator.architectures.generic import bnb_unfuses_experts, fused_experts

    arch = spec.architecture
    if workload.quantization not in BNB_SCHEMES or arch is None or workload.weights_loader != "transformers" \
            or workload.framework != "hf" or not spec.parameters.by_role.get("experts"):
        return False
    return bool(fused_experts(arch.model_type)) and not bnb_unfuses_experts(arch.model_type)


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
