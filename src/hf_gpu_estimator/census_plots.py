"""The census's plots (the ``[plot]`` extra): memory vs parameters per job, the share of models per GPU class,
the cheapest GPU per model, demand vs release date. Each takes the rows, returns the Figure when ``path`` is
``None`` and the saved path otherwise; nothing here estimates anything."""

from __future__ import annotations

import datetime as _dt
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf_gpu_estimator.census_report import REPORT_CLASSES_GB, share_fitting
from hf_gpu_estimator.constants import GiB
from hf_gpu_estimator.planner.census import CensusRow, class_capacity_bytes
from hf_gpu_estimator.plots import _finish, _pyplot

__all__ = ["cheapest_gpus", "demand_by_release", "draw_all", "memory_vs_parameters", "share_by_class"]

#: Okabe-Ito, colour-blind safe (as plots.COLORS), one per job.
_JOB_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")


#: Options with their own colour in :func:`cheapest_gpus` (tab20 has 20); the rarer ones share one bar.
_MOST_OPTIONS = 15


def _jobs(rows: Sequence[CensusRow]) -> list[str]:
    return list(dict.fromkeys(r.job for r in rows))


def _answered(rows: Sequence[CensusRow]) -> list[CensusRow]:
    return [r for r in rows if not r.refused and r.memory_bytes is not None and r.parameters]


def memory_vs_parameters(rows: Sequence[CensusRow], *, path: str | os.PathLike[str] | None = None) -> Any:
    """Device total per device (one device) against total parameters, one colour per job, log-log, with the
    usable memory of the 24 and 80 GB classes (:func:`~hf_gpu_estimator.planner.census.class_capacity_bytes`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    answered = _answered(rows)
    for n, job in enumerate(_jobs(rows)):
        points = [r for r in answered if r.job == job]
        ax.scatter([r.parameters / 1e9 for r in points], [r.memory_bytes / GiB for r in points],  # type: ignore[operator]
                   s=12, alpha=0.7, color=_JOB_COLORS[n % len(_JOB_COLORS)], label=f"{job} ({len(points)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for gb, style in ((24, ":"), (80, "--")):
        usable = class_capacity_bytes(gb) / GiB
        ax.axhline(usable, color="grey", linestyle=style, linewidth=1)
        ax.text(0.99, usable, f"{gb} GB class ({usable:.1f} GiB usable)", transform=ax.get_yaxis_transform(),
                ha="right", va="bottom", fontsize=8, color="dimgrey")
    ax.set_xlabel("parameters (billions)")
    ax.set_ylabel("GiB per device (one device)")
    ax.set_title("Memory per device vs parameters, per job", fontsize=11)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    ax.grid(alpha=0.3, which="both")
    return _finish(fig, path)


def share_by_class(rows: Sequence[CensusRow], *, path: str | os.PathLike[str] | None = None) -> Any:
    """Grouped bars: per job, the share of the answered models that run on one GPU of 8/16/24/48/80 GB."""
    plt = _pyplot()
    jobs = _jobs(rows)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.3 * len(jobs) + 3), 5))
    width = 0.8 / len(REPORT_CLASSES_GB)
    for k, gb in enumerate(REPORT_CLASSES_GB):
        shares = [100 * (share_fitting(rows, job, gb) or 0.0) for job in jobs]
        xs = [i + (k - (len(REPORT_CLASSES_GB) - 1) / 2) * width for i in range(len(jobs))]
        ax.bar(xs, shares, width=width, color=_JOB_COLORS[k % len(_JOB_COLORS)], label=f"≤ {gb} GB")
    ax.set_xticks(range(len(jobs)))
    ax.set_xticklabels(jobs, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of the answered models that run on one GPU")
    ax.set_title("Share of the models that run on one GPU of each size", fontsize=11)
    ax.legend(fontsize=8, ncol=len(REPORT_CLASSES_GB), loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, path)


def cheapest_gpus(rows: Sequence[CensusRow], *, path: str | os.PathLike[str] | None = None) -> Any:
    """Stacked horizontal bars: per job, how many models have each cheapest option (``N x GPU``)."""
    plt = _pyplot()
    jobs = _jobs(rows)
    per_job = {job: Counter(f"{r.cheapest_num_gpus} x {r.cheapest_gpu}" for r in rows
                            if r.job == job and r.cheapest_gpu is not None) for job in jobs}  # fmt: skip
    ranked = [name for name, _ in sum(per_job.values(), Counter()).most_common()]
    shown, rest = ranked[:_MOST_OPTIONS], set(ranked[_MOST_OPTIONS:])
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(jobs) + 2.5))
    left = [0] * len(jobs)
    cmap = plt.get_cmap("tab20")
    groups = [(option, {option}, cmap(k)) for k, option in enumerate(shown)]
    if rest:
        groups.append((f"{len(rest)} other options", rest, "#DDDDDD"))
    for label, members, color in groups:
        counts = [sum(per_job[job].get(m, 0) for m in members) for job in jobs]
        ax.barh(range(len(jobs)), counts, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, counts)]
    ax.set_yticks(range(len(jobs)))
    ax.set_yticklabels(jobs, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("models")
    ax.set_title("Cheapest GPU option per model ($/hour, on-demand catalog prices)", fontsize=11)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return _finish(fig, path)


def _date(text: str | None) -> _dt.datetime | None:
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def demand_by_release(rows: Sequence[CensusRow], *, path: str | os.PathLike[str] | None = None) -> Any:
    """Memory per device against the repo's creation date, one colour per job; ``None`` when no row has a date."""
    dated = [(d, r) for r in _answered(rows) if (d := _date(r.created_at)) is not None]
    if not dated:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for n, job in enumerate(_jobs(rows)):
        points = [(d, r) for d, r in dated if r.job == job]
        ax.scatter([d for d, _ in points], [r.memory_bytes / GiB for _, r in points],  # type: ignore[operator]
                   s=12, alpha=0.7, color=_JOB_COLORS[n % len(_JOB_COLORS)], label=job)
    ax.set_yscale("log")
    ax.set_ylabel("GiB per device (one device)")
    ax.set_xlabel("repo created on the Hub")
    ax.set_title("GPU demand by release date", fontsize=11)
    ax.legend(fontsize=7, framealpha=0.9)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _finish(fig, path)


#: File names of :func:`draw_all`, in the order the card shows them.
PLOTS = (("census-memory-vs-parameters.png", memory_vs_parameters), ("census-share-by-gpu-class.png", share_by_class),
         ("census-cheapest-gpu.png", cheapest_gpus), ("census-demand-by-release.png", demand_by_release))


def draw_all(rows: Sequence[CensusRow], folder: str | os.PathLike[str]) -> list[Path]:
    """Every census plot into ``folder``; a plot with nothing to show (no release dates) is left out."""
    out = []
    for name, draw in PLOTS:
        saved = draw(rows, path=Path(folder) / name)
        if saved is not None:
            out.append(Path(saved))
    return out
