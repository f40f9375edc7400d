"""Workload: what the user wants to run, normalized and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError, UnknownNameError

Task = Literal["inference", "training"]
Method = Literal["full", "lora", "qlora"]
AttnImplementation = Literal["eager", "sdpa", "flash_attention_2"]
Strategy = Literal["none", "ddp", "zero1", "zero2", "zero3", "fsdp", "fsdp-grad-op", "fsdp-hybrid"]

TASKS: tuple[str, ...] = ("inference", "training")
METHODS: tuple[str, ...] = ("full", "lora", "qlora")
ATTN_IMPLEMENTATIONS: tuple[str, ...] = ("eager", "sdpa", "flash_attention_2")
#: What sits on top of the decoder: the LM head (vocabulary logits), or a sequence-classification head
#: (transformers ``*ForSequenceClassification``: a ``score`` linear of ``num_labels`` outputs).
HEADS: tuple[str, ...] = ("causal-lm", "classification")
STRATEGIES: tuple[str, ...] = ("none", "ddp", "zero1", "zero2", "zero3", "fsdp", "fsdp-grad-op", "fsdp-hybrid")
DTYPES: Mapping[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2}
DTYPE_ALIASES: Mapping[str, str] = {
    "fp32": "float32", "float": "float32", "f32": "float32",
    "fp16": "float16", "half": "float16", "f16": "float16",
    "bf16": "bfloat16",
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Precision:
    """A Lightning precision setting: the dtype parameters live in and the dtype compute runs in."""

    name: str
    param_dtype: str
    compute_dtype: str

    @property
    def mixed(self) -> bool:
        return self.param_dtype != self.compute_dtype


#: Lightning's precision names (lightning.fabric.connector._PRECISION_INPUT_STR).
PRECISIONS: Mapping[str, Precision] = {
    "32-true": Precision(name="32-true", param_dtype="float32", compute_dtype="float32"),
    "16-mixed": Precision(name="16-mixed", param_dtype="float32", compute_dtype="float16"),
    "bf16-mixed": Precision(name="bf16-mixed", param_dtype="float32", compute_dtype="bfloat16"),
    "16-true": Precision(name="16-true", param_dtype="float16", compute_dtype="float16"),
    "bf16-true": Precision(name="bf16-true", param_dtype="bfloat16", compute_dtype="bfloat16"),
}
PRECISION_ALIASES: Mapping[str, str] = {
    "32": "32-true", "fp32": "32-true", "16": "16-mixed", "fp16": "16-mixed", "bf16": "bf16-mixed",
    "fp16-mixed": "16-mixed", "fp16-true": "16-true",
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class OptimizerSpec:
    """Optimizer state held per trainable parameter.

    ``state_bytes_per_param`` is ``None`` where the state takes the parameter's own dtype
    (``state_tensors`` tensors of the parameter's size, as torch.optim does).
    """

    name: str
    state_tensors: float  # tensors of the parameter's size, in the parameter dtype
    state_bytes_per_param: float | None = None  # fixed bytes per element (8-bit optimizers)
    factored: bool = False  # Adafactor: row + column statistics for 2-D parameters
    paged: bool = False  # bitsandbytes paged: states can be evicted to host memory
    #: Bytes per element of the stepped parameter that its step allocates as temporaries, where the step runs
    #: one parameter at a time (so the largest parameter sets the peak).
    step_bytes_per_element: float = 0.0
    #: Parameter-sized temporaries alive together in a foreach (multi-tensor) step over every parameter: torch.optim
    #: Adam/AdamW keep one (sqrt(exp_avg_sq), made the denominator in place) since torch 2.1 (pytorch#104898).
    foreach_intermediates: float = 0.0
    source: str = ""


#: 8-bit blockwise states: 1 byte per element + one fp32 absmax per 256-element block,
#: per bitsandbytes.optim.optimizer.Optimizer8bit (block size 256) — 1 + 4/256 bytes.
_BNB_8BIT_STATE = 1 + 4 / 256

OPTIMIZERS: Mapping[str, OptimizerSpec] = {
    "adamw": OptimizerSpec(name="adamw", state_tensors=2, foreach_intermediates=1,
                           source="torch.optim.AdamW: exp_avg, exp_avg_sq like the param"),
    "adam": OptimizerSpec(name="adam", state_tensors=2, foreach_intermediates=1,
                          source="torch.optim.Adam: exp_avg, exp_avg_sq like the param"),
    "adamw-torch2.0": OptimizerSpec(
        name="adamw-torch2.0", state_tensors=2, foreach_intermediates=2,
        source="torch.optim.AdamW of torch <= 2.0 (foreach): exp_avg, exp_avg_sq like the param; the step keeps "
               "exp_avg_sq_sqrt = _foreach_sqrt(exp_avg_sqs) and denom = _foreach_add(exp_avg_sq_sqrt, eps) together "
               "for _foreach_addcdiv_ (torch 2.0.1 wheel, torch/optim/adamw.py _multi_tensor_adamw; pytorch#97712, "
               "in place from torch 2.1 by pytorch#104898)"),
    "adam-torch2.0": OptimizerSpec(
        name="adam-torch2.0", state_tensors=2, foreach_intermediates=2,
        source="torch.optim.Adam of torch <= 2.0 (foreach): the same two intermediates (torch 2.0.1 wheel, "
               "torch/optim/adam.py _multi_tensor_adam; pytorch#97712)"),
    "adamw-fused": OptimizerSpec(name="adamw-fused", state_tensors=2,
                                 source="torch.optim.AdamW(fused=True): exp_avg, exp_avg_sq like the param; one fused "
                                        "kernel per parameter group, no foreach temporaries"),
    "adamw-8bit": OptimizerSpec(name="adamw-8bit", state_tensors=0, state_bytes_per_param=2 * _BNB_8BIT_STATE,
                                source="bitsandbytes AdamW8bit: two uint8 states + fp32 absmax per 256"),
    "adamw-8bit-torchao": OptimizerSpec(
        name="adamw-8bit-torchao", state_tensors=0, state_bytes_per_param=2 * _BNB_8BIT_STATE,
        step_bytes_per_element=2 * (4 + 4 / 256),
        source="torchao 0.7 prototype.low_bit_optim.AdamW8bit: two uint8 states + fp32 scale per 256; each parameter "
               "stepped by a compiled single_param_adam that allocates the fp32 exp_avg and exp_avg_sq of that "
               "parameter (inductor trace: benchmarks/training_runs/torchao_adamw8bit.py)"),
    "paged-adamw-8bit": OptimizerSpec(name="paged-adamw-8bit", state_tensors=0, state_bytes_per_param=2 * _BNB_8BIT_STATE,
                                      paged=True, source="bitsandbytes PagedAdamW8bit (unified memory)"),
    "paged-adamw": OptimizerSpec(name="paged-adamw", state_tensors=0, state_bytes_per_param=8, paged=True,
                                 source="bitsandbytes PagedAdamW: two fp32 states in unified memory"),
    "adafactor": OptimizerSpec(name="adafactor", state_tensors=0, factored=True,
                               source="transformers Adafactor: row+col second moments, no first moment"),
    "sgd": OptimizerSpec(name="sgd", state_tensors=0, source="torch.optim.SGD without momentum: no state"),
    "sgd-momentum": OptimizerSpec(name="sgd-momentum", state_tensors=1, source="torch.optim.SGD momentum_buffer"),
    "lion": OptimizerSpec(name="lion", state_tensors=1, source="Lion: one exp_avg like the param"),
}  # fmt: skip
OPTIMIZER_ALIASES: Mapping[str, str] = {
    "adamw_torch": "adamw", "adamw_torch_fused": "adamw-fused", "fused-adamw": "adamw-fused", "adamw_hf": "adamw", "adam_w": "adamw",
    "adamw_8bit": "adamw-8bit", "adamw_bnb_8bit": "adamw-8bit", "adamw8bit": "adamw-8bit",
    "paged_adamw_8bit": "paged-adamw-8bit", "paged_adamw_32bit": "paged-adamw", "paged-adamw-32bit": "paged-adamw",
    "sgd_momentum": "sgd-momentum", "lion_32bit": "lion", "torchao-adamw8bit": "adamw-8bit-torchao",
    "torchao_adamw8bit": "adamw-8bit-torchao", "adamw_torch2.0": "adamw-torch2.0", "adam_torch2.0": "adam-torch2.0",
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Parallelism:
    """How the work is split across devices."""

    num_gpus: int = 1
    strategy: Strategy = "none"
    tp: int = 1
    pp: int = 1
    offload_optimizer: bool = False
    offload_params: bool = False

    @property
    def dp(self) -> int:
        """Data-parallel degree: the devices left after tensor and pipeline parallel."""
        return max(1, self.num_gpus // (self.tp * self.pp))


@dataclass(frozen=True, kw_only=True)
class Workload:
    """One run to estimate. Build it with :func:`make_workload`, which validates and normalizes."""

    task: Task = "inference"
    method: Method = "full"
    batch_size: int = 1
    seq_len: int = 1024
    new_tokens: int = 256
    dtype: str | None = None  # weight dtype (inference, and the frozen base of LoRA); None: checkpoint's
    precision: Precision = PRECISIONS["bf16-mixed"]
    optimizer: OptimizerSpec = OPTIMIZERS["adamw"]
    gradient_checkpointing: bool = False
    gradient_accumulation_steps: int = 1
    attn_implementation: AttnImplementation = "sdpa"
    quantization: str = "none"  # none, int8, nf4, fp4, fp8, gptq-4bit, awq-4bit, gguf:Q4_K_M, ...
    kv_cache_dtype: str | None = None  # None: the compute dtype; llama.cpp also q8_0, q4_0 ...
    gpu_layers: int | None = None  # llama.cpp -ngl; None: every layer
    # llama.cpp -ctk / -ctv (memory/llamacpp.py KV_TYPES); None: kv_cache_dtype, else f16
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    images: int = 0  # images per sequence (vision-language models): their tokens join the sequence
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    parallelism: Parallelism = field(default_factory=Parallelism)
    # The training recipe (frameworks.py resolves the framework's defaults into these fields).
    framework: str = "hf"
    loss: str = "hf"  # frameworks.LOSS_KINDS
    lora_dropout: float = 0.0
    lora_on_lm_head: bool = False
    double_quant: bool = True  # bitsandbytes bnb_4bit_use_double_quant
    quantized_saves_input: bool = False  # 4-bit matmul keeps its input (bitsandbytes < 0.43.2)
    quantize_lm_head: bool = False
    kbit_fp32_casts: bool = False  # peft prepare_model_for_kbit_training
    optimizer_in_backward: bool = False  # each parameter stepped (and its gradient freed) in backward
    activation_offloading: bool = False  # saved activations moved to host memory during forward
    torch_compile: bool = False  # the model and loss under torch.compile (fused loss: see memory/recipe.py)
    use_reentrant: bool = False  # torch.utils.checkpoint's reentrant variant (memory/model.py: the recompute)
    head: str = "causal-lm"  # HEADS: the LM head, or a sequence-classification head of num_labels outputs
    num_labels: int = 2  # classification head outputs (transformers PretrainedConfig default: 2)
    # DeepSpeed ZeRO buffer sizes, in elements (None: DeepSpeed's default; memory/zero.py)
    reduce_bucket_size: int | None = None
    allgather_bucket_size: int | None = None
    prefetch_bucket_size: int | None = None
    cuda_module_loading: str = "lazy"  # CUDA_MODULE_LOADING: the CUDA context's size (memory/overhead.py)
    # Who loads the checkpoint: transformers' from_pretrained, or a serving engine's own loader (which quantizes
    # fused MoE experts that bitsandbytes-in-transformers leaves alone: memory/weights.py bnb_keeps_experts)
    weights_loader: Literal["transformers", "engine"] = "transformers"

    @property
    def is_training(self) -> bool:
        return self.task == "training"

    def with_(self, **changes: object) -> Workload:
        """A copy with ``changes`` applied (already-normalized values)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        p = self.parallelism
        return {
            "task": self.task,
            "method": self.method,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "new_tokens": self.new_tokens,
            "dtype": self.dtype,
            "precision": self.precision.name,
            "optimizer": self.optimizer.name,
            "gradient_checkpointing": self.gradient_checkpointing,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "attn_implementation": self.attn_implementation,
            "quantization": self.quantization,
            "kv_cache_dtype": self.kv_cache_dtype,
            "gpu_layers": self.gpu_layers,
            **{k: v for k, v in (("cache_type_k", self.cache_type_k), ("cache_type_v", self.cache_type_v)) if v},
            "images": self.images,
            "lora_rank": self.lora_rank,
            "lora_alpha": self.lora_alpha,
            "lora_targets": list(self.lora_targets),
            "num_gpus": p.num_gpus,
            "strategy": p.strategy,
            "tp": p.tp,
            "pp": p.pp,
            "offload_optimizer": p.offload_optimizer,
            "offload_params": p.offload_params,
            "framework": self.framework,
            "loss": self.loss,
            "lora_dropout": self.lora_dropout,
            "lora_on_lm_head": self.lora_on_lm_head,
            "double_quant": self.double_quant,
            "quantized_saves_input": self.quantized_saves_input,
            "quantize_lm_head": self.quantize_lm_head,
            "kbit_fp32_casts": self.kbit_fp32_casts,
            "optimizer_in_backward": self.optimizer_in_backward,
            "activation_offloading": self.activation_offloading,
            "torch_compile": self.torch_compile,
            "use_reentrant": self.use_reentrant,
            "head": self.head,
            "num_labels": self.num_labels if self.head == "classification" else None,  # make_workload refuses it otherwise
            "reduce_bucket_size": self.reduce_bucket_size,
            "allgather_bucket_size": self.allgather_bucket_size,
            "prefetch_bucket_size": self.prefetch_bucket_size,
            "cuda_module_loading": self.cuda_module_loading,
        }


def _choice(field_name: str, value: object, choices: tuple[str, ...] | Mapping[str, object],
            aliases: Mapping[str, str] | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(field_name, value, "one of " + ", ".join(choices))
    key = value.strip().lower()
    if aliases and key in aliases:
        key = aliases[key]
    if key not in choices:
        raise UnknownNameError(field_name, value, list(choices))
    return key


def _positive_int(field_name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(field_name, value, f"an integer >= {minimum}")
    if value < minimum:
        raise InvalidArgumentError(field_name, value, f"an integer >= {minimum}")
    return value


def _bool(field_name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(field_name, value, "True or False")
    return value


def normalize_dtype(field_name: str, value: object) -> str:
    """Map 'bf16', 'torch.bfloat16', 'bfloat16' to the canonical torch name."""
    text = str(value).removeprefix("torch.").strip().lower() if value is not None else ""
    text = DTYPE_ALIASES.get(text, text)
    if text not in DTYPES:
        raise UnknownNameError(field_name, str(value), list(DTYPES))
    return text


#: Tokens per sequence (training) or prompt tokens (inference) when none are given.
DEFAULT_SEQ_LEN = 1024
#: Tokens generated after the prompt (inference) when none are given.
DEFAULT_NEW_TOKENS = 256

#: The compute precision a QLoRA/LoRA ``dtype`` implies when no precision is given: the QLoRA
#: recipe loads with ``torch_dtype=bfloat16`` and ``bnb_4bit_compute_dtype=bfloat16`` and trains
#: under bf16 autocast (transformers docs, "bitsandbytes" quantization; peft QLoRA examples).
_PRECISION_OF_DTYPE: Mapping[str, str] = {"bfloat16": "bf16-mixed", "float16": "16-mixed", "float32": "32-true"}


def _ignored(task: str, method: str, options: Mapping[str, tuple[object, object]]) -> list[str]:
    """The options given (value != default) that ``task``/``method`` do not use, as ``name=value``."""
    unused = {
        "inference": ("precision", "optimizer", "gradient_checkpointing", "gradient_accumulation_steps",
                      "lora_rank", "lora_alpha", "lora_targets", "offload_optimizer", "offload_params", "loss"),
        "training": ("new_tokens", "gpu_layers", "cache_type_k", "cache_type_v")
                    + (("dtype", "lora_rank", "lora_alpha", "lora_targets") if method == "full" else ()),
    }[task]
    return [f"{name}={value}" for name in unused for value, default in [options[name]] if value != default]


def make_workload(
    *,
    task: str | None = None,
    method: str = "full",
    batch_size: int = 1,
    seq_len: int | None = None,
    new_tokens: int | None = None,
    dtype: str | None = None,
    precision: str | None = None,
    optimizer: str = "adamw",
    gradient_checkpointing: bool | str = False,
    gradient_accumulation_steps: int = 1,
    attn_implementation: str = "sdpa",
    quantization: str | None = None,
    kv_cache_dtype: str | None = None,
    gpu_layers: int | None = None,
    cache_type_k: str | None = None,
    cache_type_v: str | None = None,
    images: int = 0,
    lora_rank: int = 16,
    lora_alpha: int | None = None,
    lora_targets: str | tuple[str, ...] | list[str] | None = None,
    num_gpus: int | None = None,
    strategy: str | None = None,
    tp: int = 1,
    pp: int = 1,
    offload_optimizer: bool = False,
    offload_params: bool = False,
    framework: str = "hf",
    loss: str | None = None,
    lora_dropout: float | None = None,
    lora_on_lm_head: bool = False,
    double_quant: bool = True,
    quantized_saves_input: bool | None = None,
    quantize_lm_head: bool | None = None,
    kbit_fp32_casts: bool | None = None,
    optimizer_in_backward: bool = False,
    activation_offloading: bool = False,
    torch_compile: bool = False,
    use_reentrant: bool | None = None,
    head: str = "causal-lm",
    num_labels: int | None = None,
    reduce_bucket_size: int | None = None,
    allgather_bucket_size: int | None = None,
    prefetch_bucket_size: int | None = None,
    cuda_module_loading: str = "lazy",
) -> Workload:
    """Validate user options and build a :class:`Workload`.

    ``task`` defaults to ``"training"`` when ``method`` is ``lora`` or ``qlora``, else ``"inference"``.
    With QLoRA, ``dtype`` is the dtype of the modules left unquantized and, unless ``precision`` is
    given, the compute dtype (as ``torch_dtype`` with ``bnb_4bit_compute_dtype`` in the QLoRA recipe).
    Options that the task does not use (``precision`` for inference, ``new_tokens`` for training ...)
    are ignored with one :class:`~hf_gpu_estimator.errors.IgnoredOptionWarning`.

    ``framework`` (``hf`` default, ``hf-4.41``, ``trl``, ``axolotl``, ``unsloth``, ``llama-factory``, ``torchtune``,
    ``litgpt``) fills ``loss``, ``lora_dropout``, ``quantized_saves_input``, ``quantize_lm_head`` and
    ``kbit_fp32_casts`` and ``use_reentrant`` when they are not given (:mod:`hf_gpu_estimator.frameworks`).
    ``head="classification"`` puts a sequence-classification head of ``num_labels`` outputs in place of
    the LM head. ``reduce_bucket_size``, ``allgather_bucket_size`` and ``prefetch_bucket_size`` are DeepSpeed
    ZeRO's ``zero_optimization`` sizes in elements (None: DeepSpeed's defaults). ``cuda_module_loading``
    (``lazy``, PyTorch's default, or ``eager``) sizes the CUDA context in the device total.

    Raises:
        InvalidArgumentError: an option has a bad value or options conflict; the message
            names the field, the value and what is accepted.
    """
    from hf_gpu_estimator.frameworks import LOSS_KINDS, framework_profile
    from hf_gpu_estimator.quantization import normalize_quantization

    method_ = _choice("method", method, METHODS)
    task_ = _choice("task", task if task is not None else ("inference" if method_ == "full" else "training"), TASKS)
    batch = _positive_int("batch_size", batch_size)
    seq = _positive_int("seq_len", seq_len if seq_len is not None else DEFAULT_SEQ_LEN)
    if new_tokens is None:
        new_tokens = DEFAULT_NEW_TOKENS if task_ == "inference" else 0
    new = _positive_int("new_tokens", new_tokens, minimum=0)
    dtype_ = normalize_dtype("dtype", dtype) if dtype is not None else None
    if precision is None and method_ == "qlora" and dtype_ is not None:
        precision = _PRECISION_OF_DTYPE[dtype_]
    precision_ = PRECISIONS[_choice("precision", precision or "bf16-mixed", PRECISIONS, PRECISION_ALIASES)]
    optimizer_ = OPTIMIZERS[_choice("optimizer", optimizer, OPTIMIZERS, OPTIMIZER_ALIASES)]
    attn = _choice("attn_implementation", attn_implementation, ATTN_IMPLEMENTATIONS,
                   {"flash_attention": "flash_attention_2", "fa2": "flash_attention_2", "flash": "flash_attention_2"})
    quant = normalize_quantization(quantization if quantization is not None else ("nf4" if method_ == "qlora" else "none"))
    kv_dtype = None
    if kv_cache_dtype is not None:
        fp8 = {"fp8": "float8_e4m3fn", "fp8_e4m3": "float8_e4m3fn", "float8_e4m3fn": "float8_e4m3fn",
               "fp8_e5m2": "float8_e5m2", "float8_e5m2": "float8_e5m2"}
        key = str(kv_cache_dtype).removeprefix("torch.").strip().lower()
        # llama.cpp's quantized cache types (-ctk/-ctv), for GGUF models.
        llamacpp = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")
        kv_dtype = fp8[key] if key in fp8 else key if key in llamacpp else normalize_dtype("kv_cache_dtype", kv_cache_dtype)
    gpu_layers_ = None if gpu_layers is None else _positive_int("gpu_layers", gpu_layers, minimum=0)
    from hf_gpu_estimator.memory.llamacpp import kv_cache_type  # the -ctk/-ctv names, checked in one place

    cache_k = None if cache_type_k is None else kv_cache_type("cache_type_k", cache_type_k)
    cache_v = None if cache_type_v is None else kv_cache_type("cache_type_v", cache_type_v)
    images_ = _positive_int("images", images, minimum=0)
    rank = _positive_int("lora_rank", lora_rank)
    alpha = _positive_int("lora_alpha", lora_alpha if lora_alpha is not None else 2 * rank)
    if lora_targets is None:
        targets: tuple[str, ...] = ("q_proj", "v_proj")
    elif isinstance(lora_targets, str):
        targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
    else:
        targets = tuple(lora_targets)
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise InvalidArgumentError("lora_targets", lora_targets, "module names such as q_proj,v_proj or all-linear")
    tp_ = _positive_int("tp", tp)
    pp_ = _positive_int("pp", pp)
    # --tp/--pp alone imply their product, as vLLM needs only --tensor-parallel-size
    gpus = _positive_int("num_gpus", num_gpus) if num_gpus is not None else tp_ * pp_
    strategy_ = _choice("strategy", strategy or ("ddp" if gpus > 1 and task_ == "training" else "none"), STRATEGIES,
                        {"deepspeed_stage_1": "zero1", "deepspeed_stage_2": "zero2", "deepspeed_stage_3": "zero3",
                         "full_shard": "fsdp", "shard_grad_op": "fsdp-grad-op", "hybrid_shard": "fsdp-hybrid",
                         "zero-1": "zero1", "zero-2": "zero2", "zero-3": "zero3"})
    if gpus % (tp_ * pp_) != 0:
        raise ConflictingOptionsError("num_gpus", gpus, f"is not a multiple of tp*pp={tp_ * pp_}",
                                      fix="use --num-gpus equal to a multiple of --tp times --pp")

    if method_ != "full" and task_ != "training":
        raise ConflictingOptionsError("method", method_, "applies to training only",
                                      fix="pass --task training, or --method full for inference")
    if method_ == "qlora" and quant.split(":")[0] not in ("nf4", "fp4"):
        raise ConflictingOptionsError("quantization", quant, "is not a QLoRA base (bitsandbytes 4-bit)",
                                      fix="use --quantization nf4 or fp4 with --method qlora")
    if task_ == "training" and quant.startswith("gguf:"):
        raise ConflictingOptionsError("quantization", quant, "is an inference format (llama.cpp)",
                                      fix="train with --method qlora --quantization nf4, or estimate inference")
    if method_ == "full" and task_ == "training" and quant != "none":
        raise ConflictingOptionsError("quantization", quant, "cannot be trained in full (quantized weights take no gradients)",
                                      fix="use --method qlora or lora, or --quantization none")
    # One GPU with a sharding strategy is DeepSpeed ZeRO-Offload / FSDP CPU offload: it means something only
    # with an offload.
    if strategy_ != "none" and gpus == 1 and not (
            (offload_optimizer or offload_params) and strategy_ in ("zero2", "zero3", "fsdp", "fsdp-grad-op")):
        raise ConflictingOptionsError("strategy", strategy_, "needs more than one GPU (or, on one GPU, an offload)",
                                      fix="pass --num-gpus 2 or more, add --offload-optimizer/--offload-params, "
                                          "or drop --strategy")
    if task_ == "inference" and strategy_ not in ("none",):
        raise ConflictingOptionsError("strategy", strategy_, "is a training strategy",
                                      fix="use --tp/--pp to split inference across GPUs")
    if (offload_optimizer or offload_params) and strategy_ not in ("zero2", "zero3", "fsdp", "zero1", "fsdp-hybrid", "fsdp-grad-op"):
        raise ConflictingOptionsError("offload", True, f"needs a ZeRO/FSDP strategy, not {strategy_!r}",
                                      fix="pass --strategy zero3 (or zero2/fsdp)")
    if task_ == "inference" and gpus > 1 and tp_ * pp_ != gpus:
        raise ConflictingOptionsError("num_gpus", gpus, f"does not match tp*pp={tp_ * pp_} for inference",
                                      fix=f"pass --tp {gpus} (tensor parallel) or --pp {gpus}")
    profile = framework_profile(framework)
    loss_ = _choice("loss", loss, LOSS_KINDS, {"chunked-ce": "chunked-fp32"}) if loss is not None else profile.loss
    dropout = profile.lora_dropout if lora_dropout is None else lora_dropout
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise InvalidArgumentError("lora_dropout", lora_dropout, "a probability in [0, 1)")
    if optimizer_in_backward and gradient_accumulation_steps != 1:
        raise ConflictingOptionsError("optimizer_in_backward", True, "steps each parameter as its gradient arrives",
                                      fix="use --gradient-accumulation-steps 1 with it")
    offloaded_gc = isinstance(gradient_checkpointing, str) and gradient_checkpointing.strip().lower() in (
        "unsloth", "offloaded")
    if isinstance(gradient_checkpointing, str) and not offloaded_gc:
        raise InvalidArgumentError("gradient_checkpointing", gradient_checkpointing, "True, False or 'unsloth'")
    if offloaded_gc and not profile.offloaded_checkpointing:
        raise ConflictingOptionsError("gradient_checkpointing", gradient_checkpointing,
                                      f"is unsloth's offloaded checkpointing, not {profile.name}'s",
                                      fix="add --framework unsloth, or pass --gradient-checkpointing alone")
    gc = True if offloaded_gc else _bool("gradient_checkpointing", gradient_checkpointing)
    head_ = _choice("head", head, HEADS, {"lm": "causal-lm", "causal_lm": "causal-lm", "sequence-classification":
                                          "classification", "seq-cls": "classification"})
    if num_labels is not None and head_ != "classification":
        raise ConflictingOptionsError("num_labels", num_labels, "sizes a classification head",
                                      fix="add --head classification, or drop --num-labels")
    labels = _positive_int("num_labels", num_labels if num_labels is not None else 2)
    buckets = {name: None if value is None else _positive_int(name, value) for name, value in (
        ("reduce_bucket_size", reduce_bucket_size), ("allgather_bucket_size", allgather_bucket_size),
        ("prefetch_bucket_size", prefetch_bucket_size))}
    given = [name for name, value in buckets.items() if value is not None]
    if given and strategy_ not in ("zero1", "zero2", "zero3"):
        raise ConflictingOptionsError(given[0], buckets[given[0]], f"is a DeepSpeed ZeRO setting, not {strategy_!r}",
                                      fix="pass --strategy zero1, zero2 or zero3 with it")
    accumulation = _positive_int("gradient_accumulation_steps", gradient_accumulation_steps)
    # unsloth's use_gradient_checkpointing="unsloth" (unsloth_zoo Unsloth_Offloaded_Gradient_Checkpointer): each
    # checkpointed layer input goes to host memory in forward, so the device keeps one layer's (memory/model.py).
    offloading = offloaded_gc or _bool("activation_offloading", activation_offloading)
    if offloading and task_ == "training" and not gc:
        # torchtune's recipes raise "enable_activation_offloading should only be True when
        # enable_activation_checkpointing is True" (recipes/*_finetune_*.py at v0.5.0); the estimate models
        # the stash of checkpointed layer inputs only (memory/model.py).
        raise ConflictingOptionsError("activation_offloading", True, "needs gradient checkpointing (torchtune refuses "
                                      "activation offloading without it)", fix="add --gradient-checkpointing")
    ignored = _ignored(task_, method_, {
        "precision": (precision_.name, "bf16-mixed"), "optimizer": (optimizer_.name, "adamw"),
        "gradient_checkpointing": (gc, False), "gradient_accumulation_steps": (accumulation, 1), "lora_rank": (rank, 16),
        "lora_alpha": (alpha, 2 * rank), "lora_targets": (",".join(targets), "q_proj,v_proj"),
        "offload_optimizer": (offload_optimizer, False),
        "offload_params": (offload_params, False), "new_tokens": (new, 0), "dtype": (dtype_, None),
        "gpu_layers": (gpu_layers_, None), "cache_type_k": (cache_k, None), "cache_type_v": (cache_v, None),
        "loss": (loss_, profile.loss),
    })  # fmt: skip
    if ignored:
        import warnings

        from hf_gpu_estimator.errors import IgnoredOptionWarning

        warnings.warn(IgnoredOptionWarning(f"{', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply "
                                           f"to {task_}{' (' + method_ + ')' if task_ == 'training' else ''}: ignored"),
                      stacklevel=2)

    return Workload(
        task=task_,  # type: ignore[arg-type]
        method=method_,  # type: ignore[arg-type]
        batch_size=batch,
        seq_len=seq,
        new_tokens=new,
        dtype=dtype_,
        precision=precision_,
        optimizer=optimizer_,
        gradient_checkpointing=gc,
        gradient_accumulation_steps=accumulation,
        attn_implementation=attn,  # type: ignore[arg-type]
        quantization=quant,
        kv_cache_dtype=kv_dtype,
        gpu_layers=gpu_layers_,
        cache_type_k=cache_k,
        cache_type_v=cache_v,
        images=images_,
        lora_rank=rank,
        lora_alpha=alpha,
        lora_targets=targets,
        parallelism=Parallelism(
            num_gpus=gpus, strategy=strategy_, tp=tp_, pp=pp_,  # type: ignore[arg-type]
            offload_optimizer=_bool("offload_optimizer", offload_optimizer),
            offload_params=_bool("offload_params", offload_params),
        ),
        framework=profile.name,
        loss=loss_,
        lora_dropout=float(dropout),
        lora_on_lm_head=_bool("lora_on_lm_head", lora_on_lm_head),
        double_quant=_bool("double_quant", double_quant),
        quantized_saves_input=profile.quantized_saves_input if quantized_saves_input is None
        else _bool("quantized_saves_input", quantized_saves_input),
        quantize_lm_head=profile.quantize_lm_head if quantize_lm_head is None
        else _bool("quantize_lm_head", quantize_lm_head),
        # trl and axolotl skip prepare_model_for_kbit_training for sharded QLoRA (FSDP, ZeRO-3): frameworks.py.
        kbit_fp32_casts=(profile.kbit_fp32_casts and strategy_ not in ("fsdp", "fsdp-hybrid", "fsdp-grad-op", "zero3"))
        if kbit_fp32_casts is None else _bool("kbit_fp32_casts", kbit_fp32_casts),
        optimizer_in_backward=_bool("optimizer_in_backward", optimizer_in_backward),
        activation_offloading=offloading,
        torch_compile=_bool("torch_compile", torch_compile),
        use_reentrant=profile.use_reentrant if use_reentrant is None else _bool("use_reentrant", use_reentrant),
        head=head_,
        num_labels=labels,
        **buckets,
        cuda_module_loading=_choice("cuda_module_loading", cuda_module_loading, ("lazy", "eager")),
    )


def workload_from_kwargs(options: Mapping[str, Any]) -> Workload:
    """Build a Workload from keyword options, rejecting unknown names with a suggestion."""
    import inspect

    accepted = inspect.signature(make_workload).parameters
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise UnknownNameError("option", unknown[0], list(accepted))
    return make_workload(**options)
