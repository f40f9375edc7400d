"""planner/engines: vLLM by version against published start-up logs, SGLang, llama.cpp, transformers, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import get_gpu
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.planner import plan
from hf_gpu_estimator.planner.engines import engine_capacity
from hf_gpu_estimator.planner.engines._capacity import kv_layout, pool_capacity
from hf_gpu_estimator.planner.engines.sglang import default_mem_fraction_static
from hf_gpu_estimator.planner.engines.vllm import (
    VLLM_VERSIONS,
    profile_activation_bytes,
    resolve_vllm_version,
    serving_capacity,
)
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.workload import make_workload

GiB = 1 << 30
ROWS = json.loads((Path(__file__).parent / "data" / "vllm_startup_logs.json").read_text())["rows"]
#: Pool tolerance: 2 % of the logged KV pool (the logs print GiB to two decimals; the profile's
#: activation peak is modelled, not traced).
POOL_TOLERANCE = 0.02


def _gpu_with_total(total_gib: float):  # type: ignore[no-untyped-def]
    return dataclasses.replace(get_gpu("H100-SXM-80GB"), usable_memory_bytes=int(total_gib * GiB))


@pytest.mark.parametrize("row", [r for r in ROWS if "weights_gib" in r["logged"] and not r.get("weights_from_log")],
                         ids=lambda r: r["id"])
def test_vllm_pool_matches_published_log(row: dict) -> None:  # type: ignore[type-arg]
    spec = lookup(row["model"])
    work = make_workload(dtype=row["dtype"], tp=row["tp"], num_gpus=row["tp"])
    cap = serving_capacity(spec, work, _gpu_with_total(row["gpu_total_gib"]), vllm_version=row["vllm_version"],
                           gpu_memory_utilization=row["gpu_memory_utilization"], max_model_len=row["max_model_len"])
    logged = row["logged"]
    assert cap.weights_bytes / GiB == pytest.approx(logged["weights_gib"], abs=0.01)
    error = cap.kv_pool_bytes / GiB / logged["kv_pool_gib"] - 1
    # pr10511 tp1: +0.66 %, tp2: +0.70 % (activation peak 0.91 GiB modelled vs 1.26 logged: the V0
    # sampler constant is fitted on the first row's 256 rows, the forward dominates at tp=2)
    assert abs(error) < POOL_TOLERANCE, f"{row['id']}: {error:+.2%}"


def test_vllm_v0_profile_with_logged_weights_would_not_start() -> None:
    """issue #13882: a 4-bit Qwen2.5-7B on an 8 GiB RTX 4060 at 0.7 utilisation, weights from the log."""
    row = next(r for r in ROWS if r["id"].startswith("issue13882"))
    arch = lookup(row["model"]).architecture
    rule = resolve_vllm_version(row["vllm_version"])
    act = profile_activation_bytes(arch, row["max_model_len"], 256, act_bytes=2, tp=1,
                                   sampler_bytes_per_logit=rule.sampler_bytes_per_logit)
    logged = row["logged"]
    assert act / GiB == pytest.approx(logged["activation_peak_gib"], rel=0.03)  # 1.40 vs 1.42 GiB: -1.6 %
    pool = row["gpu_total_gib"] * row["gpu_memory_utilization"] - logged["weights_gib"] - act / GiB \
        - rule.non_torch_bytes(1, 1) / GiB
    # -1.20 vs -1.05 GiB logged: the 0.7 rule counts 0.16 GiB non-torch where this log shows 0.03
    assert pool == pytest.approx(logged["kv_pool_gib"], abs=0.2)
    assert pool < 0


def test_vllm_pool_to_tokens_matches_log() -> None:
    """issue #21348: Qwen3-235B-A22B at tp=4: 8.11 GiB -> 178,880 tokens logged; -1.1 % below our blocks."""
    row = next(r for r in ROWS if r["id"].startswith("issue21348"))
    spec = lookup(row["model"])
    layout = kv_layout(spec, make_workload(tp=4, num_gpus=4), dtype_bytes=int(BYTES[row["kv_dtype"]]))
    _, tokens, _, _ = pool_capacity(layout, int(row["logged"]["kv_pool_gib"] * GiB), block_size=16,
                                    max_model_len=40960, max_position=40960)
    assert tokens / row["logged"]["kv_cache_tokens"] - 1 == pytest.approx(0, abs=POOL_TOLERANCE)


def test_vllm_fp32_profile_has_no_score_matrix() -> None:
    """vLLM's kernels never build the attention score matrix: fp32 only doubles the activations."""
    spec, gpu = lookup("meta-llama/Llama-3.1-8B-Instruct"), get_gpu("H100-SXM-80GB")
    bf16 = serving_capacity(spec, make_workload(), gpu, max_model_len=8192)
    fp32 = serving_capacity(spec, make_workload(dtype="float32"), gpu, max_model_len=8192)

    def act(c):  # type: ignore[no-untyped-def]
        return c.profile_peak_bytes - c.weights_bytes

    assert act(fp32) == pytest.approx(2 * act(bf16), rel=0.5)
    assert fp32.weights_bytes == 2 * bf16.weights_bytes


