"""Measure real peaks and throughput on the local GPU over a matrix of models × workloads.

Run once on a lent GPU (designed for an H200 with 141 GB, ≤ 5 minutes, no network):

    python benchmarks/gpu_measure.py --out DIR            # full matrix (~35 cases)
    python benchmarks/gpu_measure.py --out DIR --quick    # a few small cases
    python benchmarks/gpu_measure.py --out DIR --set extra --no-trace   # the second H200 run
    python benchmarks/gpu_measure.py --out DIR --device cpu --quick   # smoke test, tiny configs

Each case appends one JSON line (``"kind": "measure"``) to ``DIR/gpu_results.jsonl`` as soon
as it ends (flushed), so a timeout loses nothing; an OOM or error is recorded in the line
(``"error"``, ``"oom"``) and the run goes on. Heavy cases run last. Then, with ``--trace``
(default on CUDA) and while the budget lasts, a second pass traces the same cases in exact
mode on this machine (``"kind": "trace"`` lines, fake CUDA tensors of a CUDA torch build), so
measured and traced peaks compare directly. A per-case time guard (SIGALRM) and a global
budget (``--budget-s``, default 285 s) skip what no longer fits.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

from hf_gpu_estimator.workload import make_workload  # noqa: E402

CONFIGS = ROOT / "configs"


class CaseTimeout(BaseException):  # not an Exception: generic handlers inside a case must not swallow it
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout("case exceeded its time guard")


def load_config(name: str) -> dict[str, Any]:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """The same architecture at toy size, for the CPU smoke test."""
    out = {k: v for k, v in config.items() if k not in ("bos_token_id", "eos_token_id", "pad_token_id")}
    if out["model_type"] == "gpt2":
        out.update(n_embd=64, n_layer=2, n_head=4, vocab_size=512)
        return out
    heads = 4
    kv = 2 if out.get("num_key_value_heads", heads) < out.get("num_attention_heads", heads) else heads
    out.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=heads,
               num_key_value_heads=kv, vocab_size=512)
    if "head_dim" in out:
        out["head_dim"] = 16
    if "query_pre_attn_scalar" in out:
        out["query_pre_attn_scalar"] = 16
    if out.get("sliding_window"):
        out["sliding_window"] = 32
    return out


def extra_matrix() -> list[tuple[str, str, dict[str, Any]]]:
    """Second set (--set extra): what the first H200 run did not cover — fp32 GQA (SDPA's math
    backend), eager prefill, LoRA under autocast, gemma2 mixed, qwen3 q/k norms, Adafactor, large KV."""
    inf = dict(task="inference", new_tokens=64)
    trn = dict(task="training", optimizer="adamw")
    cases: list[tuple[str, str, dict[str, Any]]] = []

    def add(config: str, label: str, **kw: Any) -> None:
        cases.append((f"{config}/{label}", config, kw))

    add("qwen2.5-0.5b", "inf-fp32-b4-s2048", **inf, batch_size=4, seq_len=2048, dtype="float32")
    add("qwen2.5-0.5b", "train-32true-b2-s1024", **trn, batch_size=2, seq_len=1024, precision="32-true")
    add("qwen2.5-0.5b", "lora-all-bf16mixed-b4-s1024", **trn, method="lora", batch_size=4, seq_len=1024,
        precision="bf16-mixed", lora_targets="all-linear")
    add("tinyllama-1.1b", "inf-eager-b4-s4096", **inf, batch_size=4, seq_len=4096, dtype="bfloat16",
        attn_implementation="eager")
    add("tinyllama-1.1b", "train-bf16mixed-b4-s2048", **trn, batch_size=4, seq_len=2048, precision="bf16-mixed")
    add("tinyllama-1.1b", "train-bf16true-b2-s1024-adafactor", batch_size=2, seq_len=1024, task="training",
        precision="bf16-true", optimizer="adafactor")
    add("qwen3-1.7b", "inf-b8-s2048", **inf, batch_size=8, seq_len=2048, dtype="bfloat16")
    add("qwen3-1.7b", "train-bf16true-b2-s2048", **trn, batch_size=2, seq_len=2048, precision="bf16-true")
    add("qwen3-1.7b", "train-bf16mixed-b2-s2048-gc", **trn, batch_size=2, seq_len=2048, precision="bf16-mixed",
        gradient_checkpointing=True)
    add("gemma-2-2b", "train-bf16mixed-b1-s1024", **trn, batch_size=1, seq_len=1024, precision="bf16-mixed")
    add("gemma-2-2b", "train-bf16true-b2-s2048-gc", **trn, batch_size=2, seq_len=2048, precision="bf16-true",
        gradient_checkpointing=True)
    add("mixtral-tiny-moe", "train-bf16true-b4-s2048", **trn, batch_size=4, seq_len=2048, precision="bf16-true")
    add("llama-2-7b", "inf-eager-b1-s4096", **inf, batch_size=1, seq_len=4096, dtype="float16",
        attn_implementation="eager")
    add("qwen2.5-7b", "inf-b16-s4096", **inf, batch_size=16, seq_len=4096, dtype="bfloat16")
    add("llama-2-7b", "lora-r16-bf16mixed-b8-s2048-gc", **trn, method="lora", batch_size=8, seq_len=2048,
        precision="bf16-mixed", lora_rank=16, lora_targets="all-linear", gradient_checkpointing=True)
    add("mistral-7b-v0.1", "lora-r16-bf16true-b2-s4096-gc", **trn, method="lora", batch_size=2, seq_len=4096,
        precision="bf16-true", dtype="bfloat16", lora_rank=16, lora_targets="q_proj,v_proj",
        gradient_checkpointing=True)
    return cases


def matrix(quick: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(case id, config name, make_workload kwargs), light cases first, heavy last."""
    inf = dict(task="inference", new_tokens=64)
    trn = dict(task="training", optimizer="adamw")
    cases: list[tuple[str, str, dict[str, Any]]] = []

    def add(config: str, label: str, **kw: Any) -> None:
        cases.append((f"{config}/{label}", config, kw))

    # Small models: inference and training settings.
    add("gpt2", "inf-b1-s512", **inf, batch_size=1, seq_len=512, dtype="float32")
    add("gpt2", "train-bf16mixed-b4-s512", **trn, batch_size=4, seq_len=512, precision="bf16-mixed")
    add("gpt2", "train-bf16mixed-b4-s512-eager", **trn, batch_size=4, seq_len=512, precision="bf16-mixed",
        attn_implementation="eager")
    add("qwen2.5-0.5b", "inf-b8-s512", **inf, batch_size=8, seq_len=512, dtype="bfloat16")
    add("qwen2.5-0.5b", "train-bf16true-b4-s1024", **trn, batch_size=4, seq_len=1024, precision="bf16-true")
    add("qwen2.5-0.5b", "train-bf16mixed-b4-s1024", **trn, batch_size=4, seq_len=1024, precision="bf16-mixed")
    add("qwen2.5-0.5b", "train-bf16mixed-b4-s1024-gc", **trn, batch_size=4, seq_len=1024, precision="bf16-mixed",
        gradient_checkpointing=True)
    if quick:
        return cases
    add("tinyllama-1.1b", "inf-b1-s2048", **inf, batch_size=1, seq_len=2048, dtype="bfloat16")
    add("tinyllama-1.1b", "inf-b8-s2048", **inf, batch_size=8, seq_len=2048, dtype="bfloat16")
    add("tinyllama-1.1b", "train-bf16true-b2-s2048", **trn, batch_size=2, seq_len=2048, precision="bf16-true")
    add("tinyllama-1.1b", "train-bf16true-b2-s2048-eager", **trn, batch_size=2, seq_len=2048, precision="bf16-true",
        attn_implementation="eager")
    add("tinyllama-1.1b", "train-bf16true-b2-s2048-gc", **trn, batch_size=2, seq_len=2048, precision="bf16-true",
        gradient_checkpointing=True)
    add("tinyllama-1.1b", "train-32true-b1-s1024", **trn, batch_size=1, seq_len=1024, precision="32-true")
    add("tinyllama-1.1b", "train-bf16true-b2-s1024-sgd", batch_size=2, seq_len=1024, task="training",
        precision="bf16-true", optimizer="sgd")
    add("tinyllama-1.1b", "train-bf16true-b2-s1024-accum2", **trn, batch_size=2, seq_len=1024,
        precision="bf16-true", gradient_accumulation_steps=2)
    add("gemma-2-2b", "inf-b1-s2048", **inf, batch_size=1, seq_len=2048, dtype="bfloat16")
    add("gemma-2-2b", "train-bf16true-b1-s1024", **trn, batch_size=1, seq_len=1024, precision="bf16-true")
    add("gemma-2-2b", "train-bf16true-b1-s1024-eager", **trn, batch_size=1, seq_len=1024, precision="bf16-true",
        attn_implementation="eager")
    add("mixtral-tiny-moe", "inf-b8-s512", **inf, batch_size=8, seq_len=512, dtype="bfloat16")
    add("mixtral-tiny-moe", "train-bf16mixed-b4-s1024", **trn, batch_size=4, seq_len=1024, precision="bf16-mixed")
    # 7B models: inference first, then training, heaviest last.
    add("llama-2-7b", "inf-b1-s512", **inf, batch_size=1, seq_len=512, dtype="float16")
    add("llama-2-7b", "inf-b8-s2048", **inf, batch_size=8, seq_len=2048, dtype="float16")
    add("mistral-7b-v0.1", "inf-b1-s2048", **inf, batch_size=1, seq_len=2048, dtype="bfloat16")
    add("mistral-7b-v0.1", "inf-b8-s512", **inf, batch_size=8, seq_len=512, dtype="bfloat16")
    add("qwen2.5-7b", "inf-b1-s2048", **inf, batch_size=1, seq_len=2048, dtype="bfloat16")
    add("qwen2.5-7b", "inf-b8-s512", **inf, batch_size=8, seq_len=512, dtype="bfloat16")
    add("llama-2-7b", "lora-r16-bf16true-b4-s1024", **trn, method="lora", batch_size=4, seq_len=1024,
        precision="bf16-true", dtype="bfloat16", lora_rank=16, lora_targets="q_proj,v_proj")
    add("llama-2-7b", "lora-r16-bf16true-b4-s1024-gc", **trn, method="lora", batch_size=4, seq_len=1024,
        precision="bf16-true", dtype="bfloat16", lora_rank=16, lora_targets="q_proj,v_proj", gradient_checkpointing=True)
    add("mistral-7b-v0.1", "lora-all-bf16true-b2-s2048-gc", **trn, method="lora", batch_size=2, seq_len=2048,
        precision="bf16-true", dtype="bfloat16", lora_rank=16,
        lora_targets="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", gradient_checkpointing=True)
    add("llama-2-7b", "train-bf16true-b1-s512", **trn, batch_size=1, seq_len=512, precision="bf16-true")
    add("llama-2-7b", "train-bf16true-b2-s2048-gc", **trn, batch_size=2, seq_len=2048, precision="bf16-true",
        gradient_checkpointing=True)
    add("qwen2.5-7b", "train-bf16true-b1-s1024", **trn, batch_size=1, seq_len=1024, precision="bf16-true")
    add("llama-2-7b", "train-bf16mixed-b1-s512", **trn, batch_size=1, seq_len=512, precision="bf16-mixed")
    return cases


