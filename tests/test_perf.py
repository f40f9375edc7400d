"""perf.py: FLOP counts and the roofline against published measurements (source and tolerance per case)."""

from __future__ import annotations

import pytest

from hf_gpu_estimator.errors import InvalidArgumentError, MissingGPUDataError
from hf_gpu_estimator.hardware import get_gpu, gpu_from_dict
from hf_gpu_estimator.perf import (
    DECODE_BANDWIDTH_EFFICIENCY,
    flops_per_token,
    inference_speed,
    training_speed,
)
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.workload import make_workload


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_flops_dense_is_two_n_plus_attention() -> None:
    spec = lookup("meta-llama/Llama-2-7b-hf")
    arch = spec.architecture
    f = flops_per_token(spec, context_tokens=2048)
    # Untied head: every parameter but the input embedding is a matmul.
    assert f.matmul_params == spec.parameters.total - spec.parameters.embedding
    assert f.dense_flops == 2 * f.matmul_params
    assert f.attention_flops == 2 * 2 * arch.num_layers * 2048 * arch.num_attention_heads * arch.head_dim
    assert f.training_flops() == 3 * f.forward_flops
    assert f.training_flops(gradient_checkpointing=True) == 4 * f.forward_flops
    assert f.training_flops(method="lora") == 2 * f.forward_flops


def test_flops_moe_uses_active_parameters() -> None:
    spec = lookup("mistralai/Mixtral-8x7B-v0.1")
    f = flops_per_token(spec, context_tokens=1)
    assert f.matmul_params == spec.parameters.active - spec.parameters.embedding
    assert f.matmul_params < spec.parameters.total / 3


def test_flops_sliding_window_caps_context() -> None:
    spec = lookup("google/gemma-2-9b")
    short = flops_per_token(spec, context_tokens=4096).attention_flops
    long = flops_per_token(spec, context_tokens=8192).attention_flops
    assert long < 2 * short  # half the layers stop growing at the 4096 window


# Decode tokens/s at batch 1, fp16/bf16 weights. (model, gpu, prompt, measured tokens/s, tolerance, source)
DECODE_MEASUREMENTS = [
    ("meta-llama/Llama-3.1-8B", "A100-40GB-SXM", 1024, 75.0, 0.10,
     "vLLM 0.23, concurrency 1: https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on"),
    ("meta-llama/Llama-2-7b-hf", "RTX-4090", 512, 60.78, 0.15,
     "llama.cpp F16: https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference"),
    ("meta-llama/Llama-2-7b-hf", "RTX-3090", 512, 51.85, 0.15,
     "llama.cpp F16: https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference"),
    ("meta-llama/Meta-Llama-3-8B", "RTX-4090", 512, 54.84, 0.15,
     "llama.cpp F16 tg512: https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference"),
]


@pytest.mark.parametrize(("model", "gpu", "prompt", "measured", "tol", "source"), DECODE_MEASUREMENTS,
                         ids=[f"{m[0].split('/')[1]}-{m[1]}" for m in DECODE_MEASUREMENTS])
def test_decode_matches_published(model: str, gpu: str, prompt: int, measured: float, tol: float, source: str) -> None:
    speed = inference_speed(lookup(model), make_workload(seq_len=prompt, new_tokens=128, dtype="float16"),
                            get_gpu(gpu))
    assert speed.decode_bound == "memory"
    assert speed.decode_tokens_per_s == pytest.approx(measured, rel=tol), source


# llama.cpp on data-centre GPUs reaches only ~50-56% of the bandwidth (same source, Llama-2-7B F16:
# A100 80GB 73.83 t/s, H100 PCIe 83.32 t/s): the roofline at 75% over-estimates by 30-45%, and must
# stay an upper bound below the 100%-bandwidth ceiling.
@pytest.mark.parametrize(("gpu", "measured"), [("A100-80GB-PCIe", 73.83), ("H100-PCIe-80GB", 83.32)])
def test_decode_llamacpp_datacenter_is_bounded(gpu: str, measured: float) -> None:
    speed = inference_speed(lookup("meta-llama/Llama-2-7b-hf"), make_workload(seq_len=512, new_tokens=128),
                            get_gpu(gpu))
    assert measured < speed.decode_tokens_per_s < measured * 1.5
    assert speed.decode_tokens_per_s < measured / DECODE_BANDWIDTH_EFFICIENCY * 1.5


