"""The torch optimizers a training workload names, as their frameworks build them."""

from __future__ import annotations

from typing import Any

from hf_gpu_estimator.errors import TraceError
from hf_gpu_estimator.workload import Workload


#: Optimizers the runner builds (the workload's name → how). Others (8-bit, paged, lion) need
#: bitsandbytes or extra packages; the analytic model covers them.
SUPPORTED_OPTIMIZERS: tuple[str, ...] = ("adamw", "adam", "sgd", "sgd-momentum", "adafactor")

#: Learning rate of every optimizer the runner builds: its value changes no memory.
_LR = 1e-5


def make_optimizer(params: list[Any], workload: Workload) -> Any:
    """The torch optimizer for ``workload.optimizer`` over ``params``.

    AdamW/Adam use ``foreach=True`` explicitly: PyTorch's default on CUDA, while on fake or CPU
    tensors the automatic choice falls back to the per-parameter loop, whose temporaries differ.

    Raises:
        TraceError: the optimizer needs a package the runner does not use (bitsandbytes, lion).
    """
    import torch

    name = workload.optimizer.name
    if name == "adamw":
        return torch.optim.AdamW(params, lr=_LR, foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=_LR, foreach=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=_LR, momentum=0.0, foreach=True)
    if name == "sgd-momentum":
        return torch.optim.SGD(params, lr=_LR, momentum=0.9, foreach=True)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        # Trainer's defaults for optim="adafactor" (scale_parameter=False, relative_step=False).
        return Adafactor(params, lr=_LR, scale_parameter=False, relative_step=False, warmup_init=False)
    raise TraceError(
        f"optimizer {name!r} is not run in exact mode/measure (needs bitsandbytes or an extra package); "
        f"supported: {', '.join(SUPPORTED_OPTIMIZERS)}; the analytic estimate covers it"
    )
