"""Exact mode as an estimate: a traced peak turned into a :class:`MemoryEstimate` with the analytic contract.

:func:`exact_memory` traces the workload on the real transformers model (fake tensors, see
:mod:`hf_gpu_estimator.runtime.trace`) and maps the trace's categories at the peak onto the
estimate's components. What a trace cannot see comes from the analytic estimate, and each
such piece is named in the returned assumptions:

* the cuBLAS workspace (allocated by cuBLAS handles at the first GEMM, outside any traced
  operator) — always added;
* quantized weights (QLoRA's 4-bit base, int8/fp8/GPTQ/AWQ/GGUF): bitsandbytes and the other
  kernels run neither on CPU nor on fake tensors, so the base is traced in 16 bits and the
  analytic weights term replaces the traced one;
* optimizers the runner does not build (8-bit and paged AdamW, Lion): the workload is traced
  with plain SGD (no state) and the analytic optimizer-state term is added on top.

Reserved and device totals follow :mod:`hf_gpu_estimator.memory.overhead` (a device calibration,
when one applies, is layered on by :mod:`hf_gpu_estimator.calibration`, as for analytic mode).

Exact mode covers every model type the installed transformers implements, whether or not the
analytic side has a family for it (:func:`inspect_for_exact`): the model class is the type's
``*ForCausalLM``, else the config's ``architectures[0]`` when transformers defines it for that config,
else its image-text-to-text wrapper (``*ForConditionalGeneration``); never remote code. Without an
analytic layer model, the parameter counts come from the model built on the meta device.

This module imports torch only inside its functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.constants import MiB
from hf_gpu_estimator.errors import MalformedConfigError, TraceError, UnknownModelTypeError, UnsupportedArchitectureError
from hf_gpu_estimator.memory import overhead
from hf_gpu_estimator.memory.terms import COMPONENTS, MemoryEstimate, Moment, Term
from hf_gpu_estimator.verdict import CONTEXT_KEY, RATIO_KEY, Assumption
from hf_gpu_estimator.workload import OPTIMIZERS, Workload


if TYPE_CHECKING:
    from hf_gpu_estimator.spec import ModelSpec
    from hf_gpu_estimator.runtime.trace import TraceResult

#: The key of the lines an exact estimate adds about its trace (``hfge estimate --compare`` lists them).
TRACE_KEY = "exact.trace"

#: Beyond this many parameters a fake-tensor trace takes minutes (it runs every operator of
#: every layer in Python); the analytic model answers in milliseconds.
MAX_TRACE_PARAMETERS = 200_000_000_000

#: How many of the trace's top memory holders the assumptions list.
TOP_HOLDERS = 5

#: Trace category (TraceResult.breakdown_at_peak) → estimate component.
CATEGORY_TO_COMPONENT: Mapping[str, str] = {
    "params": "weights",
    "buffers": "weights",
    "grads": "gradients",
    "optimizer": "optimizer_states",
    "activations": "activations",
    "temporaries": "transient",
    "inputs": "transient",
}

_ANALYTIC_HINT = "use analytic mode instead (drop --exact / mode='exact')"


def _mib(n: int) -> str:
    return f"{n / MiB:,.1f} MiB"


def exact_memory(spec: ModelSpec, workload: Workload, *, analytic: MemoryEstimate,
                 max_parameters: int = MAX_TRACE_PARAMETERS) -> tuple[MemoryEstimate, tuple[str, ...]]:
    """Trace ``workload`` on ``spec``'s transformers model and return it as a :class:`MemoryEstimate`.

    Args:
        spec: a ModelSpec with its ``config`` (config.json), from :func:`inspect_model`.
        workload: the normalized workload.
        analytic: the analytic estimate of the same workload; supplies the pieces a trace
            cannot see (cuBLAS workspace, quantized weights, unsupported optimizers) and the
            CUDA context.
        max_parameters: refuse larger models (the trace would take minutes).

    Returns:
        ``(memory, assumptions)``: ``memory.allocated_peak_bytes`` is the traced peak plus the
        cuBLAS workspace (plus the analytic fallbacks listed in ``assumptions``), and
        ``memory.components`` adds up to it. The assumptions name the phase and module at the
        peak and the top memory holders.

    Raises:
        TraceError: no config, an architecture transformers cannot build, a model too large to
            trace, a multi-device split, or a failure while tracing; the message says what to do.
        MissingDependencyError: torch or transformers is not installed.
    """
    from hf_gpu_estimator.runtime.build import require_torch_stack
    from hf_gpu_estimator.runtime.optimizers import SUPPORTED_OPTIMIZERS

    config = dict(spec.config or {})
    if not config.get("model_type"):
        raise TraceError(f"exact mode needs the model's config.json, and {spec.id!r} was read without one "
                         f"(header-only or catalog source); {_ANALYTIC_HINT}, or point at a repo or folder "
                         "with config.json")
    p = workload.parallelism
    if p.num_gpus > 1 and (p.strategy not in ("none", "ddp") or p.tp > 1 or p.pp > 1):
        raise TraceError(f"exact mode traces one device and cannot shard it ({p.strategy}, tp={p.tp}, pp={p.pp}); "
                         f"{_ANALYTIC_HINT}, or trace with --num-gpus 1")
    if spec.parameters.total > max_parameters:
        raise TraceError(f"{spec.id!r} has {spec.parameters.total / 1e9:,.0f}B parameters: tracing it on fake tensors "
                         f"would take minutes (limit {max_parameters / 1e9:,.0f}B); {_ANALYTIC_HINT}, or trace a "
                         "config of the same family with fewer layers")
    require_torch_stack("exact mode")
    from hf_gpu_estimator.runtime.trace import trace_workload

    notes: list[str] = []  # "exact: ..." lines, and the overhead lines keyed as the analytic model keys them
    traced_workload = workload
    optimizer_fallback = workload.is_training and workload.optimizer.name not in SUPPORTED_OPTIMIZERS
    if optimizer_fallback:
        # No bitsandbytes/lion on fake tensors: trace with stateless SGD, add the analytic states.
        traced_workload = workload.with_(optimizer=OPTIMIZERS["sgd"])
    if p.num_gpus > 1:
        traced_workload = traced_workload.with_(parallelism=type(p)())
    try:
        trace = trace_workload(config, traced_workload)
    except TraceError as e:
        raise TraceError(f"{e}; {_ANALYTIC_HINT}") from e
    memory = _to_memory(trace, workload, analytic, optimizer_fallback=optimizer_fallback, notes=notes)
    # what the trace itself says (every line but the keyed overhead ones), keyed for --compare's notes
    traced = (*notes, *(f"trace: {f}" for f in trace.fallbacks))
    return memory, tuple(n if isinstance(n, Assumption) else Assumption(n, key=TRACE_KEY) for n in traced)


def inspect_for_exact(source: object, *, revision: str | None = None, token: str | None = None) -> ModelSpec:
    """:func:`~hf_gpu_estimator.sources.inspect_model`, except that the analytic layer model is no veto:
    a config it has no family for, or rejects, is traced as transformers builds it
    (:func:`spec_for_unsupported`); a transformers that cannot build it either raises the analytic error."""
    from hf_gpu_estimator.sources import inspect_model

    try:
        return inspect_model(source, revision=revision, token=token)
    except UnsupportedArchitectureError as e:
        if not e.config:
            raise
        return spec_for_unsupported(e, source)
    except MalformedConfigError as e:
        config = getattr(e, "config", None)  # set only where the analytic layer model rejected the config
        if not config:
            raise
        try:
            return spec_from_transformers(config, model_id=_model_id(config, source),
                                          reason=f"the analytic model rejects this config ({e})")
        except TraceError:
            raise e from None


def spec_for_unsupported(error: UnsupportedArchitectureError, source: object) -> ModelSpec:
    """The ModelSpec exact mode traces when inspection found no analytic family (``error.config`` set).

    Raises:
        UnknownModelTypeError: transformers does not know the model type either: the message
            names what the analytic side supports and that ``--exact`` needs a transformers
            that implements it.
    """
    from hf_gpu_estimator.runtime.build import knows_model_type, require_torch_stack

    require_torch_stack("exact mode")
    import transformers

    config = dict(error.config or {})
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not knows_model_type(model_type):
        raise UnknownModelTypeError(model_type, transformers.__version__, supported=error.supported) from error
    return spec_from_transformers(config, model_id=_model_id(config, source),
                                  reason=f"model_type {model_type!r} has no analytic family")


def _model_id(config: Mapping[str, Any], source: object) -> str:
    name = config.get("_name_or_path")
    if isinstance(source, str):
        return source
    return name if isinstance(name, str) and name else f"{config.get('model_type')} (config)"


def spec_from_transformers(config: Mapping[str, Any], *, model_id: str, reason: str) -> ModelSpec:
    """A ModelSpec for exact mode when the analytic side cannot describe ``config``.

    The transformers model is built on the meta device (no memory) and its parameters are
    counted as :func:`hf_gpu_estimator.sources.module.spec_from_module` counts a live model, so
    the counts are exact; ``architecture`` is what the built module's config gives (``None`` where
    no analytic layer model reads it), which exact mode does not need.

    Args:
        config: the config.json mapping (with ``model_type``).
        model_id: the name for reports.
        reason: why the analytic side could not describe it (kept in the assumptions).

    Raises:
        UnknownModelTypeError: transformers does not implement the model type.
        TraceError: transformers has no generating class for it, or the build failed.
        MissingDependencyError: torch or transformers is not installed.
    """
    from dataclasses import replace

    from hf_gpu_estimator.runtime.build import build_meta_model, require_torch_stack
    from hf_gpu_estimator.sources.module import spec_from_module

    require_torch_stack("exact mode")
    model = build_meta_model(config)
    spec = spec_from_module(model, model_id=model_id)
    notes = tuple(n for n in spec.assumptions if "layer dimensions unknown" not in n)
    return replace(
        spec, config=dict(config), checkpoint_bytes=None, checkpoint_bytes_by_dtype={},
        provenance={**spec.provenance, "parameters": "module"},
        assumptions=(f"{reason}: exact mode traces transformers' {type(model).__name__}; parameter counts from "
                     "that model built on the meta device", *notes),
    )  # fmt: skip


def _to_memory(trace: TraceResult, workload: Workload, analytic: MemoryEstimate, *, optimizer_fallback: bool,
               notes: list[str]) -> MemoryEstimate:
    import transformers

    components = dict.fromkeys(COMPONENTS, 0)
    for category, nbytes in trace.breakdown_at_peak.items():
        components[CATEGORY_TO_COMPONENT.get(category, "transient")] += int(nbytes)
    source = f"traced: transformers {transformers.__version__} on fake tensors, at {trace.phase_at_peak}"
    terms: list[Term] = []

    # The KV cache lives among the traced activations (it is built inside the attention forward).
    if not workload.is_training and trace.kv_cache_bytes:
        if trace.phase_at_peak == "prefill":
            prefill = next((m for m in analytic.moments if m.phase == "prefill"), None)
            if prefill is not None:
                kv = prefill.components.get("kv_cache", 0)
                kv_note = "the prompt's cache (analytic size at prefill)"
            else:  # no analytic layer model: the final cache scaled to the prompt's length
                entries = workload.seq_len + max(workload.new_tokens, 1) - 1
                kv = trace.kv_cache_bytes * workload.seq_len // entries
                kv_note = "the prompt's cache (traced final cache x prompt / final length)"
        else:
            kv, kv_note = trace.kv_cache_bytes, "the cache at the last decode step (traced)"
        kv = min(kv, components["activations"])
        components["activations"] -= kv
        components["kv_cache"] += kv
        notes.append(f"exact: kv_cache split out of the traced activations: {kv_note}")
        terms.append(Term(component="kv_cache", name="kv_cache (end of generation)", bytes=trace.kv_cache_bytes,
                          formula="traced DynamicCache storage after the last decode step"))

    # Pieces the trace cannot see, from the analytic estimate.
    ws = analytic.components.get("workspace", 0) or overhead.CUBLAS_WORKSPACE_BYTES
    components["workspace"] = ws
    notes.append(f"exact: + cuBLAS workspace {_mib(ws)} (analytic term: cuBLAS allocates it at the first GEMM, "
                 "which fake tensors never run)")
    if workload.quantization != "none":
        traced_weights = components["weights"]
        components["weights"] = analytic.components.get("weights", traced_weights)
        notes.append(f"exact: {workload.quantization} weights from the analytic model "
                     f"({_mib(components['weights'])}; traced unquantized base: {_mib(traced_weights)}): quantized "
                     "kernels (bitsandbytes, GPTQ, AWQ, GGUF) do not run on fake tensors")
    if optimizer_fallback:
        states = analytic.components.get("optimizer_states", 0)
        components["optimizer_states"] += states
        notes.append(f"exact: optimizer {workload.optimizer.name!r} is not run on fake tensors: traced with SGD "
                     f"(no state) + the analytic optimizer states {_mib(states)} ({workload.optimizer.source})")
    if workload.parallelism.num_gpus > 1:
        notes.append(f"exact: traced one replica of {workload.parallelism.num_gpus} (DDP); DDP gradient buckets "
                     "are not traced")

    allocated = sum(components.values())
    task = workload.task
    decode_kv = (trace.kv_cache_bytes or 0) if (not workload.is_training and workload.new_tokens > 1) else 0
    reserved = overhead.reserved_bytes(allocated, task, decode_kv_bytes=decode_kv)
    context = analytic.cuda_context_bytes
    notes.append(Assumption(key=RATIO_KEY, text=(
        f"reserved = allocated x {overhead.RESERVED_RATIO[task]} (caching allocator, typical range "
        f"{overhead.RESERVED_RATIO_RANGE[task][0]}-{overhead.RESERVED_RATIO_RANGE[task][1]})"
        + (f" + {overhead.DECODE_FRAGMENTATION} x the final KV cache" if decode_kv else ""))))
    notes.append(Assumption(key=CONTEXT_KEY, text=f"device total = reserved + CUDA context {context >> 20} MiB"))
    notes.append(f"exact: peak in phase {trace.phase_at_peak!r}"
                 + (f", inside {trace.module_at_peak}" if trace.module_at_peak else "")
                 + f"; traced peak {_mib(trace.peak_bytes)} in {trace.trace_seconds:.1f} s")
    if trace.top_holders:
        holders = ", ".join(f"{name} {_mib(n)}" for name, n in trace.top_holders[:TOP_HOLDERS])
        notes.append(f"exact: top memory holders (parameters + what their forward kept): {holders}")
    notes.append("exact: kernel-internal workspaces of fused kernels (flash backward's fp32 accumulators) are "
                 "not traced")

    for name in COMPONENTS:
        if components[name] and not any(t.component == name for t in terms):
            formula = source
            if name == "workspace":
                formula = "analytic: cuBLAS + cuBLASLt workspaces via the caching allocator"
            elif name == "weights" and workload.quantization != "none":
                formula = f"analytic: {workload.quantization} weights"
            elif name == "optimizer_states" and optimizer_fallback:
                formula = f"analytic: {workload.optimizer.source}"
            terms.append(Term(component=name, name=name.replace("_", " "), bytes=components[name], formula=formula))
    shift = allocated - trace.peak_bytes  # what the analytic pieces add to every phase
    moments = [Moment(phase=trace.phase_at_peak, components=components, note="traced peak")]
    for phase, peak in trace.phase_peaks.items():
        if phase != trace.phase_at_peak:
            moments.append(Moment(phase=phase, components={"transient": int(peak) + shift},
                                  note="traced phase peak (total only)"))
    return MemoryEstimate(
        allocated_peak_bytes=allocated, reserved_peak_bytes=reserved, device_total_bytes=reserved + context,
        allocated_low_bytes=allocated, allocated_high_bytes=allocated, components=components,
        phase_at_peak=trace.phase_at_peak, moments=tuple(moments), terms=tuple(terms),
        num_devices=analytic.num_devices, cuda_context_bytes=context, allocator_overhead_bytes=reserved - allocated,
        host_offload_bytes=analytic.host_offload_bytes, assumptions=(),
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Difference:
    """One figure, analytic against exact; ``relative_error`` is analytic / exact - 1 (``None`` where exact is 0)."""

    analytic_bytes: int
    exact_bytes: int

    @property
    def difference_bytes(self) -> int:
        return self.analytic_bytes - self.exact_bytes

    @property
    def relative_error(self) -> float | None:
        return self.analytic_bytes / self.exact_bytes - 1 if self.exact_bytes else None

    def to_dict(self) -> dict[str, Any]:
        return {"analytic_bytes": self.analytic_bytes, "exact_bytes": self.exact_bytes,
                "difference_bytes": self.difference_bytes, "relative_error": self.relative_error}


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Analytic vs exact memory: per component (those either side holds) and the three totals."""

    components: Mapping[str, Difference]
    allocated_peak: Difference
    reserved_peak: Difference
    device_total: Difference
    analytic_phase: str
    exact_phase: str

    def to_dict(self) -> dict[str, Any]:
        """The ``difference`` object of ``hfge estimate --compare --format json``."""
        return {"components": {name: d.to_dict() for name, d in self.components.items()},
                "phase_at_peak": {"analytic": self.analytic_phase, "exact": self.exact_phase},
                "allocated_peak_bytes": self.allocated_peak.to_dict(),
                "reserved_peak_bytes": self.reserved_peak.to_dict(),
                "device_total_bytes": self.device_total.to_dict()}


def compare(analytic: MemoryEstimate, exact: MemoryEstimate) -> Comparison:
    """Analytic vs exact, per component and in total: bytes of each, difference, relative error."""

    def diff(a: int, e: int) -> Difference:
        return Difference(analytic_bytes=int(a), exact_bytes=int(e))

    components = {name: diff(analytic.components.get(name, 0), exact.components.get(name, 0)) for name in COMPONENTS
                  if analytic.components.get(name, 0) or exact.components.get(name, 0)}
    return Comparison(components=components,
                      allocated_peak=diff(analytic.allocated_peak_bytes, exact.allocated_peak_bytes),
                      reserved_peak=diff(analytic.reserved_peak_bytes, exact.reserved_peak_bytes),
                      device_total=diff(analytic.device_total_bytes, exact.device_total_bytes),
                      analytic_phase=analytic.phase_at_peak, exact_phase=exact.phase_at_peak)
