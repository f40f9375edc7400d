"""How a job runs, and the one answer to "does it fit": :class:`Deployment` and :func:`fit`.

A :class:`Deployment` says where and how a workload runs: the GPU type and count, tensor and pipeline
parallel degrees, the serving engine (and its version) with its own settings, and the memory the
device really has free. :func:`fit` answers fits / tight / does not fit / would not start for
(model, workload, deployment) as a :class:`~hf_gpu_estimator.verdict.Verdict`, with the workload as it
runs on that GPU (its own MXFP4 and bf16 support), the engine's capacity and, when it fits, the
launch command. Every search (max batch, min GPUs, cheapest, -ngl), suggestion and command asks it.

>>> from hf_gpu_estimator.sources.catalog import lookup
>>> from hf_gpu_estimator.workload import make_workload
>>> from hf_gpu_estimator.hardware import get_gpu
>>> spec = lookup("meta-llama/Llama-3.1-8B")
>>> v = fit(spec, make_workload(), Deployment(gpu=get_gpu("H100-SXM-80GB"), engine="vllm", max_model_len=8192))
>>> v.verdict, v.launch.command.split()[:3]
('fits', ['vllm', 'serve', 'meta-llama/Llama-3.1-8B'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hf_gpu_estimator.constants import DEFAULT_MARGIN, GiB
from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.verdict import Assumption, Verdict, judge
from hf_gpu_estimator.workload import Parallelism, Workload

__all__ = ["ENGINE_NAMES", "Deployment", "Launch", "fit", "largest_gpu_layers", "prepare"]

EngineName = Literal["vllm", "sglang", "llama.cpp", "transformers"]
#: The serving engines a deployment may name (``None``: the framework itself, transformers/PyTorch
#: as :func:`~hf_gpu_estimator.estimate` sizes it).
ENGINE_NAMES: tuple[str, ...] = ("vllm", "sglang", "llama.cpp", "transformers")


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """Where and how one workload runs.

    Attributes:
        gpu: The GPU type (a catalog entry, or one built for ``--device-memory-gib``).
        engine: ``vllm``, ``sglang``, ``llama.cpp`` or ``transformers`` (``generate`` with a static batch);
            ``None``: the framework itself (the estimate's device total, training included).
        engine_version: The engine release whose rule applies (vLLM ``X.Y``, SGLang ``X.Y.Z``).
        tp, pp: Tensor- and pipeline-parallel degrees (``--tensor-parallel-size``, ``--pipeline-parallel-size``).
        num_gpus: GPUs in all (default ``tp x pp``; training: the data-parallel count).
        strategy: Training strategy (``ddp``, ``zero3`` ...; ``None``: the workload's).
        max_model_len: The context the engine sizes sequences for (vLLM ``--max-model-len``, SGLang
            ``--context-length``; llama.cpp ``-c`` is ``max_model_len x parallel`` unless ``ctx_size`` is set).
        gpu_memory_utilization: vLLM's share of the device (default 0.9).
        kv_cache_dtype: The KV cache dtype (``fp8``; llama.cpp ``q8_0`` ...); ``None``: the workload's.
        n_gpu_layers, ctx_size, parallel, flash_attn: llama.cpp ``-ngl``, ``-c``, ``-np``, ``-fa``.
        mem_fraction_static: SGLang's share of the device for weights and KV pool.
        max_num_seqs, max_num_batched_tokens: vLLM's scheduler budgets.
        device_map, max_memory_bytes: transformers ``from_pretrained(device_map=..., max_memory=...)``
            (``max_memory_bytes`` per GPU caps what the model may use there).
        free_memory_bytes: What the device reports free (shared GPUs); ``None``: the whole device.
        margin: The share of the device left free in the framework verdict (engines have their own share).
        speculative: Speculative decoding (a draft model, EAGLE head or MTP layers:
            :class:`~hf_gpu_estimator.planner.engines.speculative.Speculative`); vLLM, SGLang, llama.cpp.
        mmproj: llama.cpp ``--mmproj``: the vision tower and projector of a vision-language model loaded too.
        n_cpu_moe: llama.cpp ``--n-cpu-moe``: the routed experts of the first N layers kept in host memory.
        cache_type_k, cache_type_v: llama.cpp ``-ctk`` / ``-ctv`` (q8_0, q4_0 ...); ``None``: ``kv_cache_dtype``.
        override_tensors: llama.cpp ``-ot PATTERN=BUFFER,...`` entries, in order (``\\.ffn_.*_exps\\.=CPU``).
        fit_params, fit_target_mib, fit_ctx: llama.cpp ``--fit on`` (what ``llama-fit-params`` chooses:
            :func:`llamacpp_fit_params`), ``--fit-target`` (MiB left free per device, default 1024) and
            ``--fit-ctx`` (the smallest context it shrinks ``-c`` to, default 4096).
    """

    gpu: GPU
    engine: EngineName | None = None
    engine_version: str | None = None
    tp: int = 1
    pp: int = 1
    num_gpus: int | None = None
    strategy: str | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    kv_cache_dtype: str | None = None
    n_gpu_layers: int | None = None
    ctx_size: int | None = None
    parallel: int | None = None
    flash_attn: Literal["on", "off", "auto"] | None = None
    mem_fraction_static: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    device_map: str | None = None
    max_memory_bytes: int | None = None
    free_memory_bytes: int | None = None
    margin: float = DEFAULT_MARGIN
    speculative: Any = None
    mmproj: bool | None = None
    n_cpu_moe: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    override_tensors: tuple[str, ...] | None = None
    fit_params: bool | None = None
    fit_target_mib: int | None = None
    fit_ctx: int | None = None

    def __post_init__(self) -> None:
        if self.engine is not None and self.engine not in ENGINE_NAMES:
            raise InvalidArgumentError("engine", self.engine, "one of " + ", ".join(ENGINE_NAMES))
        for name in ("tp", "pp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(name, value, "an integer >= 1")
        if self.num_gpus is not None and (isinstance(self.num_gpus, bool) or not isinstance(self.num_gpus, int)
                                          or self.num_gpus < self.tp * self.pp):
            raise InvalidArgumentError("num_gpus", self.num_gpus, f"an integer >= tp x pp ({self.tp * self.pp})")
        for name in ("free_memory_bytes", "max_memory_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise InvalidArgumentError(name, value, "a positive number of bytes")

    @property
    def devices(self) -> int:
        """GPUs in all."""
        return self.num_gpus if self.num_gpus is not None else self.tp * self.pp

    @property
    def usable_bytes(self) -> int:
        """What the framework may use on one device: the catalog's total, or less when the device reports
        less free (``free_memory_bytes``) or ``max_memory`` caps it."""
        caps = [self.gpu.usable_memory_bytes, self.free_memory_bytes, self.max_memory_bytes]
        return int(min(c for c in caps if c is not None))

    def with_(self, **changes: Any) -> Deployment:
        return replace(self, **changes)

    def parallelism(self, workload: Workload) -> Parallelism:
        """The workload's split on this deployment (training keeps its strategy unless one is given)."""
        p = workload.parallelism
        strategy = self.strategy or p.strategy
        if workload.is_training and self.devices > 1 and strategy == "none":
            strategy = "ddp"
        return replace(p, num_gpus=self.devices, tp=self.tp, pp=self.pp, strategy=strategy)  # type: ignore[arg-type]

    def describe(self) -> str:
        """``"2 x H100-SXM-80GB, vLLM 0.17, tensor parallel 2"``."""
        split = ", ".join(x for x in (f"tensor parallel {self.tp}" if self.tp > 1 else "",
                                      f"pipeline parallel {self.pp}" if self.pp > 1 else "") if x)
        engine = {"vllm": "vLLM", "sglang": "SGLang"}.get(self.engine or "", self.engine or "")
        if engine and self.engine_version:
            engine += f" {self.engine_version}"
        return ", ".join(x for x in (f"{self.devices} x {self.gpu.name}", engine, split) if x)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"gpu": self.gpu.name, "num_gpus": self.devices, "tp": self.tp, "pp": self.pp,
                               "engine": self.engine}
        for name in ("engine_version", "strategy", "max_model_len", "gpu_memory_utilization", "kv_cache_dtype",
                     "n_gpu_layers", "ctx_size", "parallel", "flash_attn", "mem_fraction_static", "max_num_seqs",
                     "max_num_batched_tokens", "device_map", "max_memory_bytes", "free_memory_bytes", "n_cpu_moe",
                     "cache_type_k", "cache_type_v", "fit_params", "fit_target_mib", "fit_ctx"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.override_tensors:
            out["override_tensors"] = list(self.override_tensors)
        if self.speculative is not None:
            out["speculative"] = {"method": self.speculative.method,
                                  "num_speculative_tokens": self.speculative.num_speculative_tokens,
                                  "draft_model": self.speculative.draft.id if self.speculative.draft else None}
        if self.mmproj:
            out["mmproj"] = True
        return out


@dataclass(frozen=True, kw_only=True)
class Launch:
    """The command that runs a deployment, and the same as structured fields.

    Attributes:
        engine: ``vllm``, ``sglang``, ``llama.cpp``, ``transformers`` or ``training``.
        command: One line to paste (a shell command, or Python for transformers and training).
        args: The settings, by the engine's own flag names (``tensor_parallel_size`` ...).
        extra: Further forms of the same settings (training: ``accelerate``, ``lightning``,
            ``training_arguments``).
    """

    engine: str
    command: str
    args: Mapping[str, Any]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "command": self.command, "args": dict(self.args), **dict(self.extra)}


# --------------------------------------------------------------------------- the workload on one GPU


def prepare(spec: ModelSpec, workload: Workload, deployment: Deployment) -> tuple[Workload, tuple[Assumption, ...]]:
    """``workload`` as it runs on ``deployment``: the checkpoint's quantization decided for this GPU
    (MXFP4 kept packed only where its kernels run), fp16 where the GPU has no bf16, the deployment's
    split and KV dtype; with the notes of what changed."""
    from hf_gpu_estimator.memory.weights import resolve_quantization
    from hf_gpu_estimator.planner._search import fp16_fallback

    notes: list[Assumption] = []
    work, loaded = resolve_quantization(spec, workload, gpu=deployment.gpu)
    notes += [Assumption(key="quantization", text=t) for t in loaded]
    work, fallback = fp16_fallback(spec, work, deployment.gpu)
    if fallback:
        notes.append(Assumption(key="fp16_fallback", text=fallback))
    changes: dict[str, Any] = {"parallelism": deployment.parallelism(work)}
    if deployment.kv_cache_dtype is not None:  # the engine's word (fp8) as make_workload normalizes it
        from hf_gpu_estimator.workload import make_workload

        changes["kv_cache_dtype"] = make_workload(kv_cache_dtype=deployment.kv_cache_dtype).kv_cache_dtype
    if deployment.engine == "llama.cpp" and deployment.n_gpu_layers is not None:
        changes["gpu_layers"] = None if deployment.n_gpu_layers < 0 else deployment.n_gpu_layers
    return work.with_(**changes), tuple(notes)


# --------------------------------------------------------------------------- fit


def fit(spec: ModelSpec, workload: Workload, deployment: Deployment, *, memory: Any = None) -> Verdict:
    """Does ``workload`` of ``spec`` fit ``deployment``? The one place that answers it.

    Without an engine: the measured range of the estimated device total (what nvidia-smi shows)
    against the usable memory (free memory when given) less the margin (:func:`verdict.judge`).
    With a serving engine: the engine's own start-up sizing (vLLM's profile run and KV pool by
    version, SGLang's token pool, llama-server's buffers, transformers' static batch) decides
    "fits" or "would not start" at ``max_model_len``; the needs are its weights, activation
    reservation, non-torch memory and one sequence's KV cache.

    Args:
        memory: The :class:`~hf_gpu_estimator.memory.MemoryEstimate` already computed for exactly this
            workload (a calibrated one, from :func:`~hf_gpu_estimator.estimate`); reused, not recomputed.

    Returns:
        The :class:`~hf_gpu_estimator.verdict.Verdict`, with the deployment, the workload as it runs,
        the engine's capacity and, when it fits, the launch command.
    """
    work, notes = prepare(spec, workload, deployment)
    if deployment.engine is None or work.is_training:
        return _framework_fit(spec, work, deployment, notes, memory)
    if deployment.engine == "llama.cpp" and deployment.fit_params:
        deployment, fitted = llamacpp_fit_params(spec, workload, deployment)
        work, notes = prepare(spec, workload, deployment)
        notes = (*notes, Assumption(key="llama.cpp:fit", text=fitted))
    return _engine_fit(spec, work, deployment, notes)


def _framework_fit(spec: ModelSpec, work: Workload, deployment: Deployment, notes: tuple[Assumption, ...],
                   memory: Any) -> Verdict:
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.memory.overhead import device_total_on

    mem = memory if memory is not None else estimate_memory(spec, work, detail=False)
    total = device_total_on(mem, deployment.gpu)
    v = judge(total, work, deployment.usable_bytes, name=deployment.gpu.name, margin=deployment.margin)
    if deployment.free_memory_bytes is not None:
        notes = (*notes, Assumption(key="free_memory", text=(
            f"judged against {deployment.usable_bytes / GiB:.2f} GiB free on {deployment.gpu.name} "
            f"(of {deployment.gpu.usable_memory_bytes / GiB:.2f} GiB)")))
    launch = training_launch(spec, work, deployment) if work.is_training and v.fits else (
        transformers_launch(spec, work, deployment) if v.fits else None)
    return replace(v, deployment=deployment, workload=work, launch=launch, assumptions=notes)


#: vLLM V1 refuses to start when the device has less free memory than ``gpu_memory_utilization x total``
#: (vllm/v1/worker/gpu_worker.py ``init_device``: "Free memory on device ... is less than desired GPU
#: memory utilization").
VLLM_FREE_MEMORY_CHECK = "vllm/v1/worker/gpu_worker.py init_device (free memory >= gpu_memory_utilization x total)"


def engine_settings(deployment: Deployment, work: Workload) -> dict[str, Any]:
    """The deployment's settings as :func:`~hf_gpu_estimator.planner.engines.engine_capacity` takes them."""
    d = deployment
    if d.engine == "vllm":
        return {"gpu_memory_utilization": d.gpu_memory_utilization, "max_model_len": d.max_model_len,
                "vllm_version": d.engine_version, "max_num_seqs": d.max_num_seqs,
                "max_num_batched_tokens": d.max_num_batched_tokens, "speculative": d.speculative}
    if d.engine == "sglang":
        return {"mem_fraction_static": d.mem_fraction_static, "max_model_len": d.max_model_len,
                "sglang_version": d.engine_version, "speculative": d.speculative}
    if d.engine == "llama.cpp":
        parallel = d.parallel or 1
        ctx = d.ctx_size if d.ctx_size is not None else (d.max_model_len * parallel if d.max_model_len else None)
        out: dict[str, Any] = {"ctx_size": ctx, "parallel": parallel, "n_gpu_layers": work.gpu_layers}
        if d.flash_attn is not None:
            out["flash_attn"] = d.flash_attn
        if d.speculative is not None:
            out["speculative"] = d.speculative
        if d.mmproj:
            out["mmproj"] = True
        if d.n_cpu_moe:
            out["n_cpu_moe"] = d.n_cpu_moe
        for name in ("cache_type_k", "cache_type_v"):
            if getattr(d, name) is not None:
                out[name] = getattr(d, name)
        if d.override_tensors:
            out["override_tensors"] = tuple(d.override_tensors)
        return out
    return {"max_model_len": d.max_model_len}


def _engine_fit(spec: ModelSpec, work: Workload, deployment: Deployment, notes: tuple[Assumption, ...]) -> Verdict:
    from hf_gpu_estimator.planner.engines import engine_capacity, unsupported_engine
    from hf_gpu_estimator.planner.engines.sglang import default_mem_fraction_static

    d = deployment
    gpu = d.gpu
    engine = str(d.engine)
    name = _ENGINE_LABEL[engine]
    no_backend = unsupported_engine(engine, gpu)
    if no_backend:
        return Verdict(name=gpu.name, usable_bytes=gpu.usable_memory_bytes, needs_bytes=0, needs_low_bytes=0,
                       needs_high_bytes=0, margin=0.0, basis=f"{name} has no backend for {gpu.runtime}",
                       engine_starts=False, problem=no_backend, deployment=d, workload=work, assumptions=notes)
    settings = {k: v for k, v in engine_settings(d, work).items() if v is not None}
    sized_gpu = gpu
    extra: list[Assumption] = []
    free = d.free_memory_bytes
    problem: str | None = None
    if free is not None and free < gpu.usable_memory_bytes:
        if engine == "vllm":
            from hf_gpu_estimator.planner.engines.vllm import resolve_vllm_version

            rule = resolve_vllm_version(settings.get("vllm_version"))
            share = settings.get("gpu_memory_utilization", rule.default_gpu_memory_utilization)
            v1 = rule.engine == "v1"
            if v1 and free < share * gpu.usable_memory_bytes:
                problem = (f"vLLM would not start: {free / GiB:.2f} GiB free on {gpu.name} is less than "
                           f"--gpu-memory-utilization {share:g} x {gpu.usable_memory_bytes / GiB:.2f} GiB; pass "
                           f"--gpu-memory-utilization {math.floor(free / gpu.usable_memory_bytes * 100) / 100:g} or "
                           "free the device")
            extra.append(Assumption(key="free_memory", text=f"vLLM needs its whole share free at start-up ({VLLM_FREE_MEMORY_CHECK})"))
        elif engine == "sglang":
            # SGLang sizes the pool from the memory free when it starts (model_runner.py
            # profile_max_num_token: free after load - free at init x (1 - fraction)): what another process
            # holds is neither in the pool nor in the share kept free. The default fraction still follows
            # the device's total (server_args.py reads nvidia-smi's memory.total).
            fraction = settings.get("mem_fraction_static") or default_mem_fraction_static(
                gpu, d.tp, d.pp, version=d.engine_version, spec=spec,
                speculative_method=d.speculative.method if d.speculative is not None else None)
            settings["mem_fraction_static"] = fraction
            d = d.with_(mem_fraction_static=fraction)
            sized_gpu = replace(gpu, usable_memory_bytes=int(free))
            extra.append(Assumption(key="free_memory", text=(
                f"SGLang pool from {free / GiB:.2f} GiB free: {fraction:g} x the memory free at start-up "
                "less the weights")))
        else:
            sized_gpu = replace(gpu, usable_memory_bytes=int(free))
            extra.append(Assumption(key="free_memory", text=f"{name} sized on {free / GiB:.2f} GiB free"))
    cap = engine_capacity(spec, work, sized_gpu, engine=engine, **settings)
    if engine == "transformers":
        return _transformers_fit(spec, work, d, notes, cap)
    if engine == "sglang" and sized_gpu is not gpu:
        cap = replace(cap, gpu=gpu.name)
    problem = problem or cap.problem
    share = cap.gpu_memory_utilization
    usable = cap.total_memory_bytes
    # weights + the engine's activation reservation + memory outside its pool, then one sequence's cache
    # (llama.cpp: its buffers, the whole -c KV cache, and the runtime context)
    needs = cap.profile_peak_bytes + cap.non_torch_bytes + (
        cap.kv_pool_bytes if engine == "llama.cpp" else _sequence_bytes(cap))
    margin = 1 - share if share < 1 else 0.0
    starts = problem is None
    assumptions = (*notes, *extra, *_engine_notes(engine, cap.assumptions))
    v = Verdict(name=gpu.name, usable_bytes=int(usable), needs_bytes=int(needs), needs_low_bytes=int(needs),
                needs_high_bytes=int(needs), margin=margin,
                basis=f"{name}{' ' + cap.engine_version if cap.engine_version else ''} start-up sizing "
                      f"(planner/engines/{engine.replace('.', '')}.py): a point estimate checked against "
                      "published start-up logs",
                engine_starts=starts, problem=problem, deployment=d, workload=work, serving=cap,
                assumptions=assumptions)
    if starts:
        v = replace(v, launch=serving_launch(spec, work, d, cap))
    return v


def _transformers_fit(spec: ModelSpec, work: Workload, d: Deployment, notes: tuple[Assumption, ...],
                      cap: Any) -> Verdict:
    """transformers ``generate`` serves a static batch: the framework verdict of one ``max_model_len``
    sequence (the measured range, fits / tight / does not fit), with the batch it holds as capacity."""
    length = cap.max_model_len
    new = min(work.new_tokens, max(0, length - 1))
    one = work.with_(batch_size=1, seq_len=length - new, new_tokens=new)
    v = _framework_fit(spec, one, d.with_(engine=None), notes, None)
    launch = transformers_launch(spec, work, d) if v.fits else None
    return replace(v, deployment=d, workload=work, serving=cap, launch=launch,
                   assumptions=(*v.assumptions, *_engine_notes("transformers", cap.assumptions)))


def _engine_notes(engine: str, lines: tuple[str, ...]) -> tuple[Assumption, ...]:
    """An engine's lines, keyed: their own key where the engine gave one, else ``engine:i``."""
    return tuple(t if isinstance(t, Assumption) else Assumption(key=f"{engine}:{i}", text=t)
                 for i, t in enumerate(lines))


_ENGINE_LABEL = {"vllm": "vLLM", "sglang": "SGLang", "llama.cpp": "llama.cpp", "transformers": "transformers"}


def _sequence_bytes(cap: Any) -> int:
    """One ``max_model_len`` sequence's share of the pool (the pool's bytes per token it reports)."""
    if cap.kv_cache_tokens and cap.kv_pool_bytes > 0:
        return math.ceil(cap.kv_pool_bytes * cap.max_model_len / cap.kv_cache_tokens)
    return cap.kv_bytes_per_token * cap.max_model_len


# --------------------------------------------------------------------------- llama.cpp -ngl


def largest_gpu_layers(spec: ModelSpec, workload: Workload, deployment: Deployment) -> tuple[int, Verdict] | None:
    """The most layers llama.cpp can offload (``-ngl``) on ``deployment`` with the rest in host memory,
    and its verdict; ``None`` when not even the compute buffer and the KV of no layers fit."""
    from hf_gpu_estimator.monotone import largest_true

    arch = spec.architecture
    layers = (arch.num_layers + 1) if arch is not None else 1  # + the output layer, as llama.cpp counts

    def at(n: int) -> Verdict:
        return fit(spec, workload, deployment.with_(engine="llama.cpp", n_gpu_layers=n))

    full = at(layers)
    if full.fits:
        return layers, full
    best = largest_true(lambda n: at(n).fits, 1, layers - 1)
    if best == 0 and not at(0).fits:
        return None
    return best, at(best)


# --------------------------------------------------------------------------- llama.cpp --fit

#: llama.cpp's ``--fit`` defaults (common/common.h ``fit_params_target``: 1024 MiB left free per device;
#: ``fit_params_min_ctx``: 4096, the smallest context ``--fit`` shrinks an unset ``-c`` to).
FIT_TARGET_MIB = 1024
FIT_MIN_CTX = 4096
#: Where the rule below comes from.
FIT_SOURCE = "llama.cpp src/llama.cpp llama_params_fit_impl"


def llamacpp_fit_params(spec: ModelSpec, workload: Workload, deployment: Deployment) -> tuple[Deployment, str]:
    """What llama.cpp's ``--fit on`` (``llama-fit-params``) would choose on one device, as the deployment that
    runs it, and one line saying what it chose.

    The steps of ``llama_params_fit_impl`` (:data:`FIT_SOURCE`), each projected with :func:`fit` where
    llama.cpp makes a test allocation (model + context + compute buffers on the device, against the
    memory free after the CUDA context, less ``--fit-target``):

    1. Every layer on the GPU at the context asked: enough left free, nothing changes.
    2. No ``-c`` given: shrink the context from the model's trained length, by the deficit over the KV bytes
       per token (``context bytes / n_ctx_train``), to no less than ``--fit-ctx``; done if that leaves the margin.
    3. ``-ngl``, ``-ot`` or ``--n-cpu-moe`` given by the user: llama.cpp aborts the fit ("already set by
       user") and runs with them.
    4. A MoE model whose dense weights fit with every routed expert in host memory: the experts of
       ``n_layer + 1 - layers_full`` layers (after the leading dense ones) move to host memory, ``layers_full =
       surplus / (bytes of one layer's experts) + n_dense_lead + 1``, as ``--n-cpu-moe`` would.
    5. Otherwise ``-ngl`` from a straight line through 1 and ``n_layer`` offloaded layers:
       ``(free - margin - base) / per_layer`` (0 when even the base does not fit).

    One device only (llama.cpp spreads layers over several devices step by step; not modelled).

    Raises:
        ConflictingOptionsError: ``--fit`` over several GPUs.
    """
    from hf_gpu_estimator.errors import ConflictingOptionsError

    d = deployment.with_(fit_params=False)
    if d.devices > 1:
        raise ConflictingOptionsError("fit_params", True, "is modelled for one GPU (llama.cpp's --fit spreads layers "
                                      "over several devices step by step)", fix="plan one GPU, or pass -ngl")
    arch = spec.architecture
    n_layer = arch.num_layers if arch is not None else 1
    margin = (deployment.fit_target_mib if deployment.fit_target_mib is not None else FIT_TARGET_MIB) * (1 << 20)
    min_ctx = deployment.fit_ctx if deployment.fit_ctx is not None else FIT_MIN_CTX

    def used(dep: Deployment) -> tuple[int, int, int]:
        """(device bytes used, bytes free before loading, KV bytes) of one test allocation."""
        work, notes = prepare(spec, workload, dep)
        cap = _engine_fit(spec, work, dep, notes).serving
        free = cap.total_memory_bytes - cap.non_torch_bytes
        return cap.profile_peak_bytes + cap.kv_pool_bytes, free, cap.kv_pool_bytes

    full, free, kv = used(d)
    if free - full >= margin:
        return d, (f"--fit: every layer at the context asked leaves {(free - full) >> 20} MiB >= {margin >> 20} MiB "
                   f"free, no changes ({FIT_SOURCE})")
    surplus = free - full - margin
    reduction_bytes = 0
    steps: list[str] = []
    user_ctx = d.ctx_size is not None or d.max_model_len is not None
    n_ctx_train = (arch.max_position_embeddings if arch is not None else None) or 0
    if not user_ctx and n_ctx_train > min_ctx and kv > 0:
        per_token = kv // n_ctx_train
        cut = min(-(-(-surplus) // per_token), n_ctx_train - min_ctx) if per_token else 0
        reduction_bytes = cut * per_token
        surplus += reduction_bytes
        d = d.with_(ctx_size=n_ctx_train - cut)
        steps.append(f"context {n_ctx_train} -> {n_ctx_train - cut}")
        if surplus > 0:
            return d, f"--fit: {steps[0]} leaves more than {margin >> 20} MiB free ({FIT_SOURCE})"
    user_set = next((f for f, v in (("-ngl", d.n_gpu_layers), ("-ot", d.override_tensors), ("--n-cpu-moe", d.n_cpu_moe))
                     if v), None)
    if user_set is not None:
        done = f"; {steps[0]}" if steps else ""
        return d, f"--fit: {user_set} set by the user, llama.cpp aborts the fit and keeps it{done} ({FIT_SOURCE})"
    if arch is not None and arch.num_experts:
        lead = arch.num_dense_layers
        dense, _, _ = used(d.with_(n_cpu_moe=n_layer))
        left = free - dense - margin
        if left >= 0:
            per_layer = (full - reduction_bytes - dense) // max(1, n_layer - lead)
            layers_full = left // per_layer + lead + 1 if per_layer > 0 else n_layer + 1
            part = max(0, n_layer + 1 - layers_full)
            steps.append(f"the routed experts of {part} layers in host memory (--n-cpu-moe {part})")
            return d.with_(n_cpu_moe=part or None), f"--fit: {'; '.join(steps)} ({FIT_SOURCE})"
    one, _, _ = used(d.with_(n_gpu_layers=1))
    many, _, _ = used(d.with_(n_gpu_layers=n_layer))
    per_layer = (many - one) // max(1, n_layer - 1)
    base = one - per_layer
    ngl = max(0, (free - margin - base) // per_layer) if per_layer > 0 else n_layer + 1
    steps.append(f"-ngl {ngl} of {n_layer + 1} layers")
    return d.with_(n_gpu_layers=int(min(ngl, n_layer + 1))), f"--fit: {'; '.join(steps)} ({FIT_SOURCE})"


# --------------------------------------------------------------------------- launch commands


def _repo(spec: ModelSpec) -> str:
    return spec.id


def serving_launch(spec: ModelSpec, work: Workload, d: Deployment, cap: Any) -> Launch:
    """The command line of the engine, with the settings the verdict was computed for."""
    repo = _repo(spec)
    if d.engine == "vllm":
        args: dict[str, Any] = {"model": repo, "tensor_parallel_size": d.tp}
        if d.pp > 1:
            args["pipeline_parallel_size"] = d.pp
        args["max_model_len"] = cap.max_model_len
        args["gpu_memory_utilization"] = cap.gpu_memory_utilization
        kv = work.kv_cache_dtype
        args["kv_cache_dtype"] = {"float8_e4m3fn": "fp8", "float8_e5m2": "fp8_e5m2"}.get(kv or "", kv) or "auto"
        if work.dtype == "float16":
            args["dtype"] = "float16"
        if d.max_num_seqs:
            args["max_num_seqs"] = d.max_num_seqs
        if d.max_num_batched_tokens:
            args["max_num_batched_tokens"] = d.max_num_batched_tokens
        sd = d.speculative
        if sd is not None:  # vLLM's --speculative-config (method names of vllm/config/speculative.py)
            config = {"method": {"draft": "draft_model"}.get(sd.method, sd.method),
                      "num_speculative_tokens": sd.num_speculative_tokens}
            if sd.draft is not None:
                config["model"] = sd.draft.id
            import json

            args["speculative_config"] = "'" + json.dumps(config, separators=(",", ":")) + "'"
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items() if k != "model")
        return Launch(engine="vllm", command=f"vllm serve {repo} {flags}", args=args)
    if d.engine == "sglang":
        args = {"model_path": repo, "tp": d.tp,
                "mem_fraction_static": round(d.mem_fraction_static or cap.gpu_memory_utilization, 3),
                "context_length": cap.max_model_len}
        if d.pp > 1:
            args["pp_size"] = d.pp
        if work.kv_cache_dtype:
            args["kv_cache_dtype"] = {"float8_e5m2": "fp8_e5m2", "float8_e4m3fn": "fp8_e4m3"}.get(
                work.kv_cache_dtype, work.kv_cache_dtype)
        sd = d.speculative
        if sd is not None:  # SGLang's algorithm names (server_args.py --speculative-algorithm)
            args["speculative_algorithm"] = {"draft": "STANDALONE", "eagle": "EAGLE", "eagle3": "EAGLE3",
                                             "mtp": "NEXTN", "ngram": "NGRAM"}[sd.method]
            if sd.draft is not None:
                args["speculative_draft_model_path"] = sd.draft.id
            args["speculative_num_steps"] = sd.num_speculative_tokens
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items())
        return Launch(engine="sglang", command=f"python -m sglang.launch_server {flags}", args=args)
    if d.engine == "llama.cpp":
        return llamacpp_launch(spec, work, d, cap)
    return transformers_launch(spec, work, d)


def llamacpp_launch(spec: ModelSpec, work: Workload, d: Deployment, cap: Any) -> Launch:
    """``llama-server -hf org/repo:QUANT -ngl N -c C -fa on`` (+ ``-np``, ``--tensor-split`` on several GPUs)."""
    arch = spec.architecture
    layers = (arch.num_layers + 1) if arch is not None else 0
    ngl = layers if work.gpu_layers is None else min(work.gpu_layers, layers)
    quant = work.quantization[5:] if work.quantization.startswith("gguf:") else None
    import os

    repo = spec.id
    gguf = bool(getattr(spec, "gguf_tensors", ()))
    source: list[str]
    if gguf and os.path.exists(repo):  # a local file
        source = ["-m", repo]
    elif gguf and repo.endswith(".gguf") and repo.count("/") >= 2:  # org/repo/file.gguf on the Hub
        from hf_gpu_estimator.quantization import GGUF_FILE_TYPES

        org, name, file = repo.split("/", 2)
        tag = file.removesuffix(".gguf").rsplit("-", 1)[-1].upper()
        # llama.cpp's org/repo:QUANT picks that file (common/arg.cpp --hf-repo); another name: --hf-file
        single = "/" not in file and "-of-" not in file
        source = (["-hf", f"{org}/{name}:{tag}"] if single and tag in GGUF_FILE_TYPES
                  else ["-hf", f"{org}/{name}", "--hf-file", file])
    elif gguf:  # org/repo:QUANT, llama.cpp's own convention
        source = ["-hf", repo]
    else:  # a transformers checkpoint: convert_hf_to_gguf.py (+ llama-quantize) first
        source = ["-m", f"{repo.rsplit('/', 1)[-1]}-{quant or 'F16'}.gguf"]
    ctx = cap.kv_cache_tokens
    args: dict[str, Any] = {flag.lstrip("-").replace("-", "_"): value for flag, value in zip(source[::2], source[1::2])}
    args.update(n_gpu_layers=ngl, ctx_size=ctx, flash_attn=d.flash_attn or "on")
    flags = [*source, "-ngl", str(ngl), "-c", str(ctx), "-fa", args["flash_attn"]]
    if cap.max_num_seqs > 1:
        args["parallel"] = cap.max_num_seqs
        flags += ["-np", str(cap.max_num_seqs)]
    kv = {"float16": "f16", "bfloat16": "bf16", "float32": "f32"}.get(work.kv_cache_dtype or "", work.kv_cache_dtype)
    for name, flag in (("cache_type_k", "-ctk"), ("cache_type_v", "-ctv")):
        value = getattr(d, name) or kv
        if value:
            args[name] = value
            flags += [flag, value]
    if d.devices > 1:
        split = ",".join(["1"] * d.devices)
        args["tensor_split"] = split
        flags += ["--split-mode", "layer", "--tensor-split", split]
    if d.speculative is not None and d.speculative.draft is not None:
        name = d.speculative.draft.id
        draft = name if name.endswith(".gguf") else f"{name.rsplit('/', 1)[-1]}-{quant or 'F16'}.gguf"
        args["model_draft"] = draft
        args["draft_max"] = d.speculative.num_speculative_tokens
        flags += ["--model-draft", draft, "--draft-max", str(d.speculative.num_speculative_tokens)]
    for entry in d.override_tensors or ():
        args.setdefault("override_tensor", []).append(entry)
        flags += ["-ot", f"'{entry}'"]
    if d.n_cpu_moe:
        args["n_cpu_moe"] = d.n_cpu_moe
        flags += ["--n-cpu-moe", str(d.n_cpu_moe)]

    if d.mmproj:
        mmproj = f"mmproj-{repo.rsplit('/', 1)[-1]}-f16.gguf"
        args["mmproj"] = mmproj
        flags += ["--mmproj", mmproj]
    extra = {} if gguf else {"convert": f"convert_hf_to_gguf.py, then llama-quantize to {quant or 'F16'}"}
    return Launch(engine="llama.cpp", command="llama-server " + " ".join(flags), args=args, extra=extra)


#: torch's device name for each runtime (ROCm builds answer to "cuda").
_TORCH_DEVICE = {"cuda": "cuda", "rocm": "cuda", "metal": "mps", "xpu": "xpu", "hpu": "hpu"}


def transformers_launch(spec: ModelSpec, work: Workload, d: Deployment) -> Launch:
    """``AutoModelForCausalLM.from_pretrained(...)`` with the dtype, quantization and device map assumed."""
    args: dict[str, Any] = {"pretrained_model_name_or_path": spec.id,
                            "dtype": work.dtype or "auto",
                            "device_map": d.device_map or ("auto" if d.devices > 1 else _TORCH_DEVICE.get(d.gpu.runtime, "cuda")),
                            "attn_implementation": work.attn_implementation}
    if d.max_memory_bytes is not None:
        args["max_memory"] = {i: f"{d.max_memory_bytes / GiB:.1f}GiB" for i in range(d.devices)}
    quant = {"int8": "BitsAndBytesConfig(load_in_8bit=True)", "nf4": "BitsAndBytesConfig(load_in_4bit=True, "
             "bnb_4bit_quant_type='nf4')", "fp4": "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='fp4')"}
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    if work.quantization in quant:
        args["quantization_config"] = quant[work.quantization]
        text += f", quantization_config={quant[work.quantization]}"
    return Launch(engine="transformers", command=f"AutoModelForCausalLM.from_pretrained({text})", args=args)


#: Lightning strategy names for each training strategy (lightning.fabric.strategies registry).
_LIGHTNING_STRATEGY = {"none": "auto", "ddp": "ddp", "zero1": "deepspeed_stage_1", "zero2": "deepspeed_stage_2",
                       "zero3": "deepspeed_stage_3", "fsdp": "fsdp", "fsdp-grad-op": "fsdp", "fsdp-hybrid": "fsdp"}
#: transformers TrainingArguments ``optim`` for each optimizer (transformers.training_args.OptimizerNames).
_HF_OPTIM = {"adamw": "adamw_torch", "adam": "adamw_torch", "adamw-torch2.0": "adamw_torch",
             "adam-torch2.0": "adamw_torch", "adamw-8bit": "adamw_bnb_8bit",
             "paged-adamw-8bit": "paged_adamw_8bit", "adafactor": "adafactor", "sgd": "sgd", "lion": "lion_32bit"}


def training_launch(spec: ModelSpec, work: Workload, d: Deployment) -> Launch:
    """The settings a training estimate assumed, as accelerate, Lightning and TrainingArguments write them."""
    p = work.parallelism
    prec = work.precision.name
    ta: dict[str, Any] = {"per_device_train_batch_size": work.batch_size,
                          "gradient_accumulation_steps": work.gradient_accumulation_steps,
                          "gradient_checkpointing": work.gradient_checkpointing,
                          "bf16": prec.startswith("bf16"), "fp16": prec.startswith("16"),
                          "optim": _HF_OPTIM.get(work.optimizer.name, work.optimizer.name)}
    lightning: dict[str, Any] = {"devices": p.num_gpus, "precision": prec,
                                 "accumulate_grad_batches": work.gradient_accumulation_steps,
                                 "strategy": _LIGHTNING_STRATEGY.get(p.strategy, p.strategy)}
    if p.strategy.startswith("zero") and p.offload_optimizer:
        lightning["strategy"] = "deepspeed_stage_3_offload" if p.strategy == "zero3" else "deepspeed_stage_2_offload"
    accelerate: dict[str, Any] = {"num_processes": p.num_gpus,
                                  "mixed_precision": "bf16" if prec.startswith("bf16") else "fp16" if prec.startswith("16") else "no"}
    if p.strategy.startswith("zero"):
        accelerate["use_deepspeed"] = True
        accelerate["zero_stage"] = int(p.strategy[-1])
        if p.offload_optimizer:
            accelerate["offload_optimizer_device"] = "cpu"
    elif p.strategy.startswith("fsdp"):
        accelerate["use_fsdp"] = True
    elif p.num_gpus > 1:  # plain data parallel (accelerate launch --multi_gpu)
        accelerate["multi_gpu"] = True
    cmd = "accelerate launch " + " ".join(
        f"--{k}" if v is True else f"--{k} {v}" for k, v in accelerate.items()) + " train.py"
    args = {"method": work.method, "seq_len": work.seq_len, "lora_rank": work.lora_rank if work.method != "full" else None,
            "quantization": work.quantization}
    return Launch(engine="training", command=cmd, args={k: v for k, v in args.items() if v is not None},
                  extra={"accelerate": accelerate, "lightning": lightning, "training_arguments": ta})


# --------------------------------------------------------------------------- a device given by its memory

#: ``usable_memory_source`` of a device given by ``--device-memory-gib``.
DEVICE_MEMORY_SOURCE = "--device-memory-gib (given by the user)"


@dataclass(frozen=True, kw_only=True)
class MemoryOnlyGPU(GPU):
    """A device known only by the memory the user or the driver gives: not a catalog entry, so it has no
    datasheet to cite and no bandwidth, FLOP/s or price (speed and cost are left out for it)."""

    def __post_init__(self) -> None:
        from types import MappingProxyType

        from hf_gpu_estimator.hardware import FLOPS_DTYPES

        object.__setattr__(self, "peak_flops", MappingProxyType(dict.fromkeys(FLOPS_DTYPES)))
        object.__setattr__(self, "runtime", self.runtime or "cuda")


def device_gpu(memory_gib: float, like: GPU | None = None) -> GPU:
    """A GPU with ``memory_gib`` GiB for a card not in the catalog: ``like``'s other facts (bandwidth,
    FLOP/s, runtime) when given, else a CUDA device known by its memory only (no speed or price)."""
    if isinstance(memory_gib, bool) or not isinstance(memory_gib, (int, float)) or not 0 < memory_gib < 1 << 20:
        raise InvalidArgumentError("device_memory_gib", memory_gib, "a positive number of GiB, e.g. 24")
    nbytes = int(memory_gib * GiB)
    if like is not None:
        return replace(like, name=f"{like.name} ({memory_gib:g} GiB)", aliases=(), memory_bytes=nbytes,
                       usable_memory_bytes=nbytes, usable_memory_source=DEVICE_MEMORY_SOURCE)
    return MemoryOnlyGPU(name=f"device-{memory_gib:.4g}GiB", vendor="nvidia", memory_bytes=nbytes,
                         usable_memory_bytes=nbytes, usable_memory_source=DEVICE_MEMORY_SOURCE,
                         memory_bandwidth_bytes_per_s=0.0, peak_flops={}, source=DEVICE_MEMORY_SOURCE, date="",
                         notes="memory only: no bandwidth, FLOP/s or price")


def known_by_memory_only(gpu: GPU) -> bool:
    """Whether ``gpu`` is a :func:`device_gpu` without a catalog entry behind it (no speed, no price)."""
    return isinstance(gpu, MemoryOnlyGPU)
