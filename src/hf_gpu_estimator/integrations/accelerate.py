"""accelerate: ``preflight(accelerator, model, ...)`` before the training loop, and accelerate config files for the CLI.

Usage (call it before ``accelerator.prepare``, while the model is whole)::

    from hf_gpu_estimator.integrations.accelerate import preflight

    accelerator = Accelerator(mixed_precision="bf16", gradient_accumulation_steps=4)
    preflight(accelerator, model, optimizer, batch_size=8, seq_len=2048, gpu="A100-80GB")
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import accelerate
from accelerate.utils import broadcast_object_list

from hf_gpu_estimator.errors import InvalidArgumentError, MalformedConfigError
from hf_gpu_estimator.integrations._core import (
    DEFAULT_MARGIN,
    MAX_CONFIG_CHARS,
    accelerate_config_options,
    accelerate_precision,
    PreflightResult,
    deepspeed_options,
    describe_model,
    enforce,
    evaluate,
    fsdp_options,
    optimizer_name,
    validate_options,
)

__all__ = ["ACCELERATE_HINTS", "preflight", "workload_from_accelerate_config", "workload_from_accelerator"]

log = logging.getLogger("hf_gpu_estimator.integrations.accelerate")

#: How to apply each suggestion in an accelerate script.
ACCELERATE_HINTS: Mapping[str, str] = {
    "batch_size": "DataLoader(batch_size={batch_size}), Accelerator(gradient_accumulation_steps={gradient_accumulation_steps})",
    "gradient_checkpointing": "model.gradient_checkpointing_enable() before accelerator.prepare",
    "precision": "Accelerator(mixed_precision='bf16')",
    "method": "peft.get_peft_model(model, LoraConfig(...)) (QLoRA: BitsAndBytesConfig(load_in_4bit=True))",
    "optimizer": "bitsandbytes.optim.AdamW8bit",
    "strategy": "accelerate config: distributed_type DEEPSPEED with zero_stage 3, or FSDP FULL_SHARD",
    "offload": "accelerate config: DeepSpeed offload_optimizer_device cpu",
    "num_gpus": "accelerate launch --num_processes {num_gpus} with FSDP/DeepSpeed ZeRO-3",
}  # fmt: skip

def preflight(accelerator: accelerate.Accelerator, model: Any, optimizer: Any = None, *, batch_size: int, seq_len: int,
              gpu: Any = None, device_memory_bytes: int | None = None, on_exceed: str = "warn",
              margin: float = DEFAULT_MARGIN) -> PreflightResult:
    """Estimate the training run's memory per device and warn (or raise) before the first step.

    The estimate runs once, on the main process; the verdict is broadcast so that with
    ``on_exceed="raise"`` every process raises. One line on the main process: "fits" or "skipped"
    through ``accelerator.print``; problems as a warning on the ``hf_gpu_estimator.integrations.accelerate``
    logger. A failing estimate, an unknown ``gpu`` or a ``device_memory_bytes`` below 1 GiB warn
    and return a ``"failed"`` result.

    Reads ``accelerator.state`` (mixed_precision, distributed_type, num_processes, the DeepSpeed
    plugin's zero_stage and offload devices, the FSDP plugin's sharding and cpu_offload),
    ``accelerator.gradient_accumulation_steps``, the model (trainable vs frozen parameters, peft
    adapters, gradient checkpointing) and the optimizer's class.

    Args:
        accelerator: the Accelerator (its state says precision and parallelism).
        model: the model, before ``prepare`` (after it, FSDP/DeepSpeed hold shards; a DDP wrapper
            is unwrapped).
        optimizer: the optimizer (default: AdamW is assumed).
        batch_size: sequences per device per step.
        seq_len: tokens per sequence.
        gpu, device_memory_bytes: the device to compare with (default: the CUDA device; on a
            machine without CUDA the check is skipped).
        on_exceed: ``"warn"`` or ``"raise"`` (PreflightError).
        margin: share of the device kept free.

    Returns:
        The :class:`PreflightResult` (on other processes: the verdict without the estimate).

    Raises:
        PreflightError: it does not fit and ``on_exceed="raise"``.
        InvalidArgumentError: bad arguments.
    """
    validate_options(gpu=gpu, device_memory_bytes=device_memory_bytes, on_exceed=on_exceed, margin=margin)
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(name, value, "an integer >= 1")
    result: PreflightResult | None = None
    if accelerator.is_main_process:
        try:
            inner = accelerator.unwrap_model(model)
            facts = describe_model(inner)
            kwargs, notes = workload_from_accelerator(accelerator, optimizer, trainable_dtype=facts.trainable_dtype)
            kwargs.update(facts.options, batch_size=batch_size, seq_len=seq_len)
            result = evaluate(facts.source, workload_kwargs=kwargs, gpu=gpu, device_memory_bytes=device_memory_bytes,
                              margin=margin, hints=ACCELERATE_HINTS, notes=(*facts.notes, *notes))
        except Exception as e:  # the estimator failing never stops a run
            result = PreflightResult(status="failed", error=f"{type(e).__name__}: {e}",
                                     message=f"hf-gpu-estimator: memory preflight failed ({type(e).__name__}: {e}); "
                                             "the run continues")
    verdict = [(result.status, result.message, result.required_bytes, result.available_bytes) if result else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(verdict, from_process=0)
    status, message, required, available = verdict[0]
    if result is None:
        result = PreflightResult(status=status, message=message, required_bytes=required, available_bytes=available)
    enforce(status, message, on_exceed=on_exceed, log=log, emit=accelerator.is_main_process,
            required_bytes=required, available_bytes=available, say=accelerator.print)
    return result


def workload_from_accelerator(accelerator: accelerate.Accelerator, optimizer: Any = None, *,
                              trainable_dtype: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Workload keywords (but the batch shape and the model's own) from an Accelerator's state, and notes."""
    state = accelerator.state
    notes: list[str] = []
    kwargs: dict[str, Any] = {"task": "training",
                              "precision": accelerate_precision(str(state.mixed_precision), trainable_dtype, notes)}
    steps = getattr(accelerator, "gradient_accumulation_steps", 1)
    if isinstance(steps, int) and steps >= 1:
        kwargs["gradient_accumulation_steps"] = steps
    devices = max(1, int(state.num_processes))
    kind = str(getattr(state.distributed_type, "value", state.distributed_type)).upper()
    if kind == "DEEPSPEED":
        plugin = getattr(state, "deepspeed_plugin", None)
        options, more = _deepspeed_plugin_options(plugin, devices)
    elif kind == "FSDP":
        plugin = getattr(state, "fsdp_plugin", None)
        options, more = _fsdp_plugin_options(plugin, devices)
    else:
        options, more = {"num_gpus": devices}, []
        if devices > 1:
            options["strategy"] = "ddp"
    kwargs.update(options)
    notes.extend(more)
    if optimizer is not None:
        name, note = optimizer_name(optimizer)
        if name is not None:
            kwargs["optimizer"] = name
        if note:
            notes.append(note)
    return kwargs, notes


