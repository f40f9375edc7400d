"""transformers: ``MemoryPreflightCallback`` for the Trainer, and ``check_fits`` before ``from_pretrained``.

Usage::

    from hf_gpu_estimator.integrations.transformers import MemoryPreflightCallback, check_fits

    plan = check_fits("meta-llama/Llama-2-13b-hf", device_map="auto", dtype="bfloat16", gpu="RTX-4090")
    print(plan)                      # where each layer lands, bytes per device, what does not fit

    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      callbacks=[MemoryPreflightCallback(gpu="A100-80GB", seq_len=2048)])
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import transformers
from transformers import TrainerCallback

from hf_gpu_estimator.constants import GiB
from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.integrations._core import (
    DEFAULT_MARGIN,
    PreflightResult,
    deepspeed_options,
    describe_model,
    enforce,
    evaluate,
    fsdp_options,
    optimizer_name,
    peek_dataloader,
    validate_options,
)

__all__ = ["LoadPlan", "MemoryPreflightCallback", "TRANSFORMERS_HINTS", "check_fits", "workload_from_training_args"]

#: Under transformers' own logger, so its handler and verbosity (``TRANSFORMERS_VERBOSITY``,
#: ``logging.set_verbosity_*``) apply: problems at warning level, and the one summary line at
#: warning level too, since transformers shows only warnings by default.
log = transformers.utils.logging.get_logger("transformers.hf_gpu_estimator")

#: How to apply each suggestion with TrainingArguments.
TRANSFORMERS_HINTS: Mapping[str, str] = {
    "batch_size": "TrainingArguments(per_device_train_batch_size={batch_size}, "
                  "gradient_accumulation_steps={gradient_accumulation_steps})",
    "gradient_checkpointing": "TrainingArguments(gradient_checkpointing=True)",
    "precision": "TrainingArguments(bf16=True)",
    "method": "peft.get_peft_model(model, LoraConfig(...)) (QLoRA: from_pretrained(quantization_config="
              "BitsAndBytesConfig(load_in_4bit=True)))",
    "optimizer": "TrainingArguments(optim='adamw_bnb_8bit')",
    "strategy": "TrainingArguments(deepspeed=<ZeRO-3 config>) or fsdp=True",
    "offload": "DeepSpeed config: zero_optimization.offload_optimizer.device = 'cpu'",
    "num_gpus": "torchrun --nproc_per_node ... for {num_gpus} devices with ZeRO-3/FSDP",
}  # fmt: skip


class MemoryPreflightCallback(TrainerCallback):
    """Estimate the Trainer's GPU memory per device in ``on_train_begin``; warn, or raise PreflightError, if it will not fit.

    Reads the TrainingArguments (``per_device_train_batch_size``, ``gradient_accumulation_steps``,
    ``bf16``/``fp16``, ``optim`` or the live optimizer, ``gradient_checkpointing``, ``deepspeed``
    config dict or file, ``fsdp``/``fsdp_config``, ``world_size``) and the model (trainable vs
    frozen, peft adapters, 4-bit base). The sequence length comes from ``seq_len=``, else from the
    train dataset's first item (map-style datasets; the dataloader is never iterated).

    The estimate runs once on world process zero; the verdict is broadcast over
    ``torch.distributed`` when it is initialized, so with ``on_exceed="raise"`` every process
    raises before the first step. A failing estimate logs a warning and training continues.

    Args:
        gpu: a GPU catalog name to compare with.
        device_memory_bytes: the device's memory in bytes (instead of ``gpu``); with neither,
            the CUDA device's total (skipped on a machine without CUDA).
        on_exceed: ``"warn"`` or ``"raise"``.
        seq_len: tokens per sequence.
        margin: share of the device kept free.
    """

    def __init__(self, *, gpu: Any = None, device_memory_bytes: int | None = None, on_exceed: str = "warn",
                 seq_len: int | None = None, margin: float = DEFAULT_MARGIN):
        validate_options(gpu=gpu, device_memory_bytes=device_memory_bytes, on_exceed=on_exceed, margin=margin)
        if seq_len is not None and (isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1):
            raise InvalidArgumentError("seq_len", seq_len, "an integer >= 1")
        self.gpu = gpu
        self.device_memory_bytes = device_memory_bytes
        self.on_exceed = on_exceed
        self.seq_len = seq_len
        self.margin = margin
        self.result: PreflightResult | None = None

    def on_train_begin(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
                       control: transformers.TrainerControl, model: Any = None, optimizer: Any = None,
                       train_dataloader: Any = None, **kwargs: Any) -> None:
        verdict: tuple[str, str, int | None, int | None] | None = None
        if state.is_world_process_zero:
            try:
                self.result = self._evaluate(args, model, optimizer, train_dataloader)
            except Exception as e:  # the estimator failing never stops training
                self.result = PreflightResult(status="failed", error=f"{type(e).__name__}: {e}",
                                              message=f"hf-gpu-estimator: memory preflight failed ({type(e).__name__}: "
                                                      f"{e}); training continues")
            r = self.result
            verdict = (r.status, r.message, r.required_bytes, r.available_bytes)
        verdict = _broadcast(verdict)
        status, message, required, available = verdict
        enforce(status, message, on_exceed=self.on_exceed, log=log, emit=state.is_world_process_zero,
                required_bytes=required, available_bytes=available, say=log.warning)

    def _evaluate(self, args: Any, model: Any, optimizer: Any, train_dataloader: Any) -> PreflightResult:
        if model is None:
            return PreflightResult(status="failed", message="hf-gpu-estimator: memory preflight skipped: the Trainer "
                                                            "passed no model to on_train_begin")
        facts = describe_model(model)
        kwargs, notes = workload_from_training_args(args, trainable_dtype=facts.trainable_dtype)
        kwargs.update(facts.options)
        if getattr(args, "gradient_checkpointing", False):
            kwargs["gradient_checkpointing"] = True
        if optimizer is not None:
            name, note = optimizer_name(optimizer)
            if name is not None:
                kwargs["optimizer"] = name
            elif note:
                notes.append(note)
        seq = self.seq_len or peek_dataloader(train_dataloader)[1]
        if seq is None:
            return PreflightResult(status="failed", workload_kwargs=kwargs,
                                   message="hf-gpu-estimator: memory preflight skipped: could not read the sequence "
                                           "length from the train dataset; pass MemoryPreflightCallback(seq_len=...)")
        kwargs["seq_len"] = seq
        return evaluate(facts.source, workload_kwargs=kwargs, gpu=self.gpu, device_memory_bytes=self.device_memory_bytes,
                        margin=self.margin, hints=TRANSFORMERS_HINTS, notes=(*facts.notes, *notes))


def _broadcast(verdict: Any) -> Any:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [verdict]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return verdict


def workload_from_training_args(args: Any, *, trainable_dtype: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Workload keywords (but the sequence length and the model's own) from TrainingArguments, and notes."""
    notes: list[str] = []
    kwargs: dict[str, Any] = {"task": "training", "batch_size": int(args.per_device_train_batch_size),
                              "gradient_accumulation_steps": int(args.gradient_accumulation_steps)}
    if getattr(args, "bf16", False):
        kwargs["precision"] = "bf16-mixed"
    elif getattr(args, "fp16", False):
        kwargs["precision"] = "16-mixed"
    else:  # no autocast: compute in the parameters' dtype
        kwargs["precision"] = {"bfloat16": "bf16-true", "float16": "16-true"}.get(trainable_dtype or "", "32-true")
    optim = str(getattr(args.optim, "value", args.optim))
    from hf_gpu_estimator.workload import OPTIMIZER_ALIASES, OPTIMIZERS

    if optim.lower() in OPTIMIZERS or optim.lower() in OPTIMIZER_ALIASES:
        kwargs["optimizer"] = optim.lower()
    else:
        notes.append(f"optim={optim!r} is not modeled: estimated as AdamW")
    devices = max(1, int(getattr(args, "world_size", 1) or 1))
    ds = getattr(args, "deepspeed", None)
    if ds:
        config = ds
        if not isinstance(ds, Mapping):
            config = json.loads(Path(str(ds)).read_text(encoding="utf-8"))
        options, more = deepspeed_options(config, num_gpus=devices)
    elif getattr(args, "fsdp", None):
        options, more = _fsdp_from_args(args.fsdp, getattr(args, "fsdp_config", None) or {}, devices)
    else:
        options, more = {"num_gpus": devices}, []
        if devices > 1:
            options["strategy"] = "ddp"
    kwargs.update(options)
    notes.extend(more)
    return kwargs, notes


