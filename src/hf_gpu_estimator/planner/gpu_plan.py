"""``hfge plan``: everything the planner knows about one workload on one GPU type.

Every answer on the page comes from :func:`~hf_gpu_estimator.planner.deployment.fit` on one
:class:`~hf_gpu_estimator.planner.deployment.Deployment`: fits, max batch (the engine's concurrency
for a serving engine), max length, min GPUs (the split searched with the same engine and context),
and the launch command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hf_gpu_estimator.cost import hourly_cost_usd
from hf_gpu_estimator.errors import InfeasiblePlanError, InvalidArgumentError, MissingGPUDataError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.perf import InferenceSpeed, TrainingSpeed, inference_speed, training_speed
from hf_gpu_estimator.planner._search import DEFAULT_MARGIN
from hf_gpu_estimator.planner.deployment import (
    Deployment,
    Launch,
    fit,
    known_by_memory_only,
    largest_gpu_layers,
)
from hf_gpu_estimator.planner.engines import ENGINES, ServingCapacity, default_engine
from hf_gpu_estimator.planner.engines.llamacpp import HOST_MEMORY_KEY
from hf_gpu_estimator.planner.fits import max_batch_size, max_seq_len
from hf_gpu_estimator.planner.parallel import Parallelization, min_gpus
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.verdict import Verdict
from hf_gpu_estimator.workload import Parallelism, Workload


@dataclass(frozen=True, kw_only=True)
class Plan:
    """``hfge plan``: what fits on one GPU type, the serving capacity, speed and cost when known.

    ``min_gpus`` is ``None`` (with a note) when nothing tried fits. ``verdict`` is the one
    :func:`~hf_gpu_estimator.planner.deployment.fit` answer for the deployment asked (its tp/pp, never
    swapped); ``launch`` its command when it fits.
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
    #: The split the speed and cost figures are for: the deployment's own when it fits, else the
    #: smallest that does; ``None`` when nothing fits (then those figures are absent).
    runs_on: Parallelism | None = None
    verdict: Verdict | None = None
    deployment: Deployment | None = None

    @property
    def launch(self) -> Launch | None:
        return self.verdict.launch if self.verdict is not None and self.fits else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of DESIGN.md (``hfge plan --format json``)."""
        out: dict[str, Any] = {
            "gpu": self.gpu.to_dict(),
            "workload": self.workload.to_dict(),
            "fits": self.fits,
            "verdict": self.verdict.verdict if self.verdict is not None else ("fits" if self.fits else "does not fit"),
            "device_total_bytes": self.device_total_bytes,
            "max_batch_size": self.max_batch_size,
            "max_seq_len": self.max_seq_len,
            "min_gpus": self.min_gpus.num_gpus if self.min_gpus else None,
            "min_gpus_plan": self.min_gpus.to_dict() if self.min_gpus else None,
        }
        if self.deployment is not None:
            out["deployment"] = self.deployment.to_dict()
        if self.serving is not None:
            out["serving"] = self.serving.to_dict()
        if self.speed is not None:
            out["speed"] = self.speed.to_dict()
        if self.runs_on is not None:
            out["runs_on"] = {"num_gpus": self.runs_on.num_gpus, "tp": self.runs_on.tp, "pp": self.runs_on.pp,
                              "strategy": self.runs_on.strategy}
        out["cost"] = {"hourly_usd": self.hourly_usd, "usd_per_million_output_tokens": self.usd_per_million_output_tokens}
        launch = self.launch
        out["launch"] = launch.command if launch is not None else None
        out["launch_args"] = launch.to_dict() if launch is not None else None
        out["notes"] = list(self.notes)
        out["assumptions"] = list(self.assumptions)
        return out

    def __repr__(self) -> str:
        word = self.verdict.verdict if self.verdict is not None else ("fits" if self.fits else "does not fit")
        return (f"Plan({self.gpu.name!r}, {word!r}, device_total={self.device_total_bytes / (1 << 30):.2f} GiB, "
                f"max_batch_size={self.max_batch_size}, max_seq_len={self.max_seq_len})")

    def _repr_markdown_(self) -> str:  # notebooks: the CLI's table
        from hf_gpu_estimator.report import plan_sections, render_sections

        return render_sections(plan_sections(self), "markdown")

    def _repr_html_(self) -> str:
        from hf_gpu_estimator.report import plan_sections, render_sections

        return render_sections(plan_sections(self), "html")


#: ``engine=`` for no serving engine: the framework itself (transformers on the device, as ``estimate``
#: sizes it); what a plan falls back to where the default engine has no backend (vLLM on an Apple GPU).
FRAMEWORK = "none"


def deployment_of(spec: ModelSpec, workload: Workload, gpu: GPU, *, engine: str | None = None,
                  gpu_memory_utilization: float | None = None, max_model_len: int | None = None,
                  margin: float = DEFAULT_MARGIN, vllm_version: str | None = None,
                  engine_settings: Mapping[str, Any] | None = None, free_memory_bytes: int | None = None) -> Deployment:
    """The :class:`Deployment` the planner's arguments describe (the workload's own split)."""
    p = workload.parallelism
    settings = dict(engine_settings or {})
    if workload.is_training:
        return Deployment(gpu=gpu, tp=p.tp, pp=p.pp, num_gpus=p.num_gpus, strategy=p.strategy, margin=margin,
                          free_memory_bytes=free_memory_bytes)
    if engine == FRAMEWORK:  # the framework itself, no serving engine
        return Deployment(gpu=gpu, tp=p.tp, pp=p.pp, num_gpus=p.num_gpus, margin=margin,
                          free_memory_bytes=free_memory_bytes)
    if engine is None:
        engine = default_engine(spec, workload)
    if engine not in ENGINES:
        raise InvalidArgumentError("engine", engine, "one of " + ", ".join(ENGINES))
    version = vllm_version or settings.pop("vllm_version", None)
    if engine == "vllm":
        from hf_gpu_estimator.planner.engines.vllm import resolve_vllm_version

        version = resolve_vllm_version(version).version
    sglang_version = settings.pop("sglang_version", None)
    if engine == "sglang":
        from hf_gpu_estimator.planner.engines.sglang import resolve_sglang_version

        version = ".".join(map(str, resolve_sglang_version(sglang_version)[1]))
    ngl = settings.pop("n_gpu_layers", None)
    if ngl is None and engine == "llama.cpp":
        ngl = workload.gpu_layers
    return Deployment(gpu=gpu, engine=engine, engine_version=version,  # type: ignore[arg-type]
                      tp=p.tp, pp=p.pp, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                      n_gpu_layers=ngl, margin=margin, free_memory_bytes=free_memory_bytes, **settings)


def _context_that_starts(spec: ModelSpec, workload: Workload, d: Deployment, v: Verdict,
                         notes: list[str]) -> tuple[Deployment, Verdict]:
    """With no ``--max-model-len``, an engine sizes for the model's whole context; when that would not
    start but the workload's own length would, plan the longest context that starts (said in a note)."""
    cap = v.serving
    if v.fits or cap is None or d.max_model_len is not None or d.ctx_size is not None or d.engine == "llama.cpp":
        return d, v
    needed = workload.seq_len + workload.new_tokens
    longest = cap.largest_max_model_len
    if longest < needed:
        return d, v
    shorter = d.with_(max_model_len=longest)
    w = fit(spec, workload, shorter)
    if not w.fits:
        return d, v
    notes.append(f"without --max-model-len {cap.engine} sizes for the model's {cap.max_model_len:,} tokens and would "
                 f"not start ({v.problem}); planned with --max-model-len {longest:,}, the longest that starts")
    return shorter, w


