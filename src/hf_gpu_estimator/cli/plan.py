"""``hfge plan``: what fits on a GPU, serving capacity per engine, speed and cost; the cheapest GPUs;
the cost of an evaluation (``--eval``); a whole fleet (``--fleet FILE``)."""

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
from hf_gpu_estimator.planner.engines._capacity import ENGINES

EPILOG = """examples:
  hfge plan meta-llama/Llama-3.1-8B --gpu H100-SXM-80GB --seq-len 1024 --new-tokens 256
  hfge plan meta-llama/Llama-3.1-70B --gpu A100-80GB-SXM --max-model-len 8192 --format json
  hfge plan meta-llama/Llama-3.1-8B --cheapest --request-rate 5 --input-tokens 1024 --output-tokens 256 --tpot-ms 50
  hfge plan Qwen/Qwen2.5-7B --cheapest --task training --method lora --token-budget 2e9 --deadline-hours 24
  hfge plan meta-llama/Llama-3.1-8B --gpu L40S --engine sglang --max-model-len 32768
  hfge plan meta-llama/Llama-3.1-8B --eval mmlu,gsm8k,hellaswag --gpu H100-SXM-80GB --engine vllm
  hfge plan mistralai/Mistral-7B-v0.1 --eval open_llm_leaderboard --cheapest
  hfge plan --eval-list
  hfge plan --fleet examples/fleet.yaml --format markdown
"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "plan", run, epilog=EPILOG,
                    help="what fits on a GPU, vLLM serving capacity, speed, cost; or the cheapest GPU")
    add_model_args(p, optional=True)  # --fleet FILE and --eval-list need no MODEL
    add_workload_args(p)
    p.add_argument("--gpu", help="a GPU from the catalog (hfge gpus); required unless --cheapest, where a "
                                 "comma-separated list restricts the search")
    p.add_argument("--engine", choices=ENGINES, default="vllm",
                   help="serving engine whose KV pool is sized (default vllm); with --eval: the engine "
                        "lm-evaluation-harness drives (vllm or transformers)")
    p.add_argument("--vllm-version", help="vLLM version X.Y whose memory profile is modelled (default: the newest)")
    p.add_argument("--mem-fraction-static", type=float, help="SGLang's share of device memory (--engine sglang)")
    p.add_argument("--ctx-size", type=positive_int, help="llama-server -c: KV cache tokens (--engine llama.cpp)")
    p.add_argument("--parallel", type=positive_int, help="llama-server -np: slots (--engine llama.cpp)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM's share of device memory (0.9)")
    p.add_argument("--max-model-len", type=positive_int, help="vLLM context length (default: the model's maximum)")
    p.add_argument("--cheapest", action="store_true", help="rank GPU type x count across the catalog by cost")
    p.add_argument("--request-rate", type=float, help="requests per second (--cheapest serving; default 1)")
    p.add_argument("--input-tokens", type=positive_int,
                   help="mean prompt tokens per request (--cheapest serving; default 1024)")
    p.add_argument("--output-tokens", type=positive_int,
                   help="mean generated tokens per request (--cheapest serving; default 256)")
    p.add_argument("--tpot-ms", type=float, help="p50 time-per-output-token target in ms (--cheapest)")
    p.add_argument("--ttft-ms", type=float, help="p50 time-to-first-token target in ms (--cheapest)")
    p.add_argument("--token-budget", type=float, help="training tokens (--cheapest with --task training)")
    p.add_argument("--deadline-hours", type=float, help="training deadline (--cheapest with --task training)")
    p.add_argument("--eval", help="evaluation suites or tasks, comma-separated (mmlu,gsm8k,hellaswag; NAME:K sets "
                                  "the few-shot count; 'all'); see --eval-list")
    p.add_argument("--eval-list", action="store_true", help="list the evaluation suites and tasks, then exit")
    p.add_argument("--fleet", help="a YAML or JSON file of models and their traffic (no MODEL needed)")
    add_format_arg(p)


def run(args: argparse.Namespace) -> int:
    from hf_gpu_estimator import planner
    from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator.report import cheapest_sections, eval_list_sections, plan_sections
    from hf_gpu_estimator.workload import workload_from_kwargs

    if args.eval_list:
        print_sections(eval_list_sections(), "text" if args.format == "json" else args.format)
        return 0
    if args.fleet:
        return _run_fleet(args)
    if not args.model:
        raise ConflictingOptionsError("model", None, "is required",
                                      fix="hfge plan MODEL --gpu NAME (or --fleet FILE, or --eval-list)")
    if args.eval:
        return _run_eval(args)
    spec = read_spec(args)
    work = workload_from_kwargs(workload_kwargs(args))
    if args.cheapest:
        gpus = args.gpu.split(",") if args.gpu else None  # --gpu restricts the search to the given types
        if work.is_training:
            if args.token_budget is None:
                raise InvalidArgumentError("token_budget", None, "a token count (--token-budget 2e9)")
            result: Any = planner.cheapest_training(spec, work, token_budget=args.token_budget,
                                                    deadline_hours=args.deadline_hours, gpus=gpus)
        else:
            # Traffic not given takes the planner's documented defaults (planner.serving.DEFAULT_*).
            traffic = {"request_rate_per_s": args.request_rate, "input_tokens": args.input_tokens,
                       "output_tokens": args.output_tokens}
            result = planner.cheapest_serving(spec, work, **{k: v for k, v in traffic.items() if v is not None},
                                              tpot_ms=args.tpot_ms, ttft_ms=args.ttft_ms, gpus=gpus,
                                              gpu_memory_utilization=args.gpu_memory_utilization)
        sections = cheapest_sections
    else:
        if args.gpu is None:
            raise ConflictingOptionsError("gpu", None, "is required",
                                          fix="pass --gpu NAME, or --cheapest to rank the catalog")
        settings = {"mem_fraction_static": args.mem_fraction_static, "ctx_size": args.ctx_size,
                    "parallel": args.parallel}
        result = planner.plan(spec, work, get_gpu(args.gpu), gpu_memory_utilization=args.gpu_memory_utilization,
                              max_model_len=args.max_model_len, engine=args.engine, vllm_version=args.vllm_version,
                              engine_settings={k: v for k, v in settings.items() if v is not None})
        sections = plan_sections
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        print_sections(sections(result), args.format)
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    """``hfge plan MODEL --eval ...``: the evaluation on ``--gpu``, or every priced GPU type ranked."""
    from hf_gpu_estimator.errors import ConflictingOptionsError
    from hf_gpu_estimator.planner import evals
    from hf_gpu_estimator.report import eval_ranking_section, eval_sections
    from hf_gpu_estimator.workload import workload_from_kwargs

    if args.engine not in evals.EVAL_ENGINES:
        raise ConflictingOptionsError("engine", args.engine, "cannot size an evaluation",
                                      fix="--engine " + " or --engine ".join(evals.EVAL_ENGINES) + " with --eval")
    runs = evals.resolve_evals(args.eval)  # bad names fail before the model is read
    spec = read_spec(args)
    work = workload_from_kwargs(workload_kwargs(args))
    if args.cheapest:
        ranked = evals.cheapest_eval(spec, work, [f"{r.task.name}:{r.num_fewshot}" for r in runs], engine=args.engine,
                                     gpus=args.gpu.split(",") if args.gpu else None)
        if args.format == "json":
            emit(ranked.to_dict(), "json")
        else:
            print_sections([*eval_sections(ranked.best), eval_ranking_section(ranked)], args.format)
        return 0
    if args.gpu is None:
        raise ConflictingOptionsError("gpu", None, "is required", fix="pass --gpu NAME, or --cheapest to rank the catalog")
    result = evals.plan_eval(spec, work, args.gpu, runs, engine=args.engine,
                             gpu_memory_utilization=args.gpu_memory_utilization)
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        print_sections(eval_sections(result), args.format)
    return 0


def _run_fleet(args: argparse.Namespace) -> int:
    """``hfge plan --fleet FILE``: every model's cheapest plan and the fleet's GPUs and cost."""
    from hf_gpu_estimator.errors import ConflictingOptionsError
    from hf_gpu_estimator.planner import plan_fleet
    from hf_gpu_estimator.report import fleet_sections
    from hf_gpu_estimator.sources.fleet import validate_fleet

    if args.eval or args.model:
        what = "--eval" if args.eval else "MODEL"
        raise ConflictingOptionsError("fleet", args.fleet, f"cannot be combined with {what}",
                                      fix="the fleet file names its models; plan a single model or an evaluation "
                                          "in its own command")
    result = plan_fleet(validate_fleet(args.fleet))
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        print_sections(fleet_sections(result), args.format)
    return 0