def _fsdp_from_args(fsdp: Any, config: Mapping[str, Any], devices: int) -> tuple[dict[str, Any], list[str]]:
    words: list[str] = []
    if isinstance(fsdp, str):
        words = fsdp.lower().split()
    elif isinstance(fsdp, (list, tuple)):
        words = [str(getattr(w, "value", w)).lower() for w in fsdp]
    sharding = None
    for word, name in (("full_shard", "FULL_SHARD"), ("shard_grad_op", "SHARD_GRAD_OP"),
                       ("hybrid_shard_zero2", "HYBRID_SHARD_ZERO2"), ("hybrid_shard", "HYBRID_SHARD"),
                       ("no_shard", "NO_SHARD")):
        if word in words:
            sharding = name
            break
    if sharding is None:
        reshard = config.get("reshard_after_forward", config.get("sharding_strategy", True))
        sharding = ("FULL_SHARD" if reshard is True else "SHARD_GRAD_OP" if reshard is False else str(reshard))
    offload = "offload" in words or bool(config.get("cpu_offload", False)) or bool(config.get("offload_params", False))
    return fsdp_options(sharding, offload=offload, num_gpus=devices)


# --- check_fits: will from_pretrained(..., device_map=...) fit, and where does each part land ----------


@dataclass(frozen=True, kw_only=True)
class LoadPlan:
    """Where ``from_pretrained`` would put each module, and whether that fits.

    ``fits``: every module on a GPU, within its memory. ``loads``: the load succeeds without disk
    offload, possibly with modules on the CPU (slow). ``device_map`` maps module names (as accelerate's ``infer_auto_device_map`` names them) to a
    GPU index, ``"cpu"`` or ``"disk"``; byte counts are the weights only (what ``max_memory``
    bounds), plus the CUDA context in ``device_total_bytes``.
    """

    model: str
    fits: bool
    loads: bool
    device_map: Mapping[str, int | str]
    bytes_by_device: Mapping[int | str, int]
    capacity_by_device: Mapping[int | str, int]
    weights_bytes: int
    dtype: str
    quantization: str
    notes: tuple[str, ...] = field(default=())

    @property
    def offloaded_bytes(self) -> int:
        return sum(v for k, v in self.bytes_by_device.items() if isinstance(k, str))

    def __str__(self) -> str:
        lines = [f"{self.model}: {self.weights_bytes / GiB:.2f} GiB of weights ({self.dtype}"
                 f"{', ' + self.quantization if self.quantization != 'none' else ''}): "
                 f"{'fits on the GPUs' if self.fits else 'loads with CPU offload' if self.loads else 'does NOT fit'}"]
        for device, used in self.bytes_by_device.items():
            cap = self.capacity_by_device.get(device)
            label = f"cuda:{device}" if isinstance(device, int) else device
            modules = [m for m, d in self.device_map.items() if d == device]
            span = modules[0] if len(modules) == 1 else f"{modules[0]} .. {modules[-1]} ({len(modules)} modules)"
            cap_text = f" of {cap / GiB:.2f} GiB" if cap is not None else ""
            lines.append(f"  {label:>8}: {used / GiB:8.2f} GiB{cap_text}  {span}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


_SIZE_RE = re.compile(r"^\s*([0-9.]+)\s*([KMGT]i?B)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
          "TIB": 2**40}


def _size(value: Any, field_name: str) -> int:
    """accelerate's ``max_memory`` values: bytes, or strings such as ``"10GiB"`` / ``"10GB"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise InvalidArgumentError(field_name, value, "bytes or a size such as '10GiB' or '24GB'")
    unit = match.group(2).upper() if match.group(2) else None
    return int(float(match.group(1)) * _UNITS[unit])


def _device_key(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("cuda", "gpu"):
        return 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    if text.isdigit():
        return int(text)
    if text in ("cpu", "disk", "meta", "mps"):
        return text
    raise InvalidArgumentError("device_map", value, "a GPU index, 'cuda:N', 'cpu' or 'disk'")


def check_fits(model_id_or_path: Any, *, device_map: Any = None, dtype: Any = None, torch_dtype: Any = None,
               quantization_config: Any = None, max_memory: Mapping[Any, Any] | None = None, gpu: Any = None,
               device_memory_bytes: int | None = None, num_devices: int | None = None,
               **from_pretrained_kwargs: Any) -> LoadPlan:
    """Whether ``from_pretrained(model_id_or_path, device_map=..., dtype=..., quantization_config=..., max_memory=...)`` fits.

    Answers before any weight is downloaded: the spec comes from the config and safetensors
    headers. Modules are placed in order, layer by layer, filling each GPU before the next, then
    the CPU, then disk, as accelerate's ``infer_auto_device_map`` does for ``"sequential"``;
    ``"auto"``/``"balanced"`` first spread the layers evenly over the GPUs (accelerate's
    ``get_balanced_memory``). Without ``max_memory``, 90 % of each GPU's memory after the CUDA
    context is used for weights (transformers keeps headroom for buffers the same way).

    Args:
        model_id_or_path: a Hub id, a local folder, a config dict or a ModelSpec.
        device_map: ``None`` (the model is loaded, then moved to one GPU), ``"auto"``, ``"balanced"``,
            ``"sequential"``, ``"cpu"``, a device (``0``, ``"cuda:1"``) or a dict module -> device.
        dtype, torch_dtype: ``"auto"``/``None`` (the checkpoint's dtype), ``"bfloat16"``, ``torch.float16`` ...
        quantization_config: a ``BitsAndBytesConfig`` or dict (``load_in_4bit``/``load_in_8bit``,
            ``bnb_4bit_quant_type``), or any config with ``quant_method`` and ``bits``.
        max_memory: accelerate's per-device limits (``{0: "10GiB", "cpu": "30GiB"}``).
        gpu: a GPU catalog name for every GPU; device_memory_bytes: the memory of each GPU.
            With neither and no ``max_memory``, the visible CUDA devices are asked.
        num_devices: how many GPUs of ``gpu``/``device_memory_bytes`` (default 1).
        **from_pretrained_kwargs: other ``from_pretrained`` arguments (``revision``, ``token`` are
            used; the rest do not change the placement and are ignored).

    Returns:
        A :class:`LoadPlan`; ``print(plan)`` shows where each part lands.
    """
    from hf_gpu_estimator.sources import inspect_model

    validate_options(gpu=gpu, device_memory_bytes=device_memory_bytes)
    if dtype is not None and torch_dtype is not None:
        raise InvalidArgumentError("dtype", dtype, "dtype= or torch_dtype=, not both")
    notes: list[str] = []
    spec = inspect_model(model_id_or_path, revision=from_pretrained_kwargs.get("revision"),
                         token=from_pretrained_kwargs.get("token"))
    weight_dtype = _weight_dtype(dtype if dtype is not None else torch_dtype, spec)
    quant, bits = _quant(quantization_config, spec)
    groups = _module_sizes(spec, weight_dtype, quant, bits, notes)
    gpus, cpu_capacity = _devices(max_memory, gpu, device_memory_bytes, num_devices, notes)
    placement = _place(groups, device_map, gpus, cpu_capacity, notes)
    used: dict[int | str, int] = {}
    for name, device in placement.items():
        used[device] = used.get(device, 0) + groups[name]
    capacity: dict[int | str, int] = dict(gpus)
    if cpu_capacity is not None:
        capacity["cpu"] = cpu_capacity
    over = [d for d, b in used.items() if d in capacity and b > capacity[d]]
    loads = not over and "disk" not in used
    fits = loads and all(isinstance(d, int) for d in used)
    for d in over:
        label = f"cuda:{d}" if isinstance(d, int) else d
        notes.append(f"{label} needs {used[d] / GiB:.2f} GiB of weights but has {capacity[d] / GiB:.2f} GiB")
    if "disk" in used:
        notes.append(f"{used['disk'] / GiB:.2f} GiB would go to disk (offload_folder): GPUs and CPU are full")
    if used.get("cpu") and loads:
        notes.append(f"{used['cpu'] / GiB:.2f} GiB offloaded to CPU: it loads, but every forward copies those "
                     "layers to the GPU (slow)")
    missing = [d for d in used if isinstance(d, int) and d not in capacity]
    if missing:
        fits = loads = False
        notes.append(f"device_map uses GPU(s) {missing} that are not visible / given")
    return LoadPlan(model=spec.id, fits=fits, loads=loads, device_map=placement,
                    bytes_by_device=dict(sorted(used.items(), key=lambda kv: (isinstance(kv[0], str), str(kv[0])))),
                    capacity_by_device=capacity, weights_bytes=sum(groups.values()), dtype=weight_dtype,
                    quantization=quant, notes=tuple(notes))


def _weight_dtype(value: Any, spec: Any) -> str:
    from hf_gpu_estimator.memory.weights import checkpoint_float_dtype
    from hf_gpu_estimator.workload import normalize_dtype

    if value is None or str(value) == "auto":
        return checkpoint_float_dtype(spec)  # transformers 5 loads dtype="auto" by default
    return normalize_dtype("dtype", value)


def _quant(config: Any, spec: Any) -> tuple[str, float]:
    from hf_gpu_estimator.quantization import linear_bits_per_weight

    if config is None:
        if spec.quantization is not None:
            from hf_gpu_estimator.memory.weights import _checkpoint_quantization

            quant = _checkpoint_quantization(spec)
            if quant != "none":
                group = spec.quantization.group_size or 128
                return quant, linear_bits_per_weight(quant, group_size=group)
        return "none", 0.0
    data = config if isinstance(config, Mapping) else (config.to_dict() if hasattr(config, "to_dict") else vars(config))
    if data.get("load_in_4bit"):
        quant = str(data.get("bnb_4bit_quant_type") or "nf4")
    elif data.get("load_in_8bit"):
        quant = "int8"
    else:
        method = str(data.get("quant_method", "")).lower()
        bits = data.get("bits")
        quant = f"{method}-{bits}bit" if method in ("gptq", "awq") and bits else method or "none"
    return quant, linear_bits_per_weight(quant, group_size=int(data.get("group_size") or 128))


def _group_of(name: str) -> str:
    """accelerate's granularity: a decoder block (``model.layers.3``) or a leaf module (``model.embed_tokens``)."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:-1]) or name


def _model_order(group: str) -> tuple[int, int, str]:
    parts = group.split(".")
    index = next((int(p) for p in parts if p.isdigit()), None)
    if index is not None:
        return (1, index, group)
    if any(w in group for w in ("embed", "wte", "wpe", "word_embeddings")):
        return (0, 0, group)
    if any(w in group for w in ("lm_head", "output", "score")):
        return (3, 0, group)
    return (2, 0, group)


def _module_sizes(spec: Any, dtype: str, quant: str, bits: float, notes: list[str]) -> dict[str, int]:
    """Bytes per placement group, in model order, from the spec's tensors or its per-layer counts."""
    from hf_gpu_estimator.memory.terms import BYTES
    from hf_gpu_estimator.memory.weights import QUANTIZED_ROLES
    from hf_gpu_estimator.sources.headers import role_of

    per_param = BYTES[dtype]
    groups: dict[str, int] = {}
    if spec.tensors:
        for t in spec.tensors:
            group = _group_of(t.name)
            if t.dtype not in ("F32", "F16", "BF16"):
                nbytes = t.nbytes  # packed/quantized or integer tensors keep their stored size
            elif quant != "none" and len(t.shape) == 2 and role_of(t.name) in QUANTIZED_ROLES and group[-1:].isdigit():
                nbytes = int(t.numel * bits / 8)
            else:
                nbytes = t.numel * per_param
            groups[group] = groups.get(group, 0) + nbytes
        # Headers list tensors alphabetically; accelerate places modules in definition order.
        return dict(sorted(groups.items(), key=lambda kv: _model_order(kv[0])))
    arch = spec.architecture
    counts = spec.parameters
    if arch is None:
        notes.append("no layer shapes: the model is placed as one block")
        return {"": counts.total * per_param}
    layers = arch.num_layers
    embed, head = counts.embedding, counts.lm_head
    quantized = sum(counts.by_role.get(r, 0) for r in QUANTIZED_ROLES)
    other = counts.total - embed - head - quantized
    final_norm = min(other, arch.hidden_size * (2 if arch.norm == "layernorm" else 1))
    layer_other = (other - final_norm) / layers
    layer_quant = quantized / layers
    layer_bytes = int(layer_quant * (bits / 8 if quant != "none" else per_param) + layer_other * per_param)
    notes.append("per-layer sizes from the config (no safetensors headers): layers taken as equal in size")
    groups["model.embed_tokens"] = embed * per_param
    for i in range(layers):
        groups[f"model.layers.{i}"] = layer_bytes
    groups["model.norm"] = final_norm * per_param
    if head:
        groups["lm_head"] = head * per_param
    return groups


def _devices(max_memory: Mapping[Any, Any] | None, gpu: Any, device_memory_bytes: int | None, num_devices: int | None,
             notes: list[str]) -> tuple[dict[int | str, int], int | None]:
    """GPU index -> bytes available for weights, and the CPU's."""
    from hf_gpu_estimator.integrations._core import resolve_device_memory
    from hf_gpu_estimator.memory.overhead import CUDA_CONTEXT_BYTES

    if num_devices is not None and (isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1):
        raise InvalidArgumentError("num_devices", num_devices, "an integer >= 1")
    gpus: dict[int | str, int] = {}
    cpu: int | None = None
    if max_memory:
        for key, value in max_memory.items():
            device = _device_key(key)
            if isinstance(device, int):
                gpus[device] = _size(value, "max_memory")
            elif device == "cpu":
                cpu = _size(value, "max_memory")
        if gpus:
            return gpus, cpu
    if gpu is not None or device_memory_bytes is not None:
        total, _source = resolve_device_memory(gpu, device_memory_bytes)
        for i in range(num_devices or 1):
            gpus[i] = int((total - CUDA_CONTEXT_BYTES) * 0.9)
    else:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                _free, total = torch.cuda.mem_get_info(i)
                gpus[i] = int((total - CUDA_CONTEXT_BYTES) * 0.9)
        else:
            notes.append("no CUDA device visible and neither gpu= nor device_memory_bytes= given: CPU only")
    if cpu is None:
        try:
            import psutil

            cpu = int(psutil.virtual_memory().available)
        except ImportError:
            cpu = None
    return gpus, cpu


def _place(groups: Mapping[str, int], device_map: Any, gpus: Mapping[int | str, int], cpu: int | None,
           notes: list[str]) -> dict[str, int | str]:
    names = list(groups)
    if isinstance(device_map, Mapping):
        keys = sorted(device_map, key=len, reverse=True)
        out: dict[str, int | str] = {}
        for name in names:
            match = next((k for k in keys if k == "" or name == k or name.startswith(k + ".")), None)
            if match is None:
                notes.append(f"{name} is not in device_map: placed on cpu (transformers raises for this)")
                out[name] = "cpu"
            else:
                out[name] = _device_key(device_map[match])
        return out
    if device_map is None or (not isinstance(device_map, str) or device_map not in ("auto", "balanced",
                                                                                     "balanced_low_0", "sequential")):
        target = 0 if device_map is None else _device_key(device_map)
        if device_map is None:
            notes.append("device_map=None: loaded on the CPU, then model.to('cuda') puts everything on cuda:0")
        return dict.fromkeys(names, target)
    order = sorted(d for d in gpus if isinstance(d, int))
    budgets = {d: gpus[d] for d in order}
    if device_map != "sequential" and len(order) > 1:
        # accelerate.get_balanced_memory: an even share per GPU plus room for the largest layer.
        total = sum(groups.values())
        largest = max(groups.values())
        share = total / len(order) + largest
        for i, d in enumerate(order):
            if device_map == "balanced_low_0" and i == 0:
                continue
            budgets[d] = min(budgets[d], int(share))
        if device_map == "balanced_low_0":
            budgets[order[0]] = min(gpus[order[0]], largest)
    targets: list[int | str] = [*order, "cpu", "disk"]
    limits = {**budgets, "cpu": cpu if cpu is not None else float("inf"), "disk": float("inf")}
    out = {}
    index, filled = 0, 0
    for name in names:
        size = groups[name]
        while filled + size > limits[targets[index]] and targets[index] != "disk":
            index, filled = index + 1, 0
        out[name] = targets[index]
        filled += size
    return out
