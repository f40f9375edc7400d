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
from dataclasses import dataclass, field

from hf_gpu_estimator.errors import InfeasiblePlanError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory import estimate_memory
from hf_gpu_estimator.memory.overhead import device_total_on
from hf_gpu_estimator.planner._search import (
    DEFAULT_MARGIN,
    PP_DEGREES,
    TP_DEGREES,
    TRAINING_GPU_COUNTS,
    _gib,
    _usable,
)
from hf_gpu_estimator.spec import Architecture, ModelSpec
from hf_gpu_estimator.workload import Parallelism, Workload


@dataclass(frozen=True, kw_only=True)
class Parallelization:
    """How many GPUs of one type a workload needs, and how it is split.

    Attributes:
        num_gpus: GPUs in total.
        tp, pp: Tensor- and pipeline-parallel degrees.
        strategy: Training strategy (``none``, ``ddp``, ``zero2``, ``zero3``).
        offload_optimizer: ZeRO-3 with the optimizer states in CPU memory.
        device_total_bytes: Estimated per-device memory of the chosen split.
        workload: The workload with this parallelism.
        description: One line, e.g. ``"2 x A100-80GB-SXM, tensor parallel 2"``.
    """

    num_gpus: int
    tp: int = 1
    pp: int = 1
    strategy: str = "none"
    offload_optimizer: bool = False
    device_total_bytes: int
    workload: Workload = field(repr=False)
    description: str

    def to_dict(self) -> dict[str, object]:
        return {"num_gpus": self.num_gpus, "tp": self.tp, "pp": self.pp, "strategy": self.strategy,
                "offload_optimizer": self.offload_optimizer, "device_total_bytes": self.device_total_bytes,
                "description": self.description}


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


def _inference_candidates(spec: ModelSpec) -> list[tuple[int, int]]:
    tps = valid_tp_degrees(spec.architecture)
    layers = spec.architecture.num_layers if spec.architecture is not None else 1
    pairs = [(tp, 1) for tp in tps]
    widest = max(tps)
    pairs += [(widest, pp) for pp in PP_DEGREES if 1 < pp <= layers]
    return sorted(set(pairs), key=lambda p: (p[0] * p[1], p[1]))


def _training_candidates() -> list[tuple[int, str, bool]]:
    out: list[tuple[int, str, bool]] = [(1, "none", False)]
    for n in TRAINING_GPU_COUNTS[1:]:
        out += [(n, "ddp", False), (n, "zero2", False), (n, "zero3", False), (n, "zero3", True)]
    return out


def min_gpus(spec: ModelSpec, workload: Workload, gpu: GPU, *, margin: float = DEFAULT_MARGIN) -> Parallelization:
    """The fewest GPUs of type ``gpu`` that hold ``workload``, and the split that makes it fit.

    Inference tries tensor parallel 1, 2, 4, 8 (degrees that divide the heads) inside a node,
    then pipeline stages of 8-GPU nodes. Training tries 1 GPU, then for 2, 4, 8, ... GPUs the
    strategies ``ddp`` -> ``zero2`` -> ``zero3`` -> ``zero3`` + optimizer offload, and reports the
    first (fewest GPUs, simplest strategy) that fits.

    Raises:
        InfeasiblePlanError: Nothing tried fits; the message says what stays too large.
    """
    usable = _usable(gpu, margin)
    best_total: int | None = None
    if not workload.is_training:
        for tp, pp in _inference_candidates(spec):
            w = workload.with_(parallelism=Parallelism(num_gpus=tp * pp, tp=tp, pp=pp))
            total = device_total_on(estimate_memory(spec, w, detail=False), gpu)
            best_total = total if best_total is None else min(best_total, total)
            if total <= usable:
                how = ", ".join(x for x in (f"tensor parallel {tp}" if tp > 1 else "",
                                            f"pipeline parallel {pp}" if pp > 1 else "") if x) or "one GPU"
                return Parallelization(num_gpus=tp * pp, tp=tp, pp=pp, device_total_bytes=total, workload=w,
                                       description=f"{tp * pp} x {gpu.name}, {how}")
        largest = max(_inference_candidates(spec), key=lambda p: p[0] * p[1])
        raise InfeasiblePlanError(
            f"{spec.id} does not fit {gpu.name} even at tensor parallel {largest[0]} x pipeline parallel {largest[1]} "
            f"({largest[0] * largest[1]} GPUs): {_gib(best_total)} per device needed, {_gib(usable)} usable; "
            "use a quantization (--quantization fp8/awq-4bit), a shorter --seq-len or a larger GPU",
            reasons=(f"smallest per-device total {best_total} B > usable {int(usable)} B",))
    last_components: Mapping[str, int] = {}
    for n, strategy, offload in _training_candidates():
        w = workload.with_(parallelism=Parallelism(num_gpus=n, strategy=strategy,  # type: ignore[arg-type]
                                                   offload_optimizer=offload))
        est = estimate_memory(spec, w)
        total = device_total_on(est, gpu)
        if best_total is None or total < best_total:
            best_total, last_components = total, est.components
        if total <= usable:
            how = strategy + (" + optimizer offload" if offload else "") if n > 1 else "one GPU"
            return Parallelization(num_gpus=n, strategy=strategy, offload_optimizer=offload, device_total_bytes=total,
                                   workload=w, description=f"{n} x {gpu.name}, {how}")
    act = last_components.get("activations", 0) + last_components.get("transient", 0)
    raise InfeasiblePlanError(
        f"{spec.id} training does not fit {gpu.name} even on {TRAINING_GPU_COUNTS[-1]} GPUs with zero3 + optimizer "
        f"offload: {_gib(best_total)} per device needed, {_gib(usable)} usable, of which activations "
        f"{_gib(act)} do not shrink with more GPUs; use --gradient-checkpointing, a smaller --batch-size or "
        "--seq-len, or LoRA/QLoRA",
        reasons=(f"activations + transient {act} B per device",))

