"""Names and failures: near-miss ids get "did you mean", an unreachable Hub fails fast and quietly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest

from hf_gpu_estimator import errors
from hf_gpu_estimator.sources import catalog, inspect_model
from hf_gpu_estimator.sources import hub as hub_source

#: An unreachable Hub must answer within this (measured: about 0.01 s for a refused connection).
FAIL_FAST_S = 2.0


def _timed(fn):
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def test_refused_connection_fails_fast_in_one_line_without_retry_lines(caplog):
    caplog.set_level(logging.DEBUG)
    # The autouse fixture points HF_ENDPOINT at a closed loopback port: connection refused.
    with pytest.raises(errors.HubConnectionError) as info:
        _, elapsed = _timed(lambda: inspect_model("hfge-test/not-in-the-catalog"))
    assert "\n" not in str(info.value) and "connection refused" in str(info.value)
    assert not [r for r in caplog.records if "Retry" in r.getMessage() or "thrown while" in r.getMessage()]


def test_unreachable_time_is_bounded():
    start = time.monotonic()
    with pytest.raises(errors.HubConnectionError):
        inspect_model("hfge-test/not-in-the-catalog")
    assert time.monotonic() - start < FAIL_FAST_S


def test_unreachable_is_remembered_for_the_next_call(monkeypatch):
    with pytest.raises(errors.HubConnectionError):
        inspect_model("hfge-test/not-in-the-catalog")
    calls = []
    monkeypatch.setattr(hub_source, "_head", lambda *a, **k: calls.append(a))
    with pytest.raises(errors.HubConnectionError, match="connection refused"):
        inspect_model("hfge-test/another")
    assert calls == []  # no second connection attempt within UNREACHABLE_MEMO_S


def test_unreachable_hub_falls_back_to_the_catalog_saying_so(caplog, monkeypatch):
    import hf_gpu_estimator.sources as sources

    monkeypatch.setattr(sources, "_NOTICED", set())
    caplog.set_level(logging.WARNING, logger="hf_gpu_estimator")
    spec, elapsed = _timed(lambda: inspect_model("meta-llama/Llama-2-13b-hf"))
    assert elapsed < FAIL_FAST_S
    assert spec.provenance["parameters"] == "catalog"
    assert "could not be reached (connection refused)" in spec.assumptions[0]
    again = inspect_model("meta-llama/Llama-2-13b-hf")  # once per process, however many estimates ask
    assert "could not be reached (connection refused)" in again.assumptions[0]
    notices = [r.getMessage() for r in caplog.records if r.name == "hf_gpu_estimator"]
    assert len(notices) == 1 and "bundled catalog" in notices[0]


def test_cli_prints_exactly_one_line_when_the_hub_is_unreachable(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hub_source.__file__).rsplit("/hf_gpu_estimator/", 1)[0],
                                                    env.get("PYTHONPATH", "")) if p)  # fmt: skip
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "hf_gpu_estimator", "estimate", "hfge-test/not-in-the-catalog"],
                         capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert time.monotonic() - start < 15  # interpreter start-up included
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "could not reach" in out.stderr, out.stderr


def test_a_missing_repo_gets_suggestions_from_the_hub_search(hub):
    with pytest.raises(errors.ModelNotFoundError) as info:
        inspect_model("hfge-test/tiny-lama")
    message = str(info.value)
    assert "did you mean hfge-test/tiny-llama" in message and "retry" not in message
    assert any(r.path.split("?")[0] == "/api/models" for r in hub.requests)


def test_a_misspelled_org_gets_the_catalog_twin(hub):
    with pytest.raises(errors.ModelNotFoundError, match=r"did you mean meta-llama/Llama-2-7b-hf"):
        inspect_model("meta-lama/Llama-2-7b-hf")


def test_offline_near_miss_gets_catalog_suggestions(hub, offline):
    with pytest.raises(errors.HubConnectionError, match=r"did you mean meta-llama/Llama-2-7b-hf"):
        inspect_model("meta-llama/Llama-2-7b-hff")


def test_a_short_name_of_the_catalog_resolves_with_a_note(hub):
    spec = inspect_model("llama-2-7b")
    assert spec.id == "meta-llama/Llama-2-7b-hf"
    assert "the catalog knows that name" in spec.assumptions[0]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("meta-lama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf"), ("llama2-7b-hf", "meta-llama/Llama-2-7b-hf"),
     ("mistralai/Mistral-7B-v0.2", "mistralai/Mistral-7B-v0.1"), ("Qwen/Qwen2.5-7B-Instrct", "Qwen/Qwen2.5-7B-Instruct")],
)  # fmt: skip
def test_catalog_similar_ids(typed, expected):
    assert expected in catalog.similar_ids(typed)


def test_nothing_close_suggests_nothing():
    assert catalog.similar_ids("zzzz/qqqq-xxxx") == ()


@pytest.mark.parametrize("repo", ["hfge-test/zzzz-qqqq-xxxx", "hfge-test/tiny-lama"])
def test_the_error_chain_has_no_cycle(hub, repo):
    with pytest.raises(errors.ModelNotFoundError) as info:
        inspect_model(repo)
    seen, e = set(), info.value
    while e is not None:
        assert id(e) not in seen  # a cycle would hang any code that walks __cause__
        seen.add(id(e))
        e = e.__cause__ or e.__context__
