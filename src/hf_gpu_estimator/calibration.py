"""Per-device calibration of the non-tensor overheads, from runs measured on that device.

The analytic and exact estimates predict the *tensor* memory (``max_memory_allocated``). What
sits around it depends on the machine: the CUDA context (driver, CUDA and torch versions, lazy
module loading) and how much the caching allocator reserves beyond what is allocated.
:mod:`hf_gpu_estimator.memory.overhead` holds defaults for both; a calibration replaces them
with what one device really showed:

* CUDA context = nvidia-smi used − other processes − ``max_memory_reserved``, per run;
* reserved/allocated = ``max_memory_reserved / max_memory_allocated``, per run and task.

Runs come from ``hfge measure`` (:func:`record_measurement`) and from committed benchmark
files (:func:`seed_from_jsonl`). They are kept as samples in one JSON file per user,
``calibration.json`` under :func:`cache_dir`, keyed by the CUDA device name
(``torch.cuda.get_device_name()``, e.g. ``"NVIDIA H200"``), and aggregated robustly (the
median; implausible runs are left out). The file is written atomically (temporary file +
``os.replace``); a corrupt file is ignored with a warning. A calibration never changes the
tensor terms.

Pure Python, no torch. The estimate path reads the file only when a GPU or a calibration is
asked for, and then once per file version (cached on path, size and mtime).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.errors import InvalidArgumentError, UnknownNameError
# json.loads that raises only JSONProblem (a ValueError): deep nesting and huge numbers included.
from hf_gpu_estimator.sources import _json
from hf_gpu_estimator.memory import overhead
from hf_gpu_estimator.verdict import CONTEXT_KEY, RATIO_KEY, Assumption, replace_keyed

if TYPE_CHECKING:
    from hf_gpu_estimator.hardware import GPU
    from hf_gpu_estimator.memory.terms import MemoryEstimate
    from hf_gpu_estimator.workload import Workload

#: Environment variable naming the cache folder (wins over HF_HOME and XDG_CACHE_HOME).
CACHE_ENV = "HFGE_CACHE_DIR"
FILE_NAME = "calibration.json"
FORMAT = "hf-gpu-estimator calibration"
#: The ``format`` field of what ``hfge measure --output`` saves.
MEASURE_FORMAT = "hfge-measure/1"
VERSION = 1

#: Samples kept per device (the most recent).
MAX_SAMPLES = 500

#: Runs outside these bounds are kept in the file but left out of the aggregate: a context
#: beyond 8 GiB or a negative one means another process changed nvidia-smi's figure mid-run.
CONTEXT_BOUNDS_BYTES = (0, 8 << 30)
RATIO_BOUNDS = (1.0, 4.0)

_TASKS = ("inference", "training")


def cache_dir() -> Path:
    """Where the calibration lives: ``$HFGE_CACHE_DIR``, else ``$HF_HOME/hf_gpu_estimator``, else
    ``$XDG_CACHE_HOME/hf_gpu_estimator``, else ``~/.cache/hf_gpu_estimator``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hf_gpu_estimator"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "hf_gpu_estimator"


