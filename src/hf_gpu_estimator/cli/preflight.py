"""``hfge preflight``: will an accelerate-launched training run fit, checked before ``accelerate launch``."""

from __future__ import annotations

import argparse
from typing import Any

from hf_gpu_estimator.cli._common import add_command, add_format_arg, add_model_args, emit, finite_float, message
from hf_gpu_estimator.cli.workload_flags import add_workload_args, explicit_workload_kwargs, workload_kwargs

EPILOG = """examples:
  hfge preflight --accelerate-config ~/.cache/huggingface/accelerate/default_config.yaml \\
      meta-llama/Llama-2-7b-hf --batch-size 4 --seq-len 2048 --gpu A100-80GB
  hfge preflight --accelerate-config fsdp.yaml Qwen/Qwen2.5-7B --device-memory-gib 24 --format json

The config gives the devices, strategy, offload, mixed precision and gradient accumulation;
a workload flag given explicitly wins over it. Exit status 0: fits, 1: does not fit.
"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "preflight", run, help="will an accelerate-launched training run fit the GPU?",
                    epilog=EPILOG)
    p.add_argument("--accelerate-config", required=True, metavar="FILE",
                   help="an `accelerate config` YAML file (distributed_type, num_processes, mixed_precision ...)")
    add_model_args(p)
    add_workload_args(p)
    p.set_defaults(task="training")
    device = p.add_mutually_exclusive_group()
    device.add_argument("--gpu", help="the GPU to check against (catalog name); default: the local CUDA device")
    device.add_argument("--device-memory-gib", type=finite_float(0, inclusive=False), help="the device's memory in GiB")
    add_format_arg(p, ("table", "json"))


def run(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.constants import GiB
    from hf_gpu_estimator.errors import InvalidArgumentError
    from hf_gpu_estimator.integrations._core import evaluate
    from hf_gpu_estimator.integrations.accelerate import workload_from_accelerate_config
    from hf_gpu_estimator.sources import inspect_model

    if args.device_memory_gib is not None and args.device_memory_gib <= 0:
        raise InvalidArgumentError("--device-memory-gib", args.device_memory_gib, "a number > 0")
    if args.gpu is not None:  # a bad name is a bad argument here (exit 2), before the config is read
        from hf_gpu_estimator.hardware import get_gpu

        if "," in args.gpu:
            raise InvalidArgumentError("gpu", args.gpu, "one GPU: an accelerate launch runs on one device type",
                                       hint="check each type in its own command, or compare them with hfge estimate "
                                            f"--gpu {args.gpu}")
        get_gpu(args.gpu)
    from_config, notes = workload_from_accelerate_config(args.accelerate_config)
    kwargs = {**workload_kwargs(args), **from_config, **explicit_workload_kwargs(args, task="training")}
    spec = inspect_model(args.model, revision=args.revision, token=args.token)
    memory = int(args.device_memory_gib * GiB) if args.device_memory_gib is not None else None
    result = evaluate(spec, workload_kwargs=kwargs, gpu=args.gpu, device_memory_bytes=memory, notes=tuple(notes))
    if result.status == "failed":
        message(f"error: {result.error}")
        return 1
    if result.status == "skipped":
        message("error: no device to compare with: pass --gpu NAME or --device-memory-gib N")
        return 2
    if args.format == "json":
        emit({
            "status": result.status, "fits": result.fits, "required_bytes": result.required_bytes,
            "available_bytes": result.available_bytes, "budget_bytes": result.budget_bytes,
            "shortfall_bytes": result.shortfall_bytes, "device_source": result.device_source,
            "workload": result.estimate.workload.to_dict() if result.estimate else None,
            "suggestions": [{"key": s.key, "title": s.title, "options": dict(s.options),
                             "device_total_bytes": s.device_total_bytes, "how": s.how} for s in result.suggestions],
            "message": result.message, "notes": notes,
        }, "json")  # fmt: skip
    else:
        emit(result.message, "table")
    return 0 if result.status == "fits" else 1
