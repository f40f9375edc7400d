"""Measure mode on the CPU (tiny configs): measure_workload and the 'hfge measure' command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_gpu_estimator import cli  # noqa: E402
from hf_gpu_estimator.runtime.measure import measure_workload  # noqa: E402
from hf_gpu_estimator.workload import make_workload  # noqa: E402

TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 1024,
        "torch_dtype": "float32"}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY))
    return folder


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HFGE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_measure_workload_on_cpu() -> None:
    r = measure_workload(TINY, make_workload(task="training", batch_size=1, seq_len=16, precision="32-true"),
                         device="cpu", train_steps=2)
    assert r.device == "cpu" and r.allocated_peak_bytes is None  # no allocator statistics on CPU
    assert r.train_tokens_per_s and r.train_tokens_per_s > 0
    assert r.parameters > 0 and r.trainable_parameters == r.parameters
    assert "torch" in r.versions and "transformers" in r.versions


def test_cli_measure_cpu_saves_json(model_dir: Path, tmp_path: Path, cache: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.json"
    args = ["measure", str(model_dir), "--device", "cpu", "--batch-size", "1", "--seq-len", "16", "--new-tokens", "4",
            "--output", str(out)]
    assert cli.main([*args, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert saved == printed
    assert saved["format"] == "hfge-measure/1"
    assert saved["command"].startswith("hfge measure ") and "--new-tokens 4" in saved["command"]
    assert saved["workload"]["seq_len"] == 16 and saved["device"]["requested"] == "cpu"
    assert {"torch", "transformers"} <= set(saved["versions"])
    assert saved["measured"]["prefill_tokens_per_s"] > 0
    assert saved["analytic"]["allocated_peak_bytes"] > 0 and saved["analytic"]["errors"]["allocated"] is None
    assert saved["exact"]["allocated_peak_bytes"] > 0  # torch traces it
    assert saved["calibration"] is None and not cache.exists()  # CPU runs do not calibrate


def test_cli_measure_table(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["measure", str(model_dir), "--device", "cpu", "--task", "training", "--batch-size", "1",
                     "--seq-len", "16", "--steps", "2", "--no-exact", "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert "measured vs estimated" in text and "allocated peak" in text and "train" in text
    assert "skipped (--no-exact)" in text


def test_cli_measure_refuses_a_device_too_small(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli.measure, "_device_free_bytes", lambda device: (1 << 20, 1 << 30, "tiny-gpu"))
    assert cli.main(["measure", str(model_dir), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "free" in err and "analytic" in err and "smaller workload" in err and "--device cpu" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cli_measure_without_cuda(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["measure", str(model_dir), "--device", "cuda"]) == 2
    assert "--device cpu" in capsys.readouterr().err


def test_cli_measure_rejects_multi_gpu(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["measure", str(model_dir), "--device", "cpu", "--task", "training", "--num-gpus", "2",
                     "--strategy", "ddp"]) == 2
    assert "one device" in capsys.readouterr().err
