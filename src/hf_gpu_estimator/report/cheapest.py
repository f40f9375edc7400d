"""The ``--cheapest`` rankings: :class:`~hf_gpu_estimator.planner.serving.CheapestServing` and
:class:`~hf_gpu_estimator.planner.training.CheapestTraining`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hf_gpu_estimator.report.render import Section

if TYPE_CHECKING:
    from hf_gpu_estimator.planner._search import Skipped
    from hf_gpu_estimator.planner.serving import CheapestServing
    from hf_gpu_estimator.planner.training import CheapestTraining

TITLE = "Cheapest options, cheapest first"


def serving_sections(result: CheapestServing, *, verbose: bool = False) -> list[Section]:
    """``hfge plan --cheapest`` (inference): split, replicas, batch, TPOT, TTFT and cost per option, cheapest
    first, then one line on what was skipped (``verbose``: every GPU type skipped and why)."""
    rows = tuple((o.gpu, str(o.num_gpus), f"tp{o.tp}" + (f" pp{o.pp}" if o.pp > 1 else ""), str(o.replicas),
                  str(o.batch_size), f"{o.tpot_seconds * 1e3:.1f}", f"{o.ttft_seconds * 1e3:.0f}",
                  f"${o.hourly_usd:.2f}", f"${o.usd_per_million_output_tokens:.3f}") for o in result.options)
    notes: list[str] = []
    if result.max_model_len:
        notes.append(f"{result.engine} at max_model_len {result.max_model_len:,}: only splits that start are ranked")
    launch = result.options[0].launch if result.options else None
    header = ("gpu", "gpus", "split", "replicas", "batch", "TPOT ms", "TTFT ms", "$/hour", "$/1M out")
    return [_ranking(header, rows, notes, launch, result.skipped_note(verbose=verbose), result.skipped, verbose)]


def training_sections(result: CheapestTraining, *, verbose: bool = False) -> list[Section]:
    """``hfge plan --cheapest --task training``: GPUs, strategy, throughput, hours and cost per option, cheapest
    first, then the skipped line (as :func:`serving_sections`)."""
    rows = tuple((o.gpu, str(o.parallelization.num_gpus), str(o.parallelization.strategy),
                  f"{o.speed.tokens_per_s:,.0f}", f"{o.hours:.1f}", f"${o.hourly_usd:.2f}", f"${o.total_usd:,.0f}")
                 for o in result.options)
    best = result.options[0] if result.options else None
    launch = best.launch.command if best is not None and best.launch is not None else None
    header = ("gpu", "gpus", "strategy", "tokens/s", "hours", "$/hour", "total $")
    return [_ranking(header, rows, [], launch, result.skipped_note(verbose=verbose), result.skipped, verbose)]


def _ranking(header: tuple[str, ...], rows: tuple[tuple[str, ...], ...], notes: list[str], launch: str | None,
             skipped_line: str | None, skipped: tuple[Skipped, ...], verbose: bool) -> Section:
    if launch is not None:
        notes.append("launch: " + launch)
    if skipped_line:
        notes.append(skipped_line)
    if verbose:
        notes += [f"  {s.gpu}: {s.reason}" for s in skipped]
    styles = ("ok",) + (None,) * (len(rows) - 1) if rows else ()
    return Section(title=TITLE, header=header, rows=rows, row_styles=styles, notes=tuple(notes))
