"""Inverse searches on one device: the largest batch and the longest sequence that fit.

>>> from hf_gpu_estimator.sources.catalog import lookup
>>> from hf_gpu_estimator.workload import make_workload
>>> from hf_gpu_estimator.hardware import get_gpu
>>> spec, work = lookup("meta-llama/Llama-2-7b-hf"), make_workload(seq_len=1024, new_tokens=256)
>>> max_batch_size(spec, work, get_gpu("A100-80GB-SXM")) > 32
True
"""

from __future__ import annotations

from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.planner._search import DEFAULT_MARGIN, SEARCH_CAP, _fits, _largest, _usable
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload


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
