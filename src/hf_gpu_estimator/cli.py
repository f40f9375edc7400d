"""Command line: ``hfge estimate | inspect | gpus | plan``. Each command parses, calls the API, renders."""

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


EPILOG_PLAN = """examples:
  hfge plan meta-llama/Llama-3.1-8B --gpu H100-SXM-80GB --seq-len 1024 --new-tokens 256
  hfge plan meta-llama/Llama-3.1-70B --gpu A100-80GB-SXM --max-model-len 8192 --format json
  hfge plan meta-llama/Llama-3.1-8B --cheapest --request-rate 5 --input-tokens 1024 --output-tokens 256 --tpot-ms 50
  hfge plan Qwen/Qwen2.5-7B --cheapest --task training --method lora --token-budget 2e9 --deadline-hours 24
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
                     epilog="commands: estimate, inspect, gpus, plan. 'hfge COMMAND --help' for examples.\n"
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

    pl = sub.add_parser("plan", help="what fits on a GPU, vLLM serving capacity, speed, cost; or the cheapest GPU",
                        epilog=EPILOG_PLAN, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(pl)
    _add_workload_args(pl)
    pl.add_argument("--gpu", help="a GPU from the catalog (hfge gpus); required unless --cheapest")
    pl.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM's share of device memory (0.9)")
    pl.add_argument("--max-model-len", type=_positive_int, help="vLLM context length (default: the model's maximum)")
    pl.add_argument("--cheapest", action="store_true", help="rank GPU type x count across the catalog by cost")
    pl.add_argument("--request-rate", type=float, help="requests per second (--cheapest serving)")
    pl.add_argument("--input-tokens", type=_positive_int, help="mean prompt tokens per request (--cheapest)")
    pl.add_argument("--output-tokens", type=_positive_int, help="mean generated tokens per request (--cheapest)")
    pl.add_argument("--tpot-ms", type=float, help="p50 time-per-output-token target in ms (--cheapest)")
    pl.add_argument("--ttft-ms", type=float, help="p50 time-to-first-token target in ms (--cheapest)")
    pl.add_argument("--token-budget", type=float, help="training tokens (--cheapest with --task training)")
    pl.add_argument("--deadline-hours", type=float, help="training deadline (--cheapest with --task training)")
    pl.add_argument("--format", choices=("table", "json"), default="table")

    gpus = sub.add_parser("gpus", help="the GPU catalog",
                          epilog="examples:\n  hfge gpus\n  hfge gpus --vendor amd --min-memory-gib 64",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    gpus.add_argument("--vendor", help="nvidia, amd, intel or apple")
    gpus.add_argument("--min-memory-gib", type=float, help="only GPUs with at least this much usable memory")
    gpus.add_argument("--format", choices=("table", "json"), default="table")
    _add_preflight_parser(sub)
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
    if args.command == "plan":
        return _run_plan(args)
    if args.command == "preflight":
        return _run_preflight(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands


def _run_plan(args: argparse.Namespace) -> int:
    from hf_gpu_estimator import planner
    from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError
    from hf_gpu_estimator.estimate import workload_from_kwargs
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator.sources import inspect_model

    spec = inspect_model(args.model, revision=args.revision, token=args.token)
    work = workload_from_kwargs(_workload_kwargs(args))
    if args.cheapest:
        if work.is_training:
            if args.token_budget is None:
                raise InvalidArgumentError("token_budget", None, "a token count (--token-budget 2e9)")
            result: Any = planner.cheapest_training(spec, work, token_budget=args.token_budget,
                                                    deadline_hours=args.deadline_hours)
        else:
            missing = [f for f in ("request_rate", "input_tokens", "output_tokens") if getattr(args, f) is None]
            if missing:
                raise InvalidArgumentError(missing[0], None, "a value: --cheapest serving needs --request-rate, "
                                                             "--input-tokens and --output-tokens")
            result = planner.cheapest_serving(spec, work, request_rate_per_s=args.request_rate,
                                              input_tokens=args.input_tokens, output_tokens=args.output_tokens,
                                              tpot_ms=args.tpot_ms, ttft_ms=args.ttft_ms,
                                              gpu_memory_utilization=args.gpu_memory_utilization)
        _emit(result.to_dict() if args.format == "json" else _cheapest_table(result), args.format)
        return 0
    if args.gpu is None:
        raise ConflictingOptionsError("gpu", None, "is required", fix="pass --gpu NAME, or --cheapest to rank the catalog")
    result = planner.plan(spec, work, get_gpu(args.gpu), gpu_memory_utilization=args.gpu_memory_utilization,
                          max_model_len=args.max_model_len)
    _emit(result.to_dict() if args.format == "json" else _plan_table(result), args.format)
    return 0


def _plan_table(p: Any) -> str:
    from hf_gpu_estimator.report import _table

    gib = 1 << 30
    rows: list[tuple[str, str]] = [
        ("gpu", f"{p.gpu.name} ({p.gpu.usable_memory_bytes / gib:.1f} GiB usable)"),
        ("fits", f"{'yes' if p.fits else 'no'} ({p.device_total_bytes / gib:.2f} GiB per device)"),
        ("max batch size", str(p.max_batch_size)),
        ("max seq len", str(p.max_seq_len)),
        ("min GPUs", p.min_gpus.description if p.min_gpus else "none tried fits"),
    ]
    if p.serving is not None:
        s = p.serving
        rows += [("vLLM KV cache", f"{s.kv_cache_tokens:,} tokens ({s.kv_pool_bytes / gib:.1f} GiB, {s.num_blocks:,} blocks)"),
                 ("max concurrent seqs", f"{s.max_concurrent_sequences} at max_model_len {s.max_model_len:,}"),
                 ("largest max_model_len", f"{s.largest_max_model_len:,}")]
    sp = p.speed
    if sp is not None and hasattr(sp, "tpot_seconds"):
        rows += [("TTFT", f"{sp.ttft_seconds * 1e3:.1f} ms ({sp.prefill_bound}-bound)"),
                 ("TPOT", f"{sp.tpot_seconds * 1e3:.2f} ms ({sp.decode_bound}-bound)"),
                 ("decode", f"{sp.decode_tokens_per_s:,.0f} tokens/s at batch {sp.batch_size}")]
    elif sp is not None:
        rows += [("training", f"{sp.tokens_per_s:,.0f} tokens/s, {sp.step_seconds:.2f} s/step")]
    if p.hourly_usd is not None:
        cost = f"${p.hourly_usd:.2f}/h"
        if p.usd_per_million_output_tokens is not None:
            cost += f", ${p.usd_per_million_output_tokens:.2f} per 1M output tokens"
        rows.append(("cost", cost))
    out = _table(rows)
    if p.notes:
        out += "\n" + "\n".join(f"note: {n}" for n in p.notes)
    return out


def _cheapest_table(result: Any) -> str:
    from hf_gpu_estimator.report import _table

    rows = []
    for o in result.options:
        d = o.to_dict()
        if "tpot_ms" in d:
            rows.append((o.gpu, str(o.num_gpus), f"tp{o.tp}" + (f" pp{o.pp}" if o.pp > 1 else ""), str(o.replicas),
                         str(o.batch_size), f"{d['tpot_ms']:.1f}", f"{d['ttft_ms']:.0f}", f"${o.hourly_usd:.2f}",
                         f"${o.usd_per_million_output_tokens:.3f}"))
        else:
            rows.append((o.gpu, str(d["num_gpus"]), str(d["strategy"]), f"{d['tokens_per_s']:,.0f}",
                         f"{o.hours:.1f}", f"${o.hourly_usd:.2f}", f"${o.total_usd:,.0f}"))
    if rows and len(rows[0]) == 9:
        header: tuple[str, ...] = ("gpu", "gpus", "split", "replicas", "batch", "TPOT ms", "TTFT ms", "$/hour",
                                   "$/1M out")
    else:
        header = ("gpu", "gpus", "strategy", "tokens/s", "hours", "$/hour", "total $")
    out = _table(rows, header=header)
    if result.skipped:
        out += f"\nskipped {len(result.skipped)} GPU types:"
        out += "".join(f"\n  {s.gpu}: {s.reason}" for s in result.skipped)
    return out


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



# --- preflight (integrations): an accelerate config + a model, checked before `accelerate launch` ---

EPILOG_PREFLIGHT = """examples:
  hfge preflight --accelerate-config ~/.cache/huggingface/accelerate/default_config.yaml \\
      meta-llama/Llama-2-7b-hf --batch-size 4 --seq-len 2048 --gpu A100-80GB
  hfge preflight --accelerate-config fsdp.yaml Qwen/Qwen2.5-7B --device-memory-gib 24 --format json

