"""The cheapest way to serve a request rate with one GPU type: tensor-parallel degree, batch, replicas."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hf_gpu_estimator.cost import hourly_cost_usd
from hf_gpu_estimator.errors import InfeasiblePlanError, InvalidArgumentError, MissingGPUDataError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.perf import (
    PREFILL_MFU,
    _compute_dtype,
    _peak_flops,
    decode_step_seconds,
    flops_per_token,
    prefill_seconds,
)
from hf_gpu_estimator.planner._search import (
    Skipped,
    skipped_line,
    _gpu_list,
    _largest,
    _positive_count,
    _positive_number,
)
from hf_gpu_estimator.planner.deployment import Deployment, fit
from hf_gpu_estimator.planner.engines import default_engine, unsupported_engine
from hf_gpu_estimator.planner.gpu_plan import deployment_of
from hf_gpu_estimator.planner.parallel import _inference_candidates
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Parallelism, Workload


@dataclass(frozen=True, kw_only=True)
class ServingOption:
    """One way to serve the traffic with one GPU type.

    Attributes:
        gpu: Catalog name.
        tp, pp: GPUs per replica are ``tp * pp``.
        replicas: Copies of the model behind a load balancer.
        batch_size: Sequences each replica decodes together (KV- and TPOT-limited).
        tpot_seconds: At that batch.
        ttft_seconds: Unloaded prefill of one prompt (queueing not modelled).
        requests_per_s_per_replica: Sustained capacity of one replica.
        hourly_usd: All GPUs of all replicas.
        usd_per_million_output_tokens: At the requested load.
        limit: What caps the batch: ``"kv_cache"``, ``"tpot"`` or ``"max_num_seqs"``.
    """

    gpu: str
    tp: int
    pp: int
    replicas: int
    batch_size: int
    tpot_seconds: float
    ttft_seconds: float
    requests_per_s_per_replica: float
    hourly_usd: float
    usd_per_million_output_tokens: float
    limit: str
    launch: str | None = None

    @property
    def num_gpus(self) -> int:
        return self.replicas * self.tp * self.pp

    @property
    def usd_per_request(self) -> float:
        """Cost of one request at full load of a replica (the Mélange comparison unit)."""
        return self.hourly_usd / self.replicas / 3600 / self.requests_per_s_per_replica

    def to_dict(self) -> dict[str, object]:
        return {"gpu": self.gpu, "num_gpus": self.num_gpus, "tp": self.tp, "pp": self.pp, "replicas": self.replicas,
                "batch_size": self.batch_size, "tpot_ms": self.tpot_seconds * 1e3, "ttft_ms": self.ttft_seconds * 1e3,
                "requests_per_s_per_replica": self.requests_per_s_per_replica, "hourly_usd": self.hourly_usd,
                "usd_per_million_output_tokens": self.usd_per_million_output_tokens, "limit": self.limit,
                "launch": self.launch}


@dataclass(frozen=True, kw_only=True)
class CheapestServing:
    """Serving options ranked by $/hour, and the GPU types left out with the reason."""

    request_rate_per_s: float
    input_tokens: int
    output_tokens: int
    tpot_ms: float | None
    ttft_ms: float | None
    options: tuple[ServingOption, ...]
    skipped: tuple[Skipped, ...]
    assumptions: tuple[str, ...]
    engine: str = "vllm"
    max_model_len: int | None = None

    #: What this ranking is of (the report picks its columns by it).
    kind = "serving"

    def skipped_note(self, *, verbose: bool = False) -> str | None:
        """One line on the GPU types left out, by kind (``verbose``: the caller lists them too)."""
        return skipped_line(self.skipped, verbose=verbose)

    @property
    def best(self) -> ServingOption:
        return self.options[0]

    @property
    def unpriced(self) -> tuple[str, ...]:
        """GPU types left out only for lacking a price."""
        return tuple(s.gpu for s in self.skipped if s.kind == "no_price")

    def unpriced_note(self) -> str | None:
        """One line about the GPU types that could not be ranked for lack of a price."""
        if not self.unpriced:
            return None
        return (f"{len(self.unpriced)} GPU types have no price and are not ranked ({', '.join(self.unpriced[:6])}"
                + (", ..." if len(self.unpriced) > 6 else "") + "); add price_per_hour_usd in a user GPU file "
                "(HFGE_GPUS_FILE)")

    def to_dict(self) -> dict[str, object]:
        return {"request_rate_per_s": self.request_rate_per_s, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "tpot_ms": self.tpot_ms, "ttft_ms": self.ttft_ms,
                "options": [o.to_dict() for o in self.options],
                "skipped": [{"gpu": s.gpu, "reason": s.reason, "kind": s.kind} for s in self.skipped
                            if s.kind != "no_price"],
                "unpriced": list(self.unpriced), "unpriced_note": self.unpriced_note(),
                "assumptions": list(self.assumptions), "engine": self.engine, "max_model_len": self.max_model_len}



def _serve_on(spec: ModelSpec, workload: Workload, d: Deployment, *, rate: float, inp: int, out: int,
              tpot_s: float | None, ttft_s: float | None) -> ServingOption | Skipped:
    """The option of serving on deployment ``d`` (one replica), or why it cannot."""
    gpu = d.gpu
    tp, pp = d.tp, d.pp
    w = workload.with_(seq_len=inp, new_tokens=out, batch_size=1)
    v = fit(spec, w, d)
    cap = v.serving
    if not v.fits or cap is None:
        return Skipped(gpu=gpu.name, kind="does_not_fit",
                       reason=f"tp={tp} pp={pp}: {v.problem or v.verdict}")
    w = v.workload or w
    ctx = inp + max(out, 1) // 2
    ttft = prefill_seconds(spec, w, gpu, batch_size=1, prompt_tokens=inp)
    if ttft_s is not None and ttft > ttft_s:
        return Skipped(gpu=gpu.name, kind="target", value_ms=ttft * 1e3, metric="ttft",
                       reason=f"tp={tp}: TTFT floor {ttft * 1e3:.1f} ms > target {ttft_s * 1e3:g} ms")
    limit = "kv_cache"
    most = cap.max_concurrent_sequences
    if cap.max_model_len != inp + out and d.engine != "llama.cpp":
        # the engine starts at max_model_len, but its pool takes blocks as tokens arrive: the batch it decodes
        # is the pool's sequences of the requests' own length (the same pool, sized for that length);
        # llama.cpp's slots are fixed (-np, each -c / -np tokens)
        at_length = fit(spec, w, d.with_(max_model_len=inp + out)).serving
        most = at_length.max_concurrent_sequences if at_length is not None else most
    if cap.max_num_seqs < most:
        most, limit = cap.max_num_seqs, "max_num_seqs"
    if tpot_s is not None:
        floor = decode_step_seconds(spec, w, gpu, batch_size=1, context_tokens=ctx)
        if floor > tpot_s:
            return Skipped(gpu=gpu.name, kind="target", value_ms=floor * 1e3, metric="tpot",
                           reason=f"tp={tp}: TPOT floor {floor * 1e3:.2f} ms (batch 1) > target {tpot_s * 1e3:g} ms")
        b = _largest(lambda x: decode_step_seconds(spec, w, gpu, batch_size=x, context_tokens=ctx) <= tpot_s, 1, most)
        if b < most:
            most, limit = b, "tpot"
    step = decode_step_seconds(spec, w, gpu, batch_size=most, context_tokens=ctx)
    # Chunked prefill shares the steps with decode: a prompt costs its compute time on top of its
    # share of the decode steps (the weights are read by the decode step anyway).
    prompt_compute = inp * flops_per_token(spec, context_tokens=max(1, inp // 2)).forward_flops / (
        tp * _peak_flops(gpu, _compute_dtype(spec, w)) * PREFILL_MFU)
    per_request = prompt_compute + out * step / most
    capacity = 1.0 / per_request
    replicas = max(1, math.ceil(rate / capacity - 1e-9))
    hourly = hourly_cost_usd(gpu, replicas * tp * pp)
    per_million = hourly / (rate * out * 3600) * 1e6 if out else math.inf
    return ServingOption(gpu=gpu.name, tp=tp, pp=pp, replicas=replicas, batch_size=most, tpot_seconds=step,
                         ttft_seconds=ttft, requests_per_s_per_replica=capacity, hourly_usd=hourly,
                         usd_per_million_output_tokens=per_million, limit=limit,
                         launch=v.launch.command if v.launch is not None else None)


def _best_on_gpu(spec: ModelSpec, workload: Workload, d: Deployment, **kw: Any) -> ServingOption | Skipped:
    gpu = d.gpu
    if gpu.price_per_hour_usd is None:
        return Skipped(gpu=gpu.name, kind="no_price",
                       reason="no price in the catalog (add price_per_hour_usd in a user GPU file, HFGE_GPUS_FILE)")
    no_backend = unsupported_engine(str(d.engine), gpu)
    if no_backend:
        return Skipped(gpu=gpu.name, kind="no_backend", reason=no_backend)
    reasons: list[Skipped] = []
    best: ServingOption | None = None
    for tp, pp in _inference_candidates(spec, d.engine):
        try:
            result = _serve_on(spec, workload, d.with_(tp=tp, pp=pp, num_gpus=None), **kw)
        except MissingGPUDataError as e:
            return Skipped(gpu=gpu.name, kind="no_data", reason=str(e))
        if isinstance(result, Skipped):
            reasons.append(result)
            continue
        if best is None or result.hourly_usd < best.hourly_usd:
            best = result
    if best is not None:
        return best
    last = reasons[-1] if reasons else Skipped(gpu=gpu.name, reason="no split tried")
    floors = [r.value_ms for r in reasons if r.metric == last.metric and r.value_ms is not None]
    return replace(last, reason="; ".join(dict.fromkeys(r.reason for r in reasons[-2:])),
                   value_ms=min(floors) if floors else None)


#: Serving defaults when the traffic is not given (``--cheapest --task inference`` alone): one request
#: per second of 1024 prompt tokens and 256 output tokens, a chat-sized request (a chosen default,
#: not a measurement; pass the real traffic for a real plan).
DEFAULT_REQUEST_RATE_PER_S = 1.0
DEFAULT_INPUT_TOKENS = 1024
DEFAULT_OUTPUT_TOKENS = 256


def cheapest_serving(spec: ModelSpec, workload: Workload, *, request_rate_per_s: float = DEFAULT_REQUEST_RATE_PER_S,
                     input_tokens: int = DEFAULT_INPUT_TOKENS, output_tokens: int = DEFAULT_OUTPUT_TOKENS, tpot_ms: float | None = None, ttft_ms: float | None = None,
                     gpus: Iterable[str | GPU] | None = None,
                     gpu_memory_utilization: float | None = None, engine: str | None = None,
                     max_model_len: int | None = None, engine_settings: Mapping[str, Any] | None = None,
                     vllm_version: str | None = None) -> CheapestServing:
    """Rank GPU type x count by $/hour for serving ``request_rate_per_s`` requests of mean size
    ``input_tokens`` -> ``output_tokens`` with an optional p50 TPOT/TTFT target.

    For each GPU type with a price, each split that starts and fits (:func:`~hf_gpu_estimator.planner.deployment.fit`
    with ``engine`` at ``max_model_len``, default ``input_tokens + output_tokens``) is sized: the batch a
    replica decodes is the smallest of the engine's KV pool, ``max_num_seqs`` and the largest batch
    whose decode step meets the TPOT target; replicas = rate / per-replica capacity.

    Raises:
        InfeasiblePlanError: No GPU type can meet the targets (e.g. a TPOT below every GPU's
            batch-1 roofline floor); the message gives the lowest floor found.
    """
    rate = _positive_number("request_rate_per_s", request_rate_per_s)
    inp = _positive_count("input_tokens", input_tokens)
    out = _positive_count("output_tokens", output_tokens)
    tpot_s = _positive_number("tpot_ms", tpot_ms) / 1e3 if tpot_ms is not None else None
    ttft_s = _positive_number("ttft_ms", ttft_ms) / 1e3 if ttft_ms is not None else None
    if workload.is_training:
        raise InvalidArgumentError("task", workload.task, "'inference' for a serving plan")
    context = max_model_len if max_model_len is not None else inp + out
    if context < inp + out:
        raise InvalidArgumentError("max_model_len", max_model_len,
                                   f"at least input + output tokens ({inp + out}), or drop --max-model-len")
    options: list[ServingOption] = []
    skipped: list[Skipped] = []
    engine_name = engine or default_engine(spec, workload)
    for gpu in _gpu_list(gpus):
        d = deployment_of(spec, workload, gpu, engine=engine_name, gpu_memory_utilization=gpu_memory_utilization,
                          max_model_len=context, vllm_version=vllm_version, engine_settings=engine_settings)
        result = _best_on_gpu(spec, workload, d, rate=rate, inp=inp, out=out, tpot_s=tpot_s, ttft_s=ttft_s)
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            options.append(result)
    if not options:
        raise InfeasiblePlanError(_no_option_message(spec, skipped, tpot_ms, ttft_ms), reasons=[s.reason for s in skipped])
    options.sort(key=lambda o: (o.hourly_usd, o.num_gpus))
    assumptions = (
        "replica capacity = 1 / (prompt compute time + output_tokens x TPOT / batch), continuous batching with "
        "chunked prefill; p50 targets, queueing delay not modelled",
        f"batch per replica = min({engine_name} KV pool sequences at max_model_len {context:,}, max_num_seqs, "
        "TPOT-limited batch); only splits the engine starts at that context are ranked",
        "prices: catalog on-demand $/GPU-hour, idle capacity of the last replica paid for",
    )
    return CheapestServing(request_rate_per_s=rate, input_tokens=inp, output_tokens=out, tpot_ms=tpot_ms,
                           ttft_ms=ttft_ms, options=tuple(options), skipped=tuple(skipped), assumptions=assumptions,
                           engine=engine_name, max_model_len=context)


def _no_option_message(spec: ModelSpec, skipped: Sequence[Skipped], tpot_ms: float | None,
                       ttft_ms: float | None) -> str:
    floors = [s.value_ms for s in skipped if s.metric == "tpot" and s.value_ms is not None]
    if tpot_ms is not None and floors:
        return (f"no GPU meets TPOT {tpot_ms:g} ms for {spec.id}: the lowest roofline floor at batch 1 is "
                f"{min(floors):.2f} ms; relax --tpot-ms, quantize the weights, or allow tensor parallel on faster GPUs")
    ttfts = [s.value_ms for s in skipped if s.metric == "ttft" and s.value_ms is not None]
    if ttft_ms is not None and ttfts:
        return (f"no GPU meets TTFT {ttft_ms:g} ms for {spec.id}: the lowest prefill floor is {min(ttfts):.1f} ms; "
                "relax --ttft-ms or shorten the prompts")
    priced = [s for s in skipped if s.kind != "no_price"]
    if not priced:
        return ("no GPU in the list has a price; add price_per_hour_usd in a user GPU file "
                "(HFGE_GPUS_FILE) or pass GPUs with prices")
    return f"no priced GPU can serve {spec.id} at this load: " + "; ".join(f"{s.gpu}: {s.reason}" for s in priced[:4])
