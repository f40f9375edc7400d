"""Command line: ``hfge estimate | inspect | gpus``. Each command parses, calls the API, renders."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

DEBUG_ENV = "HFGE_DEBUG"

EPILOG_ESTIMATE = """examples:
  hfge estimate meta-llama/Llama-2-7b-hf
  hfge estimate mistralai/Mistral-7B-v0.1 --task training --method qlora --batch-size 4 \\
      --seq-len 2048 --gradient-checkpointing --gpu RTX-4090
  hfge estimate Qwen/Qwen2.5-7B --task training --precision bf16-mixed --num-gpus 8 --strategy zero3 --format json
"""


class _Parser(argparse.ArgumentParser):
    """argparse that prints one line (and exits 2) on bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Hub id (org/name), local folder, .safetensors file or config.json")
    p.add_argument("--revision", help="Hub branch, tag or commit")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")


def _add_workload_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("workload")
    g.add_argument("--task", default="inference", help="inference (default) or training")
    g.add_argument("--method", default="full", help="full (default), lora or qlora")
    g.add_argument("--batch-size", type=_positive_int, default=1, help="sequences per device (default 1)")
    g.add_argument("--seq-len", type=_positive_int, default=1024,
                   help="tokens per sequence (training) or prompt tokens (inference); default 1024")
    g.add_argument("--new-tokens", type=_non_negative_int, default=None,
                   help="tokens generated after the prompt (inference; default 256)")
    g.add_argument("--dtype", help="weight dtype: float32, float16, bfloat16 (default: the checkpoint's)")
    g.add_argument("--precision", help="training precision: 32-true, 16-mixed, bf16-mixed (default), 16-true, bf16-true")
    g.add_argument("--optimizer", default="adamw",
                   help="adamw (default), adamw-8bit, paged-adamw-8bit, adafactor, sgd, sgd-momentum, lion")
    g.add_argument("--gradient-checkpointing", action="store_true", help="recompute each decoder layer in backward")
    g.add_argument("--gradient-accumulation-steps", type=_positive_int, default=1)
    g.add_argument("--attn-implementation", default="sdpa", help="eager, sdpa (default), flash_attention_2")
    g.add_argument("--quantization", help="none, int8, nf4, fp4, fp8, gptq-4bit, awq-4bit, gguf:Q4_K_M ...")
    g.add_argument("--kv-cache-dtype", help="KV cache dtype (default: the compute dtype)")
    g.add_argument("--lora-rank", type=_positive_int, default=16)
    g.add_argument("--lora-alpha", type=_positive_int)
    g.add_argument("--lora-targets", help="comma-separated module names, or all-linear (default q_proj,v_proj)")
    g.add_argument("--num-gpus", type=_positive_int, default=1)
    g.add_argument("--strategy", help="ddp, zero1, zero2, zero3, fsdp, fsdp-grad-op, fsdp-hybrid")
    g.add_argument("--tp", type=_positive_int, default=1, help="tensor-parallel degree")
    g.add_argument("--pp", type=_positive_int, default=1, help="pipeline-parallel degree")
    g.add_argument("--offload-optimizer", action="store_true", help="ZeRO/FSDP optimizer offload to CPU")
    g.add_argument("--offload-params", action="store_true", help="ZeRO-3/FSDP parameter offload to CPU")


