"""One fit (issue 21): Deployment + fit, and every plan, search and suggestion agreeing with it.

Each test is one example of the issue, on the bundled catalog (no network)."""

from __future__ import annotations

import json

import pytest

from hf_gpu_estimator import estimate
from hf_gpu_estimator.cli import main
from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import get_gpu
from hf_gpu_estimator.planner import cheapest_serving, min_gpus, plan
from hf_gpu_estimator.planner.deployment import Deployment, device_gpu, fit, largest_gpu_layers
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.workload import make_workload
from test_sources_gguf import gguf_hub  # noqa: F401  (the loopback Hub of GGUF repos)

H100, A100 = "H100-SXM-80GB", "A100-80GB-SXM"


@pytest.mark.parametrize("engine", [None, "vllm", "sglang", "llama.cpp", "transformers"])
def test_fit_answers_with_a_launch_line(engine):
    spec = lookup("meta-llama/Llama-3.1-8B")
    v = fit(spec, make_workload(), Deployment(gpu=get_gpu(H100), engine=engine, max_model_len=8192))
    assert v.verdict == "fits" and v.launch is not None
    head = {None: "AutoModelForCausalLM", "vllm": "vllm serve", "sglang": "python -m sglang.launch_server",
            "llama.cpp": "llama-server", "transformers": "AutoModelForCausalLM"}[engine]
    assert v.launch.command.startswith(head)
    assert "fits" in repr(v)  # the Verdict repr says the word


def test_vllm_launch_flags_and_json():
    spec = lookup("meta-llama/Llama-3.1-70B")
    v = fit(spec, make_workload(), Deployment(gpu=get_gpu(H100), engine="vllm", tp=4, max_model_len=32768,
                                              kv_cache_dtype="fp8"))
    cmd = v.launch.command
    for flag in ("--tensor-parallel-size 4", "--max-model-len 32768", "--gpu-memory-utilization 0.9",
                 "--kv-cache-dtype fp8"):
        assert flag in cmd
    assert v.to_dict()["launch_args"]["args"]["tensor_parallel_size"] == 4


def test_would_not_start_is_its_own_word():
    spec = lookup("meta-llama/Llama-3.1-70B")
    v = fit(spec, make_workload(), Deployment(gpu=get_gpu(H100), engine="vllm", tp=2, max_model_len=32768))
    assert v.verdict == "would not start" and v.launch is None and "KV pool" in v.problem


def test_min_gpus_searches_until_the_engine_starts():
    """Issue: --max-model-len 32768 said min GPUs 2 (tp 2) and then 'starts no'."""
    spec = lookup("meta-llama/Llama-3.1-70B")
    d = Deployment(gpu=get_gpu(H100), engine="vllm", max_model_len=32768)
    par = min_gpus(spec, make_workload(), d)
    assert par.tp == 4 and par.verdict.serving.would_start
    p = plan(spec, make_workload(), get_gpu(H100), max_model_len=32768)
    assert p.min_gpus.tp == 4 and not p.fits and p.serving.tp == 1  # the asked split, never swapped


def test_asked_tp_is_kept_and_starts():
    """Issue: Qwen2.5-72B tp 2 at 8192 was 'fits no' and swapped to tp 4. The published vLLM v0.19 run
    (benchmarks/llmd/runs.csv: qwen-qwen2-5-72b-instruc--h100-80gb--tp2pp1dp1--8192.log) starts it at
    --gpu-memory-utilization 0.95 with a 19,920-token KV cache; tolerance 5 %."""
    p = plan(lookup("Qwen/Qwen2.5-72B-Instruct"), make_workload(tp=2, num_gpus=2), get_gpu(H100), engine="vllm",
             max_model_len=8192, gpu_memory_utilization=0.95)
    out = p.to_dict()
    assert out["fits"] and out["serving"]["tp"] == 2 and out["serving"]["would_start"]
    assert abs(out["serving"]["kv_cache_tokens"] / 19_920 - 1) <= 0.05
    assert "--tensor-parallel-size 2" in out["launch"] and "--gpu-memory-utilization 0.95" in out["launch"]
    # at vLLM's default 0.9 the same split leaves no room for the cache: refused at the tp asked, not swapped
    default = plan(lookup("Qwen/Qwen2.5-72B-Instruct"), make_workload(tp=2, num_gpus=2), get_gpu(H100),
                   engine="vllm", max_model_len=8192)
    assert default.serving.tp == 2 and not default.serving.would_start and default.min_gpus.tp == 4


def test_max_batch_and_concurrency_agree():
    """Issue: 'max batch size 173' beside 'max concurrent seqs 14'; 'fits yes' beside 'starts no'."""
    p = plan(lookup("meta-llama/Llama-3.1-70B"), make_workload(tp=4, num_gpus=4), get_gpu(H100), max_model_len=32768)
    assert p.max_batch_size == min(p.serving.max_concurrent_sequences, p.serving.max_num_seqs)
    a10g = plan(lookup("meta-llama/Llama-3.1-8B"), make_workload(), get_gpu("A10G"))
    assert a10g.fits == a10g.serving.would_start
    assert a10g.serving.max_model_len >= 1024 + 256 and any("the longest that starts" in n for n in a10g.notes)


