"""Published fine-tuning runs against the analytic estimate: error per run, per framework and per method.

    .venv/bin/python benchmarks/training_runs/run.py            # table of every run + summary
    .venv/bin/python benchmarks/training_runs/run.py --summary  # the summary only
    .venv/bin/python benchmarks/training_runs/run.py --json     # one JSON object (rows + summary)

``runs.json`` holds each run as published: the framework and its version, the model (a Hub id the bundled
catalog knows, or a config dict), the GPU, every setting the source names, the figure it printed with its
unit and metric, the source URL and a quote. The runner passes the settings the estimator takes as keywords
of :func:`hf_gpu_estimator.estimate` and lists the others as unmodelled. The estimate compared is the one for
the metric the source printed: ``allocated_peak_bytes`` for ``max_memory_allocated`` and torchtune's
``peak_memory_active``, ``reserved_peak_bytes`` for ``max_memory_reserved``, ``device_total_bytes`` for
nvidia-smi. Error = estimate / measured - 1 (negative: the estimate is low).
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "src"))

from hf_gpu_estimator import estimate  # noqa: E402
from hf_gpu_estimator.workload import make_workload  # noqa: E402

RUNS = HERE / "runs.json"
UNITS = {"GB": 1e9, "GiB": float(1 << 30), "MiB": float(1 << 20), "MB": 1e6, "B": 1.0}
METRICS = {"max_memory_allocated": "allocated_peak_bytes", "peak_memory_active": "allocated_peak_bytes",
           "max_memory_reserved": "reserved_peak_bytes", "nvidia-smi": "device_total_bytes"}
#: Settings that describe the run but are not workload options (the input, not the memory).
DESCRIPTIVE = frozenset({"packed", "compile"})
TOLERANCE = 0.10


def load_runs(path: Path = RUNS) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["runs"]


def accepted_options() -> frozenset[str]:
    """Keyword options the estimator takes (the workload's, plus ``framework`` once it exists)."""
    names = set(inspect.signature(make_workload).parameters)
    return frozenset(names)


def evaluate(run: dict[str, Any], accepted: frozenset[str] | None = None) -> dict[str, Any]:
    """One run: the estimate for its metric, the measured bytes, the error and the unmodelled settings."""
    accepted = accepted_options() if accepted is None else accepted
    settings = dict(run["settings"])
    options: dict[str, Any] = {"task": "training"}
    unmodelled: dict[str, Any] = {}
    for key, value in settings.items():
        if key in accepted:
            options[key] = value
        elif key not in DESCRIPTIVE:
            unmodelled[key] = value
    if "framework" in accepted:
        # ``profile``: the framework's profile at the run's release where it differs from the current one.
        options["framework"] = run.get("profile", run["framework"])
    if run.get("num_gpus", 1) > 1:
        options["num_gpus"] = run["num_gpus"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = estimate(run["model"], **options)
    measured = run["measured"]["value"] * UNITS[run["measured"]["unit"]]
    predicted = getattr(est.memory, METRICS[run["measured"]["metric"]])
    return {"id": run["id"], "framework": run["framework"], "method": settings.get("method", "full"),
            "measured_bytes": int(measured), "estimate_bytes": int(predicted), "error": predicted / measured - 1,
            "phase_at_peak": est.memory.phase_at_peak, "unmodelled": unmodelled}


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per framework, per method and overall: runs, median error, within 10 %, under by more than 10 %."""
    groups: dict[str, list[float]] = {"all": [r["error"] for r in results]}
    for r in results:
        groups.setdefault(f"framework={r['framework']}", []).append(r["error"])
        groups.setdefault(f"method={r['method']}", []).append(r["error"])
    rows = []
    for name, errors in groups.items():
        rows.append({"group": name, "runs": len(errors), "median_error": statistics.median(errors),
                     "median_abs_error": statistics.median(abs(e) for e in errors),
                     "within_10pct": sum(abs(e) <= TOLERANCE for e in errors),
                     "under_by_more_than_10pct": sum(e < -TOLERANCE for e in errors)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--summary", action="store_true", help="print the summary only")
    parser.add_argument("--runs", type=Path, default=RUNS, help="the runs file (default: runs.json here)")
    args = parser.parse_args(argv)
    accepted = accepted_options()
    results = [evaluate(run, accepted) for run in load_runs(args.runs)]
    summary = summarize(results)
    if args.json:
        print(json.dumps({"runs": results, "summary": summary}, indent=1))
        return 0
    if not args.summary:
        print(f"{'run':48} {'measured':>9} {'estimate':>9} {'error':>7}  unmodelled")
        for r in results:
            print(f"{r['id']:48} {r['measured_bytes'] / 1e9:8.2f}G {r['estimate_bytes'] / 1e9:8.2f}G "
                  f"{r['error'] * 100:+6.1f}%  {', '.join(sorted(r['unmodelled'])) or '-'}")
        print()
    print(f"{'group':26} {'runs':>4} {'median':>7} {'|median|':>8} {'within 10%':>10} {'under >10%':>10}")
    for s in summary:
        print(f"{s['group']:26} {s['runs']:4d} {s['median_error'] * 100:+6.1f}% {s['median_abs_error'] * 100:7.1f}% "
              f"{s['within_10pct']:10d} {s['under_by_more_than_10pct']:10d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
