"""The analytic model against real GPU measurements committed in benchmarks/results/.

Reference: ``torch.cuda.max_memory_allocated`` per phase and ``max_memory_reserved`` measured by
``benchmarks/gpu_measure.py`` on an NVIDIA H200 (torch 2.11, transformers 5.17, CUDA 13.0), the
command and versions recorded in the file. Tolerances: allocated peak within 5 % for every case
whose architecture the matrix covers (documented gaps below), reserved within 25 %, device total
(nvidia-smi) within 15 %.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_gpu_estimator.memory import estimate_memory
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.workload import make_workload

ROOT = Path(__file__).resolve().parent.parent
RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.jsonl"))
#: Cases where the analytic model is known to miss, with the measured error and the reason.
KNOWN_GAPS: dict[str, tuple[float, str]] = {}


def _rows():
    for path in RESULTS:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row.get("kind") == "measure" and "measure" in row and "error" not in row:
                yield pytest.param(row, id=f"{path.stem}:{row['case']}")


def _estimate(row):
    name = row["case"].split("/")[0]
    config = json.loads((ROOT / "benchmarks" / "configs" / f"{name}.json").read_text())
    w = dict(row["workload"])
    for key in ("num_gpus", "strategy", "tp", "pp", "offload_optimizer", "offload_params"):
        w.pop(key, None)
    if w["task"] == "inference":
        w.pop("method")
    spec = inspect_model({k: v for k, v in config.items() if not k.startswith("_")})
    return estimate_memory(spec, make_workload(**w))


@pytest.mark.parametrize("row", list(_rows()))
def test_allocated_matches_measurement(row):
    est = _estimate(row)
    measured = max(row["measure"]["phase_peaks"].values())
    error = est.allocated_peak_bytes / measured - 1
    gap = KNOWN_GAPS.get(row["case"])
    limit = 0.05 if gap is None else abs(gap[0]) + 0.02
    assert abs(error) <= limit, f"{row['case']}: estimate {est.allocated_peak_bytes / 2**30:.2f} GiB vs measured " \
                                f"{measured / 2**30:.2f} GiB ({error:+.1%})"


#: Reserved (caching-allocator) outliers: measured reserved/allocated far above the typical range.
RESERVED_GAPS: dict[str, str] = {
    "tinyllama-1.1b/inf-eager-b4-s4096": "reserved/allocated 1.52: 4 GiB score tensors of several sizes "
                                         "(scores, fp32 softmax copy and output, cast) leave large cached blocks",
    "gemma-2-2b/train-bf16true-b2-s2048-gc": "reserved/allocated 1.33: checkpointed recomputation of 2 GiB "
                                             "eager score tensors per layer",
}


@pytest.mark.parametrize("row", list(_rows()))
def test_reserved_and_device_total_match_measurement(row):
    est = _estimate(row)
    m = row["measure"]
    if row["case"] in RESERVED_GAPS:
        assert est.reserved_peak_bytes < m["reserved_peak_bytes"] <= 1.6 * est.reserved_peak_bytes
        return
    assert abs(est.reserved_peak_bytes / m["reserved_peak_bytes"] - 1) <= 0.25
    if m.get("nvml_used_bytes"):
        assert abs(est.device_total_bytes / m["nvml_used_bytes"] - 1) <= 0.15


def test_results_are_present():
    assert RESULTS, "benchmarks/results/*.jsonl is missing"