def _workload_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "task": args.task, "method": args.method, "batch_size": args.batch_size, "seq_len": args.seq_len,
        "new_tokens": args.new_tokens, "dtype": args.dtype, "precision": args.precision,
        "optimizer": args.optimizer, "gradient_checkpointing": args.gradient_checkpointing,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "attn_implementation": args.attn_implementation, "quantization": args.quantization,
        "kv_cache_dtype": args.kv_cache_dtype, "lora_rank": args.lora_rank, "lora_alpha": args.lora_alpha,
        "lora_targets": args.lora_targets, "num_gpus": args.num_gpus, "strategy": args.strategy,
        "tp": args.tp, "pp": args.pp, "offload_optimizer": args.offload_optimizer,
        "offload_params": args.offload_params,
    }  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hfge", description="How much GPU an LLM job needs, before you launch it.",
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="commands: estimate, inspect, gpus. 'hfge COMMAND --help' for examples.\n"
                            f"Set {DEBUG_ENV}=1 for full tracebacks.")
    from hf_gpu_estimator import __version__

    parser.add_argument("--version", action="version", version=f"hf-gpu-estimator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    est = sub.add_parser("estimate", help="memory per device for a workload", epilog=EPILOG_ESTIMATE,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(est)
    _add_workload_args(est)
    est.add_argument("--gpu", help="check against a GPU from the catalog (hfge gpus)")
    est.add_argument("--exact", action="store_true", help="trace the real transformers code on fake tensors")
    est.add_argument("--format", choices=("table", "json"), default="table")

    ins = sub.add_parser("inspect", help="parameters and layer shapes of a model",
                         epilog="examples:\n  hfge inspect meta-llama/Llama-2-13b-hf\n  hfge inspect ./my-model --format json",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(ins)
    ins.add_argument("--format", choices=("table", "json"), default="table")

    gpus = sub.add_parser("gpus", help="the GPU catalog",
                          epilog="examples:\n  hfge gpus\n  hfge gpus --vendor amd --min-memory-gib 64",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    gpus.add_argument("--vendor", help="nvidia, amd, intel or apple")
    gpus.add_argument("--min-memory-gib", type=float, help="only GPUs with at least this much usable memory")
    gpus.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("hfge: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line, never a traceback, unless asked
        from hf_gpu_estimator.errors import EstimatorError

        if os.environ.get(DEBUG_ENV):
            raise
        code = e.exit_code if isinstance(e, EstimatorError) else 1
        kind = "error" if isinstance(e, EstimatorError) else f"internal error ({type(e).__name__})"
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"hfge: {kind}: {message} (set {DEBUG_ENV}=1 for details)", file=sys.stderr)
        return code


def _run(args: argparse.Namespace) -> int:
    if args.command == "estimate":
        from hf_gpu_estimator.estimate import estimate

        est = estimate(args.model, gpu=args.gpu, revision=args.revision, token=args.token,
                       mode="exact" if args.exact else "analytic", **_workload_kwargs(args))
        _emit(est.to_dict() if args.format == "json" else str(est), args.format)
        return 0
    if args.command == "inspect":
        from hf_gpu_estimator.report import render_spec
        from hf_gpu_estimator.sources import inspect_model

        spec = inspect_model(args.model, revision=args.revision, token=args.token)
        _emit(spec_to_dict(spec) if args.format == "json" else render_spec(spec), args.format)
        return 0
    if args.command == "gpus":
        from hf_gpu_estimator.hardware import list_gpus

        min_bytes = int(args.min_memory_gib * (1 << 30)) if args.min_memory_gib is not None else None
        gpus = list_gpus(vendor=args.vendor, min_memory_bytes=min_bytes)
        if args.format == "json":
            _emit([g.to_dict() for g in gpus], "json")
        else:
            _emit(_gpu_table(gpus), "table")
        return 0
    raise AssertionError(args.command)  # argparse rejects unknown commands


def _emit(payload: Any, fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(str(payload) + "\n")


def spec_to_dict(spec: Any) -> dict[str, Any]:
    import dataclasses

    arch = dataclasses.asdict(spec.architecture) if spec.architecture is not None else None
    return {
        "id": spec.id,
        "parameters": spec.parameters.total,
        "active_parameters": spec.parameters.active,
        "parameters_by_role": dict(spec.parameters.by_role),
        "stored_dtype": spec.stored_dtype,
        "checkpoint_bytes": spec.checkpoint_bytes,
        "checkpoint_bytes_by_dtype": dict(spec.checkpoint_bytes_by_dtype),
        "quantization": dataclasses.asdict(spec.quantization) if spec.quantization else None,
        "architecture": arch,
        "provenance": dict(spec.provenance),
        "revision": spec.revision,
        "source": spec.source_url,
        "assumptions": list(spec.assumptions),
    }


def _gpu_table(gpus: Sequence[Any]) -> str:
    from hf_gpu_estimator.report import _table

    rows = []
    for g in gpus:
        bf16 = g.peak_flops.get("bf16")
        price = f"${g.price_per_hour_usd:.2f}/h" if g.price_per_hour_usd else "-"
        rows.append((g.name, g.vendor, f"{g.usable_memory_bytes / (1 << 30):.1f} GiB",
                     f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s",
                     f"{bf16 / 1e12:.0f} TFLOP/s" if bf16 else "-", price))
    return _table(rows, header=("gpu", "vendor", "memory", "bandwidth", "bf16 dense", "price"))


if __name__ == "__main__":
    raise SystemExit(main())