The config gives the devices, strategy, offload, mixed precision and gradient accumulation;
a workload flag given explicitly wins over it. Exit status 0: fits, 1: does not fit.
"""


def _add_preflight_parser(sub: Any) -> None:
    pre = sub.add_parser("preflight", help="will an accelerate-launched training run fit the GPU?",
                         epilog=EPILOG_PREFLIGHT, formatter_class=argparse.RawDescriptionHelpFormatter)
    pre.add_argument("--accelerate-config", required=True, metavar="FILE",
                     help="an `accelerate config` YAML file (distributed_type, num_processes, mixed_precision ...)")
    _add_model_args(pre)
    _add_workload_args(pre)
    pre.set_defaults(task="training")
    device = pre.add_mutually_exclusive_group()
    device.add_argument("--gpu", help="the GPU to check against (catalog name); default: the local CUDA device")
    device.add_argument("--device-memory-gib", type=float, help="the device's memory in GiB")
    pre.add_argument("--format", choices=("table", "json"), default="table")


def _run_preflight(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.errors import InvalidArgumentError
    from hf_gpu_estimator.integrations._core import evaluate
    from hf_gpu_estimator.integrations.accelerate import workload_from_accelerate_config
    from hf_gpu_estimator.sources import inspect_model

    if args.device_memory_gib is not None and args.device_memory_gib <= 0:
        raise InvalidArgumentError("--device-memory-gib", args.device_memory_gib, "a number > 0")
    from_config, notes = workload_from_accelerate_config(args.accelerate_config)
    flags = _workload_kwargs(args)
    plain = _Parser(prog="hfge preflight")
    _add_workload_args(plain)
    defaults = plain.parse_args([])
    defaults.task = "training"
    explicit = {k: v for k, v in flags.items() if v != getattr(defaults, k, None)}
    kwargs = {**flags, **from_config, **explicit}
    spec = inspect_model(args.model, revision=args.revision, token=args.token)
    memory = int(args.device_memory_gib * (1 << 30)) if args.device_memory_gib is not None else None
    result = evaluate(spec, workload_kwargs=kwargs, gpu=args.gpu, device_memory_bytes=memory, notes=tuple(notes))
    if result.status == "failed":
        print(f"hfge: error: {result.error}", file=sys.stderr)
        return 1
    if result.status == "skipped":
        print("hfge: error: no device to compare with: pass --gpu NAME or --device-memory-gib N", file=sys.stderr)
        return 2
    if args.format == "json":
        _emit({
            "status": result.status, "fits": result.fits, "required_bytes": result.required_bytes,
            "available_bytes": result.available_bytes, "budget_bytes": result.budget_bytes,
            "shortfall_bytes": result.shortfall_bytes, "device_source": result.device_source,
            "workload": result.estimate.workload.to_dict() if result.estimate else None,
            "suggestions": [{"key": s.key, "title": s.title, "options": dict(s.options),
                             "device_total_bytes": s.device_total_bytes, "how": s.how} for s in result.suggestions],
            "message": result.message, "notes": notes,
        }, "json")  # fmt: skip
    else:
        _emit(result.message, "table")
    return 0 if result.status == "fits" else 1

if __name__ == "__main__":
    raise SystemExit(main())