def _llamacpp_layers(spec: ModelSpec, workload: Workload, d: Deployment, v: Verdict,
                     notes: list[str]) -> tuple[Deployment, Verdict]:
    """llama.cpp with every layer not fitting and no ``-ngl`` asked: the most layers that fit, the rest
    in host memory (said in a note, with the weights left on the host)."""
    if v.fits or d.engine != "llama.cpp" or d.n_gpu_layers is not None or d.fit_params:
        return d, v
    found = largest_gpu_layers(spec, workload, d)
    if found is None:
        return d, v
    ngl, w = found
    cap = w.serving
    layers = spec.architecture.num_layers + 1 if spec.architecture is not None else ngl
    host = next((a.text for a in w.assumptions if a.key == HOST_MEMORY_KEY), "")
    notes.append(f"all {layers} layers do not fit {d.gpu.name}; -ngl {ngl} of {layers} does, the rest run from host "
                 f"memory ({host or 'their weights and KV cache in RAM'}): every token reads the host layers at the "
                 "CPU's memory bandwidth, so decode is slower than on the GPU alone (not modelled)"
                 + (f"; KV cache {cap.kv_cache_tokens:,} tokens" if cap is not None else ""))
    return d.with_(n_gpu_layers=ngl), w


def plan(spec: ModelSpec, workload: Workload, gpu: GPU, *,
         gpu_memory_utilization: float | None = None, max_model_len: int | None = None,
         margin: float = DEFAULT_MARGIN, engine: str | None = None, vllm_version: str | None = None,
         engine_settings: Mapping[str, Any] | None = None, free_memory_bytes: int | None = None) -> Plan:
    """Everything the planner knows about ``workload`` on ``gpu`` (the workload's own GPU count and split).

    Inference is judged with a serving engine (``engine``; default llama.cpp for GGUF, else vLLM),
    training as the framework runs it. The verdict is the deployment's own (the tp/pp asked, never
    swapped); when it does not fit, ``min_gpus`` is the smallest split that does with the same engine
    and context, and speed and cost are for it (with a note). Missing GPU data (no FLOP/s figure, no
    price) leaves speed or cost out with a note instead of failing.

    Args:
        engine: Serving engine (``vllm``, ``sglang``, ``llama.cpp``, ``transformers``).
        vllm_version: ``X.Y`` of vLLM (``engine="vllm"``); default the newest modelled.
        engine_settings: Further engine flags (SGLang ``mem_fraction_static``; llama.cpp ``ctx_size``,
            ``parallel``, ``n_gpu_layers``, ``flash_attn``; vLLM ``max_num_seqs`` ...).
        free_memory_bytes: What the device reports free (a shared GPU).
    """
    notes: list[str] = []
    if engine is None and not workload.is_training:
        from hf_gpu_estimator.planner.engines import unsupported_engine

        no_backend = unsupported_engine(default_engine(spec, workload), gpu)
        if no_backend:  # vLLM on an Apple GPU: judged as transformers runs there (MPS), with the note
            notes.append(no_backend)
            engine = FRAMEWORK
    d = deployment_of(spec, workload, gpu, engine=engine, gpu_memory_utilization=gpu_memory_utilization,
                      max_model_len=max_model_len, margin=margin, vllm_version=vllm_version,
                      engine_settings=engine_settings, free_memory_bytes=free_memory_bytes)
    v = fit(spec, workload, d)
    d, v = _context_that_starts(spec, workload, d, v, notes)
    searched = d  # min GPUs: every layer on the GPUs (llama.cpp), the context asked
    d, v = _llamacpp_layers(spec, workload, d, v, notes)
    run_work = v.workload or workload
    notes += [a.text for a in v.assumptions if a.key == "fp16_fallback"]
    assumptions: list[str] = [a.text for a in v.assumptions if a.key != "fp16_fallback"]
    try:
        needed: Parallelization | None = min_gpus(spec, workload, searched.with_(num_gpus=None), margin=margin)
    except InfeasiblePlanError as e:
        needed = None
        notes.append(str(e))
    if not v.fits and v.problem:
        notes.append(v.problem)
    run = run_work
    if not v.fits and needed is not None and needed.num_gpus > d.devices:
        run = needed.workload
        notes.append(f"does not fit {d.describe()}; the smallest that does is {needed.description}: "
                     "speed and cost below are for it")
    runnable = v.fits or run is not run_work
    cap = v.serving
    if cap is not None:
        batch = min(cap.max_concurrent_sequences, cap.max_num_seqs) if cap.fits else 0
        longest = cap.largest_max_model_len
    else:
        batch = max_batch_size(spec, workload, d)
        longest = max_seq_len(spec, workload, d)
    speed: InferenceSpeed | TrainingSpeed | None = None
    hourly = per_million = None
    if known_by_memory_only(gpu):
        notes.append(f"no speed or cost: {gpu.name} is known by its memory only (--device-memory-gib)")
        runnable_speed = False
    else:
        runnable_speed = runnable
    try:
        if spec.architecture is not None and runnable_speed:
            speed = training_speed(spec, run, gpu) if run.is_training else inference_speed(spec, run, gpu)
            assumptions += speed.assumptions
    except MissingGPUDataError as e:
        notes.append(f"no speed estimate: {e}")
    try:
        if runnable_speed:
            hourly = hourly_cost_usd(gpu, run.parallelism.num_gpus)
            if isinstance(speed, InferenceSpeed):
                per_million = hourly / (speed.decode_tokens_per_s * 3600) * 1e6
                assumptions.append("$ per million output tokens at the workload's batch, decoding continuously")
    except MissingGPUDataError as e:
        notes.append(f"no cost: {e}")
    return Plan(gpu=gpu, workload=run_work, fits=v.fits, device_total_bytes=v.needs_bytes, max_batch_size=batch,
                max_seq_len=longest, min_gpus=needed, serving=cap, speed=speed, hourly_usd=hourly,
                usd_per_million_output_tokens=per_million, notes=tuple(dict.fromkeys(notes)),
                assumptions=tuple(dict.fromkeys(assumptions)), runs_on=run.parallelism if runnable else None,
                verdict=v, deployment=d)


