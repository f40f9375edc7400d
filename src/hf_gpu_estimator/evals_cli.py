"""``hfge plan MODEL --eval ...`` and ``hfge plan --fleet FILE``: parse, call the planners, render (no arithmetic)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from hf_gpu_estimator.report import Section

__all__ = ["add_arguments", "eval_sections", "fleet_sections", "run", "validate_fleet", "wants"]

HOURS_PER_MONTH = 730  # 8,760 hours a year / 12, the convention cloud price sheets use


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``plan`` options this module answers."""
    p.add_argument("--eval", help="evaluation suites or tasks, comma-separated (mmlu,gsm8k,hellaswag; NAME:K sets "
                                  "the few-shot count; 'all'); see --eval-list")
    p.add_argument("--eval-list", action="store_true", help="list the evaluation suites and tasks, then exit")
    p.add_argument("--engine", choices=("vllm", "transformers"), default="vllm",
                   help="engine lm-evaluation-harness drives for --eval (default vllm)")
    p.add_argument("--fleet", help="a YAML or JSON file of models and their traffic (no MODEL needed)")


def wants(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "eval", None) or getattr(args, "eval_list", False) or getattr(args, "fleet", None))


def _print(sections: list[Section], fmt: str) -> None:
    from hf_gpu_estimator.report import print_sections

    print_sections(sections, fmt, file=sys.stdout)


def run(args: argparse.Namespace, load_spec: Any) -> int:
    """Answer ``--eval-list``, ``--fleet`` or ``--eval``; ``load_spec()`` inspects MODEL."""
    from hf_gpu_estimator.errors import ConflictingOptionsError

    if args.eval_list:
        _print(list_sections(), "text" if args.format == "json" else args.format)
        return 0
    if args.fleet:
        if args.eval:
            raise ConflictingOptionsError("fleet", args.fleet, "cannot be combined with --eval",
                                          fix="plan the fleet and the evaluation in two commands")
        from hf_gpu_estimator.planner import plan_fleet

        data = validate_fleet(args.fleet)
        result = plan_fleet(data)
        if args.format == "json":
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        else:
            _print(fleet_sections(result), args.format)
        return 0
    from hf_gpu_estimator import evals
    from hf_gpu_estimator.estimator import workload_from_kwargs

    if not args.model:
        raise ConflictingOptionsError("model", None, "is required with --eval", fix="hfge plan MODEL --eval mmlu")
    runs = evals.resolve_evals(args.eval)  # bad names fail before the model is read
    spec = load_spec()
    from hf_gpu_estimator.cli import _workload_kwargs

    work = workload_from_kwargs(_workload_kwargs(args))
    if args.cheapest:
        ranked = evals.cheapest_eval(spec, work, [f"{r.task.name}:{r.num_fewshot}" for r in runs], engine=args.engine)
        if args.format == "json":
            sys.stdout.write(json.dumps(ranked.to_dict(), indent=2) + "\n")
        else:
            _print(eval_sections(ranked.best) + [_ranking_section(ranked)], args.format)
        return 0
    if args.gpu is None:
        raise ConflictingOptionsError("gpu", None, "is required", fix="pass --gpu NAME, or --cheapest to rank the catalog")
    plan = evals.plan_eval(spec, work, args.gpu, runs, engine=args.engine,
                           gpu_memory_utilization=args.gpu_memory_utilization)
    if args.format == "json":
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2) + "\n")
    else:
        _print(eval_sections(plan), args.format)
    return 0


# --------------------------------------------------------------------------- rendering