def calibration_path() -> Path:
    return cache_dir() / FILE_NAME


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One measured run: the figures a calibration needs, and where they came from."""

    device_name: str
    task: str
    allocated_peak_bytes: int
    reserved_peak_bytes: int
    nvml_used_bytes: int | None = None
    other_processes_bytes: int = 0  # nvidia-smi used before this process touched the GPU
    source: str = ""  # file and case, or "hfge measure MODEL"
    recorded_at: str = ""  # ISO date
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def cuda_context_bytes(self) -> int | None:
        if self.nvml_used_bytes is None:
            return None
        return self.nvml_used_bytes - self.other_processes_bytes - self.reserved_peak_bytes

    @property
    def reserved_ratio(self) -> float:
        return self.reserved_peak_bytes / self.allocated_peak_bytes

    @property
    def key(self) -> tuple[object, ...]:
        """Identity for de-duplication (seeding the same file twice adds nothing)."""
        return (self.source, self.task, self.allocated_peak_bytes, self.reserved_peak_bytes, self.nvml_used_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {"device_name": self.device_name, "task": self.task, "allocated_peak_bytes": self.allocated_peak_bytes,
                "reserved_peak_bytes": self.reserved_peak_bytes, "nvml_used_bytes": self.nvml_used_bytes,
                "other_processes_bytes": self.other_processes_bytes, "source": self.source,
                "recorded_at": self.recorded_at, "versions": dict(self.versions)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sample:
        """Raises ValueError on a missing or mistyped field."""

        def integer(name: str, *, optional: bool = False) -> Any:
            v = d.get(name)
            if v is None and optional:
                return None
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {v!r}")
            return v

        name, task = d.get("device_name"), d.get("task")
        if not isinstance(name, str) or not name:
            raise ValueError(f"device_name: expected a name, got {name!r}")
        if task not in _TASKS:
            raise ValueError(f"task: expected one of {_TASKS}, got {task!r}")
        allocated = integer("allocated_peak_bytes")
        if allocated == 0:
            raise ValueError("allocated_peak_bytes is 0")
        versions = d.get("versions") or {}
        return cls(device_name=name, task=task, allocated_peak_bytes=allocated,
                   reserved_peak_bytes=integer("reserved_peak_bytes"),
                   nvml_used_bytes=integer("nvml_used_bytes", optional=True),
                   other_processes_bytes=integer("other_processes_bytes", optional=True) or 0,
                   source=str(d.get("source", "")), recorded_at=str(d.get("recorded_at", "")),
                   versions={str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {})


@dataclass(frozen=True, kw_only=True)
class DeviceCalibration:
    """The overheads one device showed, aggregated over its runs (medians)."""

    device_name: str
    gpu: str | None  # the GPU catalog entry the device name resolves to
    cuda_context_bytes: int | None
    context_runs: int
    reserved_ratio: Mapping[str, float]  # task → median max_memory_reserved / max_memory_allocated
    ratio_runs: Mapping[str, int]
    ratio_range: Mapping[str, tuple[float, float]]
    context_range_bytes: tuple[int, int] | None = None
    sources: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)  # of the most recent run

    @classmethod
    def from_samples(cls, device_name: str, samples: Sequence[Sample], *, gpu: str | None = None) -> DeviceCalibration:
        contexts = [c for s in samples if (c := s.cuda_context_bytes) is not None
                    and CONTEXT_BOUNDS_BYTES[0] <= c <= CONTEXT_BOUNDS_BYTES[1]]
        ratios: dict[str, list[float]] = {}
        for s in samples:
            if RATIO_BOUNDS[0] <= s.reserved_ratio <= RATIO_BOUNDS[1]:
                ratios.setdefault(s.task, []).append(s.reserved_ratio)
        return cls(
            device_name=device_name, gpu=gpu,
            cuda_context_bytes=int(statistics.median(contexts)) if contexts else None, context_runs=len(contexts),
            context_range_bytes=(min(contexts), max(contexts)) if contexts else None,
            reserved_ratio={t: round(statistics.median(v), 4) for t, v in ratios.items()},
            ratio_runs={t: len(v) for t, v in ratios.items()},
            ratio_range={t: (round(min(v), 4), round(max(v), 4)) for t, v in ratios.items()},
            sources=tuple(dict.fromkeys(s.source.split("#")[0] for s in samples if s.source)),
            versions=dict(samples[-1].versions) if samples else {},
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"device_name": self.device_name, "gpu": self.gpu, "cuda_context_bytes": self.cuda_context_bytes,
                "context_runs": self.context_runs,
                "context_range_bytes": list(self.context_range_bytes) if self.context_range_bytes else None,
                "reserved_ratio": dict(self.reserved_ratio), "ratio_runs": dict(self.ratio_runs),
                "ratio_range": {k: list(v) for k, v in self.ratio_range.items()}, "sources": list(self.sources),
                "versions": dict(self.versions)}  # fmt: skip


# --------------------------------------------------------------------------------------------
# The file.

_cache: dict[str, tuple[tuple[int, int], dict[str, dict[str, Any]]]] = {}


def _gpu_name(device_name: str) -> str | None:
    from hf_gpu_estimator.errors import EstimatorError
    from hf_gpu_estimator.hardware import get_gpu

    try:
        return get_gpu(device_name).name
    except EstimatorError:
        return None


def _read(path: Path) -> dict[str, dict[str, Any]]:
    """``{device name: {"gpu": str | None, "samples": [Sample, ...]}}``; empty (with a warning) if corrupt."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    stamp = (st.st_size, st.st_mtime_ns)
    hit = _cache.get(str(path))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    devices: dict[str, dict[str, Any]] = {}
    try:
        data = _json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("devices"), dict):
            raise ValueError(f"not a {FORMAT!r} file")
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
        for name, entry in data["devices"].items():
            if not isinstance(entry, dict) or not isinstance(entry.get("samples"), list):
                raise ValueError(f"device {name!r}: expected {{'samples': [...]}}")
            samples = [Sample.from_dict(s) if isinstance(s, dict) else _bad(s) for s in entry["samples"]]
            gpu = entry.get("gpu")
            devices[name] = {"gpu": gpu if isinstance(gpu, str) else None, "samples": samples}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        warnings.warn(f"ignoring the corrupt calibration file {path}: {e} (the next 'hfge measure' "
                      "replaces it)", RuntimeWarning, stacklevel=3)
        devices = {}
    _cache[str(path)] = (stamp, devices)
    return devices


