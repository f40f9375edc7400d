"""DeepSpeed ZeRO's own buffers, sized by its ``zero_optimization`` bucket settings (elements). Pure arithmetic.

Sources (DeepSpeed 0.15, deepspeed/runtime/zero/):

* ``reduce_bucket_size`` (default 5e8, config.py): ZeRO-1/2 ``DeepSpeedZeroOptimizer.backward`` allocates the
  contiguous-gradient bucket ``ipg_buffer`` (``torch.empty(reduce_bucket_size, dtype=self.dtype)``, a second one
  with ``overlap_comm``) before ``loss.backward()`` and drops it after the reduction (stage_1_and_2.py);
  ZeRO-3 allocates its flat bucket ``__ipg_bucket_flat_buffer`` of the same size once, at init (stage3.py).
  Both only with ``contiguous_gradients`` (default true).
* ``stage3_prefetch_bucket_size`` (default 5e7): ZeRO-3's parameter coordinator gathers parameters of the
  modules ahead of the one running, up to this many elements (partitioned_param_coordinator.py
  ``fetch_sub_module``), unsharded in the parameter dtype.
* ``allgather_bucket_size`` (default 5e8): ZeRO-1/2 gather the updated shards into the flat 16-bit groups
  in place (runtime/utils.py ``all_gather_dp_groups`` uses ``all_gather_into_tensor`` where the backend has it):
  no buffer of that size.
"""

from __future__ import annotations

from dataclasses import dataclass

from hf_gpu_estimator.memory.terms import Term
from hf_gpu_estimator.workload import Workload

#: DeepSpeed's defaults (deepspeed/runtime/zero/config.py, DeepSpeedZeroConfig).
REDUCE_BUCKET_DEFAULT = 500_000_000
PREFETCH_BUCKET_DEFAULT = 50_000_000


@dataclass(frozen=True, kw_only=True)
class ZeroBuffers:
    """Bytes per device: held throughout, during backward only, and gathered during forward and backward."""

    resident: int = 0
    backward: int = 0
    gathered: int = 0
    terms: tuple[Term, ...] = ()


def zero_buffers(workload: Workload, *, param_bytes: int) -> ZeroBuffers:
    """DeepSpeed's buckets for ``workload`` when it names one of their sizes (flag or DeepSpeed config);
    ``param_bytes``: bytes per element of the 16-bit parameters (DeepSpeed's ``self.dtype``)."""
    strategy = workload.parallelism.strategy
    given = (workload.reduce_bucket_size, workload.allgather_bucket_size, workload.prefetch_bucket_size)
    if strategy not in ("zero1", "zero2", "zero3") or all(size is None for size in given):
        return ZeroBuffers()
    reduce = workload.reduce_bucket_size or REDUCE_BUCKET_DEFAULT
    # With the optimizer offloaded the gradients on the device are that one bucket, already the gradient term.
    bucket = 0 if workload.parallelism.offload_optimizer else reduce * param_bytes
    if strategy == "zero3":
        prefetch = workload.prefetch_bucket_size or PREFETCH_BUCKET_DEFAULT
        return ZeroBuffers(resident=bucket, gathered=prefetch * param_bytes, terms=(
            Term(component="gradients", name="DeepSpeed ZeRO-3 flat gradient bucket", bytes=bucket,
                 formula=f"reduce_bucket_size {reduce:,} x {param_bytes} B, allocated at init"),
            Term(component="weights", name="DeepSpeed ZeRO-3 prefetched parameters", bytes=prefetch * param_bytes,
                 formula=f"stage3_prefetch_bucket_size {prefetch:,} x {param_bytes} B gathered ahead")))
    terms = [Term(component="gradients", name=f"DeepSpeed ZeRO-{strategy[-1]} contiguous gradient bucket",
                  bytes=bucket,
                  formula=f"ipg_buffer: reduce_bucket_size {reduce:,} x {param_bytes} B, during backward")]
    if workload.allgather_bucket_size is not None:
        terms.append(Term(component="weights", name="DeepSpeed allgather bucket", bytes=0,
                          formula="the updated shards are gathered in place (all_gather_into_tensor): no buffer"))
    return ZeroBuffers(backward=bucket, terms=tuple(terms))
