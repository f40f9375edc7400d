"""Every exception the package raises.

Each subclass also inherits the builtin it resembles, so ``except ValueError`` keeps working
in user code, and carries the fields a caller needs to react programmatically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hf_gpu_estimator.constants import MAX_EXCERPT_CHARS, MAX_SUGGEST_CHARS


def excerpt(value: object, limit: int = MAX_EXCERPT_CHARS) -> str:
    """``repr(value)`` bounded to about ``limit`` characters: what a message quotes of a value it cannot trust.

    Through :mod:`reprlib` (a few levels, a few items each), so a 30 MB string or a billion-laughs
    structure is never rendered whole.

    >>> excerpt("x" * 1000, 12)
    "'xxx...xxxx' (1,000 characters)"
    """
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxlong, short.maxother = 3, limit, 40, limit
    short.maxdict = short.maxlist = short.maxtuple = short.maxset = short.maxfrozenset = 6
    try:
        text = short.repr(value)
    except (ValueError, RecursionError):  # an int past the digit limit, a repr that fails
        text = f"<{type(value).__name__}>"
    text = text if len(text) <= 2 * limit else text[: 2 * limit] + "..."
    if isinstance(value, (str, bytes)) and len(value) > limit:
        text += f" ({len(value):,} {'characters' if isinstance(value, str) else 'bytes'})"
    return text


class EstimatorError(Exception):
    """Base class of every error raised by hf-gpu-estimator."""

    exit_code: int = 1


class IgnoredOptionWarning(UserWarning):
    """Options were given that do not apply to the workload (``--precision`` for inference ...); they are ignored."""


class InvalidArgumentError(EstimatorError, ValueError):
    """A user-supplied option has a bad value (the CLI exits with status 2)."""

    exit_code = 2

    def __init__(self, field: str, value: object, accepted: str, *, hint: str | None = None):
        self.field = field
        self.value = value
        self.accepted = accepted
        message = f"invalid {field}={excerpt(value)}: expected {accepted}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class ConflictingOptionsError(InvalidArgumentError):
    """Two options that are each valid cannot be combined."""

    def __init__(self, field: str, value: object, reason: str, *, fix: str):
        self.field = field
        self.value = value
        self.accepted = fix
        EstimatorError.__init__(self, f"{field}={excerpt(value)} {reason}; {fix}")


class UnknownNameError(InvalidArgumentError, LookupError):
    """A name (GPU, optimizer, quantization, ...) is not in the registry; suggests close matches."""

    def __init__(self, field: str, value: str, candidates: Iterable[str], *, ambiguous: bool = False):
        import difflib

        self.field = field
        self.value = value
        self.candidates = sorted(candidates)
        self.accepted = ", ".join(self.candidates)
        if ambiguous:
            message = f"{field} {excerpt(value)} is ambiguous: {', '.join(self.candidates)}"
        else:
            text = str(value)
            # difflib is quadratic in the length: a name longer than any candidate is no typo of one.
            close = (difflib.get_close_matches(text, self.candidates, n=3, cutoff=0.5)
                     if len(text) <= MAX_SUGGEST_CHARS else [])
            message = f"unknown {field} {excerpt(value)}"
            if close:
                message += f"; did you mean {', '.join(close)}?"
            elif len(self.candidates) <= 12:
                message += f"; expected one of {', '.join(self.candidates)}"
        EstimatorError.__init__(self, message)


class SourceError(EstimatorError):
    """A model source could not be read."""


class ModelNotFoundError(SourceError, LookupError):
    """The repo, revision or path does not exist (and no catalog entry matches)."""

    def __init__(self, source: str, message: str):
        self.source = source
        super().__init__(message)


class RevisionNotFoundError(ModelNotFoundError):
    """The repo exists but the requested revision does not."""


class GatedRepoError(SourceError, PermissionError):
    """The repo is gated or private and the request was not authorized."""

    def __init__(self, source: str, message: str | None = None):
        self.source = source
        super().__init__(
            message
            or (
                f"{source!r} is gated or private: accept its licence on the Hub and set HF_TOKEN "
                "(or pass token=), or use a bundled catalog entry"
            )
        )


class HubConnectionError(SourceError, ConnectionError):
    """The Hub could not be reached (timeout, connection error, offline mode without a cache)."""

    def __init__(self, source: str, message: str):
        self.source = source
        super().__init__(message)


class MalformedConfigError(SourceError, ValueError):
    """config.json is missing, not JSON, or has a field of the wrong type."""

    def __init__(self, source: str, message: str, *, field: str | None = None):
        self.source = source
        self.field = field
        super().__init__(message)


class MalformedHeaderError(SourceError, ValueError):
    """A safetensors header is malformed, truncated or larger than the format allows."""

    def __init__(self, source: str, message: str):
        self.source = source
        super().__init__(f"{source}: {message}")


class MalformedGGUFError(MalformedHeaderError):
    """A GGUF header is malformed, truncated, hostile (impossible counts or sizes) or of an unknown type."""


class UnsupportedArchitectureError(EstimatorError, NotImplementedError):
    """The config's model_type is one transformers does not implement (so no family and no generic estimate)."""

    def __init__(self, model_type: object, supported: Iterable[str], *, hint: str | None = None,
                 config: Mapping[str, object] | None = None):
        self.model_type = model_type
        self.supported = sorted(supported)
        #: The config.json mapping that was inspected, when known: exact mode can still trace it.
        self.config = config
        if hint:
            message = f"model_type {model_type!r} is not supported: {hint}"
        else:
            message = (f"model_type {model_type!r} is not supported from config.json alone; supported: "
                       f"{', '.join(self.supported)} (point at a repo or folder with safetensors files for exact "
                       "counts)")
        super().__init__(message)


