"""What to change when a workload does not fit: each suggestion re-estimated and verified to fit a byte budget.

One search (:func:`search`) serves the CLI, the web app and the framework pre-flight checks
(:mod:`hf_gpu_estimator.integrations`); it is pure arithmetic over
:func:`~hf_gpu_estimator.memory.estimate_memory`. Callers only render it: the CLI shows ``flags``, the
integrations fill ``how`` from their own hint templates.

>>> from hf_gpu_estimator import estimate
>>> est = estimate("meta-llama/Llama-2-7b-hf", task="training", batch_size=4, seq_len=1024)
>>> [(s.key, s.flags) for s in suggest(est, "RTX-4090")]
[('combined', '--gradient-checkpointing --method lora'), ('combined', '--gradient-checkpointing --method qlora')]
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hf_gpu_estimator.errors import EstimatorError, IgnoredOptionWarning

if TYPE_CHECKING:
    from hf_gpu_estimator.estimator import Estimate
    from hf_gpu_estimator.hardware import GPU
    from hf_gpu_estimator.spec import ModelSpec
    from hf_gpu_estimator.workload import Workload

__all__ = ["CLI_FLAGS", "ChangeKind", "Suggestion", "search", "suggest", "suggestion_target"]

#: The kinds of change the search tries; the integrations map each to a "how to apply" template.
ChangeKind = Literal["batch_size", "gradient_checkpointing", "precision", "dtype", "method", "quantization",
                     "optimizer", "strategy", "offload", "num_gpus", "tp", "gpu_layers"]

#: The CLI flag for each workload keyword a suggestion changes (``{}`` is the new value).
CLI_FLAGS: Mapping[str, str] = {
    "batch_size": "--batch-size {}", "gradient_accumulation_steps": "--gradient-accumulation-steps {}",
    "gradient_checkpointing": "--gradient-checkpointing", "precision": "--precision {}", "dtype": "--dtype {}",
    "method": "--method {}", "quantization": "--quantization {}", "optimizer": "--optimizer {}",
    "num_gpus": "--num-gpus {}", "strategy": "--strategy {}", "tp": "--tp {}", "pp": "--pp {}",
    "offload_optimizer": "--offload-optimizer", "gpu_layers": "--gpu-layers {}",
}  # fmt: skip

#: Device counts tried by the "more devices" suggestion for training (inference uses the valid TP degrees).
_DEVICE_COUNTS = (2, 4, 8, 16, 32, 64)


@dataclass(frozen=True, kw_only=True)
class Suggestion:
    """One change to the workload, re-estimated and verified to fit.

    Attributes:
        key: the kind of change (a :data:`ChangeKind`), or ``combined`` when no single change fits
            and several are applied together.
        title: the change in words.
        options: the :func:`~hf_gpu_estimator.make_workload` keywords that change; apply them over
            the original keywords (a value of ``None`` means that keyword's default).
        changes: the kinds of change applied (``(key,)`` unless combined).
        workload: the changed workload.
        device_total_bytes: its re-estimated per-device total.
        device_total_high_bytes: the high end of that total's measured range (what was checked
            against the budget; see :mod:`hf_gpu_estimator.verdict`).
        flags: the CLI flags that apply it (``--method qlora``).
        how: how to apply it in the caller's framework; empty from :func:`search`, filled by the
            integrations' hint templates.
    """

    key: ChangeKind | Literal["combined"]
    title: str
    options: Mapping[str, Any]
    changes: tuple[ChangeKind, ...]
    workload: Workload
    device_total_bytes: int
    device_total_high_bytes: int
    flags: str
    how: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``suggestions`` entries of the JSON outputs."""
        return {"key": self.key, "title": self.title, "options": dict(self.options), "flags": self.flags,
                "device_total_bytes": self.device_total_bytes, "device_total_high_bytes": self.device_total_high_bytes,
                "how": self.how}


def _quiet_workload(options: Mapping[str, Any]) -> Workload:
    """make_workload without the ignored-options warning: the caller's own estimate gave it once."""
    from hf_gpu_estimator.workload import make_workload

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IgnoredOptionWarning)
        return make_workload(**options)


@dataclass(frozen=True)
class _Change:
    kind: ChangeKind
    title: str
    options: Mapping[str, Any]