def run_case(case_id: str, config: dict[str, Any], kwargs: dict[str, Any], *, device: str,
             guard_s: int) -> dict[str, Any]:
    from hf_gpu_estimator.runtime.measure import cleanup, measure_workload

    record: dict[str, Any] = {"case": case_id, "kind": "measure", "config": config.get("_source"),
                              "model_type": config["model_type"]}
    start = time.perf_counter()
    try:
        workload = make_workload(**kwargs)
        record["workload"] = workload.to_dict()
        signal.alarm(guard_s)
        try:
            record["measure"] = measure_workload(config, workload, device=device).to_dict()
        finally:
            signal.alarm(0)
    except Exception as e:  # noqa: BLE001 - an OOM or error is a result, the run goes on
        record["error"] = f"{type(e).__name__}: {e}"[:2000]
        record["oom"] = "OutOfMemoryError" in type(e).__name__ or "out of memory" in str(e)
        record["traceback"] = traceback.format_exc()[-3000:]
        cleanup()
    except CaseTimeout as e:
        record["error"] = f"CaseTimeout: {e}"
        cleanup()
    record["seconds"] = time.perf_counter() - start
    return record


def trace_case(case_id: str, config: dict[str, Any], kwargs: dict[str, Any], *, guard_s: int) -> dict[str, Any]:
    record: dict[str, Any] = {"case": case_id, "kind": "trace"}
    start = time.perf_counter()
    try:
        from hf_gpu_estimator.runtime.trace import trace_workload

        signal.alarm(guard_s)
        try:
            record["trace"] = trace_workload(config, make_workload(**kwargs)).to_dict()
        finally:
            signal.alarm(0)
    except (Exception, CaseTimeout) as e:  # noqa: BLE001
        record["trace_error"] = f"{type(e).__name__}: {e}"[:2000]
        record["traceback"] = traceback.format_exc()[-3000:]
    record["seconds"] = time.perf_counter() - start
    return record


