"""The census: a set of models × a grid of jobs -> one row per model × job (pure arithmetic, no I/O).

Each row says how many parameters the model has, the memory per device (the measured range of
:mod:`hf_gpu_estimator.verdict`), the smallest GPU class it fits (:data:`GPU_CLASSES_GB`), the fewest
GPUs of each asked catalog GPU that hold it, the cheapest of those by $/hour with its tokens/s and
$ per million tokens, and where the facts came from. A model that cannot be read or a job that is
refused is a row too, with the reason: a census never stops at one bad repo.

Models are read and estimated by :mod:`hf_gpu_estimator.census` (the I/O: catalog, Hub, cache, threads);
this module only turns an :class:`~hf_gpu_estimator.estimator.Estimate` (or the error that replaced it) into a row.

>>> from hf_gpu_estimator import estimate, get_gpu
>>> job = parse_job("inference:ctx=2048")
>>> row = census_row(estimate("meta-llama/Llama-2-7b-hf", **job.options), job, [get_gpu("RTX-4090")])
>>> row.gpu_class_gb, row.min_gpus["RTX-4090"], row.source
(24, 1, 'catalog')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from hf_gpu_estimator.constants import GiB
from hf_gpu_estimator.errors import EstimatorError, InfeasiblePlanError, InvalidArgumentError, MissingGPUDataError

if TYPE_CHECKING:
    from hf_gpu_estimator.estimator import Estimate
    from hf_gpu_estimator.hardware import GPU
    from hf_gpu_estimator.planner.parallel import Parallelization
    from hf_gpu_estimator.spec import ModelSpec

__all__ = ["DEFAULT_GPUS", "DEFAULT_JOBS", "GPU_CLASSES_GB", "CensusRow", "Job", "census_row", "class_capacity_bytes",
           "fit_on", "job_refused_row", "parse_job", "parse_jobs", "refused_rows"]

#: Memory classes of the GPUs people buy or rent, in GB as vendors name them (the catalog stores an
#: "80GB" part as 80 GiB: H100-SXM-80GB's memory_bytes is 85,899,345,920); each is judged against
#: :func:`class_capacity_bytes`. 8-12-16-24-32 GB:
#: consumer cards (RTX 4060 Ti 16 GB, RTX 4090 24 GB, RTX 5090 32 GB); 48: L40S/RTX 6000 Ada;
#: 80: A100/H100; 96: RTX PRO 6000 Blackwell/GH200; 141: H200; 192: MI300X (B200's 180 GB falls in it).
GPU_CLASSES_GB: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 80, 96, 141, 192)

#: The job grid when none is asked: serving at a 4k context in the checkpoint's dtype, in fp8 and in
#: llama.cpp's Q4_K_M, and the three ways to fine-tune at 2k tokens.
DEFAULT_JOBS: tuple[str, ...] = ("inference:ctx=4096", "inference:ctx=4096:quant=fp8",
                                 "inference:ctx=4096:quant=gguf:Q4_K_M", "lora:ctx=2048", "qlora:ctx=2048",
                                 "full:ctx=2048")
#: The catalog GPUs whose fewest-count and price a census reports when none are asked: a consumer
#: card, the rented workhorses, and the largest parts.
DEFAULT_GPUS: tuple[str, ...] = ("RTX-4090", "L40S", "A100-80GB-SXM", "H100-SXM-80GB", "H200-SXM-141GB", "B200-180GB")

_KINDS = ("inference", "lora", "qlora", "full")
_KEYS = {"ctx": "tokens per sequence: prompt + generated (inference), sequence length (training)",
         "new": "generated tokens (inference)", "batch": "sequences per device",
         "quant": "a quantization (fp8, int8, nf4, awq-4bit, gguf:Q4_K_M ...)",
         "dtype": "weight dtype (bfloat16, float16, float32)", "engine": "a serving engine name, kept in the row",
         "gc": "gradient checkpointing (1/0)",
         "mode": "analytic (default) or exact (traces transformers' code on fake tensors: seconds of CPU a row)"}  # fmt: skip
#: A job's parts are split at a colon followed by ``key=`` so that ``quant=gguf:Q4_K_M`` stays whole.
_SPLIT = re.compile(r":(?=[a-z]+=)")

Source = Literal["family", "generic", "catalog", "refused"]


@dataclass(frozen=True, kw_only=True)
class Job:
    """One column of the grid: a name (the spec as written) and the estimator keywords it means."""

    name: str
    kind: str
    options: Mapping[str, Any]
    engine: str | None = None
    #: How the estimate is made (:func:`~hf_gpu_estimator.estimate`'s ``mode``): exact traces the model.
    mode: Literal["analytic", "exact"] = "analytic"

    @property
    def is_training(self) -> bool:
        return self.kind != "inference"


def parse_job(text: str) -> Job:
    """``KIND[:key=value]...`` as a :class:`Job`: KIND is inference, lora, qlora or full; keys ``ctx``,
    ``new``, ``batch``, ``quant``, ``dtype``, ``engine``, ``gc``, ``mode``.

    >>> parse_job("inference:ctx=8192:quant=gguf:Q4_K_M").options["quantization"]
    'gguf:Q4_K_M'
    >>> parse_job("qlora:ctx=2048").options["method"]
    'qlora'
    """
    from hf_gpu_estimator.workload import DEFAULT_NEW_TOKENS, make_workload

    parts = _SPLIT.split(text.strip())
    kind = parts[0]
    if kind not in _KINDS:
        raise InvalidArgumentError("jobs", text, f"KIND[:key=value]... with KIND one of {', '.join(_KINDS)}")
    values: dict[str, str] = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key not in _KEYS or not value:
            raise InvalidArgumentError("jobs", text, "keys " + "; ".join(f"{k}: {v}" for k, v in _KEYS.items()))
        values[key] = value
    options: dict[str, Any] = {"batch_size": 1}
    if kind != "inference":
        options.update(task="training", method=kind, lora_targets="all-linear" if kind != "full" else None)
        options = {k: v for k, v in options.items() if v is not None}
    try:
        if "batch" in values:
            options["batch_size"] = int(values["batch"])
        ctx = int(values["ctx"]) if "ctx" in values else None
        if kind == "inference":
            new = int(values.get("new", DEFAULT_NEW_TOKENS))
            options["new_tokens"] = new
            if ctx is not None:
                options["seq_len"] = ctx - new
        elif ctx is not None:
            options["seq_len"] = ctx
    except ValueError:
        raise InvalidArgumentError("jobs", text, "integers for ctx, new and batch") from None
    if "quant" in values:
        options["quantization"] = values["quant"]
    if "dtype" in values:
        options["dtype"] = values["dtype"]
    if "gc" in values:
        options["gradient_checkpointing"] = values["gc"] not in ("0", "false", "no")
    if "engine" in values:
        from hf_gpu_estimator.planner.engines import ENGINES

        if values["engine"] not in ENGINES:
            raise InvalidArgumentError("jobs", text, "engine= one of " + ", ".join(ENGINES))
    mode = values.get("mode", "analytic")
    if mode not in ("analytic", "exact"):
        raise InvalidArgumentError("jobs", text, "mode= analytic or exact")
    try:
        make_workload(**options)  # a job no model could run is a bad argument, not 320 refused rows
    except EstimatorError as e:
        raise InvalidArgumentError("jobs", text, str(e).splitlines()[0]) from e
    return Job(name=text.strip(), kind=kind, options=options, engine=values.get("engine"),
               mode=mode)  # type: ignore[arg-type]


def parse_jobs(jobs: str | Iterable[str] | None = None) -> tuple[Job, ...]:
    """Jobs from specs (comma-separated or a list); :data:`DEFAULT_JOBS` when none. Repeats are dropped."""
    if jobs is None:
        jobs = DEFAULT_JOBS
    if isinstance(jobs, str):
        jobs = re.split(r",(?=\s*[a-z]+(?::|$|,))", jobs)
    parsed = {job.name: job for job in (parse_job(text) for text in jobs)}
    if not parsed:
        raise InvalidArgumentError("jobs", jobs, "at least one job")
    return tuple(parsed.values())


@dataclass(frozen=True, kw_only=True)
class CensusRow:
    """One model × job. Bytes are per device at one device; prices are on-demand $ from the GPU catalog.

    ``min_gpus`` maps each asked catalog GPU to the fewest of it that hold the job (``None``: nothing
    tried does, see :func:`hf_gpu_estimator.planner.min_gpus`). The cheapest option is the one of
    those with the lowest $/hour; ``usd_per_million_tokens`` is at that option's tokens/s (output
    tokens decoding continuously at the job's batch; training tokens for training).
    """

    model: str
    job: str
    source: Source
    reason: str | None = None
    model_type: str | None = None
    parameters: int | None = None
    active_parameters: int | None = None
    trainable_parameters: int | None = None
    memory_low_bytes: int | None = None
    memory_bytes: int | None = None
    memory_high_bytes: int | None = None
    gpu_class_gb: int | None = None
    min_gpus: Mapping[str, int | None] = field(default_factory=dict)
    cheapest_gpu: str | None = None
    cheapest_num_gpus: int | None = None
    cheapest_usd_per_hour: float | None = None
    tokens_per_s: float | None = None
    usd_per_million_tokens: float | None = None
    created_at: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return self.source == "refused"

    def to_record(self) -> dict[str, Any]:
        """A flat record: one ``min_gpus_<GPU>`` column per asked GPU, notes one per line."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "min_gpus":
                out.update({f"min_gpus_{name}": n for name, n in value.items()})
            elif f.name == "notes":
                out["notes"] = "\n".join(value) or None  # one line each (census_row), so the split is exact
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CensusRow:
        """The row of :meth:`to_record` (CSV strings are converted back by :func:`hf_gpu_estimator.census.read_rows`)."""
        kwargs: dict[str, Any] = {}
        names = {f.name for f in fields(cls)}
        kwargs["min_gpus"] = {k.removeprefix("min_gpus_"): v for k, v in record.items() if k.startswith("min_gpus_")}
        for key, value in record.items():
            if key in names and key not in ("min_gpus", "notes"):
                kwargs[key] = value
        notes = record.get("notes")
        kwargs["notes"] = tuple(notes.split("\n")) if notes else ()
        return cls(**kwargs)


