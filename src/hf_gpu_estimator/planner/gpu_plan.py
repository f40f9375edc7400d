"""``hfge plan``: everything the planner knows about one workload on one GPU type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hf_gpu_estimator.cost import hourly_cost_usd
from hf_gpu_estimator.errors import InfeasiblePlanError, InvalidArgumentError, MissingGPUDataError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory import estimate_memory
from hf_gpu_estimator.memory.overhead import device_total_on
from hf_gpu_estimator.perf import InferenceSpeed, TrainingSpeed, inference_speed, training_speed
from hf_gpu_estimator.planner._search import DEFAULT_MARGIN, _usable, fp16_fallback
from hf_gpu_estimator.planner.engines import (
    ENGINES,
    ServingCapacity,
    default_engine,
    engine_capacity,
    unsupported_engine,
)
from hf_gpu_estimator.planner.fits import max_batch_size, max_seq_len
from hf_gpu_estimator.planner.parallel import Parallelization, min_gpus
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Parallelism, Workload


@dataclass(frozen=True, kw_only=True)
class Plan:
    """``hfge plan``: what fits on one GPU type, the serving capacity, speed and cost when known.

    ``min_gpus`` is ``None`` (with a note) when nothing tried fits.
    """

    gpu: GPU
    workload: Workload
    fits: bool
    device_total_bytes: int
    max_batch_size: int
    max_seq_len: int
    min_gpus: Parallelization | None
    serving: ServingCapacity | None
    speed: InferenceSpeed | TrainingSpeed | None
    hourly_usd: float | None
    usd_per_million_output_tokens: float | None
    notes: tuple[str, ...]
    assumptions: tuple[str, ...]
    #: The split the speed, cost and serving figures are for: the workload's own when it fits, else the
    #: smallest that does; ``None`` when nothing fits (then those figures are absent).
    runs_on: Parallelism | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of DESIGN.md (``hfge plan --format json``)."""
        out: dict[str, Any] = {
            "gpu": self.gpu.to_dict(),
            "workload": self.workload.to_dict(),
            "fits": self.fits,
            "device_total_bytes": self.device_total_bytes,
            "max_batch_size": self.max_batch_size,
            "max_seq_len": self.max_seq_len,
            "min_gpus": self.min_gpus.num_gpus if self.min_gpus else None,
            "min_gpus_plan": self.min_gpus.to_dict() if self.min_gpus else None,
        }
        if self.serving is not None:
            out["serving"] = self.serving.to_dict()
        if self.speed is not None:
            out["speed"] = self.speed.to_dict()
        if self.runs_on is not None:
            out["runs_on"] = {"num_gpus": self.runs_on.num_gpus, "tp": self.runs_on.tp, "pp": self.runs_on.pp,
                              "strategy": self.runs_on.strategy}
        out["cost"] = {"hourly_usd": self.hourly_usd, "usd_per_million_output_tokens": self.usd_per_million_output_tokens}
        out["notes"] = list(self.notes)
        out["assumptions"] = list(self.assumptions)
        return out

    def __repr__(self) -> str:
        return (f"Plan({self.gpu.name!r}, fits={self.fits}, device_total={self.device_total_bytes / (1 << 30):.2f} GiB, "
                f"max_batch_size={self.max_batch_size}, max_seq_len={self.max_seq_len})")

    def _repr_markdown_(self) -> str:  # notebooks: the CLI's table
        from hf_gpu_estimator.report import plan_sections, render_sections

        return render_sections(plan_sections(self), "markdown")

    def _repr_html_(self) -> str:
        from hf_gpu_estimator.report import plan_sections, render_sections

        return render_sections(plan_sections(self), "html")


