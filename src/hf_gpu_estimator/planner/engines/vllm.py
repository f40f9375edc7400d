"""vLLM: the KV-cache pool its worker sizes after the profile run, and what the pool holds."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory import estimate_memory, overhead
from hf_gpu_estimator.memory.kv_cache import kv_bytes_per_token_per_layer
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.memory.weights import plan_weights
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload

#: vLLM's default ``gpu_memory_utilization`` (vllm/config CacheConfig; ``--gpu-memory-utilization``).
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
#: vLLM's default KV block size on CUDA: 16 tokens (CacheConfig.block_size).
VLLM_BLOCK_SIZE = 16


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
