"""Shared pieces of the planner's searches: margins, search bounds, monotone search, argument checks."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU, get_gpu, list_gpus
from hf_gpu_estimator.memory import estimate_memory
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload

#: Share of the device memory kept free by the fit searches (same default as ``Estimate.fits``).
DEFAULT_MARGIN = 0.05
#: Tensor-parallel degrees tried inside one node (8 GPUs per node).
TP_DEGREES: tuple[int, ...] = (1, 2, 4, 8)
#: Pipeline stages tried across nodes (one node of tp=8 per stage).
PP_DEGREES: tuple[int, ...] = (1, 2, 4, 8, 16)
#: Data-parallel GPU counts tried for training.
TRAINING_GPU_COUNTS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: Largest batch / sequence length the searches go to when nothing else caps them.
SEARCH_CAP = 1 << 20


def _usable(gpu: GPU, margin: float) -> float:
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin < 0.5:
        raise InvalidArgumentError("margin", margin, "a number from 0 to 0.5")
    return gpu.usable_memory_bytes * (1 - margin)


def _fits(spec: ModelSpec, workload: Workload, gpu: GPU, margin: float) -> bool:
    return estimate_memory(spec, workload, detail=False).device_total_bytes <= _usable(gpu, margin)


def _largest(ok: Callable[[int], bool], low: int, high: int) -> int:
    """Largest ``x`` in ``[low, high]`` with ``ok(x)`` for a monotone (true, then false) ``ok``; ``low - 1`` if none."""
    if high < low or not ok(low):
        return low - 1
    good = low
    probe = low
    while True:  # exponential search for the first failure
        nxt = min(probe * 2, high)
        if nxt == probe:
            return good
        if not ok(nxt):
            bad = nxt
            break
        good = probe = nxt
        if good == high:
            return good
    while bad - good > 1:  # binary search between the last success and the first failure
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good



def _gib(nbytes: float | None) -> str:
    return "?" if nbytes is None else f"{nbytes / (1 << 30):.1f} GiB"



@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A GPU type left out of a ranking, and why."""

    gpu: str
    reason: str



def _positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise InvalidArgumentError(name, value, "a positive number")
    return float(value)


def _positive_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(name, value, "an integer >= 1")
    return value



def _gpu_list(gpus: Iterable[str | GPU] | None) -> list[GPU]:
    return list(list_gpus()) if gpus is None else [get_gpu(g) for g in gpus]

