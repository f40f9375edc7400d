"""A heterogeneous GPU mix for traffic of several request sizes (after Mélange, arXiv:2404.14527)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU, get_gpu
from hf_gpu_estimator.planner._search import _gpu_list
from hf_gpu_estimator.planner.engines.vllm import DEFAULT_GPU_MEMORY_UTILIZATION
from hf_gpu_estimator.planner.serving import ServingOption, _best_on_gpu, cheapest_serving
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload


@dataclass(frozen=True, kw_only=True)
class RequestBucket:
    """A slice of the traffic: requests of one size at one rate."""

    rate_per_s: float
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, kw_only=True)
class MixPlan:
    """A heterogeneous GPU allocation: each request-size bucket on its cheapest GPU type.

    Attributes:
        assignments: ``(bucket, option)`` per bucket; ``option`` sized for that bucket alone.
        replicas: GPU type -> replicas after packing the buckets that share it.
        hourly_usd: Of the mix.
        single_type: The best single-GPU-type plan for the whole traffic, for comparison.
    """

    assignments: tuple[tuple[RequestBucket, ServingOption], ...]
    replicas: Mapping[str, tuple[int, int]]  # gpu -> (replicas, gpus per replica)
    hourly_usd: float
    single_type: ServingOption | None
    assumptions: tuple[str, ...]

    @property
    def savings(self) -> float | None:
        """Share of the single-type cost the mix saves (negative: the mix costs more)."""
        if self.single_type is None:
            return None
        return 1 - self.hourly_usd / self.single_type.hourly_usd

    def to_dict(self) -> dict[str, object]:
        return {
            "assignments": [{"rate_per_s": b.rate_per_s, "input_tokens": b.input_tokens,
                             "output_tokens": b.output_tokens, "gpu": o.gpu, "tp": o.tp,
                             "usd_per_request": o.usd_per_request} for b, o in self.assignments],
            "replicas": {g: {"replicas": r, "gpus_per_replica": n} for g, (r, n) in self.replicas.items()},
            "hourly_usd": self.hourly_usd,
            "single_type": self.single_type.to_dict() if self.single_type else None,
            "savings": self.savings, "assumptions": list(self.assumptions),
        }  # fmt: skip


def heterogeneous_serving(spec: ModelSpec, workload: Workload, buckets: Sequence[RequestBucket], *,
                          tpot_ms: float | None = None, ttft_ms: float | None = None,
                          gpus: Iterable[str | GPU] | None = None) -> MixPlan:
    """A greedy heterogeneous allocation in the spirit of Mélange (Griggs et al. 2024, arXiv:2404.14527).

    Mélange solves a cost-aware bin packing (an ILP) of request-size slices onto GPU types. This
    greedy version assigns each bucket to the GPU type (and tensor-parallel degree) with the lowest
    $ per request at full load that meets the SLO, then packs the buckets sharing a type:
    replicas = ceil(sum of the buckets' load fractions). It is never worse than ~1 replica per
    type used over the optimum, and it is compared with the best single-type plan for the whole
    traffic.

    Raises:
        InfeasiblePlanError: A bucket fits no GPU type under the SLO.
    """
    if not buckets:
        raise InvalidArgumentError("buckets", buckets, "at least one RequestBucket")
    gpu_list = _gpu_list(gpus)
    assignments: list[tuple[RequestBucket, ServingOption]] = []
    load: dict[tuple[str, int, int], float] = {}
    price: dict[str, float] = {}
    for b in buckets:
        ranked = cheapest_serving(spec, workload, request_rate_per_s=b.rate_per_s, input_tokens=b.input_tokens,
                                  output_tokens=b.output_tokens, tpot_ms=tpot_ms, ttft_ms=ttft_ms, gpus=gpu_list)
        choice = min(ranked.options, key=lambda o: o.usd_per_request)
        assignments.append((b, choice))
        key = (choice.gpu, choice.tp, choice.pp)
        load[key] = load.get(key, 0.0) + b.rate_per_s / choice.requests_per_s_per_replica
        price[choice.gpu] = get_gpu(choice.gpu).price_per_hour_usd or 0.0
    replicas = {f"{g} tp{tp}" if tp > 1 else g: (max(1, math.ceil(x - 1e-9)), tp * pp)
                for (g, tp, pp), x in load.items()}
    hourly = sum(max(1, math.ceil(x - 1e-9)) * tp * pp * price[g] for (g, tp, pp), x in load.items())
    # Single type for all buckets: a weighted mean request size is not enough (costs are not linear
    # in size), so size each type on every bucket and add the load fractions.
    single: ServingOption | None = None
    for gpu in gpu_list:
        total_load = 0.0
        first: ServingOption | None = None
        for b in buckets:
            r = _best_on_gpu(spec, workload, gpu, rate=b.rate_per_s, inp=b.input_tokens, out=b.output_tokens,
                             tpot_s=tpot_ms / 1e3 if tpot_ms else None, ttft_s=ttft_ms / 1e3 if ttft_ms else None,
                             utilization=DEFAULT_GPU_MEMORY_UTILIZATION)
            if isinstance(r, str):
                first = None
                break
            first = first or r
            total_load += b.rate_per_s / r.requests_per_s_per_replica
        if first is None:
            continue
        n = max(1, math.ceil(total_load - 1e-9))
        cost = n * first.tp * first.pp * (gpu.price_per_hour_usd or 0.0)
        if single is None or cost < single.hourly_usd:
            single = ServingOption(gpu=gpu.name, tp=first.tp, pp=first.pp, replicas=n, batch_size=first.batch_size,
                                   tpot_seconds=first.tpot_seconds, ttft_seconds=first.ttft_seconds,
                                   requests_per_s_per_replica=sum(b.rate_per_s for b in buckets) / max(total_load, 1e-12),
                                   hourly_usd=cost, usd_per_million_output_tokens=math.nan, limit=first.limit)
    return MixPlan(assignments=tuple(assignments), replicas=replicas, hourly_usd=hourly, single_type=single,
                   assumptions=("greedy per-bucket assignment to the lowest $/request GPU type, then "
                                "ceil(sum of load fractions) replicas per type (Mélange, arXiv:2404.14527, "
                                "solves this as an ILP)",))

