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
  hfge estimate meta-llama/Llama-2-7b-hf --task training --batch-size 4 --gpu A100-80GB --plot memory.png
  hfge estimate meta-llama/Llama-2-13b-hf --format markdown      # paste into an issue or a model card
  hfge estimate mistralai/Mistral-7B-v0.1 --task training --method qlora --batch-size 4 \\
      --seq-len 2048 --gradient-checkpointing --gpu RTX-4090
  hfge estimate Qwen/Qwen2.5-7B --task training --precision bf16-mixed --num-gpus 8 --strategy zero3 --format json
"""

EPILOG_MAIN = """examples:
  hfge estimate meta-llama/Llama-2-7b-hf                      # inference memory, fits on common GPUs
  hfge estimate mistralai/Mistral-7B-v0.1 --task training --method qlora --gpu RTX-4090
  hfge plan meta-llama/Llama-3.1-8B --gpu H100-SXM-80GB      # max batch, vLLM KV cache, speed, cost
  hfge gpus --min-memory-gib 40                               # the GPU catalog
  hfge serve                                                  # the web calculator (pip install 'hf-gpu-estimator[web]')

commands: estimate, inspect, gpus, plan, serve, preflight. 'hfge COMMAND --help' for more examples.
--format table (rich when installed), markdown, text or json on estimate/inspect/gpus/plan.
"""

FORMATS = ("table", "json", "markdown", "text")
FORMAT_HELP = ("table (default; colour with rich when installed), json (the stable contract), "
               "markdown (for issues and model cards), text (plain columns)")

EPILOG_PLAN = """examples:
  hfge plan meta-llama/Llama-3.1-8B --gpu H100-SXM-80GB --seq-len 1024 --new-tokens 256
  hfge plan meta-llama/Llama-3.1-70B --gpu A100-80GB-SXM --max-model-len 8192 --format json
  hfge plan meta-llama/Llama-3.1-8B --cheapest --request-rate 5 --input-tokens 1024 --output-tokens 256 --tpot-ms 50
  hfge plan Qwen/Qwen2.5-7B --cheapest --task training --method lora --token-budget 2e9 --deadline-hours 24
  hfge plan meta-llama/Llama-3.1-8B --eval mmlu,gsm8k,hellaswag --gpu H100-SXM-80GB --engine vllm
  hfge plan mistralai/Mistral-7B-v0.1 --eval open_llm_leaderboard --cheapest
  hfge plan --fleet examples/fleet.yaml --format markdown
