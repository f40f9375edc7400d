"""The census in words: the dataset card (the Hub's dataset README format), the one-line summary and the
docs page "GPU demand of the catalog models". Figures are counted from the rows; nothing is estimated here."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hf_gpu_estimator.constants import GiB
from hf_gpu_estimator.planner.census import GPU_CLASSES_GB, CensusRow

if TYPE_CHECKING:
    from hf_gpu_estimator.census import Census

__all__ = ["COLUMNS", "REPORT_CLASSES_GB", "dataset_card", "docs_page", "share_fitting", "summary_line"]

#: The classes the report counts models against (the issue's 8/16/24/48/80 GB).
REPORT_CLASSES_GB: tuple[int, ...] = (8, 16, 24, 48, 80)

#: Every column of the dataset: (name, type, unit, meaning). ``min_gpus_<GPU>`` stands for one column per GPU.
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("model", "string", "", "Hub id (or path) as asked"),
    ("job", "string", "", "the job spec, KIND[:key=value]... (see Grid)"),
    ("source", "string", "", "where the facts came from: catalog (bundled config.json), family (config + "
                             "safetensors headers through an architecture family), generic (standard config fields "
                             "only), refused (see reason)"),
    ("reason", "string", "", "why the row is refused: the estimator's or the Hub layer's error, one line"),
    ("model_type", "string", "", "config.json model_type"),
    ("parameters", "int64", "parameters", "exact total parameter count"),
    ("active_parameters", "int64", "parameters", "parameters used per token (MoE: shared + top-k experts)"),
    ("trainable_parameters", "int64", "parameters", "parameters with gradients (training jobs)"),
    ("memory_low_bytes", "int64", "bytes", "low end of the device total per device on one device (measured error band)"),
    ("memory_bytes", "int64", "bytes", "estimated device total per device on one device (what nvidia-smi shows)"),
    ("memory_high_bytes", "int64", "bytes", "high end of the device total per device; fit verdicts use it"),
    ("gpu_class_gb", "int64", "GB", "smallest class of " + "/".join(map(str, GPU_CLASSES_GB))
     + " GB that holds the job on one device: the least usable memory among the catalog's discrete GPUs of that "
       "size (empty: none)"),
    ("min_gpus_<GPU>", "int64", "GPUs", "fewest GPUs of that catalog type that hold the job (tensor/pipeline "
                                        "parallel for inference, data parallel/ZeRO for training; empty: none tried)"),
    ("cheapest_gpu", "string", "", "catalog GPU of the lowest $/hour among the asked GPUs with a price"),
    ("cheapest_num_gpus", "int64", "GPUs", "how many of cheapest_gpu"),
    ("cheapest_usd_per_hour", "float64", "USD/hour", "on-demand price of cheapest_num_gpus x cheapest_gpu"),
    ("tokens_per_s", "float64", "tokens/s", "roofline speed on the cheapest option: output tokens decoding "
                                            "continuously at the job's batch (inference), training tokens (training)"),
    ("usd_per_million_tokens", "float64", "USD", "cheapest_usd_per_hour / (tokens_per_s x 3600) x 1e6"),
    ("created_at", "string", "ISO 8601", "the repo's creation date on the Hub (Hub listings only)"),
    ("notes", "string", "", "warnings the estimate raised (a context past the trained length ...), one per line"),
)  # fmt: skip


def _answered(rows: Sequence[CensusRow], job: str) -> list[CensusRow]:
    return [r for r in rows if r.job == job and not r.refused]


def _jobs(rows: Sequence[CensusRow]) -> list[str]:
    return list(dict.fromkeys(r.job for r in rows))


def share_fitting(rows: Sequence[CensusRow], job: str, gb: int) -> float | None:
    """The share of the answered (not refused) models of ``job`` whose class is ``gb`` GB or smaller."""
    answered = _answered(rows, job)
    if not answered:
        return None
    return sum(1 for r in answered if r.gpu_class_gb is not None and r.gpu_class_gb <= gb) / len(answered)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _gib(nbytes: float | None) -> str:
    return "–" if nbytes is None else f"{nbytes / GiB:,.1f}"


def summary_line(census: Census, out_dir: str | None = None) -> str:
    """One line: models × jobs, refusals, the first job's share on 24 and 80 GB, the time, where it went."""
    rows = census.rows
    refused = sum(r.refused for r in rows)
    first = census.jobs[0].name if census.jobs else None
    shares = (f"; {first}: {_pct(share_fitting(rows, first, 24))} fit 24 GB, {_pct(share_fitting(rows, first, 80))} "
              "fit 80 GB") if first else ""  # fmt: skip
    resumed = f", {census.resumed} models from the cache" if census.resumed else ""
    where = f"; wrote {out_dir}" if out_dir else ""
    return (f"census: {len(census.model_ids)} models x {len(census.jobs)} jobs = {len(rows)} rows ({refused} refused)"
            f"{shares}; {census.seconds:.1f} s{resumed}{where}")


