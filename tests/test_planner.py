"""planner/: fit searches, min GPUs, vLLM serving capacity, cheapest plans, fleet, and the CLI."""

from __future__ import annotations

import json
import math

import pytest

from hf_gpu_estimator.cli import main
from hf_gpu_estimator.errors import InfeasiblePlanError
from hf_gpu_estimator.estimator import estimate
from hf_gpu_estimator.hardware import get_gpu
from hf_gpu_estimator.memory import estimate_memory
from hf_gpu_estimator.planner import (
    RequestBucket,
    cheapest_serving,
    cheapest_training,
    heterogeneous_serving,
    max_batch_size,
    max_seq_len,
    min_gpus,
    plan,
    plan_fleet,
    serving_capacity,
    vllm_batch_defaults,
)
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.workload import make_workload

PRICED = ["L4", "A10", "L40S", "A100-80GB-SXM", "H100-SXM-80GB"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _usable(gpu_name: str, margin: float = 0.05) -> float:
    return get_gpu(gpu_name).usable_memory_bytes * (1 - margin)


def _fits(spec, work, gpu_name: str) -> bool:
    """The one fit (issue 21): the searches' boundary is its verdict, the high end of the range."""
    from hf_gpu_estimator.planner.deployment import Deployment, fit

    p = work.parallelism
    return fit(spec, work, Deployment(gpu=get_gpu(gpu_name), tp=p.tp, pp=p.pp, num_gpus=p.num_gpus)).fits


@pytest.mark.parametrize("task", ["inference", "training"])
def test_max_batch_size_is_the_boundary(task: str) -> None:
    spec, gpu = lookup("Qwen/Qwen2.5-0.5B"), get_gpu("RTX-4090")
    work = make_workload(task=task, seq_len=1024)
    b = max_batch_size(spec, work, gpu)
    assert b >= 1
    assert _fits(spec, work.with_(batch_size=b), "RTX-4090")
    assert not _fits(spec, work.with_(batch_size=b + 1), "RTX-4090")


def test_max_batch_size_zero_when_weights_do_not_fit() -> None:
    assert max_batch_size(lookup("meta-llama/Llama-3.1-70B"), make_workload(), get_gpu("RTX-4090")) == 0


def test_max_seq_len_capped_by_positions() -> None:
    spec = lookup("openai-community/gpt2")  # 1024 positions
    work = make_workload(seq_len=16, new_tokens=24)
    assert max_seq_len(spec, work, get_gpu("H100-SXM-80GB")) == 1024 - 24


def test_max_seq_len_is_the_boundary() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-8B"), get_gpu("RTX-4090")
    work = make_workload(task="training", method="qlora", batch_size=1, gradient_checkpointing=True)
    s = max_seq_len(spec, work, gpu)
    assert 1 < s < spec.architecture.max_position_embeddings
    assert _fits(spec, work.with_(seq_len=s), "RTX-4090")
    assert not _fits(spec, work.with_(seq_len=s + 1), "RTX-4090")


def test_min_gpus_inference_uses_tensor_parallel() -> None:
    spec = lookup("meta-llama/Llama-3.1-70B")
    par = min_gpus(spec, make_workload(seq_len=1024, new_tokens=256), get_gpu("A100-80GB-SXM"))
    assert (par.num_gpus, par.tp, par.pp) == (2, 2, 1)
    assert "tensor parallel 2" in par.description


def test_min_gpus_training_escalates_strategy() -> None:
    spec = lookup("meta-llama/Llama-3.1-8B")
    work = make_workload(task="training", batch_size=1, seq_len=2048, gradient_checkpointing=True)
    par = min_gpus(spec, work, get_gpu("A100-80GB-SXM"))
    assert par.num_gpus > 1 and par.strategy in ("zero2", "zero3")
    assert _fits(spec, par.workload, "A100-80GB-SXM")


def test_min_gpus_infeasible_says_why() -> None:
    # Llama-3.1-405B in fp32 (1.6 TB) on 10 GB GPUs: at most tp 8 x pp 16 = 128 GPUs, 1.28 TB.
    with pytest.raises(InfeasiblePlanError, match="does not fit") as info:
        min_gpus(lookup("meta-llama/Llama-3.1-405B"), make_workload(dtype="float32"), get_gpu("RTX-3080-10GB"))
    assert "tensor parallel 8 x pipeline parallel 16" in str(info.value)


def test_vllm_batch_defaults() -> None:
    assert vllm_batch_defaults(get_gpu("H100-SXM-80GB")) == (8192, 1024)
    assert vllm_batch_defaults(get_gpu("A100-80GB-SXM")) == (2048, 256)  # A100 excluded (vLLM PR #17885)
    assert vllm_batch_defaults(get_gpu("L4")) == (2048, 256)


def test_serving_capacity_formula() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-8B"), get_gpu("H100-SXM-80GB")
    cap = serving_capacity(spec, make_workload(), gpu, max_model_len=8192)
    arch = spec.architecture
    per_token = 2 * arch.num_key_value_heads * arch.head_dim * 2 * arch.num_layers  # bf16 K and V
    assert cap.kv_bytes_per_token == per_token == 131072
    expected_pool = int(gpu.usable_memory_bytes * 0.9 - cap.profile_peak_bytes - cap.non_torch_bytes)
    assert cap.kv_pool_bytes == expected_pool
    assert cap.num_blocks == expected_pool // (16 * per_token)
    assert cap.kv_cache_tokens == cap.num_blocks * 16
    assert cap.max_concurrent_sequences == cap.num_blocks // (8192 // 16)
    # Weights 16.06 GB; the pool is what is left of 0.9 x the reported total: ~54-57 GiB -> ~450k tokens.
    assert 400_000 < cap.kv_cache_tokens < 490_000
    assert cap.fits and cap.largest_max_model_len == 131072


def test_serving_capacity_mla_caches_latent() -> None:
    spec = lookup("deepseek-ai/DeepSeek-V3")
    arch = spec.architecture
    cap = serving_capacity(spec, make_workload(num_gpus=8, tp=8), get_gpu("H200-SXM-141GB"), max_model_len=4096)
    assert cap.kv_bytes_per_token == (arch.kv_lora_rank + arch.qk_rope_head_dim) * 2 * arch.num_layers


def test_serving_capacity_lower_utilization_shrinks_pool() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-8B"), get_gpu("L40S")
    hi = serving_capacity(spec, make_workload(), gpu, gpu_memory_utilization=0.9)
    lo = serving_capacity(spec, make_workload(), gpu, gpu_memory_utilization=0.5)
    assert lo.kv_cache_tokens < hi.kv_cache_tokens


def test_serving_capacity_does_not_fit() -> None:
    cap = serving_capacity(lookup("meta-llama/Llama-3.1-8B"), make_workload(), get_gpu("RTX-4060-Ti-16GB"))
    assert not cap.fits and cap.kv_cache_tokens == 0


def test_plan_contract() -> None:
    spec = lookup("meta-llama/Llama-3.1-8B")
    out = plan(spec, make_workload(seq_len=1024, new_tokens=256), get_gpu("H100-SXM-80GB"), max_model_len=8192).to_dict()
    for key in ("gpu", "fits", "max_batch_size", "max_seq_len", "min_gpus", "serving", "assumptions"):
        assert key in out
    assert out["gpu"]["name"] == "H100-SXM-80GB"
    assert out["fits"] is True and out["min_gpus"] == 1
    assert isinstance(out["serving"]["kv_cache_tokens"], int)
    assert isinstance(out["serving"]["max_concurrent_sequences"], int)
    assert out["speed"]["decode_tokens_per_s"] > 0 and out["cost"]["hourly_usd"] > 0
    json.dumps(out)


def test_plan_without_price_or_flops_notes_it() -> None:
    p = plan(lookup("meta-llama/Llama-3.2-1B"), make_workload(), get_gpu("A10G"))  # no bf16 or fp16 figure
    assert p.speed is None and any("peak_flops.bf16" in n for n in p.notes)
    p = plan(lookup("meta-llama/Llama-3.2-1B"), make_workload(), get_gpu("MI355X"))
    assert p.hourly_usd is None and any("price_per_hour_usd" in n for n in p.notes)


def test_cheapest_serving_ranks_and_skips() -> None:
    spec = lookup("meta-llama/Llama-3.1-8B")
    result = cheapest_serving(spec, make_workload(), request_rate_per_s=5, input_tokens=1024, output_tokens=256,
                              tpot_ms=50)
    costs = [o.hourly_usd for o in result.options]
    assert costs == sorted(costs)
    assert all(o.tpot_seconds <= 0.050 for o in result.options)
    for o in result.options:
        assert o.replicas * o.requests_per_s_per_replica >= 5 - 1e-9
        assert o.usd_per_million_output_tokens == pytest.approx(o.hourly_usd / (5 * 256 * 3600) * 1e6)
    reasons = {s.gpu: s.reason for s in result.skipped}
    assert "no price" in reasons["MI355X"]
    assert "T4" not in reasons  # no bf16: ranked in fp16


def test_no_bf16_device_falls_back_to_fp16() -> None:
    spec = lookup("meta-llama/Llama-3.2-1B")  # stored in bf16
    p = plan(spec, make_workload(), get_gpu("T4"))
    assert p.workload.dtype == "float16" and p.speed is not None
    assert any("T4 has no bf16" in n for n in p.notes)
    t = plan(spec, make_workload(task="training", method="lora", precision="bf16-mixed"), get_gpu("V100-SXM2-16GB"))
    assert t.workload.precision.name == "16-mixed" and any("16-mixed" in n for n in t.notes)
    # A bf16-capable device keeps bf16.
    assert plan(spec, make_workload(), get_gpu("L4")).workload.dtype is None


def test_bf16_preflight_on_t4_does_not_say_fits() -> None:
    from hf_gpu_estimator.integrations._core import evaluate

    spec = lookup("meta-llama/Llama-3.2-1B")
    kwargs = {"task": "training", "method": "lora", "precision": "bf16-mixed", "batch_size": 1, "seq_len": 512}
    r = evaluate(spec, workload_kwargs=kwargs, gpu="T4")
    assert r.status == "exceeds" and "--precision 16-mixed" in r.message and r.shortfall_bytes == 0
    assert evaluate(spec, workload_kwargs={**kwargs, "precision": "16-mixed"}, gpu="T4").status == "fits"
    # Apple: no CUDA context in the preflight total either.
    mac = evaluate(spec, workload_kwargs=kwargs, gpu="M2-16GB")
    assert mac.status == "fits" and mac.required_bytes == mac.estimate.memory.reserved_peak_bytes


def test_apple_gpu_has_no_cuda_context_and_no_vllm_pool() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.2-1B"), get_gpu("M2-16GB")
    p = plan(spec, make_workload(), gpu)
    mem = estimate_memory(spec, p.workload)
    assert p.device_total_bytes == mem.reserved_peak_bytes  # Metal: context_bytes 0
    assert p.serving is None and any("llama.cpp" in n and "vllm does not run" in n for n in p.notes)
    served = plan(spec, make_workload(), gpu, engine="llama.cpp")
    assert served.serving is not None and served.serving.non_torch_bytes == 0


def test_cheapest_serving_impossible_tpot() -> None:
    with pytest.raises(InfeasiblePlanError, match=r"TPOT 0.1 ms.*floor"):
        cheapest_serving(lookup("meta-llama/Llama-3.1-8B"), make_workload(), request_rate_per_s=1, input_tokens=512,
                         output_tokens=128, tpot_ms=0.1, gpus=PRICED)


def test_cheapest_serving_no_priced_gpu() -> None:
    with pytest.raises(InfeasiblePlanError, match="price"):
        cheapest_serving(lookup("meta-llama/Llama-3.1-8B"), make_workload(), request_rate_per_s=1, input_tokens=512,
                         output_tokens=128, gpus=["MI355X", "B300-288GB"])


def test_heterogeneous_mix_not_worse_than_single_type_by_much() -> None:
    spec = lookup("meta-llama/Llama-3.1-8B")
    buckets = [RequestBucket(rate_per_s=2, input_tokens=256, output_tokens=128),
               RequestBucket(rate_per_s=0.5, input_tokens=8000, output_tokens=512)]
    mix = heterogeneous_serving(spec, make_workload(), buckets, tpot_ms=80, gpus=PRICED)
    assert len(mix.assignments) == 2 and mix.single_type is not None
    assert mix.hourly_usd <= mix.single_type.hourly_usd * 2
    assert math.isfinite(mix.hourly_usd)
    json.dumps(mix.to_dict())


def test_heterogeneous_mix_sizes_buckets_at_their_rate() -> None:
    # Over the whole priced catalog a low-rate bucket ranked by $/request at full load lands on a
    # large GPU it leaves idle; sized at its own rate, the mix never costs more than one type.
    spec = lookup("meta-llama/Llama-3.1-8B")
    buckets = [RequestBucket(rate_per_s=2, input_tokens=256, output_tokens=128),
               RequestBucket(rate_per_s=0.5, input_tokens=8000, output_tokens=512)]
    mix = heterogeneous_serving(spec, make_workload(), buckets, tpot_ms=80)
    assert mix.single_type is not None and mix.hourly_usd <= mix.single_type.hourly_usd + 1e-9
    # The hourly cost is the packed replicas' price, bucket by bucket on the chosen types.
    by_type: dict[tuple[str, int, int], float] = {}
    for b, o in mix.assignments:
        by_type[(o.gpu, o.tp, o.pp)] = by_type.get((o.gpu, o.tp, o.pp), 0.0) + b.rate_per_s / o.requests_per_s_per_replica
    expected = sum(max(1, math.ceil(x - 1e-9)) * tp * pp * get_gpu(g).price_per_hour_usd
                   for (g, tp, pp), x in by_type.items())
    assert mix.hourly_usd == pytest.approx(expected)


def test_cheapest_training_with_deadline() -> None:
    spec = lookup("meta-llama/Llama-3.2-1B")
    work = make_workload(task="training", batch_size=4, seq_len=2048, gradient_checkpointing=True)
    result = cheapest_training(spec, work, token_budget=1e9, deadline_hours=2, gpus=PRICED)
    assert [o.total_usd for o in result.options] == sorted(o.total_usd for o in result.options)
    assert all(o.hours <= 2 for o in result.options)
    # Cost = GPU-hours x price = tokens / (tokens/s) x count x price.
    best = result.best
    assert best.total_usd == pytest.approx(1e9 / best.speed.tokens_per_s / 3600 * best.hourly_usd)


def test_plan_fleet_dict() -> None:
    fleet = plan_fleet({
        "gpus": PRICED,
        "models": [
            {"model": "meta-llama/Llama-3.1-8B", "request_rate": 3, "input_tokens": 512, "output_tokens": 256,
             "tpot_ms": 60},
            {"model": "Qwen/Qwen2.5-0.5B", "token_budget": 1e8, "workload": {"batch_size": 8, "seq_len": 1024}},
            {"model": "meta-llama/Llama-3.1-8B", "request_rate": 1, "input_tokens": 512, "output_tokens": 128,
             "tpot_ms": 0.01},
        ],
    })
    assert fleet.entries[0].serving is not None and fleet.entries[1].training is not None
    assert fleet.entries[2].error and "TPOT" in fleet.entries[2].error
    assert fleet.hourly_usd == pytest.approx(fleet.entries[0].serving.best.hourly_usd)
    assert fleet.training_usd > 0
    json.dumps(fleet.to_dict())


def test_plan_fleet_json_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"models": [{"model": "Qwen/Qwen2.5-0.5B", "request_rate": 1, "input_tokens": 256,
                                            "output_tokens": 64}], "gpus": ["L4"]}))
    fleet = plan_fleet(path)
    assert fleet.gpus == {"L4": fleet.entries[0].serving.best.num_gpus}


