"""SGLang: the token pool its model runner sizes after loading the weights.

SGLang (python/sglang/srt/model_executor/model_runner.py ``profile_max_num_token``) measures the
free memory after the weights are loaded and keeps ``total * (1 - mem_fraction_static)`` free for
activations and CUDA graphs::

    rest = free_after_load - total * (1 - mem_fraction_static)
    max_total_num_tokens = rest // cell_size        # cell_size: one token's K and V over all layers

The default ``--mem-fraction-static`` (python/sglang/srt/server_args.py, 2025) reserves a fixed
amount by device memory and parallel size: ``(total - reserved) / total`` with ``reserved`` =
2.8 + (tp x pp) / 10 GiB below 35 GiB, 9.5 + (tp x pp) / 2 below 90 GiB, 12 + (tp x pp) / 2 below
160 GiB, else 32 GiB.
"""

from __future__ import annotations

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory import overhead
from hf_gpu_estimator.planner.engines._capacity import (
    ServingCapacity,
    capacity_problem,
    check_context,
    check_fraction,
    check_tp,
    kv_layout,
    pool_capacity,
    weights_per_device,
)
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload

GiB = 1 << 30
#: SGLang's default page size: one token (server_args ``page_size``).
SGLANG_PAGE_SIZE = 1


def default_mem_fraction_static(gpu: GPU, tp: int = 1, pp: int = 1) -> float:
    """SGLang's default ``--mem-fraction-static`` on ``gpu`` (server_args.py ``_handle_gpu_memory_settings``)."""
    gpu_gib = gpu.usable_memory_bytes / GiB
    n = tp * pp
    if gpu_gib < 35:
        reserved = 2.8 + n / 10
    elif gpu_gib < 90:
        reserved = 9.5 + n / 2
    elif gpu_gib < 160:
        reserved = 12 + n / 2
    else:
        reserved = 32.0
    return round((gpu_gib - reserved) / gpu_gib, 3)


def sglang_capacity(spec: ModelSpec, workload: Workload, gpu: GPU, *, mem_fraction_static: float | None = None,
                    max_model_len: int | None = None) -> ServingCapacity:
    """The token pool SGLang would size for ``spec`` on ``gpu`` (per device of a ``tp x pp`` replica).

    Raises:
        InvalidArgumentError: A fraction outside (0, 1], a context beyond the model's limit, or a
            tensor-parallel degree that does not split the heads.
    """
    arch = spec.architecture
    if arch is None:
        raise InvalidArgumentError("model", spec.id, "a model with config.json (layer shapes) for serving capacity")
    p = workload.parallelism
    check_tp(arch, p.tp)
    fraction = (check_fraction("mem_fraction_static", mem_fraction_static) if mem_fraction_static is not None
                else default_mem_fraction_static(gpu, p.tp, p.pp))
    max_pos = arch.max_position_embeddings or (workload.seq_len + workload.new_tokens)
    model_len = max_model_len if max_model_len is not None else max_pos
    check_context(spec, model_len)
    weights = weights_per_device(spec, workload)
    # used after loading: the weights and the runtime's context (plus NCCL buffers with several GPUs)
    non_torch = overhead.runtime_context_bytes(gpu) + (overhead.NCCL_BYTES if p.tp * p.pp > 1 else 0)
    total = gpu.usable_memory_bytes
    pool = int(total * fraction - weights - non_torch)
    # SGLang's default token pool keeps every token in every attention layer (sliding ones too); recurrent
    # layers take their state per sequence
    layout = kv_layout(spec, workload).without_windows()
    blocks, kv_tokens, concurrent, longest = pool_capacity(layout, pool, block_size=SGLANG_PAGE_SIZE,
                                                           max_model_len=model_len, max_position=max_pos)
    problem = capacity_problem("SGLang", pool, weights, total, fraction, concurrent, model_len, kv_tokens)
    return ServingCapacity(
        engine="sglang", engine_version=None, gpu=gpu.name, tp=p.tp, pp=p.pp, gpu_memory_utilization=fraction,
        max_num_batched_tokens=8192 if total >= 35 * GiB else 2048, max_num_seqs=concurrent,
        block_size=SGLANG_PAGE_SIZE, total_memory_bytes=total, weights_bytes=int(weights),
        profile_peak_bytes=int(weights), non_torch_bytes=int(non_torch), kv_pool_bytes=max(0, pool),
        kv_bytes_per_token=layout.token_bytes, num_blocks=blocks, kv_cache_tokens=kv_tokens, max_model_len=model_len,
        max_concurrent_sequences=concurrent, largest_max_model_len=longest, fits=problem is None, problem=problem,
        assumptions=(f"SGLang token pool = {fraction:g} x {total / GiB:.2f} GiB - weights - CUDA context "
                     "(model_runner.py profile_max_num_token; default --mem-fraction-static from server_args.py)",
                     f"{layout.describe()} per device; sliding-window layers keep every token (SGLang's default "
                     "pool; its SWA pool for some architectures is not modelled)"),
    )  # fmt: skip
