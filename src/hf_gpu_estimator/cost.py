"""Cost: $/hour of a plan, $ per million output tokens at a load, $ of a training run (pure arithmetic).

Prices are the catalog's ``price_per_hour_usd`` (one GPU, on demand, with its source and date);
a GPU without one raises :class:`~hf_gpu_estimator.errors.MissingPriceError`, which says how to
give a price in a user GPU file.

>>> from hf_gpu_estimator.hardware import get_gpu
>>> round(hourly_cost_usd(get_gpu("H100-SXM-80GB"), 8), 2)
30.24
"""

from __future__ import annotations

from dataclasses import dataclass

from hf_gpu_estimator.errors import InvalidArgumentError, MissingPriceError
from hf_gpu_estimator.hardware import GPU

__all__ = ["TrainingCost", "cost_per_million_tokens_usd", "hourly_cost_usd", "price_per_hour_usd", "training_cost"]

SECONDS_PER_HOUR = 3600.0


def price_per_hour_usd(gpu: GPU) -> float:
    """One GPU's catalog price per hour.

    Raises:
        MissingPriceError: The entry has no price (the message says how to add one).
    """
    if gpu.price_per_hour_usd is None:
        raise MissingPriceError(gpu.name)
    return float(gpu.price_per_hour_usd)


def _positive(field: str, value: object, *, integer: bool = False) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value <= 0:  # type: ignore[operator]
        raise InvalidArgumentError(field, value, "a positive integer" if integer else "a positive number")


def hourly_cost_usd(gpu: GPU, num_gpus: int = 1) -> float:
    """$/hour of ``num_gpus`` GPUs of type ``gpu``."""
    _positive("num_gpus", num_gpus, integer=True)
    return price_per_hour_usd(gpu) * num_gpus


def cost_per_million_tokens_usd(gpu: GPU, num_gpus: int, tokens_per_s: float) -> float:
    """$ per million tokens when ``num_gpus`` GPUs together produce ``tokens_per_s`` tokens per second.

    Use the output tokens/s at the load the plan serves (not the peak), so idle capacity is paid for.
    """
    _positive("tokens_per_s", tokens_per_s)
    return hourly_cost_usd(gpu, num_gpus) / (tokens_per_s * SECONDS_PER_HOUR) * 1e6


@dataclass(frozen=True, kw_only=True)
class TrainingCost:
    """The cost of a training run.

    Attributes:
        gpu: Catalog name.
        num_gpus: GPUs billed.
        tokens: Token budget.
        seconds: Wall time.
        price_per_hour_usd: One GPU.
        total_usd: ``hours * num_gpus * price``.
        gpu_hours: ``hours * num_gpus``.
    """

    gpu: str
    num_gpus: int
    tokens: float
    seconds: float
    price_per_hour_usd: float
    total_usd: float
    gpu_hours: float

    @property
    def hours(self) -> float:
        return self.seconds / SECONDS_PER_HOUR

    def to_dict(self) -> dict[str, object]:
        return {"gpu": self.gpu, "num_gpus": self.num_gpus, "tokens": self.tokens, "seconds": self.seconds,
                "hours": self.hours, "gpu_hours": self.gpu_hours, "price_per_hour_usd": self.price_per_hour_usd,
                "total_usd": self.total_usd}


def training_cost(gpu: GPU, num_gpus: int, *, tokens: float, tokens_per_s: float) -> TrainingCost:
    """Cost of training on ``tokens`` tokens at ``tokens_per_s`` (the whole job) on ``num_gpus`` x ``gpu``.

    Raises:
        MissingPriceError: ``gpu`` has no price.
        InvalidArgumentError: A non-positive token budget, rate or GPU count.
    """
    _positive("token_budget", tokens)
    _positive("tokens_per_s", tokens_per_s)
    price = price_per_hour_usd(gpu)
    _positive("num_gpus", num_gpus, integer=True)
    seconds = float(tokens) / tokens_per_s
    gpu_hours = seconds / SECONDS_PER_HOUR * num_gpus
    return TrainingCost(gpu=gpu.name, num_gpus=num_gpus, tokens=float(tokens), seconds=seconds,
                        price_per_hour_usd=price, total_usd=gpu_hours * price, gpu_hours=gpu_hours)