def test_plan_fleet_resolver_is_injected() -> None:
    seen: list[str] = []

    def resolve(model_id: str):  # type: ignore[no-untyped-def]
        seen.append(model_id)
        return lookup("Qwen/Qwen2.5-0.5B")

    fleet = plan_fleet({"models": [{"model": "my/served-model", "request_rate": 1, "input_tokens": 256,
                                    "output_tokens": 64}], "gpus": ["L4"]}, resolve=resolve)
    assert seen == ["my/served-model"] and fleet.entries[0].serving is not None


def test_planner_package_does_no_io() -> None:
    """The planner is pure arithmetic: importing it loads neither the Hub client nor the sources layer."""
    import subprocess
    import sys

    code = ("import sys, hf_gpu_estimator.planner; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'huggingface_hub') "
            "or m.startswith('hf_gpu_estimator.sources')]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_estimate_methods_delegate() -> None:
    est = estimate("meta-llama/Llama-3.1-70B", seq_len=1024, new_tokens=128, gpu="A100-80GB-SXM")
    assert est.min_gpus() == 2
    assert est.max_batch_size() == 0
    assert est.max_batch_size("B200-180GB") >= 1
    assert est.max_seq_len("B200-180GB") > 1024


def test_cli_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "meta-llama/Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--max-model-len", "8192",
                 "--format", "json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["serving"]["max_model_len"] == 8192 and out["min_gpus"] == 1


def test_cli_plan_cheapest_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "meta-llama/Llama-3.1-8B", "--cheapest", "--request-rate", "2", "--input-tokens", "512",
                 "--output-tokens", "128", "--tpot-ms", "50"])
    assert code == 0
    out = capsys.readouterr().out
    assert "$/hour" in out and "skipped" in out


