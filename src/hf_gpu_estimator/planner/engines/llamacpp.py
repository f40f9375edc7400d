"""llama.cpp server: the KV cache it allocates for ``-c`` tokens shared by ``-np`` slots, on the GPU
for the ``--n-gpu-layers`` it offloads.

llama-server allocates the whole cache up front (src/llama-kv-cache.cpp): ``n_ctx`` cells per layer,
K and V in ``--cache-type-k/-v`` (f16 by default), split evenly across the ``-np`` parallel slots
(each slot gets ``n_ctx / np`` tokens). Layers not offloaded keep their weights and cache in host
memory. This is the minimal wiring: the compute buffer llama.cpp reserves (``llama_context``
graph reservation, usually a few hundred MiB) is not modelled.
"""

from __future__ import annotations

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory import overhead
from hf_gpu_estimator.planner.engines._capacity import (
    ServingCapacity,
    check_context,
    kv_layout,
    weights_per_device,
)
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload

GiB = 1 << 30
#: llama-server's default ``-np`` (one slot).
LLAMACPP_DEFAULT_PARALLEL = 1
#: f16 cache elements (``--cache-type-k f16`` default).
LLAMACPP_KV_BYTES = 2


def llamacpp_capacity(spec: ModelSpec, workload: Workload, gpu: GPU, *, ctx_size: int | None = None,
                      parallel: int = LLAMACPP_DEFAULT_PARALLEL, n_gpu_layers: int | None = None) -> ServingCapacity:
    """What llama-server ``-c ctx_size -np parallel -ngl n_gpu_layers`` holds on ``gpu``.

    Raises:
        InvalidArgumentError: A bad ``-c``, ``-np`` or ``-ngl``, or a context beyond the model's limit.
    """
    arch = spec.architecture
    if arch is None:
        raise InvalidArgumentError("model", spec.id, "a model with layer shapes for serving capacity")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise InvalidArgumentError("parallel", parallel, "an integer >= 1 (llama-server -np)")
    layers = arch.num_layers
    ngl = layers + 1 if n_gpu_layers is None or n_gpu_layers < 0 else n_gpu_layers
    if isinstance(ngl, bool) or not isinstance(ngl, int):
        raise InvalidArgumentError("n_gpu_layers", n_gpu_layers, "an integer (-1 or more than the layers: all)")
    max_pos = arch.max_position_embeddings or (workload.seq_len + workload.new_tokens)
    ctx = ctx_size if ctx_size else max_pos
    check_context(spec, ctx)
    offloaded = min(ngl, layers)
    share = offloaded / layers
    weights_all = weights_per_device(spec, workload)
    weights = int(weights_all * share)  # the output layer goes with -ngl > layers; counted in the share
    layout = kv_layout(spec, workload, dtype_bytes=LLAMACPP_KV_BYTES)
    kv_per_token = layout.token_bytes * offloaded // max(1, layers)
    kv = kv_per_token * ctx
    total = gpu.usable_memory_bytes
    context = overhead.runtime_context_bytes(gpu)
    free = total - context - weights
    per_slot = ctx // parallel
    problem = None
    if weights + kv > total - context:
        problem = (f"llama.cpp would not start: {weights / GiB:.1f} GiB of weights and {kv / GiB:.1f} GiB of KV cache "
                   f"({ctx} tokens) exceed {gpu.name}'s {total / GiB:.1f} GiB; lower -c, offload fewer layers (-ngl) "
                   "or pick a smaller quantization")
    return ServingCapacity(
        engine="llama.cpp", engine_version=None, gpu=gpu.name, tp=1, pp=1, gpu_memory_utilization=1.0,
        max_num_batched_tokens=min(2048, ctx), max_num_seqs=parallel, block_size=1, total_memory_bytes=total,
        weights_bytes=weights, profile_peak_bytes=weights, non_torch_bytes=context,
        kv_pool_bytes=int(kv) if problem is None else max(0, int(free)), kv_bytes_per_token=int(kv_per_token),
        num_blocks=ctx, kv_cache_tokens=ctx, max_model_len=per_slot, max_concurrent_sequences=parallel,
        largest_max_model_len=min(ctx, max_pos), fits=problem is None, problem=problem,
        assumptions=(f"llama-server -c {ctx} -np {parallel} -ngl {ngl}: f16 KV for {ctx} tokens on the offloaded "
                     f"{offloaded}/{layers} layers, {per_slot} tokens per slot (src/llama-kv-cache.cpp)",
                     "llama.cpp compute buffer not modelled"),
    )  # fmt: skip

