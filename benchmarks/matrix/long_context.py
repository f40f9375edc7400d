"""Trace every causal-LM type of the installed transformers at long-context workloads (issue 20).

    PYTHONPATH=src nice -n 10 python benchmarks/matrix/long_context.py [--workloads NAME ...] [--only TYPE ...]
    PYTHONPATH=src python benchmarks/matrix/long_context.py --render     # docs/coverage-long.md, no tracing

The same cut default configs as the coverage matrix (:func:`hf_gpu_estimator.coverage.default_cut_config`),
traced in exact mode (:func:`hf_gpu_estimator.trace.trace_workload`, CUDA semantics) at the workloads of
:data:`hf_gpu_estimator.WORKLOADS`: inference at batch 4 x 2048 prompt tokens with eager and sdpa
attention, training at batch 2 x 2048 in bf16 mixed precision with and without gradient checkpointing. Results
go to ``tests/data/coverage_long.json`` after every type and workload, so an interrupted run keeps what it traced
and a re-run continues with what is missing (a workload is traced once per torch/transformers version, tracer
version and cut-config hash; ``--retry-errors`` re-traces the failed ones). The parameter counting, the
per-workload time limit and the file format are those of ``benchmarks/coverage_traces.py``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from hf_gpu_estimator import coverage

#: Where the traces live.
DATA_PATH = Path(__file__).resolve().parents[2] / "tests" / "data" / "coverage_long.json"

#: The workloads, as :func:`hf_gpu_estimator.workload.make_workload` keywords (issue 20: inference at batch
#: 4 x 2048 with eager and sdpa attention, training at batch 2 x 2048 in mixed precision with and without
#: gradient checkpointing).
WORKLOADS: dict[str, dict[str, Any]] = {
    "inference eager": {"task": "inference", "batch_size": 4, "seq_len": 2048, "new_tokens": 2,
                        "dtype": "bfloat16", "attn_implementation": "eager"},
    "inference sdpa": {"task": "inference", "batch_size": 4, "seq_len": 2048, "new_tokens": 2,
                       "dtype": "bfloat16", "attn_implementation": "sdpa"},
    "training": {"task": "training", "batch_size": 2, "seq_len": 2048, "precision": "bf16-mixed",
                 "optimizer": "adamw", "gradient_checkpointing": False, "attn_implementation": "sdpa"},
    "training ckpt": {"task": "training", "batch_size": 2, "seq_len": 2048, "precision": "bf16-mixed",
                      "optimizer": "adamw", "gradient_checkpointing": True, "attn_implementation": "sdpa"},
}  # fmt: skip

#: Position-table fields raised to :data:`POSITIONS` where a default config holds fewer than a workload's tokens
#: (prompt + new tokens): learned absolute positions (bert's 512, bart's 1024) would index past the table on a
#: GPU, and some models check the length (gpt_neo's 2048 against 2050 tokens; mpt's ALiBi table of max_seq_len).
#: Raised in the top-level config and the text/decoder sub-config; recorded in the entry's ``long_changes``.
POSITION_FIELDS = ("max_position_embeddings", "n_positions", "n_ctx", "max_target_positions", "max_seq_len")
POSITIONS = 4096


def long_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The cut config with every position table of :data:`POSITION_FIELDS` holding at least the longest workload's
    tokens, and the changes."""
    tokens = max(int(o["seq_len"]) + int(o.get("new_tokens", 0)) for o in WORKLOADS.values())
    out = dict(config)
    changes: dict[str, str] = {}
    for prefix, target in (("", out), *((f"{k}.", out[k]) for k in coverage._TEXT_CONFIGS
                                        if isinstance(out.get(k), Mapping))):
        target = dict(target)
        for name in POSITION_FIELDS:
            value = target.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value < tokens:
                target[name] = POSITIONS
                changes[prefix + name] = f"{value} → {POSITIONS} (fewer positions than {tokens} tokens)"
        if prefix:
            out[prefix[:-1]] = target
        else:
            out.update(target)
    return out, changes


