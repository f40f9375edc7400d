"""benchmarks/oom_reports/inference.json: public reports of transformers inference that ran out of memory or ran.

Every row must resolve (catalog model, catalog GPU, the workload accepted by ``estimate``) and the verdicts must
stay at least as right as measured when the rows were written: an ``oom`` row is right when the verdict is
``does not fit`` (or ``would not start``), a ``ran`` row when it is ``fits``; ``tight`` is neither. Checked here
on its own, without the benchmark's runner.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from hf_gpu_estimator import estimate
from hf_gpu_estimator.hardware import get_gpu
from hf_gpu_estimator.sources.catalog import lookup

ROWS_FILE = Path(__file__).resolve().parents[1] / "benchmarks" / "oom_reports" / "inference.json"
ROWS = json.loads(ROWS_FILE.read_text(encoding="utf-8"))["rows"]
REQUIRED = ("id", "source", "quote", "model", "gpu", "num_gpus", "outcome", "workload", "assumed")
UNITS = ("GB", "GiB", "MiB", "MB")
METRICS = ("nvidia-smi", "max_memory_allocated", "max_memory_reserved", "oom message: in use",
           "oom message: allocated by PyTorch", "oom message: reserved by PyTorch")
RIGHT = {"oom": ("does not fit", "would not start"), "ran": ("fits",)}
#: Right verdicts out of the 27 rows (those from transformers <= 4.41 set framework "hf-4.41"); 0 wrong, 6 tight.
RIGHT_AT_LEAST = 21


def _verdict(row):
    options = dict(row["workload"])
    if row["num_gpus"] > 1:
        options["num_gpus"] = row["num_gpus"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimate(row["model"], gpu=get_gpu(row["gpu"]).name, **options).verdict().verdict


def test_rows_are_many_and_unique():
    ids = [row["id"] for row in ROWS]
    assert len(ids) >= 20 and len(set(ids)) == len(ids)
    assert {row["outcome"] for row in ROWS} == {"oom", "ran"}


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_row_is_complete_and_resolves(row):
    assert all(key in row for key in REQUIRED)
    assert row["source"].startswith("https://") and row["quote"]
    assert row["outcome"] in RIGHT and isinstance(row["assumed"], list)
    assert row["workload"].get("task", "inference") == "inference"
    observed = row.get("observed")
    if observed is not None:
        assert observed["unit"] in UNITS and observed["metric"] in METRICS and observed["value"] > 0
    assert lookup(row["model"]) is not None
    assert get_gpu(row["gpu"]).name == row["gpu"]
    assert _verdict(row) in ("fits", "tight", "does not fit", "would not start")


def test_verdicts_stay_right():
    verdicts = {row["id"]: (row["outcome"], _verdict(row)) for row in ROWS}
    right = [i for i, (outcome, v) in verdicts.items() if v in RIGHT[outcome]]
    wrong = [i for i, (outcome, v) in verdicts.items() if v != "tight" and v not in RIGHT[outcome]]
    assert len(right) >= RIGHT_AT_LEAST, f"right {len(right)}/{len(ROWS)}; wrong: {wrong}"
    assert not wrong, f"wrong verdicts: {wrong}"
