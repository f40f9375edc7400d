"""Trace every causal-LM type of the installed transformers for the coverage matrix.

    PYTHONPATH=src nice -n 10 python benchmarks/coverage_traces.py [--only TYPE ...] [--retry-errors]

For each model type of ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``: its default config
(``AutoConfig.for_model``) cut to a few layers with every layer kind kept
(:func:`matrix.cut.cut_config`), the exact parameter count of the model built on
the meta device, and exact-mode traces (:func:`hf_gpu_estimator.runtime.trace.trace_workload`) of the
workloads in :data:`matrix.compare.WORKLOADS`. Results go to
``tests/data/coverage_traces.json`` after every model type, so an interrupted run keeps what it
traced and a re-run continues. An entry is re-traced when the torch or transformers version, the
tracer version (:data:`matrix.compare.TRACER_VERSION`) or the cut config's hash changed; a type that fails to build or trace is recorded with the error
(re-tried with ``--retry-errors``). A type whose tracing killed the process twice is recorded as
failed. ``--refresh-counts`` only recounts the parameters of fresh entries (no tracing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from matrix import compare
from matrix.cut import CutConfig, cut_config, default_cut_config

#: Per-workload limit: a trace past it is recorded as failed (a default config too large for fake tensors).
TIMEOUT_S = 300

#: Attempts at a type whose tracing ended the process (memory) before it is recorded as failed.
MAX_ATTEMPTS = 2

#: Trace fields kept in the data file (the rest is per-run noise).
_TRACE_FIELDS = ("peak_bytes", "phase_at_peak", "module_at_peak", "phase_peaks", "breakdown_at_peak", "fallbacks",
                 "trace_seconds", "weight_dtype", "parameters", "trainable_parameters", "kv_cache_bytes",
                 "optimizer_state_bytes", "attention_backends")
_TOP_HOLDERS = 5


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def versions() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


def save(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` atomically, one line per model type (readable diffs, a partial run usable)."""
    head = {k: v for k, v in data.items() if k != "entries"}
    lines = [f" {json.dumps(k)}: {json.dumps(v, default=str)}," for k, v in head.items()]
    entries = sorted(data["entries"].items())
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, default=str)}" for k, v in entries)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("{\n" + "\n".join(lines) + '\n "entries": {\n' + body + "\n }\n}\n")
    os.replace(tmp, path)


def fresh(entry: dict[str, Any] | None, key: dict[str, str], *, retry_errors: bool) -> bool:
    if not entry or any(entry.get(k) != v for k, v in key.items()):
        return False
    if entry.get("status") == "pending":
        return entry.get("attempts", 0) >= MAX_ATTEMPTS
    return entry.get("status") == "ok" or not retry_errors


def count(cut: CutConfig) -> dict[str, Any]:
    """The model class, exact parameter count and its split by tensor-name role (meta device)."""
    from collections import Counter

    from hf_gpu_estimator.runtime import build
    from hf_gpu_estimator.sources.headers import role_of

    try:
        model = build.build_meta_model(cut.config)
    except Exception as e:  # recorded per type: the matrix lists what fails and why  # noqa: BLE001
        return {"status": "error", "error": f"build: {type(e).__name__}: {e}"[:600]}
    by_role: Counter[str] = Counter()
    for name, p in model.named_parameters():  # tied parameters once, as parameters() yields them
        by_role[role_of(name)] += p.numel()
    return {"model_class": type(model).__name__, "parameters": int(sum(by_role.values())),
            "parameters_by_role": dict(sorted(by_role.items()))}


