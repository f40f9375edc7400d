"""llama-server --mmproj: the projector file's weights and the image encoder's warm-up compute buffer
(memory/llamacpp.py ``clip_compute_buffer``) against the buffers llama.cpp's clip logged
(tests/data/llamacpp_clip_logs.json, each row with its source)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hf_gpu_estimator.hardware import get_gpu
from hf_gpu_estimator.memory.llamacpp import clip_compute_buffer
from hf_gpu_estimator.planner.engines import engine_capacity
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.workload import make_workload

ROOT = Path(__file__).resolve().parents[1]
LOGS = json.loads((ROOT / "tests/data/llamacpp_clip_logs.json").read_text(encoding="utf-8"))
MiB = 1 << 20
#: The compute buffer within 17 % of every buffer llama.cpp logged (worst: Qwen2.5-VL with flash attention,
#: -16 %, where the allocator's fragmentation around the freed f32 window mask is not modelled).
COMPUTE_TOLERANCE = 0.17
#: The projector file: f16 (or f32) of every vision parameter; the norms and biases convert_hf_to_gguf.py keeps
#: in f32 add a few kB.
WEIGHTS_TOLERANCE = 0.001


def _ours(row: dict) -> float:
    arch = lookup(row["model"]).architecture
    return clip_compute_buffer(arch.vision, flash_attention=row["flash_attention"],
                               out_hidden=arch.hidden_size).bytes / MiB


def _id(row: dict) -> str:
    return f"{row['model'].split('/')[-1]}-fa-{'on' if row['flash_attention'] else 'off'}-{row['logged_mib']}"


@pytest.mark.parametrize("row", LOGS["compute_buffers"], ids=_id)
def test_clip_compute_buffer_matches_llamacpp_logs(row: dict) -> None:
    arch = lookup(row["model"]).architecture
    buf = clip_compute_buffer(arch.vision, flash_attention=row["flash_attention"], out_hidden=arch.hidden_size)
    assert buf.image_side == row["image_side"], "the warm-up image differs from the log's"
    assert _ours(row) == pytest.approx(row["logged_mib"], rel=COMPUTE_TOLERANCE)


@pytest.mark.parametrize("row", LOGS["outliers"], ids=_id)
def test_clip_compute_buffer_is_not_under_a_later_build(row: dict) -> None:
    """The llama-server ollama runs reserves less for Qwen3-VL (its later graph code holds no deepstack layer
    outputs to the end, unverified): ours stays above it, the side that does not accept a model the card cannot
    hold."""
    assert _ours(row) >= row["logged_mib"]


@pytest.mark.parametrize("row", LOGS["weights"], ids=lambda r: r["model"].split("/")[-1])
def test_mmproj_weights_match_the_logged_model_size(row: dict) -> None:
    vision = lookup(row["model"]).architecture.vision_parameters
    assert vision * row["bytes_per_parameter"] / MiB == pytest.approx(row["logged_mib"], rel=WEIGHTS_TOLERANCE)


def test_serving_page_table_matches_the_model() -> None:
    """docs/serving.md's table of logged buffers against ours is what the model computes."""
    page = (ROOT / "docs/serving.md").read_text(encoding="utf-8")
    rows = LOGS["compute_buffers"] + LOGS["outliers"]
    table = re.findall(r"^\| \[[^\]]+\]\([^)]+\) \| ([^|]+) \| (on|off) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| "
                       r"([+-][\d.]+) % \|", page, re.MULTILINE)
    assert len(table) == len(rows), "docs/serving.md's --mmproj table has another row count than the logs"
    for row, (model, fa, side, logged, ours, error) in zip(rows, table):
        assert model.strip() == row["model"] and (fa == "on") == row["flash_attention"]
        assert int(side) == row["image_side"] and float(logged) == pytest.approx(row["logged_mib"])
        assert float(ours) == pytest.approx(_ours(row), abs=0.01)
        assert float(error) == pytest.approx(100 * (_ours(row) / row["logged_mib"] - 1), abs=0.1)


def test_flash_attention_drops_the_attention_scores() -> None:
    """Without flash attention the f32 scores of one layer, heads x n^2, dominate: 1 GiB for gemma-3's
    4096 patches (896 / 14 per side)."""
    vision = lookup("google/gemma-3-4b-it").architecture.vision
    off = clip_compute_buffer(vision, flash_attention=False, out_hidden=2560)
    on = clip_compute_buffer(vision, flash_attention=True, out_hidden=2560)
    assert off.positions == 4096 and off.bytes - on.bytes > 16 * 4096 * 4096 * 4 - on.bytes
    assert "896 x 896" in off.formula


def test_llamacpp_plan_counts_the_clip_buffer() -> None:
    """--mmproj adds the tower's f16 weights and the warm-up compute buffer, with llama-server's -fa."""
    spec, gpu = lookup("Qwen/Qwen2.5-VL-7B-Instruct"), get_gpu("RTX-4090")
    vision = spec.architecture.vision
    longest = {}
    for fa in ("on", "off"):
        text = engine_capacity(spec, make_workload(), gpu, engine="llama.cpp", ctx_size=8192, flash_attn=fa)
        both = engine_capacity(spec, make_workload(), gpu, engine="llama.cpp", ctx_size=8192, flash_attn=fa,
                               mmproj=True)
        longest[fa] = both.largest_max_model_len
        clip = clip_compute_buffer(vision, flash_attention=fa == "on", out_hidden=spec.architecture.hidden_size)
        added = 2 * spec.architecture.vision_parameters
        assert both.weights_bytes - text.weights_bytes == added
        assert both.profile_peak_bytes - text.profile_peak_bytes == added + clip.bytes
        note = next(a for a in both.assumptions if "--mmproj" in str(a))
        assert "1288 x 1288" in str(note) and f"flash attention {fa}" in str(note)
    # Without flash attention the 4.8 GiB buffer leaves the KV cache less room.
    assert longest["off"] < longest["on"]


def test_mmproj_of_a_tower_llamacpp_has_no_graph_for() -> None:
    """mllama (Llama 3.2 Vision) has no clip graph in llama.cpp's mtmd: its tower's weights are counted, the
    buffer is said to be left out."""
    spec = inspect_model({"model_type": "mllama"})  # configuration_mllama.py's defaults: Llama 3.2 11B Vision
    assert spec.architecture.vision is None and spec.architecture.vision_parameters
    cap = engine_capacity(spec, make_workload(), get_gpu("H100-SXM-80GB"), engine="llama.cpp", ctx_size=4096,
                         mmproj=True)
    assert any("not modelled" in str(a) for a in cap.assumptions)
