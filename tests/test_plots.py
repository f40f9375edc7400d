"""Charts render on the Agg backend to valid, non-trivial PNG files."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="plots need the [plot] extra (matplotlib)")

from hf_gpu_estimator import plots, planner  # noqa: E402
from hf_gpu_estimator.estimator import estimate  # noqa: E402
from hf_gpu_estimator.errors import InvalidArgumentError  # noqa: E402
from hf_gpu_estimator.hardware import get_gpu  # noqa: E402
from hf_gpu_estimator.sources.catalog import lookup  # noqa: E402
from hf_gpu_estimator.workload import make_workload  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LLAMA = "meta-llama/Llama-2-7b-hf"


def _assert_png(path: Path, *, min_bytes: int = 10_000) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is only {len(data)} bytes"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 300 and height > 300


def test_estimate_plot(tmp_path: Path) -> None:
    est = estimate(lookup(LLAMA), task="training", method="lora", batch_size=4, seq_len=2048, gpu="RTX-4090")
    out = est.plot(tmp_path / "bar.png")
    assert Path(out) == tmp_path / "bar.png"
    _assert_png(out)


def test_estimate_plot_returns_a_figure_without_path() -> None:
    fig = estimate(lookup(LLAMA)).plot(gpus=["A100-80GB"])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("A100-80GB-SXM" in t for t in labels) and any(t.startswith("weights") for t in labels)


@pytest.mark.parametrize("over, values", [("batch_size", [1, 4, 16, 64]), ("seq_len", [512, 2048, 8192])],
                         ids=["batch", "seq_len"])
def test_sweep(tmp_path: Path, over: str, values: list[int]) -> None:
    out = plots.sweep(lookup(LLAMA), {"task": "inference", "new_tokens": 128}, over=over, values=values,
                      gpu="A100-80GB", path=tmp_path / f"{over}.png")
    _assert_png(out)


def test_sweep_rejects_other_axes() -> None:
    with pytest.raises(InvalidArgumentError, match="over"):
        plots.sweep(lookup(LLAMA), over="layers")


def test_plan_chart_serving_training_and_plans(tmp_path: Path) -> None:
    spec = lookup("meta-llama/Llama-3.1-8B")
    serving = planner.cheapest_serving(spec, make_workload(), request_rate_per_s=2, input_tokens=512,
                                       output_tokens=128)
    _assert_png(plots.plan_chart(serving, path=tmp_path / "serving.png"))
    training = planner.cheapest_training(spec, make_workload(task="training", method="lora"), token_budget=1e8)
    _assert_png(plots.plan_chart(training, path=tmp_path / "training.png"))
    plans = [planner.plan(spec, make_workload(), get_gpu(g)) for g in ("A100-80GB", "H100-SXM-80GB", "L40S")]
    _assert_png(plots.plan_chart(plans, path=tmp_path / "plans.png"))
    with pytest.raises(InvalidArgumentError):
        plots.plan_chart("nope")
