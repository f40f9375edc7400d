"""``hfge estimate``: memory per device for a workload (``--exact`` traces, ``--compare`` shows both)."""

from __future__ import annotations

import argparse
from typing import Any

from hf_gpu_estimator.cli._common import (
    add_command,
    add_format_arg,
    add_model_args,
    emit,
    message,
    print_sections,
    read_spec,
)
from hf_gpu_estimator.cli.workload_flags import add_workload_args, workload_kwargs

EPILOG = """examples:
  hfge estimate meta-llama/Llama-2-7b-hf
  hfge estimate meta-llama/Llama-2-7b-hf --task training --batch-size 4 --gpu A100-80GB --plot memory.png
  hfge estimate meta-llama/Llama-2-13b-hf --format markdown      # paste into an issue or a model card
  hfge estimate mistralai/Mistral-7B-v0.1 --task training --method qlora --batch-size 4 \\
      --seq-len 2048 --gradient-checkpointing --gpu RTX-4090
  hfge estimate Qwen/Qwen2.5-7B --task training --precision bf16-mixed --num-gpus 8 --strategy zero3 --format json
"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "estimate", run, help="memory per device for a workload", epilog=EPILOG)
    add_model_args(p)
    add_workload_args(p)
    p.add_argument("--gpu", help="check against a GPU from the catalog (hfge gpus)")
    p.add_argument("--exact", action="store_true", help="trace the real transformers code on fake tensors")
    p.add_argument("--compare", action="store_true",
                   help="analytic and exact side by side, with the difference per component and in total")
    add_calibration_arg(p)
    add_format_arg(p)
    p.add_argument("--plot", metavar="PNG", help="also save a stacked-bar chart of the breakdown against the "
                                                 "GPUs' capacity (needs the [plot] extra: matplotlib)")


def add_calibration_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", metavar="DEVICE",
                   help="take reserved/CUDA-context overheads from this calibrated device ('NVIDIA H200'); "
                        "'off' to ignore the calibration --gpu would pick")


def calibration_arg(args: argparse.Namespace) -> Any:
    """``--calibration`` as :func:`~hf_gpu_estimator.estimate` takes it: a name, ``False`` (off) or ``None``."""
    value = getattr(args, "calibration", None)
    if value is None:
        return None
    return False if value.strip().lower() in ("off", "none", "no") else value


def run(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.estimator import estimate

    if args.compare:
        return run_compare(args)
    spec = read_spec(args)
    est = estimate(spec, gpu=args.gpu, mode="exact" if args.exact else "analytic", calibration=calibration_arg(args),
                   **workload_kwargs(args))
    if args.format == "json":
        emit(est.to_dict(), "json")
    else:
        from hf_gpu_estimator.hardware import get_gpu
        from hf_gpu_estimator.report import COMMON_GPUS, estimate_sections
        from hf_gpu_estimator.suggest import suggest, suggestion_target

        gpus = (est.gpu,) if est.gpu is not None else tuple(get_gpu(g) for g in COMMON_GPUS)
        target = suggestion_target(est, gpus)
        tips = suggest(est, target) if target is not None else ()
        print_sections(estimate_sections(est, gpus=gpus, suggestions=tips, suggestions_for=target), args.format)
    if args.plot:
        from hf_gpu_estimator.report import COMMON_GPUS

        path = est.plot(args.plot, gpus=(args.gpu,) if args.gpu else COMMON_GPUS)
        message(f"plot saved to {path}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.exact import compare
    from hf_gpu_estimator.report import compare_sections

    spec = read_spec(args)
    kwargs = workload_kwargs(args)
    cal = calibration_arg(args)
    analytic = estimate(spec, gpu=args.gpu, calibration=cal, **kwargs)
    exact = estimate(spec, gpu=args.gpu, calibration=cal, mode="exact", **kwargs)
    diff = compare(analytic.memory, exact.memory)
    if args.format == "json":
        a, e = analytic.to_dict(), exact.to_dict()
        emit({"model": a["model"], "workload": a["workload"], "analytic": a["memory"], "exact": e["memory"],
              "difference": diff, "assumptions": {"analytic": a["assumptions"], "exact": e["assumptions"]}}, "json")
        return 0
    print_sections(compare_sections(spec, analytic, exact, diff), args.format)
    return 0