def _tokens(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def eval_sections(plan: Any) -> list[Section]:
    """Per-task demand and the totals of an :class:`~hf_gpu_estimator.evals.EvalPlan`."""
    rows = []
    styles: list[str | None] = []
    for t in plan.tasks:
        rows.append((t.task + ("*" if t.tokens_estimated else ""), str(t.num_fewshot), t.kind, f"{t.requests:,}",
                     f"{t.forwards:,}", f"{t.prompt_tokens:,.0f}", _tokens(t.processed_tokens),
                     _tokens(t.generated_tokens), str(t.batch_size), _duration(t.seconds)))
        styles.append(None)
    d = plan.to_dict()["total"]
    rows.append(("total", "", "", f"{d['requests']:,}", f"{d['forwards']:,}", "", _tokens(d["processed_tokens"]),
                 _tokens(d["generated_tokens"]), "", _duration(d["seconds"])))
    styles.append("total")
    gib = 1 << 30
    cost = f"${plan.cost_usd:,.2f}" if plan.cost_usd is not None else "no price"
    summary = [("engine", plan.engine), ("GPUs", f"{plan.num_gpus} x {plan.gpu}"),
               ("weights per device", f"{plan.weights_bytes / gib:.1f} GiB"),
               ("memory per device", f"{plan.device_total_bytes / gib:.1f} GiB")]
    if plan.kv_cache_tokens is not None:
        summary.append(("vLLM KV cache", f"{plan.kv_cache_tokens:,} tokens"))
    summary += [("wall time", _duration(plan.seconds)), ("GPU-hours", f"{plan.gpu_hours:.2f}"),
                ("$/hour", f"${plan.hourly_usd:.2f}" if plan.hourly_usd is not None else "no price"), ("cost", cost)]
    notes = ["* token lengths estimated (see data/eval_suites.json tokens_basis)"] if any(
        t.tokens_estimated for t in plan.tasks) else []
    notes += list(plan.assumptions)
    return [Section(title=f"{plan.model}: evaluation on {plan.num_gpus} x {plan.gpu} ({plan.engine})",
                    header=("task", "shots", "scoring", "requests", "forwards", "prompt tok", "processed",
                            "generated", "batch", "time"), rows=tuple(rows), row_styles=tuple(styles)),
            Section(title="Totals", rows=tuple(summary), notes=tuple(notes))]


def _ranking_section(ranked: Any) -> Section:
    rows = tuple((p.gpu, str(p.num_gpus), _duration(p.seconds), f"{p.gpu_hours:.2f}", f"${p.hourly_usd:.2f}",
                  f"${p.cost_usd:,.2f}") for p in ranked.options)
    notes = (f"skipped {len(ranked.skipped)} GPU types",) if ranked.skipped else ()
    return Section(title="GPU types, cheapest first", header=("gpu", "gpus", "wall time", "GPU-hours", "$/hour", "cost"),
                   rows=rows, row_styles=("ok",) + (None,) * (len(rows) - 1), notes=notes)


def list_sections() -> list[Section]:
    from hf_gpu_estimator.evals import eval_suites, eval_tasks

    tasks = eval_tasks()
    suites = [(name, s.title, ", ".join(t + (f":{k}" if k is not None else "") for t, k in s.tasks))
              for name, s in eval_suites().items()]
    rows = tuple((t.name, t.suite, f"{t.examples:,}", str(t.num_fewshot), t.kind,
                  "estimate" if t.tokens_estimated else "measured") for t in tasks.values())
    return [Section(title="Evaluation suites (--eval NAME, or all)", header=("suite", "title", "tasks"),
                    rows=tuple(suites)),
            Section(title="Tasks", header=("task", "suite", "examples", "shots", "scoring", "token lengths"), rows=rows)]


def fleet_sections(result: Any) -> list[Section]:
    """One table per model and a total (GPUs by type, $/hour, $/month)."""
    sections = []
    for e in result.entries:
        if e.error:
            sections.append(Section(title=f"{e.model} ({e.kind})", rows=(("error", e.error),), row_styles=("bad",)))
            continue
        best = (e.serving or e.training).best.to_dict()  # type: ignore[union-attr]
        if e.kind == "serving":
            s = e.serving
            rows = (("traffic", f"{s.request_rate_per_s:g} req/s, {s.input_tokens} -> {s.output_tokens} tokens"),
                    ("GPUs", f"{best['num_gpus']} x {best['gpu']} (tp {best['tp']}, {best['replicas']} replicas)"),
                    ("batch per replica", f"{best['batch_size']} ({e.serving.best.limit})"),
                    ("TPOT / TTFT", f"{best['tpot_ms']:.1f} ms / {best['ttft_ms']:.0f} ms"),
                    ("$/hour", f"${best['hourly_usd']:.2f}"),
                    ("$/month", f"${best['hourly_usd'] * HOURS_PER_MONTH:,.0f}"),
                    ("$/1M output tokens", f"${best['usd_per_million_output_tokens']:.3f}"))
        else:
            rows = (("token budget", f"{e.training.token_budget:.3g} tokens"),
                    ("GPUs", f"{best['num_gpus']} x {best['gpu']} ({best['strategy']})"),
                    ("throughput", f"{best['tokens_per_s']:,.0f} tokens/s"), ("hours", f"{best['hours']:.1f}"),
                    ("$/hour", f"${best['hourly_usd']:.2f}"), ("total", f"${best['total_usd']:,.0f}"))
        sections.append(Section(title=f"{e.model} ({e.kind})", rows=rows))
    total = [(g, str(n)) for g, n in sorted(result.gpus.items())]
    total += [("serving $/hour", f"${result.hourly_usd:,.2f}"),
              ("serving $/month", f"${result.hourly_usd * HOURS_PER_MONTH:,.0f}")]
    if result.training_usd:
        total.append(("training jobs $", f"${result.training_usd:,.0f}"))
    failed = sum(1 for e in result.entries if e.error)
    notes = (f"{failed} entries could not be planned (see above)",) if failed else ()
    sections.append(Section(title="Fleet total: serving GPUs by type, $/hour, $/month", rows=tuple(total),
                            row_styles=("total",) * len(total), notes=notes))
    return sections


# --------------------------------------------------------------------------- fleet file validation

_NUMBERS = ("request_rate", "input_tokens", "output_tokens", "tpot_ms", "ttft_ms", "token_budget", "deadline_hours")


def validate_fleet(source: Any) -> Mapping[str, Any]:
    """Read a fleet file and check every entry up front: one error naming the entry and the field.

    Raises:
        InvalidArgumentError: A negative or non-numeric rate, size, target or budget.
        UnknownNameError: An unknown GPU (``gpus`` or ``models[i].gpus``).
        InvalidArgumentError: Also a model that cannot be read (not in the catalog nor on the Hub).
    """
    from hf_gpu_estimator.errors import InvalidArgumentError, SourceError, UnknownNameError
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator.planner import _read_fleet
    from hf_gpu_estimator.sources import inspect_model

    data = _read_fleet(source)
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise InvalidArgumentError("models", models, "a non-empty list of model entries")

    def check_gpus(where: str, names: Any) -> None:
        if names is None:
            return
        if not isinstance(names, list):
            raise InvalidArgumentError(where, names, "a list of GPU names")
        for name in names:
            try:
                get_gpu(name)
            except UnknownNameError as e:
                raise UnknownNameError(where, str(name), e.candidates) from e

    check_gpus("gpus", data.get("gpus"))
    for i, item in enumerate(models):
        if not isinstance(item, Mapping) or "model" not in item:
            raise InvalidArgumentError(f"models[{i}]", item, "an object with a 'model' key")
        where = f"models[{i}] ({item['model']})"
        for key in _NUMBERS:
            if key in item:
                v = item[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                    raise InvalidArgumentError(f"{where}.{key}", v, "a positive number")
        check_gpus(f"{where}.gpus", item.get("gpus"))
        try:
            inspect_model(str(item["model"]))
        except SourceError as e:
            raise InvalidArgumentError(f"{where}.model", item["model"], "a catalog model, Hub id or local path",
                                       hint=str(e).splitlines()[0]) from e
    return data
