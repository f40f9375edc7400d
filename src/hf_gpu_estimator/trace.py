"""Exact mode's tracer, kept at its former path: see :mod:`hf_gpu_estimator.runtime.trace`."""

from hf_gpu_estimator.runtime.trace import TraceResult, clear_cache, trace_workload

__all__ = ["TraceResult", "clear_cache", "trace_workload"]