def _bad(value: object) -> Any:
    raise ValueError(f"a sample must be an object, got {value!r}")


def _write(path: Path, devices: Mapping[str, Mapping[str, Any]]) -> None:
    payload = {"format": FORMAT, "version": VERSION, "devices": {
        name: {"gpu": entry["gpu"], "samples": [s.to_dict() for s in entry["samples"]]}
        for name, entry in sorted(devices.items())}}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".calibration-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _cache.pop(str(path), None)


def record(samples: Iterable[Sample], *, path: str | os.PathLike[str] | None = None) -> Path:
    """Add ``samples`` to the calibration file (duplicates skipped, newest :data:`MAX_SAMPLES` kept per device).

    Returns:
        The file's path.
    """
    target = Path(path) if path is not None else calibration_path()
    current = _read(target)
    devices = {name: {"gpu": e["gpu"], "samples": list(e["samples"])} for name, e in current.items()}
    for s in samples:
        entry = devices.setdefault(s.device_name, {"gpu": _gpu_name(s.device_name), "samples": []})
        if entry["gpu"] is None:
            entry["gpu"] = _gpu_name(s.device_name)
        if all(old.key != s.key for old in entry["samples"]):
            entry["samples"].append(s)
        entry["samples"] = entry["samples"][-MAX_SAMPLES:]
    _write(target, devices)
    return target


def load_calibrations(*, path: str | os.PathLike[str] | None = None) -> dict[str, DeviceCalibration]:
    """Every device in the calibration file, aggregated."""
    devices = _read(Path(path) if path is not None else calibration_path())
    return {name: DeviceCalibration.from_samples(name, e["samples"], gpu=e["gpu"]) for name, e in devices.items()}


def find_calibration(name: str, *, path: str | os.PathLike[str] | None = None) -> DeviceCalibration | None:
    """The calibration of a device, by CUDA device name ("NVIDIA H200") or GPU catalog name ("H200").

    Devices whose names resolve to the same catalog entry are pooled. ``None`` when nothing matches.
    """
    devices = _read(Path(path) if path is not None else calibration_path())
    if not devices:
        return None
    exact = [n for n in devices if n.casefold() == name.casefold()]
    if exact:
        e = devices[exact[0]]
        return DeviceCalibration.from_samples(exact[0], e["samples"], gpu=e["gpu"])
    gpu = _gpu_name(name)
    matching = [n for n, e in devices.items() if gpu is not None and e["gpu"] == gpu]
    if not matching:
        return None
    samples = [s for n in matching for s in devices[n]["samples"]]
    return DeviceCalibration.from_samples(" + ".join(matching), samples, gpu=gpu)


def resolve_calibration(calibration: object, gpu: GPU | None, *,
                        path: str | os.PathLike[str] | None = None) -> DeviceCalibration | None:
    """What :func:`hf_gpu_estimator.estimator` applies for its ``calibration=`` and ``gpu=`` arguments.

    ``None``: the calibration of ``gpu`` if the file has one (no file read without a gpu);
    ``False``: none; a :class:`DeviceCalibration`: itself; a string: that device (it must exist).

    Raises:
        UnknownNameError: a device name the calibration file does not hold.
        InvalidArgumentError: another type.
    """
    if calibration is False:
        return None
    if isinstance(calibration, DeviceCalibration):
        return calibration
    if calibration is None or calibration is True:
        if gpu is None:
            if calibration is True:
                raise InvalidArgumentError("calibration", True, "a device name, or gpu= to pick the calibration")
            return None
        return find_calibration(gpu.name, path=path)
    if isinstance(calibration, str):
        found = find_calibration(calibration, path=path)
        if found is None:
            known = list(load_calibrations(path=path))
            raise UnknownNameError("calibrated device", calibration, known or ["(none: run 'hfge measure' first)"])
        return found
    raise InvalidArgumentError("calibration", calibration, "a device name, a DeviceCalibration, None or False")