def search(spec: ModelSpec, workload: Workload | Mapping[str, Any], *, budget_bytes: float,
           limit: int | None = None) -> tuple[Suggestion, ...]:
    """Changes that bring the per-device total of ``workload`` under ``budget_bytes``, cheapest first.

    Tried in order, each kept only if the high end of the re-estimated total's measured range
    (:func:`hf_gpu_estimator.verdict.uncertainty_for` of the changed workload) fits: the largest batch that fits
    (with gradient accumulation keeping the effective batch in training). Training: gradient
    checkpointing, bf16 (mixed, else pure), LoRA, QLoRA, 8-bit AdamW, ZeRO-3/FSDP sharding,
    optimizer offload, more devices. Inference: bfloat16 weights (from float32), int8 else nf4
    weights, tensor parallelism. When no single change fits a training run: checkpointing (and
    bf16-mixed from fp32) alone, with ZeRO-3, with LoRA, with QLoRA, each with the largest batch
    that then fits (two at most).

    Args:
        spec: the model.
        workload: the run, or the :func:`~hf_gpu_estimator.make_workload` keywords that build it
            (suggestion ``options`` apply over these).
        budget_bytes: the per-device bytes a suggestion's high end may use (the device after the margin).
        limit: stop after this many suggestions (``None``: all).

    Returns:
        The suggestions; ``()`` when nothing modeled fits.
    """
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.memory.llamacpp import is_llamacpp
    from hf_gpu_estimator.monotone import largest_true
    from hf_gpu_estimator.planner import valid_tp_degrees
    from hf_gpu_estimator.verdict import uncertainty_for
    from hf_gpu_estimator.workload import Workload

    if isinstance(workload, Workload):
        work, base = workload, workload.to_dict()
    else:
        base = dict(workload)
        work = _quiet_workload(base)
    normalized = work.to_dict()
    out: list[Suggestion] = []

    def verify(options: Mapping[str, Any]) -> tuple[Workload, int, int] | None:
        try:
            changed = _quiet_workload({**base, **options})
            total = estimate_memory(spec, changed, detail=False).device_total_bytes
        except EstimatorError:  # the change does not apply to this model/workload (e.g. no LoRA targets)
            return None
        high = uncertainty_for(changed).high_bytes(total)
        return (changed, total, high) if high <= budget_bytes else None

    def full() -> bool:
        return limit is not None and len(out) >= limit

    def add(changes: list[_Change], *, combined: bool = False) -> bool:
        options = {k: v for c in changes for k, v in c.options.items()}
        verified = verify(options)
        if verified is None:
            return False
        changed, total, high = verified
        flags = " ".join(CLI_FLAGS[k].format(v) for k, v in options.items()
                         if v is not None and normalized.get(k) != v and k in CLI_FLAGS)
        out.append(Suggestion(key="combined" if combined else changes[0].kind,
                              title=" + ".join(c.title for c in changes), options=options,
                              changes=tuple(dict.fromkeys(c.kind for c in changes)), workload=changed,
                              device_total_bytes=total, device_total_high_bytes=high, flags=flags))
        return True

    effective = work.batch_size * work.gradient_accumulation_steps

    def batch_change(b: int) -> _Change:
        if not work.is_training:
            return _Change("batch_size", f"batch size {b}", {"batch_size": b})
        steps = effective // b
        return _Change("batch_size", f"batch size {b} with gradient accumulation {steps} (effective batch {b} x "
                       f"{steps} = {effective}, as before)", {"batch_size": b, "gradient_accumulation_steps": steps})

    def largest_batch(changes: list[_Change], upper: int) -> int:
        """Largest batch in [1, upper] that fits with ``changes`` (memory grows with the batch); 0 if none.
        In training only a divisor of the effective batch, so that accumulation keeps it exactly."""
        def fits(b: int) -> bool:
            options = {k: v for c in changes for k, v in c.options.items()}
            return verify({**options, "batch_size": b}) is not None

        best = largest_true(fits, 1, upper)
        if work.is_training:
            best = max((d for d in range(1, best + 1) if effective % d == 0), default=0)
        return best

    # Single changes; within a tuple, the first alternative that fits is kept.
    singles: list[tuple[_Change, ...]] = []
    p = work.parallelism
    checkpointing = _Change("gradient_checkpointing", "gradient checkpointing", {"gradient_checkpointing": True})
    if work.is_training:
        if not work.gradient_checkpointing:
            singles.append((checkpointing,))
        if work.precision.name == "32-true":
            singles.append((_Change("precision", "bf16 mixed precision", {"precision": "bf16-mixed"}),
                            _Change("precision", "pure bf16 weights (bf16-true)", {"precision": "bf16-true"})))
        elif work.precision.name in ("16-mixed", "bf16-mixed") and work.method == "full":
            singles.append((_Change("precision", "pure bf16 weights and optimizer states (bf16-true)",
                                    {"precision": "bf16-true"}),))
        lora = _Change("method", "LoRA adapters (frozen base)", {"method": "lora"})
        # quantization None: the method's default (NF4 for QLoRA)
        qlora = _Change("method", "QLoRA (4-bit NF4 base + LoRA)", {"method": "qlora", "quantization": None})
        if work.method == "full":
            singles.append((lora,))
        if work.method in ("full", "lora"):
            singles.append((qlora,))
        if work.optimizer.name in ("adamw", "adam", "adamw-torch2.0", "adam-torch2.0"):
            singles.append((_Change("optimizer", "8-bit AdamW (bitsandbytes)", {"optimizer": "adamw-8bit"}),))
        sharded = p.strategy in ("zero3", "fsdp")
        zero3 = _Change("strategy", "ZeRO-3 / FSDP full sharding of weights, gradients and optimizer states",
                        {"strategy": "zero3"})
        if p.num_gpus > 1 and not sharded:
            singles.append((zero3,))
        if p.num_gpus > 1 and p.strategy != "none" and not p.offload_optimizer:
            singles.append((_Change("offload", "offload the optimizer states to CPU memory"
                                    + (" (ZeRO-3)" if p.strategy == "ddp" else ""),
                                    {"strategy": p.strategy if p.strategy != "ddp" else "zero3", "offload_optimizer": True}),))
        strategy = p.strategy if sharded or p.strategy == "fsdp-hybrid" else "zero3"
        singles.append(tuple(_Change("num_gpus", f"{n} devices with {'FSDP/ZeRO-3' if strategy == 'zero3' else strategy} "
                                                 f"sharding", {"num_gpus": n, "strategy": strategy})
                             for n in _DEVICE_COUNTS if n > p.num_gpus))
    elif is_llamacpp(spec, work.quantization):
        # llama.cpp: the most layers that fit on the GPU (-ngl), the rest in host memory
        layers = spec.architecture.num_layers + 1 if spec.architecture is not None else 0
        top = layers if work.gpu_layers is None else min(work.gpu_layers, layers)
        ngl = largest_true(lambda n: verify({"gpu_layers": n}) is not None, 1, top - 1) if top > 1 else 0
        if ngl >= 1:
            singles.append((_Change("gpu_layers", f"offload {ngl} of {layers} layers to the GPU (-ngl {ngl}), the "
                                    "rest from host memory (slower decode)", {"gpu_layers": ngl}),))
    else:
        if (work.dtype or spec.stored_dtype) == "float32":
            singles.append((_Change("dtype", "load the weights in bfloat16", {"dtype": "bfloat16"}),))
        if work.quantization == "none":
            singles.append((_Change("quantization", "8-bit weights (bitsandbytes int8)", {"quantization": "int8"}),
                            _Change("quantization", "4-bit weights (bitsandbytes nf4)", {"quantization": "nf4"})))
        singles.append(tuple(_Change("tp", f"{n} GPUs with tensor parallelism", {"num_gpus": n, "tp": n, "pp": 1})
                             for n in valid_tp_degrees(spec.architecture) if n > p.num_gpus))

    if work.batch_size > 1:
        best = largest_batch([], work.batch_size - 1)
        if best >= 1:
            add([batch_change(best)])
    for alternatives in singles:
        if full():
            break
        for change in alternatives:
            if add([change]):
                break
    if out or not work.is_training:
        return tuple(out)

    # No single change fits: combine the cheap ones (no change of method first), then LoRA, QLoRA.
    light = [] if work.gradient_checkpointing else [checkpointing]
    if work.precision.name == "32-true":
        light.append(_Change("precision", "bf16 mixed precision", {"precision": "bf16-mixed"}))
    combos = [light] if light else []
    if p.num_gpus > 1 and p.strategy not in ("zero3", "fsdp"):
        combos.append([*light, zero3])
    if work.method == "full":
        combos.append([*light, lora])
    if work.method in ("full", "lora"):
        combos.append([*light, qlora])
    found = 0
    for combo in combos:
        if found >= 2 or full():
            break
        best = largest_batch(combo, work.batch_size)
        if best >= 1 and add(combo + ([batch_change(best)] if best != work.batch_size else []), combined=True):
            found += 1
    return tuple(out)


