"""Planner: what fits (max batch, max context, min GPUs), serving capacity per engine, and the cheapest plan.

:mod:`.deployment` holds the one answer to "does it fit": :class:`Deployment` (engine, GPU type and
count, tp/pp, the engine's settings, free memory) and :func:`fit`; every search below asks it.

One question per module, all pure arithmetic over :func:`~hf_gpu_estimator.memory.estimate_memory`
and the roofline of :mod:`hf_gpu_estimator.perf` (no torch, no network):

- :mod:`.fits`: the largest batch and sequence length on one device;
- :mod:`.parallel`: the fewest GPUs of a type and the split (tensor, pipeline, data parallel);
- :mod:`.engines`: the KV pool a serving engine sizes (:mod:`.engines.vllm`);
- :mod:`.gpu_plan`: everything about one workload on one GPU type (``hfge plan``);
- :mod:`.serving`, :mod:`.training`: the cheapest GPU type and count for a traffic or a token budget;
- :mod:`.mix`: a heterogeneous GPU mix for several request sizes;
- :mod:`.fleet`: several models at once (files are read and ids resolved by :mod:`hf_gpu_estimator.sources`);
- :mod:`.evals`: the tokens, time and cost of running benchmark suites (lm-evaluation-harness).
"""

from __future__ import annotations

from hf_gpu_estimator.planner._search import (
    DEFAULT_MARGIN,
    PP_DEGREES,
    SEARCH_CAP,
    TP_DEGREES,
    TRAINING_GPU_COUNTS,
    Skipped,
)
from hf_gpu_estimator.planner.deployment import Deployment, Launch, device_gpu, fit, largest_gpu_layers
from hf_gpu_estimator.planner.engines import ENGINES, default_engine, engine_capacity
from hf_gpu_estimator.planner.engines.vllm import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    VLLM_BLOCK_SIZE,
    ServingCapacity,
    serving_capacity,
    vllm_batch_defaults,
)
from hf_gpu_estimator.planner.evals import (
    EVAL_ENGINES,
    CheapestEval,
    EvalPlan,
    EvalTask,
    TaskDemand,
    TaskRun,
    cheapest_eval,
    eval_suites,
    eval_tasks,
    plan_eval,
    resolve_evals,
)
from hf_gpu_estimator.planner.fits import max_batch_size, max_seq_len
from hf_gpu_estimator.planner.fleet import FleetEntry, FleetPlan, plan_fleet
from hf_gpu_estimator.planner.gpu_plan import CatalogPlan, Plan, plan, plan_catalog
from hf_gpu_estimator.planner.mix import MixPlan, RequestBucket, heterogeneous_serving
from hf_gpu_estimator.planner.parallel import Parallelization, min_gpus, valid_tp_degrees
from hf_gpu_estimator.planner.serving import CheapestServing, ServingOption, cheapest_serving
from hf_gpu_estimator.planner.training import CheapestTraining, TrainingOption, cheapest_training

__all__ = [
    "DEFAULT_GPU_MEMORY_UTILIZATION",
    "DEFAULT_MARGIN",
    "ENGINES",
    "EVAL_ENGINES",
    "PP_DEGREES",
    "SEARCH_CAP",
    "TP_DEGREES",
    "TRAINING_GPU_COUNTS",
    "VLLM_BLOCK_SIZE",
    "CatalogPlan",
    "CheapestEval",
    "CheapestServing",
    "CheapestTraining",
    "Deployment",
    "EvalPlan",
    "EvalTask",
    "FleetEntry",
    "FleetPlan",
    "Launch",
    "MixPlan",
    "Parallelization",
    "Plan",
    "RequestBucket",
    "ServingCapacity",
    "ServingOption",
    "Skipped",
    "TaskDemand",
    "TaskRun",
    "TrainingOption",
    "cheapest_eval",
    "cheapest_serving",
    "cheapest_training",
    "default_engine",
    "device_gpu",
    "engine_capacity",
    "eval_suites",
    "eval_tasks",
    "fit",
    "heterogeneous_serving",
    "largest_gpu_layers",
    "max_batch_size",
    "max_seq_len",
    "min_gpus",
    "plan",
    "plan_catalog",
    "plan_eval",
    "plan_fleet",
    "resolve_evals",
    "serving_capacity",
    "valid_tp_degrees",
    "vllm_batch_defaults",
]