"""

class _Parser(argparse.ArgumentParser):
    """argparse that prints one line (and exits 2) on bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_at_least(minimum: int) -> Any:
    """An argparse type: an integer >= ``minimum``, one-line error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _finite_float(minimum: float, *, inclusive: bool) -> Any:
    """An argparse type: a finite number >= (or >) ``minimum``; nan and inf are refused here,
    since ``int(x * GiB)`` on them raises outside the one-line error path."""
    import math

    bound = f"{'>=' if inclusive else '>'} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}")
        return value

    return parse


def _add_model_args(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    p.add_argument("model", nargs="?" if optional else None,
                   help="Hub id (org/name), local folder, .safetensors file or config.json")
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
                     epilog=EPILOG_MAIN + f"\nSet {DEBUG_ENV}=1 for full tracebacks.")
    from hf_gpu_estimator import __version__

    parser.add_argument("--version", action="version", version=f"hf-gpu-estimator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    est = sub.add_parser("estimate", help="memory per device for a workload", epilog=EPILOG_ESTIMATE,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(est)
    _add_workload_args(est)
    est.add_argument("--gpu", help="check against a GPU from the catalog (hfge gpus)")
    est.add_argument("--exact", action="store_true", help="trace the real transformers code on fake tensors")
    _add_estimate_extras(est)
    est.add_argument("--format", choices=FORMATS, default="table", help=FORMAT_HELP)
    est.add_argument("--plot", metavar="PNG", help="also save a stacked-bar chart of the breakdown against the "
                                                   "GPUs' capacity (needs the [plot] extra: matplotlib)")

    ins = sub.add_parser("inspect", help="parameters and layer shapes of a model",
                         epilog="examples:\n  hfge inspect meta-llama/Llama-2-13b-hf\n  hfge inspect ./my-model --format json",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(ins)
    ins.add_argument("--format", choices=FORMATS, default="table", help=FORMAT_HELP)

    pl = sub.add_parser("plan", help="what fits on a GPU, vLLM serving capacity, speed, cost; or the cheapest GPU",
                        epilog=EPILOG_PLAN, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(pl, optional=True)  # --fleet FILE and --eval-list need no MODEL
    _add_workload_args(pl)
    from hf_gpu_estimator import evals_cli

    evals_cli.add_arguments(pl)
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
    pl.add_argument("--format", choices=FORMATS, default="table", help=FORMAT_HELP)

    gpus = sub.add_parser("gpus", help="the GPU catalog",
                          epilog="examples:\n  hfge gpus\n  hfge gpus --vendor amd --min-memory-gib 64",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    gpus.add_argument("--vendor", help="nvidia, amd, intel or apple")
    gpus.add_argument("--min-memory-gib", type=_finite_float(0, inclusive=True), help="only GPUs with at least this much usable memory")
    gpus.add_argument("--format", choices=FORMATS, default="table", help=FORMAT_HELP)

    srv = sub.add_parser("serve", help="the web calculator (Gradio; works offline on the bundled catalog)",
                         epilog="examples:\n  hfge serve\n  hfge serve --port 7861 --host 0.0.0.0\n\n"
                                "needs the [web] extra: pip install 'hf-gpu-estimator[web]'",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    srv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    srv.add_argument("--port", type=_positive_int, default=7860, help="port (default 7860)")
    _add_preflight_parser(sub)
    _add_measure_parser(sub)
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
        return _run_estimate(args)
    if args.command == "inspect":
        from hf_gpu_estimator.report import spec_sections
        from hf_gpu_estimator.sources import inspect_model

        with _reading(args.model):
            spec = inspect_model(args.model, revision=args.revision, token=args.token)
        if args.format == "json":
            _emit(spec_to_dict(spec), "json")
        else:
            _print(spec_sections(spec), args.format)
        return 0
    if args.command == "serve":
        from hf_gpu_estimator.web import serve

        serve(host=args.host, port=args.port)
        return 0
    if args.command == "gpus":
        from hf_gpu_estimator.hardware import list_gpus

        min_bytes = int(args.min_memory_gib * (1 << 30)) if args.min_memory_gib is not None else None
        gpus = list_gpus(vendor=args.vendor, min_memory_bytes=min_bytes)
        if args.format == "json":
            _emit([g.to_dict() for g in gpus], "json")
        else:
            _print(_gpu_sections(gpus), args.format)
        return 0
    if args.command == "plan":
        return _run_plan(args)
    if args.command == "preflight":
        return _run_preflight(args)
    if args.command == "measure":
        return _run_measure(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands


def _run_estimate(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.estimator import estimate

    if args.compare:
        return _run_compare(args)
    with _reading(args.model):
        est = estimate(args.model, gpu=args.gpu, revision=args.revision, token=args.token,
                       mode="exact" if args.exact else "analytic", calibration=_calibration_arg(args),
                       **_workload_kwargs(args))
    if args.format == "json":
        _emit(est.to_dict(), "json")
    else:
        from hf_gpu_estimator.hardware import get_gpu
        from hf_gpu_estimator.report import COMMON_GPUS, estimate_sections
        from hf_gpu_estimator.suggest import suggest, suggestion_target

        gpus = (est.gpu,) if est.gpu is not None else tuple(get_gpu(g) for g in COMMON_GPUS)
        target = suggestion_target(est, gpus)
        tips = suggest(est, target) if target is not None else ()
        _print(estimate_sections(est, gpus=gpus, suggestions=tips, suggestions_for=target), args.format)
    if args.plot:
        from hf_gpu_estimator.report import COMMON_GPUS

        path = est.plot(args.plot, gpus=(args.gpu,) if args.gpu else COMMON_GPUS)
        print(f"hfge: plot saved to {path}", file=sys.stderr)
    return 0


def _reading(model: str) -> Any:
    """A spinner on stderr while the model's config and shard headers are read (a terminal with rich only)."""
    import contextlib

    from hf_gpu_estimator.report import rich_available

    if not sys.stderr.isatty() or not rich_available() or os.path.exists(model):
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(f"reading {model} (config.json and safetensors headers) ...")


