"""``hfge plan``: engine flags, the JSON contract of DESIGN.md, --tp alone, --gpu with --cheapest."""

from __future__ import annotations

import json

import pytest

from hf_gpu_estimator.cli import main

M = "Qwen/Qwen2.5-0.5B"  # a bundled catalog id: no network


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    assert main(["plan", M, *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("argv, engine", [
    (["--gpu", "L4"], "vllm"),
    (["--gpu", "L4", "--vllm-version", "0.7", "--gpu-memory-utilization", "0.8", "--max-num-seqs", "64"], "vllm"),
    (["--gpu", "L4", "--engine", "sglang", "--mem-fraction-static", "0.8", "--max-model-len", "8192"], "sglang"),
    (["--gpu", "L4", "--engine", "llama.cpp", "-c", "8192", "-np", "4", "-ngl", "99"], "llama.cpp"),
    (["--gpu", "L4", "--engine", "transformers", "--max-model-len", "4096"], "transformers"),
], ids=["vllm", "vllm-0.7", "sglang", "llama.cpp", "transformers"])
def test_plan_json_serving_contract(argv: list[str], engine: str, capsys: pytest.CaptureFixture[str], offline) -> None:
    out = _json(argv, capsys)
    s = out["serving"]
    for key in ("kv_cache_tokens", "max_concurrent_sequences", "kv_pool_bytes", "weights_bytes"):
        assert isinstance(s[key], int) and s[key] > 0, key
    assert s["engine"] == engine and s["problem"] is None and s["would_start"]
    assert {"gpu", "fits", "max_batch_size", "max_seq_len", "min_gpus", "assumptions"} <= set(out)


def test_plan_engine_settings_reach_the_engine(capsys: pytest.CaptureFixture[str], offline) -> None:
    s = _json(["--gpu", "L4", "--vllm-version", "0.7", "--gpu-memory-utilization", "0.5", "--max-num-seqs", "64"],
              capsys)["serving"]
    assert (s["engine_version"], s["gpu_memory_utilization"], s["max_num_seqs"]) == ("0.7", 0.5, 64)
    s = _json(["--gpu", "L4", "--engine", "llama.cpp", "-c", "8192", "-np", "4"], capsys)["serving"]
    assert (s["kv_cache_tokens"], s["max_concurrent_sequences"], s["max_model_len"]) == (8192, 4, 2048)
    s = _json(["--gpu", "L4", "--engine", "sglang", "--mem-fraction-static", "0.5"], capsys)["serving"]
    assert s["gpu_memory_utilization"] == 0.5


def test_tp_alone_implies_its_gpus(capsys: pytest.CaptureFixture[str], offline) -> None:
    out = _json(["--gpu", "H100-SXM-80GB", "--tp", "2"], capsys)
    assert (out["workload"]["num_gpus"], out["workload"]["tp"]) == (2, 2)
    assert out["serving"]["tp"] == 2


def test_would_not_start_line(capsys: pytest.CaptureFixture[str], offline) -> None:
    assert main(["plan", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "L4"]) == 0
    out = capsys.readouterr().out
    assert "starts" in out and "would not start" in out and "lower --max-model-len" in out


def test_cheapest_restricted_to_the_given_gpus(capsys: pytest.CaptureFixture[str], offline) -> None:
    out = _json(["--cheapest", "--gpu", "L4,H100-SXM-80GB"], capsys)
    assert {o["gpu"] for o in out["options"]} <= {"L4", "H100-SXM-80GB"} and out["options"]


def test_sglang_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    s = _json(["--gpu", "H100-SXM-80GB", "--engine", "sglang", "--sglang-version", "0.4.8", "--max-model-len", "8192"],
              capsys)["serving"]
    assert s["engine_version"] == "0.4.8" and s["gpu_memory_utilization"] == 0.874


def test_speculative_decoding_flags(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--gpu", "H100-SXM-80GB", "--max-model-len", "8192"]
    plain = _json(base, capsys)["serving"]
    drafted = _json([*base, "--draft-model", "meta-llama/Llama-3.2-1B-Instruct", "--num-speculative-tokens", "4"],
                    capsys)
    assert drafted["serving"]["weights_bytes"] > plain["weights_bytes"] + 2 * 2**30
    assert drafted["serving"]["kv_cache_tokens"] < plain["kv_cache_tokens"]
    assert any(a.startswith("speculative decoding (draft, 4 token(s)") for a in drafted["assumptions"])
    for argv in (["--speculative-method", "mtp"], ["--engine", "transformers", "--speculative-method", "ngram"],
                 ["--num-speculative-tokens", "3"]):
        assert main(["plan", M, *base, *argv]) == 2, argv


def test_llamacpp_cache_type_flags(capsys: pytest.CaptureFixture[str], offline) -> None:
    """-ctk/-ctv reach llama.cpp's KV cache and its launch line; a quantized V with -fa off exits 2; on another
    engine the flag is refused."""
    base = ["--gpu", "L4", "--engine", "llama.cpp", "-c", "8192"]
    f16 = _json(base, capsys)["serving"]
    out = _json([*base, "-ctk", "q8_0", "-ctv", "q8_0"], capsys)
    assert out["serving"]["kv_pool_bytes"] == f16["kv_pool_bytes"] * 34 // 64
    launch = json.dumps(out)
    assert "-ctk" in launch and "q8_0" in launch
    assert main(["plan", M, *base, "-fa", "off", "-ctv", "q4_0"]) == 2
    assert "cache_type_v" in capsys.readouterr().err
    assert main(["plan", M, "--gpu", "L4", "-ctk", "q8_0"]) == 2
    capsys.readouterr()


def test_llamacpp_cache_types_on_estimate_and_override_and_fit_on_plan(capsys: pytest.CaptureFixture[str],
                                                                        offline) -> None:
    """estimate takes -ctk/-ctv as plan does (one flag definition, one sizing path); plan takes -ot and --fit and
    writes what they chose on the launch line; each is refused where it does not apply."""
    gguf = ["--quantization", "gguf:Q4_K_M", "--seq-len", "4000", "--new-tokens", "96"]
    assert main(["estimate", M, *gguf, "-ctk", "q8_0", "-ctv", "q8_0", "--format", "json"]) == 0
    est = json.loads(capsys.readouterr().out)
    base = ["--gpu", "L4", "--engine", "llama.cpp", "-c", "4096", "--quantization", "gguf:Q4_K_M"]
    plan = _json([*base, "-ctk", "q8_0", "-ctv", "q8_0"], capsys)
    assert est["memory"]["components"]["kv_cache"] == plan["serving"]["kv_pool_bytes"]
    assert est["workload"]["cache_type_k"] == "q8_0"
    assert main(["estimate", M, "-ctk", "q8_0"]) == 2  # a transformers checkpoint served by transformers
    assert "cache_type_k" in capsys.readouterr().err
    ot = _json([*base, "-ot", r"blk\.1\.ffn_.*=CPU"], capsys)
    assert ot["serving"]["weights_bytes"] < plan["serving"]["weights_bytes"]
    assert "-ot" in ot["launch"]
    fitted = _json(["--gpu", "L4", "--engine", "llama.cpp", "--quantization", "gguf:Q4_K_M", "--fit", "on"], capsys)
    assert any(a.startswith("--fit: ") for a in fitted["assumptions"])
    for argv in (["-ot", "x=CPU"], ["--fit", "on"]):
        assert main(["plan", M, "--gpu", "L4", "--engine", "vllm", *argv]) == 2, argv
    assert main(["plan", M, *base, "-ot", "x=NPU"]) == 2
    capsys.readouterr()
