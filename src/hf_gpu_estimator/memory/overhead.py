"""What sits around the tensors: cuBLAS workspaces, the caching allocator, the CUDA context.

The constants are defaults until measured on the device at hand (measure mode writes a
calibration that replaces them); each names its source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hf_gpu_estimator.hardware import GPU
    from hf_gpu_estimator.memory.terms import MemoryEstimate

MiB = 1 << 20

#: cuBLAS + cuBLASLt workspaces PyTorch allocates through its caching allocator, so they count in
#: ``memory_allocated``: 4096 KiB x 8 each on Hopper (aten/src/ATen/cuda/CublasHandlePool.cpp,
#: getChosenWorkspaceSize). Measured: max_memory_allocated minus the traced tensor peak was 60 MiB
#: for Llama-2-7B inference and training on an H200 (benchmarks/results/h200-2026-11-26.jsonl).
CUBLAS_WORKSPACE_BYTES = 64 * MiB

#: CUDA context + loaded kernels, as nvidia-smi's used memory minus max_memory_reserved: 685 to
#: 843 MiB across 33 workloads in one process on an H200 (CUDA 13.0, torch 2.11, driver 580;
#: benchmarks/results/h200-2026-11-26.jsonl); 527 MiB right after CUDA initialization. The range
#: covers older CUDA versions without lazy loading (about 1 GiB).
CUDA_CONTEXT_BYTES = 768 * MiB
CUDA_CONTEXT_RANGE_BYTES = (512 * MiB, 1024 * MiB)

#: The bare CUDA context with lazy module loading (a process that holds no tensors): the median of the published
#: lazy "bare context" rows of hardware/cuda_context.json (256-527 MiB over RTX-3090, RTX-6000-Ada, H200 and the
#: PyTorch issues' figures; tests/test_hardware.py checks it). What vLLM 0.6.4 counts as non-torch memory on a GPU
#: with no log of its own (planner/engines/vllm.py).
CUDA_CONTEXT_BARE_BYTES = 400 * MiB

#: The CUDA context with eager module loading (``CUDA_MODULE_LOADING=EAGER``, or CUDA < 11.7): every kernel of every
#: loaded library goes into the context at init, "which took >1000MB" (pytorch/pytorch#107667; the rows are in
#: hardware/cuda_context.json). PyTorch sets LAZY itself when the variable is unset (torch/cuda/__init__.py,
#: torch >= 1.13), and lazy loading is the CUDA default on Linux from 12.2: the lazy figure above applies then.
#: 1024 MiB is the published lower bound; the high end of its range is unverified.
CUDA_CONTEXT_EAGER_BYTES = 1024 * MiB
CUDA_CONTEXT_EAGER_RANGE_BYTES = (1000 * MiB, 1536 * MiB)

#: CUDA module loading modes (the CUDA_MODULE_LOADING values).
MODULE_LOADING: tuple[str, ...] = ("lazy", "eager")


def cuda_context_bytes(module_loading: str = "lazy") -> int:
    """The per-process CUDA context for ``module_loading`` (``lazy``: the training figure measured on the H200;
    ``eager``: the published eager-loading context)."""
    return CUDA_CONTEXT_EAGER_BYTES if module_loading == "eager" else CUDA_CONTEXT_BYTES


def cuda_context_range_bytes(module_loading: str = "lazy") -> tuple[int, int]:
    return CUDA_CONTEXT_EAGER_RANGE_BYTES if module_loading == "eager" else CUDA_CONTEXT_RANGE_BYTES


#: NCCL communicator buffers per process for data/tensor parallel (NCCL_BUFFSIZE 4 MiB per
#: channel and peer, plus internal): a working figure for 8-GPU nodes, not measured here.
NCCL_BYTES = 384 * MiB

#: Caching-allocator overhead, ``max_memory_reserved / max_memory_allocated``. Measured on an H200
#: over 33 workloads (benchmarks/results/h200-2026-11-26.jsonl): inference 1.008 to 1.28 (median
#: 1.02; the high end is a batch-8 decode whose growing DynamicCache tensors cannot reuse the
#: freed, smaller blocks), training 1.03 to 1.24 (median 1.07; the high end with checkpointing,
#: whose recomputation frees and reallocates every layer).
RESERVED_RATIO = {"inference": 1.01, "training": 1.07}
RESERVED_RATIO_RANGE = {"inference": (1.0, 1.05), "training": (1.02, 1.25)}

#: Decoding grows every layer's DynamicCache tensors by one token per step (torch.cat into a new,
#: slightly larger block): the freed smaller blocks stay cached but cannot serve the next, larger
#: request. Measured on the H200, reserved - allocated was 0.34x to 1.16x the final KV cache over
#: 64 decode steps (batch 8: TinyLlama 0.34, Mistral-7B 0.5, Llama-2-7B 0.76, Qwen2.5-7B 1.16).
DECODE_FRAGMENTATION = 0.6
DECODE_FRAGMENTATION_RANGE = (0.3, 1.2)


def reserved_bytes(allocated_bytes: int, task: str, ratio: float | None = None, *, decode_kv_bytes: int = 0) -> int:
    """Estimated ``max_memory_reserved`` for a given ``max_memory_allocated``, rounded up to 2 MiB.

    ``decode_kv_bytes``: the KV cache a decode loop grows to (adds :data:`DECODE_FRAGMENTATION` of it).
    """
    r = ratio if ratio is not None else RESERVED_RATIO[task]
    value = int(allocated_bytes * r + DECODE_FRAGMENTATION * decode_kv_bytes)
    return -(-value // (2 * MiB)) * (2 * MiB)


def runtime_context_bytes(gpu: GPU) -> int:
    """Per-process memory the device's runtime takes outside the allocator: the catalog's
    ``context_bytes`` where an entry sets it (Apple: 0, Metal has no CUDA context), else the
    CUDA default above."""
    return CUDA_CONTEXT_BYTES if gpu.context_bytes is None else gpu.context_bytes


def device_total_on(memory: MemoryEstimate, gpu: GPU | None) -> int:
    """``memory.device_total_bytes`` on ``gpu``: the entry's own runtime context in place of the CUDA
    default (and of NCCL buffers, which a non-CUDA runtime does not allocate)."""
    if gpu is None or gpu.context_bytes is None:
        return memory.device_total_bytes
    return memory.reserved_peak_bytes + gpu.context_bytes
