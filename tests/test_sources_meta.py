"""Meta's original layout (params.json + consolidated.*.pth), on the loopback Hub and in local folders."""

from __future__ import annotations

import json

import pytest
from conftest import TEST_TOKEN
from hub_server import DATA

from hf_gpu_estimator import errors, estimate
from hf_gpu_estimator.sources import catalog, inspect_model, meta

ORG = "hfge-test"
#: meta-llama/Llama-2-13b-hf, the -hf twin: sum(p.numel()) of LlamaForCausalLM (the catalog's exact count).
LLAMA2_13B_PARAMETERS = 13_015_864_320


def meta_count(config: dict) -> int:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**config))
    return sum(p.numel() for p in model.parameters())


# --- the pure mapping ---------------------------------------------------------------------------

# (params.json of Meta's release, the -hf twin's intermediate_size in its config.json)
RELEASES = [
    ("Llama-2-7b", {"dim": 4096, "multiple_of": 256, "n_heads": 32, "n_layers": 32, "norm_eps": 1e-05,
                    "vocab_size": -1}, "meta-llama/Llama-2-7b-hf"),
    ("Llama-2-13b", {"dim": 5120, "multiple_of": 256, "n_heads": 40, "n_layers": 40, "norm_eps": 1e-05,
                     "vocab_size": -1}, "meta-llama/Llama-2-13b-hf"),
    ("Llama-2-70b", {"dim": 8192, "multiple_of": 4096, "ffn_dim_multiplier": 1.3, "n_heads": 64, "n_kv_heads": 8,
                     "n_layers": 80, "norm_eps": 1e-05, "vocab_size": -1}, "meta-llama/Llama-2-70b-hf"),
    ("Meta-Llama-3-8B/original", {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
                                  "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05,
                                  "rope_theta": 500000.0}, "meta-llama/Meta-Llama-3-8B"),
    ("Llama-3.1-8B/original", {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
                               "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0,
                               "use_scaled_rope": True}, "meta-llama/Llama-3.1-8B"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "twin"), [r[1:] for r in RELEASES], ids=[r[0] for r in RELEASES])
def test_params_map_onto_the_twin_dimensions_and_exact_count(params, twin):
    from hf_gpu_estimator.architectures import parameter_counts

    twin_entry = catalog.catalog_entry(twin)
    vocab = params["vocab_size"] if params["vocab_size"] > 0 else twin_entry["config"]["vocab_size"]
    config, _ = meta.llama_config(params, vocab_size=vocab, source="params.json")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
        assert config[key] == twin_entry["config"][key], key
    assert config["num_key_value_heads"] == twin_entry["config"].get("num_key_value_heads", config["num_attention_heads"])
    assert parameter_counts(config).total == twin_entry["parameters"]["total"]


def test_sentencepiece_pieces_are_counted():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("make_hub_fixtures", DATA.parents[2] / "scripts" / "make_hub_fixtures.py")
    assert spec is not None
    pytest.importorskip("torch")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_hub_fixtures", module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert meta.sentencepiece_vocab_size(module.sentencepiece_model(32000), source="t") == 32000


