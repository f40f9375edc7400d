"""Per-device calibration (calibration.py): samples, the file, aggregation, and estimates that use it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from hf_gpu_estimator import calibration
from hf_gpu_estimator.calibration import DeviceCalibration, Sample
from hf_gpu_estimator.errors import UnknownNameError
from hf_gpu_estimator.estimator import estimate
from hf_gpu_estimator.memory import overhead
from hf_gpu_estimator.verdict import CONTEXT_KEY, RATIO_KEY, key_of

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
H200_JSONL = RESULTS / "h200-2026-11-26.jsonl"
MiB = 1 << 20
LLAMA = {"model_type": "llama", "hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8,
         "num_attention_heads": 16, "num_key_value_heads": 4, "vocab_size": 32000, "torch_dtype": "bfloat16"}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "hfge-cache"
    monkeypatch.setenv(calibration.CACHE_ENV, str(folder))
    return folder


def _sample(task: str = "training", allocated: int = 1000 * MiB, reserved: int = 1100 * MiB,
            used: int | None = 1900 * MiB, name: str = "NVIDIA H200", source: str = "t") -> Sample:
    return Sample(device_name=name, task=task, allocated_peak_bytes=allocated, reserved_peak_bytes=reserved,
                  nvml_used_bytes=used, source=source)


def test_cache_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert calibration.calibration_path() == tmp_path / "hfge-cache" / "calibration.json"
    monkeypatch.delenv(calibration.CACHE_ENV)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert calibration.cache_dir() == tmp_path / "hf" / "hf_gpu_estimator"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert calibration.cache_dir() == tmp_path / "xdg" / "hf_gpu_estimator"


def test_seed_from_the_committed_h200_runs(cache: Path) -> None:
    samples = calibration.seed_from_jsonl([H200_JSONL])
    assert len(samples) == 33  # the measure lines without an error
    cal = calibration.find_calibration("NVIDIA H200")
    assert cal is not None and cal.gpu == "H200-SXM-141GB"
    # overhead.py: context 685-843 MiB (nvml used - reserved), ratios 1.008-1.28 / 1.03-1.24.
    assert 650 * MiB < cal.cuda_context_bytes < 900 * MiB
    assert cal.ratio_runs == {"inference": 12, "training": 21}
    assert 1.0 < cal.reserved_ratio["inference"] < 1.1 and 1.03 < cal.reserved_ratio["training"] < 1.12
    assert calibration.find_calibration("H200") == cal  # the catalog name resolves to the device
    # Seeding twice adds nothing.
    calibration.seed_from_jsonl([H200_JSONL])
    data = json.loads((cache / "calibration.json").read_text())
    assert len(data["devices"]["NVIDIA H200"]["samples"]) == 33


def test_median_ignores_implausible_runs() -> None:
    samples = [_sample(used=1900 * MiB), _sample(used=1800 * MiB), _sample(used=1700 * MiB),
               _sample(used=50 << 30), _sample(reserved=900 * MiB, used=None)]  # context 50 GiB; ratio < 1
    cal = DeviceCalibration.from_samples("NVIDIA H200", samples)
    assert cal.cuda_context_bytes == 700 * MiB and cal.context_runs == 3
    assert cal.reserved_ratio == {"training": 1.1} and cal.ratio_runs == {"training": 4}


def test_estimate_with_gpu_uses_the_calibration_and_keeps_tensor_terms() -> None:
    calibration.record([_sample(task="training", used=1900 * MiB), _sample(task="training", used=1900 * MiB, source="u")])
    kw = dict(task="training", batch_size=2, seq_len=512, gpu="H200")
    plain = estimate(dict(LLAMA), calibration=False, **kw)
    cal = estimate(dict(LLAMA), **kw)
    assert cal.memory.components == plain.memory.components
    assert cal.memory.allocated_peak_bytes == plain.memory.allocated_peak_bytes
    assert cal.memory.cuda_context_bytes == 800 * MiB
    assert cal.memory.reserved_peak_bytes == overhead.reserved_bytes(cal.memory.allocated_peak_bytes, "training", 1.1)
    assert cal.memory.device_total_bytes == cal.memory.reserved_peak_bytes + 800 * MiB
    text = "\n".join(cal.assumptions)
    assert "calibrated: median of 2 training runs on NVIDIA H200" in text
    # the default overhead lines are replaced by key, and the calibrated ones carry the same keys
    assert [key_of(a) for a in cal.assumptions].count(RATIO_KEY) == 1
    assert [key_of(a) for a in cal.assumptions].count(CONTEXT_KEY) == 1
    assert sum(a.startswith("reserved = allocated x") for a in cal.assumptions) == 1
    assert sum(a.startswith("device total = reserved") for a in cal.assumptions) == 1
    # Another GPU: no calibration applies; an explicit device name applies without gpu=.
    assert estimate(dict(LLAMA), task="training", gpu="A100-80GB").memory.cuda_context_bytes == overhead.CUDA_CONTEXT_BYTES
    assert estimate(dict(LLAMA), task="training", calibration="NVIDIA H200").memory.cuda_context_bytes == 800 * MiB


def test_task_without_runs_keeps_the_default_ratio() -> None:
    calibration.record([_sample(task="training")])
    est = estimate(dict(LLAMA), gpu="H200", batch_size=1, seq_len=128, new_tokens=1)
    assert any("default: the calibration of NVIDIA H200 has no inference runs" in a for a in est.assumptions)


def test_unknown_calibrated_device_is_an_error() -> None:
    with pytest.raises(UnknownNameError, match="calibrated device"):
        estimate(dict(LLAMA), calibration="NVIDIA B200")


def test_corrupt_file_is_ignored_with_a_warning(cache: Path) -> None:
    cache.mkdir(parents=True)
    (cache / "calibration.json").write_text("{not json")
    with pytest.warns(RuntimeWarning, match="corrupt calibration file"):
        est = estimate(dict(LLAMA), gpu="H200")
    assert est.memory.cuda_context_bytes == overhead.CUDA_CONTEXT_BYTES
    (cache / "calibration.json").write_text(json.dumps({"format": calibration.FORMAT, "version": 1, "devices": {
        "NVIDIA H200": {"samples": [{"device_name": "NVIDIA H200", "task": "training"}]}}}))
    with pytest.warns(RuntimeWarning, match="allocated_peak_bytes"):
        assert calibration.find_calibration("H200") is None
    # Recording replaces the corrupt file with a valid one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calibration.record([_sample()])
    assert calibration.find_calibration("H200") is not None


def test_written_atomically(cache: Path) -> None:
    path = calibration.record([_sample()])
    assert path == cache / "calibration.json"
    assert [p.name for p in cache.iterdir()] == ["calibration.json"]  # no temporary file left
    assert json.loads(path.read_text())["format"] == calibration.FORMAT


def test_analytic_path_reads_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(path: Path) -> None:
        raise AssertionError(f"read {path}")

    monkeypatch.setattr(calibration, "_read", boom)
    estimate(dict(LLAMA))
    estimate(dict(LLAMA), gpu="H200", calibration=False)


def test_record_measurement_from_a_measure_result(cache: Path) -> None:
    from hf_gpu_estimator.workload import make_workload

    cuda = SimpleNamespace(device_name="NVIDIA H100 80GB HBM3", allocated_peak_bytes=1000 * MiB,
                           reserved_peak_bytes=1050 * MiB, nvml_used_bytes=2000 * MiB, versions={"torch": "2.x"})
    path = calibration.record_measurement(cuda, make_workload(), source="hfge measure x", other_processes_bytes=100 * MiB)
    assert path is not None
    cal = calibration.find_calibration("H100-SXM-80GB")
    assert cal is not None and cal.cuda_context_bytes == 850 * MiB and cal.reserved_ratio == {"inference": 1.05}
    cpu = SimpleNamespace(device_name="x86_64", allocated_peak_bytes=None, reserved_peak_bytes=None,
                          nvml_used_bytes=None, versions={})
    assert calibration.record_measurement(cpu, make_workload(), source="cpu") is None


def test_seed_reads_hfge_measure_files() -> None:
    files = sorted(RESULTS.glob("*.json"))
    samples = [s for f in files for s in calibration.samples_from_measure_json(f)]
    assert len(samples) == len(files) >= 1
    assert {s.device_name for s in samples} == {"NVIDIA H200"}


def test_deeply_nested_calibration_file_is_ignored_with_a_warning(tmp_path, monkeypatch):
    from hf_gpu_estimator import calibration

    monkeypatch.setenv("HFGE_CACHE_DIR", str(tmp_path))
    (tmp_path / "calibration.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.warns(RuntimeWarning, match="corrupt calibration"):
        assert calibration.find_calibration("NVIDIA H200") is None