def test_vllm_versions_and_bad_input() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-8B-Instruct"), get_gpu("H100-SXM-80GB")
    assert resolve_vllm_version(None).version == "0.8"
    assert resolve_vllm_version("0.19.1").version == "0.8"
    assert resolve_vllm_version("v0.6").engine == "v0"
    for bad in ("0.5", "1.0", "latest", "0.8.x"):
        with pytest.raises(InvalidArgumentError, match="vllm_version"):
            resolve_vllm_version(bad)
    for util in (0, 1.5, -0.1, True):
        with pytest.raises(InvalidArgumentError, match=r"gpu_memory_utilization.*\(0, 1\]"):
            serving_capacity(spec, make_workload(), gpu, gpu_memory_utilization=util)
    with pytest.raises(InvalidArgumentError, match=r"max_model_len.*at most 131072.*factor of 2"):
        serving_capacity(spec, make_workload(), gpu, max_model_len=200_000)
    with pytest.raises(InvalidArgumentError, match=r"tp=3.*8 KV heads.*1, 2, 4, 8"):
        serving_capacity(spec, make_workload(tp=3, num_gpus=3), gpu)
    with pytest.raises(InvalidArgumentError, match="engine.*vllm, sglang, llama.cpp, transformers"):
        engine_capacity(spec, make_workload(), gpu, engine="tgi")
    with pytest.raises(InvalidArgumentError, match="ctx_size.*a setting of vllm"):
        engine_capacity(spec, make_workload(), gpu, engine="vllm", ctx_size=4096)
    assert set(VLLM_VERSIONS) == {"0.6", "0.7", "0.8"}


def test_would_not_start_is_said() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-70B"), get_gpu("H100-SXM-80GB")
    for engine in ("vllm", "sglang", "llama.cpp", "transformers"):
        cap = engine_capacity(spec, make_workload(), gpu, engine=engine)
        assert not cap.fits and cap.problem and "would not" in cap.problem, engine
    cap = serving_capacity(lookup("meta-llama/Llama-3.1-8B-Instruct"), make_workload(), get_gpu("L4"))
    assert cap.max_concurrent_sequences == 0 and "lower --max-model-len" in (cap.problem or "")


def test_sliding_window_layers_hold_more_sequences() -> None:
    """Hybrid allocator: gemma-3's sliding layers stop at the window, so a long context costs full blocks
    only in its full-attention layers."""
    spec, gpu = lookup("google/gemma-3-27b-it"), get_gpu("H200")
    cap = serving_capacity(spec, make_workload(), gpu, max_model_len=32768)
    assert cap.max_concurrent_sequences > 2 * cap.kv_cache_tokens // 32768
    assert "sliding-window" in " ".join(cap.assumptions)


def test_sglang_pool() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-8B-Instruct"), get_gpu("H100-SXM-80GB")
    frac = default_mem_fraction_static(gpu)
    assert frac == pytest.approx((gpu.usable_memory_bytes / GiB - 10.0) / (gpu.usable_memory_bytes / GiB), abs=1e-3)
    cap = engine_capacity(spec, make_workload(), gpu, engine="sglang", max_model_len=8192)
    assert cap.kv_cache_tokens == cap.kv_pool_bytes // cap.kv_bytes_per_token
    assert cap.fits and cap.engine == "sglang"
    with pytest.raises(InvalidArgumentError, match="mem_fraction_static"):
        engine_capacity(spec, make_workload(), gpu, engine="sglang", mem_fraction_static=1.2)


def test_llamacpp_slots_and_offload() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-8B-Instruct"), get_gpu("RTX-4090")
    cap = engine_capacity(spec, make_workload(quantization="int8"), gpu, engine="llama.cpp", ctx_size=16384,
                          parallel=4)
    assert cap.kv_cache_tokens == 16384 and cap.max_concurrent_sequences == 4 and cap.max_model_len == 4096
    half = engine_capacity(spec, make_workload(), gpu, engine="llama.cpp", ctx_size=16384, n_gpu_layers=16)
    assert half.weights_bytes < cap.weights_bytes * 1.2 and half.fits


def test_plan_that_does_not_fit_reports_the_smallest_configuration() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-70B"), get_gpu("H100-SXM-80GB")
    p = plan(spec, make_workload(seq_len=1024, new_tokens=256), gpu)
    assert not p.fits and p.min_gpus is not None and p.runs_on is not None
    assert p.runs_on.num_gpus == p.min_gpus.num_gpus > 1
    assert p.serving is not None and p.serving.tp == p.min_gpus.tp
    assert any("smallest configuration" in n for n in p.notes)
    assert p.to_dict()["runs_on"]["num_gpus"] == p.min_gpus.num_gpus


@pytest.mark.parametrize("engine", ["vllm", "sglang", "llama.cpp", "transformers"])
def test_plan_engine_json(engine: str) -> None:
    p = plan(lookup("Qwen/Qwen2.5-0.5B"), make_workload(), get_gpu("L4"), engine=engine, max_model_len=4096)
    out = p.to_dict()["serving"]
    assert out["engine"] == engine and out["kv_cache_tokens"] > 0 and out["max_concurrent_sequences"] >= 1


def test_cheapest_serving_defaults_and_unpriced_line() -> None:
    from hf_gpu_estimator.planner import cheapest_serving

    result = cheapest_serving(lookup("Qwen/Qwen2.5-0.5B"), make_workload())
    assert result.request_rate_per_s == 1.0 and result.input_tokens == 1024 and result.output_tokens == 256
    out = result.to_dict()
    assert set(out["unpriced"]) == set(result.unpriced)
    if result.unpriced:
        assert "no price" in (result.unpriced_note() or "")
