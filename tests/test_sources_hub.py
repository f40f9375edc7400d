"""Hub sources against the loopback stand-in, through the real huggingface_hub client."""

from __future__ import annotations

import sys
import types

import pytest
from conftest import TEST_TOKEN
from hub_server import commit_of

from hf_gpu_estimator import errors
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.spec import ModelSpec, ParameterCounts

ORG = "hfge-test"


def meta_count(config: dict) -> int:
    """sum(p.numel()) of the transformers model built on the meta device: the reference."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = {k: v for k, v in config.items() if k != "quantization_config"}
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**config))
    return sum(p.numel() for p in model.parameters())


def repo_requests(hub) -> list:
    # huggingface_hub fetches its agent registry once per process; not a request of ours.
    return [r for r in hub.requests if "/api/agent-harnesses" not in r.path]


@pytest.mark.parametrize(
    ("repo", "correction"),
    [("tiny-llama", "rotary_emb.inv_freq ×2"), ("tiny-qwen2-sharded", "counted once"),
     ("tiny-gpt2", "attn.masked_bias ×2"), ("tiny-llama-gptq", "GPTQ/AWQ qweight"),
     ("tiny-llama-bnb4", "bitsandbytes 4-bit weight")],
)  # fmt: skip
def test_exact_counts_match_the_meta_model(hub, repo, correction):
    spec = inspect_model(f"{ORG}/{repo}")
    assert spec.parameters.total == meta_count(dict(spec.config))
    assert spec.provenance["parameters"] == "header"
    assert spec.revision == commit_of(f"{ORG}/{repo}")
    assert any(correction in a for a in spec.assumptions), spec.assumptions
    assert not any("formula gives" in a for a in spec.assumptions)
    assert spec.checkpoint_bytes == sum(spec.checkpoint_bytes_by_dtype.values()) > 0
    assert sum(spec.parameters.by_role.values()) == spec.parameters.total


def test_quantized_repo_carries_its_quantization(hub):
    spec = inspect_model(f"{ORG}/tiny-llama-gptq")
    assert spec.quantization is not None and spec.quantization.method == "gptq" and spec.quantization.group_size == 32
    assert spec.stored_dtype == "float16"


def test_sharded_repo_reads_only_headers_in_few_requests(hub):
    spec = inspect_model(f"{ORG}/sharded-30")
    reqs = repo_requests(hub)
    assert len(reqs) <= 30 + 3
    assert spec.parameters.total == meta_count(dict(spec.config))


def test_range_reads_never_touch_tensor_data(hub):
    # A pinned revision skips the batched endpoint: index + 2 range requests per shard.
    from hub_server import DATA

    repo = f"{ORG}/tiny-qwen2-sharded"
    inspect_model(repo, revision=commit_of(repo))
    ranged = [r for r in repo_requests(hub) if r.range]
    assert len(ranged) == 2 * 3
    for r in ranged:
        shard = DATA / repo / r.path.rsplit("/", 1)[1]
        first, last = map(int, r.range.removeprefix("bytes=").split("-"))
        assert last < shard.stat().st_size  # within the 8-byte length + header region
        assert r.status == 206


def test_second_call_reuses_caches(hub):
    inspect_model(f"{ORG}/sharded-30")
    hub.reset()
    inspect_model(f"{ORG}/sharded-30")
    assert [r.method for r in repo_requests(hub)] == ["HEAD"]  # config.json etag check only


def test_named_revision(hub):
    spec = inspect_model(f"{ORG}/tiny-llama", revision="v1.0")
    assert spec.revision == "1" * 40


def test_config_only_repo_counts_from_config(hub):
    spec = inspect_model(f"{ORG}/config-only")
    assert spec.provenance["parameters"] == "config" and spec.checkpoint_bytes is None
    assert spec.parameters.total == meta_count(dict(spec.config))


@pytest.mark.parametrize(
    ("repo", "kwargs", "error", "message"),
    [("does-not-exist", {}, errors.ModelNotFoundError, "is not a repo on"),
     ("tiny-llama", {"revision": "no-such-branch"}, errors.RevisionNotFoundError, "revision 'no-such-branch'"),
     ("gated-llama", {}, errors.GatedRepoError, "accept its licence on the Hub and set HF_TOKEN"),
     ("bad-config", {}, errors.MalformedConfigError, "not valid JSON"),
     ("bad-header", {}, errors.MalformedHeaderError, "exceeds the format's limit"),
     ("truncated-header", {}, errors.MalformedHeaderError, "truncated")],
    ids=["missing-repo", "missing-revision", "gated", "bad-config", "oversized-header", "truncated-header"],
)  # fmt: skip
def test_typed_errors(hub, repo, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        inspect_model(f"{ORG}/{repo}", **kwargs)
    assert info.value.__cause__ is not None or error in (errors.MalformedConfigError, errors.MalformedHeaderError)


def test_gated_repo_with_token_argument_and_env(hub, monkeypatch):
    assert inspect_model(f"{ORG}/gated-llama", token=TEST_TOKEN).parameters.total > 0
    monkeypatch.setenv("HF_TOKEN", TEST_TOKEN)
    assert inspect_model(f"{ORG}/gated-llama").parameters.total > 0


def test_token_never_in_messages(hub, monkeypatch):
    sentinel = "hf_SENTINEL_do_not_print_0123456789"
    monkeypatch.setenv("HF_TOKEN", sentinel)
    for repo in ("gated-llama", "does-not-exist"):
        with pytest.raises(errors.SourceError) as info:
            inspect_model(f"{ORG}/{repo}", token=sentinel)
        assert sentinel not in str(info.value) and sentinel not in repr(info.value)


def test_unreachable_hub_is_a_connection_error(no_hub_backoff):
    # The autouse fixture points HF_ENDPOINT at a closed loopback port.
    with pytest.raises(errors.HubConnectionError, match="could not reach"):
        inspect_model(f"{ORG}/tiny-llama")


def test_offline_with_cache_works_and_sends_nothing(hub, monkeypatch):
    online = inspect_model(f"{ORG}/tiny-qwen2-sharded")
    hub.reset()
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = inspect_model(f"{ORG}/tiny-qwen2-sharded")
    assert offline.parameters == online.parameters and offline.provenance["parameters"] == "header"
    assert repo_requests(hub) == []


def test_offline_without_cache_names_offline_mode(hub, offline):
    with pytest.raises(errors.HubConnectionError, match=r"offline mode \(HF_HUB_OFFLINE=1\)"):
        inspect_model(f"{ORG}/tiny-llama")
    assert repo_requests(hub) == []


def _fake_catalog(monkeypatch, entries: dict[str, ModelSpec]) -> None:
    module = types.ModuleType("hf_gpu_estimator.sources.catalog")
    module.lookup = entries.get  # type: ignore[attr-defined]
    module.catalog_entry = lambda model_id: None  # type: ignore[attr-defined]
    module.similar_ids = lambda model_id: ()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hf_gpu_estimator.sources.catalog", module)


CATALOG_SPEC = ModelSpec(
    id="hfge-test/gated-llama", architecture=None, stored_dtype="bfloat16",
    parameters=ParameterCounts(total=7, by_role={"other": 7}, active=7), provenance={"parameters": "catalog"},
)  # fmt: skip


@pytest.mark.parametrize("situation", ["gated", "offline", "unreachable"])
def test_catalog_fallback_says_why(hub, monkeypatch, no_hub_backoff, situation):
    _fake_catalog(monkeypatch, {"hfge-test/gated-llama": CATALOG_SPEC})
    if situation == "offline":
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    if situation == "unreachable":
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    spec = inspect_model("hfge-test/gated-llama")
    assert spec.parameters.total == 7 and spec.provenance["parameters"] == "catalog"
    reason = {"gated": "gated", "offline": "offline mode", "unreachable": "could not be reached"}[situation]
    assert "bundled catalog" in spec.assumptions[0] and reason in spec.assumptions[0]


def test_revision_not_found_does_not_fall_back(hub, monkeypatch):
    _fake_catalog(monkeypatch, {f"{ORG}/tiny-llama": CATALOG_SPEC})
    with pytest.raises(errors.RevisionNotFoundError):
        inspect_model(f"{ORG}/tiny-llama", revision="nope")


def test_not_a_path_nor_a_repo_id():
    with pytest.raises(errors.ModelNotFoundError, match="neither an existing file or folder nor a Hub repo id"):
        inspect_model("no such model")


@pytest.mark.parametrize("path", ["./no/such/dir/", "/no/such/model.gguf", "~/nope.safetensors", "missing/config.json",
                                  "nope.json", "..\\models\\x"])
def test_a_missing_local_file_says_no_such_file(path, monkeypatch):
    """A path that does not exist is named as such, online or not (the Hub is never asked)."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(errors.ModelNotFoundError, match="no such file or folder"):
        inspect_model(path)
