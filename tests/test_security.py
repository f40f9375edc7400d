"""Nothing from a repo is executed, tokens never leak, and the files we write are safe.

- A repo with ``auto_map``/``trust_remote_code`` and a ``modeling_evil.py`` that writes a marker
  on import is inspected and estimated, from the Hub and from a folder: no marker, no module.
- A sentinel token goes through every path (API errors, CLI stdout/stderr in both formats,
  DEBUG logging, every file under HF_HOME) and never comes out.
- The header cache lives under HF_HOME, is written atomically, and a damaged entry is ignored
  with a warning and read again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

import hub_server
import pytest
from conftest import TEST_TOKEN, _patch_hub_constants
from hub_server import Fault

from hf_gpu_estimator import errors
from hf_gpu_estimator.cli import main
from hf_gpu_estimator.estimator import estimate
from hf_gpu_estimator.sources import hub as hub_source
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.sources.safetensors_header import build_header_bytes

ORG = "hfge-test"
SENTINEL = "hf_SENTINELtoken_never_print_me_4242"

EVIL_CODE = """
import pathlib
pathlib.Path({marker!r}).write_text("executed")
raise SystemExit("repo code ran")
"""


@pytest.fixture
def evil_repo(tmp_path):
    """A folder (also served as hub repo ``evil/model``) whose config asks for remote code."""
    marker = tmp_path / "MARKER"
    folder = tmp_path / "hub" / "evil" / "model"
    folder.mkdir(parents=True)
    config = {
        "model_type": "llama", "architectures": ["EvilForCausalLM"], "trust_remote_code": True,
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"},
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "vocab_size": 256, "torch_dtype": "float16",
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("modeling_evil.py", "configuration_evil.py", "__init__.py"):
        (folder / name).write_text(EVIL_CODE.format(marker=str(marker)))
    header, _ = build_header_bytes([("model.embed_tokens.weight", "F16", (256, 64))])
    (folder / "model.safetensors").write_bytes(header)
    return folder, marker


def _no_evil_loaded(before: set[str], marker: Path) -> None:
    assert not marker.exists(), "repo code was executed"
    new = set(sys.modules) - before
    assert not [m for m in new if "evil" in m.lower()], new


def test_remote_code_repo_from_a_folder_is_never_executed(evil_repo):
    folder, marker = evil_repo
    os.truncate(folder / "model.safetensors", (folder / "model.safetensors").stat().st_size + 256 * 64 * 2)
    before = set(sys.modules)
    spec = inspect_model(folder)
    est = estimate(folder, task="training", method="lora", seq_len=16)
    est.to_dict()
    str(est)
    assert spec.parameters.total == 256 * 64
    _no_evil_loaded(before, marker)
    assert main(["estimate", str(folder), "--format", "json"]) == 0
    assert main(["inspect", str(folder)]) == 0
    _no_evil_loaded(before, marker)


def test_remote_code_repo_from_the_hub_is_never_executed(evil_repo, isolated_hf_home, monkeypatch, capsys):
    folder, marker = evil_repo
    server = hub_server.start(root=folder.parent.parent)
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        _patch_hub_constants(monkeypatch, home=isolated_hf_home, endpoint=server.endpoint, offline=False)
        before = set(sys.modules)
        assert inspect_model("evil/model").parameters.total == 256 * 64
        estimate("evil/model", task="training", method="qlora").to_dict()
        assert main(["estimate", "evil/model", "--format", "json"]) == 0
        _no_evil_loaded(before, marker)
        assert not [r for r in server.requests if r.path.endswith(".py")], "repo code was downloaded"
        assert not list(isolated_hf_home.rglob("*.py"))
    finally:
        server.stop()


# --- tokens ----------------------------------------------------------------------------------

def _assert_clean(*texts: str) -> None:
    for text in texts:
        assert SENTINEL not in text and TEST_TOKEN not in text, text[:500]


def _files_under(root: Path) -> str:
    out = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out.append(p.read_bytes().decode("latin-1"))
        out.append(str(p))
    return "\n".join(out)


def _exception_text(e: BaseException) -> str:
    import traceback

    parts = ["".join(traceback.format_exception(e))]
    while e is not None:
        parts += [str(e), repr(e), repr(getattr(e, "__dict__", {}))]
        e = e.__cause__ or e.__context__
    return "\n".join(parts)


FAILURES = {
    "gated-wrong-token": (f"{ORG}/gated-llama", []),
    "missing-repo": (f"{ORG}/does-not-exist", []),
    "hub-503": (f"{ORG}/tiny-llama", [Fault(status=503)]),
    "range-reset": (f"{ORG}/tiny-llama", [Fault(path=r"\.safetensors$", ranged=True, reset=True)]),
    "range-mangled": (f"{ORG}/tiny-llama", [Fault(path=r"\.safetensors$", ranged=True, short_by=2)]),
    "redirect-loop": (f"{ORG}/tiny-llama", [Fault(path=r"\.safetensors$", redirect="/x/y/resolve/main/model.safetensors"),
                                            Fault(path=r"^/x/y/", redirect="/x/y/resolve/main/model.safetensors")]),
}  # fmt: skip


@pytest.mark.parametrize(("repo", "faults"), FAILURES.values(), ids=FAILURES.keys())
def test_token_never_in_errors_logs_or_files(hub, no_hub_backoff, caplog, capsys, monkeypatch, isolated_hf_home,
                                             repo, faults):
    monkeypatch.setattr(hub_source, "TIMEOUT_S", 0.5)
    caplog.set_level(logging.DEBUG)
    # huggingface_hub's own handler writes to the sys.stderr of its first use; point it at this test's.
    for handler in logging.getLogger("huggingface_hub").handlers:
        if isinstance(handler, logging.StreamHandler):
            monkeypatch.setattr(handler, "stream", sys.stderr)
    for how in ("argument", "env"):
        hub.reset()
        hub.inject(*faults)
        kwargs = {"token": SENTINEL} if how == "argument" else {}
        if how == "env":
            monkeypatch.setenv("HF_TOKEN", SENTINEL)
        with pytest.raises(errors.EstimatorError) as info:
            estimate(repo, **kwargs)
        _assert_clean(_exception_text(info.value))
        hub.reset()
        hub.inject(*faults)
        for fmt in ("table", "json"):
            code = main(["estimate", repo, "--token", SENTINEL, "--format", fmt])
            assert code in (1, 2)
            out, err = capsys.readouterr()
            _assert_clean(out, err)
            # One line of ours (huggingface_hub may log its retries before it), never a traceback.
            assert len([line for line in err.splitlines() if line.startswith("hfge:")]) == 1, err
            assert "Traceback" not in err
    _assert_clean(caplog.text, "\n".join(str(r.args) for r in caplog.records))
    _assert_clean(_files_under(isolated_hf_home))


def test_valid_token_never_in_output_logs_or_files(hub, caplog, capsys, isolated_hf_home):
    caplog.set_level(logging.DEBUG)
    spec = inspect_model(f"{ORG}/gated-llama", token=TEST_TOKEN)
    _assert_clean(repr(spec), json.dumps(estimate(spec).to_dict()))
    for argv in (["estimate", f"{ORG}/gated-llama", "--token", TEST_TOKEN, "--format", "json"],
                 ["estimate", f"{ORG}/gated-llama", "--token", TEST_TOKEN],
                 ["inspect", f"{ORG}/gated-llama", "--token", TEST_TOKEN, "--format", "json"],
                 ["plan", f"{ORG}/gated-llama", "--token", TEST_TOKEN, "--gpu", "A100-80GB", "--format", "json"]):
        assert main(argv) == 0, capsys.readouterr().err
        out, err = capsys.readouterr()
        _assert_clean(out, err)
    _assert_clean(caplog.text)
    assert list(isolated_hf_home.rglob("*.json"))  # something was cached ...
    _assert_clean(_files_under(isolated_hf_home))  # ... and no token with it


def test_debug_traceback_mode_still_hides_the_token(hub, monkeypatch, capsys):
    monkeypatch.setenv("HFGE_DEBUG", "1")
    with pytest.raises(errors.EstimatorError) as info:
        main(["estimate", f"{ORG}/gated-llama", "--token", SENTINEL])
    _assert_clean(_exception_text(info.value))


# --- the header cache -------------------------------------------------------------------------

REPO = f"{ORG}/tiny-qwen2-sharded"


def _cache_files(home: Path) -> list[Path]:
    return sorted((home / "hf_gpu_estimator" / "safetensors-headers").rglob("*"))


def test_header_cache_lives_under_hf_home_and_is_written_atomically(hub, isolated_hf_home, monkeypatch):
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace
    monkeypatch.setattr(hub_source.os, "replace", lambda a, b: (replaced.append((str(a), str(b))), real_replace(a, b)))
    inspect_model(REPO)
    replaced = [r for r in replaced if "hf_gpu_estimator" in r[1]]  # huggingface_hub's own are not ours
    files = [p for p in _cache_files(isolated_hf_home) if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".json" and isolated_hf_home in files[0].parents
    assert replaced == [(replaced[0][0], str(files[0]))] and replaced[0][0].endswith(".tmp")
    assert not Path(replaced[0][0]).exists()


def test_a_failed_cache_write_leaves_nothing_behind(hub, isolated_hf_home, monkeypatch):
    real_replace = os.replace

    def boom(a, b):
        if "hf_gpu_estimator" in str(b):
            raise OSError(28, "No space left on device")
        return real_replace(a, b)

    monkeypatch.setattr(hub_source.os, "replace", boom)
    spec = inspect_model(REPO)  # the estimate does not depend on the cache
    assert spec.provenance["parameters"] == "header"
    assert not [p for p in _cache_files(isolated_hf_home) if p.is_file()]


def test_a_read_only_cache_is_not_an_error(hub, isolated_hf_home, monkeypatch):
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if "hf_gpu_estimator" in str(self):
            raise PermissionError(13, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert inspect_model(REPO).provenance["parameters"] == "header"


CORRUPT = {
    "garbage": b"\x00\xff garbage",
    "empty": b"",
    "truncated": b'{"version": 1, "tensors": [["a", "F32", [1',
    "not-object": b"[1, 2]",
    "wrong-version": b'{"version": 99, "tensors": []}',
    "no-tensors": b'{"version": 1}',
    "tensors-not-list": b'{"version": 1, "tensors": {"a": 1}}',
    "bad-entry": b'{"version": 1, "tensors": [["a", "F32"]]}',
    "unknown-dtype": b'{"version": 1, "tensors": [["a", "F128", [1]]]}',
    "negative-dim": b'{"version": 1, "tensors": [["a", "F32", [-1]]]}',
    "deep": b"[" * 100_000,
    "huge-int": b'{"version": 1, "tensors": [["a", "F32", [' + b"9" * 5000 + b"]]]}",
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_cache_entry_is_ignored_with_a_warning(hub, isolated_hf_home, content):
    good = inspect_model(REPO)
    (entry,) = [p for p in _cache_files(isolated_hf_home) if p.is_file()]
    entry.write_bytes(content)
    hub.reset()
    with pytest.warns(RuntimeWarning, match="damaged header cache"):
        again = inspect_model(REPO)
    assert again.parameters == good.parameters
    assert [r for r in hub.requests if r.range or "safetensors-metadata" in r.path]  # read again
    assert json.loads(entry.read_text())["version"] == 1  # and repaired
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inspect_model(REPO)  # no warning once repaired
