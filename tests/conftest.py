"""Shared fixtures: an isolated huggingface_hub environment for every test, and the loopback Hub."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hub_server  # noqa: E402

HUB_DATA = hub_server.DATA
TEST_TOKEN = hub_server.TEST_TOKEN


def _patch_hub_constants(monkeypatch: pytest.MonkeyPatch, *, home: Path, endpoint: str | None, offline: bool) -> None:
    """huggingface_hub reads HF_* variables at import into ``constants``: patch both."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    if endpoint is not None:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture(autouse=True)
def isolated_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HF_HOME, no token, online mode and an endpoint that is never the real Hub."""
    home = tmp_path / "hf_home"
    home.mkdir()
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE",
                "HFGE_CACHE_DIR"):  # the calibration cache falls back to the isolated HF_HOME
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # Port 9 (discard) on loopback: a test that forgets the stand-in fails fast instead of going online.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    from hf_gpu_estimator.sources import hub as hub_source

    monkeypatch.setattr(hub_source, "_unreachable", {})  # each test finds out for itself
    if "huggingface_hub" in sys.modules:
        _patch_hub_constants(monkeypatch, home=home, endpoint="http://127.0.0.1:9", offline=False)
    return home


@pytest.fixture(scope="session")
def _hub_server() -> Iterator[hub_server.HubStandIn]:
    hub = hub_server.start()
    yield hub
    hub.stop()


@pytest.fixture
def hub(_hub_server: hub_server.HubStandIn, isolated_hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> hub_server.HubStandIn:
    """The loopback Hub stand-in, with HF_ENDPOINT pointing at it and its counters reset."""
    monkeypatch.setenv("HF_ENDPOINT", _hub_server.endpoint)
    _patch_hub_constants(monkeypatch, home=isolated_hf_home, endpoint=_hub_server.endpoint, offline=False)
    _hub_server.reset()
    return _hub_server


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, isolated_hf_home: Path) -> None:
    """HF_HUB_OFFLINE=1, as huggingface_hub sees it."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def materialize(repo: str, dest: Path) -> Path:
    """Copy a fixture repo to ``dest`` as a real local model folder.

    Safetensors fixtures are header-only; each copy is extended (sparsely) to its full size so
    the header's offsets match the file, as in a real checkpoint.
    """
    src = HUB_DATA / repo
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("_repo.json"))
    for path in dest.glob("*.safetensors"):
        os.truncate(path, hub_server.virtual_size(path))
    for name, size in hub_server.declared_sizes(src).items():  # consolidated.*.pth stubs
        os.truncate(dest / name, size)
    return dest


@pytest.fixture
def local_model(tmp_path: Path):
    """Factory: ``local_model("hfge-test/tiny-llama")`` -> a local folder holding that repo."""

    def make(repo: str) -> Path:
        return materialize(repo, tmp_path / repo.replace("/", "--"))

    return make


@pytest.fixture
def no_hub_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait with exponential backoff (ours and huggingface_hub's); skip the waits."""
    import time
    import types

    from huggingface_hub.utils import _http

    from hf_gpu_estimator.sources import hub as hub_source

    monkeypatch.setattr(hub_source, "_sleep", lambda seconds: None)
    fast = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    fast.sleep = lambda seconds: None
    monkeypatch.setattr(_http, "time", fast)
