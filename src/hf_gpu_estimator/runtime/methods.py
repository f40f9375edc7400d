"""Fine-tuning methods on a built model: LoRA adapters (peft) and the QLoRA recipe's 4-bit stand-in."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.errors import MissingDependencyError, TraceError
from hf_gpu_estimator.runtime.dtypes import cast_floating_, torch_dtype
from hf_gpu_estimator.workload import Workload

if TYPE_CHECKING:
    from hf_gpu_estimator.runtime.build import BuiltModel


def apply_method(built: BuiltModel, workload: Workload) -> None:
    """Freeze the base and add LoRA adapters (peft) for ``lora``/``qlora``; no-op for ``full``."""
    if not workload.is_training or workload.method == "full":
        return
    try:
        import peft
    except ImportError as e:
        raise MissingDependencyError("peft", "peft", "tracing LoRA") from e
    targets: str | list[str] = list(workload.lora_targets)
    if targets == ["all-linear"]:
        targets = "all-linear"
    if workload.lora_on_lm_head:
        targets = [*([] if targets == "all-linear" else targets), "lm_head"] if targets != "all-linear" else targets
    if workload.method == "qlora":
        _qlora_recipe(built.model, workload)
    lora = peft.LoraConfig(
        r=workload.lora_rank,
        lora_alpha=workload.lora_alpha,
        target_modules=targets,
        lora_dropout=workload.lora_dropout,
        task_type=None if workload.head == "classification" else "CAUSAL_LM",
    )
    try:
        built.model = peft.get_peft_model(built.model, lora)
    except ValueError as e:
        raise TraceError(f"peft could not add LoRA to {workload.lora_targets}: {e}") from e
    if workload.head == "classification":
        # peft's SEQ_CLS task trains the new ``score`` head in full (modules_to_save: a trainable deep copy, which
        # fake parameters cannot take): the head itself is made trainable instead, one hidden x num_labels
        # weight less than peft holds.
        built.model.get_base_model().score.weight.requires_grad_(True)
    if not workload.precision.mixed:
        # Lightning's *-true precisions cast the whole module (adapters included) to the
        # parameter dtype; under mixed precision peft keeps the adapters in float32.
        cast_floating_(built.model, torch_dtype(workload.precision.param_dtype))


def _qlora_recipe(model: Any, workload: Workload) -> None:
    """The QLoRA recipe on the bf16 stand-in of a bitsandbytes 4-bit base (its linears are traced in bf16, the
    analytic model gives their 4-bit bytes): the k-bit recipe's fp32 casts, and bitsandbytes' autograd.

    * ``kbit_fp32_casts`` (peft ``prepare_model_for_kbit_training``, v0.13.0 src/peft/utils/other.py): every
      16-bit parameter that is not ``Params4bit`` becomes fp32: all but the linears bitsandbytes quantizes
      (transformers keeps the output head unquantized).
    * The quantized linears run :class:`_MatMul4BitStandIn`, which keeps what bitsandbytes' ``MatMul4Bit``
      keeps for backward: the packed weight, and before bitsandbytes 0.43.2 the input as well
      (``ctx.tensors = (A, B)``; commit 9e753741 made it ``(None, B)``).
    """
    import torch

    head = model.get_output_embeddings()
    quantized = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    if workload.kbit_fp32_casts:
        skip = {id(m) for m in quantized}
        for sub in model.modules():
            if id(sub) not in skip and not list(sub.children()) and sub._parameters:
                cast_floating_(sub, torch.float32)
    compute = torch_dtype(workload.precision.compute_dtype)
    for linear in quantized:
        linear.forward = _quantized_forward(linear, compute, keep_input=workload.quantized_saves_input)


def _quantized_forward(linear: Any, compute: Any, *, keep_input: bool) -> Callable[[Any], Any]:
    def forward(x: Any) -> Any:
        # bitsandbytes Linear4bit.forward: the input is cast to the compute dtype, the output back to the input's.
        out = _MatMul4BitStandIn.apply(x.to(compute), linear.weight, linear.bias, keep_input)
        return out.to(x.dtype)

    return forward


def _matmul_4bit_stand_in() -> Any:
    import torch

    class MatMul4BitStandIn(torch.autograd.Function):
        """bitsandbytes ``MatMul4Bit`` (bitsandbytes/autograd/_functions.py) on a 16-bit weight: forward
        ``linear(A, dequantize(B))``; ``ctx.tensors`` holds B, and A before 0.43.2; backward ``grad @ B``."""

        @staticmethod
        def forward(ctx: Any, A: Any, B: Any, bias: Any, keep_input: bool) -> Any:
            ctx.tensors = (A if keep_input else None, B)
            return torch.nn.functional.linear(A, B, bias)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            _, B = ctx.tensors
            return grad @ B.to(grad.dtype), None, None, None

    return MatMul4BitStandIn


class _LazyFunction:
    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._cls: Any = None

    def apply(self, *args: Any) -> Any:
        if self._cls is None:
            self._cls = self._make()
        return self._cls.apply(*args)


_MatMul4BitStandIn = _LazyFunction(_matmul_4bit_stand_in)