def _print(sections: Any, fmt: str) -> None:
    from hf_gpu_estimator.report import print_sections

    print_sections(sections, fmt, file=sys.stdout)


def _run_plan(args: argparse.Namespace) -> int:
    from hf_gpu_estimator import planner
    from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError
    from hf_gpu_estimator.estimator import workload_from_kwargs
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator import evals_cli
    from hf_gpu_estimator.sources import inspect_model

    def load_spec() -> Any:
        with _reading(args.model):
            return inspect_model(args.model, revision=args.revision, token=args.token)

    if evals_cli.wants(args):
        return evals_cli.run(args, load_spec)
    if not args.model:
        raise ConflictingOptionsError("model", None, "is required", fix="hfge plan MODEL --gpu NAME (or --fleet FILE)")
    spec = load_spec()
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
        if args.format == "json":
            _emit(result.to_dict(), "json")
        else:
            _print(_cheapest_sections(result), args.format)
        return 0
    if args.gpu is None:
        raise ConflictingOptionsError("gpu", None, "is required", fix="pass --gpu NAME, or --cheapest to rank the catalog")
    result = planner.plan(spec, work, get_gpu(args.gpu), gpu_memory_utilization=args.gpu_memory_utilization,
                          max_model_len=args.max_model_len)
    if args.format == "json":
        _emit(result.to_dict(), "json")
    else:
        _print(_plan_sections(result), args.format)
    return 0


def _plan_table(p: Any) -> str:
    from hf_gpu_estimator.report import render_sections

    return render_sections(_plan_sections(p), "text")


def _plan_sections(p: Any) -> list[Any]:
    from hf_gpu_estimator.report import Section

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
    styles = [("ok" if p.fits else "bad") if name == "fits" else None for name, _ in rows]
    return [Section(title=f"{p.gpu.name}: plan", rows=tuple(rows), row_styles=tuple(styles),
                    notes=tuple(f"note: {n}" for n in p.notes))]


def _cheapest_table(result: Any) -> str:
    from hf_gpu_estimator.report import render_sections

    return render_sections(_cheapest_sections(result), "text")


def _cheapest_sections(result: Any) -> list[Any]:
    from hf_gpu_estimator.report import Section

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
    notes: list[str] = []
    if result.skipped:
        notes.append(f"skipped {len(result.skipped)} GPU types:")
        notes += [f"  {s.gpu}: {s.reason}" for s in result.skipped]
    styles = ("ok",) + (None,) * (len(rows) - 1) if rows else ()
    return [Section(title="Cheapest options, cheapest first", header=header, rows=tuple(rows), row_styles=styles,
                    notes=tuple(notes))]


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
    from hf_gpu_estimator.report import render_sections

    return render_sections(_gpu_sections(gpus), "text")


def _gpu_sections(gpus: Sequence[Any]) -> list[Any]:
    from hf_gpu_estimator.report import Section

    rows = []
    for g in gpus:
        bf16 = g.peak_flops.get("bf16")
        price = f"${g.price_per_hour_usd:.2f}/h" if g.price_per_hour_usd else "-"
        rows.append((g.name, g.vendor, f"{g.usable_memory_bytes / (1 << 30):.1f} GiB",
                     f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s",
                     f"{bf16 / 1e12:.0f} TFLOP/s" if bf16 else "-", price))
    return [Section(header=("gpu", "vendor", "memory", "bandwidth", "bf16 dense", "price"), rows=tuple(rows))]



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
    device.add_argument("--device-memory-gib", type=_finite_float(0, inclusive=False), help="the device's memory in GiB")
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


