"""A heterogeneous GPU mix for traffic of several request sizes (after Mélange, arXiv:2404.14527)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hf_gpu_estimator.errors import InfeasiblePlanError, InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.planner._search import Skipped, _gpu_list, _positive_count, _positive_number
from hf_gpu_estimator.planner.deployment import Deployment
from hf_gpu_estimator.planner.engines.vllm import DEFAULT_GPU_MEMORY_UTILIZATION
from hf_gpu_estimator.planner.serving import ServingOption, _best_on_gpu, _no_option_message
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
    """A heterogeneous GPU allocation: each request-size bucket on a GPU type, replicas packed per type.

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
    """A heterogeneous allocation in the spirit of Mélange (Griggs et al. 2024, arXiv:2404.14527).

    Mélange solves a cost-aware bin packing (an ILP) of request-size slices onto GPU types. This
    version searches the same objective greedily: each bucket is sized on every GPU type (and
    tensor-parallel degree) at *its own rate*, the hourly cost of an assignment is
    sum over types of ceil(sum of the buckets' load fractions) x GPUs per replica x price, and the
    search starts from the cheaper of (a) each bucket on the type that serves it alone for the
    least $/hour and (b) every single type for all buckets, then moves one bucket at a time to
    the type that lowers the total until no move does. Ranking by $ per request at full load
    instead would put a low-rate bucket on a large GPU it leaves mostly idle; starting from the
    single-type plans makes the mix never cost more than the best single type.

    Raises:
        InvalidArgumentError: No buckets, or a bucket's rate or sizes are not positive.
        InfeasiblePlanError: A bucket fits no GPU type under the SLO.
    """
    if not buckets:
        raise InvalidArgumentError("buckets", buckets, "at least one RequestBucket")
    for b in buckets:
        _positive_number("rate_per_s", b.rate_per_s)
        _positive_count("input_tokens", b.input_tokens)
        _positive_count("output_tokens", b.output_tokens)
    tpot_s = _positive_number("tpot_ms", tpot_ms) / 1e3 if tpot_ms is not None else None
    ttft_s = _positive_number("ttft_ms", ttft_ms) / 1e3 if ttft_ms is not None else None
    gpu_list = _gpu_list(gpus)
    # options[i][gpu name]: bucket i alone on that type, sized for its own rate.
    options: list[dict[str, ServingOption]] = []
    for b in buckets:
        row: dict[str, ServingOption] = {}
        skipped: list[Skipped] = []
        for gpu in gpu_list:
            d = Deployment(gpu=gpu, engine="vllm", max_model_len=b.input_tokens + b.output_tokens,
                           gpu_memory_utilization=DEFAULT_GPU_MEMORY_UTILIZATION)
            r = _best_on_gpu(spec, workload, d, rate=b.rate_per_s, inp=b.input_tokens, out=b.output_tokens,
                             tpot_s=tpot_s, ttft_s=ttft_s)
            if isinstance(r, Skipped):
                skipped.append(r)
            else:
                row[gpu.name] = r
        if not row:
            raise InfeasiblePlanError(_no_option_message(spec, skipped, tpot_ms, ttft_ms),
                                      reasons=[s.reason for s in skipped])
        options.append(row)
    price = {g.name: g.price_per_hour_usd or 0.0 for g in gpu_list}

    def packed(assign: Sequence[str]) -> tuple[float, dict[tuple[str, int, int], float]]:
        load: dict[tuple[str, int, int], float] = {}
        for b, row, name in zip(buckets, options, assign):
            o = row[name]
            key = (name, o.tp, o.pp)
            load[key] = load.get(key, 0.0) + b.rate_per_s / o.requests_per_s_per_replica
        cost = sum(_replicas(x) * tp * pp * price[g] for (g, tp, pp), x in load.items())
        return cost, load

    alone = [min(row, key=lambda name: (row[name].hourly_usd, row[name].usd_per_request)) for row in options]
    singles = {g.name: packed([g.name] * len(buckets))[0] for g in gpu_list
               if all(g.name in row for row in options)}
    assign = list(alone)
    cost = packed(assign)[0]
    if singles:
        best_single = min(singles, key=singles.__getitem__)
        if singles[best_single] < cost:
            assign, cost = [best_single] * len(buckets), singles[best_single]
    improved = True
    while improved:
        improved = False
        for i, row in enumerate(options):
            for name in row:
                trial = [*assign[:i], name, *assign[i + 1:]]
                trial_cost = packed(trial)[0]
                if trial_cost < cost - 1e-9:
                    assign, cost, improved = trial, trial_cost, True
    hourly, load = packed(assign)
    replicas = {f"{g} tp{tp}" if tp > 1 else g: (_replicas(x), tp * pp) for (g, tp, pp), x in load.items()}
    single = None
    if singles:
        name = min(singles, key=singles.__getitem__)
        _, single_load = packed([name] * len(buckets))
        # Buckets may need different tensor-parallel degrees on one type (a long-context bucket tp=2):
        # the option shows the widest replica and the GPU count of all of them.
        first = max((options[i][name] for i in range(len(buckets))), key=lambda o: o.tp * o.pp)
        total_load = sum(single_load.values())
        gpus_used = sum(_replicas(x) * tp * pp for (_, tp, pp), x in single_load.items())
        single = ServingOption(gpu=name, tp=first.tp, pp=first.pp,
                               replicas=math.ceil(gpus_used / (first.tp * first.pp)),
                               batch_size=first.batch_size, tpot_seconds=first.tpot_seconds,
                               ttft_seconds=first.ttft_seconds,
                               requests_per_s_per_replica=sum(b.rate_per_s for b in buckets) / max(total_load, 1e-12),
                               hourly_usd=singles[name], usd_per_million_output_tokens=math.nan, limit=first.limit)
    return MixPlan(assignments=tuple((b, row[name]) for b, row, name in zip(buckets, options, assign)),
                   replicas=replicas, hourly_usd=hourly, single_type=single,
                   assumptions=("each bucket sized on each GPU type at its own rate; replicas per type = "
                                "ceil(sum of the load fractions of the buckets it serves); assignment found by "
                                "local search from the cheaper of per-bucket cheapest and best single type "
                                "(Mélange, arXiv:2404.14527, solves this as an ILP)",))


def _replicas(load: float) -> int:
    """Replicas that carry ``load`` (a sum of load fractions), at least one."""
    return max(1, math.ceil(load - 1e-9))
