"""Shared pieces of the planner's searches: margins, search bounds, monotone search, argument checks."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from hf_gpu_estimator.constants import DEFAULT_MARGIN  # noqa: F401  (the searches' default margin)
from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU, get_gpu, list_gpus
from hf_gpu_estimator.monotone import largest_true as _largest  # noqa: F401  (the planner's searches)
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload

#: Tensor-parallel degrees tried inside one node (8 GPUs per node).
TP_DEGREES: tuple[int, ...] = (1, 2, 4, 8)
#: Pipeline stages tried across nodes (one node of tp=8 per stage).
PP_DEGREES: tuple[int, ...] = (1, 2, 4, 8, 16)
#: Data-parallel GPU counts tried for training.
TRAINING_GPU_COUNTS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: Largest batch / sequence length the searches go to when nothing else caps them.
SEARCH_CAP = 1 << 20


def _gib(nbytes: float | None) -> str:
    return "?" if nbytes is None else f"{nbytes / (1 << 30):.1f} GiB"


#: Why a GPU type was left out of a ranking (the closing line counts them by kind).
SKIP_KINDS: dict[str, str] = {
    "no_price": "no price", "no_backend": "no backend for the engine", "does_not_fit": "does not start or fit",
    "target": "misses the latency target", "no_data": "no figures for the speed", "deadline": "misses the deadline",
    "other": "other reasons",
}


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A GPU type left out of a ranking, and why.

    Attributes:
        kind: One of :data:`SKIP_KINDS` (counted in the closing line; never parsed from ``reason``).
        value_ms: The latency floor behind a ``target`` skip (in ms).
        metric: Which latency a ``target`` skip misses (``"tpot"`` or ``"ttft"``).
    """

    gpu: str
    reason: str
    kind: str = "other"
    value_ms: float | None = None
    metric: str | None = None


def skipped_line(skipped: Iterable[Skipped], *, verbose: bool = False) -> str | None:
    """One line on what a ranking left out, by kind (``--verbose`` lists them)."""
    items = list(skipped)
    if not items:
        return None
    counts: dict[str, int] = {}
    for s in items:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    parts = ", ".join(f"{n} {SKIP_KINDS.get(k, k)}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"skipped {len(items)} GPU types ({parts})" + ("" if verbose else "; --verbose lists them")



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



def lacks_bf16(gpu: GPU) -> bool:
    """Whether a bf16 run cannot run on ``gpu``: a CUDA device whose catalog entry gives an fp16 rate
    but no bf16 one (T4, V100: compute capability below 8.0, where torch.cuda.is_bf16_supported() is
    False). An entry with neither rate is unknown, not this."""
    return gpu.runtime == "cuda" and not gpu.supports_bf16 and gpu.peak_flops.get("fp16") is not None


def fp16_fallback(spec: ModelSpec, workload: Workload, gpu: GPU) -> tuple[Workload, str | None]:
    """``workload`` in fp16 where it computes in bf16 on a device that cannot (or publishes no bf16
    rate: Apple GPUs, where llama.cpp and MLX run fp16), and a note; else unchanged.

    Inference casts the weights to fp16 (``--dtype float16``); training switches ``bf16-mixed`` to
    ``16-mixed`` and ``bf16-true`` to ``16-true`` (fp16 needs loss scaling, which Lightning's
    ``16-mixed`` applies). The memory is the same (both are 2 bytes); the speed uses the fp16 rate.
    """
    from hf_gpu_estimator.memory.weights import plan_weights
    from hf_gpu_estimator.workload import PRECISIONS

    apple = gpu.runtime == "metal" and not gpu.supports_bf16 and gpu.peak_flops.get("fp16") is not None
    if not (lacks_bf16(gpu) or apple) or plan_weights(spec, workload).compute_dtype != "bfloat16":
        return workload, None
    why = (f"{gpu.name} publishes no bf16 rate (llama.cpp and MLX run fp16 there)" if apple
           else f"{gpu.name} has no bf16")
    if not workload.is_training:
        return workload.with_(dtype="float16"), f"{why}: planned in fp16 (--dtype float16)"
    precision = PRECISIONS["16-true" if workload.precision.name == "bf16-true" else "16-mixed"]
    changed = workload.with_(precision=precision,
                             dtype="float16" if workload.dtype == "bfloat16" else workload.dtype)
    return changed, (f"{why}: planned with --precision {precision.name} instead of {workload.precision.name} "
                     "(fp16 with loss scaling)")
