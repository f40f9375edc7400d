"""The fewest GPUs of one type that hold a workload, and the tensor/pipeline/data-parallel split.

>>> from hf_gpu_estimator.sources.catalog import lookup
>>> from hf_gpu_estimator.workload import make_workload
>>> from hf_gpu_estimator.hardware import get_gpu
>>> spec, work = lookup("meta-llama/Llama-2-7b-hf"), make_workload(seq_len=1024, new_tokens=256)
>>> min_gpus(spec, work, get_gpu("RTX-4090")).num_gpus
1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from hf_gpu_estimator.errors import InfeasiblePlanError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.planner._search import (
    DEFAULT_MARGIN,
    PP_DEGREES,
    TP_DEGREES,
    TRAINING_GPU_COUNTS,
    _gib,
)
from hf_gpu_estimator.planner.deployment import Deployment, fit
from hf_gpu_estimator.spec import Architecture, ModelSpec
from hf_gpu_estimator.workload import Workload

if TYPE_CHECKING:
    from hf_gpu_estimator.verdict import Verdict


@dataclass(frozen=True, kw_only=True)
class Parallelization:
    """How many GPUs of one type a workload needs, and how it is split.

    Attributes:
        num_gpus: GPUs in total.
        tp, pp: Tensor- and pipeline-parallel degrees.
        strategy: Training strategy (``none``, ``ddp``, ``zero2``, ``zero3``).
        offload_optimizer: ZeRO-3 with the optimizer states in CPU memory.
        device_total_bytes: Estimated per-device memory of the chosen split (the verdict's needs).
        workload: The workload with this parallelism.
        description: One line, e.g. ``"2 x A100-80GB-SXM, tensor parallel 2"``.
        verdict: The :func:`~hf_gpu_estimator.planner.deployment.fit` verdict of this split (its
            deployment, serving capacity and launch command).
    """

    num_gpus: int
    tp: int = 1
    pp: int = 1
    strategy: str = "none"
    offload_optimizer: bool = False
    device_total_bytes: int
    workload: Workload = field(repr=False)
    description: str
    verdict: Verdict | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "num_gpus": self.num_gpus, "tp": self.tp, "pp": self.pp, "strategy": self.strategy,
            "offload_optimizer": self.offload_optimizer, "device_total_bytes": self.device_total_bytes,
            "description": self.description}
        if self.verdict is not None and self.verdict.launch is not None:
            out["launch"] = self.verdict.launch.command
        return out


def valid_tp_degrees(arch: Architecture | None) -> tuple[int, ...]:
    """Tensor-parallel degrees that split the heads evenly (vLLM requires ``num_attention_heads % tp == 0``;
    KV heads are split when divisible and replicated when fewer than ``tp``)."""
    if arch is None:
        return (1,)
    out = []
    for tp in TP_DEGREES:
        kv = arch.num_key_value_heads
        if arch.num_attention_heads % tp == 0 and (kv % tp == 0 or tp % kv == 0 or arch.is_mla):
            out.append(tp)
    return tuple(out)


def _inference_candidates(spec: ModelSpec, engine: str | None = None) -> list[tuple[int, int]]:
    """``(tp, pp)`` splits to try, fewest GPUs first. llama.cpp splits layers (``--split-mode layer``):
    its candidates are GPU counts, as pipeline stages."""
    layers = spec.architecture.num_layers if spec.architecture is not None else 1
    if engine == "llama.cpp":
        return [(1, n) for n in (1, *PP_DEGREES[1:4]) if n <= layers]
    tps = valid_tp_degrees(spec.architecture)
    pairs = [(tp, 1) for tp in tps]
    widest = max(tps)
    pairs += [(widest, pp) for pp in PP_DEGREES if 1 < pp <= layers]
    return sorted(set(pairs), key=lambda p: (p[0] * p[1], p[1]))


def _training_candidates() -> list[tuple[int, str, bool]]:
    out: list[tuple[int, str, bool]] = [(1, "none", False)]
    for n in TRAINING_GPU_COUNTS[1:]:
        out += [(n, "ddp", False), (n, "zero2", False), (n, "zero3", False), (n, "zero3", True)]
    return out


def split_description(d: Deployment) -> str:
    """``"2 x H100-SXM-80GB, tensor parallel 2"`` (llama.cpp: ``"layers split over 2 GPUs"``)."""
    if d.engine == "llama.cpp":
        how = f"layers split over {d.devices} GPUs (--tensor-split)" if d.devices > 1 else "one GPU"
    else:
        how = ", ".join(x for x in (f"tensor parallel {d.tp}" if d.tp > 1 else "",
                                    f"pipeline parallel {d.pp}" if d.pp > 1 else "") if x) or "one GPU"
    return f"{d.devices} x {d.gpu.name}, {how}"


def min_gpus(spec: ModelSpec, workload: Workload, gpu: GPU | Deployment, *,
             margin: float = DEFAULT_MARGIN) -> Parallelization:
    """The fewest GPUs of type ``gpu`` on which :func:`~hf_gpu_estimator.planner.deployment.fit` says
    "fits", and the split.

    ``gpu`` may be a :class:`Deployment`: its engine and settings (``max_model_len`` ...) are kept and
    only the split changes, so a serving engine is searched until it starts at the requested context.
    Inference tries tensor parallel 1, 2, 4, 8 (degrees that divide the heads) inside a node, then
    pipeline stages of 8-GPU nodes (llama.cpp: 1, 2, 4, 8 GPUs splitting the layers). Training
    tries 1 GPU, then for 2, 4, 8, ... GPUs the strategies ``ddp`` -> ``zero2`` -> ``zero3`` ->
    ``zero3`` + optimizer offload, and reports the first (fewest GPUs, simplest strategy) that fits.

    Raises:
        InfeasiblePlanError: Nothing tried fits; the message says what stays too large.
    """
    base = gpu if isinstance(gpu, Deployment) else Deployment(gpu=gpu, margin=margin)
    device = base.gpu
    smallest: Verdict | None = None
    if not workload.is_training:
        engine = base.engine
        for tp, pp in _inference_candidates(spec, engine):
            d = base.with_(tp=tp, pp=pp, num_gpus=None)
            try:
                v = fit(spec, workload, d)
            except InfeasiblePlanError:
                continue
            if smallest is None or v.needs_high_bytes < smallest.needs_high_bytes:
                smallest = v
            if v.fits:
                return Parallelization(num_gpus=tp * pp, tp=tp, pp=pp, device_total_bytes=v.needs_bytes,
                                       workload=v.workload or workload, description=split_description(d), verdict=v)
        largest = max(_inference_candidates(spec, engine), key=lambda p: p[0] * p[1])
        why = f"; {smallest.problem}" if smallest is not None and smallest.problem else ""
        raise InfeasiblePlanError(
            f"{spec.id} does not fit {device.name} even at tensor parallel {largest[0]} x pipeline parallel "
            f"{largest[1]} ({largest[0] * largest[1]} GPUs): "
            f"{_gib(smallest.needs_high_bytes if smallest else None)} per device needed, "
            f"{_gib(smallest.limit_bytes if smallest else None)} usable{why}; use a quantization "
            "(--quantization fp8/awq-4bit), a shorter --seq-len or --max-model-len, or a larger GPU",
            reasons=(f"smallest per-device need {smallest.needs_high_bytes if smallest else None} B",))
    last_components: Mapping[str, int] = {}
    for n, strategy, offload in _training_candidates():
        w = workload.with_(parallelism=replace(workload.parallelism, offload_optimizer=offload))
        d = base.with_(num_gpus=n, strategy=strategy, tp=1, pp=1)
        v = fit(spec, w, d)
        if smallest is None or v.needs_high_bytes < smallest.needs_high_bytes:
            smallest = v
        if v.fits:
            how = strategy + (" + optimizer offload" if offload else "") if n > 1 else "one GPU"
            return Parallelization(num_gpus=n, strategy=strategy, offload_optimizer=offload,
                                   device_total_bytes=v.needs_bytes, workload=v.workload or w,
                                   description=f"{n} x {device.name}, {how}", verdict=v)
    if smallest is not None and smallest.workload is not None:
        from hf_gpu_estimator.memory import estimate_memory

        last_components = estimate_memory(spec, smallest.workload, detail=False).components
    act = last_components.get("activations", 0) + last_components.get("transient", 0)
    raise InfeasiblePlanError(
        f"{spec.id} training does not fit {device.name} even on {TRAINING_GPU_COUNTS[-1]} GPUs with zero3 + optimizer "
        f"offload: {_gib(smallest.needs_high_bytes if smallest else None)} per device needed, "
        f"{_gib(smallest.limit_bytes if smallest else None)} usable, of which activations "
        f"{_gib(act)} do not shrink with more GPUs; use --gradient-checkpointing, a smaller --batch-size or "
        "--seq-len, or LoRA/QLoRA",
        reasons=(f"activations + transient {act} B per device",))
