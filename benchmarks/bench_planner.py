"""Time the planner over the whole GPU catalog against one analytic estimate.

Run from the repository root (offline, no GPU needed):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_planner.py [MODEL]

It prints the time of one ``estimate_memory`` call, of ``plan()`` on every catalog GPU (fit
searches, vLLM serving capacity, speed, cost), of ``cheapest_serving`` over the catalog, and the
ratios. Goal: the whole-catalog planner under 0.5 s for a cached model.
"""

from __future__ import annotations

import sys
import time

from hf_gpu_estimator.hardware import list_gpus
from hf_gpu_estimator.memory import estimate_memory
from hf_gpu_estimator.planner import cheapest_serving, plan
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.workload import make_workload


def _best_of(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(model: str = "meta-llama/Llama-3.1-8B") -> None:
    spec = lookup(model)
    work = make_workload(seq_len=1024, new_tokens=256)
    gpus = list_gpus()
    one = _best_of(lambda: estimate_memory(spec, work), 50)
    catalog = _best_of(lambda: [plan(spec, work, g) for g in gpus], 3)
    cheapest = _best_of(lambda: cheapest_serving(spec, work, request_rate_per_s=5, input_tokens=1024,
                                                 output_tokens=256, tpot_ms=50), 3)
    print(f"model {model}, {len(gpus)} catalog GPUs")
    print(f"one analytic estimate:        {one * 1e3:8.3f} ms")
    print(f"plan() on every catalog GPU:  {catalog * 1e3:8.1f} ms  ({catalog / one:,.0f}x one estimate)")
    print(f"cheapest_serving (catalog):   {cheapest * 1e3:8.1f} ms  ({cheapest / one:,.0f}x one estimate)")
    print("goal: < 500 ms each:", "met" if max(catalog, cheapest) < 0.5 else "MISSED")


if __name__ == "__main__":
    main(*sys.argv[1:2])