def _share_table(rows: Sequence[CensusRow]) -> list[str]:
    lines = ["| job | models answered | refused | " + " | ".join(f"≤ {gb} GB" for gb in REPORT_CLASSES_GB)
             + " | median GiB per device |",
             "|---|---:|---:|" + "---:|" * len(REPORT_CLASSES_GB) + "---:|"]
    for job in _jobs(rows):
        answered = _answered(rows, job)
        refused = sum(1 for r in rows if r.job == job and r.refused)
        median = statistics.median(r.memory_bytes for r in answered if r.memory_bytes is not None) if answered else None
        lines.append(f"| `{job}` | {len(answered)} | {refused} | "
                     + " | ".join(_pct(share_fitting(rows, job, gb)) for gb in REPORT_CLASSES_GB)
                     + f" | {_gib(median)} |")
    return lines


def _cheapest_table(rows: Sequence[CensusRow]) -> list[str]:
    lines = ["| job | cheapest option, most often (models) | median $/hour | median $ per 1M tokens |", "|---|---|---:|---:|"]
    for job in _jobs(rows):
        priced = [r for r in _answered(rows, job) if r.cheapest_gpu is not None]
        top = Counter(f"{r.cheapest_num_gpus} x {r.cheapest_gpu}" for r in priced).most_common(3)
        hourly = statistics.median(r.cheapest_usd_per_hour for r in priced) if priced else None  # type: ignore[type-var]
        per_m = [r.usd_per_million_tokens for r in priced if r.usd_per_million_tokens is not None]
        lines.append(f"| `{job}` | {', '.join(f'{name} ({n})' for name, n in top) or '–'} | "
                     f"{'–' if hourly is None else f'{hourly:,.2f}'} | "
                     f"{f'{statistics.median(per_m):,.3f}' if per_m else '–'} |")
    return lines


def _source_line(rows: Sequence[CensusRow]) -> str:
    per_model = {r.model: r.source for r in rows if not r.refused}
    counts = Counter(per_model.values())
    refused = {r.model for r in rows} - set(per_model)
    parts = [f"{n} {name}" for name, n in sorted(counts.items())]
    if refused:
        parts.append(f"{len(refused)} refused on every job")
    return ", ".join(parts)


def _classes_line() -> str:
    from hf_gpu_estimator.planner.census import class_capacity_bytes

    return ", ".join(f"{gb} GB: {class_capacity_bytes(gb) / GiB:.2f} GiB" for gb in GPU_CLASSES_GB)


def _refusal_lines(rows: Sequence[CensusRow], limit: int = 10) -> list[str]:
    reasons = Counter(f"`{r.job}`: {r.reason}" for r in rows if r.refused)
    return [f"- {n} x {reason}" for reason, n in reasons.most_common(limit)]