# --------------------------------------------------------------------------------------------
# Applying a calibration.

#: The lines a calibration replaces (by key).
_OVERHEAD_KEYS = (RATIO_KEY, CONTEXT_KEY)


def apply_calibration(memory: MemoryEstimate, workload: Workload, cal: DeviceCalibration,
                      assumptions: Sequence[str] = ()) -> tuple[MemoryEstimate, tuple[str, ...]]:
    """``memory`` with the device's reserved ratio and CUDA context; the tensor terms are unchanged.

    Returns:
        The new estimate and ``assumptions`` with the default overhead lines replaced by the
        calibrated ones (a task without calibrated runs keeps the default ratio, and says so).
    """
    task = workload.task
    allocated = memory.allocated_peak_bytes
    notes: list[Assumption] = []
    ratio = cal.reserved_ratio.get(task)
    decode_kv = 0
    if not workload.is_training and workload.new_tokens > 1:
        decode_kv = max((t.bytes for t in memory.terms if t.component == "kv_cache"), default=0)
    frag = f" + {overhead.DECODE_FRAGMENTATION} x the final KV cache" if decode_kv else ""
    if ratio is not None:
        lo, hi = cal.ratio_range[task]
        reserved = overhead.reserved_bytes(allocated, task, ratio, decode_kv_bytes=decode_kv)
        notes.append(Assumption(key=RATIO_KEY, text=f"reserved = allocated x {ratio} (calibrated: median of "
                                f"{cal.ratio_runs[task]} {task} runs on {cal.device_name}, range {lo}-{hi}){frag}"))
    else:
        reserved = overhead.reserved_bytes(allocated, task, decode_kv_bytes=decode_kv)
        notes.append(Assumption(key=RATIO_KEY, text=f"reserved = allocated x {overhead.RESERVED_RATIO[task]} "
                                f"(default: the calibration of {cal.device_name} has no {task} runs){frag}"))
    extra = memory.cuda_context_bytes - overhead.CUDA_CONTEXT_BYTES  # NCCL buffers, when parallel
    if cal.cuda_context_bytes is not None:
        context = cal.cuda_context_bytes + max(0, extra)
        lo_c, hi_c = cal.context_range_bytes or (cal.cuda_context_bytes, cal.cuda_context_bytes)
        notes.append(Assumption(key=CONTEXT_KEY, text=(
            f"device total = reserved + CUDA context {context >> 20} MiB (calibrated: median of "
            f"{cal.context_runs} runs on {cal.device_name}, {lo_c >> 20}-{hi_c >> 20} MiB"
            + (f", + NCCL {extra >> 20} MiB" if extra > 0 else "") + ")")))
    else:
        context = memory.cuda_context_bytes
        notes.append(Assumption(key=CONTEXT_KEY, text=f"device total = reserved + CUDA context {context >> 20} MiB "
                                f"(default: the calibration of {cal.device_name} has no nvidia-smi figures)"))
    calibrated = replace(memory, reserved_peak_bytes=reserved, device_total_bytes=reserved + context,
                         cuda_context_bytes=context, allocator_overhead_bytes=reserved - allocated,
                         assumptions=replace_keyed(memory.assumptions, drop=_OVERHEAD_KEYS))
    return calibrated, replace_keyed(assumptions, *notes)


# --------------------------------------------------------------------------------------------
# Sources of samples.


