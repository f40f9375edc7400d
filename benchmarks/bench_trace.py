"""Exact-mode speed: the naive trace vs ours, on a Llama-2-7B-sized training step.

    .venv/bin/python benchmarks/bench_trace.py [--config benchmarks/configs/llama-2-7b.json]

Workload: bf16-true, AdamW, batch 1, seq 512, two optimizer steps. "naive" builds the model on
fake tensors with transformers' default weight initialization and traces with the stock
``MemTracker`` (per-module peak snapshots on every operator); "ours" is
:func:`hf_gpu_estimator.runtime.trace.trace_workload` (initialization skipped, the lighter peak update;
a second call reuses the cached fake model). Prints seconds, the ratio, the peaks (which
must agree) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))


def naive(config: dict, workload) -> tuple[float, int]:
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from hf_gpu_estimator.runtime.build import build_model
    from hf_gpu_estimator.runtime.phases import prepare_training, run_training
    from hf_gpu_estimator.runtime.trace import fake_device
    from hf_gpu_estimator.runtime.trace.cuda import CudaSemantics
    from hf_gpu_estimator.runtime.trace.tracker import round_all_devices

    start = time.perf_counter()
    device = fake_device()
    fake = FakeTensorMode()
    built = build_model(config, workload, device=device, init="default", fake_mode=fake)
    model = built.model
    tracker = MemTracker()

    class Hooks:
        def phase(self, name):
            import contextlib

            if name.startswith("forward"):
                tracker.reset_mod_stats()
            return contextlib.nullcontext()

        def setup(self, name):
            import contextlib

            return contextlib.nullcontext()

    with round_all_devices(), fake:
        optimizer, _ = prepare_training(model, workload)
        tracker.track_external(model, optimizer)
        with CudaSemantics(), tracker:
            run_training(model, optimizer, workload, Hooks(), device=device)
    peak = sum(tracker.get_tracker_snapshot("peak")[d]["Total"] for d in tracker.get_tracker_snapshot("peak"))
    del torch
    return time.perf_counter() - start, peak


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "llama-2-7b.json")
    args = parser.parse_args()
    from hf_gpu_estimator.runtime.trace import clear_cache, trace_workload
    from hf_gpu_estimator.workload import make_workload

    config = json.loads(args.config.read_text())
    workload = make_workload(task="training", batch_size=1, seq_len=512, precision="bf16-true", optimizer="adamw")
    naive_s, naive_peak = naive(config, workload)
    clear_cache()
    t0 = time.perf_counter()
    ours = trace_workload(config, workload)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = trace_workload(config, workload)
    again_s = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"naive : {naive_s:6.2f} s  peak {naive_peak / 2**30:.3f} GiB")
    print(f"ours  : {ours_s:6.2f} s  peak {ours.peak_bytes / 2**30:.3f} GiB  (cached model: {again_s:.2f} s)")
    print(f"ratio : {naive_s / ours_s:.2f}x faster (cached: {naive_s / again_s:.2f}x); peak RSS {rss:.0f} MiB")
    if naive_peak != ours.peak_bytes or again.peak_bytes != ours.peak_bytes:
        print("WARNING: peaks differ", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
