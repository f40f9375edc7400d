"""``hfge estimate``: memory per device for a workload (``--exact`` traces, ``--compare`` shows both)."""

from __future__ import annotations

import argparse
from typing import Any

from hf_gpu_estimator.cli._common import (
    add_command,
    add_device_args,
    add_format_arg,
    add_gpu_arg,
    add_model_args,
    device_gpus,
    emit,
    free_memory_arg,
    message,
    print_sections,
    read_spec,
    resolve_gpus,
    split_list,
)
from hf_gpu_estimator.cli.workload_flags import add_workload_args, explicit_workload_kwargs, workload_kwargs

EPILOG = """examples:
  hfge estimate meta-llama/Llama-2-7b-hf
  hfge estimate meta-llama/Llama-2-7b-hf --task training --batch-size 4 --gpu A100-80GB --plot memory.png
  hfge estimate meta-llama/Llama-2-13b-hf --format markdown      # paste into an issue or a model card
  hfge estimate mistralai/Mistral-7B-v0.1 --task training --method qlora --batch-size 4 \\
      --seq-len 2048 --gradient-checkpointing --gpu RTX-4090
  hfge estimate Qwen/Qwen2.5-7B --task training --precision bf16-mixed --num-gpus 8 --strategy zero3 --format json
  hfge estimate --config axolotl.yml --gpu RTX-4090      # model and workload from a training config
  hfge estimate --config sft.json --config accelerate.yaml --config ds_zero3.json
"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "estimate", run, help="memory per device for a workload", epilog=EPILOG)
    add_model_args(p, optional=True)
    add_workload_args(p)
    p.add_argument("--config", action="append", metavar="FILE",
                   help="a training config (axolotl or LLaMA-Factory YAML, torchtune or LitGPT config, TRL / "
                        "TrainingArguments JSON, accelerate config, DeepSpeed JSON); repeat to combine; flags "
                        "given on the command line win")
    add_gpu_arg(p, "check against GPUs from the catalog (hfge gpus); default RTX-4090, A100-80GB, H100-SXM-80GB")
    p.add_argument("--exact", action="store_true", help="trace the real transformers code on fake tensors")
    p.add_argument("--compare", action="store_true",
                   help="analytic and exact side by side, with the difference per component and in total")
    add_device_args(p)
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
    from hf_gpu_estimator.constants import COMMON_GPUS
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.hardware import get_gpu

    if args.compare:
        return run_compare(args)
    gpus = device_gpus(args)
    kwargs = config_workload_kwargs(args)
    dtypes = split_list("dtype", args.dtype) if args.dtype else (None,)
    quants = split_list("quantization", args.quantization) if args.quantization else (None,)
    spec = read_spec(args)
    targets = gpus or tuple(get_gpu(g) for g in COMMON_GPUS)
    if len(dtypes) > 1 or len(quants) > 1:
        return run_grid(args, spec, kwargs, dtypes, quants, targets)
    est = estimate(spec, gpu=gpus or None, mode="exact" if args.exact else "analytic",
                   calibration=calibration_arg(args), free_memory_bytes=free_memory_arg(args), **kwargs)
    from hf_gpu_estimator.report import estimate_sections
    from hf_gpu_estimator.suggest import suggest, suggestion_target

    target = suggestion_target(est, targets)
    tips = suggest(est, target) if target is not None else ()
    if args.format == "json":
        emit(est.to_dict(gpus=targets, suggestions=tips), "json")
    else:
        print_sections(estimate_sections(est, gpus=targets, suggestions=tips, suggestions_for=target), args.format)
    if args.plot:
        path = est.plot(args.plot, gpus=targets)
        message(f"plot saved to {path}")
    return 0


def config_workload_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The workload keywords: from ``--config`` files (their model too, when MODEL is not given), with the flags
    given on the command line winning; keys the files hold that nothing reads are reported on stderr."""
    from hf_gpu_estimator.errors import InvalidArgumentError

    if not getattr(args, "config", None):
        if args.model is None:
            raise InvalidArgumentError("model", None, "a Hub id, a local path, or --config FILE")
        return workload_kwargs(args)
    from hf_gpu_estimator.sources.recipes import merge_recipes, read_recipe

    recipe = merge_recipes(read_recipe(path) for path in args.config)
    if args.model is None:
        if recipe.model is None:
            raise InvalidArgumentError("model", None, f"a Hub id or path: the {recipe.kind} config names no model")
        args.model = recipe.model
    if recipe.unknown:
        message(f"{recipe.kind} config: not understood, ignored: {', '.join(recipe.unknown)}")
    for note in recipe.notes:
        message(f"{recipe.kind} config: {note}")
    return {**workload_kwargs(args), **recipe.options, **explicit_workload_kwargs(args)}


def run_grid(args: argparse.Namespace, spec: Any, kwargs: dict[str, Any], dtypes: tuple[str | None, ...],
             quants: tuple[str | None, ...], gpus: tuple[Any, ...]) -> int:
    """``--dtype a,b`` / ``--quantization x,y``: one estimate per combination, side by side."""
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.report import grid_sections

    ests = [estimate(spec, mode="exact" if args.exact else "analytic", calibration=calibration_arg(args),
                     **{**kwargs, "dtype": d, "quantization": q}) for d in dtypes for q in quants]
    if args.format == "json":
        first = ests[0].to_dict(gpus=gpus)
        emit({"model": first["model"], "estimates": [e.to_dict(gpus=gpus) for e in ests]}, "json")
    else:
        print_sections(grid_sections(ests, gpus), args.format)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.exact import compare
    from hf_gpu_estimator.report import compare_sections

    gpus = resolve_gpus(args.gpu)
    gpu = gpus[0] if len(gpus) == 1 else None
    kwargs = config_workload_kwargs(args)
    spec = read_spec(args)
    cal = calibration_arg(args)
    analytic = estimate(spec, gpu=gpu, calibration=cal, **kwargs)
    exact = estimate(spec, gpu=gpu, calibration=cal, mode="exact", **kwargs)
    diff = compare(analytic.memory, exact.memory)
    if args.format == "json":
        a, e = analytic.to_dict(), exact.to_dict()
        emit({"model": a["model"], "workload": a["workload"], "analytic": a["memory"], "exact": e["memory"],
              "difference": diff.to_dict(), "assumptions": {"analytic": a["assumptions"], "exact": e["assumptions"]}},
             "json")
        return 0
    print_sections(compare_sections(spec, analytic, exact, diff), args.format)
    return 0