#: The coverage-matrix workload whose per-type settings (coverage.WORKLOAD_SETTINGS) each workload takes.
BASE_WORKLOAD = {name: str(options["task"]) for name, options in WORKLOADS.items()}


def _coverage_headers() -> Any:
    """benchmarks/coverage_headers.py (the header a checkpoint of a config would carry)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import coverage_headers

    return coverage_headers


def _coverage_traces() -> Any:
    """benchmarks/coverage_traces.py (its parameter count, time limit and file writer)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import coverage_traces

    return coverage_traces

#: A long-context trace of a type that allocates per token in Python loops takes longer than the 128-token one.
TIMEOUT_S = 600


#: The checkpoint header (tensor names, dtypes, shapes) a Hub repo of each traced config would carry, as
#: benchmarks/coverage_headers.py records it, keyed by the config's hash.
HEADERS_PATH = DATA_PATH.with_name("coverage_long_headers.json.gz")

#: Where the generated page goes.
DOC_PATH = DATA_PATH.parents[2] / "docs" / "coverage-long.md"

#: Relative error allowed between the analytic allocated peak (without the cuBLAS workspace, which a trace on
#: fake tensors cannot see) and the traced peak, per workload: issue 20's goal, the coverage matrix's inference
#: tolerance (issue 11) for every workload.
TOLERANCE = 0.10

#: Issue 20's goal per workload: 95 % of the compared types within :data:`TOLERANCE`, median |error| at most 2 %.
GOAL_WITHIN = 0.95
GOAL_MEDIAN = 0.02

#: What tests/test_coverage_long.py requires per workload (share within, median |error|): the goal where it is
#: met, else the measured figure (docs/coverage-long.md), so a regression fails and the gap stays in view.
#: Measured (docs/coverage-long.md): inference sdpa 176 of 187 within (94.1 %), median 0.2 %; training 149 of 165
#: (90.3 %), median 0.3 %; with checkpointing 146 of 158 (92.4 %), median 0.0 %; inference eager meets the goal.
MIN_WITHIN: dict[str, float] = {**{name: GOAL_WITHIN for name in WORKLOADS}, "inference sdpa": 0.94,
                                "training": 0.90, "training ckpt": 0.92}
MAX_MEDIAN: dict[str, float] = {name: GOAL_MEDIAN for name in WORKLOADS}