def test_cheapest_depends_on_context_and_engine():
    """Issue: the same rows for 4096, 32768 and 131072, and for every engine."""
    spec, gpus = lookup("meta-llama/Llama-3.1-70B"), [H100, A100]
    rows = {n: [(o.gpu, o.num_gpus, o.tp) for o in cheapest_serving(spec, make_workload(), gpus=gpus,
                                                                      max_model_len=n).options]
            for n in (4096, 131072)}
    assert rows[4096] != rows[131072]
    for o in cheapest_serving(spec, make_workload(), gpus=gpus, max_model_len=32768).options:
        v = fit(spec, make_workload(seq_len=1024, new_tokens=256),
                Deployment(gpu=get_gpu(o.gpu), engine="vllm", tp=o.tp, pp=o.pp, max_model_len=32768))
        assert v.fits  # only deployments that start are ranked
    sg = cheapest_serving(spec, make_workload(), gpus=gpus, engine="sglang")
    assert sg.engine == "sglang" and sg.best.launch.startswith("python -m sglang.launch_server")


def test_cheapest_closing_line(capsys):
    assert main(["plan", "meta-llama/Llama-3.1-8B", "--cheapest"]) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "--verbose" in skipped[0]
    assert main(["plan", "meta-llama/Llama-3.1-8B", "--cheapest", "--verbose"]) == 0
    assert "no price" in capsys.readouterr().out


def test_each_gpu_of_a_list_judged_on_its_own():
    """Issue: the first GPU decided MXFP4 for the whole list (V100 'fits' with packed weights)."""
    spec = lookup("openai/gpt-oss-20b")
    both = estimate(spec, gpu=["RTX-4090", "V100-SXM2-32GB"])
    alone = estimate(spec, gpu="V100-SXM2-32GB")
    assert both.verdict("V100-SXM2-32GB").needs_high_bytes == alone.verdict().needs_high_bytes
    assert both.verdict("V100-SXM2-32GB").verdict == alone.verdict().verdict == "does not fit"
    assert both.verdict("RTX-4090").workload.quantization == "mxfp4"


def test_llamacpp_largest_ngl_and_several_gpus():
    """Issue: 'num_gpus=2 is not modelled for llama.cpp yet', no -ngl answer."""
    spec = lookup("meta-llama/Llama-2-13b-hf")
    work = make_workload(quantization="gguf:Q4_K_M")
    gpu = get_gpu("RTX-3080-10GB")
    ngl, v = largest_gpu_layers(spec, work, Deployment(gpu=gpu, engine="llama.cpp", max_model_len=4096))
    assert 0 < ngl < spec.architecture.num_layers + 1 and v.fits
    assert not fit(spec, work, Deployment(gpu=gpu, engine="llama.cpp", n_gpu_layers=ngl + 1, max_model_len=4096)).fits
    p = plan(spec, work, gpu, engine="llama.cpp")
    assert p.fits and f"-ngl {ngl}" in p.launch.command and p.min_gpus.num_gpus == 2
    assert "--tensor-split 1,1" in p.min_gpus.to_dict()["launch"]
    est = estimate(spec, quantization="gguf:Q4_K_M", gpu="RTX-3080-10GB")
    from hf_gpu_estimator.suggest import suggest

    if not est.fits():
        assert any(s.key == "gpu_layers" for s in suggest(est))


@pytest.mark.parametrize(("batch", "steps"), [(4, 1), (16, 4)])
def test_suggestions_keep_the_effective_batch(batch, steps):
    """Issue: batch 4 -> '3 x 2 (effective >= 4)' = 6."""
    from hf_gpu_estimator.suggest import search

    spec = lookup("meta-llama/Llama-2-7b-hf")
    work = make_workload(task="training", method="qlora", batch_size=batch, gradient_accumulation_steps=steps,
                         seq_len=2048)
    total = estimate(spec, **work.to_dict() | {"lora_targets": ",".join(work.lora_targets)}).memory.device_total_bytes
    for s in search(spec, work, budget_bytes=total * 0.7):
        if "gradient_accumulation_steps" in s.options:
            assert s.options["batch_size"] * s.options["gradient_accumulation_steps"] == batch * steps


def test_python_api_matches_the_cli():
    est = estimate("meta-llama/Llama-2-7b-hf", gpu="RTX-4090,A100-80GB")
    assert [g.name for g in est.judged_gpus] == ["RTX-4090", "A100-80GB-SXM"]
    text = str(est)
    assert "Fits per GPU" in text and "A100-80GB-SXM" in text
    assert isinstance(estimate("meta-llama/Llama-2-7b-hf").fits(), bool)  # no GPU: over the common ones
    with pytest.raises(InvalidArgumentError):
        estimate("meta-llama/Llama-2-7b-hf", gpu=80)


