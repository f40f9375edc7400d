"""The dtypes a workload builds and runs the model in, and an in-place floating-point cast."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.errors import TraceError
from hf_gpu_estimator.workload import Workload

if TYPE_CHECKING:
    import torch


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a canonical dtype name ('bfloat16' → torch.bfloat16)."""
    import torch

    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise TraceError(f"unknown torch dtype {name!r}")
    return dtype


def weight_dtype(config: Mapping[str, Any], workload: Workload) -> str:
    """The dtype the model's weights are built in.

    Inference: ``workload.dtype``, else the config's ``dtype``/``torch_dtype``, else float32
    (what ``from_config`` gives without a dtype). Training: the precision's parameter dtype
    (Lightning: ``bf16-mixed`` keeps float32 weights, ``bf16-true`` bfloat16 ones); the frozen
    base of LoRA takes ``workload.dtype`` when given.
    """
    from hf_gpu_estimator.workload import normalize_dtype

    if workload.is_training:
        if workload.method != "full":
            # The frozen base of LoRA is loaded in the compute dtype (from_pretrained(dtype=bf16)),
            # as the analytic model assumes (memory/weights.py plan_weights).
            return workload.dtype or workload.precision.compute_dtype
        return workload.precision.param_dtype
    if workload.dtype is not None:
        return workload.dtype
    stored = config.get("dtype") or config.get("torch_dtype")
    if stored is None or stored == "auto":
        return "float32"
    return normalize_dtype("config dtype", stored)


def compute_dtype(workload: Workload, weights: str) -> str:
    """The dtype activations are computed in: the precision's for training, the weights' otherwise."""
    return workload.precision.compute_dtype if workload.is_training else weights


def cast_floating_(module: Any, dtype: torch.dtype) -> None:
    """Cast ``module``'s floating parameters and buffers to ``dtype`` in place, like ``module.to(dtype)``.

    ``Module.to`` goes through ``Module._apply``, which swaps every FakeTensor parameter with
    ``torch.utils.swap_tensors`` (even one already in ``dtype``), and a swap refuses a tensor
    with a weakref: the fake-tensor converter memo, MemTracker or autograd may hold one, so
    ``.to`` fails on fake tensors with "_apply(): Couldn't swap ...". Here only tensors whose
    dtype differs are replaced, by new Parameters (tied parameters stay tied), and nothing
    is swapped. On real tensors the result equals ``module.to(dtype)``.
    """
    import torch

    cast: dict[int, tuple[Any, Any]] = {}  # id → (original, cast); the original kept alive so ids stay unique

    def converted(t: Any, make: Callable[[Any], Any]) -> Any:
        hit = cast.get(id(t))
        if hit is None:
            with torch.no_grad():
                hit = cast[id(t)] = (t, make(t))
        return hit[1]

    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None and param.is_floating_point() and param.dtype != dtype:
                sub._parameters[name] = converted(
                    param, lambda p: torch.nn.Parameter(p.to(dtype), requires_grad=p.requires_grad))
        for name, buf in list(sub._buffers.items()):
            if buf is not None and buf.is_floating_point() and buf.dtype != dtype:
                sub._buffers[name] = converted(buf, lambda b: b.to(dtype))
