"""``hfge plan``: what fits on a GPU, vLLM serving capacity, speed and cost; or the cheapest GPUs."""

from __future__ import annotations

import argparse
from typing import Any

from hf_gpu_estimator.cli._common import (
    add_command,
    add_format_arg,
    add_model_args,
    emit,
    positive_int,
    print_sections,
    read_spec,
)
from hf_gpu_estimator.cli.workload_flags import add_workload_args, workload_kwargs

EPILOG = """examples:
  hfge plan meta-llama/Llama-3.1-8B --gpu H100-SXM-80GB --seq-len 1024 --new-tokens 256
  hfge plan meta-llama/Llama-3.1-70B --gpu A100-80GB-SXM --max-model-len 8192 --format json
  hfge plan meta-llama/Llama-3.1-8B --cheapest --request-rate 5 --input-tokens 1024 --output-tokens 256 --tpot-ms 50
  hfge plan Qwen/Qwen2.5-7B --cheapest --task training --method lora --token-budget 2e9 --deadline-hours 24
"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "plan", run, epilog=EPILOG,
                    help="what fits on a GPU, vLLM serving capacity, speed, cost; or the cheapest GPU")
    add_model_args(p)
    add_workload_args(p)
    p.add_argument("--gpu", help="a GPU from the catalog (hfge gpus); required unless --cheapest")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM's share of device memory (0.9)")
    p.add_argument("--max-model-len", type=positive_int, help="vLLM context length (default: the model's maximum)")
    p.add_argument("--cheapest", action="store_true", help="rank GPU type x count across the catalog by cost")
    p.add_argument("--request-rate", type=float, help="requests per second (--cheapest serving)")
    p.add_argument("--input-tokens", type=positive_int, help="mean prompt tokens per request (--cheapest)")
    p.add_argument("--output-tokens", type=positive_int, help="mean generated tokens per request (--cheapest)")
    p.add_argument("--tpot-ms", type=float, help="p50 time-per-output-token target in ms (--cheapest)")
    p.add_argument("--ttft-ms", type=float, help="p50 time-to-first-token target in ms (--cheapest)")
    p.add_argument("--token-budget", type=float, help="training tokens (--cheapest with --task training)")
    p.add_argument("--deadline-hours", type=float, help="training deadline (--cheapest with --task training)")
    add_format_arg(p)


def run(args: argparse.Namespace) -> int:
    from hf_gpu_estimator import planner
    from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator.report import cheapest_sections, plan_sections
    from hf_gpu_estimator.workload import workload_from_kwargs

    spec = read_spec(args)
    work = workload_from_kwargs(workload_kwargs(args))
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
        sections = cheapest_sections
    else:
        if args.gpu is None:
            raise ConflictingOptionsError("gpu", None, "is required",
                                          fix="pass --gpu NAME, or --cheapest to rank the catalog")
        result = planner.plan(spec, work, get_gpu(args.gpu), gpu_memory_utilization=args.gpu_memory_utilization,
                              max_model_len=args.max_model_len)
        sections = plan_sections
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        print_sections(sections(result), args.format)
    return 0