@dataclass(frozen=True, kw_only=True)
class CatalogRow:
    """One GPU type of :func:`plan_catalog`: the verdict on one GPU, and the fewest that fit."""

    gpu: GPU
    verdict: Verdict
    min_gpus: Parallelization | None
    hourly_usd: float | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        v = self.min_gpus.verdict if self.min_gpus is not None else None
        return {"gpu": self.gpu.name, "usable_memory_bytes": self.gpu.usable_memory_bytes,
                "verdict": self.verdict.verdict, "min_gpus": self.min_gpus.num_gpus if self.min_gpus else None,
                "tp": self.min_gpus.tp if self.min_gpus else None, "pp": self.min_gpus.pp if self.min_gpus else None,
                "hourly_usd": self.hourly_usd, "launch": v.launch.command if v is not None and v.launch else None,
                "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class CatalogPlan:
    """``hfge plan MODEL`` without ``--gpu``: every GPU type of the catalog, fewest GPUs first."""

    engine: str | None
    max_model_len: int | None
    rows: tuple[CatalogRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "max_model_len": self.max_model_len, "gpus": [r.to_dict() for r in self.rows]}


def plan_catalog(spec: ModelSpec, workload: Workload, gpus: Any = None, *, engine: str | None = None,
                 max_model_len: int | None = None, gpu_memory_utilization: float | None = None,
                 vllm_version: str | None = None, engine_settings: Mapping[str, Any] | None = None,
                 free_memory_bytes: int | None = None, margin: float = DEFAULT_MARGIN) -> CatalogPlan:
    """The verdict on one GPU of each type (``gpus``, default the catalog) and the fewest GPUs of it on
    which the engine starts (serving: at ``max_model_len``, default the workload's prompt + new tokens)
    or the training fits, cheapest first where priced."""
    from hf_gpu_estimator.planner._search import _gpu_list
    from hf_gpu_estimator.planner.engines import unsupported_engine

    context = max_model_len
    if context is None and not workload.is_training:
        context = workload.seq_len + workload.new_tokens
    rows: list[CatalogRow] = []
    for gpu in _gpu_list(gpus):
        name = engine
        if name is None and not workload.is_training and unsupported_engine(default_engine(spec, workload), gpu):
            name = FRAMEWORK  # vLLM on an Apple GPU: the framework (transformers on MPS)
        d = deployment_of(spec, workload, gpu, engine=name, gpu_memory_utilization=gpu_memory_utilization,
                          max_model_len=context if name != FRAMEWORK else None, margin=margin,
                          vllm_version=vllm_version, engine_settings=engine_settings,
                          free_memory_bytes=free_memory_bytes)
        one = fit(spec, workload, d)
        try:
            needed: Parallelization | None = min_gpus(spec, workload, d.with_(num_gpus=None), margin=margin)
            reason = None
        except InfeasiblePlanError as e:
            needed, reason = None, str(e)
        hourly = None
        if needed is not None and gpu.price_per_hour_usd is not None:
            hourly = hourly_cost_usd(gpu, needed.num_gpus)
        rows.append(CatalogRow(gpu=gpu, verdict=one, min_gpus=needed, hourly_usd=hourly, reason=reason))
    rows.sort(key=lambda r: (r.min_gpus is None, r.min_gpus.num_gpus if r.min_gpus else 0,
                             r.hourly_usd if r.hourly_usd is not None else float("inf"), r.gpu.name))
    first = rows[0].verdict.deployment if rows else None
    return CatalogPlan(engine=first.engine if first is not None else engine, max_model_len=context, rows=tuple(rows))
