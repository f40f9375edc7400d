"""Several models planned together from a description of their traffic: GPUs and cost of the fleet."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hf_gpu_estimator.constants import HOURS_PER_MONTH
from hf_gpu_estimator.errors import EstimatorError, InvalidArgumentError
from hf_gpu_estimator.planner.serving import CheapestServing, cheapest_serving
from hf_gpu_estimator.planner.training import CheapestTraining, cheapest_training
from hf_gpu_estimator.spec import ModelSpec


@dataclass(frozen=True, kw_only=True)
class FleetEntry:
    """One model of a fleet and its chosen plan."""

    model: str
    kind: str  # "serving" or "training"
    serving: CheapestServing | None = None
    training: CheapestTraining | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"model": self.model, "kind": self.kind}
        if self.error:
            out["error"] = self.error
        if self.serving:
            out["best"] = self.serving.best.to_dict()
            out["skipped"] = len(self.serving.skipped)
        if self.training:
            out["best"] = self.training.best.to_dict()
            out["skipped"] = len(self.training.skipped)
        return out


@dataclass(frozen=True, kw_only=True)
class FleetPlan:
    """GPUs and cost for several models: the sum of each model's cheapest plan.

    Attributes:
        entries: One per model, in file order.
        hourly_usd: Serving entries, $/hour together.
        gpus: GPU type -> count for the serving entries.
        training_usd: Training entries, total $.
    """

    entries: tuple[FleetEntry, ...]
    hourly_usd: float
    gpus: Mapping[str, int]
    training_usd: float

    def to_dict(self) -> dict[str, object]:
        return {"entries": [e.to_dict() for e in self.entries], "hourly_usd": self.hourly_usd,
                "monthly_usd": self.hourly_usd * HOURS_PER_MONTH, "gpus": dict(self.gpus), "training_usd": self.training_usd}


_FLEET_KEYS = {"model", "request_rate", "input_tokens", "output_tokens", "tpot_ms", "ttft_ms", "token_budget",
               "deadline_hours", "gpus", "workload"}


def plan_fleet(source: str | os.PathLike[str] | Mapping[str, Any], *,
               resolve: Callable[[str], ModelSpec] | None = None) -> FleetPlan:
    """Plan several models at once from a YAML/JSON file (or a dict) of their traffic.

    Schema::

        gpus: [H100-SXM-80GB, L4, A10]        # optional: restrict the catalog
        models:
          - model: meta-llama/Llama-3.1-8B-Instruct
            request_rate: 5                  # requests/s
            input_tokens: 1024
            output_tokens: 256
            tpot_ms: 50                      # optional p50 target; ttft_ms likewise
          - model: Qwen/Qwen2.5-7B
            token_budget: 2.0e9              # a training job
            deadline_hours: 48
            workload: {task: training, method: lora, batch_size: 8, seq_len: 2048}

    An entry that cannot be planned keeps its error in the result rather than failing the fleet.
    The planner does no I/O itself: a path is read by :func:`hf_gpu_estimator.sources.fleet.read_fleet_file`
    and model ids are resolved by ``resolve`` (default :func:`hf_gpu_estimator.sources.inspect_model`).

    Raises:
        InvalidArgumentError: The file is unreadable or an entry has unknown keys.
    """
    from hf_gpu_estimator.workload import workload_from_kwargs

    if isinstance(source, Mapping):
        data = source
    else:
        from hf_gpu_estimator.sources.fleet import read_fleet_file

        data = read_fleet_file(source)
    if resolve is None:
        from hf_gpu_estimator.sources import inspect_model

        resolve = inspect_model
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise InvalidArgumentError("models", models, "a non-empty list of model entries")
    default_gpus = data.get("gpus")
    entries: list[FleetEntry] = []
    hourly = 0.0
    training_usd = 0.0
    counts: dict[str, int] = {}
    for i, item in enumerate(models):
        if not isinstance(item, Mapping) or "model" not in item:
            raise InvalidArgumentError(f"models[{i}]", item, "an object with a 'model' key")
        unknown = set(item) - _FLEET_KEYS
        if unknown:
            raise InvalidArgumentError(f"models[{i}]", sorted(unknown)[0], "one of " + ", ".join(sorted(_FLEET_KEYS)))
        model_id = str(item["model"])
        options = dict(item.get("workload") or {})
        training = "token_budget" in item
        if training:
            options.setdefault("task", "training")
        try:
            spec = resolve(model_id)
            work = workload_from_kwargs(options)
            gpus = item.get("gpus", default_gpus)
            if training:
                result = cheapest_training(spec, work, token_budget=item["token_budget"],
                                           deadline_hours=item.get("deadline_hours"), gpus=gpus)
                training_usd += result.best.total_usd
                entries.append(FleetEntry(model=model_id, kind="training", training=result))
            else:
                for key in ("request_rate", "input_tokens", "output_tokens"):
                    if key not in item:
                        raise InvalidArgumentError(f"models[{i}].{key}", None, "a value (or token_budget for training)")
                served = cheapest_serving(spec, work, request_rate_per_s=item["request_rate"],
                                          input_tokens=item["input_tokens"], output_tokens=item["output_tokens"],
                                          tpot_ms=item.get("tpot_ms"), ttft_ms=item.get("ttft_ms"), gpus=gpus)
                hourly += served.best.hourly_usd
                counts[served.best.gpu] = counts.get(served.best.gpu, 0) + served.best.num_gpus
                entries.append(FleetEntry(model=model_id, kind="serving", serving=served))
        except InvalidArgumentError:
            raise
        except EstimatorError as e:
            entries.append(FleetEntry(model=model_id, kind="training" if training else "serving", error=str(e)))
    return FleetPlan(entries=tuple(entries), hourly_usd=hourly, gpus=counts, training_usd=training_usd)
