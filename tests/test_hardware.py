"""Tests for the GPU catalog (hf_gpu_estimator.hardware)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from hf_gpu_estimator.errors import InvalidArgumentError, InvalidGPUEntryError, UnknownNameError
from hf_gpu_estimator.hardware import (
    ENV_GPUS_FILE,
    FLOPS_DTYPES,
    GPU,
    get_gpu,
    gpu_from_dict,
    list_gpus,
    load_gpus,
    register_gpus,
    reset_registry,
)

GiB = 2**30
MiB = 2**20
ALL = list_gpus()


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    monkeypatch.delenv(ENV_GPUS_FILE, raising=False)
    reset_registry()
    yield
    reset_registry()


def _entry(**overrides):
    data = {
        "name": "My-GPU-48GB",
        "vendor": "nvidia",
        "aliases": ["mygpu"],
        "memory_bytes": 48 * GiB,
        "memory_bandwidth_bytes_per_s": 1.0e12,
        "peak_flops": {"fp32": 50e12, "bf16": 200e12},
        "source": "https://example.com/datasheet.pdf",
        "date": "2026-11",
    }
    data.update(overrides)
    return data


# --------------------------------------------------------------------------- schema


def test_catalog_size_and_vendors():
    assert len(ALL) >= 45
    assert {g.vendor for g in ALL} == {"nvidia", "amd", "intel", "apple"}


@pytest.mark.parametrize("gpu", ALL, ids=[g.name for g in ALL])
def test_entry_schema(gpu: GPU):
    assert 1 * GiB <= gpu.memory_bytes <= 1024 * GiB
    # Device-reported memory is below the marketed capacity, but not absurdly so
    # (Apple's default GPU share is the lowest, about two thirds).
    assert 0.6 * gpu.memory_bytes <= gpu.usable_memory_bytes <= gpu.memory_bytes
    # Every bundled entry says where its reported figure comes from.
    assert gpu.usable_memory_source
    assert 5e10 <= gpu.memory_bandwidth_bytes_per_s <= 1e13  # M1: 68.25 GB/s
    assert set(FLOPS_DTYPES) <= set(gpu.peak_flops)
    for dtype, value in gpu.peak_flops.items():
        if value is not None:
            # Dense, not sparse: nothing listed exceeds B300's dense fp4 (13.5 PFLOP/s).
            assert 1e12 <= value <= 1.4e16, dtype
    flops = gpu.peak_flops
    if flops["fp32"] and flops["bf16"]:
        assert flops["bf16"] >= flops["fp32"]
    for value in (gpu.power_watts, gpu.interconnect_bandwidth_bytes_per_s, gpu.price_per_hour_usd):
        assert value is None or value > 0
    if gpu.price_per_hour_usd is not None:
        assert 0.05 <= gpu.price_per_hour_usd <= 50
        assert gpu.price_source and gpu.price_source.startswith("https://")
        assert gpu.price_date and re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", gpu.price_date)
    assert re.fullmatch(r"https?://\S+", gpu.source)
    assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", gpu.date)
    assert gpu.unified_memory == (gpu.form_factor == "unified")
    assert gpu.runtime == {"nvidia": "cuda", "amd": "rocm", "apple": "metal"}.get(gpu.vendor, gpu.runtime)
    # Apple GPUs run under Metal: no CUDA context; everything else keeps the estimator's default.
    assert (gpu.context_bytes == 0) == (gpu.vendor == "apple")
    assert gpu.has_cuda_context == (gpu.vendor != "apple")
    # An entry that leaves a fact null must say why.
    if any(v is None for v in flops.values()) or gpu.power_watts is None:
        assert gpu.notes


def test_bundled_file_round_trips(tmp_path):
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps({"gpus": [g.to_dict() for g in ALL]}))
    assert load_gpus(path) == tuple(ALL)


def test_gpu_is_frozen_and_hashable():
    gpu = get_gpu("RTX-4090")
    with pytest.raises(AttributeError):
        gpu.memory_bytes = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        gpu.peak_flops["bf16"] = 1.0  # type: ignore[index]
    assert {gpu: 1}[gpu] == 1


# --------------------------------------------------------------------------- cross-checks


def test_h100_sxm_matches_known_figures():
    gpu = get_gpu("H100-SXM-80GB")
    assert gpu.memory_bytes == 80 * GiB
    # What torch/vLLM report (79.19 GiB), not nvidia-smi's 81559 MiB.
    assert gpu.usable_memory_bytes == pytest.approx(79.19 * GiB, abs=5 * MiB)
    assert not gpu.usable_memory_derived
    assert gpu.memory_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert gpu.peak_flops["bf16"] == pytest.approx(989.4e12)
    assert gpu.peak_flops["fp8"] == pytest.approx(1979e12, rel=1e-3)
    assert gpu.interconnect_bandwidth_bytes_per_s == pytest.approx(900e9)
    assert gpu.power_watts == 700


def test_a100_80gb_sxm_matches_known_figures():
    gpu = get_gpu("A100-80GB-SXM")
    assert gpu.memory_bandwidth_bytes_per_s == pytest.approx(2.039e12)
    assert gpu.peak_flops["bf16"] == pytest.approx(312e12)
    assert gpu.peak_flops["tf32"] == pytest.approx(156e12)
    assert gpu.peak_flops["fp32"] == pytest.approx(19.5e12)


def test_rtx_4090_uses_fp32_accumulate_rate():
    gpu = get_gpu("RTX-4090")
    assert gpu.memory_bytes == 24 * GiB
    assert gpu.memory_bandwidth_bytes_per_s == pytest.approx(1008e9)
    assert gpu.power_watts == 450
    assert gpu.peak_flops["bf16"] == pytest.approx(165.2e12)
    assert "fp32 accumulate" in gpu.notes


def test_h200_usable_memory_measured():
    gpu = get_gpu("H200")
    # torch total_memory measured on an H200 (benchmarks/results/h200-2026-11-26.jsonl).
    assert gpu.usable_memory_bytes == 150109880320
    assert gpu.memory_bytes == 141 * GiB


def test_apple_usable_memory_is_gpu_share():
    gpu = get_gpu("M3-Max-128GB")
    assert gpu.unified_memory
    assert gpu.usable_memory_bytes == pytest.approx(0.75 * gpu.memory_bytes, rel=1e-3)
    assert "recommendedMaxWorkingSetSize" in (gpu.usable_memory_source or "")


def test_flops_accessor_accepts_torch_style_names():
    gpu = get_gpu("A100-80GB-SXM")
    assert gpu.flops("bfloat16") == gpu.flops("bf16") == pytest.approx(312e12)
    assert gpu.flops("float32") == pytest.approx(19.5e12)
    assert gpu.flops("fp64") == pytest.approx(19.5e12)
    with pytest.raises(UnknownNameError):
        gpu.flops("float13")


# --------------------------------------------------------------------------- lookup

REQUIRED = [
    "V100-SXM2-16GB", "V100-SXM2-32GB", "T4", "A10", "A10G", "A30", "A40", "L4", "L40", "L40S",
    "A100-40GB-PCIe", "A100-80GB-PCIe", "A100-40GB-SXM", "A100-80GB-SXM", "H100-PCIe-80GB",
    "H100-SXM-80GB", "H100-NVL-94GB", "H200-SXM-141GB", "GH200-96GB", "B200-180GB",
    "RTX-A6000", "RTX-6000-Ada", "RTX-3060-12GB", "RTX-3080-10GB", "RTX-3090", "RTX-4060-Ti-16GB",
    "RTX-4070-Ti", "RTX-4080", "RTX-4090", "RTX-5090",
    "MI210", "MI250X", "MI300X", "MI325X", "Radeon-RX-7900-XTX",
    "Max-1550", "Gaudi-2", "Gaudi-3", "Arc-A770-16GB",
    "M1-Max-64GB", "M2-Ultra-192GB", "M3-Max-128GB", "M4-Max-128GB", "M4-Pro-48GB",
]  # fmt: skip


@pytest.mark.parametrize("name", REQUIRED)
def test_required_models_resolve(name):
    assert get_gpu(name).name == name
    assert get_gpu(name.lower().replace("-", " ")).name == name
    assert get_gpu(name.upper().replace("-", "_")).name == name


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("4090", "RTX-4090"),
        ("rtx4090", "RTX-4090"),
        ("NVIDIA GeForce RTX 4090", "RTX-4090"),
        ("NVIDIA H100 80GB HBM3", "H100-SXM-80GB"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB-SXM"),
        ("NVIDIA A100-SXM4-40GB", "A100-40GB-SXM"),
        ("A100-80GB", "A100-80GB-SXM"),
        ("h100 sxm", "H100-SXM-80GB"),
        ("H100 PCIe", "H100-PCIe-80GB"),
        ("NVIDIA H200", "H200-SXM-141GB"),
        ("Tesla T4", "T4"),
        ("a10", "A10"),
        ("a10g", "A10G"),
        ("l40", "L40"),
        ("l4", "L4"),
        ("AMD Instinct MI300X", "MI300X"),
        ("7900 xtx", "Radeon-RX-7900-XTX"),
        ("gaudi 3", "Gaudi-3"),
        ("Intel Data Center GPU Max 1550", "Max-1550"),
        ("m2 ultra 192gb", "M2-Ultra-192GB"),
        ("Apple M4 24GB", "M4-24GB"),
        ("NVIDIA B300 SXM6 AC", "B300-288GB"),
        ("b300", "B300-288GB"),
        ("gb200", "GB200-186GB"),
        ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "RTX-PRO-6000-Blackwell"),
        ("NVIDIA GeForce RTX 5080", "RTX-5080"),
        ("rtx 5070 ti", "RTX-5070-Ti"),
        ("NVIDIA GB10", "DGX-Spark-GB10"),
        ("dgx spark", "DGX-Spark-GB10"),
        ("AMD Instinct MI355X", "MI355X"),
        ("Ryzen AI Max+ 395", "Ryzen-AI-Max-395-128GB"),
        ("strix halo", "Ryzen-AI-Max-395-128GB"),
        ("jetson thor", "Jetson-AGX-Thor"),
        ("NVIDIA Thor", "Jetson-AGX-Thor"),
        ("jetson agx orin", "Jetson-AGX-Orin-64GB"),
        ("RTX 6000 Ada Generation", "RTX-6000-Ada"),
        ("NVIDIA RTX 4000 Ada Generation", "RTX-4000-Ada"),
        ("NVIDIA GeForce RTX 3080 12GB", "RTX-3080-12GB"),
        ("NVIDIA GeForce RTX 3080", "RTX-3080-10GB"),
        ("A10 24GB", "A10"),
    ],
)
def test_aliases_and_partial_names(query, expected):
    assert get_gpu(query).name == expected


@pytest.mark.parametrize(
    ("query", "members"),
    [
        ("a100", {"A100-40GB-PCIe", "A100-40GB-SXM", "A100-80GB-PCIe", "A100-80GB-SXM"}),
        ("h100", {"H100-PCIe-80GB", "H100-SXM-80GB", "H100-NVL-94GB"}),
        ("A100 PCIe", {"A100-40GB-PCIe", "A100-80GB-PCIe"}),
        ("m3 max", {"M3-Max-48GB", "M3-Max-64GB", "M3-Max-128GB"}),
        ("m2 ultra", {"M2-Ultra-64GB", "M2-Ultra-128GB", "M2-Ultra-192GB"}),
        ("m4 max", {"M4-Max-48GB", "M4-Max-64GB", "M4-Max-128GB"}),
        ("v100", {"V100-SXM2-16GB", "V100-SXM2-32GB", "V100-PCIe-16GB"}),
    ],
)
def test_family_names_are_ambiguous(query, members):
    with pytest.raises(UnknownNameError) as info:
        get_gpu(query)
    assert set(info.value.candidates) == members
    assert "ambiguous" in str(info.value)
    assert isinstance(info.value, LookupError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("query", "suggestion"),
    [("rtx 4900", "RTX-4090"), ("mi300", "MI300X"), ("h2000", "H200-SXM-141GB"), ("L40SS", "L40S")],
)
def test_unknown_names_suggest_close_matches(query, suggestion):
    with pytest.raises(UnknownNameError) as info:
        get_gpu(query)
    assert suggestion in info.value.candidates
    assert suggestion in str(info.value)
    assert "ambiguous" not in str(info.value)


def test_digit_suffixes_do_not_match_partially():
    # "L40" is not a prefix match for "L40S", nor "MI250" for "MI250X".
    assert get_gpu("L40").name == "L40"
    with pytest.raises(UnknownNameError):
        get_gpu("MI250")


def test_get_gpu_passes_gpu_through_and_rejects_non_strings():
    gpu = get_gpu("T4")
    assert get_gpu(gpu) is gpu
    with pytest.raises(InvalidArgumentError):
        get_gpu(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- filtering


def test_list_by_vendor():
    amd = list_gpus(vendor="AMD")
    assert amd and all(g.vendor == "amd" for g in amd)
    assert {g.name for g in list_gpus(vendor="apple")} >= {"M2-Ultra-192GB", "M4-Max-128GB"}
    with pytest.raises(UnknownNameError):
        list_gpus(vendor="qualcomm")


def test_list_by_min_memory_uses_usable_memory():
    big = list_gpus(min_memory_bytes=100 * GiB)
    assert all(g.usable_memory_bytes >= 100 * GiB for g in big)
    names = {g.name for g in big}
    assert {"H200-SXM-141GB", "MI300X", "B200-180GB"} <= names
    assert "H100-SXM-80GB" not in names
    # An 80 GB H100 reports 81559 MiB, just under 80 GiB.
    assert "H100-SXM-80GB" not in {g.name for g in list_gpus(min_memory_bytes=80 * GiB)}
    assert list_gpus(vendor="nvidia", min_memory_bytes=0) == list_gpus(vendor="nvidia")
    with pytest.raises(InvalidArgumentError):
        list_gpus(min_memory_bytes=-1)


# --------------------------------------------------------------------------- user files


def test_load_json_list_and_object(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([_entry()]))
    (gpu,) = load_gpus(path)
    assert gpu.name == "My-GPU-48GB"
    assert gpu.usable_memory_bytes == 48 * GiB and gpu.usable_memory_source is None
    assert gpu.peak_flops["fp8"] is None and gpu.peak_flops["bf16"] == 200e12
    path.write_text(json.dumps({"gpus": [_entry(usable_memory_bytes=47 * GiB, usable_memory_source="nvidia-smi")]}))
    assert load_gpus(path)[0].usable_memory_bytes == 47 * GiB


def test_load_yaml_when_available(tmp_path):
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"gpus": [_entry()]}))
    assert load_gpus(path)[0].name == "My-GPU-48GB"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"memory_bytes": -5}, "memory_bytes"),
        ({"memory_bytes": 48.5}, "memory_bytes"),
        ({"memory_bandwidth_bytes_per_s": "fast"}, "memory_bandwidth_bytes_per_s"),
        ({"peak_flops": {"bf16": 1e20}}, "peak_flops.bf16"),
        ({"peak_flops": {"fp12": 1e12}}, "peak_flops.fp12"),
        ({"vendor": "acme"}, "vendor"),
        ({"source": "my notes"}, "source"),
        ({"date": "yesterday"}, "date"),
        ({"usable_memory_bytes": 96 * GiB}, "usable_memory_bytes"),
        ({"price_per_hour_usd": 1.0}, "price_source"),
        ({"form_factor": "brick"}, "form_factor"),
        ({"memroy_bytes": 1}, "memroy_bytes"),
        ({"aliases": "mygpu"}, "aliases"),
    ],
)
def test_invalid_entries_name_entry_and_field(tmp_path, overrides, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([_entry(), _entry(**{"name": "Second", "aliases": [], **overrides})]))
    with pytest.raises(InvalidGPUEntryError) as info:
        load_gpus(path)
    err = info.value
    assert err.field == field
    assert err.entry == "Second"
    assert str(path) in str(err) and "Second" in str(err) and field in str(err)
    assert isinstance(err, ValueError) and err.exit_code == 2


def test_missing_required_field(tmp_path):
    data = _entry()
    del data["source"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([data]))
    with pytest.raises(InvalidGPUEntryError, match="'source'"):
        load_gpus(path)


@pytest.mark.parametrize("content", ["{not json", '{"other": []}', '"text"'])
def test_malformed_files(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InvalidGPUEntryError):
        load_gpus(path)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidGPUEntryError, match="cannot be read"):
        load_gpus(tmp_path / "nope.json")


def test_duplicate_alias_in_file(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(json.dumps([_entry(), _entry(name="Other", aliases=["my gpu"])]))
    with pytest.raises(InvalidGPUEntryError, match="already names"):
        load_gpus(path)


def test_gpu_from_dict_and_direct_construction_validate():
    assert gpu_from_dict(_entry()).name == "My-GPU-48GB"
    with pytest.raises(InvalidGPUEntryError):
        GPU(**{**_entry(), "aliases": (), "usable_memory_bytes": 0})


# --------------------------------------------------------------------------- registry


def test_register_adds_and_overrides():
    mine = gpu_from_dict(_entry())
    register_gpus([mine])
    assert get_gpu("mygpu") is mine
    assert mine in list_gpus(vendor="nvidia")
    cheaper = gpu_from_dict(
        {
            **get_gpu("T4").to_dict(),
            "price_per_hour_usd": 0.1,
            "price_source": "https://example.com/prices",
            "price_date": "2026-11",
        }
    )
    register_gpus([cheaper])
    assert get_gpu("Tesla T4").price_per_hour_usd == 0.1
    assert len([g for g in list_gpus() if g.name == "T4"]) == 1
    reset_registry()
    with pytest.raises(UnknownNameError):
        get_gpu("mygpu")


def test_register_rejects_alias_conflict_atomically():
    clash = gpu_from_dict(_entry(name="Impostor", aliases=["4090"]))
    with pytest.raises(InvalidGPUEntryError, match="already names"):
        register_gpus([clash])
    assert get_gpu("4090").name == "RTX-4090"
    with pytest.raises(UnknownNameError):
        get_gpu("Impostor")


def test_register_rejects_non_gpu():
    with pytest.raises(InvalidArgumentError):
        register_gpus([{"name": "dict"}])  # type: ignore[list-item]


def test_register_from_path(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([_entry()]))
    register_gpus(path)
    assert get_gpu("My GPU 48GB").name == "My-GPU-48GB"


def test_env_var_file_is_loaded(tmp_path, monkeypatch):
    first = tmp_path / "a.json"
    second = tmp_path / "b.json"
    first.write_text(json.dumps([_entry()]))
    second.write_text(json.dumps([_entry(name="Lab-Card", aliases=[], memory_bytes=8 * GiB)]))
    assert "My-GPU-48GB" not in {g.name for g in list_gpus()}
    import os

    monkeypatch.setenv(ENV_GPUS_FILE, f"{first}{os.pathsep}{second}")
    assert get_gpu("mygpu").name == "My-GPU-48GB"
    assert get_gpu("lab card").memory_bytes == 8 * GiB
    monkeypatch.delenv(ENV_GPUS_FILE)
    with pytest.raises(UnknownNameError):
        get_gpu("mygpu")


def test_env_var_bad_file_raises(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([_entry(memory_bytes=0)]))
    monkeypatch.setenv(ENV_GPUS_FILE, str(bad))
    with pytest.raises(InvalidGPUEntryError, match="memory_bytes"):
        get_gpu("T4")


def test_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, hf_gpu_estimator.hardware as h; h.list_gpus(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_to_dict_is_json_ready():
    data = get_gpu("MI300X").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert not math.isnan(data["memory_bandwidth_bytes_per_s"])


# --------------------------------------------------------------------------- device-reported memory


@pytest.mark.parametrize("gpu", ALL, ids=[g.name for g in ALL])
def test_derived_usable_memory_states_its_rule(gpu: GPU):
    if gpu.usable_memory_derived:
        # A derived figure names the rule and the entries (or document) it comes from.
        assert "ratio" in gpu.usable_memory_source or "Variable Graphics Memory" in gpu.usable_memory_source
    elif gpu.vendor != "apple" and "project" not in (gpu.usable_memory_source or ""):
        assert "https://" in (gpu.usable_memory_source or "") or "exact-string search" in gpu.usable_memory_source


@pytest.mark.parametrize(
    ("name", "reported_gib"),
    [("L40S", 44.39), ("A10G", 21.99), ("L4", 22.03), ("A100-80GB-SXM", 79.25), ("B200-180GB", 178.34),
     ("RTX-4090", 23.64), ("DGX-Spark-GB10", 121.69), ("B300-288GB", 267.68)],
)
def test_reported_memory_matches_published_readings(name, reported_gib):
    # The readings print two decimals of GiB: 5 MiB covers the rounding.
    gpu = get_gpu(name)
    assert gpu.usable_memory_bytes == pytest.approx(reported_gib * GiB, abs=5 * MiB)
    assert not gpu.usable_memory_derived


def test_most_rental_gpus_have_a_device_reading():
    rental = ["T4", "A10", "A10G", "L4", "L40S", "A100-40GB-SXM", "A100-80GB-SXM", "H100-SXM-80GB", "H200-SXM-141GB",
              "B200-180GB", "RTX-4090", "V100-SXM2-32GB"]
    assert [n for n in rental if get_gpu(n).usable_memory_derived] == []


def test_no_bf16_devices():
    for name in ("T4", "V100-SXM2-16GB", "V100-SXM2-32GB"):
        assert not get_gpu(name).supports_bf16
        assert get_gpu(name).peak_flops["fp16"]
    for name in ("A100-80GB-SXM", "L4", "H100-SXM-80GB", "RTX-5080", "MI355X"):
        assert get_gpu(name).supports_bf16


# --------------------------------------------------------------------------- Apple Silicon


APPLE = list_gpus(vendor="apple")


@pytest.mark.parametrize("gpu", APPLE, ids=[g.name for g in APPLE])
def test_apple_share_follows_metal_default(gpu: GPU):
    # recommendedMaxWorkingSetSize: 2/3 of unified memory at 36 GB and below, 3/4 above.
    share = 2 / 3 if gpu.memory_bytes <= 36 * GiB else 3 / 4
    assert gpu.usable_memory_bytes == pytest.approx(share * gpu.memory_bytes, abs=1)
    assert gpu.runtime == "metal" and gpu.context_bytes == 0
    assert gpu.peak_flops["fp32"] and gpu.memory_bandwidth_bytes_per_s


def test_apple_line_includes_base_chips():
    names = {g.name for g in APPLE}
    for chip in ("M1", "M2", "M3", "M4"):
        for tier in ("", "-Pro", "-Max"):
            assert any(n.startswith(f"{chip}{tier}-") for n in names), chip + tier
    assert {"M1-8GB", "M2-8GB", "M3-8GB", "M4-16GB", "M2-Ultra-192GB", "M3-Ultra-512GB"} <= names
    # llama.cpp logs: 8 GB M1 -> 5461.34 MiB, 16 GB -> 10922.67 MiB, 64 GB M1 Max -> 49152 MiB.
    assert get_gpu("M1-8GB").usable_memory_bytes / MiB == pytest.approx(5461.34, abs=0.01)
    assert get_gpu("M1-16GB").usable_memory_bytes / MiB == pytest.approx(10922.67, abs=0.01)
    assert get_gpu("M1-Max-64GB").usable_memory_bytes == 49152 * MiB


def test_estimate_on_a_mac_has_no_cuda_context():
    from hf_gpu_estimator import estimate

    config = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1000, "max_position_embeddings": 512}
    mac = estimate(config, gpu="M2-8GB", batch_size=1, seq_len=64, new_tokens=8)
    cuda = estimate(config, gpu="L4", batch_size=1, seq_len=64, new_tokens=8)
    assert mac.memory.device_total_bytes == mac.memory.reserved_peak_bytes
    assert mac.memory.cuda_context_bytes == 0
    assert any("no CUDA context" in a for a in mac.assumptions)
    assert not any(a.startswith("device total = reserved + CUDA context") for a in mac.assumptions)
    assert cuda.memory.device_total_bytes > cuda.memory.reserved_peak_bytes


def test_gpu_fields_validate():
    with pytest.raises(InvalidGPUEntryError, match="runtime"):
        gpu_from_dict(_entry(runtime="opencl"))
    with pytest.raises(InvalidGPUEntryError, match="context_bytes"):
        gpu_from_dict(_entry(context_bytes=-1))
    assert gpu_from_dict(_entry(vendor="apple", form_factor="unified", unified_memory=True)).runtime == "metal"


# --------------------------------------------------------------------------- prices


PRICED = ["H200-SXM-141GB", "B200-180GB", "GB200-186GB", "MI300X", "MI325X", "RTX-4090", "RTX-A6000", "A10G", "L40S",
          "A100-80GB-SXM", "A100-40GB-SXM", "H100-SXM-80GB", "H100-PCIe-80GB", "L4", "T4", "V100-SXM2-16GB",
          "RTX-PRO-6000-Blackwell", "RTX-5090", "RTX-3090", "RTX-6000-Ada", "A40", "L40", "A10"]


@pytest.mark.parametrize("name", PRICED)
def test_rental_gpus_have_dated_prices(name):
    gpu = get_gpu(name)
    assert gpu.price_per_hour_usd and gpu.price_source and gpu.price_date
    assert re.fullmatch(r"20\d\d-\d{2}(-\d{2})?", gpu.price_date)
    assert "Price:" in gpu.notes or "price" in gpu.notes.lower()


@pytest.mark.parametrize(("name", "expected"), [("A100-80GB", "A100-80GB-SXM"), ("H100-80GB", "H100-SXM-80GB"),
                                                ("A100-40GB", "A100-40GB-SXM")])
def test_a_name_with_the_memory_size_names_the_sxm_part(name: str, expected: str) -> None:
    assert get_gpu(name).name == expected


@pytest.mark.parametrize("name", ["H100", "A100", "V100"])
def test_a_name_without_size_or_form_factor_asks(name: str) -> None:
    with pytest.raises(UnknownNameError, match="ambiguous"):
        get_gpu(name)


# --------------------------------------------------------------------------- MIG slices


MIG = [g for g in list_gpus(mig=True) if g.mig_parent]


def test_mig_slices_are_listed_on_request_only():
    assert not any(g.mig_parent for g in list_gpus())
    assert {g.mig_parent for g in MIG} == {"A100-40GB-SXM", "A100-80GB-SXM", "H100-SXM-80GB", "H200-SXM-141GB"}
    assert len(list_gpus(mig=True)) == len(ALL) + len(MIG)


@pytest.mark.parametrize("gpu", MIG, ids=[g.name for g in MIG])
def test_mig_slice_is_a_share_of_its_gpu(gpu: GPU):
    parent = get_gpu(gpu.mig_parent)
    slices = gpu.memory_bytes * 8 // parent.memory_bytes
    assert gpu.memory_bytes * 8 == slices * parent.memory_bytes and 1 <= slices <= 8
    assert gpu.memory_bandwidth_bytes_per_s == pytest.approx(parent.memory_bandwidth_bytes_per_s * slices / 8)
    # The reported memory sits just below the slice's share (the driver keeps part of each slice).
    assert 0.95 * gpu.memory_bytes <= gpu.usable_memory_bytes <= gpu.memory_bytes
    for dtype, rate in gpu.peak_flops.items():
        assert (rate is None) == (parent.peak_flops[dtype] is None)
        assert rate is None or rate <= parent.peak_flops[dtype]
    assert gpu.usable_memory_source and gpu.notes and gpu.price_per_hour_usd is None
    assert gpu.source.startswith("https://docs.nvidia.com/datacenter/tesla/mig-user-guide/")


@pytest.mark.parametrize(
    ("query", "expected", "reported_gib"),
    [
        # The device names torch.cuda.get_device_name() gives inside a MIG instance.
        ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", "A100-40GB-SXM-MIG-1g.5gb", 4.75),
        ("NVIDIA A100-SXM4-80GB MIG 3g.40gb", "A100-80GB-SXM-MIG-3g.40gb", 39.25),
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb+me", "H100-SXM-80GB-MIG-1g.10gb", 9.75),
        ("NVIDIA H100 80GB HBM3 MIG 7g.80gb", "H100-SXM-80GB-MIG-7g.80gb", 79.25),
        ("h100 mig 3g.40gb", "H100-SXM-80GB-MIG-3g.40gb", 39.50),
        ("NVIDIA H200 MIG 3g.71gb", "H200-SXM-141GB-MIG-3g.71gb", 69.73),
    ],
)
def test_mig_device_names_resolve(query, expected, reported_gib):
    gpu = get_gpu(query)
    assert gpu.name == expected
    assert gpu.usable_memory_bytes == pytest.approx(reported_gib * GiB, abs=5 * MiB)


def test_mig_slices_do_not_answer_plain_partial_names():
    assert get_gpu("h100 sxm").name == "H100-SXM-80GB"
    assert get_gpu("h200").name == "H200-SXM-141GB"
    with pytest.raises(UnknownNameError, match="ambiguous"):
        get_gpu("mig 1g.10gb")  # A100 80GB and H100 both have one


def test_mig_profiles_name_an_entry_of_the_same_file(tmp_path):
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps({"gpus": [_entry()], "mig_profiles": [
        {"parent": "Other", "parent_sms": 10, "profiles": []}]}))
    with pytest.raises(InvalidGPUEntryError, match="parent"):
        load_gpus(path)


def test_cli_gpus_lists_mig_slices_on_request(capsys):
    from hf_gpu_estimator.cli import main

    assert main(["gpus", "--format", "json"]) == 0
    assert not any(g["mig_parent"] for g in json.loads(capsys.readouterr().out))
    assert main(["gpus", "--mig", "--vendor", "nvidia", "--format", "json"]) == 0
    names = {g["name"] for g in json.loads(capsys.readouterr().out) if g["mig_parent"]}
    assert "H100-SXM-80GB-MIG-1g.10gb" in names and len(names) == len(MIG)


CUDA_CONTEXT_ROWS = json.loads((Path(__file__).resolve().parents[1] / "src" / "hf_gpu_estimator" / "hardware" /
                                "cuda_context.json").read_text())["rows"]


@pytest.mark.parametrize("row", CUDA_CONTEXT_ROWS, ids=lambda r: f"{r['module_loading']}-{r.get('gpu', r['stack'])}")
def test_cuda_context_rows_name_their_source(row):
    assert row["module_loading"] in ("lazy", "eager") and row["quote"]
    assert row["source"].startswith(("https://", "benchmarks/"))


def test_cuda_context_constants_follow_the_published_rows():
    from hf_gpu_estimator.memory import overhead

    bare = sorted(r["mib"] for r in CUDA_CONTEXT_ROWS if r["module_loading"] == "lazy" and r["what"] == "bare context")
    assert overhead.CUDA_CONTEXT_BARE_BYTES >> 20 == bare[len(bare) // 2]
    eager = [r["mib_at_least"] for r in CUDA_CONTEXT_ROWS if r["module_loading"] == "eager"]
    assert overhead.CUDA_CONTEXT_EAGER_RANGE_BYTES[0] >> 20 == max(eager)
    assert overhead.CUDA_CONTEXT_EAGER_BYTES >= max(eager) << 20
    training = [r["mib_range"] for r in CUDA_CONTEXT_ROWS if "mib_range" in r]
    low, high = training[0]
    assert low << 20 <= overhead.CUDA_CONTEXT_BYTES <= high << 20
    assert overhead.cuda_context_bytes("lazy") == overhead.CUDA_CONTEXT_BYTES
