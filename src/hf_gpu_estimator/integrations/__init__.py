"""Warn (or raise) before out-of-memory: Lightning, accelerate and transformers integrations.

Importing this package loads no framework. The framework modules import theirs at the top
and are only loaded when used::

    from hf_gpu_estimator.integrations.lightning import MemoryPreflight        # lightning
    from hf_gpu_estimator.integrations.accelerate import preflight              # accelerate
    from hf_gpu_estimator.integrations.transformers import MemoryPreflightCallback, check_fits
"""

from __future__ import annotations

from hf_gpu_estimator.integrations._core import (
    DEFAULT_MARGIN,
    PreflightResult,
    Suggestion,
    preflight_check,
    resolve_device_memory,
)

__all__ = ["DEFAULT_MARGIN", "PreflightResult", "Suggestion", "preflight_check", "resolve_device_memory"]
