"""A :class:`~hf_gpu_estimator.planner.fleet.FleetPlan` (``hfge plan --fleet``): one table per model and a total."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hf_gpu_estimator.constants import HOURS_PER_MONTH
from hf_gpu_estimator.report.render import Section

if TYPE_CHECKING:
    from hf_gpu_estimator.planner.fleet import FleetPlan


def fleet_sections(result: FleetPlan) -> list[Section]:
    """``hfge plan --fleet FILE``: one table per model and a total (GPUs by type, $/hour, $/month)."""
    sections = []
    for e in result.entries:
        if e.error:
            sections.append(Section(title=f"{e.model} ({e.kind})", rows=(("error", e.error),), row_styles=("bad",)))
            continue
        if e.serving is not None:
            s, o = e.serving, e.serving.best
            rows: tuple[tuple[str, str], ...] = (
                ("traffic", f"{s.request_rate_per_s:g} req/s, {s.input_tokens} -> {s.output_tokens} tokens"),
                ("GPUs", f"{o.num_gpus} x {o.gpu} (tp {o.tp}, {o.replicas} replicas)"),
                ("batch per replica", f"{o.batch_size} ({o.limit})"),
                ("TPOT / TTFT", f"{o.tpot_seconds * 1e3:.1f} ms / {o.ttft_seconds * 1e3:.0f} ms"),
                ("$/hour", f"${o.hourly_usd:.2f}"),
                ("$/month", f"${o.hourly_usd * HOURS_PER_MONTH:,.0f}"),
                ("$/1M output tokens", f"${o.usd_per_million_output_tokens:.3f}"))
        elif e.training is not None:
            t = e.training.best
            rows = (("token budget", f"{e.training.token_budget:.3g} tokens"),
                    ("GPUs", f"{t.parallelization.num_gpus} x {t.gpu} ({t.parallelization.strategy})"),
                    ("throughput", f"{t.speed.tokens_per_s:,.0f} tokens/s"), ("hours", f"{t.hours:.1f}"),
                    ("$/hour", f"${t.hourly_usd:.2f}"), ("total", f"${t.total_usd:,.0f}"))
        else:
            continue
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
