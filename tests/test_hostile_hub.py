"""A hostile Hub: the loopback stand-in misbehaving (slow bytes, stalls, 5xx/429 sequences, lying sizes,
huge bodies), against every reader of the Hub layer (config.json, index, safetensors-metadata, range
reads, model info, params.json, GGUF headers).

Each case ends in a correct answer after retries or in a typed one-line error, within a time and an
RSS bound (``bounds.bounded``); the run-wide deadline (``HFGE_HUB_DEADLINE_S``) bounds a server that
sends a byte every few seconds, which no per-read timeout catches.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import hub_server
import pytest
from bounds import TALLY, bounded
from conftest import _patch_hub_constants
from gguf_writer import header_bytes, llama_metadata, llama_tensors, write_repo
from hub_server import Fault

from hf_gpu_estimator import errors
from hf_gpu_estimator.constants import HUB_DEADLINE_ENV
from hf_gpu_estimator.sources import hub as hub_source
from hf_gpu_estimator.sources import inspect_model

REPO = "hfge-test/tiny-llama"
SHARDED = "hfge-test/tiny-qwen2-sharded"
META = "hfge-test/tiny-llama-meta"
GIB = 1 << 30
TINY = dict(n_layer=2, n_embd=64, n_ff=128, n_head=4, n_head_kv=2, vocab=50)


@pytest.fixture
def faulty(hub, no_hub_backoff, monkeypatch):
    monkeypatch.setenv(HUB_DEADLINE_ENV, "4")
    yield hub
    hub.clear_faults()


@pytest.fixture
def gguf_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_hf_home: Path, no_hub_backoff):
    root = tmp_path / "hub"
    write_repo(root, "o/tiny-GGUF", {"tiny-Q8_0.gguf": header_bytes(llama_metadata(**TINY), llama_tensors(**TINY))})
    # A 3 KB file whose header claims a [2**40, 2**20] float32 tensor (4 EiB of data), served as it is.
    liar, _ = header_bytes(llama_metadata(**TINY), llama_tensors(**TINY) + [("huge.weight", (1 << 40, 1 << 20), "F32")])
    (root / "o/liar-GGUF").mkdir(parents=True)
    (root / "o/liar-GGUF/liar-F32.gguf").write_bytes(liar)
    hub = hub_server.start(root=root)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv(HUB_DEADLINE_ENV, "4")
    _patch_hub_constants(monkeypatch, home=isolated_hf_home, endpoint=hub.endpoint, offline=False)
    yield hub
    hub.stop()


# --- GGUF over the Hub: retried like the rest, sizes and ranges checked -------------------------

@pytest.mark.parametrize("status", [502, 503, 429])
def test_gguf_range_reads_are_retried(gguf_hub, status):
    gguf_hub.inject(Fault(path=r"\.gguf$", status=status, times=2, headers={"Retry-After": "0"}))
    spec = bounded(lambda: inspect_model("o/tiny-GGUF:Q8_0"), seconds=5)
    assert not isinstance(spec, errors.EstimatorError), spec
    assert spec.architecture.num_layers == 2


def test_gguf_model_info_is_retried(gguf_hub):
    gguf_hub.inject(Fault(path=r"^/api/models/", status=503, times=2))
    spec = bounded(lambda: inspect_model("o/tiny-GGUF:Q8_0"), seconds=5)
    assert not isinstance(spec, errors.EstimatorError), spec


def test_gguf_tensor_past_the_declared_file_size_is_refused(gguf_hub):
    e = bounded(lambda: inspect_model("o/liar-GGUF/liar-F32.gguf"), seconds=5)
    assert isinstance(e, errors.MalformedGGUFError) and "the file has" in str(e), e


def test_gguf_short_ranges_fail_at_once(gguf_hub):
    gguf_hub.inject(Fault(path=r"\.gguf$", content_range="bytes 0-999/164416", short_by=1))
    e = bounded(lambda: inspect_model("o/tiny-GGUF/tiny-Q8_0.gguf"), seconds=5)
    assert isinstance(e, errors.HubConnectionError) and "mangled" in str(e), e
    assert gguf_hub.request_count <= hub_source.MAX_ATTEMPTS


def test_gguf_slow_bytes_end_at_the_deadline(gguf_hub, monkeypatch):
    monkeypatch.setenv(HUB_DEADLINE_ENV, "1.5")
    gguf_hub.inject(Fault(path=r"\.gguf$", drip_s=0.2))
    e = bounded(lambda: inspect_model("o/tiny-GGUF/tiny-Q8_0.gguf"), seconds=4)
    assert isinstance(e, errors.HubConnectionError) and HUB_DEADLINE_ENV in str(e), e


# --- transformers repos: bodies capped, sizes checked, one deadline --------------------------------

def test_a_huge_config_json_is_refused_by_its_head(faulty):
    faulty.inject(Fault(path=r"/config\.json$", size=int(1.2 * GIB)))
    e = bounded(lambda: inspect_model(REPO), seconds=5, rss_mib=100)
    assert isinstance(e, errors.MalformedConfigError) and "1,288,490,188 bytes" in str(e), e
    assert faulty.bytes_served < 1 << 20


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("target", [r"/model\.safetensors\.index\.json$", r"/safetensors-metadata/"], ids=["index", "metadata"])
def test_huge_bodies_are_cut_at_their_limit(faulty, target, declare):
    faulty.inject(Fault(path=target, method="GET", huge_body=int(1.2 * GIB), declare=declare))
    e = bounded(lambda: inspect_model(SHARDED), seconds=6, rss_mib=400)
    assert isinstance(e, errors.MalformedHeaderError) and "limit" in str(e), e
    assert faulty.bytes_served < 400 << 20


def test_a_huge_params_json_is_cut(faulty):
    faulty.inject(Fault(path=r"/params\.json$", method="GET", huge_body=int(1.2 * GIB)))
    e = bounded(lambda: inspect_model(META), seconds=5, rss_mib=100)
    assert isinstance(e, errors.MalformedConfigError) and "limit" in str(e), e


def test_a_huge_model_info_is_cut(faulty):
    faulty.inject(Fault(path=r"^/api/models/hfge-test/tiny-llama-meta", method="GET", huge_body=int(1.2 * GIB)))
    e = bounded(lambda: inspect_model(META), seconds=5, rss_mib=200)
    assert isinstance(e, errors.MalformedHeaderError) and "limit" in str(e), e


def test_a_huge_error_body_is_not_read(faulty):
    faulty.inject(Fault(path=r"/model\.safetensors$", ranged=True, status=500, body=b"x" * (64 << 20)))
    e = bounded(lambda: inspect_model(REPO), seconds=6, rss_mib=150)
    assert isinstance(e, errors.HubConnectionError), e


@pytest.mark.parametrize("target", [r"/config\.json$", r"/model\.safetensors$", r"/safetensors-metadata/"])
def test_slow_bytes_end_at_the_deadline(faulty, monkeypatch, target):
    monkeypatch.setenv(HUB_DEADLINE_ENV, "1.5")
    faulty.inject(Fault(path=target, method="GET", drip_s=0.3))
    e = bounded(lambda: inspect_model(REPO), seconds=4)
    assert isinstance(e, errors.HubConnectionError) and HUB_DEADLINE_ENV in str(e), e


def test_a_stalled_head_ends_at_the_deadline(faulty, monkeypatch):
    monkeypatch.setenv(HUB_DEADLINE_ENV, "1")
    faulty.inject(Fault(path=r"/config\.json$", delay_s=20))
    e = bounded(lambda: inspect_model(REPO), seconds=3)
    assert isinstance(e, errors.HubConnectionError) and HUB_DEADLINE_ENV in str(e), e


def test_5xx_then_success_answers(faulty):
    faulty.inject(Fault(path=r"/model\.safetensors$", ranged=True, status=503, times=2),
                  Fault(path=r"/config\.json$", method="HEAD", status=429, times=1, headers={"Retry-After": "0"}))
    spec = bounded(lambda: inspect_model(REPO), seconds=5)
    assert not isinstance(spec, errors.EstimatorError), spec


def test_a_lying_content_range_total_is_refused(faulty):
    faulty.inject(Fault(path=r"/model\.safetensors$", ranged=True, size=100))
    e = bounded(lambda: inspect_model(REPO), seconds=5)
    assert isinstance(e, (errors.MalformedHeaderError, errors.HubConnectionError)), e


def test_one_repos_outage_does_not_fail_another(faulty, local_model):
    # tiny-llama's config.json is cached, then its HEAD answers 503: the catalog-free cache fallback
    # remembers the failure for that repo only; another repo is read at once.
    inspect_model(REPO)
    faulty.inject(Fault(path=rf"^/{REPO}/", status=503))
    bounded(lambda: inspect_model(REPO), seconds=5)
    assert hub_source.unreachable_reason(faulty.endpoint) is None
    spec = bounded(lambda: inspect_model("hfge-test/tiny-gpt2"), seconds=5)
    assert not isinstance(spec, errors.EstimatorError), spec


def test_a_bad_deadline_variable_is_a_typed_error(faulty, monkeypatch):
    monkeypatch.setenv(HUB_DEADLINE_ENV, "soon")
    with pytest.raises(errors.InvalidArgumentError, match=HUB_DEADLINE_ENV):
        inspect_model(REPO)


@pytest.mark.parametrize("status", [502, 429])
def test_config_get_after_a_good_head_is_retried(faulty, status):
    faulty.inject(Fault(path=r"/config\.json$", method="GET", status=status, times=2, headers={"Retry-After": "0"}))
    spec = bounded(lambda: inspect_model(REPO), seconds=5)
    assert not isinstance(spec, errors.EstimatorError), spec


def test_a_config_json_lying_in_its_head_is_cut_at_the_limit(faulty):
    faulty.inject(Fault(path=r"/config\.json$", method="GET", huge_body=int(1.2 * GIB)))
    e = bounded(lambda: inspect_model(REPO), seconds=6, rss_mib=250)
    assert isinstance(e, errors.MalformedConfigError) and "limit" in str(e), e
    assert faulty.bytes_served < 200 << 20


def test_a_huge_search_answer_adds_no_suggestions(faulty):
    faulty.inject(Fault(path=r"^/api/models$", method="GET", huge_body=int(1.2 * GIB)))
    e = bounded(lambda: inspect_model("hfge-test/tiny-lama"), seconds=5, rss_mib=100)
    assert isinstance(e, errors.ModelNotFoundError) and "did you mean" not in str(e), e


def test_figures():
    print(f"\nhostile suite so far (sources, then hub, when run together): {TALLY.line()}")
