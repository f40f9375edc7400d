"""What sits around the tensors: cuBLAS workspaces, the caching allocator, the CUDA context.

The constants are defaults until measured on the device at hand (measure mode writes a
calibration that replaces them); each names its source.
"""

from __future__ import annotations

MiB = 1 << 20

#: cuBLAS workspace PyTorch allocates through its caching allocator, so it counts in
#: ``memory_allocated``: 4096 KiB x 8 on Hopper and newer, 4096 KiB x 2 + 16 KiB x 8 before
#: (aten/src/ATen/cuda/CublasHandlePool.cpp, getChosenWorkspaceSize); cuBLASLt adds its own
#: (1 MiB default, CUBLASLT_WORKSPACE_SIZE). One handle per stream used.
CUBLAS_WORKSPACE_BYTES = 32 * MiB + 1 * MiB

#: CUDA context + kernels loaded by torch with lazy module loading (CUDA >= 11.7), as nvidia-smi
#: shows for a process that has run matmuls and attention but allocated nothing else. Range from
#: measurements on A100/H100 class GPUs; replaced by a device calibration when one exists.
CUDA_CONTEXT_BYTES = 520 * MiB
CUDA_CONTEXT_RANGE_BYTES = (300 * MiB, 1024 * MiB)

#: NCCL communicator buffers per process for data/tensor parallel (NCCL_BUFFSIZE 4 MiB per
#: channel and peer, plus internal): a working figure for 8-GPU nodes.
NCCL_BYTES = 384 * MiB

#: Caching-allocator overhead, ``reserved / allocated`` at the peak: the allocator rounds large
#: blocks to 2 MiB and keeps freed blocks cached (c10/cuda/CUDACachingAllocator.cpp). Training
#: fragments more (activations of many sizes freed out of order) than inference.
RESERVED_RATIO = {"inference": 1.02, "training": 1.08}
RESERVED_RATIO_RANGE = {"inference": (1.0, 1.10), "training": (1.01, 1.25)}


def reserved_bytes(allocated_bytes: int, task: str, ratio: float | None = None) -> int:
    """Estimated ``max_memory_reserved`` for a given ``max_memory_allocated``, rounded up to 2 MiB."""
    r = ratio if ratio is not None else RESERVED_RATIO[task]
    value = int(allocated_bytes * r)
    return -(-value // (2 * MiB)) * (2 * MiB)