def dataset_card(census: Census, *, data_files: Sequence[str] = ("census.csv",), images: Sequence[str] = ()) -> str:
    """The README.md of the dataset folder, in the Hub's dataset card format (YAML front matter, then markdown)."""
    rows = census.rows
    n = len(rows)
    size = "n<1K" if n < 1_000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M"
    data = next((f for f in data_files if f.endswith(".parquet")), data_files[0] if data_files else "census.csv")
    jobs = "\n".join(f"| `{j.name}` | {j.kind} | "
                     + ", ".join(f"{k}={v}" for k, v in j.options.items()) + (f", engine={j.engine}" if j.engine else "")
                     + " |" for j in census.jobs)  # fmt: skip
    columns = "\n".join(f"| `{name}` | {kind} | {unit or '–'} | {meaning} |" for name, kind, unit, meaning in COLUMNS)
    version_lines = "\n".join(f"- {name}: {version}" for name, version in census.versions.items())
    plots = "\n\n".join(f"![{p.rsplit('/', 1)[-1].removesuffix('.png').replace('-', ' ')}]({p})" for p in images)
    return f"""---
pretty_name: {json.dumps(f"GPU demand of open LLMs: hfge census ({census.models or 'models'})")}
license: apache-2.0
tags:
- gpu
- llm
- memory-estimation
- hf-gpu-estimator
size_categories:
- {size}
configs:
- config_name: default
  data_files:
  - split: train
    path: {data}
---

# GPU demand of open LLMs: `hfge census`

One row per model × job: parameters, memory per device (with its measured range), the smallest GPU class that
holds it, the fewest GPUs of each catalog type, the cheapest option's $/hour, tokens/s and $ per million tokens,
and where the facts came from. Estimated by hf-gpu-estimator (`pip install hf-gpu-estimator`) before any launch: nothing was
downloaded but `config.json` and safetensors headers, and nothing was run on a GPU.

- Models: {len(census.model_ids)} ({census.models or 'as listed'}); facts: {_source_line(rows)}
- Rows: {n} ({sum(r.refused for r in rows)} refused, each with its reason)
- Date: {census.date}

## Share of models that run on one GPU of each class

{chr(10).join(_share_table(rows))}

## Cheapest option

{chr(10).join(_cheapest_table(rows))}

## Grid

| job | kind | estimator options |
|---|---|---|
{jobs}

GPUs counted and priced: {', '.join(census.gpus)} (the hf-gpu-estimator GPU catalog: usable memory, peak FLOP/s,
bandwidth and on-demand $/hour, each with its source and date). GPU classes and the usable memory each is judged
against (the least among the catalog's discrete GPUs of that size, so a class holds on every such card):
{_classes_line()}.

## Versions

{version_lines}

## Columns

| column | type | unit | meaning |
|---|---|---|---|
{columns}

## How the numbers are made

- Memory: hf-gpu-estimator's analytic model (weights, KV cache, activations, optimizer states, allocator and CUDA
  context); the range is its measured error band per attention path and task (docs/accuracy.md of the project).
- "Holds": the high end of the range within the device's usable memory less a 5 % margin.
- Speed: a roofline (decode bandwidth at 75 %, training at 40 % MFU); cost: the catalog's on-demand prices.
- A refused row is a model that could not be read (missing, gated, malformed) or a job the estimator refuses for
  it (a context past a learned position table, LoRA targets it lacks ...).

{plots}
"""


def docs_page(rows: Sequence[CensusRow], *, gpus: Sequence[str], images: Sequence[str] = (),
              command: str = "") -> str:
    """``docs/census.md``: "GPU demand of the catalog models", every figure counted from ``rows``."""
    models = list(dict.fromkeys(r.model for r in rows))
    plots = "\n\n".join(f"![{p.rsplit('/', 1)[-1].removesuffix('.png').replace('-', ' ')}]({p})" for p in images)
    refusals = _refusal_lines(rows)
    return f"""# GPU demand of the catalog models

How much GPU do open LLMs demand? This page is the census of the {len(models)} models of the bundled catalog
(`hfge census --models catalog`), every model × job estimated offline by the same arithmetic as `hfge estimate`.
Facts: {_source_line(rows)}. GPUs counted and priced: {', '.join(gpus)}.

Generated by `{command}`; `tests/test_census.py` fails when this page and the dataset
(`src/hf_gpu_estimator/data/census_catalog.csv`) disagree, or when the estimator no longer gives the dataset's rows.

## Share of models that run on one GPU of each class

"Runs" means the high end of the estimate's measured range fits, with a 5 % margin, the least usable memory among
the catalog's discrete GPUs of that size ({_classes_line()}).

{chr(10).join(_share_table(rows))}

## Cheapest option per model

The lowest $/hour among the GPUs above that hold the job (the fewest of each), at on-demand catalog prices;
$ per million tokens at that option's roofline speed (output tokens at batch 1 for inference).

{chr(10).join(_cheapest_table(rows))}

## Refusals

{chr(10).join(refusals) if refusals else 'None.'}

## Plots

{plots}

Release dates are not in the catalog; a census of the Hub (`--models hub:text-generation:N`) plots demand against
the repos' creation dates.
"""