#: Types outside :data:`TOLERANCE` on a workload, with why (the measured error is shown beside it).
KNOWN_GAPS: dict[str, str] = {
    "bailing_hybrid": "Kimi-delta linear-attention layers and MLA attention, read by the generic family as plain "
                      "attention (no family module)",
    "kimi_linear": "Kimi-delta linear-attention layers and MLA attention, read by the generic family as plain "
                   "attention (no family module)",
    "big_bird": "block-sparse attention at 2048 tokens (BigBirdModel keeps attention_type block_sparse above "
                "(5 + 2 x num_random_blocks) x block_size = 704 tokens): its gathered key/value blocks and band "
                "products are estimated as full attention",
    "bert": "counted as BertForMaskedLM (the family's default class), which keeps no cache; BertLMHeadModel "
            "under generate fills one",
    "flint": "fp32 scores and softmax with a learned sink column per head (torch.cat) in eager attention, SDPA "
             "unsupported: the generic family reads no sinks",
    "nemotron_h": "Mamba2 prefill at 2048 tokens: the chunk-scan terms itemized at 128 tokens overcount "
                  "(chunk x chunk matrices per head)",
    "dbrx": "its experts run a loop over the experts (DbrxExperts), not grouped_mm as modelled: SDPA prefill "
            "peaks lower than estimated",
    "dory": "training without checkpointing: under autocast its fp32 scaling vectors (suv_gate, suv_up) make the "
            "MLP's gate, up, activation and products fp32, and the sandwich interpolation (sub/add) and the "
            "attention gate (sigmoid) fp32: saved tensors beyond the modelled bf16 ones (trace: about 1.4 GiB per "
            "layer run at 2 x 2048 tokens)",
    "musicgen": "MusicgenForCausalLM.forward takes no logits_to_keep: the SDPA prefill peaks at the stacked "
                "logits of every codebook for every position, modelled for the last position only",
    "musicgen_melody": "MusicgenMelodyForCausalLM.forward takes no logits_to_keep: the SDPA prefill peaks at the "
                       "stacked logits of every codebook for every position, modelled for the last position only",
    "xlnet": "unanalysed: its relative two-stream attention (einsum position scores) holds more than the "
             "modelled scores",
    "xlstm": "unanalysed: the mLSTM prefill at 2048 tokens holds more than the chunkwise terms modelled",
    "bart": "unanalysed: training the decoder of an encoder-decoder class (causal-LM use) peaks below the estimate, whose logits and loss terms dominate",
    "bigbird_pegasus": "unanalysed: training the decoder of an encoder-decoder class (causal-LM use) peaks below the estimate, whose logits and loss terms dominate",
    "blenderbot": "unanalysed: training the decoder of an encoder-decoder class (causal-LM use) peaks below the estimate, whose logits and loss terms dominate",
    "blenderbot-small": "unanalysed: training the decoder of an encoder-decoder class (causal-LM use) peaks below the estimate, whose logits and loss terms dominate",
    "marian": "unanalysed: training the decoder of an encoder-decoder class (causal-LM use) peaks below the estimate, whose logits and loss terms dominate",
    "mbart": "unanalysed: training the decoder of an encoder-decoder class (causal-LM use) peaks below the estimate, whose logits and loss terms dominate",
    "mvp": "unanalysed: training the decoder of an encoder-decoder class (causal-LM use) peaks below the estimate, whose logits and loss terms dominate",
    "pegasus": "unanalysed: training the decoder of an encoder-decoder class (causal-LM use) peaks below the estimate, whose logits and loss terms dominate",
    "plbart": "unanalysed: training the decoder of an encoder-decoder class (causal-LM use) peaks below the estimate, whose logits and loss terms dominate",
    "prophetnet": "unanalysed: its n-gram decoder's training peaks far above the estimate (predicting "
                  "ngram streams is not modelled)",
    "megatron-bert": "unanalysed: training with checkpointing peaks above the estimate",
    "nanochat": "unanalysed: training with checkpointing peaks above the estimate",
    "openai-gpt": "unanalysed: training peaks above the estimate",
    "gemma3n_text": "unanalysed: training peaks above the estimate",
    "hrm_text": "unanalysed: training (its recurrent H/L cycles) peaks below the estimate",
}


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One model type x workload: traced against analytic."""

    model_type: str
    workload: str
    traced_bytes: int | None = None
    analytic_bytes: int | None = None
    problem: str = ""  # why there is no comparison (not traced, not estimated)

    @property
    def error(self) -> float | None:
        if not self.traced_bytes or self.analytic_bytes is None:
            return None
        return self.analytic_bytes / self.traced_bytes - 1

    @property
    def within(self) -> bool:
        return self.error is not None and abs(self.error) <= TOLERANCE


def load_headers() -> dict[str, Any]:
    """The recorded checkpoint headers by model type: ``{"config_hash": ..., "tensors": [[name, dtype, shape]]}``."""
    if not HEADERS_PATH.exists():
        return {}
    with gzip.open(HEADERS_PATH, "rt", encoding="utf-8") as f:
        return dict(json.load(f))


def save_headers(headers: Mapping[str, Any]) -> None:
    tmp = HEADERS_PATH.with_suffix(".tmp")
    with gzip.GzipFile(tmp, "wb", mtime=0) as f:  # mtime 0: the same headers give the same bytes
        f.write(json.dumps(dict(sorted(headers.items())), separators=(",", ":")).encode())
    os.replace(tmp, HEADERS_PATH)


def _spec(model_type: str, entry: Mapping[str, Any], headers: Mapping[str, Any]) -> Any:
    """The analytic ModelSpec of a recorded type: its cut config and, where recorded for the same config, the
    checkpoint header (as the coverage matrix reads them)."""
    from hf_gpu_estimator.sources import inspect_model
    from hf_gpu_estimator.sources.headers import build_spec
    from hf_gpu_estimator.spec import TensorInfo

    recorded = headers.get(model_type)
    tensors = None
    if recorded and recorded["config_hash"] == coverage.config_hash(entry["config"]):
        tensors = tuple(TensorInfo(name=n, dtype=d, shape=tuple(shape)) for n, d, shape in recorded["tensors"])
    config = dict(entry["config"])
    if tensors is None:
        return inspect_model(config)
    return build_spec(model_id=model_type, config=config, tensors=tensors)


def compare(data: Mapping[str, Any] | None = None) -> list[Cell]:
    """Every recorded type x workload compared (pure: the analytic side only)."""
    from hf_gpu_estimator.errors import EstimatorError
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.workload import make_workload

    data = coverage.load_data(DATA_PATH) if data is None else data
    headers = load_headers()
    cells = []
    for model_type, entry in sorted(data.get("entries", {}).items()):
        traces = entry.get("traces") or {}
        spec, why = None, ""
        if entry.get("config"):
            try:
                spec = _spec(model_type, entry, headers)
            except (EstimatorError, ValueError, KeyError, TypeError) as e:
                why = f"not estimated: {type(e).__name__}: {e}"
            if spec is not None and spec.architecture is None:
                spec, why = None, "not estimated: no layer model (weights only)"
        for workload, options in WORKLOADS.items():
            trace = traces.get(workload)
            if trace is None:
                error = (entry.get("errors") or {}).get(workload) or entry.get("error")
                cells.append(Cell(model_type=model_type, workload=workload,
                                  problem=f"not traced: {error}" if error else "not traced"))
                continue
            if spec is None:
                cells.append(Cell(model_type=model_type, workload=workload, traced_bytes=int(trace["peak_bytes"]),
                                  problem=why))
                continue
            try:
                m = estimate_memory(spec, make_workload(**options), detail=False)
            except (EstimatorError, ValueError, KeyError, TypeError) as e:
                cells.append(Cell(model_type=model_type, workload=workload, traced_bytes=int(trace["peak_bytes"]),
                                  problem=f"not estimated: {type(e).__name__}: {e}"))
                continue
            cells.append(Cell(model_type=model_type, workload=workload, traced_bytes=int(trace["peak_bytes"]),
                              analytic_bytes=m.allocated_peak_bytes - m.components.get("workspace", 0)))
    return cells


@dataclass(frozen=True, kw_only=True)
class WorkloadSummary:
    workload: str
    compared: int
    within: int
    median_abs_error: float | None
    not_compared: int

    @property
    def share(self) -> float:
        return self.within / self.compared if self.compared else 0.0


def summarize(cells: list[Cell]) -> list[WorkloadSummary]:
    out = []
    for workload in WORKLOADS:
        group = [c for c in cells if c.workload == workload]
        errs = sorted(abs(c.error) for c in group if c.error is not None)
        out.append(WorkloadSummary(workload=workload, compared=len(errs), within=sum(c.within for c in group),
                                   median_abs_error=errs[len(errs) // 2] if errs else None,
                                   not_compared=len(group) - len(errs)))
    return out


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x * 100:+.1f}%"


def render_markdown(cells: list[Cell], versions: Mapping[str, str]) -> str:
    """docs/coverage-long.md: the figures per workload, then one row per model type x workload."""
    lines = [
        "# Coverage at long context",
        "",
        "Generated by `benchmarks/matrix/long_context.py --render` from `tests/data/coverage_long.json` (traced "
        "by `benchmarks/matrix/long_context.py`); do not edit by hand.",
        "",
        f"Every causal-LM model type of transformers {versions.get('transformers', '?')} at the coverage matrix's "
        "cut default config (docs/coverage.md), traced in exact mode (torch "
        f"{versions.get('torch', '?')}, fake tensors, CUDA semantics) and estimated analytically on the same config "
        "and the checkpoint header of that config (`tests/data/coverage_long_headers.json.gz`). Position tables "
        f"shorter than the longest workload are raised to {POSITIONS} positions in both (learned absolute "
        "positions would index past the table on a GPU). Workloads: "
        + "; ".join(f"**{k}**: " + ", ".join(f"{a}={b}" for a, b in v.items()) for k, v in WORKLOADS.items())
        + ". Error = analytic / traced − 1 on the peak allocated bytes (without the cuBLAS workspace). "
        f"Tolerance ±{TOLERANCE * 100:.0f}% per workload; goal (issue 20): {GOAL_WITHIN * 100:.0f}% of the compared "
        f"types within it, median |error| ≤ {GOAL_MEDIAN * 100:.0f}%. A type outside names its reason "
        "(`KNOWN_GAPS` in `benchmarks/matrix/long_context.py`).",
        "",
        "| workload | compared | within ±10% | share | median \\|error\\| | not compared |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in summarize(cells):
        med = "" if s.median_abs_error is None else f"{s.median_abs_error * 100:.1f}%"
        lines.append(f"| {s.workload} | {s.compared} | {s.within} | {s.share * 100:.1f}% | {med} | {s.not_compared} |")
    lines += ["", "| model type | workload | traced peak | analytic | error | status |", "|---|---|---:|---:|---:|---|"]
    for c in cells:
        traced = "" if c.traced_bytes is None else f"{c.traced_bytes / (1 << 20):,.0f} MiB"
        analytic = "" if c.analytic_bytes is None else f"{c.analytic_bytes / (1 << 20):,.0f} MiB"
        if c.error is None:
            status = c.problem
        elif c.within:
            status = "within"
        else:
            status = "outside" + (f": {KNOWN_GAPS[c.model_type]}" if c.model_type in KNOWN_GAPS else "")
        status = " ".join(status.split()).replace("|", "\\|")[:200]
        lines.append(f"| {c.model_type} | {c.workload} | {traced} | {analytic} | {_pct(c.error)} | {status} |")
    return "\n".join(lines) + "\n"


def build_markdown(cells: list[Cell] | None = None) -> str:
    data = coverage.load_data(DATA_PATH)
    return render_markdown(compare(data) if cells is None else cells, data.get("versions", {}))


def trace_one(cut: coverage.CutConfig, config: Mapping[str, Any], workload: str, timeout_s: int) -> tuple[dict[str, Any] | None, str | None]:
    """The kept fields of one trace, or the error (recorded, not raised)."""
    from hf_gpu_estimator import trace
    from hf_gpu_estimator.workload import make_workload

    coverage_traces = _coverage_traces()

    signal.alarm(timeout_s)
    try:
        settings = coverage.WORKLOAD_SETTINGS.get(cut.model_type, {}).get(BASE_WORKLOAD[workload], {})
        result = trace.trace_workload({**config, **settings},
                                      make_workload(**WORKLOADS[workload]))
    except coverage_traces._Timeout:
        return None, f"timeout: no result within {timeout_s} s"
    except Exception as e:  # recorded per type and workload  # noqa: BLE001
        return None, f"{type(e).__name__}: {e}"[:600]
    finally:
        signal.alarm(0)
        trace.clear_cache()
    d = result.to_dict()
    out = {k: d[k] for k in coverage_traces._TRACE_FIELDS}
    out["top_holders"] = d["top_holders"][: coverage_traces._TOP_HOLDERS]
    return out, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS),
                        choices=list(WORKLOADS), help="workloads to trace (default: all)")
    parser.add_argument("--only", nargs="*", help="model types to trace (default: all causal-LM types)")
    parser.add_argument("--retry-errors", action="store_true", help="re-trace workloads recorded as failed")
    parser.add_argument("--out", type=Path, default=DATA_PATH)
    parser.add_argument("--timeout", type=int, default=TIMEOUT_S, help="seconds per workload trace")
    parser.add_argument("--render", action="store_true", help="only write docs/coverage-long.md (no tracing)")
    args = parser.parse_args(argv)
    if args.render:
        cells = compare()
        DOC_PATH.write_text(build_markdown(cells))
        for s in summarize(cells):
            print(f"{s.workload}: {s.within}/{s.compared} within ±{TOLERANCE:.0%}, median |error| "
                  f"{_pct(s.median_abs_error)}; not compared {s.not_compared}")
        return 0
    warnings.filterwarnings("ignore")
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    transformers.logging.set_verbosity_error()
    coverage_traces = _coverage_traces()
    signal.signal(signal.SIGALRM, coverage_traces._alarm)
    ver = coverage_traces.versions()
    data = coverage.load_data(args.out)
    data["versions"] = ver
    data["workloads"] = {k: dict(v) for k, v in WORKLOADS.items()}
    data["command"] = "PYTHONPATH=src nice -n 10 python benchmarks/matrix/long_context.py"
    types = sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    if args.only:
        types = [t for t in types if t in args.only]
    data["entries"] = {k: v for k, v in data.get("entries", {}).items() if k in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES}
    headers = dict(load_headers())
    start_all = time.perf_counter()
    for i, model_type in enumerate(types, 1):
        try:
            cut = coverage.default_cut_config(model_type)
        except Exception as e:  # noqa: BLE001
            data["entries"][model_type] = {**ver, "tracer": coverage.TRACER_VERSION, "config_hash": None,
                                           "status": "error", "error": f"config: {type(e).__name__}: {e}"[:600]}
            coverage_traces.save(data, args.out)
            continue
        key = {"torch": ver["torch"], "transformers": ver["transformers"], "tracer": coverage.TRACER_VERSION,
               "config_hash": cut.config_hash}
        entry = data["entries"].get(model_type)
        config, long_changes = long_config(cut.config)
        if not entry or any(entry.get(k) != v for k, v in key.items()) \
                or coverage.config_hash(entry.get("config") or {}) != coverage.config_hash(config):
            counted = coverage_traces.count(replace(cut, config=config))
            entry = {**key, "layers": list(cut.layers), "cut": dict(cut.changes), "long_changes": long_changes,
                     "config": config, **counted, "traces": {}, "errors": {}}

            if counted.get("status") == "error":
                data["entries"][model_type] = entry
                coverage_traces.save(data, args.out)
                continue
        if entry.get("status") == "error" and "traces" not in entry:
            continue
        if headers.get(model_type, {}).get("config_hash") != coverage.config_hash(config):
            # The checkpoint header of this very config (the coverage matrix's are of the 128-token cut, and
            # re-recorded with each transformers release): what the analytic side reads, as from a Hub repo.
            try:
                tensors = _coverage_headers().header_tensors(config)
            except Exception as e:  # a config transformers cannot build: the analytic side reads config.json  # noqa: BLE001
                print(f"  {model_type}: no header ({type(e).__name__})", flush=True)
            else:
                headers[model_type] = {"config_hash": coverage.config_hash(config), "tensors": tensors}
                save_headers(headers)
        entry.setdefault("traces", {})
        entry.setdefault("errors", {})
        for workload in args.workloads:
            if workload in entry["traces"] or (workload in entry["errors"] and not args.retry_errors):
                continue
            if entry["errors"].get(workload, "").startswith("pending") and not args.retry_errors:
                continue
            # Marked before tracing: a trace that kills the process is not retried on its own.
            entry["errors"][workload] = "pending: the tracing process ended during this trace (memory or time)"
            data["entries"][model_type] = entry
            coverage_traces.save(data, args.out)
            t0 = time.perf_counter()
            traced, error = trace_one(cut, config, workload, args.timeout)
            if traced is not None:
                entry["traces"][workload] = traced
                entry["errors"].pop(workload, None)
            else:
                entry["errors"][workload] = error
            entry["status"] = "ok" if entry["traces"] else "error"
            data["entries"][model_type] = entry
            coverage_traces.save(data, args.out)
            print(f"[{i}/{len(types)}] {model_type} {workload}: {'ok' if error is None else error[:160]} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"done in {time.perf_counter() - start_all:.0f} s: {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
