"""Local folders (single file, sharded index, config only) and single .safetensors files."""

from __future__ import annotations

import json

import pytest

from hf_gpu_estimator import errors
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.sources.local import read_local


def test_folder_single_file(local_model):
    spec = inspect_model(local_model("hfge-test/tiny-llama"))
    assert spec.parameters.total == 106816 and spec.provenance["parameters"] == "header"
    assert spec.architecture is not None and spec.architecture.num_layers == 2


def test_folder_sharded_tied(local_model):
    folder = local_model("hfge-test/tiny-qwen2-sharded")
    spec = inspect_model(str(folder))
    assert spec.architecture.tie_word_embeddings
    assert any("counted once" in a for a in spec.assumptions)


def test_single_safetensors_file_has_no_architecture(local_model):
    path = local_model("hfge-test/tiny-gpt2") / "model.safetensors"
    spec = inspect_model(path)
    assert spec.architecture is None and spec.stored_dtype == "float32"
    assert spec.parameters.total == 120576  # buffers recognised by name, config or not
    assert spec.provenance["parameters"] == "header"


def test_config_only_folder(local_model):
    spec = inspect_model(local_model("hfge-test/config-only"))
    assert spec.provenance["parameters"] == "config"


def test_header_only_file_is_rejected_as_truncated(tmp_path):
    from hub_server import DATA

    # The fixture files lack their body: read as-is, the offsets point past the end.
    with pytest.raises(errors.MalformedHeaderError, match="tensors end at byte"):
        inspect_model(DATA / "hfge-test" / "tiny-llama" / "model.safetensors")


def test_errors(tmp_path, local_model):
    with pytest.raises(errors.ModelNotFoundError, match="neither config.json nor safetensors"):
        read_local(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(errors.ModelNotFoundError, match="not .safetensors"):
        inspect_model(tmp_path / "notes.txt")
    folder = local_model("hfge-test/tiny-qwen2-sharded")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["x"] = "../escape.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(errors.MalformedHeaderError, match="escapes"):
        inspect_model(folder)
    with pytest.raises(errors.InvalidArgumentError, match="revision"):
        inspect_model(local_model("hfge-test/tiny-llama"), revision="main")


def test_local_path_wins_over_hub_id(tmp_path, local_model, monkeypatch):
    folder = local_model("hfge-test/tiny-llama")
    org = tmp_path / "cwd" / "hfge-test"
    org.mkdir(parents=True)
    folder.rename(org / "tiny-llama")
    monkeypatch.chdir(tmp_path / "cwd")
    # HF_ENDPOINT points at a closed port: reaching the Hub would raise HubConnectionError.
    assert inspect_model("hfge-test/tiny-llama").parameters.total == 106816
