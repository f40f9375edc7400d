"""Regenerate docs/accuracy.md: analytic vs exact (traced) memory, and estimates vs committed GPU measurements.

    .venv/bin/python benchmarks/accuracy_report.py               # writes docs/accuracy.md (~1-2 min on a CPU)
    .venv/bin/python benchmarks/accuracy_report.py --out -       # print instead
    .venv/bin/python benchmarks/accuracy_report.py --no-matrix   # measurements only (no torch needed)
    .venv/bin/python benchmarks/accuracy_report.py --readme-only # README's figures from docs/accuracy.md

Part 1 runs every case of ``matrix.cases.CASES`` (small configs of real families,
traced on fake tensors; needs the torch extra). Part 2 reads every measurement under
``benchmarks/results/``: ``benchmarks/gpu_measure.py`` JSON lines (the models' configs are in
``benchmarks/configs/``) and ``hfge measure --output`` files (config inside); it compares the
analytic estimate (default overhead constants, no calibration) with the measured allocated,
reserved and nvidia-smi figures, and the measured throughput with ``perf.py``'s roofline for the
GPU the device name resolves to in the catalog.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

from hf_gpu_estimator.errors import EstimatorError  # noqa: E402

RESULTS = ROOT / "results"
CONFIGS = ROOT / "configs"
MiB = 1 << 20
GiB = 1 << 30


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.1f}%"


def gib(x: float | None) -> str:
    return "–" if x is None else f"{x / GiB:.2f}"


def rel(est: float | None, ref: float | None) -> float | None:
    return None if est is None or not ref else est / ref - 1


def summary(errors: Iterable[float]) -> tuple[str, str]:
    values = list(errors)
    if not values:
        return "–", "–"
    worst = max(values, key=abs)
    return pct(statistics.median(abs(v) for v in values)).replace("+", ""), pct(worst)


# --------------------------------------------------------------------------------------------
# Part 1: analytic vs exact.


def matrix_section() -> list[str]:
    import torch
    import transformers

    from matrix.cases import CASES, TOLERANCE, compare

    rows, by_family = [], {}
    start = time.perf_counter()
    for case in CASES:
        c = compare(case)
        by_family.setdefault(case.family, []).append(c.error)
        note = "" if abs(c.error) <= TOLERANCE else (f"known gap: {case.reason}" if case.known_gap else "**over tolerance**")
        rows.append(f"| {case.id} | {c.analytic_bytes / MiB:,.1f} | {c.traced_bytes / MiB:,.1f} | {pct(c.error)} | "
                    f"{c.analytic_phase} / {c.traced_phase} | {note} |")
    seconds = time.perf_counter() - start
    all_errors = [e for v in by_family.values() for e in v]
    med, worst = summary(all_errors)
    out = [
        "## 1. Analytic vs exact (traced) peak allocated memory",
        "",
        f"{len(CASES)} cases of `matrix.cases.CASES`: small configs of each family (the code paths of the "
        "full-size model), traced on fake tensors by exact mode (the real transformers code under torch's memory "
        "tracker). Error = analytic / traced − 1, on `allocated_peak_bytes` without the cuBLAS workspace (which a "
        f"trace cannot see). The test suite holds each case within ±{TOLERANCE:.0%}.",
        "",
        f"Traced with torch {torch.__version__}, transformers {transformers.__version__}, Python "
        f"{platform.python_version()}, in {seconds:.0f} s.",
        "",
        f"**Overall: median |error| {med}, worst {worst}.**",
        "",
        "| family | cases | median \\|error\\| | worst |",
        "|---|---:|---:|---:|",
    ]
    for family, errors in by_family.items():
        m, w = summary(errors)
        out.append(f"| {family} | {len(errors)} | {m} | {w} |")
    out += ["", "| case | analytic MiB | traced MiB | error | peak phase (analytic / traced) | note |",
            "|---|---:|---:|---:|---|---|"]
    return out + rows + [""]


# --------------------------------------------------------------------------------------------
# Part 2: GPU measurements.


def _measurements() -> list[dict[str, Any]]:
    """One dict per measured run: config, workload, measured figures, environment, source."""
    runs: list[dict[str, Any]] = []
    for path in sorted(RESULTS.glob("*.jsonl")):
        env: dict[str, Any] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("case") == "_environment":
                env = row
                continue
            if row.get("kind") != "measure" or "measure" not in row or "error" in row:
                continue
            name = row["case"].split("/")[0]
            config_path = CONFIGS / f"{name}.json"
            m = row["measure"]
            config = json.loads(config_path.read_text()) if config_path.exists() else None
            runs.append({"id": row["case"], "config": config, "workload": row["workload"],
                         "measured": m, "other_bytes": env.get("nvml_used_bytes_at_start") or 0,
                         "device_name": m.get("device_name") or env.get("device_name"),
                         "versions": env.get("versions") or m.get("versions") or {},
                         "source": path.name,
                         "command": f"python benchmarks/gpu_measure.py --out DIR (case {row['case']})"})
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != "hfge-measure/1" or data["measured"].get("allocated_peak_bytes") is None:
            continue
        runs.append({"id": path.stem, "config": data["model"]["config"], "workload": data["workload"],
                     "measured": data["measured"], "other_bytes": data["device"].get("other_processes_bytes") or 0,
                     "device_name": data["device"]["name"], "versions": data["versions"], "source": path.name,
                     "command": data["command"]})
    return runs


def _workload_kwargs(w: dict[str, Any]) -> dict[str, Any]:
    keys = ("task", "method", "batch_size", "seq_len", "new_tokens", "dtype", "precision", "optimizer",
            "gradient_checkpointing", "gradient_accumulation_steps", "attn_implementation", "quantization",
            "kv_cache_dtype", "lora_rank", "lora_alpha", "lora_targets")
    out = {k: w[k] for k in keys if k in w}
    if isinstance(out.get("lora_targets"), list):
        out["lora_targets"] = ",".join(out["lora_targets"])
    if out.get("task") == "training":
        out.pop("new_tokens", None)
    return out


def measurement_section() -> list[str]:
    from hf_gpu_estimator import perf
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator.sources import inspect_model

    runs = _measurements()
    memory_rows, speed_rows, envs = [], [], {}
    errs: dict[str, list[float]] = {"allocated": [], "reserved": [], "total": [], "prefill": [], "decode": [],
                                    "train": []}
    for r in runs:
        m = r["measured"]
        envs.setdefault(r["source"], (r["device_name"], r["versions"], r["command"]))
        if r["config"] is None:
            memory_rows.append(f"| {r['id']} | {gib(m['allocated_peak_bytes'])} | – | – | – | – | – | – | – | – | "
                               f"no config in benchmarks/configs/ |")
            continue
        try:
            spec = inspect_model(dict(r["config"]))
            est = estimate(spec, calibration=False, **_workload_kwargs(r["workload"]))
            gpu = get_gpu(r["device_name"])
        except EstimatorError as e:
            memory_rows.append(f"| {r['id']} | – | – | – | – | – | – | – | – | – | {e} |")
            continue
        mem = est.memory
        nvml = m.get("nvml_used_bytes")
        total = nvml - r["other_bytes"] if nvml is not None else None
        e_alloc = rel(mem.allocated_peak_bytes, m["allocated_peak_bytes"])
        e_res = rel(mem.reserved_peak_bytes, m.get("reserved_peak_bytes"))
        e_tot = rel(mem.device_total_bytes, total)
        for key, value in (("allocated", e_alloc), ("reserved", e_res), ("total", e_tot)):
            if value is not None:
                errs[key].append(value)
        memory_rows.append(
            f"| {r['id']} | {gib(m['allocated_peak_bytes'])} | {gib(mem.allocated_peak_bytes)} | {pct(e_alloc)} | "
            f"{gib(m.get('reserved_peak_bytes'))} | {gib(mem.reserved_peak_bytes)} | {pct(e_res)} | {gib(total)} | "
            f"{gib(mem.device_total_bytes)} | {pct(e_tot)} | |")
        work = est.workload
        cells = []
        try:
            if work.is_training:
                roof = perf.training_speed(spec, work, gpu)
                pairs = [("train", m.get("train_tokens_per_s"), roof.tokens_per_s)]
            else:
                roof_i = perf.inference_speed(spec, work, gpu)
                pairs = [("prefill", m.get("prefill_tokens_per_s"), roof_i.prefill_tokens_per_s),
                         ("decode", m.get("decode_tokens_per_s"), roof_i.decode_tokens_per_s)]
        except EstimatorError as e:
            speed_rows.append(f"| {r['id']} | {gpu.name} | – | – | – | – ({e}) |")
            continue
        for kind, measured, estimated in pairs:
            err = rel(estimated, measured)
            if err is not None:
                errs[kind].append(err)
            cells.append((kind, measured, estimated, err))
        for kind, measured, estimated, err in cells:
            speed_rows.append(f"| {r['id']} | {gpu.name} | {kind} | "
                              f"{'–' if measured is None else f'{measured:,.0f}'} | {estimated:,.0f} | {pct(err)} |")
    out = [
        "## 2. Estimates vs GPU measurements",
        "",
        "Every measurement committed under `benchmarks/results/`, against the analytic estimate with the default "
        "overhead constants of `memory/overhead.py` (no calibration: a calibration seeded from these same runs "
        "would be circular). Measured: allocated = `torch.cuda.max_memory_allocated()`, reserved = "
        "`max_memory_reserved()`, nvidia-smi = used memory at the end of the run minus what other processes held "
        "before it. Error = estimate / measured − 1. Random weights built from each model's config.json.",
        "",
        "### Where the numbers come from",
        "",
        "| file | device | versions | command |",
        "|---|---|---|---|",
    ]
    for source, (device, versions, command) in envs.items():
        v = ", ".join(f"{k} {versions[k]}" for k in ("torch", "transformers", "peft", "cuda", "driver") if k in versions)
        shown = command if not command.startswith("python benchmarks/gpu_measure.py") else \
            "python benchmarks/gpu_measure.py --out DIR"
        out.append(f"| `{source}` | {device} | {v} | `{shown}` |")
    out += ["", "### Memory (GiB)", ""]
    for key, label in (("allocated", "allocated"), ("reserved", "reserved"), ("total", "nvidia-smi total")):
        med, worst = summary(errs[key])
        out.append(f"- {label}: {len(errs[key])} runs, median |error| {med}, worst {worst}")
    out += ["", "| run | measured allocated | estimated | error | measured reserved | estimated | error | "
                "nvidia-smi | estimated total | error | note |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|", *memory_rows, "",
            "### Throughput (tokens/s) vs the roofline of `perf.py`", "",
            "The roofline is a planning figure (datasheet peak × MFU, or bandwidth-bound decode), not a benchmark: "
            "these runs use random weights in eager PyTorch with `generate`-like Python loops, so small models and "
            "decode are far below it (launch overhead dominates), and inference figures come from one cold run (no "
            "warm-up pass: the prefill includes CUDA's lazy kernel loading and cuBLAS initialization).", ""]
    for key in ("prefill", "decode", "train"):
        med, worst = summary(errs[key])
        out.append(f"- {key}: {len(errs[key])} runs, median |error| {med}, worst {worst}")
    out += ["", "| run | GPU (catalog) | phase | measured | roofline estimate | error |", "|---|---|---|---:|---:|---:|",
            *speed_rows, ""]
    return out


# --------------------------------------------------------------------------------------------
# The README's figures, generated from the report (tests/test_docs_figures.py checks they agree).

README = ROOT.parent / "README.md"
REPORT = ROOT.parent / "docs" / "accuracy.md"
README_BEGIN = "<!-- accuracy figures: generated from docs/accuracy.md by benchmarks/accuracy_report.py; do not edit -->"
README_END = "<!-- end of accuracy figures -->"


def readme_figures(report: str) -> str:
    """The README's two accuracy bullets, every figure read from the text of docs/accuracy.md."""
    import re

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, report)
        if match is None:
            raise SystemExit(f"docs/accuracy.md has no line matching {pattern!r}: regenerate it")
        return match

    cases = find(r"(\d+) cases of `matrix.cases.CASES`").group(1)
    overall = find(r"\*\*Overall: median \|error\| ([\d.]+%), worst ([-+\d.]+%)\.\*\*")
    memory = {key: find(rf"- {key}: (\d+) runs, median \|error\| ([\d.]+%), worst ([-+\d.]+%)")
              for key in ("allocated", "reserved", "nvidia-smi total")}
    devices = sorted(set(re.findall(r"^\| `[^`]+` \| ([^|]+?) \|", report, flags=re.M)))
    runs = memory["allocated"].group(1)
    return "\n".join([
        "* against **traces of the real implementation** (exact mode: the transformers model built on fake",
        f"  tensors, run under PyTorch's memory tracker): {cases} cases of families × inference/training ×",
        f"  eager/sdpa × checkpointing × precisions × optimizers, median |error| {overall.group(1)}, worst",
        f"  {overall.group(2)} (`tests/test_accuracy_matrix.py`; the known gaps are named in the report);",
        f"* against **real GPU measurements**: {runs} runs on {', '.join(devices)} in `benchmarks/results/`:",
        f"  allocated median |error| {memory['allocated'].group(2)}, worst {memory['allocated'].group(3)};",
        f"  nvidia-smi total median {memory['nvidia-smi total'].group(2)}, worst {memory['nvidia-smi total'].group(3)}",
        "  (fragmentation under eager attention and checkpointing), which is why each verdict compares the",
        "  high end of the measured range with the GPU; see [docs/accuracy.md](docs/accuracy.md).",
    ])


def update_readme(report: str) -> None:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    README.write_text(text[:start] + "\n" + readme_figures(report) + "\n" + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPORT), help="output file, or - for stdout")
    parser.add_argument("--no-matrix", action="store_true", help="skip part 1 (the traces)")
    parser.add_argument("--readme-only", action="store_true",
                        help="only rewrite the README's figures from the existing docs/accuracy.md")
    args = parser.parse_args(argv)
    if args.readme_only:
        update_readme(REPORT.read_text(encoding="utf-8"))
        print(f"wrote {README}", file=sys.stderr)
        return 0
    lines = ["# Accuracy", "", "Generated by `benchmarks/accuracy_report.py`; do not edit by hand.", ""]
    if not args.no_matrix:
        lines += matrix_section()
    lines += measurement_section()
    text = "\n".join(lines).rstrip() + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
        if Path(args.out).resolve() == REPORT.resolve() and not args.no_matrix:
            update_readme(text)
            print(f"wrote {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
