"""Tests for the bundled model catalog (sources/catalog) and its build script.

Reference for the counts: the publisher's number recorded in each input file
(``published_parameters``): Hugging Face safetensors totals, model cards, papers. Tolerance:
exact published numbers must match exactly once the entry's documented ``known_difference``
(buffers or duplicated tensors the checkpoint stores, which are not parameters) is added;
rounded ones ("110M", "671B") within ``build_catalog.TOLERANCE`` (0.5 %).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_gpu_estimator.sources import catalog
from hf_gpu_estimator.spec import ModelSpec

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "scripts" / "build_catalog.py"


def _load_build_module():
    spec = importlib.util.spec_from_file_location("build_catalog", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_catalog", module)
    spec.loader.exec_module(module)
    return module


build = _load_build_module()
MODELS = catalog.list_models()
ENTRIES = {model_id: catalog.catalog_entry(model_id) for model_id in MODELS}


def test_catalog_is_large_enough_and_sorted():
    assert len(MODELS) >= 40
    assert list(MODELS) == sorted(MODELS, key=str.lower)


@pytest.mark.parametrize("model_id", MODELS, ids=MODELS)
def test_every_entry_builds_a_model_spec(model_id):
    spec = catalog.lookup(model_id)
    assert isinstance(spec, ModelSpec)
    assert spec.id == model_id
    assert spec.architecture is not None
    assert spec.parameters.total > 0
    assert spec.parameters.active <= spec.parameters.total
    assert sum(spec.parameters.by_role.values()) == spec.parameters.total
    assert spec.provenance["parameters"] == "catalog"
    assert spec.provenance["architecture"] == "catalog"
    assert spec.source_url == ENTRIES[model_id]["source"]
    assert spec.source_url.startswith(f"https://huggingface.co/{model_id}/")
    assert spec.checkpoint_bytes and spec.checkpoint_bytes > 0
    assert sum(spec.checkpoint_bytes_by_dtype.values()) == spec.checkpoint_bytes
    assert any("bundled catalog" in a for a in spec.assumptions)
    assert any("derived" in a for a in spec.assumptions)
    assert spec.config["model_type"] == ENTRIES[model_id]["model_type"]


@pytest.mark.parametrize("model_id", MODELS, ids=MODELS)
def test_counts_match_published_numbers(model_id):
    entry = ENTRIES[model_id]
    published = entry["published_parameters"]
    if published is None:
        pytest.skip("no published count recorded")
    derived = entry["parameters"]["total"] + (entry.get("known_difference") or {}).get("parameters", 0)
    if entry["published_parameters_exact"]:
        assert derived == published
    else:
        assert abs(derived - published) / published <= build.TOLERANCE


def test_moe_entries_have_fewer_active_parameters():
    for model_id in ("mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen3-30B-A3B", "deepseek-ai/DeepSeek-V3", "Qwen/Qwen1.5-MoE-A2.7B"):
        spec = catalog.lookup(model_id)
        assert spec.architecture.is_moe
        assert spec.parameters.active < spec.parameters.total / 2


def test_build_is_deterministic_and_models_json_is_current():
    packaged = (ROOT / "src" / "hf_gpu_estimator" / "sources" / "catalog" / "models.json").read_text(encoding="utf-8")
    first = build.build_catalog()
    assert build.build_catalog() == first
    assert first == packaged, "models.json is stale: run python scripts/build_catalog.py"


def test_build_reports_no_mismatch_beyond_tolerance():
    assert [m for m in build.cross_check(build.build_entries()) if m.is_error] == []


def test_cross_check_flags_a_wrong_published_number(tmp_path):
    raw = json.loads((build.CONFIG_DIR / "openai-community__gpt2.json").read_text(encoding="utf-8"))
    raw["published_parameters"] = 130_000_000
    (tmp_path / "openai-community__gpt2.json").write_text(json.dumps(raw), encoding="utf-8")
    (mismatch,) = build.cross_check(build.build_entries(tmp_path))
    assert mismatch.is_error and mismatch.model_id == "openai-community/gpt2"


def test_build_rejects_alias_collisions(tmp_path):
    for name in ("openai-community__gpt2.json", "openai-community__gpt2-medium.json"):
        raw = json.loads((build.CONFIG_DIR / name).read_text(encoding="utf-8"))
        raw["aliases"] = ["shared-name"]
        (tmp_path / name).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match="shared-name"):
        build.build_entries(tmp_path)


def test_input_files_record_their_sources():
    for path in sorted(build.CONFIG_DIR.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        assert raw["source"] == f"https://huggingface.co/{raw['id']}/blob/main/config.json", path.name
        if "derived_from" in raw:  # a fine-tune, mirror or quantization: its base, and why, in the notes
            assert raw["derived_from"] in {p.stem.replace("__", "/") for p in build.CONFIG_DIR.glob("*.json")}
            if raw["facts"] == "inherited":
                assert raw["notes"].startswith("config.json not read: "), path.name
            else:  # facts read from the repository's own config.json, and where they were read
                assert raw["config_facts_source"] == raw["source"] and raw["config_facts_read_in"], path.name
            continue
        assert raw["confirmed_by"], path.name
        assert "model_type" in raw["config"], path.name
        if raw["published_parameters"] is not None:
            assert raw["published_parameters_source"], path.name


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-13b-hf"),
        ("META-LLAMA/llama-2-13B-HF", "meta-llama/Llama-2-13b-hf"),
        ("llama-2-13b", "meta-llama/Llama-2-13b-hf"),
        ("Llama-2-13b-hf", "meta-llama/Llama-2-13b-hf"),
        ("https://huggingface.co/mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1"),
        ("meta-llama/Meta-Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
        ("gpt2", "openai-community/gpt2"),
        ("bert-base-uncased", "google-bert/bert-base-uncased"),
        ("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B"),
    ],
)
def test_lookup_by_id_alias_and_case(query, expected):
    assert catalog.lookup(query).id == expected
    assert catalog.catalog_entry(query)["id"] == expected


@pytest.mark.parametrize("query", ["not-a/model", "", "llama", 42])
def test_unknown_models_are_none(query):
    assert catalog.lookup(query) is None
    assert catalog.catalog_entry(query) is None


def test_gated_llama_2_13b_is_available_offline():
    entry = catalog.catalog_entry("meta-llama/Llama-2-13b-hf")
    assert entry["gated"] is True
    spec = catalog.lookup("meta-llama/Llama-2-13b-hf")
    assert spec.parameters.total == 13_015_864_320
    assert spec.stored_dtype == "float16"
    assert spec.checkpoint_bytes == 2 * 13_015_864_320
    arch = spec.architecture
    assert (arch.num_layers, arch.hidden_size, arch.num_attention_heads, arch.num_key_value_heads) == (40, 5120, 40, 40)
    assert (arch.intermediate_size, arch.vocab_size, arch.tie_word_embeddings) == (13824, 32000, False)


def test_fp8_checkpoint_is_described_as_quantized():
    spec = catalog.lookup("deepseek-ai/DeepSeek-V3")
    assert spec.quantization is not None and spec.quantization.method == "fp8"
    assert spec.architecture.is_mla
    assert "F8_E4M3" in spec.checkpoint_bytes_by_dtype
    # float8 linear layers: about one byte per parameter, far below the bfloat16 size.
    assert spec.parameters.total < spec.checkpoint_bytes < 1.05 * spec.parameters.total


def test_catalog_entry_is_read_only():
    entry = catalog.catalog_entry("gpt2")
    with pytest.raises(TypeError):
        entry["id"] = "other"  # type: ignore[index]
    with pytest.raises(TypeError):
        entry["config"]["n_layer"] = 1  # type: ignore[index]


def test_spec_config_is_a_private_copy():
    spec = catalog.lookup("gpt2")
    spec.config["n_layer"] = 99  # type: ignore[index]
    assert catalog.catalog_entry("gpt2")["config"]["n_layer"] == 12


def test_lookup_is_fast_after_first_load():
    catalog.lookup("meta-llama/Llama-2-13b-hf")
    start = time.perf_counter()
    for model_id in MODELS:
        catalog.lookup(model_id.upper())
    per_lookup = (time.perf_counter() - start) / len(MODELS)
    assert per_lookup < 0.005


def test_importing_the_catalog_does_not_import_torch():
    code = (
        "import sys; from hf_gpu_estimator.sources.catalog import lookup; "
        "lookup('meta-llama/Llama-2-13b-hf'); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("model_id", [m for m in MODELS if ENTRIES[m].get("published_checkpoint_bytes")])
def test_derived_checkpoint_size_matches_the_published_files(model_id):
    # Tolerance 0.5 %: the catalog derives the size from config-only counts and the scheme's bits.
    published = ENTRIES[model_id]["published_checkpoint_bytes"]
    assert abs(catalog.lookup(model_id).checkpoint_bytes / published - 1) < 0.005


@pytest.mark.parametrize(("model_id", "method"), [
    ("TheBloke/Llama-2-7B-Chat-GPTQ", "gptq"), ("Qwen/Qwen2.5-7B-Instruct-AWQ", "awq"), ("Qwen/Qwen3-8B-FP8", "fp8"),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8", "compressed-tensors"), ("openai/gpt-oss-20b", "mxfp4"),
    ("unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit", "bitsandbytes")])
def test_prequantized_entries_keep_their_quantization(model_id, method):
    from hf_gpu_estimator import estimate

    spec = catalog.lookup(model_id)
    assert spec.quantization is not None and spec.quantization.method == method
    unquantized = spec.parameters.total * 2
    assert spec.checkpoint_bytes < 0.75 * unquantized
    assert estimate(spec).memory.components["weights"] < 0.75 * unquantized


def test_derived_entries_name_their_base_in_the_assumptions():
    spec = catalog.lookup("Qwen/Qwen2.5-7B-Instruct-AWQ")
    assert any("config.json not read" in a and "Qwen/Qwen2.5-7B-Instruct" in a for a in spec.assumptions)


# --- Issue 19 item 6: every entry carries its own config.json facts, or says they are inherited. ---

INHERITED_LINE = "inherited from"


def test_every_entry_says_whose_architecture_facts_it_carries():
    counts = {"own": 0, "inherited": 0, "partial": 0}
    for model_id, entry in ENTRIES.items():
        counts[entry["facts"]] += 1
        if entry.get("derived_from") is None:  # its own config.json, verbatim, or put together from partial quotes
            assert entry["facts"] in ("own", "partial"), model_id
        assumptions = catalog.lookup(model_id).assumptions
        inherited = [a for a in assumptions if INHERITED_LINE in a and "unverified" in a]
        assert len(inherited) == (entry["facts"] == "inherited"), model_id
        partial = [a for a in assumptions if a.startswith("architecture facts put together") and "unverified" in a]
        assert len(partial) == (entry["facts"] == "partial"), model_id
    assert counts["own"] >= 118  # 111 verbatim configs, 7 derived entries checked against their own config.json


@pytest.mark.parametrize("model_id", [m for m in MODELS if ENTRIES[m].get("config_facts")])
def test_recorded_config_json_facts_match_the_entry(model_id):
    entry = ENTRIES[model_id]
    assert entry["config_facts_source"] == f"https://huggingface.co/{model_id}/blob/main/config.json"
    assert build.fact_differences(entry) == []


def _write_derived(tmp_path, **changes):
    base = json.loads((build.CONFIG_DIR / "mistralai__Mistral-7B-Instruct-v0.1.json").read_text(encoding="utf-8"))
    derived = json.loads((build.CONFIG_DIR / "mistralai__Mistral-7B-Instruct-v0.2.json").read_text(encoding="utf-8"))
    derived.update(changes)
    for raw in (base, derived):
        (tmp_path / (raw["id"].replace("/", "__") + ".json")).write_text(json.dumps(raw), encoding="utf-8")


def test_build_rejects_a_derived_entry_whose_inherited_facts_are_known_to_differ(tmp_path):
    # v0.2 taking v0.1's sliding_window of 4096 where its own config.json states null.
    _write_derived(tmp_path, config_overrides={"rope_theta": 1000000.0})
    with pytest.raises(ValueError, match="sliding_window: config.json has None, the catalog config 4096"):
        build.build_entries(tmp_path)


def test_build_rejects_own_facts_without_a_source(tmp_path):
    _write_derived(tmp_path, config_facts={})
    with pytest.raises(ValueError, match="facts 'own' needs config_facts"):
        build.build_entries(tmp_path)


#: Instruct-versus-base facts read from each repository's own config.json (the entries' config_facts name where):
#: (entry, fact, its value, the value in the config of the bundled entry it is derived from).
KNOWN_DIFFERENCES = [
    ("mistralai/Mistral-7B-Instruct-v0.2", "sliding_window", None, 4096),
    ("mistralai/Mistral-7B-Instruct-v0.2", "rope_theta", 1e6, 1e4),
    ("mistralai/Mistral-7B-Instruct-v0.2", "max_position_embeddings", 32768, 32768),
    ("Qwen/Qwen2.5-1.5B-Instruct", "max_position_embeddings", 32768, 131072),
    ("Qwen/Qwen2.5-1.5B-Instruct", "sliding_window", 32768, 131072),
    ("Qwen/Qwen2.5-14B-Instruct", "max_position_embeddings", 32768, 131072),
    ("Qwen/Qwen2.5-Coder-32B-Instruct", "max_position_embeddings", 32768, 131072),
    ("Qwen/Qwen2.5-72B-Instruct-AWQ", "intermediate_size", 29696, 29568),
    ("Qwen/Qwen2-7B", "max_position_embeddings", 131072, 32768),
    ("meta-llama/Llama-3.1-70B-Instruct", "max_position_embeddings", 131072, 131072),
    ("meta-llama/Llama-3.2-1B-Instruct", "rope_theta", 500000.0, 500000.0),
    ("Qwen/Qwen2.5-32B-Instruct", "rms_norm_eps", 1e-06, 1e-05),  # its other facts stay inherited
]


@pytest.mark.parametrize(("model_id", "key", "value", "base_value"), KNOWN_DIFFERENCES,
                         ids=[f"{m.split('/')[1]}-{k}" for m, k, _, _ in KNOWN_DIFFERENCES])
def test_known_instruct_versus_base_differences_are_recorded(model_id, key, value, base_value):
    entry = ENTRIES[model_id]
    assert entry["config_facts"][key] == value and entry["config"][key] == value
    assert ENTRIES[entry["derived_from"]]["config"].get(key) == base_value


def test_mistral_7b_instruct_v0_2_attends_to_the_full_context_on_every_layer():
    from hf_gpu_estimator import estimate

    # 32 layers x 8 kv heads x 128 dims x (k, v) x 2 bytes x 32,768 tokens: no layer capped at 4,096 tokens.
    spec = catalog.lookup("mistralai/Mistral-7B-Instruct-v0.2")
    kv = estimate(spec, seq_len=32768).memory.components["kv_cache"]
    assert kv == 32 * 8 * 128 * 2 * 2 * 32768
    assert kv == estimate(catalog.lookup("mistralai/Mistral-7B-Instruct-v0.3"), seq_len=32768).memory.components[
        "kv_cache"]


# --- Issue 22: every model the llm-d planner's 74 vLLM v0.19 runs name resolves offline. ---

#: The model column of results_raw.csv (llm-d-incubation/llm-d-planner d3121e05, accuracy/results/), exactly
#: as written there (one id in lower case: the Hub resolves ids case-insensitively, and so does the catalog).
LLMD_MODELS = (
    "codellama/CodeLlama-34b-hf", "codellama/CodeLlama-7b-hf", "deepseek-ai/DeepSeek-V2-Lite-Chat", "google/gemma-2-27b-it",
    "google/gemma-2-2b-it", "google/gemma-2-9b-it", "google/gemma-3-12b-it", "google/gemma-3-27b-it", "google/gemma-3-4b-it",
    "google/gemma-7b", "ibm-granite/granite-3.1-2b-instruct", "ibm-granite/granite-3.1-8b-instruct",
    "ibm-granite/granite-3.3-8b-instruct", "ibm-granite/granite-vision-3.3-2b", "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct", "microsoft/phi-2", "microsoft/phi-4",
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503", "mistralai/Mixtral-8x7B-Instruct-v0.1", "moonshotai/Kimi-Dev-72B",
    "moonshotai/Kimi-VL-A3B-Instruct", "openai/gpt-oss-20b", "Qwen/Qwen1.5-MoE-A2.7B", "Qwen/Qwen2.5-72B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen3-14B", "Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-8B",
    "RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic", "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16",
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", "RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w8a8",
    "RedHatAI/Qwen2.5-7B-Instruct-fp8-dynamic", "RedHatAI/Qwen2.5-7B-Instruct-quantized.w8a8",
    "redhatai/Llama-3.3-70B-Instruct-quantized.w8a8",
)
_LLMD_CSV = [p / "results_raw.csv" for p in (ROOT / "benchmarks" / "llmd", ROOT.parent / "shared" / "data" / "vllm-v0.19-h100-llm-d",
                                             ROOT.parent.parent / "shared" / "data" / "vllm-v0.19-h100-llm-d")]


def test_the_llmd_model_list_is_the_csv_model_column():
    import csv

    path = next((p for p in _LLMD_CSV if p.exists()), None)
    if path is None:
        pytest.skip("results_raw.csv of the llm-d data set is not in this checkout")
    with path.open(newline="", encoding="utf-8") as f:
        named = {row["model"] for row in csv.DictReader(f) if row["model"]}  # 8 failed runs name no model
    assert named == set(LLMD_MODELS)


@pytest.mark.parametrize("model_id", LLMD_MODELS, ids=LLMD_MODELS)
def test_every_llmd_benchmark_model_resolves_offline(model_id, offline):
    from hf_gpu_estimator import inspect_model

    spec = inspect_model(model_id)
    assert spec.provenance["parameters"] == "catalog" and spec.id.lower() == model_id.lower()
    entry = ENTRIES[spec.id]
    assert entry["source"] == f"https://huggingface.co/{spec.id}/blob/main/config.json"
    assert entry["facts"] in ("own", "inherited", "partial")
    assert entry.get("config_facts_source") or entry.get("confirmed_by") or entry["notes"].startswith("config.json not read")


@pytest.mark.parametrize(("model_id", "method", "bits"), [
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", "compressed-tensors", 8),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", "compressed-tensors", 4),
    ("RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w8a8", "compressed-tensors", 8),
    ("RedHatAI/Qwen2.5-7B-Instruct-quantized.w8a8", "compressed-tensors", 8),
    ("redhatai/Llama-3.3-70B-Instruct-quantized.w8a8", "compressed-tensors", 8),
], ids=["llama-3.1-8b-w8a8", "llama-3.1-8b-w4a16", "mistral-small-3.1-w8a8", "qwen2.5-7b-w8a8", "llama-3.3-70b-w8a8"])
def test_llmd_quantized_checkpoints_keep_their_scheme(model_id, method, bits):
    spec = catalog.lookup(model_id)
    assert spec.quantization.method == method and spec.quantization.bits == bits


@pytest.mark.parametrize(("model_id", "gib", "tolerance"), [
    # vLLM v0.19.0 "Model loading took X GiB" on one H100 (llm-d runs, results_raw.csv weight_memory_gib). Left out:
    # the language-model-only entries (Kimi-VL, granite-vision: their vision towers are not counted) and MLA models
    # (DeepSeek-V2-Lite-Chat: vLLM loads 29.43 GiB, 0.6 % over its 15,706,484,224 bf16 parameters).
    ("ibm-granite/granite-3.3-8b-instruct", 15.25, 0.005), ("ibm-granite/granite-3.1-8b-instruct", 15.25, 0.005),
    ("ibm-granite/granite-3.1-2b-instruct", 4.74, 0.006),
    ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", 44.76, 0.005), ("moonshotai/Kimi-Dev-72B", 2 * 67.82, 0.005),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", 8.49, 0.005),
    ("RedHatAI/Qwen2.5-7B-Instruct-quantized.w8a8", 8.14, 0.005),
], ids=["granite-3.3-8b", "granite-3.1-8b", "granite-3.1-2b", "mistral-small-3.1",
        "kimi-dev-72b-tp2", "llama-3.1-8b-w8a8", "qwen2.5-7b-w8a8"])
def test_llmd_entries_match_the_weights_vllm_loaded(model_id, gib, tolerance):
    assert catalog.lookup(model_id).checkpoint_bytes / 2**30 == pytest.approx(gib, rel=tolerance)


def test_build_rejects_an_unknown_facts_marker(tmp_path):
    raw = json.loads((build.CONFIG_DIR / "openai-community__gpt2.json").read_text(encoding="utf-8"))
    raw["facts"] = "inherited"  # an entry with its own config inherits nothing
    (tmp_path / "openai-community__gpt2.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match="own or partial"):
        build.build_entries(tmp_path)