# --- exact-mode comparison, measure mode and device calibration ---

EPILOG_MEASURE = """examples:
  hfge measure Qwen/Qwen2.5-0.5B --task training --batch-size 4 --seq-len 1024 --output qwen-train.json
  hfge measure meta-llama/Llama-2-7b-hf --dtype float16 --batch-size 8 --seq-len 2048 --new-tokens 64
  hfge measure ./tiny/config.json --device cpu --batch-size 1 --seq-len 64 --new-tokens 8

Builds the model from its config.json with random weights (no checkpoint is downloaded), runs
the workload on the device and prints measured vs estimated memory (analytic, and exact when
torch can trace it), each with its error. A CUDA run also adds its overheads (CUDA context,
reserved/allocated) to the device's calibration in the user cache, used by later estimates
for that GPU (--no-calibrate to skip). Exit status 1 when the device cannot hold the workload.
"""


def _add_estimate_extras(est: argparse.ArgumentParser) -> None:
    est.add_argument("--compare", action="store_true",
                     help="analytic and exact side by side, with the difference per component and in total")
    est.add_argument("--calibration", metavar="DEVICE",
                     help="take reserved/CUDA-context overheads from this calibrated device ('NVIDIA H200'); "
                          "'off' to ignore the calibration --gpu would pick")


def _calibration_arg(args: argparse.Namespace) -> Any:
    value = getattr(args, "calibration", None)
    if value is None:
        return None
    return False if value.strip().lower() in ("off", "none", "no") else value


