"""Record the safetensors header a checkpoint of each coverage type would carry (names, dtypes, shapes).

A user's model on the Hub comes with its safetensors headers, and the generic family takes exact
parameter counts and the real linear layers from them. The coverage matrix gives the analytic side
the same facts: for every traced type, the model transformers builds from the cut config on the meta
device (parameters once, tied weights once, plus persistent buffers), as ``save_pretrained`` would
write it, in bfloat16.

Usage: PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/coverage_headers.py [--only TYPE ...]
(reads tests/data/coverage_traces.json, writes tests/data/coverage_headers.json.gz; ``--only`` re-records
those types and keeps the other recorded entries)
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import warnings

from matrix import compare

OUT = compare.HEADERS_PATH


def header_tensors(config: dict) -> list[list[object]]:
    """[name, safetensors dtype, shape] of every tensor save_pretrained would write (floats as BF16)."""
    import torch

    from hf_gpu_estimator.runtime import build

    model = build.build_meta_model(config)
    out: list[list[object]] = []
    for name, p in model.named_parameters():  # tied parameters once
        out.append([name, "BF16" if p.dtype.is_floating_point else str(p.dtype), list(p.shape)])
    for module_name, module in model.named_modules():
        skip = getattr(module, "_non_persistent_buffers_set", set())
        for buffer_name, b in module.named_buffers(recurse=False):
            if buffer_name in skip or b is None:
                continue
            dtype = "BF16" if b.dtype.is_floating_point else {torch.int64: "I64", torch.int32: "I32",
                                                               torch.bool: "BOOL"}.get(b.dtype, "U8")
            out.append([f"{module_name}.{buffer_name}" if module_name else buffer_name, dtype, list(b.shape)])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="model types to re-record (default: every traced type)")
    args = parser.parse_args(argv)
    data = compare.load_data()
    entries: dict[str, dict[str, object]] = {}
    if args.only:  # the other recorded entries stay
        entries = {k: v for k, v in compare.load_headers().items() if k not in args.only}
    for model_type, entry in sorted(data.get("entries", {}).items()):
        if args.only and model_type not in args.only:
            continue
        config = entry.get("config")
        if not config:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tensors = header_tensors(config)
        except Exception as e:  # recorded, not raised: the matrix says which types have no header  # noqa: BLE001
            print(f"{model_type}: {type(e).__name__}: {e}"[:200], file=sys.stderr)
            continue
        entries[model_type] = {"config_hash": entry.get("config_hash"), "tensors": tensors}
    payload = {"versions": data.get("versions", {}), "entries": entries}
    with gzip.open(OUT, "wt", encoding="utf-8") as f:
        json.dump(payload, f, separators=(",", ":"), sort_keys=True)
    print(f"{len(entries)} headers -> {OUT} ({OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
