"""Analytic estimates per second for a cached ModelSpec, and `hfge estimate` cold start vs `import torch`.

Run: .venv/bin/python benchmarks/bench_estimate.py
Goal (issue 3): >= 20,000 estimates/s; cold start reported as a ratio against `python -c "import torch"`
measured in the same run. Prints one line per figure; exit status 1 when the rate goal is missed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time


def rate(seconds: float = 2.0) -> tuple[float, float]:
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.sources.catalog import lookup
    from hf_gpu_estimator.workload import make_workload

    spec = lookup("meta-llama/Llama-2-7b-hf")
    workloads = [make_workload(task="training", precision="bf16-mixed", batch_size=b, seq_len=2048,
                               gradient_checkpointing=True) for b in (1, 2, 4, 8)]
    workloads += [make_workload(batch_size=b, seq_len=1024, new_tokens=256) for b in (1, 8)]
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for w in workloads:
            estimate_memory(spec, w, detail=False)
        n += len(workloads)
    training_inference = n / (time.perf_counter() - start)
    # Sweep-style: batch varies each call (the planner's search).
    base = workloads[0]
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for b in range(1, 65):
            estimate_memory(spec, base.with_(batch_size=b), detail=False)
        n += 64
    return training_inference, n / (time.perf_counter() - start)


def cold(cmd: list[str], runs: int = 3) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    mixed, sweep = rate()
    print(f"analytic estimates/s (cached Llama-2-7B spec, mixed workloads): {mixed:,.0f}")
    print(f"analytic estimates/s (batch sweep, as the planner searches):     {sweep:,.0f}")
    py = sys.executable
    hfge = cold([py, "-m", "hf_gpu_estimator", "estimate", "meta-llama/Llama-2-7b-hf", "--format", "json"])
    torch = cold([py, "-c", "import torch"])
    print(f"cold start: hfge estimate {hfge * 1000:.0f} ms, import torch {torch * 1000:.0f} ms, "
          f"ratio {hfge / torch:.2f}")
    return 0 if min(mixed, sweep) >= 20_000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
