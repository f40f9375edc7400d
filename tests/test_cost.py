"""cost.py: $/hour, $ per million tokens, training cost, and the missing-price error."""

from __future__ import annotations

import pytest

from hf_gpu_estimator.cost import cost_per_million_tokens_usd, hourly_cost_usd, price_per_hour_usd, training_cost
from hf_gpu_estimator.errors import InvalidArgumentError, MissingPriceError
from hf_gpu_estimator.hardware import get_gpu


def test_hourly_cost_is_price_times_count() -> None:
    gpu = get_gpu("H100-SXM-80GB")
    assert hourly_cost_usd(gpu, 8) == pytest.approx(8 * gpu.price_per_hour_usd)


def test_cost_per_million_tokens() -> None:
    gpu = get_gpu("H100-SXM-80GB")
    # 1000 tokens/s for one hour = 3.6M tokens for one GPU-hour.
    assert cost_per_million_tokens_usd(gpu, 1, 1000.0) == pytest.approx(gpu.price_per_hour_usd / 3.6)


def test_training_cost() -> None:
    gpu = get_gpu("A100-80GB-SXM")
    cost = training_cost(gpu, 8, tokens=3.6e9, tokens_per_s=1e5)
    assert cost.hours == pytest.approx(10.0)
    assert cost.gpu_hours == pytest.approx(80.0)
    assert cost.total_usd == pytest.approx(80 * gpu.price_per_hour_usd)
    assert cost.to_dict()["total_usd"] == cost.total_usd


def test_missing_price_names_gpu_and_fix() -> None:
    gpu = get_gpu("MI355X")
    assert gpu.price_per_hour_usd is None
    with pytest.raises(MissingPriceError) as info:
        price_per_hour_usd(gpu)
    message = str(info.value)
    assert "MI355X" in message and "price_per_hour_usd" in message and "HFGE_GPUS_FILE" in message
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_gpu_count(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        hourly_cost_usd(get_gpu("L4"), bad)  # type: ignore[arg-type]


def test_bad_token_rate() -> None:
    with pytest.raises(InvalidArgumentError):
        training_cost(get_gpu("L4"), 1, tokens=1e9, tokens_per_s=0)
