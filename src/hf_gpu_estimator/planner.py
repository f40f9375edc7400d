"""Planner: what fits (max batch, max context, min GPUs), vLLM serving capacity, and the cheapest plan.

Everything here searches over :func:`~hf_gpu_estimator.memory.estimate_memory` and the roofline of
:mod:`hf_gpu_estimator.perf`; it is pure arithmetic (no torch, no network) except
:func:`plan_fleet`, which resolves model ids with :func:`~hf_gpu_estimator.sources.inspect_model`.

>>> from hf_gpu_estimator.sources.catalog import lookup
>>> from hf_gpu_estimator.workload import make_workload
>>> from hf_gpu_estimator.hardware import get_gpu
>>> spec, work = lookup("meta-llama/Llama-2-7b-hf"), make_workload(seq_len=1024, new_tokens=256)
>>> max_batch_size(spec, work, get_gpu("A100-80GB-SXM")) > 32
True
>>> min_gpus(spec, work, get_gpu("RTX-4090")).num_gpus
1
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_gpu_estimator.cost import hourly_cost_usd, training_cost
from hf_gpu_estimator.errors import (
    EstimatorError,
    InfeasiblePlanError,
    InvalidArgumentError,
    MissingGPUDataError,
)
from hf_gpu_estimator.hardware import GPU, get_gpu, list_gpus
from hf_gpu_estimator.memory import estimate_memory, overhead
from hf_gpu_estimator.memory.kv_cache import kv_bytes_per_token_per_layer
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.memory.weights import plan_weights
from hf_gpu_estimator.perf import (
    PREFILL_MFU,
    InferenceSpeed,
    TrainingSpeed,
    _peak_flops,
    _compute_dtype,
    decode_step_seconds,
    flops_per_token,
    inference_speed,
    prefill_seconds,
    training_speed,
)
from hf_gpu_estimator.spec import Architecture, ModelSpec
from hf_gpu_estimator.workload import Parallelism, Workload

__all__ = [
    "DEFAULT_GPU_MEMORY_UTILIZATION",
    "VLLM_BLOCK_SIZE",
    "CheapestServing",
    "CheapestTraining",
    "FleetPlan",
    "MixPlan",
    "Parallelization",
    "Plan",
    "RequestBucket",
    "ServingCapacity",
    "ServingOption",
    "Skipped",
    "TrainingOption",
    "cheapest_serving",
    "cheapest_training",
    "heterogeneous_serving",
    "max_batch_size",
    "max_seq_len",
    "min_gpus",
    "plan",
    "plan_fleet",
    "serving_capacity",
    "vllm_batch_defaults",
]

#: Share of the device memory kept free by the fit searches (same default as ``Estimate.fits``).
DEFAULT_MARGIN = 0.05
#: vLLM's default ``gpu_memory_utilization`` (vllm/config CacheConfig; ``--gpu-memory-utilization``).
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
#: vLLM's default KV block size on CUDA: 16 tokens (CacheConfig.block_size).
VLLM_BLOCK_SIZE = 16
#: Tensor-parallel degrees tried inside one node (8 GPUs per node).
TP_DEGREES: tuple[int, ...] = (1, 2, 4, 8)
#: Pipeline stages tried across nodes (one node of tp=8 per stage).
PP_DEGREES: tuple[int, ...] = (1, 2, 4, 8, 16)
#: Data-parallel GPU counts tried for training.
TRAINING_GPU_COUNTS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: Largest batch / sequence length the searches go to when nothing else caps them.
SEARCH_CAP = 1 << 20


# --------------------------------------------------------------------------- fit searches


def _usable(gpu: GPU, margin: float) -> float:
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin < 0.5:
        raise InvalidArgumentError("margin", margin, "a number from 0 to 0.5")
    return gpu.usable_memory_bytes * (1 - margin)


def _fits(spec: ModelSpec, workload: Workload, gpu: GPU, margin: float) -> bool:
    return estimate_memory(spec, workload, detail=False).device_total_bytes <= _usable(gpu, margin)


def _largest(ok: Callable[[int], bool], low: int, high: int) -> int:
    """Largest ``x`` in ``[low, high]`` with ``ok(x)`` for a monotone (true, then false) ``ok``; ``low - 1`` if none."""
    if high < low or not ok(low):
        return low - 1
    good = low
    probe = low
    while True:  # exponential search for the first failure
        nxt = min(probe * 2, high)
        if nxt == probe:
            return good
        if not ok(nxt):
            bad = nxt
            break
        good = probe = nxt
        if good == high:
            return good
    while bad - good > 1:  # binary search between the last success and the first failure
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def max_batch_size(spec: ModelSpec, workload: Workload, gpu: GPU, *, margin: float = DEFAULT_MARGIN) -> int:
    """The largest per-device batch that fits ``gpu`` (0 when batch 1 does not fit).

    Memory grows monotonically with the batch, so this is a binary search over
    :func:`estimate_memory` (about 20 evaluations).
    """
    return _largest(lambda b: _fits(spec, workload.with_(batch_size=b), gpu, margin), 1, SEARCH_CAP)


def _seq_cap(spec: ModelSpec, workload: Workload) -> int:
    arch = spec.architecture
    cap = arch.max_position_embeddings if arch is not None and arch.max_position_embeddings else SEARCH_CAP
    if not workload.is_training:
        cap -= workload.new_tokens  # prompt + generated tokens share the positions
    return cap


def max_seq_len(spec: ModelSpec, workload: Workload, gpu: GPU, *, margin: float = DEFAULT_MARGIN) -> int:
    """The largest sequence length (training) or prompt length (inference) that fits ``gpu``.

    Capped at the model's ``max_position_embeddings`` (minus ``new_tokens`` for inference);
    0 when one token does not fit.
    """
    _usable(gpu, margin)  # validate the margin even when no length is tried
    return _largest(lambda s: _fits(spec, workload.with_(seq_len=s), gpu, margin), 1, max(0, _seq_cap(spec, workload)))


@dataclass(frozen=True, kw_only=True)
class Parallelization:
    """How many GPUs of one type a workload needs, and how it is split.

    Attributes:
        num_gpus: GPUs in total.
        tp, pp: Tensor- and pipeline-parallel degrees.
        strategy: Training strategy (``none``, ``ddp``, ``zero2``, ``zero3``).
        offload_optimizer: ZeRO-3 with the optimizer states in CPU memory.
        device_total_bytes: Estimated per-device memory of the chosen split.
        workload: The workload with this parallelism.
        description: One line, e.g. ``"2 x A100-80GB-SXM, tensor parallel 2"``.
    """

    num_gpus: int
    tp: int = 1
    pp: int = 1
    strategy: str = "none"
    offload_optimizer: bool = False
    device_total_bytes: int
    workload: Workload = field(repr=False)
    description: str

    def to_dict(self) -> dict[str, object]:
        return {"num_gpus": self.num_gpus, "tp": self.tp, "pp": self.pp, "strategy": self.strategy,
                "offload_optimizer": self.offload_optimizer, "device_total_bytes": self.device_total_bytes,
                "description": self.description}


def valid_tp_degrees(arch: Architecture | None) -> tuple[int, ...]:
    """Tensor-parallel degrees that split the heads evenly (vLLM requires ``num_attention_heads % tp == 0``;
    KV heads are split when divisible and replicated when fewer than ``tp``)."""
    if arch is None:
        return (1,)
    out = []
    for tp in TP_DEGREES:
        kv = arch.num_key_value_heads
        if arch.num_attention_heads % tp == 0 and (kv % tp == 0 or tp % kv == 0 or arch.is_mla):
            out.append(tp)
    return tuple(out)


def _inference_candidates(spec: ModelSpec) -> list[tuple[int, int]]:
    tps = valid_tp_degrees(spec.architecture)
    layers = spec.architecture.num_layers if spec.architecture is not None else 1
    pairs = [(tp, 1) for tp in tps]
    widest = max(tps)
    pairs += [(widest, pp) for pp in PP_DEGREES if 1 < pp <= layers]
    return sorted(set(pairs), key=lambda p: (p[0] * p[1], p[1]))


def _training_candidates() -> list[tuple[int, str, bool]]:
    out: list[tuple[int, str, bool]] = [(1, "none", False)]
    for n in TRAINING_GPU_COUNTS[1:]:
        out += [(n, "ddp", False), (n, "zero2", False), (n, "zero3", False), (n, "zero3", True)]
    return out


def min_gpus(spec: ModelSpec, workload: Workload, gpu: GPU, *, margin: float = DEFAULT_MARGIN) -> Parallelization:
    """The fewest GPUs of type ``gpu`` that hold ``workload``, and the split that makes it fit.

    Inference tries tensor parallel 1, 2, 4, 8 (degrees that divide the heads) inside a node,
    then pipeline stages of 8-GPU nodes. Training tries 1 GPU, then for 2, 4, 8, ... GPUs the
    strategies ``ddp`` -> ``zero2`` -> ``zero3`` -> ``zero3`` + optimizer offload, and reports the
    first (fewest GPUs, simplest strategy) that fits.

    Raises:
        InfeasiblePlanError: Nothing tried fits; the message says what stays too large.
    """
    usable = _usable(gpu, margin)
    best_total: int | None = None
    if not workload.is_training:
        for tp, pp in _inference_candidates(spec):
            w = workload.with_(parallelism=Parallelism(num_gpus=tp * pp, tp=tp, pp=pp))
            total = estimate_memory(spec, w, detail=False).device_total_bytes
            best_total = total if best_total is None else min(best_total, total)
            if total <= usable:
                how = ", ".join(x for x in (f"tensor parallel {tp}" if tp > 1 else "",
                                            f"pipeline parallel {pp}" if pp > 1 else "") if x) or "one GPU"
                return Parallelization(num_gpus=tp * pp, tp=tp, pp=pp, device_total_bytes=total, workload=w,
                                       description=f"{tp * pp} x {gpu.name}, {how}")
        largest = max(_inference_candidates(spec), key=lambda p: p[0] * p[1])
        raise InfeasiblePlanError(
            f"{spec.id} does not fit {gpu.name} even at tensor parallel {largest[0]} x pipeline parallel {largest[1]} "
            f"({largest[0] * largest[1]} GPUs): {_gib(best_total)} per device needed, {_gib(usable)} usable; "
            "use a quantization (--quantization fp8/awq-4bit), a shorter --seq-len or a larger GPU",
            reasons=(f"smallest per-device total {best_total} B > usable {int(usable)} B",))
    last_components: Mapping[str, int] = {}
    for n, strategy, offload in _training_candidates():
        w = workload.with_(parallelism=Parallelism(num_gpus=n, strategy=strategy,  # type: ignore[arg-type]
                                                   offload_optimizer=offload))
        est = estimate_memory(spec, w)
        total = est.device_total_bytes
        if best_total is None or total < best_total:
            best_total, last_components = total, est.components
        if total <= usable:
            how = strategy + (" + optimizer offload" if offload else "") if n > 1 else "one GPU"
            return Parallelization(num_gpus=n, strategy=strategy, offload_optimizer=offload, device_total_bytes=total,
                                   workload=w, description=f"{n} x {gpu.name}, {how}")
    act = last_components.get("activations", 0) + last_components.get("transient", 0)
    raise InfeasiblePlanError(
        f"{spec.id} training does not fit {gpu.name} even on {TRAINING_GPU_COUNTS[-1]} GPUs with zero3 + optimizer "
        f"offload: {_gib(best_total)} per device needed, {_gib(usable)} usable, of which activations "
        f"{_gib(act)} do not shrink with more GPUs; use --gradient-checkpointing, a smaller --batch-size or "
        "--seq-len, or LoRA/QLoRA",
        reasons=(f"activations + transient {act} B per device",))


def _gib(nbytes: float | None) -> str:
    return "?" if nbytes is None else f"{nbytes / (1 << 30):.1f} GiB"


# --------------------------------------------------------------------------- vLLM serving capacity


def vllm_batch_defaults(gpu: GPU) -> tuple[int, int]:
    """vLLM's default ``(max_num_batched_tokens, max_num_seqs)`` for ``vllm serve`` on ``gpu``.

    vLLM ``EngineArgs.get_batch_defaults`` (vllm/engine/arg_utils.py): GPUs with >= 70 GiB whose name
    does not contain "a100" (H100, H200, MI300X ...) get 8192 tokens / 1024 sequences for the
    OpenAI server (16384 for the offline ``LLM`` class); others 2048 / 256 (a larger budget lowered
    A100 throughput, vLLM PR #17885).
    """
    if gpu.usable_memory_bytes >= 70 * (1 << 30) and "a100" not in gpu.name.lower():
        return 8192, 1024
    return 2048, 256


@dataclass(frozen=True, kw_only=True)
class ServingCapacity:
    """The KV-cache pool vLLM would allocate on each device, and what it holds.

    Follows vLLM's ``Worker.determine_available_memory`` (vllm/v1/worker/gpu_worker.py): after a
    profiling forward of ``max_num_batched_tokens`` dummy tokens,
    ``kv_pool = total_memory * gpu_memory_utilization - (torch peak of the profile run + non-torch memory)``,
    then the pool is cut into blocks of ``block_size`` tokens for every layer of the device.

    Attributes:
        gpu: Catalog name.
        tp, pp: Parallel degrees of one replica.
        gpu_memory_utilization: vLLM's setting.
        max_num_batched_tokens, max_num_seqs: Scheduler budgets (the profile run's size).
        total_memory_bytes: What the driver reports as total (``torch.cuda.mem_get_info()[1]``).
        weights_bytes: Weights per device.
        profile_peak_bytes: torch's peak during the profile run (weights + activations + sampler).
        non_torch_bytes: CUDA context and NCCL buffers.
        kv_pool_bytes: The pool (0 when negative).
        kv_bytes_per_token: One token's KV bytes on one device (all its layers).
        num_blocks: Blocks in the pool.
        kv_cache_tokens: ``num_blocks * block_size`` ("GPU KV cache size: N tokens" in vLLM's log).
        max_model_len: The context length sequences are sized for.
        max_concurrent_sequences: Sequences of ``max_model_len`` tokens the pool holds at once.
        largest_max_model_len: The longest ``max_model_len`` vLLM would accept (one sequence fits),
            capped at the model's ``max_position_embeddings``.
        fits: Whether vLLM would start (the weights fit and one ``max_model_len`` sequence fits).
        assumptions: Simplifications.
    """

    gpu: str
    tp: int
    pp: int
    gpu_memory_utilization: float
    max_num_batched_tokens: int
    max_num_seqs: int
    block_size: int
    total_memory_bytes: int
    weights_bytes: int
    profile_peak_bytes: int
    non_torch_bytes: int
    kv_pool_bytes: int
    kv_bytes_per_token: int
    num_blocks: int
    kv_cache_tokens: int
    max_model_len: int
    max_concurrent_sequences: int
    largest_max_model_len: int
    fits: bool
    assumptions: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "kv_cache_tokens": self.kv_cache_tokens, "max_concurrent_sequences": self.max_concurrent_sequences,
            "max_model_len": self.max_model_len, "largest_max_model_len": self.largest_max_model_len,
            "num_blocks": self.num_blocks, "block_size": self.block_size, "kv_pool_bytes": self.kv_pool_bytes,
            "kv_bytes_per_token": self.kv_bytes_per_token, "weights_bytes": self.weights_bytes,
            "profile_peak_bytes": self.profile_peak_bytes, "non_torch_bytes": self.non_torch_bytes,
            "total_memory_bytes": self.total_memory_bytes, "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_num_batched_tokens": self.max_num_batched_tokens, "max_num_seqs": self.max_num_seqs,
            "tp": self.tp, "pp": self.pp, "fits": self.fits,
        }  # fmt: skip


def _kv_bytes_per_token_device(spec: ModelSpec, workload: Workload) -> int:
    arch = spec.architecture
    if arch is None or not arch.is_decoder:
        return 0
    p = workload.parallelism
    c = BYTES[workload.kv_cache_dtype] if workload.kv_cache_dtype else BYTES[plan_weights(spec, workload).compute_dtype]
    per_layer = kv_bytes_per_token_per_layer(arch, c)
    if p.tp > 1 and not arch.is_mla:  # heads split; replicated when fewer KV heads than devices
        per_layer = per_layer * max(1, arch.num_key_value_heads // p.tp) // arch.num_key_value_heads
    layers = math.ceil(arch.num_layers / p.pp)
    return per_layer * layers


def serving_capacity(spec: ModelSpec, workload: Workload, gpu: GPU, *,
                     gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
                     max_model_len: int | None = None, max_num_batched_tokens: int | None = None,
                     max_num_seqs: int | None = None, block_size: int = VLLM_BLOCK_SIZE) -> ServingCapacity:
    """The KV pool vLLM would size for ``spec`` on ``gpu`` (per device of a ``tp x pp`` replica).

    Args:
        spec: The model.
        workload: Inference workload: dtype, quantization, kv_cache_dtype, tp, pp.
        gpu: The GPU type.
        gpu_memory_utilization: vLLM's ``--gpu-memory-utilization`` (0 to 1).
        max_model_len: vLLM's ``--max-model-len``; default the model's ``max_position_embeddings``.
        max_num_batched_tokens, max_num_seqs: default :func:`vllm_batch_defaults`.
        block_size: Tokens per KV block.
    """
    if (not isinstance(gpu_memory_utilization, (int, float)) or isinstance(gpu_memory_utilization, bool)
            or not 0 < gpu_memory_utilization <= 1):
        raise InvalidArgumentError("gpu_memory_utilization", gpu_memory_utilization, "a number in (0, 1]")
    arch = spec.architecture
    if arch is None:
        raise InvalidArgumentError("model", spec.id, "a model with config.json (layer shapes) for serving capacity")
    default_tokens, default_seqs = vllm_batch_defaults(gpu)
    tokens = max_num_batched_tokens or default_tokens
    seqs = max_num_seqs or default_seqs
    max_pos = arch.max_position_embeddings or (workload.seq_len + workload.new_tokens)
    model_len = max_model_len if max_model_len is not None else max_pos
    if isinstance(model_len, bool) or not isinstance(model_len, int) or model_len < 1:
        raise InvalidArgumentError("max_model_len", model_len, "an integer >= 1")
    # The profile run: one forward of `tokens` dummy tokens without a KV cache, then the sampler over
    # min(max_num_seqs, tokens) rows of fp32 logits (vllm/v1/worker/gpu_model_runner.py profile_run).
    profile = workload.with_(batch_size=1, seq_len=tokens, new_tokens=0)
    est = estimate_memory(spec, profile)
    torch_peak = est.allocated_peak_bytes - est.components.get("kv_cache", 0)
    sampler = min(seqs, tokens) * arch.vocab_size * 4 // workload.parallelism.tp
    profile_peak = torch_peak + sampler
    p = workload.parallelism
    non_torch = overhead.CUDA_CONTEXT_BYTES + (overhead.NCCL_BYTES if p.tp * p.pp > 1 else 0)
    total = gpu.usable_memory_bytes
    pool = int(total * gpu_memory_utilization - profile_peak - non_torch)
    per_token = _kv_bytes_per_token_device(spec, workload)
    page = per_token * block_size
    blocks = max(0, pool) // page if page else 0
    kv_tokens = blocks * block_size
    per_seq_blocks = math.ceil(model_len / block_size)
    concurrent = min(blocks // per_seq_blocks, 1 << 31) if per_seq_blocks else 0
    assumptions = (
        f"vLLM KV pool = {gpu_memory_utilization} x {total / (1 << 30):.1f} GiB - profile peak "
        f"({tokens} batched tokens) - non-torch {non_torch >> 20} MiB (vllm/v1/worker/gpu_worker.py "
        "determine_available_memory)",
        f"KV blocks of {block_size} tokens over every attention layer of the device (sliding-window layers "
        "counted as full: conservative for the hybrid allocator)",
        "CUDA graphs captured after the KV pool is sized are not subtracted",
    )
    return ServingCapacity(
        gpu=gpu.name, tp=p.tp, pp=p.pp, gpu_memory_utilization=float(gpu_memory_utilization),
        max_num_batched_tokens=tokens, max_num_seqs=seqs, block_size=block_size, total_memory_bytes=total,
        weights_bytes=est.components.get("weights", 0), profile_peak_bytes=int(profile_peak),
        non_torch_bytes=non_torch, kv_pool_bytes=max(0, pool), kv_bytes_per_token=per_token, num_blocks=int(blocks),
        kv_cache_tokens=int(kv_tokens), max_model_len=model_len, max_concurrent_sequences=int(concurrent),
        largest_max_model_len=int(min(kv_tokens, max_pos)), fits=pool > 0 and kv_tokens >= model_len,
        assumptions=assumptions,
    )  # fmt: skip


# --------------------------------------------------------------------------- one GPU type: the plan


@dataclass(frozen=True, kw_only=True)
class Plan:
    """``hfge plan``: what fits on one GPU type, the serving capacity, speed and cost when known.

    ``min_gpus`` is ``None`` (with a note) when nothing tried fits.
    """

    gpu: GPU
    workload: Workload
    fits: bool
    device_total_bytes: int
    max_batch_size: int
    max_seq_len: int
    min_gpus: Parallelization | None
    serving: ServingCapacity | None
    speed: InferenceSpeed | TrainingSpeed | None
    hourly_usd: float | None
    usd_per_million_output_tokens: float | None
    notes: tuple[str, ...]
    assumptions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of DESIGN.md (``hfge plan --format json``)."""
        out: dict[str, Any] = {
            "gpu": self.gpu.to_dict(),
            "workload": self.workload.to_dict(),
            "fits": self.fits,
            "device_total_bytes": self.device_total_bytes,
            "max_batch_size": self.max_batch_size,
            "max_seq_len": self.max_seq_len,
            "min_gpus": self.min_gpus.num_gpus if self.min_gpus else None,
            "min_gpus_plan": self.min_gpus.to_dict() if self.min_gpus else None,
        }
        if self.serving is not None:
            out["serving"] = self.serving.to_dict()
        if self.speed is not None:
            out["speed"] = self.speed.to_dict()
        out["cost"] = {"hourly_usd": self.hourly_usd, "usd_per_million_output_tokens": self.usd_per_million_output_tokens}
        out["notes"] = list(self.notes)
        out["assumptions"] = list(self.assumptions)
        return out


def plan(spec: ModelSpec, workload: Workload, gpu: GPU, *,
         gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION, max_model_len: int | None = None,
         margin: float = DEFAULT_MARGIN) -> Plan:
    """Everything the planner knows about ``workload`` on ``gpu`` (the workload's own GPU count and split).

    Missing GPU data (no FLOP/s figure, no price) leaves speed or cost out with a note instead of failing.
    """
    est = estimate_memory(spec, workload)
    fits = est.device_total_bytes <= _usable(gpu, margin)
    notes: list[str] = []
    assumptions: list[str] = list(est.assumptions)
    try:
        needed: Parallelization | None = min_gpus(spec, workload, gpu, margin=margin)
    except InfeasiblePlanError as e:
        needed = None
        notes.append(str(e))
    serving = None
    speed: InferenceSpeed | TrainingSpeed | None = None
    hourly = per_million = None
    n = workload.parallelism.num_gpus
    if not workload.is_training and spec.architecture is not None:
        serving = serving_capacity(spec, workload, gpu, gpu_memory_utilization=gpu_memory_utilization,
                                   max_model_len=max_model_len)
        assumptions += serving.assumptions
    try:
        if spec.architecture is not None:
            speed = training_speed(spec, workload, gpu) if workload.is_training else inference_speed(spec, workload, gpu)
            assumptions += speed.assumptions
    except MissingGPUDataError as e:
        notes.append(f"no speed estimate: {e}")
    try:
        hourly = hourly_cost_usd(gpu, n)
        if isinstance(speed, InferenceSpeed):
            per_million = hourly / (speed.decode_tokens_per_s * 3600) * 1e6
            assumptions.append("$ per million output tokens at the workload's batch, decoding continuously")
    except MissingGPUDataError as e:
        notes.append(f"no cost: {e}")
    return Plan(gpu=gpu, workload=workload, fits=fits, device_total_bytes=est.device_total_bytes,
                max_batch_size=max_batch_size(spec, workload, gpu, margin=margin),
                max_seq_len=max_seq_len(spec, workload, gpu, margin=margin), min_gpus=needed, serving=serving,
                speed=speed, hourly_usd=hourly, usd_per_million_output_tokens=per_million, notes=tuple(notes),
                assumptions=tuple(dict.fromkeys(assumptions)))


# --------------------------------------------------------------------------- cheapest serving


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A GPU type left out of a ranking, and why."""

    gpu: str
    reason: str


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
                "usd_per_million_output_tokens": self.usd_per_million_output_tokens, "limit": self.limit}


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

    @property
    def best(self) -> ServingOption:
        return self.options[0]

    def to_dict(self) -> dict[str, object]:
        return {"request_rate_per_s": self.request_rate_per_s, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "tpot_ms": self.tpot_ms, "ttft_ms": self.ttft_ms,
                "options": [o.to_dict() for o in self.options],
                "skipped": [{"gpu": s.gpu, "reason": s.reason} for s in self.skipped],
                "assumptions": list(self.assumptions)}


def _positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise InvalidArgumentError(name, value, "a positive number")
    return float(value)


def _positive_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(name, value, "an integer >= 1")
    return value


def _serve_on(spec: ModelSpec, workload: Workload, gpu: GPU, tp: int, pp: int, *, rate: float, inp: int, out: int,
              tpot_s: float | None, ttft_s: float | None, utilization: float) -> ServingOption | str:
    """The option of serving on ``tp x pp`` GPUs of ``gpu``, or the reason it cannot."""
    w = workload.with_(seq_len=inp, new_tokens=out, batch_size=1,
                       parallelism=Parallelism(num_gpus=tp * pp, tp=tp, pp=pp))
    cap = serving_capacity(spec, w, gpu, gpu_memory_utilization=utilization, max_model_len=inp + out)
    if not cap.fits:
        return (f"tp={tp} pp={pp}: no room for one {inp + out}-token sequence "
                f"(KV pool {_gib(cap.kv_pool_bytes)}, weights {_gib(cap.weights_bytes)} per device)")
    ctx = inp + max(out, 1) // 2
    ttft = prefill_seconds(spec, w, gpu, batch_size=1, prompt_tokens=inp)
    if ttft_s is not None and ttft > ttft_s:
        return f"tp={tp}: TTFT floor {ttft * 1e3:.1f} ms > target {ttft_s * 1e3:g} ms"
    limit = "kv_cache"
    most = cap.max_concurrent_sequences
    if cap.max_num_seqs < most:
        most, limit = cap.max_num_seqs, "max_num_seqs"
    if tpot_s is not None:
        floor = decode_step_seconds(spec, w, gpu, batch_size=1, context_tokens=ctx)
        if floor > tpot_s:
            return f"tp={tp}: TPOT floor {floor * 1e3:.2f} ms (batch 1) > target {tpot_s * 1e3:g} ms"
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
                         usd_per_million_output_tokens=per_million, limit=limit)


def _best_on_gpu(spec: ModelSpec, workload: Workload, gpu: GPU, **kw: Any) -> ServingOption | str:
    if gpu.price_per_hour_usd is None:
        return "no price in the catalog (add price_per_hour_usd in a user GPU file, HFGE_GPUS_FILE)"
    reasons: list[str] = []
    best: ServingOption | None = None
    for tp, pp in _inference_candidates(spec):
        try:
            result = _serve_on(spec, workload, gpu, tp, pp, **kw)
        except MissingGPUDataError as e:
            return str(e)
        if isinstance(result, str):
            reasons.append(result)
            continue
        if best is None or result.hourly_usd < best.hourly_usd:
            best = result
    return best if best is not None else "; ".join(dict.fromkeys(reasons[-2:]))


def _gpu_list(gpus: Iterable[str | GPU] | None) -> list[GPU]:
    return list(list_gpus()) if gpus is None else [get_gpu(g) for g in gpus]


def cheapest_serving(spec: ModelSpec, workload: Workload, *, request_rate_per_s: float, input_tokens: int,
                     output_tokens: int, tpot_ms: float | None = None, ttft_ms: float | None = None,
                     gpus: Iterable[str | GPU] | None = None,
                     gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION) -> CheapestServing:
    """Rank GPU type x count by $/hour for serving ``request_rate_per_s`` requests of mean size
    ``input_tokens`` -> ``output_tokens`` with an optional p50 TPOT/TTFT target.

    For each GPU type with a price, each tensor-parallel degree that fits is sized: the batch a
    replica decodes is the smallest of the KV pool (vLLM's sizing), ``max_num_seqs`` and the
    largest batch whose decode step meets the TPOT target; replicas = rate / per-replica capacity.

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
    options: list[ServingOption] = []
    skipped: list[Skipped] = []
    for gpu in _gpu_list(gpus):
        result = _best_on_gpu(spec, workload, gpu, rate=rate, inp=inp, out=out, tpot_s=tpot_s, ttft_s=ttft_s,
                              utilization=gpu_memory_utilization)
        if isinstance(result, str):
            skipped.append(Skipped(gpu=gpu.name, reason=result))
        else:
            options.append(result)
    if not options:
        raise InfeasiblePlanError(_no_option_message(spec, skipped, tpot_ms, ttft_ms), reasons=[s.reason for s in skipped])
    options.sort(key=lambda o: (o.hourly_usd, o.num_gpus))
    assumptions = (
        "replica capacity = 1 / (prompt compute time + output_tokens x TPOT / batch), continuous batching with "
        "chunked prefill; p50 targets, queueing delay not modelled",
        "batch per replica = min(KV pool sequences at input+output tokens, vLLM max_num_seqs, TPOT-limited batch)",
        "prices: catalog on-demand $/GPU-hour, idle capacity of the last replica paid for",
    )
    return CheapestServing(request_rate_per_s=rate, input_tokens=inp, output_tokens=out, tpot_ms=tpot_ms,
                           ttft_ms=ttft_ms, options=tuple(options), skipped=tuple(skipped), assumptions=assumptions)


def _no_option_message(spec: ModelSpec, skipped: Sequence[Skipped], tpot_ms: float | None,
                       ttft_ms: float | None) -> str:
    import re

    floors = [float(m.group(1)) for s in skipped for m in [re.search(r"TPOT floor ([\d.]+) ms", s.reason)] if m]
    if tpot_ms is not None and floors:
        return (f"no GPU meets TPOT {tpot_ms:g} ms for {spec.id}: the lowest roofline floor at batch 1 is "
                f"{min(floors):.2f} ms; relax --tpot-ms, quantize the weights, or allow tensor parallel on faster GPUs")
    ttfts = [float(m.group(1)) for s in skipped for m in [re.search(r"TTFT floor ([\d.]+) ms", s.reason)] if m]
    if ttft_ms is not None and ttfts:
        return (f"no GPU meets TTFT {ttft_ms:g} ms for {spec.id}: the lowest prefill floor is {min(ttfts):.1f} ms; "
                "relax --ttft-ms or shorten the prompts")
    priced = [s for s in skipped if not s.reason.startswith("no price")]
    if not priced:
        return ("no GPU in the list has a price; add price_per_hour_usd in a user GPU file "
                "(HFGE_GPUS_FILE) or pass GPUs with prices")
    return f"no priced GPU can serve {spec.id} at this load: " + "; ".join(f"{s.gpu}: {s.reason}" for s in priced[:4])


# --------------------------------------------------------------------------- heterogeneous mix (Mélange)


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


# --------------------------------------------------------------------------- cheapest training


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
                "total_usd": self.total_usd}


@dataclass(frozen=True, kw_only=True)
class CheapestTraining:
    """Training options ranked by total $, and the GPU types left out with the reason."""

    token_budget: float
    deadline_hours: float | None
    options: tuple[TrainingOption, ...]
    skipped: tuple[Skipped, ...]
    assumptions: tuple[str, ...]

    @property
    def best(self) -> TrainingOption:
        return self.options[0]

    def to_dict(self) -> dict[str, object]:
        return {"token_budget": self.token_budget, "deadline_hours": self.deadline_hours,
                "options": [o.to_dict() for o in self.options],
                "skipped": [{"gpu": s.gpu, "reason": s.reason} for s in self.skipped],
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
            skipped.append(Skipped(gpu=gpu.name, reason="no price in the catalog (add price_per_hour_usd in a user "
                                                        "GPU file, HFGE_GPUS_FILE)"))
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
                this = Parallelization(num_gpus=n, strategy=strategy, offload_optimizer=par.offload_optimizer,
                                       device_total_bytes=estimate_memory(spec, w, detail=False).device_total_bytes, workload=w,
                                       description=f"{n} x {gpu.name}, {strategy}")
                option = TrainingOption(gpu=gpu.name, parallelization=this, speed=speed, hours=cost.hours,
                                        total_usd=cost.total_usd, hourly_usd=hourly_cost_usd(gpu, n))
                if deadline is None or cost.hours <= deadline:
                    break
                n *= 2
            else:
                skipped.append(Skipped(gpu=gpu.name, reason=f"misses the {deadline:g} h deadline even on "
                                                            f"{TRAINING_GPU_COUNTS[-1]} GPUs"))
                continue
            if option is not None:
                options.append(option)
        except (InfeasiblePlanError, MissingGPUDataError) as e:
            skipped.append(Skipped(gpu=gpu.name, reason=str(e)))
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


# --------------------------------------------------------------------------- fleet


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
                "monthly_usd": self.hourly_usd * 730, "gpus": dict(self.gpus), "training_usd": self.training_usd}


_FLEET_KEYS = {"model", "request_rate", "input_tokens", "output_tokens", "tpot_ms", "ttft_ms", "token_budget",
               "deadline_hours", "gpus", "workload"}


def _read_fleet(source: str | os.PathLike[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidArgumentError("fleet", str(path), "a readable YAML or JSON file", hint=e.strerror) from e
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            from hf_gpu_estimator.errors import MissingDependencyError

            raise MissingDependencyError("pyyaml", "all", "reading a YAML fleet file") from e
        data = yaml.safe_load(text)
    else:
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArgumentError("fleet", str(path), "valid JSON", hint=str(e)) from e
    if not isinstance(data, Mapping):
        raise InvalidArgumentError("fleet", str(path), "an object with a 'models' list")
    return data


def plan_fleet(source: str | os.PathLike[str] | Mapping[str, Any]) -> FleetPlan:
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

    Raises:
        InvalidArgumentError: The file is unreadable or an entry has unknown keys.
    """
    from hf_gpu_estimator.workload import workload_from_kwargs
    from hf_gpu_estimator.sources import inspect_model

    data = _read_fleet(source)
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
            spec = inspect_model(model_id)
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
