"""The cheapest way to train on a token budget: GPU type, count and strategy, within a deadline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hf_gpu_estimator.cost import hourly_cost_usd, training_cost
from hf_gpu_estimator.errors import InfeasiblePlanError, InvalidArgumentError, MissingGPUDataError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.perf import TrainingSpeed, training_speed
from hf_gpu_estimator.planner._search import (
    DEFAULT_MARGIN,
    TRAINING_GPU_COUNTS,
    Skipped,
    skipped_line,
    _gpu_list,
    _positive_number,
)
from hf_gpu_estimator.planner.deployment import Deployment, Launch, fit
from hf_gpu_estimator.planner.parallel import Parallelization, min_gpus
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Parallelism, Workload


@dataclass(frozen=True, kw_only=True)
class TrainingOption:
    """One way to run a training job on one GPU type."""

    gpu: str
    parallelization: Parallelization
    speed: TrainingSpeed
    hours: float
    total_usd: float
    hourly_usd: float

    def to_dict(self) -> dict[str, object]:
        return {"gpu": self.gpu, "num_gpus": self.parallelization.num_gpus,
                "strategy": self.parallelization.strategy, "offload_optimizer": self.parallelization.offload_optimizer,
                "tokens_per_s": self.speed.tokens_per_s, "hours": self.hours, "hourly_usd": self.hourly_usd,
                "total_usd": self.total_usd, "launch": self.launch.to_dict() if self.launch is not None else None}

    @property
    def launch(self) -> Launch | None:
        """The accelerate / Lightning / TrainingArguments settings this option assumes."""
        v = self.parallelization.verdict
        return v.launch if v is not None else None


@dataclass(frozen=True, kw_only=True)
class CheapestTraining:
    """Training options ranked by total $, and the GPU types left out with the reason."""

    token_budget: float
    deadline_hours: float | None
    options: tuple[TrainingOption, ...]
    skipped: tuple[Skipped, ...]
    assumptions: tuple[str, ...]

    #: What this ranking is of (the report picks its columns by it).
    kind = "training"

    def skipped_note(self, *, verbose: bool = False) -> str | None:
        """One line on the GPU types left out, by kind (``verbose``: the caller lists them too)."""
        return skipped_line(self.skipped, verbose=verbose)

    @property
    def best(self) -> TrainingOption:
        return self.options[0]

    def to_dict(self) -> dict[str, object]:
        return {"token_budget": self.token_budget, "deadline_hours": self.deadline_hours,
                "options": [o.to_dict() for o in self.options],
                "skipped": [{"gpu": s.gpu, "reason": s.reason, "kind": s.kind} for s in self.skipped],
                "assumptions": list(self.assumptions)}


def cheapest_training(spec: ModelSpec, workload: Workload, *, token_budget: float, deadline_hours: float | None = None,
                      gpus: Iterable[str | GPU] | None = None, margin: float = DEFAULT_MARGIN) -> CheapestTraining:
    """Rank GPU type x count by the total $ of training on ``token_budget`` tokens (within a deadline).

    For each priced GPU type: the fewest GPUs that fit (:func:`min_gpus`), doubled with the same
    strategy (ZeRO-3 where the count grows past what was needed) until the deadline is met; under
    linear scaling the cost barely changes with the count, so the smallest count meeting the
    deadline is kept.

    Raises:
        InfeasiblePlanError: No GPU type fits, or none meets the deadline.
    """
    budget = _positive_number("token_budget", token_budget)
    deadline = _positive_number("deadline_hours", deadline_hours) if deadline_hours is not None else None
    if not workload.is_training:
        raise InvalidArgumentError("task", workload.task, "'training' for a training plan")
    options: list[TrainingOption] = []
    skipped: list[Skipped] = []
    for gpu in _gpu_list(gpus):
        if gpu.price_per_hour_usd is None:
            skipped.append(Skipped(gpu=gpu.name, kind="no_price", reason="no price in the catalog (add "
                                   "price_per_hour_usd in a user GPU file, HFGE_GPUS_FILE)"))
            continue
        try:
            par = min_gpus(spec, workload, gpu, margin=margin)
            option = None
            n = par.num_gpus
            while n <= TRAINING_GPU_COUNTS[-1]:
                strategy = par.strategy if n == par.num_gpus else (par.strategy if par.strategy != "none" else "ddp")
                p = Parallelism(num_gpus=n, strategy=strategy, offload_optimizer=par.offload_optimizer)  # type: ignore[arg-type]
                w = par.workload.with_(parallelism=p)
                speed = training_speed(spec, w, gpu)
                cost = training_cost(gpu, n, tokens=budget, tokens_per_s=speed.tokens_per_s)
                v = fit(spec, w, Deployment(gpu=gpu, num_gpus=n, strategy=strategy, margin=margin))
                this = Parallelization(num_gpus=n, strategy=strategy, offload_optimizer=par.offload_optimizer,
                                       device_total_bytes=v.needs_bytes, workload=w,
                                       description=f"{n} x {gpu.name}, {strategy}", verdict=v)
                option = TrainingOption(gpu=gpu.name, parallelization=this, speed=speed, hours=cost.hours,
                                        total_usd=cost.total_usd, hourly_usd=hourly_cost_usd(gpu, n))
                if deadline is None or cost.hours <= deadline:
                    break
                n *= 2
            else:
                skipped.append(Skipped(gpu=gpu.name, kind="deadline", reason=f"misses the {deadline:g} h deadline even on "
                                                            f"{TRAINING_GPU_COUNTS[-1]} GPUs"))
                continue
            if option is not None:
                options.append(option)
        except InfeasiblePlanError as e:
            skipped.append(Skipped(gpu=gpu.name, kind="does_not_fit", reason=str(e)))
        except MissingGPUDataError as e:
            skipped.append(Skipped(gpu=gpu.name, kind="no_data", reason=str(e)))
    if not options:
        raise InfeasiblePlanError(f"no priced GPU can train {spec.id} on {budget:.3g} tokens"
                                  + (f" within {deadline:g} h" if deadline else "") + ": "
                                  + "; ".join(f"{s.gpu}: {s.reason}" for s in skipped[:4]),
                                  reasons=[s.reason for s in skipped])
    options.sort(key=lambda o: (o.total_usd, o.hours))
    return CheapestTraining(token_budget=budget, deadline_hours=deadline, options=tuple(options),
                            skipped=tuple(skipped),
                            assumptions=("linear scaling across data-parallel GPUs (communication overlapped)",
                                         "billing for the training wall time only (no setup, checkpoints or evals)"))