def test_cli_plan_engine_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "meta-llama/Llama-3.1-8B", "--gpu", "L40S", "--engine", "sglang",
                 "--mem-fraction-static", "0.85", "--max-model-len", "8192", "--format", "json"]) == 0
    serving = json.loads(capsys.readouterr().out)["serving"]
    assert serving["engine"] == "sglang" and serving["gpu_memory_utilization"] == 0.85
    assert main(["plan", "meta-llama/Llama-3.2-1B", "--gpu", "M2-16GB", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "serving" not in out and any("llama.cpp" in n for n in out["notes"])
    with pytest.raises(SystemExit) as info:
        main(["plan", "meta-llama/Llama-3.1-8B", "--gpu", "L4", "--engine", "tgi"])
    assert info.value.code == 2 and "vllm, sglang" in capsys.readouterr().err.replace("'", "")


def test_cli_plan_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "meta-llama/Llama-3.1-8B"]) == 0  # no --gpu: every GPU type of the catalog (issue 21)
    assert "Every GPU type" in capsys.readouterr().out
    assert main(["plan", "meta-llama/Llama-3.1-8B", "--cheapest", "--request-rate", "1", "--input-tokens", "10",
                 "--output-tokens", "10", "--tpot-ms", "0.001"]) == 1
    err = capsys.readouterr().err
    assert "TPOT" in err.splitlines()[-1]  # one line (the catalog-fallback line is printed once per run)


def test_latency_floor_is_told_by_its_metric_not_its_text() -> None:
    from hf_gpu_estimator.planner.serving import cheapest_serving

    spec = lookup("meta-llama/Llama-3.1-8B")
    with pytest.raises(InfeasiblePlanError, match="no GPU meets TPOT 0.01 ms .* lowest roofline floor"):
        cheapest_serving(spec, make_workload(), tpot_ms=0.01, gpus=["H100-SXM-80GB", "A100-80GB-SXM"])
    with pytest.raises(InfeasiblePlanError, match="no GPU meets TTFT 0.01 ms .* lowest prefill floor"):
        cheapest_serving(spec, make_workload(), ttft_ms=0.01, gpus=["H100-SXM-80GB", "A100-80GB-SXM"])