def _deepspeed_plugin_options(plugin: Any, devices: int) -> tuple[dict[str, Any], list[str]]:
    if plugin is None:
        return deepspeed_options(None, num_gpus=devices)
    config = getattr(plugin, "deepspeed_config", None) or {}
    zero = dict(config.get("zero_optimization") or {})
    # The plugin's own fields fill what the config leaves out (or sets to "auto").
    if not isinstance(zero.get("stage"), int) and getattr(plugin, "zero_stage", None) is not None:
        zero["stage"] = plugin.zero_stage
    for key, attr in (("offload_optimizer", "offload_optimizer_device"), ("offload_param", "offload_param_device")):
        if not (zero.get(key) or {}).get("device") and getattr(plugin, attr, None):
            zero[key] = {"device": getattr(plugin, attr)}
    return deepspeed_options({"zero_optimization": zero}, num_gpus=devices)


def _fsdp_plugin_options(plugin: Any, devices: int) -> tuple[dict[str, Any], list[str]]:
    if plugin is None:
        return fsdp_options("FULL_SHARD", offload=False, num_gpus=devices)
    version = getattr(plugin, "fsdp_version", 1) or 1
    reshard = getattr(plugin, "reshard_after_forward", None)
    if version == 2 or isinstance(reshard, bool):
        sharding = "FULL_SHARD" if reshard in (None, True) else "SHARD_GRAD_OP"
    else:
        sharding = reshard if reshard is not None else getattr(plugin, "sharding_strategy", "FULL_SHARD")
    offload = getattr(plugin, "cpu_offload", False)
    if not isinstance(offload, bool):  # CPUOffload(offload_params=...) or FSDP2's CPUOffloadPolicy
        offload = bool(getattr(offload, "offload_params", True))
    return fsdp_options(sharding, offload=offload, num_gpus=devices)


def workload_from_accelerate_config(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[str]]:
    """Workload keywords from an ``accelerate config`` YAML (or JSON) file, and notes.

    Reads ``distributed_type``, ``num_processes`` (all machines together, as accelerate counts
    them), ``mixed_precision``, ``deepspeed_config`` (``zero_stage``, ``offload_optimizer_device``,
    ``offload_param_device``, ``gradient_accumulation_steps``, or the ``deepspeed_config_file`` it
    names) and ``fsdp_config`` (``fsdp_sharding_strategy``, ``fsdp_offload_params``,
    ``fsdp_version``, ``fsdp_reshard_after_forward``, ``fsdp_activation_checkpointing``).

    Raises:
        InvalidArgumentError: the file cannot be read.
        MalformedConfigError: not YAML (aliases and deep nesting included), or not a mapping.
    """
    from hf_gpu_estimator.errors import InvalidArgumentError
    from hf_gpu_estimator.sources._yaml import YAMLProblem, loads

    file = Path(path).expanduser()
    try:
        with file.open("rb") as f:
            raw = f.read(MAX_CONFIG_CHARS + 1)
    except OSError as e:  # a file named on the command line that is not there: a bad argument (exit 2)
        raise InvalidArgumentError("--accelerate-config", str(file), "a readable accelerate config YAML file",
                                   hint=e.strerror) from e  # fmt: skip
    try:
        data = loads(raw.decode("utf-8"), max_chars=MAX_CONFIG_CHARS, max_depth=16)
    except UnicodeDecodeError as e:
        raise MalformedConfigError(str(file), f"accelerate config {str(file)!r} is not UTF-8 text "
                                   f"(byte {e.start})") from e
    except YAMLProblem as e:
        raise MalformedConfigError(str(file), f"accelerate config {str(file)!r} is not YAML: {e}") from e
    if not isinstance(data, Mapping):
        raise MalformedConfigError(str(file), f"accelerate config {str(file)!r} is not a mapping")
    return accelerate_config_options(data, source=file)
