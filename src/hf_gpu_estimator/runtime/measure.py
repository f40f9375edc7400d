"""Measure mode: run a workload on the local device with random weights; record peaks and speed.

The model is built and driven by :mod:`hf_gpu_estimator.runtime.phases`, the code exact mode traces,
with real random weights (N(0, 0.02), filled on the device). On CUDA each phase is bracketed
by ``torch.cuda.synchronize()`` and ``torch.cuda.reset_peak_memory_stats()``, so the phase
peaks are ``torch.cuda.max_memory_allocated()`` within the phase; the run's peak is the largest
of them (and of the build). On CPU only the process's peak RSS is available
(``resource.getrusage``, monotonic over the process: not per case).

Import this module lazily: it imports torch at the top.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from hf_gpu_estimator.runtime.build import build_model
from hf_gpu_estimator.runtime.dtypes import weight_dtype
from hf_gpu_estimator.runtime.phases import prepare_training, run_inference, run_training
from hf_gpu_estimator.workload import Workload


@dataclass(frozen=True, kw_only=True)
class MeasureResult:
    """What one run on a real device measured.

    CUDA numbers: ``allocated_peak_bytes`` is the largest ``torch.cuda.max_memory_allocated()``
    over the build and the phases; ``reserved_peak_bytes`` likewise for
    ``max_memory_reserved()``; ``nvml_used_bytes`` is nvidia-smi's used memory at the end of
    the run (CUDA context and caching allocator included) and ``nvml_baseline_bytes`` before the
    model was built (other processes, and this process's context if already created).
    """

    device: str
    device_name: str
    allocated_peak_bytes: int | None
    reserved_peak_bytes: int | None
    weights_bytes: int | None  # allocated right after the build (params + buffers)
    phase_peaks: Mapping[str, int] = field(default_factory=dict)
    phase_seconds: Mapping[str, float] = field(default_factory=dict)
    nvml_baseline_bytes: int | None = None
    nvml_used_bytes: int | None = None
    host_peak_rss_bytes: int | None = None
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    train_tokens_per_s: float | None = None
    loss: float | None = None
    parameters: int = 0
    trainable_parameters: int = 0
    weight_dtype: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)
    fallbacks: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["fallbacks"] = list(self.fallbacks)
        return out



def relative_error(estimated: int | None, measured: int | None) -> float | None:
    """``estimated / measured - 1``; ``None`` when either is unknown or nothing was measured."""
    if estimated is None or not measured:
        return None
    return estimated / measured - 1


@dataclass(frozen=True, kw_only=True)
class EstimateFigures:
    """One estimate's figures beside a measurement, with the relative errors (estimate / measured - 1)."""

    allocated_peak_bytes: int
    reserved_peak_bytes: int
    device_total_bytes: int
    phase_at_peak: str
    components: Mapping[str, int]
    allocated_error: float | None
    reserved_error: float | None
    device_total_error: float | None

    @classmethod
    def of(cls, memory: Any, measured: MeasureResult, nvml_process_bytes: int | None) -> EstimateFigures:
        return cls(allocated_peak_bytes=memory.allocated_peak_bytes, reserved_peak_bytes=memory.reserved_peak_bytes,
                   device_total_bytes=memory.device_total_bytes, phase_at_peak=memory.phase_at_peak,
                   components=dict(memory.components),
                   allocated_error=relative_error(memory.allocated_peak_bytes, measured.allocated_peak_bytes),
                   reserved_error=relative_error(memory.reserved_peak_bytes, measured.reserved_peak_bytes),
                   device_total_error=relative_error(memory.device_total_bytes, nvml_process_bytes))

    def to_dict(self) -> dict[str, Any]:
        return {"allocated_peak_bytes": self.allocated_peak_bytes, "reserved_peak_bytes": self.reserved_peak_bytes,
                "device_total_bytes": self.device_total_bytes, "phase_at_peak": self.phase_at_peak,
                "components": dict(self.components),
                "errors": {"allocated": self.allocated_error, "reserved": self.reserved_error,
                           "device_total": self.device_total_error}}


@dataclass(frozen=True, kw_only=True)
class DeviceInfo:
    """The device a measurement ran on, as the run saw it before starting."""

    requested: str
    name: str
    total_bytes: int | None
    free_bytes_before: int | None
    other_processes_bytes: int | None


@dataclass(frozen=True, kw_only=True)
class MeasureReport:
    """``hfge measure``: the run, what it measured, and the estimates beside it (``--output`` saves :meth:`to_dict`).

    ``nvml_process_bytes`` is nvidia-smi's used memory at the end less what other processes held
    before (``None`` off CUDA); ``exact`` is ``None`` when the trace was skipped or failed
    (``exact_error`` says which).
    """

    command: str
    recorded_at: str
    model_id: str
    parameters: int
    config: Mapping[str, Any]
    workload: Workload
    device: DeviceInfo
    measured: MeasureResult
    nvml_process_bytes: int | None
    analytic: EstimateFigures
    exact: EstimateFigures | None = None
    exact_error: str | None = None
    calibration: str | None = None

    #: The ``format`` field of the saved JSON (readers check it).
    FORMAT = "hfge-measure/1"

    def to_dict(self) -> dict[str, Any]:
        """The saved JSON (``format: hfge-measure/1``), read by benchmarks/accuracy_report.py."""
        return {
            "format": self.FORMAT,
            "command": self.command,
            "recorded_at": self.recorded_at,
            "model": {"id": self.model_id, "parameters": self.parameters, "config": dict(self.config)},
            "workload": self.workload.to_dict(),
            "device": {"requested": self.device.requested, "name": self.device.name,
                       "total_bytes": self.device.total_bytes, "free_bytes_before": self.device.free_bytes_before,
                       "other_processes_bytes": self.device.other_processes_bytes},
            "versions": dict(self.measured.versions),
            "measured": {**self.measured.to_dict(), "nvml_process_bytes": self.nvml_process_bytes},
            "analytic": self.analytic.to_dict(),
            "exact": self.exact.to_dict() if self.exact is not None else {"error": self.exact_error or "skipped"},
            "calibration": self.calibration,
        }


def _nvidia_smi(query: str) -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    index = torch.cuda.current_device() if torch.cuda.is_available() else 0
    lines = done.stdout.strip().splitlines()
    return lines[index].strip() if index < len(lines) else None


def nvml_used_bytes() -> int | None:
    """Device memory in use as nvidia-smi reports it (all processes), or None without it."""
    text = _nvidia_smi("memory.used")
    try:
        return int(float(text)) * 2**20 if text else None  # nvidia-smi reports MiB
    except ValueError:
        return None


def nvml_used_bytes_before_init() -> int | None:
    """nvidia-smi's used memory on the device this process will use, without initializing CUDA.

    :func:`nvml_used_bytes` asks torch for the current device, which creates this process's
    CUDA context; called first, this one gives what *other* processes hold (calibration
    subtracts it). The device is the first of ``CUDA_VISIBLE_DEVICES`` when it is an index, else 0.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    index = visible if visible.isdigit() else "0"
    try:
        done = subprocess.run([exe, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", index],
                              capture_output=True, text=True, timeout=10, check=True)
        return int(float(done.stdout.strip().splitlines()[0])) * 2**20
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def versions() -> dict[str, str]:
    """torch, transformers, peft, CUDA, driver and Python versions."""
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("transformers", "peft", "accelerate"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        out[name] = getattr(module, "__version__", "?")
    if torch.version.cuda:
        out["cuda"] = torch.version.cuda
    driver = _nvidia_smi("driver_version") if torch.cuda.is_available() else None
    if driver:
        out["driver"] = driver
    return out


class _MeasureHooks:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.peaks: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        yield
        self._sync()
        self.seconds[name] = time.perf_counter() - start
        if self.cuda:
            self.peaks[name] = torch.cuda.max_memory_allocated()
            self.reserved[name] = torch.cuda.max_memory_reserved()

    @contextlib.contextmanager
    def setup(self, name: str) -> Iterator[None]:
        yield


def cleanup() -> None:
    """Free what a case left: collect garbage, empty the CUDA cache, reset the peak counters."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def measure_workload(config: Mapping[str, Any], workload: Workload, *, device: str = "cuda",
                     train_steps: int = 3) -> MeasureResult:
    """Run ``workload`` for real on ``device`` and measure memory and throughput.

    Inference: the prefill, then ``new_tokens - 1`` real greedy decode steps (generate's loop,
    see :func:`hf_gpu_estimator.runtime.phases.run_inference`); prefill tokens/s = batch × seq_len /
    prefill time, decode tokens/s = batch × (new_tokens − 1) / decode time. Training:
    ``train_steps`` optimizer steps; tokens/s over the steps after the first (warm-up):
    batch × seq_len × accumulation × (train_steps − 1) / their time.

    Raises:
        TraceError: unknown architecture or unsupported optimizer (as exact mode).
        torch.OutOfMemoryError: the workload does not fit (callers record it).
    """
    start = time.perf_counter()
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    cleanup()
    baseline = nvml_used_bytes() if cuda else None
    built = build_model(config, workload, device=dev, init="random")
    model = built.model
    fallbacks = tuple(built.fallbacks)
    if cuda:
        torch.cuda.synchronize()
    weights = torch.cuda.memory_allocated() if cuda else None
    build_peak = torch.cuda.max_memory_allocated() if cuda else 0
    build_reserved = torch.cuda.max_memory_reserved() if cuda else 0
    hooks = _MeasureHooks(dev)
    prefill_tps = decode_tps = train_tps = None
    loss_value = None
    optimizer = None
    try:
        if workload.is_training:
            optimizer, _ = prepare_training(model, workload)
            loss = run_training(model, optimizer, workload, hooks, device=dev, steps=train_steps)
            loss_value = float(loss.float().item()) if loss is not None else None
            timed = [s for name, s in hooks.seconds.items() if not name.endswith(("@1", "@1.1")) and "@1." not in name]
            if train_steps > 1 and timed:
                tokens = workload.batch_size * workload.seq_len * workload.gradient_accumulation_steps
                train_tps = tokens * (train_steps - 1) / sum(timed)
        else:
            cache = run_inference(model, workload, hooks, device=dev, real_decode=True)
            del cache
            if "prefill" in hooks.seconds:
                prefill_tps = workload.batch_size * workload.seq_len / hooks.seconds["prefill"]
            if "decode" in hooks.seconds and workload.new_tokens > 1:
                decode_tps = workload.batch_size * (workload.new_tokens - 1) / hooks.seconds["decode"]
        used = nvml_used_bytes() if cuda else None
        n_params = sum(p.numel() for p in model.parameters())
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad) if workload.is_training else 0
    finally:
        del optimizer, model, built
        cleanup()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return MeasureResult(
        device=str(dev),
        device_name=torch.cuda.get_device_name(dev) if cuda else (platform.processor() or platform.machine()),
        allocated_peak_bytes=max([build_peak, *hooks.peaks.values()]) if cuda else None,
        reserved_peak_bytes=max([build_reserved, *hooks.reserved.values()]) if cuda else None,
        weights_bytes=weights,
        phase_peaks=dict(hooks.peaks),
        phase_seconds=dict(hooks.seconds),
        nvml_baseline_bytes=baseline,
        nvml_used_bytes=used,
        host_peak_rss_bytes=rss,
        prefill_tokens_per_s=prefill_tps,
        decode_tokens_per_s=decode_tps,
        train_tokens_per_s=train_tps,
        loss=loss_value,
        parameters=n_params,
        trainable_parameters=n_train,
        weight_dtype=weight_dtype(config, workload) if workload.method != "qlora" else "bfloat16",
        versions=versions(),
        fallbacks=fallbacks,
        seconds=time.perf_counter() - start,
    )

