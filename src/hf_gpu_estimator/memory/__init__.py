"""The analytic memory model: pure arithmetic on ModelSpec x Workload (no torch, no network)."""

from hf_gpu_estimator.memory.model import estimate_memory
from hf_gpu_estimator.memory.terms import MemoryEstimate, Moment, Term

__all__ = ["MemoryEstimate", "Moment", "Term", "estimate_memory"]
