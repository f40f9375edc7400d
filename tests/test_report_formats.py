"""What people see: rich/plain/markdown tables, the fit verdicts, verified suggestions, --format json unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hf_gpu_estimator.cli import main
from hf_gpu_estimator.estimator import estimate
from hf_gpu_estimator.memory import estimate_memory
from hf_gpu_estimator.report import COMMON_GPUS, Section, estimate_sections, gib, gib_range, render_sections
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.suggest import suggest, suggestion_target

LLAMA = "meta-llama/Llama-2-7b-hf"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catalog models answer at once in offline mode (the isolated HF_HOME has no cache)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _training_7b() -> object:
    return estimate(lookup(LLAMA), task="training", batch_size=4, seq_len=1024, gpu="RTX-4090")


def test_json_is_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", LLAMA, "--format", "json"]) == 0
    out = capsys.readouterr().out
    est = estimate(LLAMA)
    assert out == json.dumps(est.to_dict(), indent=2) + "\n"
    data = json.loads(out)
    assert set(data["memory"]["components"]) >= {"weights", "kv_cache"}


@pytest.mark.parametrize("fmt", ["table", "text", "markdown"])
def test_estimate_formats_show_units_range_phase_and_fits(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", LLAMA, "--format", fmt]) == 0
    out = capsys.readouterr().out
    est = estimate(LLAMA)
    mem = est.memory
    assert gib(mem.components["weights"]) in out and gib(mem.device_total_bytes) in out
    assert gib_range(mem.allocated_low_bytes, mem.allocated_high_bytes) in out
    assert gib_range(*est.device_total_range_bytes) in out
    assert f"peak during {mem.phase_at_peak}" in out
    for name in ("RTX-4090", "A100-80GB-SXM", "H100-SXM-80GB"):
        assert name in out
    assert " G " not in out and "GiB" in out
    if fmt == "markdown":
        assert "| component | memory | share |" in out and "✓ fits" in out


def test_markdown_marks_and_escapes() -> None:
    text = render_sections([Section(title="t", header=("a", "b"), rows=(("x|y", "1.00 GiB"), ("z", "2")),
                                    row_styles=("bad", "total"))], "markdown")
    assert "x\\|y" in text and "✗ 1.00 GiB" in text and "**2**" in text and "|:---|---:|" in text


def test_plain_fallback_without_rich(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from hf_gpu_estimator.report import render

    monkeypatch.setattr(render, "rich_available", lambda: False)
    assert main(["estimate", LLAMA]) == 0
    out = capsys.readouterr().out
    assert "─" not in out and "device total (nvidia-smi, with CUDA context)" in out


def test_suggestions_fit_when_re_estimated() -> None:
    est = _training_7b()
    assert not est.fits()
    tips = suggest(est)
    assert tips and len(tips) <= 3
    budget = est.gpu.usable_memory_bytes * 0.95
    for tip in tips:
        assert estimate_memory(est.spec, tip.workload).device_total_bytes == tip.device_total_bytes <= budget
    assert {t.key for t in tips} & {"method", "combined", "gradient_checkpointing", "batch_size"}


def test_batch_suggestion_uses_the_largest_batch_that_fits() -> None:
    est = estimate(lookup(LLAMA), task="training", method="lora", batch_size=16, seq_len=2048, gpu="A100-80GB")
    tips = suggest(est)
    batch = next(t for t in tips if t.key == "batch_size")
    assert batch.workload.batch_size == min(est.max_batch_size(), 15)
    assert batch.workload.gradient_accumulation_steps * batch.workload.batch_size >= 16


def test_no_suggestions_when_it_fits() -> None:
    est = estimate(lookup(LLAMA), gpu="A100-80GB")
    assert suggest(est) == () and suggestion_target(est, ()) is None


def test_cli_prints_suggestions_for_the_asked_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", LLAMA, "--task", "training", "--batch-size", "4", "--gpu", "RTX-4090",
                 "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "does not fit" in out and "To fit RTX-4090 (24 GB)" in out and "--method qlora" in out


def test_sections_check_common_gpus() -> None:
    from hf_gpu_estimator.hardware import get_gpu

    est = estimate(lookup(LLAMA))
    sections = estimate_sections(est, gpus=tuple(get_gpu(g) for g in COMMON_GPUS))
    fits = next(s for s in sections if s.title and s.title.startswith("Fits"))
    assert len(fits.rows) == 3 and all(style == "ok" for style in fits.row_styles)


@pytest.mark.parametrize("argv", [
    ["inspect", LLAMA],
    ["gpus", "--vendor", "amd"],
    ["plan", "meta-llama/Llama-3.1-8B", "--gpu", "H100-SXM-80GB"],
], ids=["inspect", "gpus", "plan"])
@pytest.mark.parametrize("fmt", ["table", "markdown", "text"])
def test_other_commands_take_every_format(argv: list[str], fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert out.strip()
    if fmt == "markdown":
        assert "|---" in out or "|:---" in out


def test_plot_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "m.png"
    assert main(["estimate", LLAMA, "--format", "text", "--plot", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and "plot saved" in capsys.readouterr().err


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["estimate", "--help"], ["inspect", "--help"], ["gpus", "--help"], ["plan", "--help"],
                 ["serve", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        assert "examples:" in capsys.readouterr().out, argv


def test_bad_format_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", LLAMA, "--format", "yaml"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_import_stays_cheap() -> None:
    code = ("import sys, hf_gpu_estimator, hf_gpu_estimator.report, hf_gpu_estimator.suggest, hf_gpu_estimator.plots, "
            "hf_gpu_estimator.web, hf_gpu_estimator.cli; "
            "print(sorted(m for m in ('torch', 'matplotlib', 'gradio', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_notebook_displays_and_short_reprs() -> None:
    from hf_gpu_estimator import planner
    from hf_gpu_estimator.hardware import get_gpu

    est = estimate(lookup(LLAMA), gpu="RTX-4090")
    assert len(repr(est)) < 300 and "\n" not in repr(est) and "13.26–15.73 GiB" in repr(est)  # the inference/sdpa band (verdict.UNCERTAINTY)
    html, md = est._repr_html_(), est._repr_markdown_()
    assert "<table>" in html and "fits" in html and "| component | memory | share |" in md
    p = planner.plan(est.spec, est.workload, get_gpu("RTX-4090"))
    assert len(repr(p)) < 200 and "<table>" in p._repr_html_() and "max batch size" in p._repr_markdown_()


@pytest.mark.parametrize("fmt", ["table", "text", "markdown"])
def test_no_trailing_spaces_when_piped(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", LLAMA, "--task", "training", "--gpu", "RTX-4090", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line != line.rstrip()] == []


def test_compare_says_n_a_for_an_error_on_nothing() -> None:
    from hf_gpu_estimator.exact import Comparison, Difference
    from hf_gpu_estimator.report import compare_sections

    est = estimate(lookup(LLAMA))
    zero, tiny = Difference(analytic_bytes=0, exact_bytes=0), Difference(analytic_bytes=0, exact_bytes=1000)
    diff = Comparison(components={"activations": zero, "transient": tiny}, allocated_peak=zero, reserved_peak=zero,
                      device_total=zero, analytic_phase="decode", exact_phase="decode")
    (section,) = compare_sections(est.spec, est, est, diff)
    assert all(row[-1] == "n/a" for row in section.rows), section.rows
    assert diff.to_dict()["components"]["transient"]["relative_error"] == -1.0  # the JSON keeps the number


def test_ignored_options_are_one_warning_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", LLAMA, "--precision", "bf16-true", "--optimizer", "sgd", "--format", "json"]) == 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["hfge: warning: precision=bf16-true, optimizer=sgd do not apply to inference: ignored"]


def test_recipes_are_accepted() -> None:
    qlora = estimate(lookup(LLAMA), method="qlora", dtype="bfloat16")
    assert qlora.workload.task == "training" and qlora.workload.precision.compute_dtype == "bfloat16"
    assert qlora.workload.dtype == "bfloat16"
    assert estimate(lookup(LLAMA), method="lora").workload.is_training


def test_inspect_json_carries_every_architecture_field_and_the_kept_float32_counts() -> None:
    """``hfge inspect --format json`` serializes the whole Architecture (dataclasses.asdict), so fields added to
    it (loss_upcast, logit_heads, a mixer's scan ...) reach it without a renderer change; the float32-kept
    parameter counts that move the weights' bytes are there too."""
    import dataclasses

    from hf_gpu_estimator.report import spec_to_dict
    from hf_gpu_estimator.sources.headers import TensorInfo, build_spec

    config = {"model_type": "bart", "d_model": 64, "decoder_layers": 1, "encoder_layers": 1, "vocab_size": 100,
              "decoder_attention_heads": 4, "encoder_attention_heads": 4, "decoder_ffn_dim": 128}
    spec = build_spec(model_id="tiny-bart", config=config,
                      tensors=(TensorInfo(name="model.shared.weight", dtype="BF16", shape=(100, 64)),))
    out = json.loads(json.dumps(spec_to_dict(spec)))
    assert out["architecture"]["loss_upcast"] is False and out["architecture"]["logit_heads"] == 1
    assert set(out["architecture"]) == {f.name for f in dataclasses.fields(spec.architecture)}
    assert out["parameters_kept_fp32"] == {}
    router = TensorInfo(name="model.layers.0.mlp.gate.weight", dtype="BF16", shape=(4, 64))
    dsv3 = build_spec(model_id="tiny-dsv3", config={"model_type": "deepseek_v3", "num_hidden_layers": 1,
                                                                       "hidden_size": 64}, tensors=(router,))
    assert spec_to_dict(dsv3)["parameters_kept_fp32"] == {"bfloat16": 256, "float16": 256}
