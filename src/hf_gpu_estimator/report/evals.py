"""Evaluation plans (``hfge plan --eval``): :class:`~hf_gpu_estimator.planner.evals.EvalPlan`, its
ranking :class:`~hf_gpu_estimator.planner.evals.CheapestEval`, and the list of suites and tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from hf_gpu_estimator.constants import GiB
from hf_gpu_estimator.report.render import Section

if TYPE_CHECKING:
    from hf_gpu_estimator.planner.evals import CheapestEval, EvalPlan, EvalTask, Suite


def _token_count(n: float) -> str:
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

def eval_sections(plan: EvalPlan) -> list[Section]:
    """``hfge plan MODEL --eval ...``: per-task demand and the totals of an :class:`~hf_gpu_estimator.planner.evals.EvalPlan`."""
    rows = []
    styles: list[str | None] = []
    for t in plan.tasks:
        rows.append((t.task + ("*" if t.tokens_estimated else ""), str(t.num_fewshot), t.kind, f"{t.requests:,}",
                     f"{t.forwards:,}", f"{t.prompt_tokens:,.0f}", _token_count(t.processed_tokens),
                     _token_count(t.generated_tokens), str(t.batch_size), _duration(t.seconds)))
        styles.append(None)
    d = plan.to_dict()["total"]
    rows.append(("total", "", "", f"{d['requests']:,}", f"{d['forwards']:,}", "", _token_count(d["processed_tokens"]),
                 _token_count(d["generated_tokens"]), "", _duration(d["seconds"])))
    styles.append("total")
    cost = f"${plan.cost_usd:,.2f}" if plan.cost_usd is not None else "no price"
    summary = [("engine", plan.engine), ("GPUs", f"{plan.num_gpus} x {plan.gpu}"),
               ("weights per device", f"{plan.weights_bytes / GiB:.1f} GiB"),
               ("memory per device", f"{plan.device_total_bytes / GiB:.1f} GiB")]
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

def eval_ranking_section(ranked: CheapestEval) -> Section:
    """``hfge plan MODEL --eval ... --cheapest``: the GPU types by the cost of the whole evaluation."""
    rows = tuple((p.gpu, str(p.num_gpus), _duration(p.seconds), f"{p.gpu_hours:.2f}", f"${p.hourly_usd:.2f}",
                  f"${p.cost_usd:,.2f}") for p in ranked.options)
    notes = (f"skipped {len(ranked.skipped)} GPU types",) if ranked.skipped else ()
    return Section(title="GPU types, cheapest first", header=("gpu", "gpus", "wall time", "GPU-hours", "$/hour", "cost"),
                   rows=rows, row_styles=("ok",) + (None,) * (len(rows) - 1), notes=notes)

def eval_list_sections(suites: Mapping[str, Suite], tasks: Mapping[str, EvalTask]) -> list[Section]:
    """``hfge plan --eval-list``: the suites and tasks of the evaluation data (``planner.eval_suites()``,
    ``planner.eval_tasks()``)."""
    suite_rows = [(name, s.title, ", ".join(t + (f":{k}" if k is not None else "") for t, k in s.tasks))
                  for name, s in suites.items()]
    rows = tuple((t.name, t.suite, f"{t.examples:,}", str(t.num_fewshot), t.kind,
                  "estimate" if t.tokens_estimated else "measured") for t in tasks.values())
    return [Section(title="Evaluation suites (--eval NAME, or all)", header=("suite", "title", "tasks"),
                    rows=tuple(suite_rows)),
            Section(title="Tasks", header=("task", "suite", "examples", "shots", "scoring", "token lengths"), rows=rows)]
