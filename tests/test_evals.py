"""Evaluation suites (data/eval_suites.json) and the evaluation planner (evals.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hf_gpu_estimator.errors import InvalidArgumentError, UnknownNameError
from hf_gpu_estimator.hardware import get_gpu
from hf_gpu_estimator.planner.evals import eval_tasks, plan_eval, resolve_evals, task_demand
from hf_gpu_estimator.sources.catalog import lookup

ROOT = Path(__file__).resolve().parents[1]
TASKS = eval_tasks()


@pytest.mark.parametrize("name", sorted(TASKS), ids=sorted(TASKS))
def test_every_task_has_sources_and_sane_numbers(name: str) -> None:
    t = TASKS[name]
    assert t.source and t.examples_source and t.tokens_basis
    assert t.examples > 0 and t.question_tokens > 0
    assert ("measured" in t.tokens_basis) or ("estimate" in t.tokens_basis)
    if t.kind == "loglikelihood":
        assert t.choices >= 2 and t.continuation_tokens >= 1
    else:
        assert 0 < t.generated_tokens <= t.max_gen_toks


# Totals held against their sources (dataset cards / the harness YAMLs named in each entry).
@pytest.mark.parametrize(("names", "examples"), [
    (["mmlu"], 14042),                                       # cais/mmlu test
    (["hellaswag"], 10042),                                  # Rowan/hellaswag validation
    (["arc_easy", "arc_challenge"], 2376 + 1172),            # allenai/ai2_arc test
    (["gsm8k"], 1319), (["humaneval"], 164), (["ifeval"], 541), (["mmlu_pro"], 12032),
    (["truthfulqa_mc1"], 817), (["bbh"], 6511),               # BIG-Bench-Hard: 24 x 250 + 187 + 146 + 178
    (["glue"], 1043 + 872 + 408 + 40430 + 9815 + 9832 + 5463 + 277 + 71),
    (["super_glue"], 3270 + 56 + 100 + 4848 + 10000 + 638 + 104 + 277),
])
def test_suite_totals(names: list[str], examples: int) -> None:
    assert sum(r.task.examples for r in resolve_evals(names)) == examples


def test_open_llm_leaderboard_v2_sizes_and_fewshot() -> None:
    runs = resolve_evals("open_llm_leaderboard")
    by = {r.task.name: r for r in runs}
    bbh = [r for n, r in by.items() if n.startswith("leaderboard_bbh_")]
    assert len(bbh) == 24 and sum(r.task.examples for r in bbh) == 5761 and {r.num_fewshot for r in bbh} == {3}
    assert sum(r.task.examples for n, r in by.items() if "gpqa" in n) == 448 + 198 + 546
    assert sum(r.task.examples for n, r in by.items() if "musr" in n) == 756
    assert by["leaderboard_mmlu_pro"].num_fewshot == 5 and by["leaderboard_math_hard"].num_fewshot == 4


def test_leaderboard_v1_fewshot_overrides_and_syntax() -> None:
    shots = {r.task.name: r.num_fewshot for r in resolve_evals("open_llm_leaderboard_v1")}
    assert shots == {"arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0, "winogrande": 5, "gsm8k": 5}
    assert resolve_evals("mmlu:3")[0].num_fewshot == 3
    assert len(resolve_evals("all")) == len(TASKS)
    assert len(resolve_evals("mmlu,mmlu")) == 1


def test_unknown_eval_suggests_and_lists() -> None:
    with pytest.raises(UnknownNameError) as e:
        resolve_evals("mmluu")
    msg = str(e.value)
    assert "did you mean mmlu" in msg and "open_llm_leaderboard" in msg and "glue" in msg
    with pytest.raises(InvalidArgumentError):
        resolve_evals("mmlu:x")
    with pytest.raises(InvalidArgumentError):
        resolve_evals("")


def test_loglikelihood_requests_and_logits_cache() -> None:
    mmlu = resolve_evals("mmlu:5")[0]
    req, fwd_vllm, prompt, processed, gen = task_demand(mmlu, "vllm")
    assert req == 14042 * 4 and fwd_vllm == req and gen == 0
    assert processed == pytest.approx(req * (prompt + 1))
    _, fwd_hf, _, processed_hf, _ = task_demand(mmlu, "transformers")
    assert fwd_hf == 14042 and processed_hf == pytest.approx(processed / 4)
    hs = resolve_evals("hellaswag")[0]  # multi-token endings: one forward per choice in both engines
    assert task_demand(hs, "transformers")[1] == 4 * 10042


def test_generation_prefix_cache_only_in_vllm() -> None:
    bbh = resolve_evals("bbh")[0]
    _, _, prompt, vllm, gen = task_demand(bbh, "vllm")
    _, _, _, hf, _ = task_demand(bbh, "transformers")
    assert hf == pytest.approx(6511 * prompt) and vllm < hf / 5
    assert gen == pytest.approx(6511 * bbh.task.generated_tokens)


def test_plan_totals_add_up_and_engines_differ() -> None:
    spec, gpu = lookup("meta-llama/Llama-2-7b-hf"), get_gpu("H100-SXM-80GB")
    v = plan_eval(spec, None, gpu, "open_llm_leaderboard_v1", engine="vllm")
    h = plan_eval(spec, None, gpu, "open_llm_leaderboard_v1", engine="transformers")
    for p in (v, h):
        assert p.seconds == pytest.approx(sum(t.seconds for t in p.tasks))
        assert p.cost_usd == pytest.approx(p.hours * 3.78 * p.num_gpus)
        assert p.to_dict()["total"]["processed_tokens"] == pytest.approx(p.processed_tokens)
    assert v.kv_cache_tokens and h.kv_cache_tokens is None
    assert all(t.batch_size <= 64 for t in h.tasks)


def test_large_model_needs_tensor_parallel() -> None:
    p = plan_eval(lookup("meta-llama/Llama-3.1-70B"), None, get_gpu("A100-80GB-SXM"), "gsm8k")
    assert p.num_gpus >= 2 and p.gpu_hours == pytest.approx(p.hours * p.num_gpus)


def test_published_mmlu_pro_wall_time() -> None:
    """MMLU-Pro (arXiv:2406.01574; TIGER-Lab's vLLM script, 5-shot CoT): "20-30 minutes to run a 7B param model on
    a single A100" (quoted in https://huggingface.co/spaces/TIGER-Lab/MMLU-Pro/discussions/4, where a user reports
    ~45 minutes). Our roofline, with estimated CoT lengths, must land within 2x of that range: 10-60 minutes."""
    p = plan_eval(lookup("mistralai/Mistral-7B-v0.1"), None, get_gpu("A100-80GB-SXM"), "mmlu_pro", engine="vllm")
    assert 10 <= p.seconds / 60 <= 60


def test_docs_example_in_step() -> None:
    """docs/evals.md and docs/fleet.md embed output of scripts/eval_docs.py; regenerate with that script."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "eval_docs.py"), "--check"], capture_output=True,
                         text=True, cwd=ROOT, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_cli_eval_json_and_bad_fleet(tmp_path: Path) -> None:
    from hf_gpu_estimator.cli import main

    env_ok = main(["plan", "meta-llama/Llama-2-7b-hf", "--eval", "gsm8k", "--gpu", "H100-SXM-80GB", "--format", "json"])
    assert env_ok == 0
    bad = tmp_path / "fleet.json"
    bad.write_text(json.dumps({"models": [{"model": "mistralai/Mistral-7B-v0.1", "request_rate": -1,
                                            "input_tokens": 10, "output_tokens": 10}]}))
    assert main(["plan", "--fleet", str(bad)]) == 2
    bad.write_text(json.dumps({"gpus": ["H100-SXM-80GBX"], "models": [{"model": "mistralai/Mistral-7B-v0.1"}]}))
    assert main(["plan", "--fleet", str(bad)]) == 2
    assert main(["plan", "x/y", "--eval", "nope", "--gpu", "H100-SXM-80GB"]) == 2


def test_example_fleet_runs_offline(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT / "src")}
    env.pop("HF_TOKEN", None)
    out = subprocess.run([sys.executable, "-m", "hf_gpu_estimator", "plan", "--fleet", str(ROOT / "examples" / "fleet.yaml"),
                          "--format", "json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert len(plan["entries"]) == 3 and not any("error" in e for e in plan["entries"])
    assert plan["monthly_usd"] == pytest.approx(plan["hourly_usd"] * 730)


def test_cli_eval_refuses_serving_only_engine_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """--eval sizes vLLM at its defaults (or transformers): a serving engine's flags are refused, not ignored."""
    from hf_gpu_estimator.cli import main

    base = ["plan", "meta-llama/Llama-2-7b-hf", "--eval", "gsm8k", "--gpu", "H100-SXM-80GB"]
    assert main([*base, "-c", "4096"]) == 2
    assert "--ctx-size" in capsys.readouterr().err
    assert main([*base, "--engine", "sglang"]) == 2
    assert main([*base, "--engine", "transformers", "--gpu-memory-utilization", "0.8"]) == 2
    assert main([*base, "--gpu-memory-utilization", "0.8", "--format", "json"]) == 0
