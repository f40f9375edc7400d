"""Framework-free preflight: estimate once, compare with the device, explain, suggest fixes that fit.

The integrations (Lightning, accelerate, transformers) only translate a framework's live state
into ``workload_kwargs`` (the keywords of :func:`hf_gpu_estimator.make_workload`) and call
:func:`evaluate` on rank zero, then :func:`enforce` on every rank. Nothing here imports torch
unless the device has to be asked for its memory (neither ``gpu=`` nor ``device_memory_bytes=``).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hf_gpu_estimator.constants import DEFAULT_MARGIN, GiB
from hf_gpu_estimator.errors import InvalidArgumentError, MalformedConfigError, PreflightError
from hf_gpu_estimator.suggest import Suggestion, search

if TYPE_CHECKING:
    from hf_gpu_estimator.estimator import Estimate
    from hf_gpu_estimator.hardware import GPU
    from hf_gpu_estimator.spec import ModelSpec

__all__ = [
    "DEFAULT_MARGIN",
    "ON_EXCEED",
    "PreflightResult",
    "Suggestion",
    "enforce",
    "evaluate",
    "preflight_check",
    "resolve_device",
    "resolve_device_memory",
    "validate_options",
]

logger = logging.getLogger("hf_gpu_estimator.integrations")

ON_EXCEED: tuple[str, ...] = ("warn", "raise")
Status = Literal["fits", "tight", "exceeds", "skipped", "failed"]
#: Below this, ``device_memory_bytes`` was most likely meant in GiB (``device_memory_bytes=24``):
#: warned about when the callback is built (the value is still used, as given).
MIN_DEVICE_MEMORY_BYTES = GiB
#: How to apply each kind of change, keyed by :data:`~hf_gpu_estimator.suggest.ChangeKind`; format
#: fields are the changed workload's keywords. Kinds without a template fall back to the CLI flags.
Hints = Mapping[str, str]


def _gib(nbytes: float) -> str:
    return f"{nbytes / GiB:.2f} GiB"


@dataclass(frozen=True, kw_only=True)
class PreflightResult:
    """What a preflight check found.

    ``status`` is the verdict (:mod:`hf_gpu_estimator.verdict`): ``"fits"``, ``"tight"`` (the
    estimate's measured range straddles the budget) or ``"exceeds"`` (does not fit); or
    ``"skipped"`` (no device memory known: no ``gpu=``, no ``device_memory_bytes=``, no CUDA) or
    ``"failed"`` (a bad ``gpu=``/``device_memory_bytes=``, or the estimator raised; ``error`` says why).
    Byte counts are per device: ``required_bytes`` is the estimate and ``required_high_bytes`` the
    high end of its range, compared with ``budget_bytes`` (the device's ``available_bytes`` less the margin).
    """

    status: Status
    message: str
    estimate: Estimate | None = None
    required_bytes: int | None = None
    required_high_bytes: int | None = None
    available_bytes: int | None = None
    budget_bytes: int | None = None
    device_source: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    error: str | None = None
    workload_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fits(self) -> bool | None:
        """True when the verdict is "fits", False when "tight" or "exceeds", None when skipped or failed."""
        if self.status in ("fits", "tight", "exceeds"):
            return self.status == "fits"
        return None

    @property
    def shortfall_bytes(self) -> int:
        """Bytes missing per device at the high end of the range (0 when it fits)."""
        high = self.required_high_bytes if self.required_high_bytes is not None else self.required_bytes
        if self.status not in ("tight", "exceeds") or high is None or self.budget_bytes is None:
            return 0
        return max(0, high - self.budget_bytes)

    def __repr__(self) -> str:
        """One line: the status and its first line (``print(callback.result)`` in a notebook)."""
        return f"PreflightResult(status={self.status!r}, {self.message.splitlines()[0].removeprefix('hf-gpu-estimator: ')!r})"

    __str__ = __repr__


def validate_options(*, gpu: object = None, device_memory_bytes: object = None, on_exceed: object = "warn",
                     margin: object = DEFAULT_MARGIN) -> None:
    """Check the options every entry point shares; raise InvalidArgumentError (at construction).

    Values of the right type that look wrong do not raise, so a typo never stops training: a
    device memory below 1 GiB is warned about here (``UserWarning``) and used as given; an unknown
    or ambiguous GPU name makes the check skip with one warning when the run starts
    (:func:`device_problem`).
    """
    if on_exceed not in ON_EXCEED:
        raise InvalidArgumentError("on_exceed", on_exceed, "'warn' or 'raise'")
    if gpu is not None and device_memory_bytes is not None:
        raise InvalidArgumentError("gpu", gpu, "either gpu= or device_memory_bytes=, not both")
    if device_memory_bytes is not None and (
        isinstance(device_memory_bytes, bool) or not isinstance(device_memory_bytes, int) or device_memory_bytes < 1
    ):
        raise InvalidArgumentError("device_memory_bytes", device_memory_bytes, "an integer number of bytes >= 1")
    if device_memory_bytes is not None and device_memory_bytes < MIN_DEVICE_MEMORY_BYTES:
        import warnings

        warnings.warn(f"hf-gpu-estimator: device_memory_bytes={device_memory_bytes} is below 1 GiB: it is a number of "
                      f"bytes ({device_memory_bytes} << 30 for {device_memory_bytes} GiB)", stacklevel=3)
    if gpu is not None and not isinstance(gpu, str):
        from hf_gpu_estimator.hardware import GPU

        if not isinstance(gpu, GPU):
            raise InvalidArgumentError("gpu", gpu, "a GPU catalog name such as 'A100-80GB' or a GPU")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 0.5:
        raise InvalidArgumentError("margin", margin, "a number from 0 to 0.5")


def device_problem(gpu: str | GPU | None = None, device_memory_bytes: int | None = None) -> str | None:
    """Why ``gpu=`` cannot be compared with (an unknown or ambiguous name: the check is then skipped), or None."""
    if isinstance(gpu, str):
        from hf_gpu_estimator.errors import UnknownNameError
        from hf_gpu_estimator.hardware import get_gpu

        try:
            get_gpu(gpu)
        except UnknownNameError as e:
            return str(e)
    return None


def resolve_device_memory(gpu: str | GPU | None = None, device_memory_bytes: int | None = None) -> tuple[int | None, str | None]:
    """The device's total memory in bytes and where it came from, or ``(None, None)``.

    Order: ``device_memory_bytes``; the catalog's ``usable_memory_bytes`` for ``gpu``; the total
    that ``torch.cuda.mem_get_info()`` reports for the current CUDA device (torch installed and
    CUDA available). Nothing else: a CPU-only machine has no device to compare with.
    """
    total, _free, source = resolve_device(gpu, device_memory_bytes)
    return total, source


def resolve_device(gpu: str | GPU | None = None,
                   device_memory_bytes: int | None = None) -> tuple[int | None, int | None, str | None]:
    """``(total, free, source)``: :func:`resolve_device_memory`, and for the current CUDA device what it
    reports free to this run (``mem_get_info`` free plus what this process's allocator already holds,
    which the estimate counts itself); ``free`` is ``None`` unless it is read from the device."""
    if device_memory_bytes is not None:
        return device_memory_bytes, None, "device_memory_bytes"
    if gpu is not None:
        from hf_gpu_estimator.hardware import get_gpu

        entry = get_gpu(gpu)
        return entry.usable_memory_bytes, None, f"the catalog's {entry.name}"
    torch = sys.modules.get("torch")
    if torch is None and importlib.util.find_spec("torch") is not None:
        import torch
    if torch is not None and torch.cuda.is_available():
        index = torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        free = int(free) + int(torch.cuda.memory_reserved(index))
        return int(total), min(free, int(total)), (f"cuda:{index} ({torch.cuda.get_device_name(index)}), "
                                                   "torch.cuda.mem_get_info")
    return None, None, None


def evaluate(model_or_spec: Any, *, workload_kwargs: Mapping[str, Any], gpu: str | GPU | None = None,
             device_memory_bytes: int | None = None, margin: float = DEFAULT_MARGIN,
             hints: Hints | None = None, suggest: bool = True, notes: tuple[str, ...] = ()) -> PreflightResult:
    """Estimate once and compare with the device; never raises for estimation problems.

    Args:
        model_or_spec: anything :func:`hf_gpu_estimator.estimator` accepts (a live module, a config
            dict, a ModelSpec, a Hub id or path).
        workload_kwargs: keywords of :func:`hf_gpu_estimator.make_workload`.
        gpu, device_memory_bytes: the device to compare with (see :func:`resolve_device_memory`).
        margin: share of the device kept free.
        hints: how to apply each kind of suggestion in the caller's framework (default: CLI flags).
        suggest: search for changes that fit when the workload does not.
        notes: what the integration could not read, appended to the message.

    Returns:
        A :class:`PreflightResult`; ``status="failed"`` with ``error`` set when the estimator raised.
    """
    kwargs = dict(workload_kwargs)
    problem = device_problem(gpu, device_memory_bytes)
    if problem is not None:
        return PreflightResult(status="failed", error=problem, workload_kwargs=kwargs,
                               message=f"hf-gpu-estimator: memory preflight skipped: {problem}; the run continues")
    try:
        available, free, source = resolve_device(gpu, device_memory_bytes)
    except Exception as e:  # a broken CUDA driver must not stop a run
        return PreflightResult(status="failed", message=f"hf-gpu-estimator: could not read the device memory: {e}",
                               error=f"{type(e).__name__}: {e}", workload_kwargs=kwargs)
    if available is None:
        return PreflightResult(status="skipped", workload_kwargs=kwargs,
                               message="hf-gpu-estimator: no device to compare with (no CUDA device, and neither "
                                       "gpu= nor device_memory_bytes= was given); memory preflight skipped")
    try:
        from hf_gpu_estimator.estimator import estimate
        from hf_gpu_estimator.sources import inspect_model

        spec = inspect_model(model_or_spec)
        est = estimate(spec, free_memory_bytes=free if free is not None and free < available else None, **kwargs)
    except Exception as e:
        return PreflightResult(status="failed", available_bytes=available, device_source=source, workload_kwargs=kwargs,
                               error=f"{type(e).__name__}: {e}",
                               message=f"hf-gpu-estimator: memory estimate failed ({type(e).__name__}: {e}); "
                                       "the run continues without a preflight check")
    from dataclasses import replace

    from hf_gpu_estimator.report import verdict_line

    entry = None
    if gpu is not None and device_memory_bytes is None:
        from hf_gpu_estimator.hardware import get_gpu

        entry = get_gpu(gpu)
    # the one fit: the catalog entry (its own runtime context, MXFP4 and bf16 support), else a device
    # known by the memory it reports
    from hf_gpu_estimator.planner.deployment import device_gpu

    target = entry if entry is not None else device_gpu(available / (1 << 30))
    verdict = replace(est.verdict(target, margin=margin), name=source or "device")
    if free is not None and free < available:
        available = free
    required, high, budget = verdict.needs_bytes, verdict.needs_high_bytes, verdict.limit_bytes
    common = {"estimate": est, "required_bytes": required, "required_high_bytes": high, "available_bytes": available,
              "budget_bytes": budget, "device_source": source, "workload_kwargs": kwargs}
    if entry is not None:
        from hf_gpu_estimator.planner._search import fp16_fallback, lacks_bf16

        fp16, _ = fp16_fallback(spec, est.workload, entry)
        if lacks_bf16(entry) and fp16 is not est.workload:  # bf16 does not run there, whatever its memory
            fix = (f"--precision {fp16.precision.name}" if fp16.is_training else "--dtype float16")
            message = (f"hf-gpu-estimator: bf16 is not supported on {entry.name} (compute capability below 8.0, "
                       f"torch.cuda.is_bf16_supported() is False); use {fix} (fp16): it needs about {_gib(required)} "
                       f"per device of {_gib(available)} ({source})")
            return PreflightResult(status="exceeds", message=message, **common)
    if verdict.fits:
        return PreflightResult(status="fits", message=f"hf-gpu-estimator: {verdict_line(verdict)}", **common)
    suggestions: tuple[Suggestion, ...] = ()
    suggest_error = None
    if suggest:
        try:
            suggestions = tuple(suggest_fixes(spec, kwargs, budget_bytes=budget, hints=hints))
        except Exception as e:  # suggestions are a courtesy; the warning itself must still go out
            suggest_error = f"{type(e).__name__}: {e}"
    message = _exceed_message(est, verdict_text=verdict_line(verdict), suggestions=suggestions,
                              suggest_error=suggest_error, notes=notes)
    return PreflightResult(status="tight" if verdict.verdict == "tight" else "exceeds", message=message,
                           suggestions=suggestions, **common)


def enforce(status: str, message: str, *, on_exceed: str = "warn", log: logging.Logger | None = None,
            emit: bool = True, required_bytes: int | None = None, available_bytes: int | None = None,
            say: Callable[[str], None] | None = None) -> None:
    """Act on a verdict: print it once (when ``emit``, i.e. on rank zero) and raise if asked to.

    ``exceeds``, ``tight`` and ``failed`` go to ``log`` at warning level; ``fits`` and ``skipped``
    to ``say`` (the framework's own printing: Lightning's ``rank_zero_info``, ``accelerator.print``;
    default ``log.info``). With ``on_exceed="raise"``, ``exceeds`` raises PreflightError on every
    rank (so no rank waits on a collective the others never reach); ``tight`` and ``failed`` never raise.
    """
    log = log or logger
    if emit:
        if status in ("exceeds", "tight", "failed"):
            log.warning(message)
        else:
            (say or log.info)(message)
    if status == "exceeds" and on_exceed == "raise":
        raise PreflightError(message, required_bytes=required_bytes, available_bytes=available_bytes)


def preflight_check(model_or_spec: Any, *, workload_kwargs: Mapping[str, Any], gpu: str | GPU | None = None,
                    device_memory_bytes: int | None = None, on_exceed: str = "warn",
                    logger: logging.Logger | None = None, margin: float = DEFAULT_MARGIN,
                    hints: Hints | None = None, notes: tuple[str, ...] = ()) -> PreflightResult:
    """Estimate once, compare with the device, log the verdict, raise if asked to.

    Args:
        model_or_spec: a live module, config dict, ModelSpec, Hub id or path.
        workload_kwargs: keywords of :func:`hf_gpu_estimator.make_workload`.
        gpu: a catalog name whose usable memory is the device's.
        device_memory_bytes: the device's total memory (wins over ``gpu``; give one of them).
        on_exceed: ``"warn"`` (log a warning) or ``"raise"`` (PreflightError).
        logger: where the verdict goes; default ``hf_gpu_estimator.integrations``.
        margin: share of the device kept free (default 5 %).
        hints: how to apply each suggestion in the caller's framework.
        notes: what the caller could not read, appended to the message.

    Returns:
        The :class:`PreflightResult`.

    Raises:
        PreflightError: the workload does not fit and ``on_exceed="raise"``.
        InvalidArgumentError: bad options (not a failed estimate, which only warns).

    Example:
        >>> from hf_gpu_estimator.integrations import preflight_check
        >>> r = preflight_check("meta-llama/Llama-2-7b-hf", device_memory_bytes=8 << 30,
        ...                     workload_kwargs={"task": "training", "batch_size": 1, "seq_len": 512})
        >>> r.status, r.shortfall_bytes > 0, any("method" in s.changes for s in r.suggestions)
        ('exceeds', True, True)
    """
    validate_options(gpu=gpu, device_memory_bytes=device_memory_bytes, on_exceed=on_exceed, margin=margin)
    result = evaluate(model_or_spec, workload_kwargs=workload_kwargs, gpu=gpu, device_memory_bytes=device_memory_bytes,
                      margin=margin, hints=hints, notes=notes)
    enforce(result.status, result.message, on_exceed=on_exceed, log=logger, required_bytes=result.required_bytes,
            available_bytes=result.available_bytes)
    return result


# --- suggestions -----------------------------------------------------------------------------------


def suggest_fixes(spec: ModelSpec, kwargs: Mapping[str, Any], *, budget_bytes: int,
                  hints: Hints | None = None) -> list[Suggestion]:
    """Changes to ``kwargs`` that bring the per-device total under ``budget_bytes`` (see
    :func:`hf_gpu_estimator.suggest.search`), each with ``how`` phrased by ``hints``."""
    return [with_hint(s, hints) for s in search(spec, kwargs, budget_bytes=budget_bytes)]


def with_hint(suggestion: Suggestion, hints: Hints | None) -> Suggestion:
    """``suggestion`` with ``how`` filled from ``hints`` (one template per kind of change), else its CLI flags."""
    values = suggestion.workload.to_dict()
    parts = [_format_hint(hints[kind], values) for kind in suggestion.changes if hints and hints.get(kind)]
    return replace(suggestion, how="; ".join(dict.fromkeys(parts)) or suggestion.flags)


def _format_hint(template: str, values: Mapping[str, Any]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def _exceed_message(est: Estimate, *, verdict_text: str, suggestions: tuple[Suggestion, ...],
                    suggest_error: str | None, notes: tuple[str, ...]) -> str:
    w = est.workload
    mem = est.memory
    devices = w.parallelism.num_gpus
    what = (f"{w.task} ({w.method}) of {est.spec.id}, batch {w.batch_size} x {w.seq_len} tokens, "
            f"{w.precision.name if w.is_training else (w.dtype or est.spec.stored_dtype)}, "
            f"{w.optimizer.name if w.is_training else 'no optimizer'}, "
            f"{devices} device{'s' if devices > 1 else ''}"
            f"{', ' + w.parallelism.strategy if w.parallelism.strategy != 'none' else ''}")
    parts = ", ".join(f"{name.replace('_', ' ')} {_gib(v)}" for name, v in mem.components.items() if v >= (1 << 20))
    risk = "may" if verdict_text.startswith("tight") else "will likely"
    lines = [
        f"hf-gpu-estimator: this run {risk} run out of GPU memory: {verdict_text}",
        f"  workload: {what}",
        f"  peak at {mem.phase_at_peak}: {parts}; + allocator {_gib(mem.allocator_overhead_bytes)} "
        f"+ CUDA context {_gib(mem.cuda_context_bytes)}",
    ]
    if suggestions:
        lines.append("  each of these fits (re-estimated):")
        for s in suggestions:
            lines.append(f"    - {s.title}: {_gib(s.device_total_bytes)} (up to {_gib(s.device_total_high_bytes)})"
                         + (f"  [{s.how}]" if s.how else ""))
    elif suggest_error:
        lines.append(f"  (no suggestions: {suggest_error})")
    else:
        lines.append("  no single change we model fits this device; use a larger GPU or more devices")
    for note in notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


# --- reading live objects (duck-typed: no torch import) ---------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    """What a live model tells the estimator: the spec source and the workload options it implies.

    ``source`` is what to hand :func:`inspect_model` (the transformers model inside a wrapper, or
    its config when the module holds LoRA adapters or quantized weights that would be counted
    twice); ``options`` are workload keywords (method, LoRA rank/targets, quantization, dtype,
    gradient checkpointing); ``notes`` say what was guessed.
    """

    source: Any
    options: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    trainable_parameters: int = 0
    total_parameters: int = 0
    trainable_dtype: str | None = None


def _config_of(module: Any) -> Any:
    config = getattr(module, "config", None)
    if config is None:
        return None
    model_type = config.get("model_type") if isinstance(config, Mapping) else getattr(config, "model_type", None)
    return config if model_type else None


def find_transformers_model(model: Any) -> Any:
    """The outermost submodule (``model`` included) that carries a transformers config or a peft config."""
    modules = model.named_modules() if callable(getattr(model, "named_modules", None)) else [("", model)]
    for _name, module in modules:
        if getattr(module, "peft_config", None) or _config_of(module) is not None:
            return module
    return None


def describe_model(model: Any) -> ModelFacts:
    """Read a live ``torch.nn.Module`` (a LightningModule, a peft model, a transformers model ...)."""
    notes: list[str] = []
    options: dict[str, Any] = {}
    total = trainable = 0
    dtypes: dict[str, int] = {}
    frozen_dtypes: dict[str, int] = {}
    for p in model.parameters():
        n = p.numel()
        total += n
        name = str(p.dtype).removeprefix("torch.")
        if p.requires_grad:
            trainable += n
            dtypes[name] = dtypes.get(name, 0) + n
        elif p.is_floating_point():
            frozen_dtypes[name] = frozen_dtypes.get(name, 0) + n
    trainable_dtype = max(dtypes, key=dtypes.__getitem__) if dtypes else None
    inner = find_transformers_model(model)
    source: Any = inner if inner is not None else model
    if inner is None:
        notes.append(f"{type(model).__name__} holds no transformers model: layer shapes come from the module only")
    peft_config = getattr(inner, "peft_config", None) if inner is not None else None
    config = _config_of(inner) if inner is not None else None
    quant = _quantization(config)
    if peft_config:
        adapter = next(iter(peft_config.values())) if isinstance(peft_config, Mapping) else peft_config
        options["method"] = "qlora" if quant in ("nf4", "fp4") else "lora"
        rank = getattr(adapter, "r", None)
        if isinstance(rank, int) and rank > 0:
            options["lora_rank"] = rank
        alpha = getattr(adapter, "lora_alpha", None)
        if isinstance(alpha, int) and alpha > 0:
            options["lora_alpha"] = alpha
        targets = getattr(adapter, "target_modules", None)
        if isinstance(targets, str):
            options["lora_targets"] = ("all-linear",) if targets == "all-linear" else None
            if targets != "all-linear":
                notes.append(f"LoRA target_modules is a regex ({targets!r}); estimated with the default q_proj,v_proj")
        elif targets:
            options["lora_targets"] = tuple(sorted(targets))
        parameters = getattr(adapter, "target_parameters", None)
        model_type = getattr(config, "model_type", None) if config is not None else None
        if parameters and isinstance(model_type, str) and options.get("lora_targets"):
            # peft's MoE target conversion (transformers 5) moved the expert and router names to
            # target_parameters: the estimate reads them as the names they came from (memory/weights.py).
            from hf_gpu_estimator.memory.weights import peft_targets_before_conversion

            options["lora_targets"] = peft_targets_before_conversion(model_type, options["lora_targets"], parameters)
        options = {k: v for k, v in options.items() if v is not None}
        # The live module also holds the adapters; the config gives the base model's exact counts.
        base_config = config if config is not None else _config_of(getattr(inner, "base_model", None))
        if base_config is not None:
            source = base_config
    elif total and trainable < total / 2:
        options["method"] = "qlora" if quant in ("nf4", "fp4") else "lora"
        notes.append(f"{trainable:,} of {total:,} parameters are trainable without a peft config: estimated as "
                     f"LoRA with rank 16 on q_proj,v_proj")
        if quant is not None and config is not None:
            source = config
    if quant is not None and options.get("method") in ("lora", "qlora"):
        options["quantization"] = quant
    if options.get("method") in ("lora", "qlora") and frozen_dtypes:
        frozen = max(frozen_dtypes, key=frozen_dtypes.__getitem__)
        if frozen in ("float32", "float16", "bfloat16"):
            options["dtype"] = frozen
    options["gradient_checkpointing"] = gradient_checkpointing_enabled(model)
    reentrant = checkpointing_reentrant(model)
    if reentrant is not None:
        options["use_reentrant"] = reentrant
    labels = _classification_labels(inner if inner is not None else model)
    if labels is not None:
        options["head"], options["num_labels"] = "classification", labels
    if inner is not None and inner is not model and not peft_config:
        inner_total = sum(p.numel() for p in inner.parameters())
        if total > inner_total:
            notes.append(f"{total - inner_total:,} parameters outside {type(inner).__name__} are not estimated")
    return ModelFacts(source=source, options=options, notes=tuple(notes), trainable_parameters=trainable,
                      total_parameters=total, trainable_dtype=trainable_dtype)


def _quantization(config: Any) -> str | None:
    if config is None:
        return None
    qc = config.get("quantization_config") if isinstance(config, Mapping) else getattr(config, "quantization_config", None)
    if qc is None:
        return None
    if not isinstance(qc, Mapping):
        qc = qc.to_dict() if callable(getattr(qc, "to_dict", None)) else vars(qc)
    if qc.get("load_in_4bit"):
        return str(qc.get("bnb_4bit_quant_type") or "nf4")
    if qc.get("load_in_8bit"):
        return "int8"
    return None


def gradient_checkpointing_enabled(model: Any) -> bool:
    """Any submodule with ``gradient_checkpointing = True``.

    This is what transformers' ``is_activation_checkpointing`` (formerly ``is_gradient_checkpointing``,
    deprecated in v5 with a FutureWarning, so not read here) computes, and it also covers a
    plain module that sets the attribute.
    """
    modules = model.modules() if callable(getattr(model, "modules", None)) else [model]
    for module in modules:
        if getattr(module, "gradient_checkpointing", False) is True:
            return True
    return False


def checkpointing_reentrant(model: Any) -> bool | None:
    """The ``use_reentrant`` a checkpointed layer runs with: transformers stores
    ``functools.partial(checkpoint, **kwargs)`` as each layer's ``_gradient_checkpointing_func``
    (modeling_utils.py ``_set_gradient_checkpointing``); None when no layer is checkpointed or the function is
    not such a partial."""
    modules = model.modules() if callable(getattr(model, "modules", None)) else [model]
    for module in modules:
        if getattr(module, "gradient_checkpointing", False) is True:
            keywords = getattr(getattr(module, "_gradient_checkpointing_func", None), "keywords", None)
            value = keywords.get("use_reentrant") if isinstance(keywords, Mapping) else None
            return value if isinstance(value, bool) else None
    return None


def _classification_labels(model: Any) -> int | None:
    """``config.num_labels`` of a transformers ``*ForSequenceClassification`` model, else None."""
    if not type(model).__name__.endswith("ForSequenceClassification"):
        return None
    labels = getattr(getattr(model, "config", None), "num_labels", None)
    return labels if isinstance(labels, int) and not isinstance(labels, bool) and labels >= 1 else None


#: torch / bitsandbytes / transformers optimizer classes -> our optimizer names.
OPTIMIZER_CLASSES: Mapping[str, str] = {
    "AdamW": "adamw", "Adam": "adam", "FusedAdam": "adamw", "DeepSpeedCPUAdam": "adamw",
    "AdamW8bit": "adamw-8bit", "Adam8bit": "adamw-8bit", "PagedAdamW8bit": "paged-adamw-8bit",
    "PagedAdam8bit": "paged-adamw-8bit", "PagedAdamW": "paged-adamw", "PagedAdamW32bit": "paged-adamw",
    "Adafactor": "adafactor", "Lion": "lion", "Lion32bit": "lion", "SGD": "sgd",
}  # fmt: skip


def optimizer_name(optimizer: Any) -> tuple[str | None, str | None]:
    """Our name for a live optimizer (unwrapping Lightning/accelerate wrappers), and a note if unknown."""
    seen = 0
    while seen < 4 and type(optimizer).__name__ in ("LightningOptimizer", "AcceleratedOptimizer"):
        optimizer = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        seen += 1
    cls = type(optimizer).__name__
    # A user subclass (a step counter, a scheduler hook) keeps its base class's state.
    name = next((OPTIMIZER_CLASSES[c.__name__] for c in type(optimizer).__mro__ if c.__name__ in OPTIMIZER_CLASSES), None)
    if name == "sgd":
        groups = getattr(optimizer, "param_groups", [])
        if any(g.get("momentum", 0) for g in groups):
            name = "sgd-momentum"
    if name is None:
        return None, f"optimizer {cls} is not modeled: estimated as AdamW (two states per parameter)"
    return name, None


def seq_len_of_item(item: Any) -> int | None:
    """Tokens in one dataset item: ``input_ids`` of a dict, the first tensor of a tuple, a tensor or list."""
    if isinstance(item, Mapping):
        for key in ("input_ids", "inputs", "input", "tokens", "x"):
            if key in item:
                return seq_len_of_item(item[key])
        return None
    shape = getattr(item, "shape", None)
    if shape is not None:
        return int(shape[-1]) if len(shape) >= 1 else None
    if isinstance(item, (list, tuple)) and item:
        if all(isinstance(v, int) for v in item):
            return len(item)
        return seq_len_of_item(item[0])
    return None


def peek_dataloader(dataloader: Any) -> tuple[int | None, int | None]:
    """``(batch_size, seq_len)`` of a DataLoader without iterating it: its batch size and ``dataset[0]``.

    Map-style datasets only (``len`` and indexing); an iterable dataset is never touched, since
    reading from it would consume the user's stream.
    """
    if isinstance(dataloader, Mapping):
        dataloader = next(iter(dataloader.values()), None)
    elif isinstance(dataloader, (list, tuple)):
        dataloader = dataloader[0] if dataloader else None
    if dataloader is None:
        return None, None
    batch = getattr(dataloader, "batch_size", None)
    if batch is None:
        batch = getattr(getattr(dataloader, "batch_sampler", None), "batch_size", None)
    seq = None
    dataset = getattr(dataloader, "dataset", None)
    try:
        iterable = any(cls.__name__ == "IterableDataset" for cls in type(dataset).__mro__)
        if dataset is not None and not iterable and len(dataset) > 0:
            seq = seq_len_of_item(dataset[0])
    except (TypeError, NotImplementedError, IndexError, KeyError):
        seq = None  # an iterable or lazily indexed dataset: the caller needs seq_len=
    return (batch if isinstance(batch, int) else None), seq


def shape_of_batch(batch: Any) -> tuple[int | None, int | None]:
    """``(batch_size, seq_len)`` of a batch as a DataLoader yields it (dict of tensors, tensor, tuple)."""
    if isinstance(batch, Mapping):
        for key in ("input_ids", "inputs", "input", "tokens", "x"):
            if key in batch:
                return shape_of_batch(batch[key])
        return None, None
    shape = getattr(batch, "shape", None)
    if shape is not None and len(shape) >= 2:
        return int(shape[0]), int(shape[-1])
    if isinstance(batch, (list, tuple)) and batch:
        return shape_of_batch(batch[0])
    return None, None


# --- parallelism ---------------------------------------------------------------------------------

#: torch.distributed.fsdp.ShardingStrategy names (and accelerate's 1-5 codes) -> our strategies.
FSDP_SHARDING: Mapping[str, str] = {
    "FULL_SHARD": "fsdp", "SHARD_GRAD_OP": "fsdp-grad-op", "NO_SHARD": "ddp", "HYBRID_SHARD": "fsdp-hybrid",
    "_HYBRID_SHARD_ZERO2": "fsdp-hybrid", "HYBRID_SHARD_ZERO2": "fsdp-hybrid",
    "1": "fsdp", "2": "fsdp-grad-op", "3": "ddp", "4": "fsdp-hybrid", "5": "fsdp-hybrid",
}  # fmt: skip


def fsdp_options(sharding: Any, *, offload: bool, num_gpus: int) -> tuple[dict[str, Any], list[str]]:
    """Workload keywords for FSDP with ``sharding`` (enum, name or accelerate code) and CPU offload."""
    key = str(getattr(sharding, "name", sharding)).upper().removeprefix("SHARDINGSTRATEGY.")
    strategy = FSDP_SHARDING.get(key)
    notes: list[str] = []
    if strategy is None:
        notes.append(f"FSDP sharding {sharding!r} is not modeled: estimated as FULL_SHARD")
        strategy = "fsdp"
    return _parallel(strategy, num_gpus=num_gpus, offload_optimizer=offload, offload_params=offload, notes=notes)


#: accelerate's ``mixed_precision`` -> our (Lightning) precision names. "no" depends on the
#: parameters' dtype (see :func:`accelerate_precision`).
_MIXED = {"fp16": "16-mixed", "bf16": "bf16-mixed", "fp8": "bf16-mixed"}


def accelerate_precision(mixed: str, trainable_dtype: str | None, notes: list[str]) -> str:
    mixed = mixed.lower()
    if mixed in _MIXED:
        if mixed == "fp8":
            notes.append("fp8 mixed precision is estimated as bf16-mixed (fp8 matmuls keep bf16 activations)")
        return _MIXED[mixed]
    # mixed_precision="no": compute runs in the parameters' own dtype.
    return {"bfloat16": "bf16-true", "float16": "16-true"}.get(trainable_dtype or "float32", "32-true")


#: An accelerate or DeepSpeed config is a few hundred bytes; anything past a megabyte is not one.
MAX_CONFIG_CHARS = 1 << 20


def accelerate_config_options(data: Mapping[str, Any], *, source: Path) -> tuple[dict[str, Any], list[str]]:
    """Workload keywords and notes from a loaded ``accelerate config`` mapping (see
    :func:`hf_gpu_estimator.integrations.accelerate.workload_from_accelerate_config`); ``source`` is the
    file it came from (a ``deepspeed_config_file`` is read relative to it)."""
    notes: list[str] = []
    kwargs: dict[str, Any] = {"task": "training"}
    mixed = str(data.get("mixed_precision") or "no").lower()
    kwargs["precision"] = accelerate_precision(mixed, None, notes)
    devices = _config_int(data.get("num_processes"), 1, source, "num_processes")
    kind = str(data.get("distributed_type") or "NO").upper()
    if kind == "DEEPSPEED":
        ds = dict(data.get("deepspeed_config") or {})
        config_file = ds.get("deepspeed_config_file")
        if config_file:
            target = (source.parent / str(config_file)).expanduser()
            from hf_gpu_estimator.sources._json import JSONProblem
            from hf_gpu_estimator.sources._json import loads as json_loads

            try:
                with target.open("rb") as f:
                    config = json_loads(f.read(MAX_CONFIG_CHARS + 1), max_bytes=MAX_CONFIG_CHARS)
                if not isinstance(config, Mapping):
                    raise JSONProblem(f"a JSON {type(config).__name__}, not an object")
            except (OSError, JSONProblem) as e:
                raise MalformedConfigError(str(target), f"cannot read deepspeed_config_file {str(target)!r}: {e}") from e
            steps = config.get("gradient_accumulation_steps")
        else:
            config = {"zero_optimization": {
                "stage": ds.get("zero_stage", 2),
                "offload_optimizer": {"device": ds.get("offload_optimizer_device", "none")},
                "offload_param": {"device": ds.get("offload_param_device", "none")}}}
            steps = ds.get("gradient_accumulation_steps")
        if isinstance(steps, int) and steps >= 1:
            kwargs["gradient_accumulation_steps"] = steps
        options, more = deepspeed_options(config, num_gpus=devices)
    elif kind == "FSDP":
        fsdp = dict(data.get("fsdp_config") or {})
        if int(fsdp.get("fsdp_version", 1) or 1) == 2:
            reshard = fsdp.get("fsdp_reshard_after_forward", True)
            sharding = "FULL_SHARD" if reshard in (True, "true", "True", "FULL_SHARD") else "SHARD_GRAD_OP"
        else:
            sharding = fsdp.get("fsdp_sharding_strategy", fsdp.get("fsdp_reshard_after_forward", "FULL_SHARD"))
        options, more = fsdp_options(sharding, offload=bool(fsdp.get("fsdp_offload_params", False)), num_gpus=devices)
        if fsdp.get("fsdp_activation_checkpointing"):
            kwargs["gradient_checkpointing"] = True
    elif kind in ("NO", "MULTI_GPU", "MULTI_NPU", "MULTI_XPU", "MULTI_MLU", "MULTI_HPU", "MULTI_SDAA", "MULTI_MUSA"):
        options, more = {"num_gpus": devices}, []
        if devices > 1:
            options["strategy"] = "ddp"
    else:
        options, more = {"num_gpus": devices}, [f"distributed_type {kind} is estimated as data parallel"]
        if devices > 1:
            options["strategy"] = "ddp"
    kwargs.update(options)
    notes.extend(more)
    return kwargs, notes


def _config_int(value: Any, default: int, file: Path, field: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MalformedConfigError(str(file), f"{file}: {field} should be an integer >= 1, got {value!r}", field=field)
    return value


def deepspeed_options(config: Mapping[str, Any] | None, *, num_gpus: int) -> tuple[dict[str, Any], list[str]]:
    """Workload keywords from a DeepSpeed config dict (``zero_optimization.stage`` and offload devices)."""
    zero = (config or {}).get("zero_optimization") or {}
    stage = zero.get("stage", 0)
    try:
        stage = int(stage)
    except (TypeError, ValueError):
        stage = 0  # "auto" (transformers fills it later): no sharding is the conservative reading
    strategy = {0: "ddp", 1: "zero1", 2: "zero2", 3: "zero3"}.get(stage, "zero3")

    def offloaded(key: str) -> bool:
        device = (zero.get(key) or {}).get("device", "none")
        return str(device).lower() in ("cpu", "nvme")

    options, notes = _parallel(strategy, num_gpus=num_gpus, offload_optimizer=offloaded("offload_optimizer"),
                               offload_params=offloaded("offload_param"), notes=[])
    # The buffers' sizes, in elements (memory/zero.py); "auto" is filled by transformers from the model.
    for key, option in (("reduce_bucket_size", "reduce_bucket_size"),
                        ("allgather_bucket_size", "allgather_bucket_size"),
                        ("stage3_prefetch_bucket_size", "prefetch_bucket_size")):
        size = zero.get(key)
        if isinstance(size, (int, float)) and not isinstance(size, bool) and size >= 1:
            if options.get("strategy") in ("zero1", "zero2", "zero3"):
                options[option] = int(size)
        elif size is not None:
            notes.append(f"zero_optimization.{key}={size!r}: transformers fills 'auto' from the model (hidden x "
                         f"hidden; prefetch 0.9 x that): pass --{option.replace('_', '-')} to size it")
    return options, notes


def _parallel(strategy: str, *, num_gpus: int, offload_optimizer: bool = False, offload_params: bool = False,
              notes: list[str]) -> tuple[dict[str, Any], list[str]]:
    if num_gpus <= 1:
        if (offload_optimizer or offload_params) and strategy in ("zero2", "zero3", "fsdp", "fsdp-grad-op"):
            # ZeRO-Offload / FSDP CPU offload on one GPU: the offload is what it does.
            out: dict[str, Any] = {"num_gpus": 1, "strategy": strategy}
            if offload_optimizer:
                out["offload_optimizer"] = True
            if offload_params and strategy in ("zero3", "fsdp"):
                out["offload_params"] = True
            return out, notes
        if strategy not in ("ddp", "none"):
            notes.append(f"{strategy} on one device shards nothing")
        return {"num_gpus": 1}, notes
    if strategy in ("ddp", "zero1") and offload_params:
        offload_params = False
    if strategy == "ddp":
        offload_optimizer = False
    out: dict[str, Any] = {"num_gpus": num_gpus, "strategy": strategy}
    if offload_optimizer:
        out["offload_optimizer"] = True
    if offload_params:
        out["offload_params"] = True
    return out, notes