def _add_measure_parser(sub: Any) -> None:
    m = sub.add_parser("measure", help="run the workload on this machine's device and compare with the estimates",
                       epilog=EPILOG_MEASURE, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(m)
    _add_workload_args(m)
    m.add_argument("--device", default="cuda", help="cuda (default), cuda:N, mps or cpu")
    m.add_argument("--output", metavar="FILE", help="save the result (model, workload, device, versions, figures) "
                                                    "as JSON")
    m.add_argument("--steps", type=_positive_int, default=3,
                   help="training optimizer steps (default 3; tokens/s over the steps after the first)")
    m.add_argument("--no-exact", action="store_true", help="skip the exact-mode trace")
    m.add_argument("--no-calibrate", action="store_true", help="do not add this run to the device calibration")
    m.add_argument("--format", choices=FORMATS, default="table", help=FORMAT_HELP)


def _rel(estimated: int | None, measured: int | None) -> float | None:
    if estimated is None or not measured:
        return None
    return estimated / measured - 1


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def _size(nbytes: int) -> str:
    """GiB, or MiB below 1 GiB (the tiny configs of CPU runs)."""
    from hf_gpu_estimator.report import gib

    return gib(nbytes) if abs(nbytes) >= 1 << 30 else f"{nbytes / (1 << 20):,.1f} MiB"


def _gib_or_dash(value: int | None) -> str:
    return "-" if value is None else _size(value)


def _run_compare(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.exact import compare
    from hf_gpu_estimator.report import Section
    from hf_gpu_estimator.sources import inspect_model

    with _reading(args.model):
        spec = inspect_model(args.model, revision=args.revision, token=args.token)
    kwargs = _workload_kwargs(args)
    cal = _calibration_arg(args)
    analytic = estimate(spec, gpu=args.gpu, calibration=cal, **kwargs)
    exact = estimate(spec, gpu=args.gpu, calibration=cal, mode="exact", **kwargs)
    diff = compare(analytic.memory, exact.memory)
    if args.format == "json":
        a, e = analytic.to_dict(), exact.to_dict()
        _emit({"model": a["model"], "workload": a["workload"], "analytic": a["memory"], "exact": e["memory"],
               "difference": diff, "assumptions": {"analytic": a["assumptions"], "exact": e["assumptions"]}}, "json")
        return 0

    def line(name: str, d: dict[str, Any]) -> tuple[str, ...]:
        delta = d["difference_bytes"]
        return (name, _size(d["analytic_bytes"]), _size(d["exact_bytes"]), ("+" if delta >= 0 else "-") + _size(abs(delta)),
                _pct(d["relative_error"]))

    rows = [line(name, d) for name, d in diff["components"].items()]
    rows += [line("allocated peak", diff["allocated_peak_bytes"]), line("reserved peak", diff["reserved_peak_bytes"]),
             line("device total", diff["device_total_bytes"])]
    styles = (None,) * len(diff["components"]) + ("total", None, None)
    notes = [f"peak phase: analytic {analytic.memory.phase_at_peak!r}, exact {exact.memory.phase_at_peak!r}",
             "error = analytic / exact - 1"]
    notes += [a for a in exact.assumptions if a.startswith(("exact:", "trace:"))]
    _print([Section(title=f"{spec.id}: analytic vs exact (traced) memory per device",
                    header=("component", "analytic", "exact", "difference", "error"), rows=tuple(rows),
                    row_styles=styles, notes=tuple(notes))], args.format)
    return 0


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
    import shlex

    plain = _Parser(prog="hfge measure")
    _add_workload_args(plain)
    defaults = vars(plain.parse_args([]))
    parts = ["hfge", "measure", args.model]
    for key, default in defaults.items():
        value = getattr(args, key)
        if value == default:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    parts += ["--device", args.device]
    if args.steps != 3:
        parts += ["--steps", str(args.steps)]
    return shlex.join(parts)


def _run_measure(args: argparse.Namespace) -> int:
    import time

    from hf_gpu_estimator._runner import require_torch_stack
    from hf_gpu_estimator.errors import ConflictingOptionsError, MissingDependencyError, PreflightError, TraceError
    from hf_gpu_estimator.estimator import estimate, workload_from_kwargs
    from hf_gpu_estimator.report import gib
    from hf_gpu_estimator.sources import inspect_model

    require_torch_stack("measure mode")
    other_bytes = None
    if args.device.startswith("cuda"):
        from hf_gpu_estimator.measure import nvml_used_bytes_before_init

        other_bytes = nvml_used_bytes_before_init()  # before this process creates its CUDA context
    with _reading(args.model):
        spec = inspect_model(args.model, revision=args.revision, token=args.token)
    if not spec.config.get("model_type"):
        raise ConflictingOptionsError("model", args.model, "has no config.json to build the model from",
                                      fix="point at a repo or folder with config.json, or use 'hfge estimate'")
    kwargs = _workload_kwargs(args)
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

    from hf_gpu_estimator.measure import measure_workload

    try:
        measured = measure_workload(dict(spec.config), work, device=args.device, train_steps=args.steps)
    except torch.OutOfMemoryError as e:
        raise PreflightError(f"out of memory on {args.device} ({device_name}) while measuring: use 'hfge estimate' "
                             "(analytic mode), a smaller workload or --device cpu", required_bytes=need,
                             available_bytes=free) from e
    nvml_total = None
    if measured.nvml_used_bytes is not None:
        nvml_total = measured.nvml_used_bytes - (other_bytes or 0)

    def figures(est: Any) -> dict[str, Any]:
        m = est.memory
        return {"allocated_peak_bytes": m.allocated_peak_bytes, "reserved_peak_bytes": m.reserved_peak_bytes,
                "device_total_bytes": m.device_total_bytes, "phase_at_peak": m.phase_at_peak,
                "components": dict(m.components),
                "errors": {"allocated": _rel(m.allocated_peak_bytes, measured.allocated_peak_bytes),
                           "reserved": _rel(m.reserved_peak_bytes, measured.reserved_peak_bytes),
                           "device_total": _rel(m.device_total_bytes, nvml_total)}}  # fmt: skip

    payload: dict[str, Any] = {
        "format": "hfge-measure/1",
        "command": _measure_command(args),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"id": spec.id, "parameters": spec.parameters.total, "config": dict(spec.config)},
        "workload": work.to_dict(),
        "device": {"requested": args.device, "name": measured.device_name, "total_bytes": total,
                   "free_bytes_before": free, "other_processes_bytes": other_bytes},
        "versions": dict(measured.versions),
        "measured": {**measured.to_dict(), "nvml_process_bytes": nvml_total},
        "analytic": figures(analytic),
        "exact": figures(exact) if exact is not None else {"error": exact_error or "skipped (--no-exact)"},
        "calibration": None,
    }
    if cuda and not args.no_calibrate:
        from hf_gpu_estimator.calibration import record_measurement

        path = record_measurement(measured, work, source=payload["command"], other_processes_bytes=other_bytes)
        payload["calibration"] = str(path) if path else None
        if path:
            print(f"hfge: calibration for {measured.device_name} updated: {path}", file=sys.stderr)
    if args.output:
        from pathlib import Path

        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"hfge: result saved to {out}", file=sys.stderr)
    if args.format == "json":
        _emit(payload, "json")
    else:
        _print(_measure_sections(payload, spec.id), args.format)
    return 0