def test_usable_column_is_the_headroom_basis():
    est = estimate("meta-llama/Llama-2-7b-hf", gpu="RTX-4090")
    v = est.verdict()
    assert v.headroom_bytes == v.limit_bytes - v.needs_high_bytes
    from hf_gpu_estimator.report import gib

    assert gib(v.limit_bytes) in str(est)


def test_free_memory_and_device_memory(capsys):
    spec = lookup("meta-llama/Llama-3.1-8B")
    gpu = get_gpu(H100)
    assert fit(spec, make_workload(), Deployment(gpu=gpu)).fits
    assert not fit(spec, make_workload(), Deployment(gpu=gpu, free_memory_bytes=10 << 30)).fits
    v = fit(spec, make_workload(), Deployment(gpu=gpu, engine="vllm", max_model_len=8192, free_memory_bytes=40 << 30))
    assert v.verdict == "would not start" and "--gpu-memory-utilization 0.5" in v.problem
    assert device_gpu(48).usable_memory_bytes == 48 << 30
    assert main(["plan", "meta-llama/Llama-3.1-8B", "--device-memory-gib", "48", "--max-model-len", "8192",
                 "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] and out["launch"].startswith("vllm serve")
    assert main(["estimate", "meta-llama/Llama-3.1-8B", "--gpu", H100, "--free-memory", "10", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpus"][0]["verdict"] == "does not fit"


def test_ecosystem_words(capsys):
    assert main(["plan", "meta-llama/Llama-3.1-70B", "--gpu", H100, "--tensor-parallel-size", "4", "--seq-len", "2k",
                 "--dtype", "auto", "--max-model-len", "8192", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["serving"]["tp"] == 4 and out["workload"]["seq_len"] == 2048
    assert main(["estimate", "meta-llama/Llama-2-13b-hf", "--quantization", "Q4_K_M", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["workload"]["quantization"] == "gguf:Q4_K_M"


def test_plan_json_contract(capsys):
    assert main(["plan", "meta-llama/Llama-3.1-8B", "--gpu", H100, "--max-model-len", "8192", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"gpu", "fits", "max_batch_size", "max_seq_len", "min_gpus", "serving", "launch", "assumptions"} <= set(out)
    assert {"kv_cache_tokens", "max_concurrent_sequences", "kv_pool_bytes", "weights_bytes", "tp", "pp",
            "would_start"} <= set(out["serving"])
    assert main(["plan", "meta-llama/Llama-3.1-8B", "--gpu", f"{H100},L4", "--format", "json"]) == 0
    assert [p["gpu"]["name"] for p in json.loads(capsys.readouterr().out)["plans"]] == [H100, "L4"]


def test_training_plan_carries_its_settings():
    p = plan(lookup("Qwen/Qwen2.5-0.5B"), make_workload(task="training", method="lora", batch_size=4,
                                                          gradient_accumulation_steps=2), get_gpu("RTX-4090"))
    assert p.fits and p.launch.engine == "training"
    ta = p.launch.extra["training_arguments"]
    assert ta["per_device_train_batch_size"] == 4 and ta["gradient_accumulation_steps"] == 2
    assert p.launch.extra["lightning"]["accumulate_grad_batches"] == 2


def test_llamacpp_launch_of_a_hub_gguf(gguf_hub):
    from hf_gpu_estimator.sources import inspect_model

    spec = inspect_model("hfge-gguf/tiny-GGUF:Q4_K_M")
    v = fit(spec, make_workload(), Deployment(gpu=get_gpu("RTX-4090"), engine="llama.cpp", max_model_len=512,
                                              parallel=2))
    assert v.fits
    assert v.launch.command.startswith("llama-server -hf hfge-gguf/tiny-GGUF:Q4_K_M -ngl ")
    assert "-c 1024 -fa on -np 2" in v.launch.command


def test_plan_without_gpu_answers_over_the_catalog(capsys):
    """Issue: 'plan MODEL --max-model-len 32768' without --gpu was 'error: gpu=None is required'."""
    from hf_gpu_estimator.hardware import list_gpus
    from hf_gpu_estimator.planner import plan_catalog

    spec = lookup("meta-llama/Llama-3.1-70B")
    overview = plan_catalog(spec, make_workload(), max_model_len=32768)
    assert len(overview.rows) == len(list_gpus())
    h100 = next(r for r in overview.rows if r.gpu.name == H100)
    assert h100.verdict.verdict == "would not start" and (h100.min_gpus.tp, h100.min_gpus.pp) == (4, 1)
    counts = [r.min_gpus.num_gpus for r in overview.rows if r.min_gpus is not None]
    assert counts == sorted(counts)
    assert main(["plan", "meta-llama/Llama-3.1-70B", "--max-model-len", "32768", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["gpus"]
    assert next(r for r in rows if r["gpu"] == H100)["launch"].startswith("vllm serve")
