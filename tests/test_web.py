"""The web calculator's functions without a browser (the page itself: tests/test_web_e2e.py)."""

from __future__ import annotations

import pytest

from hf_gpu_estimator.web import FLEET_EXAMPLE, plan_fleet_markdown


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the example's models are in the bundled catalog


def test_fleet_tab_plans_the_example() -> None:
    pytest.importorskip("yaml")
    out = plan_fleet_markdown(FLEET_EXAMPLE)
    assert "meta-llama/Llama-3.1-8B-Instruct (serving)" in out and "Qwen/Qwen2.5-7B (training)" in out
    assert "Fleet total" in out and "$/month" in out and "Error" not in out


def test_fleet_tab_reports_bad_entries_in_one_line() -> None:
    bad = '{"models": [{"model": "mistralai/Mistral-7B-v0.1", "request_rate": -1, "input_tokens": 8, "output_tokens": 8}]}'
    out = plan_fleet_markdown(bad)
    assert out.startswith("**Error:**") and "request_rate" in out and "\n" not in out
    assert plan_fleet_markdown("{not json").startswith("**Error:**")


def test_the_cost_table_takes_its_traffic_and_budget_from_the_form(tmp_path) -> None:
    from hf_gpu_estimator.web import DEFAULTS, calculate

    served = calculate(**{**DEFAULTS, "model": "gpt2", "seq_len": 512, "request_rate": 2.5}, plot_dir=str(tmp_path))
    assert "serve 2.5 request/s" in served.plan
    trained = calculate(**{**DEFAULTS, "model": "gpt2", "seq_len": 512, "task": "training", "token_budget": 2e8},
                        plot_dir=str(tmp_path))
    assert "train on 2e+08 tokens" in trained.plan
    for field, value in (("request_rate", 0), ("request_rate", None), ("token_budget", float("inf"))):
        refused = calculate(**{**DEFAULTS, "model": "gpt2", "seq_len": 512, field: value}, plot_dir=str(tmp_path))
        assert refused.estimate is None and field in refused.summary, refused.summary