def _measure_sections(payload: dict[str, Any], model_id: str) -> list[Any]:
    from hf_gpu_estimator.report import Section

    measured = payload["measured"]
    a, e = payload["analytic"], payload["exact"]
    has_exact = "error" not in e
    rows: list[tuple[str, ...]] = []
    for label, key, mkey in (("allocated peak", "allocated_peak_bytes", "allocated_peak_bytes"),
                             ("reserved peak", "reserved_peak_bytes", "reserved_peak_bytes"),
                             ("device total (nvidia-smi)", "device_total_bytes", "nvml_process_bytes")):
        err_key = {"allocated_peak_bytes": "allocated", "reserved_peak_bytes": "reserved"}.get(key, "device_total")
        row = [label, _gib_or_dash(measured.get(mkey)), _size(a[key]), _pct(a["errors"][err_key])]
        if has_exact:
            row += [_size(e[key]), _pct(e["errors"][err_key])]
        rows.append(tuple(row))
    header = ("", "measured", "analytic", "error") + (("exact", "error") if has_exact else ())
    notes = [f"command: {payload['command']}", "error = estimate / measured - 1"]
    peaks = measured.get("phase_peaks") or {}
    if peaks:
        notes.append(f"measured peak in {max(peaks, key=peaks.get)!r}; analytic peak in {a['phase_at_peak']!r}"
                     + (f"; exact peak in {e['phase_at_peak']!r}" if has_exact else ""))
    speed = [f"{name} {measured[key]:,.0f} tokens/s" for name, key in
             (("prefill", "prefill_tokens_per_s"), ("decode", "decode_tokens_per_s"), ("train", "train_tokens_per_s"))
             if measured.get(key)]
    if speed:
        notes.append("throughput: " + ", ".join(speed))
    if measured.get("allocated_peak_bytes") is None:
        notes.append(f"{payload['device']['requested']}: no allocator statistics; host peak RSS "
                     f"{_gib_or_dash(measured.get('host_peak_rss_bytes'))} (Python, torch and the model: not comparable)")
    if not has_exact:
        notes.append(f"exact: {e['error']}")
    v = payload["versions"]
    notes.append("versions: " + ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "cuda", "driver") if k in v))
    return [Section(title=f"{model_id} on {payload['device']['name']}: measured vs estimated", header=header,
                    rows=tuple(rows), notes=tuple(notes))]


if __name__ == "__main__":
    raise SystemExit(main())