def refused_rows(model: str, jobs: Sequence[Job], error: BaseException | str, *, gpus: Sequence[str] = (),
                 created_at: str | None = None) -> list[CensusRow]:
    """One refused row per job for a model that could not be read (a broken, gated or missing repo)."""
    reason = _reason(error)
    return [CensusRow(model=model, job=job.name, source="refused", reason=reason, min_gpus=dict.fromkeys(gpus),
                      created_at=created_at) for job in jobs]


def _reason(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _source(spec: ModelSpec) -> Source:
    if spec.provenance.get("parameters") == "catalog":
        return "catalog"
    arch = spec.architecture
    return "generic" if arch is not None and arch.derivation == "generic" else "family"


def fit_on(est: Estimate, gpu: GPU) -> tuple[Parallelization | None, str | None]:
    """The fewest GPUs of type ``gpu`` on which ``est``'s job fits, and the split (``None`` when none tried
    does), with a note when the search stopped at a split the estimator does not model.

    The census's one question "does it fit" is the planner's one :func:`~hf_gpu_estimator.planner.deployment.fit`,
    through :func:`~hf_gpu_estimator.planner.parallel.min_gpus` (one GPU first, then larger splits).
    """
    from hf_gpu_estimator.errors import ConflictingOptionsError
    from hf_gpu_estimator.planner.deployment import Deployment
    from hf_gpu_estimator.planner.parallel import Parallelization, min_gpus

    try:
        return min_gpus(est.spec, est.asked_workload or est.workload, Deployment(gpu=gpu)), None
    except InfeasiblePlanError:
        return None, None
    except ConflictingOptionsError as e:  # e.g. llama.cpp across GPUs: one GPU was judged, more are not modelled
        return None, f"{gpu.name}: {str(e).splitlines()[0]}"


def class_capacity_bytes(gb: int) -> int:
    """The usable memory a GPU class is judged against: the least ``usable_memory_bytes`` among the
    catalog's discrete GPUs (not unified memory) of ``gb`` GiB nominal, so "runs on 24 GB" holds on every
    24 GB card of the catalog (L4 and A10G report 22.0 GiB of 24); where the catalog has no such part,
    ``gb`` GiB times the least usable/nominal ratio of its discrete GPUs.

    >>> round(class_capacity_bytes(24) / 2**30, 2)
    21.99
    """
    from hf_gpu_estimator.hardware import list_gpus

    discrete = [g for g in list_gpus() if not g.unified_memory and g.memory_bytes]
    same = [g.usable_memory_bytes for g in discrete if g.memory_bytes == gb * GiB]
    if same:
        return min(same)
    return int(gb * GiB * min(g.usable_memory_bytes / g.memory_bytes for g in discrete))


def _gpu_class(est: Estimate, capacities: Mapping[int, int]) -> int | None:
    """The smallest class of :data:`GPU_CLASSES_GB` that holds the job on one device (:func:`class_capacity_bytes`)."""
    from hf_gpu_estimator.verdict import judge

    for gb, capacity in capacities.items():
        if judge(est.memory.device_total_bytes, est.workload, capacity, name=f"{gb} GB").fits:
            return gb
    return None


def _speed_and_cost(est: Estimate, gpu: GPU, plan: Parallelization) -> tuple[float, float | None, float | None]:
    """$/hour of ``plan`` and, when the GPU publishes the rates, tokens/s and $ per million tokens."""
    from hf_gpu_estimator.cost import cost_per_million_tokens_usd, hourly_cost_usd
    from hf_gpu_estimator.perf import inference_speed, training_speed

    hourly = hourly_cost_usd(gpu, plan.num_gpus)
    try:
        if est.workload.is_training:
            tokens_per_s = training_speed(est.spec, plan.workload, gpu).tokens_per_s
        else:
            # One replica of tp x pp GPUs decoding the job's batch: its output tokens per second.
            tokens_per_s = inference_speed(est.spec, plan.workload, gpu).decode_tokens_per_s
    except MissingGPUDataError:
        return hourly, None, None
    return hourly, tokens_per_s, cost_per_million_tokens_usd(gpu, plan.num_gpus, tokens_per_s)


def census_row(est: Estimate, job: Job, gpus: Sequence[GPU], *, capacities: Mapping[int, int] | None = None,
               created_at: str | None = None, notes: Sequence[str] = ()) -> CensusRow:
    """The row of one model × job from its :class:`~hf_gpu_estimator.estimator.Estimate` (made by
    :func:`hf_gpu_estimator.census.census_rows`, which also turns a refused estimate into a refused row).

    Args:
        est: the job's estimate on one device.
        job: the job it answers.
        gpus: catalog GPUs to count and price.
        capacities: :func:`class_capacity_bytes` per class (computed when not given).
        created_at: the repo's creation date on the Hub (ISO 8601), when known.
        notes: warnings the estimate raised.
    """
    spec = est.spec
    if capacities is None:
        capacities = {gb: class_capacity_bytes(gb) for gb in GPU_CLASSES_GB}
    notes = list(notes)
    low, high = est.device_total_range_bytes
    counts: dict[str, int | None] = {}
    cheapest: tuple[float, GPU, Parallelization] | None = None
    for gpu in gpus:
        plan, note = fit_on(est, gpu)
        counts[gpu.name] = plan.num_gpus if plan else None
        if note:
            notes.append(note)
        if plan is not None and gpu.price_per_hour_usd is not None:
            hourly = gpu.price_per_hour_usd * plan.num_gpus
            if cheapest is None or hourly < cheapest[0]:
                cheapest = (hourly, gpu, plan)
    hourly = tokens_per_s = per_million = None
    if cheapest is not None:
        hourly, tokens_per_s, per_million = _speed_and_cost(est, cheapest[1], cheapest[2])
    if job.engine is not None:
        notes.append(f"engine {job.engine}: memory from the estimator's workload model (the engine's own "
                     "memory model is not applied by the census)")
    return CensusRow(
        model=spec.id, job=job.name, source=_source(spec),
        model_type=spec.architecture.model_type if spec.architecture else None,
        parameters=spec.parameters.total, active_parameters=spec.parameters.active,
        trainable_parameters=est.trainable_parameters if job.is_training else None,
        memory_low_bytes=low, memory_bytes=est.memory.device_total_bytes, memory_high_bytes=high,
        gpu_class_gb=_gpu_class(est, capacities), min_gpus=counts,
        cheapest_gpu=cheapest[1].name if cheapest else None, cheapest_num_gpus=cheapest[2].num_gpus if cheapest else None,
        cheapest_usd_per_hour=hourly, tokens_per_s=tokens_per_s, usd_per_million_tokens=per_million,
        created_at=created_at, notes=tuple(dict.fromkeys(" ".join(n.split()) for n in notes)),
    )  # fmt: skip


def job_refused_row(spec: ModelSpec, job: Job, error: BaseException | str, gpus: Sequence[str], *,
                    created_at: str | None = None) -> CensusRow:
    """The row of a job the estimator refuses for a model it could read (the reason kept, the model's counts too)."""
    return CensusRow(model=spec.id, job=job.name, source="refused", reason=_reason(error),
                     model_type=spec.architecture.model_type if spec.architecture else None,
                     parameters=spec.parameters.total, active_parameters=spec.parameters.active,
                     min_gpus=dict.fromkeys(gpus), created_at=created_at)