def gib(value: Any) -> str:
    return f"{value / 2**30:8.2f}" if isinstance(value, (int, float)) else "       -"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true", help="a few small cases")
    parser.add_argument("--set", choices=("main", "extra"), default="main", help="which matrix (extra: second run)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--trace", action=argparse.BooleanOptionalAction, default=None,
                        help="also trace each case in exact mode (default: on for CUDA)")
    parser.add_argument("--budget-s", type=float, default=285.0, help="stop starting cases after this")
    parser.add_argument("--case-guard-s", type=int, default=60, help="per-case time guard")
    parser.add_argument("--only", default="", help="comma-separated substrings of case ids to run")
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available; pass --device cpu", file=sys.stderr)
        return 2
    trace = args.trace if args.trace is not None else args.device.startswith("cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_results.jsonl"
    signal.signal(signal.SIGALRM, _alarm)
    cases = extra_matrix() if args.set == "extra" else matrix(args.quick)
    if args.only:
        keys = [k for k in args.only.split(",") if k]
        cases = [c for c in cases if any(k in c[0] for k in keys)]
    from hf_gpu_estimator.runtime.measure import nvml_used_bytes, versions

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    traces: dict[str, dict[str, Any]] = {}
    with path.open("a", encoding="utf-8") as out:
        header = {"case": "_environment", "versions": versions(), "device": args.device,
                  "nvml_used_bytes_at_start": nvml_used_bytes() if args.device.startswith("cuda") else None,
                  "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
                  "device_total_bytes": torch.cuda.get_device_properties(0).total_memory
                  if args.device.startswith("cuda") else None}
        out.write(json.dumps(header) + "\n")
        out.flush()

        def config_for(name: str) -> dict[str, Any]:
            config = load_config(name)
            return tiny(config) if args.device == "cpu" else config

        # Pass 1: measurements (what only the GPU can give), light cases first.
        for case_id, name, kwargs in cases:
            elapsed = time.perf_counter() - started
            if elapsed > args.budget_s:
                record = {"case": case_id, "kind": "measure", "skipped": f"budget {args.budget_s:.0f}s spent"}
            else:
                guard = int(min(args.case_guard_s, max(5, args.budget_s - elapsed + 30)))
                record = run_case(case_id, config_for(name), kwargs, device=args.device, guard_s=guard)
            out.write(json.dumps(record, default=str) + "\n")
            out.flush()
            rows.append(record)
            m = record.get("measure", {})
            print(f"{case_id:55s} alloc {gib(m.get('allocated_peak_bytes'))} GiB  "
                  f"{record.get('error', record.get('skipped', ''))[:70]}", flush=True)
        # Pass 2: exact-mode traces of the same cases on this machine, while time remains.
        if trace:
            for case_id, name, kwargs in cases:
                elapsed = time.perf_counter() - started
                if elapsed > args.budget_s:
                    break
                guard = int(min(args.case_guard_s, max(5, args.budget_s - elapsed + 30)))
                record = trace_case(case_id, config_for(name), kwargs, guard_s=guard)
                out.write(json.dumps(record, default=str) + "\n")
                out.flush()
                traces[case_id] = record
                print(f"trace {case_id:49s} {gib(record.get('trace', {}).get('peak_bytes'))} GiB  "
                      f"{record.get('trace_error', '')[:70]}", flush=True)
    print(f"\n{len(rows)} cases in {time.perf_counter() - started:.0f} s -> {path}")
    print(f"{'case':55s} {'alloc GiB':>9s} {'resv GiB':>9s} {'trace GiB':>9s} {'prefill t/s':>11s} "
          f"{'decode t/s':>10s} {'train t/s':>10s}")
    for r in rows:
        m = r.get("measure", {})
        t = traces.get(r["case"], {}).get("trace", {})

        def num(key: str) -> str:
            v = m.get(key)
            return f"{v:10.0f}" if isinstance(v, (int, float)) else "         -"

        print(f"{r['case']:55s} {gib(m.get('allocated_peak_bytes'))} {gib(m.get('reserved_peak_bytes'))} "
              f"{gib(t.get('peak_bytes'))} {num('prefill_tokens_per_s')} {num('decode_tokens_per_s')} "
              f"{num('train_tokens_per_s')}" + ("  ERROR" if "error" in r else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
