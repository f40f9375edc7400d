"""A broken network, through the loopback Hub stand-in with fault injection.

Every fault ends in a typed error that names the fix (or in a correct answer after a bounded
number of retries), within a bounded time. What huggingface_hub retries and what we do not:

- every request of ours (the config.json HEAD that runs before ``hf_hub_download``, the
  ``safetensors-metadata`` request, the index and the two range GETs per shard) is retried only
  for transient failures (408/429/5xx, a read timeout, a dropped connection), at most
  ``sources.hub.MAX_ATTEMPTS`` times within ``RETRY_BUDGET_S`` (backoff 1, 2, 4 s or Retry-After);
- a connection that cannot be made (refused, DNS failure, connect timeout) is not retried: one
  line, at once, and the catalog where it has the model; huggingface_hub's own retry lines never
  print.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import hub_server
import pytest
from conftest import TEST_TOKEN, _patch_hub_constants
from hub_server import Fault, commit_of

from hf_gpu_estimator import errors
from hf_gpu_estimator.sources import hub as hub_source
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.sources.safetensors_header import build_header_bytes

ORG = "hfge-test"
REPO = f"{ORG}/tiny-llama"  # single file: config HEAD+GET, safetensors-metadata 404, 2 range GETs
SHARDED = f"{ORG}/tiny-qwen2-sharded"
#: No case may take longer than this (the slowest: a timed-out request at the patched timeout).
CASE_BUDGET_S = 8.0


@pytest.fixture
def faulty(hub, no_hub_backoff, monkeypatch):
    """The stand-in, short request timeouts, no backoff sleeps; faults removed afterwards."""
    from huggingface_hub import constants

    monkeypatch.setattr(hub_source, "TIMEOUT_S", 0.5)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.5)
    monkeypatch.setattr("huggingface_hub.file_download._ETAG_RETRY_TIMEOUT", 0.5)
    yield hub
    hub.clear_faults()


def _timed(fn):
    start = time.monotonic()
    try:
        return fn()
    finally:
        assert time.monotonic() - start < CASE_BUDGET_S


def _one_line(e: BaseException) -> str:
    text = str(e)
    assert text and "\n" not in text, repr(text)
    return text


# --- table: fault -> typed error whose message names a fix --------------------------------

CONFIG = r"/config\.json$"
RANGED = r"/model\.safetensors$"
TRANSIENT = ("retry later", "HF_HUB_OFFLINE", "check the network")

CASES = [
    # (id, repo, revision, faults, error, words one of which the message holds)
    ("config-503", REPO, None, [Fault(path=CONFIG, status=503)], errors.HubConnectionError, TRANSIENT),
    ("config-500", REPO, None, [Fault(path=CONFIG, status=500)], errors.HubConnectionError, TRANSIENT),
    ("config-502", REPO, None, [Fault(path=CONFIG, status=502)], errors.HubConnectionError, TRANSIENT),
    ("config-429-retry-after", REPO, None, [Fault(path=CONFIG, status=429, headers={"Retry-After": "0"})],
     errors.HubConnectionError, TRANSIENT),
    ("config-reset", REPO, None, [Fault(path=CONFIG, reset=True)], errors.HubConnectionError, TRANSIENT),
    ("config-redirect-loop", REPO, None, [Fault(path=CONFIG, redirect=f"/{REPO}/resolve/main/config.json")],
     errors.HubConnectionError, TRANSIENT),
    ("config-401", REPO, None, [Fault(path=CONFIG, status=401)], errors.GatedRepoError, ("HF_TOKEN",)),
    ("config-403", REPO, None, [Fault(path=CONFIG, status=403)], errors.GatedRepoError, ("HF_TOKEN",)),
    ("range-401", REPO, None, [Fault(path=RANGED, ranged=True, status=401)], errors.GatedRepoError, ("HF_TOKEN",)),
    ("range-403", REPO, None, [Fault(path=RANGED, ranged=True, status=403, error_code="GatedRepo")],
     errors.GatedRepoError, ("HF_TOKEN",)),
    ("repo-404", f"{ORG}/no-such-repo", None, [], errors.ModelNotFoundError, ("check the id",)),
    ("revision-404", REPO, "no-such-branch", [], errors.RevisionNotFoundError, ("branch, tag or commit",)),
    ("range-503", REPO, None, [Fault(path=RANGED, ranged=True, status=503)], errors.HubConnectionError, TRANSIENT),
    ("range-429", REPO, None, [Fault(path=RANGED, ranged=True, status=429, headers={"Retry-After": "3600"})],
     errors.HubConnectionError, TRANSIENT),
    ("range-reset", REPO, None, [Fault(path=RANGED, ranged=True, reset=True)], errors.HubConnectionError, TRANSIENT),
    ("range-reset-second-read", REPO, None,
     [Fault(path=RANGED, ranged=True, times=1), Fault(path=RANGED, ranged=True, reset=True)],
     errors.HubConnectionError, TRANSIENT),
    ("range-timeout", REPO, None, [Fault(path=RANGED, ranged=True, delay_s=3)], errors.HubConnectionError, TRANSIENT),
    ("range-short", REPO, None, [Fault(path=RANGED, ranged=True, short_by=3)], errors.HubConnectionError,
     ("range request",)),
    ("range-short-header", REPO, None, [Fault(path=RANGED, ranged=True, times=1),
                                         Fault(path=RANGED, ranged=True, short_by=1)],
     errors.HubConnectionError, ("range request",)),
    ("range-wrong-content-range", REPO, None,
     [Fault(path=RANGED, ranged=True, content_range="bytes 100-107/99999")], errors.HubConnectionError,
     ("range request",)),
    ("range-garbled-content-range", REPO, None, [Fault(path=RANGED, ranged=True, content_range="lol")],
     errors.HubConnectionError, ("range request",)),
    ("range-truncated-body", REPO, None, [Fault(path=RANGED, ranged=True, truncate_by=4)],
     errors.HubConnectionError, TRANSIENT),
    ("range-redirect-loop", REPO, None, [Fault(path=RANGED, ranged=True, redirect=f"/{REPO}/resolve/main/model.safetensors")],
     errors.HubConnectionError, TRANSIENT),
    ("metadata-503", SHARDED, None, [Fault(path="safetensors-metadata", status=503)], errors.HubConnectionError,
     TRANSIENT),
    ("metadata-timeout", SHARDED, None, [Fault(path="safetensors-metadata", delay_s=3)], errors.HubConnectionError,
     TRANSIENT),
    ("metadata-not-json", SHARDED, None, [Fault(path="safetensors-metadata", status=200, body=b"<html>oops")],
     errors.MalformedHeaderError, ("unexpected response",)),
    ("metadata-deep-json", SHARDED, None, [Fault(path="safetensors-metadata", status=200, body=b"[" * 200_000)],
     errors.MalformedHeaderError, ("unexpected response",)),
    ("metadata-wrong-shape", SHARDED, None,
     [Fault(path="safetensors-metadata", status=200, body=b'{"headers": {"a": [1, 2]}}')],
     errors.MalformedHeaderError, ("not a JSON object",)),
    ("index-503", SHARDED, commit_of(SHARDED), [Fault(path=r"index\.json$", status=503)],
     errors.HubConnectionError, TRANSIENT),
    ("index-not-json", SHARDED, commit_of(SHARDED), [Fault(path=r"index\.json$", method="GET", status=200, body=b"\xff\xfe{")],
     errors.MalformedHeaderError, ("not valid JSON",)),
]  # fmt: skip


@pytest.mark.parametrize(("repo", "revision", "faults", "error", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_fault_is_a_typed_error_naming_the_fix(faulty, repo, revision, faults, error, words):
    faulty.inject(*faults)
    with pytest.raises(error) as info:
        _timed(lambda: inspect_model(repo, revision=revision))
    message = _one_line(info.value)
    assert any(w in message for w in words), message
    assert faulty.request_count < 40  # bounded: no retry loop


def test_transient_config_errors_are_retried_a_bounded_number_of_times(faulty):
    faulty.inject(Fault(path=CONFIG, status=503))
    with pytest.raises(errors.HubConnectionError):
        inspect_model(REPO)
    config_requests = [r for r in faulty.requests if r.path.endswith("config.json")]
    assert 2 <= len(config_requests) <= 7  # first HEAD + huggingface_hub's 5 retries at most


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_a_transient_config_error_then_success(faulty, status):
    faulty.inject(Fault(path=CONFIG, status=status, headers={"Retry-After": "1"}, times=2))
    spec = _timed(lambda: inspect_model(REPO))
    assert spec.provenance["parameters"] == "header"


def test_retry_after_is_honoured_but_bounded(hub, monkeypatch):
    """Retry-After is waited (recorded here, not slept), within MAX_ATTEMPTS and RETRY_BUDGET_S."""
    slept: list[float] = []
    monkeypatch.setattr(hub_source, "_sleep", slept.append)
    hub.inject(Fault(path=CONFIG, status=429, headers={"Retry-After": "2"}))
    with pytest.raises(errors.HubConnectionError, match="asks to wait 2 s"):
        inspect_model(REPO)
    assert slept == [2.0] * (hub_source.MAX_ATTEMPTS - 1)
    assert len([r for r in hub.requests if r.path.endswith("config.json")]) == hub_source.MAX_ATTEMPTS


def test_a_retry_after_beyond_the_budget_is_not_waited(hub, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(hub_source, "_sleep", slept.append)
    hub.inject(Fault(path=CONFIG, status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(errors.HubConnectionError, match="retry later"):
        _timed(lambda: inspect_model(REPO))
    assert slept == []


@pytest.mark.parametrize("status", [503, 429])
def test_range_reads_are_retried_a_bounded_number_of_times(faulty, status):
    faulty.inject(Fault(path=RANGED, ranged=True, status=status))
    with pytest.raises(errors.HubConnectionError, match="retry later"):
        _timed(lambda: inspect_model(REPO))
    assert len([r for r in faulty.requests if r.range]) == hub_source.MAX_ATTEMPTS


def test_a_transient_range_error_then_success(faulty):
    faulty.inject(Fault(path=RANGED, ranged=True, status=503, times=2))
    assert _timed(lambda: inspect_model(REPO)).provenance["parameters"] == "header"


@pytest.mark.parametrize("status", [404, 410])
def test_a_404_never_says_retry_later(faulty, status):
    faulty.inject(Fault(path=RANGED, ranged=True, status=status))
    with pytest.raises(errors.ModelNotFoundError) as info:
        inspect_model(REPO)
    assert "retry" not in str(info.value)
    assert len([r for r in faulty.requests if r.range]) == 1  # an answer, not an outage: no retry


def test_a_server_ignoring_range_costs_only_the_header_bytes(faulty):
    faulty.inject(Fault(path=RANGED, ranged=True, ignore_range=True))
    spec = _timed(lambda: inspect_model(REPO))
    assert spec.provenance["parameters"] == "header"


@pytest.fixture
def huge_repo(tmp_path, faulty, monkeypatch, isolated_hf_home):
    """A second stand-in serving one repo whose single tensor spans 8 GiB (served as zeros)."""
    folder = tmp_path / "hub" / "huge" / "model"
    folder.mkdir(parents=True)
    header, _ = build_header_bytes([("w", "U8", (8 << 30,))])
    (folder / "model.safetensors").write_bytes(header)
    server = hub_server.start(root=tmp_path / "hub")
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    _patch_hub_constants(monkeypatch, home=isolated_hf_home, endpoint=server.endpoint, offline=False)
    yield server
    server.stop()


def test_ignored_range_on_a_huge_file_does_not_download_it(huge_repo):
    huge_repo.inject(Fault(path=RANGED, ranged=True, ignore_range=True))
    spec = _timed(lambda: inspect_model("huge/model"))
    assert spec.parameters.total == 8 << 30
    time.sleep(0.2)  # let the server notice the hang-up
    assert huge_repo.bytes_served < 64 << 20


def test_hostile_commit_header_never_names_a_file_outside_the_cache(huge_repo, isolated_hf_home, tmp_path):
    huge_repo.inject(Fault(path=RANGED, commit="../../../../escaped"), Fault(path="safetensors", commit="../../x"))
    spec = inspect_model("huge/model")  # no config.json: the commit comes from response headers
    assert spec.revision is None or len(spec.revision) == 40
    written = {p for p in tmp_path.rglob("*") if p.is_file() and "hub" not in p.relative_to(tmp_path).parts[:1]}
    assert all(isolated_hf_home in p.parents for p in written), written


def test_redirect_to_another_host_drops_the_token(faulty, isolated_hf_home):
    other = hub_server.start()
    try:
        faulty.inject(Fault(path=RANGED, ranged=True, redirect=f"{other.endpoint}/{REPO}/resolve/main/model.safetensors"))
        spec = inspect_model(REPO, token=TEST_TOKEN)
        assert spec.provenance["parameters"] == "header"
        assert other.request_count >= 1 and not any(other.authorizations)
        assert f"Bearer {TEST_TOKEN}" in faulty.authorizations
    finally:
        other.stop()


def test_redirect_on_the_same_host_is_followed(faulty):
    faulty.inject(Fault(path=r"^/elsewhere/"), Fault(path=RANGED, ranged=True, times=2,
                                                       redirect=f"/{REPO}/resolve/{commit_of(REPO)}/model.safetensors"))
    assert inspect_model(REPO).provenance["parameters"] == "header"


# --- catalog fallback and offline mode -------------------------------------------------------

CATALOG_ID = "meta-llama/Llama-2-7b-hf"


@pytest.mark.parametrize(
    ("faults", "reason"),
    [([Fault(status=503)], "could not be reached"), ([Fault(reset=True)], "could not be reached"),
     ([Fault(status=401)], "gated"), ([], "the Hub answered")],
    ids=["503", "reset", "401", "404"],
)  # fmt: skip
def test_catalog_id_with_the_hub_failing_falls_back_with_a_notice(faulty, faults, reason):
    faulty.inject(*faults)
    spec = _timed(lambda: inspect_model(CATALOG_ID))
    assert spec.provenance["parameters"] == "catalog"
    assert "bundled catalog" in spec.assumptions[0] and reason in spec.assumptions[0], spec.assumptions[0]


def test_catalog_fallback_offline_without_cache(hub, offline):
    spec = inspect_model(CATALOG_ID)
    assert spec.provenance["parameters"] == "catalog" and "offline mode" in spec.assumptions[0]
    assert [r for r in hub.requests if "agent" not in r.path] == []


def test_offline_without_cache_and_no_catalog_entry(hub, offline):
    with pytest.raises(errors.HubConnectionError, match="unset HF_HUB_OFFLINE") as info:
        inspect_model(REPO)
    _one_line(info.value)


def test_offline_with_cache_then_faults_do_not_matter(faulty, monkeypatch):
    online = inspect_model(REPO)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    faulty.inject(Fault(reset=True))
    assert inspect_model(REPO).parameters == online.parameters


def test_cached_repo_survives_a_hub_outage(faulty):
    online = inspect_model(REPO)
    faulty.inject(Fault(status=503))
    assert _timed(lambda: inspect_model(REPO)).parameters == online.parameters


def test_offline_env_var_is_honoured(hub, monkeypatch):
    """HF_HUB_OFFLINE=1 in the environment (as a user sets it), not only the patched constant."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(errors.HubConnectionError, match="offline"):
        inspect_model(REPO)


def test_local_paths_need_no_network(local_model, offline):
    folder = local_model("hfge-test/tiny-llama")
    assert inspect_model(folder).provenance["parameters"] == "header"


def test_fault_knobs_leave_the_stand_in_usable(faulty):
    faulty.inject(Fault(path=RANGED, reset=True, times=hub_source.MAX_ATTEMPTS))
    with pytest.raises(errors.HubConnectionError):
        inspect_model(REPO)
    assert inspect_model(REPO).provenance["parameters"] == "header"
    assert json.loads(Path(hub_server.DATA / REPO / "config.json").read_text())["model_type"] == "llama"
