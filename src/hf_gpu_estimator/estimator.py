"""The one-liner: ``estimate(model, **workload) -> Estimate``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.constants import DEFAULT_MARGIN
from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.memory import MemoryEstimate, estimate_memory
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload, workload_from_kwargs

if TYPE_CHECKING:
    from hf_gpu_estimator.hardware import GPU

@dataclass(frozen=True, kw_only=True)
class Estimate:
    """The result of :func:`estimate`: the model, the normalized workload, memory per device."""

    spec: ModelSpec
    workload: Workload
    memory: MemoryEstimate
    gpu: GPU | None = None
    mode: str = "analytic"
    assumptions: tuple[str, ...] = field(default=())

    @property
    def trainable_parameters(self) -> int:
        from hf_gpu_estimator.memory.weights import plan_weights

        if self.spec.architecture is None or not self.workload.is_training:
            return 0
        return plan_weights(self.spec, self.workload).trainable_params

    def fits(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> bool:
        """Whether the per-device total (what nvidia-smi would show) fits ``gpu`` with ``margin`` to spare.

        Args:
            gpu: a catalog name or GPU; default the ``gpu=`` given to :func:`estimate`.
            margin: share of the device memory left free (0 to 0.5).
        """
        target = self._gpu(gpu)
        if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin < 0.5:
            raise InvalidArgumentError("margin", margin, "a number from 0 to 0.5")
        return self.memory.device_total_bytes <= target.usable_memory_bytes * (1 - margin)

    def headroom_bytes(self, gpu: str | GPU | None = None) -> int:
        """Device memory left (negative: missing) on ``gpu`` after this workload."""
        return self._gpu(gpu).usable_memory_bytes - self.memory.device_total_bytes

    def max_batch_size(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> int:
        """The largest per-device batch of this workload that fits ``gpu`` (see :func:`planner.max_batch_size`)."""
        from hf_gpu_estimator.planner import max_batch_size

        return max_batch_size(self.spec, self.workload, self._gpu(gpu), margin=margin)

    def max_seq_len(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> int:
        """The longest sequence (training) or prompt (inference) that fits ``gpu`` (see :func:`planner.max_seq_len`)."""
        from hf_gpu_estimator.planner import max_seq_len

        return max_seq_len(self.spec, self.workload, self._gpu(gpu), margin=margin)

    def min_gpus(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> int:
        """The fewest GPUs of type ``gpu`` that hold this workload (see :func:`planner.min_gpus` for the split).

        Raises:
            InfeasiblePlanError: Nothing tried fits.
        """
        from hf_gpu_estimator.planner import min_gpus

        return min_gpus(self.spec, self.workload, self._gpu(gpu), margin=margin).num_gpus

    def _gpu(self, gpu: str | GPU | None) -> GPU:
        from hf_gpu_estimator.hardware import get_gpu

        if gpu is None:
            if self.gpu is None:
                raise InvalidArgumentError("gpu", None, "a GPU name (estimate(..., gpu=...) or fits('A100-80GB'))")
            return self.gpu
        return get_gpu(gpu)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of DESIGN.md."""
        spec = self.spec
        arch = spec.architecture
        model: dict[str, Any] = {
            "id": spec.id,
            "parameters": spec.parameters.total,
            "trainable_parameters": self.trainable_parameters,
            "active_parameters": spec.parameters.active,
            "parameters_by_role": dict(spec.parameters.by_role),
            "stored_dtype": spec.stored_dtype,
            "model_type": arch.model_type if arch else None,
            "provenance": dict(spec.provenance),
        }
        if spec.source_url:
            model["source"] = spec.source_url
        out: dict[str, Any] = {
            "model": model,
            "workload": self.workload.to_dict(),
            "mode": self.mode,
            "memory": self.memory.to_dict(),
            "assumptions": list(self.assumptions),
        }
        if self.gpu is not None:
            out["gpu"] = {"name": self.gpu.name, "usable_memory_bytes": self.gpu.usable_memory_bytes,
                          "fits": self.fits(), "headroom_bytes": self.headroom_bytes()}
        return out

    def plot(self, path: str | os.PathLike[str] | None = None, *,
             gpus: Sequence[str | GPU] = ("RTX-4090", "A100-80GB", "H100-SXM-80GB")) -> Any:
        """A stacked bar of the memory components against the capacity of ``gpus`` (needs the ``[plot]`` extra).

        Args:
            path: where to save a PNG; ``None`` returns the matplotlib Figure instead.
            gpus: GPU catalog names drawn as capacity lines (the estimate's own ``gpu=`` is added).

        Returns:
            The saved path, or the Figure when ``path`` is ``None``.
        """
        from hf_gpu_estimator.plots import memory_bar

        names = list(gpus)
        if self.gpu is not None and self.gpu.name not in names:
            names.append(self.gpu)
        return memory_bar(self, path=path, gpus=names)

    def __str__(self) -> str:
        from hf_gpu_estimator.report import render_table

        return render_table(self)


