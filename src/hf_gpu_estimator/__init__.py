"""hf-gpu-estimator: how much GPU an LLM job needs, before you launch it.

Importing the package loads neither torch nor the network: names resolve on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "estimate": "hf_gpu_estimator.estimator",
    "Estimate": "hf_gpu_estimator.estimator",
    "inspect_model": "hf_gpu_estimator.sources",
    "ModelSpec": "hf_gpu_estimator.spec",
    "Workload": "hf_gpu_estimator.workload",
    "make_workload": "hf_gpu_estimator.workload",
    "GPU": "hf_gpu_estimator.hardware",
    "get_gpu": "hf_gpu_estimator.hardware",
    "list_gpus": "hf_gpu_estimator.hardware",
    "EstimatorError": "hf_gpu_estimator.errors",
    "Deployment": "hf_gpu_estimator.planner.deployment",
    "fit": "hf_gpu_estimator.planner.deployment",
    "Verdict": "hf_gpu_estimator.verdict",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from hf_gpu_estimator.errors import EstimatorError
    from hf_gpu_estimator.estimator import Estimate, estimate
    from hf_gpu_estimator.hardware import GPU, get_gpu, list_gpus
    from hf_gpu_estimator.planner.deployment import Deployment, fit
    from hf_gpu_estimator.sources import inspect_model
    from hf_gpu_estimator.spec import ModelSpec
    from hf_gpu_estimator.verdict import Verdict
    from hf_gpu_estimator.workload import Workload, make_workload


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_gpu_estimator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
