"""``hfge measure``: run the workload on this machine's device with random weights, compare with the estimates."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any

from hf_gpu_estimator.cli._common import (
    add_command,
    add_format_arg,
    add_model_args,
    emit,
    message,
    positive_int,
    print_sections,
    read_spec,
)
from hf_gpu_estimator.cli.workload_flags import add_workload_args, explicit_workload_kwargs, workload_kwargs

EPILOG = """examples:
  hfge measure Qwen/Qwen2.5-0.5B --task training --batch-size 4 --seq-len 1024 --output qwen-train.json
  hfge measure meta-llama/Llama-2-7b-hf --dtype float16 --batch-size 8 --seq-len 2048 --new-tokens 64
  hfge measure ./tiny/config.json --device cpu --batch-size 1 --seq-len 64 --new-tokens 8

Builds the model from its config.json with random weights (no checkpoint is downloaded), runs
the workload on the device and prints measured vs estimated memory (analytic, and exact when
torch can trace it), each with its error. A CUDA run also adds its overheads (CUDA context,
reserved/allocated) to the device's calibration in the user cache, used by later estimates
for that GPU (--no-calibrate to skip). Exit status 1 when the device cannot hold the workload.
"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "measure", run, epilog=EPILOG,
                    help="run the workload on this machine's device and compare with the estimates")
    add_model_args(p)
    add_workload_args(p)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, mps or cpu")
    p.add_argument("--output", metavar="FILE", help="save the result (model, workload, device, versions, figures) "
                                                    "as JSON")
    p.add_argument("--steps", type=positive_int, default=3,
                   help="training optimizer steps (default 3; tokens/s over the steps after the first)")
    p.add_argument("--no-exact", action="store_true", help="skip the exact-mode trace")
    p.add_argument("--no-calibrate", action="store_true", help="do not add this run to the device calibration")
    add_format_arg(p)


def _device_free_bytes(device: str) -> tuple[int | None, int | None, str]:
    """(free, total, device name) of the device measure will use; free/total None when unknown."""
    import torch

    from hf_gpu_estimator.errors import ConflictingOptionsError

    kind = device.split(":")[0]
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConflictingOptionsError("device", device, "is not available (no CUDA GPU, or torch built without "
                                          "CUDA)", fix="use --device cpu (tiny configs) or 'hfge estimate'")
        dev = torch.device(device)
        free, total = torch.cuda.mem_get_info(dev)
        return int(free), int(total), torch.cuda.get_device_name(dev)
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ConflictingOptionsError("device", device, "is not available", fix="use --device cpu")
        total = int(torch.mps.recommended_max_memory())
        return total - int(torch.mps.driver_allocated_memory()), total, "Apple MPS"
    if kind == "cpu":
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None, None, "cpu"
        return int(free), int(total), "cpu"
    raise ConflictingOptionsError("device", device, "is not a device measure runs on", fix="use cuda, cuda:N, mps or cpu")


def _measure_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run: the workload flags given, the device, the steps."""
    import shlex

    parts = ["hfge", "measure", args.model]
    for key, value in explicit_workload_kwargs(args).items():
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    parts += ["--device", args.device]
    if args.steps != 3:
        parts += ["--steps", str(args.steps)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    import time

    from hf_gpu_estimator.runtime.build import require_torch_stack
    from hf_gpu_estimator.errors import ConflictingOptionsError, MissingDependencyError, PreflightError, TraceError
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.report import gib, measure_sections
    from hf_gpu_estimator.workload import workload_from_kwargs

    require_torch_stack("measure mode")
    other_bytes = None
    if args.device.startswith("cuda"):
        from hf_gpu_estimator.runtime.measure import nvml_used_bytes_before_init

        other_bytes = nvml_used_bytes_before_init()  # before this process creates its CUDA context
    spec = read_spec(args)
    if not spec.config.get("model_type"):
        raise ConflictingOptionsError("model", args.model, "has no config.json to build the model from",
                                      fix="point at a repo or folder with config.json, or use 'hfge estimate'")
    kwargs = workload_kwargs(args)
    work = workload_from_kwargs(kwargs)
    if work.parallelism.num_gpus > 1:
        raise ConflictingOptionsError("num_gpus", work.parallelism.num_gpus, "is not measured (one device per run)",
                                      fix="measure with --num-gpus 1; 'hfge estimate' covers the split")
    analytic = estimate(spec, calibration=False, **kwargs)
    free, total, device_name = _device_free_bytes(args.device)
    cuda = args.device.startswith("cuda")
    need = analytic.memory.device_total_bytes if cuda else analytic.memory.allocated_peak_bytes
    if free is not None and need > free:
        raise PreflightError(
            f"{spec.id} needs about {gib(need)} for this workload (analytic estimate) and {args.device} "
            f"({device_name}) has {gib(free)} free: use 'hfge estimate' (analytic mode), a smaller workload "
            "(--batch-size, --seq-len, --new-tokens) or --device cpu with a smaller config",
            required_bytes=need, available_bytes=free)
    exact = exact_error = None
    if not args.no_exact:
        try:
            exact = estimate(spec, calibration=False, mode="exact", **kwargs)
        except (TraceError, MissingDependencyError) as e:
            exact_error = str(e)
    import torch

    from hf_gpu_estimator.runtime.measure import measure_workload

    try:
        measured = measure_workload(dict(spec.config), work, device=args.device, train_steps=args.steps)
    except torch.OutOfMemoryError as e:
        raise PreflightError(f"out of memory on {args.device} ({device_name}) while measuring: use 'hfge estimate' "
                             "(analytic mode), a smaller workload or --device cpu", required_bytes=need,
                             available_bytes=free) from e
    from hf_gpu_estimator.runtime.measure import DeviceInfo, EstimateFigures, MeasureReport

    nvml_total = None
    if measured.nvml_used_bytes is not None:
        nvml_total = measured.nvml_used_bytes - (other_bytes or 0)
    command = _measure_command(args)
    report = MeasureReport(
        command=command, recorded_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), model_id=spec.id,
        parameters=spec.parameters.total, config=dict(spec.config), workload=work,
        device=DeviceInfo(requested=args.device, name=measured.device_name, total_bytes=total, free_bytes_before=free,
                          other_processes_bytes=other_bytes),
        measured=measured, nvml_process_bytes=nvml_total,
        analytic=EstimateFigures.of(analytic.memory, measured, nvml_total),
        exact=EstimateFigures.of(exact.memory, measured, nvml_total) if exact is not None else None,
        exact_error=exact_error or ("skipped (--no-exact)" if exact is None else None))
    if cuda and not args.no_calibrate:
        from hf_gpu_estimator.calibration import record_measurement

        path = record_measurement(measured, work, source=command, other_processes_bytes=other_bytes)
        report = dataclasses.replace(report, calibration=str(path) if path else None)
        if path:
            message(f"calibration for {measured.device_name} updated: {path}")
    if args.output:
        from pathlib import Path

        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        message(f"result saved to {out}")
    if args.format == "json":
        emit(report.to_dict(), "json")
    else:
        print_sections(measure_sections(report), args.format)
    return 0