def trace_type(model_type: str, cut: CutConfig, timeout_s: int) -> dict[str, Any]:
    """Parameter count and traces of one model type (errors recorded, not raised)."""
    from hf_gpu_estimator.runtime import trace
    from hf_gpu_estimator.workload import make_workload

    out = count(cut)
    if out.get("status") == "error":
        return out
    traces: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, options in compare.WORKLOADS.items():
        signal.alarm(timeout_s)
        start = time.perf_counter()
        try:
            result = trace.trace_workload(cut.workload_config(name), make_workload(**options))
        except _Timeout:
            errors[name] = f"timeout: no result within {timeout_s} s"
        except Exception as e:  # noqa: BLE001
            errors[name] = f"{type(e).__name__}: {e}"[:600]
        else:
            d = result.to_dict()
            traces[name] = {k: d[k] for k in _TRACE_FIELDS}
            traces[name]["top_holders"] = d["top_holders"][:_TOP_HOLDERS]
        finally:
            signal.alarm(0)
            trace.clear_cache()
        print(f"  {model_type} {name}: {'ok' if name in traces else errors[name][:160]} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    out["traces"] = traces
    if errors:
        out["errors"] = errors
    out["status"] = "ok" if not errors else ("partial" if traces else "error")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="model types to (re-)trace (default: all causal-LM types)")
    parser.add_argument("--retry-errors", action="store_true", help="re-trace types recorded as failed")
    parser.add_argument("--out", type=Path, default=compare.DATA_PATH)
    parser.add_argument("--timeout", type=int, default=TIMEOUT_S, help="seconds per workload trace")
    parser.add_argument("--refresh-counts", action="store_true",
                        help="only recount the parameters of fresh entries (meta device, no tracing)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    transformers.logging.set_verbosity_error()
    signal.signal(signal.SIGALRM, _alarm)
    ver = versions()
    data = compare.load_data(args.out)
    data["versions"] = ver  # of the latest run; each entry carries its own
    data["workloads"] = {k: dict(v) for k, v in compare.WORKLOADS.items()}
    data["command"] = "PYTHONPATH=src nice -n 10 python benchmarks/coverage_traces.py"
    types = sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    if args.only:
        unknown = sorted(set(args.only) - set(types))
        if unknown:
            parser.error(f"not causal-LM types of transformers {ver['transformers']}: {', '.join(unknown)}")
        types = [t for t in types if t in args.only]
    # Types no longer in the installed transformers are dropped.
    data["entries"] = {k: v for k, v in data.get("entries", {}).items() if k in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES}
    total_start = time.perf_counter()
    for i, model_type in enumerate(types, 1):
        try:
            cut = default_cut_config(model_type)
        except Exception as e:  # noqa: BLE001
            data["entries"][model_type] = {"torch": ver["torch"], "transformers": ver["transformers"],
                                           "tracer": compare.TRACER_VERSION, "config_hash": None, "status": "error",
                                           "error": f"config: {type(e).__name__}: {e}"[:600]}
            save(data, args.out)
            print(f"[{i}/{len(types)}] {model_type}: config failed: {e}"[:200], flush=True)
            continue
        key = {"torch": ver["torch"], "transformers": ver["transformers"], "tracer": compare.TRACER_VERSION,
               "config_hash": cut.config_hash}
        entry = data["entries"].get(model_type)
        if args.refresh_counts:
            if entry and all(entry.get(k) == v for k, v in key.items()) and entry.get("status") in ("ok", "partial"):
                counted = count(cut)
                if counted.get("status") != "error":
                    entry.update(counted)
                    save(data, args.out)
            continue
        forced = bool(args.only)
        if not forced and fresh(entry, key, retry_errors=args.retry_errors):
            if entry.get("status") == "pending":  # the process died on it MAX_ATTEMPTS times
                entry.update(status="error", error=f"the tracing process was killed {MAX_ATTEMPTS} times "
                                                   "(out of memory or time)")
                save(data, args.out)
            continue
        attempts = (entry or {}).get("attempts", 0) + 1 if (entry or {}).get("status") == "pending" else 1
        base = {**key, "layers": list(cut.layers), "cut": dict(cut.changes), "config": cut.config}
        data["entries"][model_type] = {**base, "status": "pending", "attempts": attempts}
        save(data, args.out)
        print(f"[{i}/{len(types)}] {model_type}: {cut.layers[0]} → {cut.layers[1]} layers", flush=True)
        result = trace_type(model_type, cut, args.timeout)
        data["entries"][model_type] = {**base, **result}
        save(data, args.out)
    print(f"done in {time.perf_counter() - total_start:.0f} s: {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