def samples_from_jsonl(path: str | os.PathLike[str]) -> list[Sample]:
    """Samples from a ``benchmarks/gpu_measure.py`` result file (``"kind": "measure"`` lines).

    The ``_environment`` line gives the device name, the versions and nvidia-smi's used memory
    before the run (other processes); lines with an error, a skip or no nvidia-smi figure give
    no context but still a ratio.
    """
    p = Path(path)
    env: dict[str, Any] = {}
    out: list[Sample] = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = _json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidArgumentError("calibration source", f"{p}:{lineno}", "JSON lines", hint=str(e)) from e
        if row.get("case") == "_environment":
            env = row
            continue
        m = row.get("measure")
        if row.get("kind") != "measure" or not isinstance(m, dict) or "error" in row:
            continue
        if not m.get("allocated_peak_bytes") or m.get("reserved_peak_bytes") is None:
            continue  # CPU runs: no allocator figures
        task = (row.get("workload") or {}).get("task")
        if task not in _TASKS:
            continue
        out.append(Sample(
            device_name=m.get("device_name") or env.get("device_name") or "unknown",
            task=task, allocated_peak_bytes=int(m["allocated_peak_bytes"]),
            reserved_peak_bytes=int(m["reserved_peak_bytes"]),
            nvml_used_bytes=m.get("nvml_used_bytes"),
            other_processes_bytes=int(env.get("nvml_used_bytes_at_start") or 0),
            source=f"{p.name}#{row.get('case', lineno)}",
            recorded_at=_date_from_name(p.name),
            versions=m.get("versions") or env.get("versions") or {},
        ))  # fmt: skip
    return out


def _date_from_name(name: str) -> str:
    parts = Path(name).stem.split("-")
    for i in range(len(parts) - 2):
        if len(parts[i]) == 4 and parts[i].isdigit():
            return "-".join(parts[i:i + 3])
    return ""


def samples_from_measure_json(path: str | os.PathLike[str]) -> list[Sample]:
    """The sample of a file saved by ``hfge measure --output`` (none for a CPU/MPS run)."""
    p = Path(path)
    try:
        data = _json.loads(p.read_bytes())
    except json.JSONDecodeError as e:
        raise InvalidArgumentError("calibration source", str(p), "a JSON file from 'hfge measure'", hint=str(e)) from e
    if not isinstance(data, dict) or data.get("format") != MEASURE_FORMAT:
        raise InvalidArgumentError("calibration source", str(p), f"a {MEASURE_FORMAT!r} file from 'hfge measure'")
    m, task = data.get("measured") or {}, (data.get("workload") or {}).get("task")
    if not m.get("allocated_peak_bytes") or m.get("reserved_peak_bytes") is None or task not in _TASKS:
        return []
    return [Sample(device_name=m.get("device_name") or "unknown", task=task,
                   allocated_peak_bytes=int(m["allocated_peak_bytes"]), reserved_peak_bytes=int(m["reserved_peak_bytes"]),
                   nvml_used_bytes=m.get("nvml_used_bytes"),
                   other_processes_bytes=int((data.get("device") or {}).get("other_processes_bytes") or 0),
                   source=str(data.get("command") or p.name), recorded_at=str(data.get("recorded_at", ""))[:10],
                   versions=m.get("versions") or {})]


def seed_from_jsonl(paths: Iterable[str | os.PathLike[str]] | None = None, *,
                    path: str | os.PathLike[str] | None = None) -> list[Sample]:
    """Seed the calibration from result files: ``benchmarks/gpu_measure.py`` JSON lines (``*.jsonl``) and
    ``hfge measure --output`` files (``*.json``); default: the repository's ``benchmarks/results/``.

    Returns:
        The samples read (already-present ones are not added twice).
    """
    if paths is None:
        results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
        paths = sorted([*results.glob("*.jsonl"), *results.glob("*.json")])
    samples = [s for p in paths
               for s in (samples_from_jsonl(p) if str(p).endswith(".jsonl") else samples_from_measure_json(p))]
    if samples:
        record(samples, path=path)
    return samples


def record_measurement(measured: Any, workload: Workload, *, source: str, other_processes_bytes: int | None = None,
                       path: str | os.PathLike[str] | None = None) -> Path | None:
    """Add one ``measure_workload`` result (a CUDA run) to the calibration; ``None`` for CPU/MPS runs.

    Args:
        measured: a :class:`hf_gpu_estimator.runtime.measure.MeasureResult`.
        other_processes_bytes: nvidia-smi's used memory before this process initialized CUDA.
    """
    if measured.allocated_peak_bytes is None or measured.reserved_peak_bytes is None or not measured.allocated_peak_bytes:
        return None
    sample = Sample(device_name=measured.device_name, task=workload.task,
                    allocated_peak_bytes=int(measured.allocated_peak_bytes),
                    reserved_peak_bytes=int(measured.reserved_peak_bytes), nvml_used_bytes=measured.nvml_used_bytes,
                    other_processes_bytes=int(other_processes_bytes or 0), source=source,
                    recorded_at=time.strftime("%Y-%m-%d"), versions=dict(measured.versions))
    return record([sample], path=path)
