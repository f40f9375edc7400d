"""Dump every Architecture, ParameterCounts and three estimates, to check a refactoring changes no number.

Inputs: each family's default config (``{"model_type": t}``, and once per class it counts), every config
under tests/ (tests/configs, the loopback Hub's config.json files, the coverage matrices' cut configs, the
configs the architecture and memory tests build inline), every catalog entry's config and
benchmarks/configs. For each: the Architecture (every field, ``layers`` as distinct layers plus the
per-layer index, ``per_layer`` left out: an explicit list and a derived one describe the same layers), the
exact counts and class, and the JSON of an inference, a full-training and a QLoRA-training estimate (or
the error each raises).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/architecture_identity.py --output /tmp/before.json
    PYTHONPATH=src .venv/bin/python benchmarks/architecture_identity.py --output /tmp/after.json \
        --compare /tmp/before.json
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import importlib
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Workloads each config is estimated under.
WORKLOADS: dict[str, dict[str, Any]] = {
    "inference": {"batch_size": 2, "seq_len": 512, "new_tokens": 16},
    "training": {"task": "training", "batch_size": 1, "seq_len": 256, "precision": "bf16-mixed"},
    "qlora": {"task": "training", "method": "qlora", "lora_targets": "all-linear", "batch_size": 1, "seq_len": 256,
              "gradient_checkpointing": True},
}

#: Field changes applied to every family's default config, to reach the options the defaults leave off.
VARIANTS: tuple[dict[str, Any], ...] = (
    {"num_hidden_layers": 6},
    {"num_hidden_layers": 6, "first_k_dense_replace": 2, "n_shared_experts": 2, "n_routed_experts": 8,
     "num_experts_per_tok": 2},
    {"num_hidden_layers": 5, "attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True},
    {"num_hidden_layers": 4, "use_qk_norm": True, "q_lora_rank": None, "sliding_window": 64,
     "max_window_layers": 2},
    {"num_hidden_layers": 8, "num_experts": 0, "decoder_sparse_step": 2, "mlp_only_layers": [1]},
    {"num_hidden_layers": 8, "num_experts": 4, "num_local_experts": 4, "num_experts_per_tok": 1,
     "expert_layer_period": 4, "attn_layer_period": 2, "attn_layer_offset": 1, "attn_layer_indices": [1, 5]},
    {"num_hidden_layers": 4, "first_k_dense_replace": 9, "n_shared_experts": 0},
    {"num_hidden_layers": 8, "num_experts": 4, "num_local_experts": 4, "num_experts_per_tok": 2,
     "decoder_sparse_step": 2, "mlp_only_layers": [3], "expert_layer_offset": 0, "attn_layer_indices": [0],
     "num_dense_layers": 3, "moe_layer_start_index": 2,
     "moe_layer_interval": 2},
    {"num_hidden_layers": 7, "hybrid_override_pattern": "M-E*MEM", "moe_latent_size": 64, "use_bias": True,
     "use_sliding_window": True, "sliding_window": 32, "max_window_layers": 3},
    {"num_hidden_layers": 8, "layer_types": ["full_attention", "linear_attention"] * 4, "num_experts": 4,
     "num_experts_per_tok": 2, "decoder_sparse_step": 2},
    {"num_hidden_layers": 7, "num_dense_layers": 2,
     "layer_types": ["conv", "full_attention", "conv", "conv", "full_attention", "conv", "conv"]},
    {"num_hidden_layers": 6, "layer_types": ["sliding_attention", "full_attention"] * 3, "sliding_window": 16,
     "use_sliding_window": True, "first_k_dense_replace": 1, "n_shared_experts": 1, "n_routed_experts": 4,
     "num_experts_per_tok": 2},
)

#: Test modules whose module-level values hold configs (dicts with a ``model_type``).
TEST_MODULES = ("test_architectures", "test_architectures_generic", "test_memory_layers", "test_memory_model",
                "test_memory_recipe", "test_perf", "test_planner", "test_bad_input", "test_verdict")


def _configs_in(value: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    if depth > 6:
        return
    if isinstance(value, Mapping):
        if isinstance(value.get("model_type"), str):
            yield value
            return
        for v in value.values():
            yield from _configs_in(v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _configs_in(v, depth + 1)
    elif hasattr(value, "values") and type(value).__name__ == "ParameterSet":
        yield from _configs_in(value.values, depth + 1)


def collect() -> dict[str, Mapping[str, Any]]:
    """Every input config, keyed by where it came from."""
    from hf_gpu_estimator.architectures.families import FAMILIES

    out: dict[str, Mapping[str, Any]] = {}
    for model_type, family in sorted(FAMILIES.items()):
        out[f"default/{model_type}"] = {"model_type": model_type}
        for cls in sorted(family.classes):
            out[f"default/{model_type}/{cls}"] = {"model_type": model_type, "architectures": [cls]}
        for i, variant in enumerate(VARIANTS):
            out[f"variant/{model_type}/{i}"] = {"model_type": model_type, **variant}
    for path in sorted((ROOT / "tests" / "configs").glob("*.json")):
        out[f"tests/configs/{path.stem}"] = json.loads(path.read_text())
    for path in sorted((ROOT / "tests" / "data" / "hub").rglob("config.json")):
        try:
            out[str(path.relative_to(ROOT))] = json.loads(path.read_text())
        except ValueError:
            continue
    for name in ("coverage_traces.json", "coverage_long.json"):
        entries = json.loads((ROOT / "tests" / "data" / name).read_text())["entries"]
        for model_type, entry in sorted(entries.items()):
            if isinstance(entry.get("config"), Mapping):
                out[f"tests/data/{name}/{model_type}"] = entry["config"]
    sys.path.insert(0, str(ROOT / "tests"))
    for module_name in TEST_MODULES:
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # a test module that needs what this machine lacks: say so, go on
            print(f"skipped {module_name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        seen: set[str] = set()
        for name, value in sorted(vars(module).items()):
            for config in _configs_in(value):
                key = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
                if key not in seen:
                    seen.add(key)
                    out[f"tests/{module_name}/{name}/{key}"] = config
    catalog = json.loads((ROOT / "src" / "hf_gpu_estimator" / "sources" / "catalog" / "models.json").read_text())
    for entry in catalog["models"]:
        if isinstance(entry.get("config"), Mapping):
            out[f"catalog/{entry['id']}"] = entry["config"]
    for path in sorted((ROOT / "benchmarks" / "configs").glob("*.json")):
        out[f"benchmarks/configs/{path.stem}"] = json.loads(path.read_text())
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _architecture(arch: Any) -> dict[str, Any]:
    out = {f.name: _plain(getattr(arch, f.name)) for f in dataclasses.fields(arch)
           if f.name not in ("per_layer", "layers")}
    groups = [layer for layer, _ in arch.layer_groups]
    out["layer_groups"] = [[_plain(layer), n] for layer, n in arch.layer_groups]
    out["layer_index"] = [groups.index(layer) for layer in arch.layers]
    return out


def _error(e: BaseException) -> dict[str, str]:
    return {"error": type(e).__name__, "message": str(e)}


def dump_one(config: Mapping[str, Any]) -> dict[str, Any]:
    from hf_gpu_estimator import estimate
    from hf_gpu_estimator.architectures import analyze

    out: dict[str, Any] = {}
    try:
        a = analyze(config)
        out["architecture"] = _architecture(a.architecture)
        out["counts"] = _plain(a.counts)
        out["class"] = a.class_name
    except Exception as e:
        out["analyze"] = _error(e)
        return out
    for name, workload in WORKLOADS.items():
        try:
            out[name] = estimate(dict(config), **workload).to_dict()
        except Exception as e:
            out[name] = _error(e)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="where to write the dump (.json or .json.gz)")
    parser.add_argument("--compare", help="an earlier dump: require every entry to be identical")
    parser.add_argument("--only", help="keys containing this string only")
    args = parser.parse_args()
    configs = collect()
    dump = {key: dump_one(config) for key, config in configs.items() if not args.only or args.only in key}
    text = json.dumps(dump, sort_keys=True, indent=0, default=str)
    path = Path(args.output)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)
    failed = sum(1 for v in dump.values() if "analyze" in v)
    print(f"{len(dump)} configs ({failed} refused by analyze) -> {path} ({len(text):,} bytes)")
    if args.compare:
        ref_path = Path(args.compare)
        raw = ref_path.read_bytes()
        ref = json.loads(gzip.decompress(raw) if ref_path.suffix == ".gz" else raw)
        keys = set(dump) if args.only else set(dump) | set(ref)
        differ = sorted(k for k in keys
                        if json.dumps(dump.get(k), sort_keys=True, default=str)
                        != json.dumps(ref.get(k), sort_keys=True, default=str))
        print(f"compared {len(keys)} entries: {len(keys) - len(differ)} identical, {len(differ)} differ")
        for k in differ[:40]:
            print(f"  differs: {k}")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