@pytest.mark.parametrize("data", [b"", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x0a\x05ab", b"\x0f"])
def test_bad_tokenizer_is_a_typed_error(data):
    with pytest.raises(errors.MalformedConfigError):
        meta.sentencepiece_vocab_size(data, source="tokenizer.model")


def test_tokenizer_json_vocab():
    doc = {"model": {"vocab": {"a": 0, "b": 1}}, "added_tokens": [{"id": 5, "content": "<x>"}]}
    assert meta.tokenizer_json_vocab_size(json.dumps(doc).encode(), source="t") == 6


@pytest.mark.parametrize("params", [{"dim": 64}, {"dim": "64", "n_layers": 2, "n_heads": 4},
                                    {"dim": 64, "n_layers": 2, "n_heads": 5},
                                    {"dim": 64, "n_layers": 2, "n_heads": 4, "ffn_dim_multiplier": "x"}])  # fmt: skip
def test_bad_params_are_typed_errors(params):
    with pytest.raises(errors.MalformedConfigError):
        meta.llama_config(meta.params_from_bytes(json.dumps(params).encode(), source="p"), vocab_size=8, source="p") \
            if meta.is_meta_params(params) else meta.params_from_bytes(json.dumps(params).encode(), source="p")


# --- through the loopback Hub -------------------------------------------------------------------


def test_hub_repo_in_meta_layout_counts_exactly(hub):
    spec = inspect_model(f"{ORG}/tiny-llama-meta")
    assert spec.config["intermediate_size"] == 192  # int(2 * 4 * 64 / 3) = 170, rounded up to 32
    assert spec.config["vocab_size"] == 256  # the tokenizer.model's pieces
    assert spec.parameters.total == meta_count(dict(spec.config)) == 131_392
    assert spec.checkpoint_bytes == 2 * 131_392  # the consolidated.00.pth size the Hub reports
    assert spec.stored_dtype == "bfloat16"
    assert any("Meta's original layout" in a for a in spec.assumptions)


def test_original_folder(hub):
    spec = inspect_model(f"{ORG}/tiny-llama3-original")
    assert spec.config["intermediate_size"] == 224  # int(170 * 1.3) = 221, rounded up to 32
    assert spec.config["max_position_embeddings"] == 8192 and spec.config["rope_theta"] == 500000.0
    assert spec.parameters.total == meta_count(dict(spec.config)) == 149_312
    assert spec.checkpoint_bytes == 2 * 149_312


def test_gated_meta_repo_with_and_without_token(hub):
    assert inspect_model(f"{ORG}/gated-llama-meta", token=TEST_TOKEN).parameters.total == 131_392
    with pytest.raises(errors.GatedRepoError, match="HF_TOKEN"):
        inspect_model(f"{ORG}/gated-llama-meta")


def test_llama_2_13b_online_with_token(hub):
    spec = inspect_model("meta-llama/Llama-2-13b", token=TEST_TOKEN)
    assert spec.provenance["parameters"] == "config"  # params.json, not the catalog
    assert spec.parameters.total == LLAMA2_13B_PARAMETERS
    assert any("-hf twin meta-llama/Llama-2-13b-hf" in a for a in spec.assumptions)  # vocab_size -1
    assert spec.checkpoint_bytes == 2 * LLAMA2_13B_PARAMETERS


def test_llama_2_13b_online_without_token_uses_the_catalog_twin(hub):
    spec = inspect_model("meta-llama/Llama-2-13b")
    assert spec.provenance["parameters"] == "catalog" and spec.parameters.total == LLAMA2_13B_PARAMETERS
    assert "Meta's original release" in spec.assumptions[0]


def test_llama_2_13b_offline(hub, offline):
    est = estimate("meta-llama/Llama-2-13b")
    assert est.spec.parameters.total == LLAMA2_13B_PARAMETERS


def test_llama_2_13b_with_the_hub_unreachable():
    assert inspect_model("meta-llama/Llama-2-13b").parameters.total == LLAMA2_13B_PARAMETERS


def test_estimate_is_the_twins(hub):
    ours = estimate("meta-llama/Llama-2-13b", token=TEST_TOKEN)
    twin = estimate("meta-llama/Llama-2-13b-hf")
    # Same parameters, same workload; only the stored dtype differs (bf16 here, fp16 there): same bytes.
    assert ours.memory.components["weights"] == twin.memory.components["weights"]


# --- local folders ------------------------------------------------------------------------------


def test_local_meta_folder(local_model):
    folder = local_model(f"{ORG}/tiny-llama-meta")
    spec = inspect_model(folder)
    assert spec.parameters.total == 131_392 and spec.checkpoint_bytes == 2 * 131_392


def test_local_download_layout_with_the_tokenizer_one_folder_up(local_model, tmp_path):
    folder = local_model(f"{ORG}/tiny-llama-meta")
    model_dir = folder / "llama-2-tiny"
    model_dir.mkdir()
    for name in ("params.json", "consolidated.00.pth"):
        (folder / name).rename(model_dir / name)
    assert inspect_model(model_dir).config["vocab_size"] == 256


def test_local_original_folder(local_model):
    folder = local_model(f"{ORG}/tiny-llama3-original")
    assert inspect_model(folder).parameters.total == 149_312
    assert inspect_model(folder / "original").parameters.total == 149_312


def test_local_meta_folder_without_tokenizer_names_the_fix(local_model):
    folder = local_model(f"{ORG}/tiny-llama-meta")
    (folder / "tokenizer.model").unlink()
    with pytest.raises(errors.MalformedConfigError, match="tokenizer.model"):
        inspect_model(folder)