def suggest(est: Estimate, gpu: str | GPU | None = None, *, limit: int = 3, margin: float | None = None) -> tuple[Suggestion, ...]:
    """Up to ``limit`` changes that make ``est`` fit ``gpu``, cheapest first; ``()`` when it already fits.

    The :func:`search` over ``est``'s workload with the GPU's usable memory less ``margin`` (the
    verdict's limit), so each suggestion's verdict is "fits".
    """
    from hf_gpu_estimator.constants import DEFAULT_MARGIN

    verdict = est.verdict(gpu, margin=DEFAULT_MARGIN if margin is None else margin)
    if verdict.fits:
        return ()
    # the workload as it runs on that GPU (its own MXFP4 and bf16 support), from the one fit
    return search(est.spec, verdict.workload or est.workload, budget_bytes=verdict.limit_bytes, limit=limit)


def suggestion_target(est: Estimate, gpus: tuple[GPU, ...]) -> GPU | None:
    """The GPU worth suggesting changes for: the asked one (``estimate(gpu=...)``) when it does not fit,
    else the largest of ``gpus`` that does not fit (the smallest step up); ``None`` when all fit."""
    if est.gpu is not None:
        return None if est.fits() else est.gpu
    missing = [g for g in gpus if not est.fits(g)]
    return max(missing, key=lambda g: g.usable_memory_bytes) if missing else None