class MissingDependencyError(EstimatorError, ImportError):
    """An optional dependency is needed for this feature."""

    def __init__(self, package: str, extra: str, feature: str):
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs {package!r}: pip install 'hf-gpu-estimator[{extra}]'"
        )


class TraceError(EstimatorError, RuntimeError):
    """Exact mode could not trace the workload."""


class UnknownModelTypeError(TraceError, LookupError):
    """The installed transformers does not implement the config's model_type, so exact mode cannot build it."""

    def __init__(self, model_type: object, transformers_version: str, *, supported: Iterable[str] = ()):
        self.model_type = model_type
        self.transformers_version = transformers_version
        self.supported = sorted(supported)
        analytic = ("the analytic estimate covers every model type transformers implements (family modules: "
                    f"{', '.join(self.supported)}; the rest through the generic family); " if self.supported else "")
        super().__init__(
            f"model_type {model_type!r} is unknown to transformers {transformers_version} (no config class in "
            f"CONFIG_MAPPING_NAMES): {analytic}--exact needs a transformers version that implements {model_type!r} "
            "(pip install -U transformers), and never runs remote code"
        )


class InvalidGPUEntryError(InvalidArgumentError):
    """A GPU catalog entry (bundled or from a user file) has a missing or invalid field."""

    def __init__(self, source: str, entry: str, field: str, problem: str):
        self.source = source
        self.entry = entry
        self.field = field
        self.value = None
        self.accepted = problem
        EstimatorError.__init__(self, f"{source}: GPU entry {entry!r}, field {field!r}: {problem}")


class PreflightError(EstimatorError, MemoryError):
    """A preflight check found that the workload will not fit the device (``on_exceed="raise"``).

    Raised before the first training step, so no time is spent on a run that would end in
    ``torch.OutOfMemoryError``. ``required_bytes`` and ``available_bytes`` are per device.
    """

    def __init__(self, message: str, *, required_bytes: int | None = None, available_bytes: int | None = None):
        self.required_bytes = required_bytes
        self.available_bytes = available_bytes
        super().__init__(message)


class MissingGPUDataError(EstimatorError, LookupError):
    """A GPU catalog entry lacks a figure a speed or cost estimate needs (peak FLOP/s, link bandwidth, price)."""

    def __init__(self, gpu: str, field: str, *, fix: str):
        self.gpu = gpu
        self.field = field
        super().__init__(f"GPU {gpu!r} has no {field} in the catalog; {fix}")


class MissingPriceError(MissingGPUDataError):
    """A cost was asked for a GPU whose catalog entry has no ``price_per_hour_usd``."""

    def __init__(self, gpu: str):
        super().__init__(
            gpu, "price_per_hour_usd",
            fix=("give a price in a user GPU file (an entry named "
                 f"{gpu!r} with price_per_hour_usd, price_source and price_date) loaded with HFGE_GPUS_FILE "
                 "or hardware.register_gpus()"),
        )


class InfeasiblePlanError(EstimatorError, ValueError):
    """A target cannot be met: a latency below the roofline floor, or a model that fits no GPU count tried."""

    def __init__(self, message: str, *, reasons: Iterable[str] = ()):
        self.reasons = tuple(reasons)
        super().__init__(message)


class ConfigHeaderMismatchError(MalformedConfigError):
    """config.json contradicts the checkpoint's own tensors (a dimension, the layer or expert count)."""

    def __init__(self, source: str, *, field: str, config_value: object, header_value: object, evidence: str):
        self.config_value = config_value
        self.header_value = header_value
        super().__init__(
            source,
            f"{source}: config.json says {field}={config_value!r} but the safetensors headers say {header_value!r} "
            f"({evidence}); the config does not describe these weights: fix config.json or point at the matching "
            "checkpoint",
            field=field,
        )
