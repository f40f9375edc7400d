"""Inverse searches on one device: the largest batch and the longest sequence whose verdict is "fits".

Each step asks :func:`~hf_gpu_estimator.planner.deployment.fit`, so the answers agree with the
verdicts of ``estimate`` and ``plan`` (the high end of the measured range against the usable
memory less the margin).

>>> from hf_gpu_estimator.sources.catalog import lookup
>>> from hf_gpu_estimator.workload import make_workload
>>> from hf_gpu_estimator.hardware import get_gpu
>>> spec, work = lookup("meta-llama/Llama-2-7b-hf"), make_workload(seq_len=1024, new_tokens=256)
>>> max_batch_size(spec, work, get_gpu("A100-80GB-SXM")) > 32
True
"""

from __future__ import annotations

from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.planner._search import DEFAULT_MARGIN, SEARCH_CAP, _largest
from hf_gpu_estimator.planner.deployment import Deployment, fit
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.verdict import _check_margin
from hf_gpu_estimator.workload import Workload


def framework_deployment(gpu: GPU | Deployment, workload: Workload, margin: float = DEFAULT_MARGIN) -> Deployment:
    """The deployment of ``workload`` on ``gpu`` as the framework runs it (its own split), or ``gpu`` itself
    when it is already a deployment."""
    if isinstance(gpu, Deployment):
        return gpu
    p = workload.parallelism
    return Deployment(gpu=gpu, tp=p.tp, pp=p.pp, num_gpus=max(p.num_gpus, p.tp * p.pp), margin=_check_margin(margin))


def max_batch_size(spec: ModelSpec, workload: Workload, gpu: GPU | Deployment, *, margin: float = DEFAULT_MARGIN) -> int:
    """The largest per-device batch whose verdict on ``gpu`` is "fits" (0 when batch 1 does not fit).

    Memory grows monotonically with the batch, so this is a binary search over :func:`fit`
    (about 20 evaluations).
    """
    d = framework_deployment(gpu, workload, margin)
    return _largest(lambda b: fit(spec, workload.with_(batch_size=b), d).fits, 1, SEARCH_CAP)


def _seq_cap(spec: ModelSpec, workload: Workload) -> int:
    arch = spec.architecture
    cap = arch.max_position_embeddings if arch is not None and arch.max_position_embeddings else SEARCH_CAP
    if not workload.is_training:
        cap -= workload.new_tokens  # prompt + generated tokens share the positions
    return cap


def max_seq_len(spec: ModelSpec, workload: Workload, gpu: GPU | Deployment, *, margin: float = DEFAULT_MARGIN) -> int:
    """The largest sequence length (training) or prompt length (inference) whose verdict on ``gpu`` is "fits".

    Capped at the model's ``max_position_embeddings`` (minus ``new_tokens`` for inference);
    0 when one token does not fit.
    """
    d = framework_deployment(gpu, workload, margin)
    return _largest(lambda s: fit(spec, workload.with_(seq_len=s), d).fits, 1, max(0, _seq_cap(spec, workload)))
