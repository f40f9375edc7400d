"""What to change when a workload does not fit a GPU: each suggestion re-estimated and verified to fit.

Pure arithmetic over :func:`~hf_gpu_estimator.memory.estimate_memory` and
:func:`~hf_gpu_estimator.planner.max_batch_size`; the CLI, the web app and the plots only render it.

>>> from hf_gpu_estimator import estimate
>>> est = estimate("meta-llama/Llama-2-7b-hf", task="training", batch_size=4, seq_len=1024)
>>> [s.key for s in suggest(est, "RTX-4090")]
['lora', 'qlora']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hf_gpu_estimator.errors import EstimatorError

if TYPE_CHECKING:
    from hf_gpu_estimator.estimate import Estimate
    from hf_gpu_estimator.hardware import GPU
    from hf_gpu_estimator.workload import Workload

__all__ = ["Suggestion", "suggest", "suggestion_target"]


@dataclass(frozen=True, kw_only=True)
class Suggestion:
    """One change to the workload that fits the GPU once re-estimated.

    Attributes:
        key: the kind of change: ``batch_size``, ``gradient_checkpointing``, ``lora``, ``qlora``,
            ``quantization``, ``tensor_parallel``.
        title: the change in words.
        flags: the CLI flags that apply it (``--gradient-checkpointing``).
        workload: the changed workload.
        device_total_bytes: its re-estimated per-device total.
    """

    key: str
    title: str
    flags: str
    workload: Workload
    device_total_bytes: int


def suggest(est: Estimate, gpu: str | GPU | None = None, *, limit: int = 3, margin: float | None = None) -> tuple[Suggestion, ...]:
    """Up to ``limit`` single changes that make ``est`` fit ``gpu``, cheapest first; ``()`` when it already fits.

    Tried in order: the largest batch that fits (:func:`planner.max_batch_size`, with gradient
    accumulation keeping the effective batch in training), gradient checkpointing, LoRA, QLoRA,
    then checkpointing together with LoRA or QLoRA; for inference, int8 or nf4 weights and tensor
    parallelism over 2-8 GPUs. A change is kept only if the re-estimated total fits.
    """
    from hf_gpu_estimator.estimate import DEFAULT_MARGIN
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.planner import max_batch_size, valid_tp_degrees
    from hf_gpu_estimator.workload import Parallelism

    target = est._gpu(gpu)
    margin = DEFAULT_MARGIN if margin is None else margin
    if est.fits(target, margin=margin):
        return ()
    budget = target.usable_memory_bytes * (1 - margin)
    spec, work = est.spec, est.workload
    out: list[Suggestion] = []

    def add(key: str, title: str, flags: str, changed: Workload) -> bool:
        if len(out) >= limit:
            return False
        try:
            total = estimate_memory(spec, changed).device_total_bytes
        except EstimatorError:  # the change does not apply to this model (e.g. no LoRA targets)
            return False
        if total > budget:
            return False
        out.append(Suggestion(key=key, title=title, flags=flags, workload=changed, device_total_bytes=total))
        return True

    if work.batch_size > 1:
        best = min(max_batch_size(spec, work, target, margin=margin), work.batch_size - 1)
        if best >= 1:
            steps = math.ceil(work.batch_size * work.gradient_accumulation_steps / best)
            title, flags = f"batch size {best}", f"--batch-size {best}"
            if work.is_training:
                title += f" with gradient accumulation {steps}"
                flags += f" --gradient-accumulation-steps {steps}"
            add("batch_size", title, flags, work.with_(batch_size=best, gradient_accumulation_steps=steps))
    if work.is_training:
        gc = work.gradient_checkpointing
        if not gc:
            add("gradient_checkpointing", "gradient checkpointing", "--gradient-checkpointing",
                work.with_(gradient_checkpointing=True))
        if work.method == "full":
            add("lora", "LoRA adapters (frozen base)", "--method lora", work.with_(method="lora"))
        if work.method in ("full", "lora"):
            add("qlora", "QLoRA (4-bit NF4 base + LoRA)", "--method qlora",
                work.with_(method="qlora", quantization="nf4"))
        if not gc and not out:  # no single change fits: checkpointing together with a lighter method
            if work.method == "full":
                add("lora", "LoRA + gradient checkpointing", "--method lora --gradient-checkpointing",
                    work.with_(method="lora", gradient_checkpointing=True))
            if work.method in ("full", "lora"):
                add("qlora", "QLoRA + gradient checkpointing", "--method qlora --gradient-checkpointing",
                    work.with_(method="qlora", quantization="nf4", gradient_checkpointing=True))
    else:
        if work.quantization == "none":
            if not add("quantization", "8-bit weights (bitsandbytes int8)", "--quantization int8",
                       work.with_(quantization="int8")):
                add("quantization", "4-bit weights (bitsandbytes nf4)", "--quantization nf4",
                    work.with_(quantization="nf4"))
        p = work.parallelism
        for n in valid_tp_degrees(spec.architecture):
            if n > p.num_gpus and add("tensor_parallel", f"{n} GPUs with tensor parallelism",
                                      f"--num-gpus {n} --tp {n}",
                                      work.with_(parallelism=Parallelism(num_gpus=n, tp=n, pp=1))):
                break
    return tuple(out)


def suggestion_target(est: Estimate, gpus: tuple[GPU, ...]) -> GPU | None:
    """The GPU worth suggesting changes for: the asked one (``estimate(gpu=...)``) when it does not fit,
    else the largest of ``gpus`` that does not fit (the smallest step up); ``None`` when all fit."""
    if est.gpu is not None:
        return None if est.fits() else est.gpu
    missing = [g for g in gpus if not est.fits(g)]
    return max(missing, key=lambda g: g.usable_memory_bytes) if missing else None