# NeMo/TensorRT-LLM Llama-2-7B, batch 1, 128 input -> 20 output tokens, average latency:
# A100 80GB SXM4 234.0 ms, H100 80GB HBM3 153.8 ms
# (https://docs.nvidia.com/nemo-framework/user-guide/latest/performance/llama.html). The roofline
# comes out 23-30% faster (framework overheads per step are not modelled): tolerance 35%.
@pytest.mark.parametrize(("gpu", "measured_ms"), [("A100-80GB-SXM", 234.0), ("H100-SXM-80GB", 153.8)])
def test_e2e_latency_nemo(gpu: str, measured_ms: float) -> None:
    speed = inference_speed(lookup("meta-llama/Llama-2-7b-hf"), make_workload(seq_len=128, new_tokens=20,
                                                                               dtype="float16"), get_gpu(gpu))
    assert speed.e2e_seconds * 1e3 == pytest.approx(measured_ms, rel=0.35)
    assert speed.e2e_seconds * 1e3 < measured_ms  # a roofline is a lower bound on latency


def test_prefill_matches_llamacpp_pp512() -> None:
    # llama.cpp F16 Llama-2-7B pp512 on RTX 4090: 7348.69 tokens/s (XiongjieDai/GPU-Benchmarks-on-LLM-Inference);
    # tolerance 20%.
    speed = inference_speed(lookup("meta-llama/Llama-2-7b-hf"), make_workload(seq_len=512, new_tokens=1,
                                                                               dtype="float16"), get_gpu("RTX-4090"))
    assert speed.prefill_bound == "compute"
    assert speed.prefill_tokens_per_s == pytest.approx(7348.69, rel=0.20)


def test_batching_raises_throughput_and_tpot() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-8B"), get_gpu("H100-SXM-80GB")
    work = make_workload(seq_len=1024, new_tokens=256)
    one = inference_speed(spec, work, gpu, batch_size=1)
    many = inference_speed(spec, work, gpu, batch_size=64)
    assert many.decode_tokens_per_s > 20 * one.decode_tokens_per_s
    assert many.tpot_seconds > one.tpot_seconds
    assert many.ttft_seconds > one.ttft_seconds


def test_tensor_parallel_adds_allreduce_and_speeds_decode() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-70B"), get_gpu("H100-SXM-80GB")
    tp1 = inference_speed(spec, make_workload(seq_len=1024, new_tokens=128), gpu)
    tp4 = inference_speed(spec, make_workload(seq_len=1024, new_tokens=128, num_gpus=4, tp=4), gpu)
    assert tp4.allreduce_seconds_per_step > 0
    assert tp1.tpot_seconds / 4 < tp4.tpot_seconds < tp1.tpot_seconds / 2.5


def test_training_speed_uses_mfu() -> None:
    spec, gpu = lookup("meta-llama/Llama-3.1-8B"), get_gpu("H100-SXM-80GB")
    work = make_workload(task="training", batch_size=2, seq_len=4096, num_gpus=8, strategy="fsdp")
    speed = training_speed(spec, work, gpu)
    achieved = speed.tokens_per_s * speed.model_flops_per_token / (8 * gpu.peak_flops["bf16"])
    assert achieved == pytest.approx(0.40, rel=1e-6)  # no tp: all time is compute at the MFU constant
    gc = training_speed(spec, make_workload(task="training", batch_size=2, seq_len=4096, num_gpus=8, strategy="fsdp",
                                            gradient_checkpointing=True), gpu)
    assert gc.tokens_per_s == pytest.approx(speed.tokens_per_s * 3 / 4)
    assert speed.seconds_for_tokens(1e9) == pytest.approx(1e9 / speed.tokens_per_s)
    with pytest.raises(InvalidArgumentError):
        speed.seconds_for_tokens(0)


def test_missing_flops_is_a_typed_error() -> None:
    gpu = get_gpu("T4")  # no bf16 figure
    with pytest.raises(MissingGPUDataError, match=r"T4.*peak_flops\.bf16"):
        inference_speed(lookup("meta-llama/Llama-3.1-8B"), make_workload(), gpu)


def test_missing_link_bandwidth_with_tp() -> None:
    base = get_gpu("L4").to_dict()
    base.update(name="L4-nolink", aliases=[], interconnect_bandwidth_bytes_per_s=None)
    gpu = gpu_from_dict(base)
    with pytest.raises(MissingGPUDataError, match="interconnect_bandwidth"):
        inference_speed(lookup("meta-llama/Llama-3.1-8B"), make_workload(num_gpus=2, tp=2), gpu)