def estimate(model: Any, *, gpu: str | GPU | None = None, revision: str | None = None, token: str | None = None,
             mode: str = "analytic", calibration: Any = None, **workload: Any) -> Estimate:
    """Estimate the GPU memory ``model`` needs for a workload.

    Args:
        model: a Hub id, a local path, a config dict, a ``PretrainedConfig``, a ModelSpec or a live
            ``torch.nn.Module``.
        gpu: a GPU catalog name to check against (``est.fits()``); a calibration measured on that
            GPU (see :mod:`hf_gpu_estimator.calibration`) then sets the reserved and CUDA-context overheads.
        revision, token: for Hub ids.
        mode: ``"analytic"`` (default, pure arithmetic) or ``"exact"`` (trace the real transformers
            code on fake tensors; needs the ``torch`` extra).
        calibration: a calibrated device name ("NVIDIA H200") or a ``DeviceCalibration`` to take the
            non-tensor overheads from; ``None`` (default): the ``gpu``'s calibration if there is one;
            ``False``: never. It never changes the tensor terms.
        **workload: the CLI's options as keywords: task, method, batch_size, seq_len, new_tokens,
            dtype, precision, optimizer, gradient_checkpointing, attn_implementation, quantization,
            lora_rank, lora_targets, num_gpus, strategy, tp, pp, ...

    Returns:
        An :class:`Estimate`; ``print(est)`` shows a table, ``est.to_dict()`` the JSON contract.

    Example:
        >>> est = estimate("meta-llama/Llama-2-7b-hf", batch_size=1, seq_len=512, new_tokens=64)
        >>> est.memory.components["weights"] == 6_738_415_616 * 2
        True
    """
    from hf_gpu_estimator.sources import inspect_model

    if mode not in ("analytic", "exact"):
        raise InvalidArgumentError("mode", mode, "'analytic' or 'exact'")
    spec = inspect_model(model, revision=revision, token=token)
    work = workload_from_kwargs(workload)
    resolved_gpu = None
    if gpu is not None:
        from hf_gpu_estimator.hardware import get_gpu

        resolved_gpu = get_gpu(gpu)
    memory = estimate_memory(spec, work)
    if resolved_gpu is not None and resolved_gpu.context_bytes is not None:
        memory = _with_device_context(memory, resolved_gpu)
    assumptions = (*spec.assumptions, *memory.assumptions)
    if mode == "exact":
        from hf_gpu_estimator.exact import exact_memory

        memory, extra = exact_memory(spec, work, analytic=memory)
        assumptions = (*spec.assumptions, *memory.assumptions, *extra)
    if calibration is not None or resolved_gpu is not None:
        from hf_gpu_estimator.calibration import apply_calibration, resolve_calibration

        device_calibration = resolve_calibration(calibration, resolved_gpu)
        if device_calibration is not None:
            memory, assumptions = apply_calibration(memory, work, device_calibration, assumptions)
    return Estimate(spec=spec, workload=work, memory=memory, gpu=resolved_gpu, mode=mode, assumptions=assumptions)


def _with_device_context(memory: MemoryEstimate, gpu: GPU) -> MemoryEstimate:
    """``memory`` with the device runtime's own context in place of the CUDA default (Apple: none)."""
    from hf_gpu_estimator.memory.overhead import device_total_on, runtime_context_bytes

    context = runtime_context_bytes(gpu)
    note = (f"device total = reserved + {gpu.runtime} runtime context {context >> 20} MiB "
            f"({gpu.name} has no CUDA context; catalog context_bytes)")
    kept = tuple(a for a in memory.assumptions if not a.startswith("device total = reserved"))
    return replace(memory, device_total_bytes=device_total_on(memory, gpu), cuda_context_bytes=context,
                   assumptions=(*kept, note))