def plan(spec: ModelSpec, workload: Workload, gpu: GPU, *,
         gpu_memory_utilization: float | None = None, max_model_len: int | None = None,
         margin: float = DEFAULT_MARGIN, engine: str | None = None, vllm_version: str | None = None,
         engine_settings: Mapping[str, Any] | None = None) -> Plan:
    """Everything the planner knows about ``workload`` on ``gpu`` (the workload's own GPU count and split).

    When the workload does not fit its own split, speed, cost and serving capacity are those of the
    smallest configuration that does (:func:`min_gpus`), with a note; never figures for a device
    that cannot run it. Missing GPU data (no FLOP/s figure, no price) leaves speed or cost out with a
    note instead of failing.

    Args:
        engine: Serving engine for the capacity answer (``vllm``, ``sglang``, ``llama.cpp``, ``transformers``);
            default :func:`~hf_gpu_estimator.planner.engines.default_engine` (llama.cpp for GGUF, else vLLM).
        vllm_version: ``X.Y`` of vLLM (``engine="vllm"``); default the newest modelled.
        engine_settings: Further engine flags (SGLang ``mem_fraction_static``; llama.cpp ``ctx_size``,
            ``parallel``, ``n_gpu_layers``; vLLM ``max_num_seqs`` ...).
    """
    if engine is None:
        engine = default_engine(spec, workload)
    if engine not in ENGINES:
        raise InvalidArgumentError("engine", engine, "one of " + ", ".join(ENGINES))
    workload, fallback = fp16_fallback(spec, workload, gpu)
    est = estimate_memory(spec, workload)
    device_total = device_total_on(est, gpu)
    fits = device_total <= _usable(gpu, margin)
    notes: list[str] = [fallback] if fallback else []
    assumptions: list[str] = list(est.assumptions)
    try:
        needed: Parallelization | None = min_gpus(spec, workload, gpu, margin=margin)
    except InfeasiblePlanError as e:
        needed = None
        notes.append(str(e))
    run = workload
    if not fits and needed is not None and needed.num_gpus > workload.parallelism.num_gpus:
        run = needed.workload
        notes.append(f"does not fit {workload.parallelism.num_gpus} x {gpu.name}; the smallest configuration that "
                     f"does is {needed.description}: speed and cost below are for it (the serving engine's answer is "
                     f"for the {workload.parallelism.num_gpus} GPU(s) asked)")
    serving = None
    speed: InferenceSpeed | TrainingSpeed | None = None
    hourly = per_million = None
    n = run.parallelism.num_gpus
    runnable = fits or run is not workload
    no_backend = unsupported_engine(engine, gpu)
    if no_backend and not run.is_training:
        notes.append(no_backend)
    # The engine answers at the split asked (DESIGN: never swapped silently): it says itself whether it
    # would start, and the analytic estimate's margin is not vLLM's profile run.
    if not workload.is_training and spec.architecture is not None and not no_backend:
        settings: dict[str, Any] = dict(engine_settings or {})
        if engine == "vllm":
            settings.update(gpu_memory_utilization=gpu_memory_utilization, vllm_version=vllm_version)
        if engine in ("vllm", "sglang", "transformers"):
            settings.setdefault("max_model_len", max_model_len)
        if engine == "llama.cpp":
            settings.setdefault("n_gpu_layers", workload.gpu_layers)  # --gpu-layers is llama.cpp's -ngl
        serving = engine_capacity(spec, workload, gpu, engine=engine, **settings)
        assumptions += serving.assumptions
        if serving.problem:
            notes.append(serving.problem)
    try:
        if spec.architecture is not None and runnable:
            speed = training_speed(spec, run, gpu) if run.is_training else inference_speed(spec, run, gpu)
            assumptions += speed.assumptions
    except MissingGPUDataError as e:
        notes.append(f"no speed estimate: {e}")
    try:
        if runnable:
            hourly = hourly_cost_usd(gpu, n)
            if isinstance(speed, InferenceSpeed):
                per_million = hourly / (speed.decode_tokens_per_s * 3600) * 1e6
                assumptions.append("$ per million output tokens at the workload's batch, decoding continuously")
    except MissingGPUDataError as e:
        notes.append(f"no cost: {e}")
    return Plan(gpu=gpu, workload=workload, fits=fits, device_total_bytes=device_total,
                max_batch_size=max_batch_size(spec, workload, gpu, margin=margin),
                max_seq_len=max_seq_len(spec, workload, gpu, margin=margin), min_gpus=needed, serving=serving,
                speed=speed, hourly_usd=hourly, usd_per_million_output_tokens=per_million, notes=tuple(notes),
                assumptions=tuple(dict.fromkeys(assumptions)), runs_on=run.parallelism if runnable else None)
