"""The real-values retry: fake tensors with real CPU twins answer data-dependent operators."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensor,
    FakeTensorMode,
)
from torch.utils import _pytree as pytree
from torch.utils._mode_utils import no_dispatch
from torch.utils._python_dispatch import TorchDispatchMode

from hf_gpu_estimator.constants import REAL_VALUES_MAX_BYTES, GiB
from hf_gpu_estimator.errors import TraceError
from hf_gpu_estimator.runtime.build import build_meta_model
from hf_gpu_estimator.runtime.dtypes import torch_dtype, weight_dtype
from hf_gpu_estimator.workload import Workload


#: control flow (an MoE's routing) depend on them, so a re-trace gives the same figures.
REAL_VALUES_SEED = 0

_DATA_DEPENDENT = (DataDependentOutputException, DynamicOutputShapeException)

_aten = torch.ops.aten


def is_data_dependent(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) is fake tensors' data-dependent failure."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _DATA_DEPENDENT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class RealValues(TorchDispatchMode):
    """Answers data-dependent operators from the real twins fake tensors carry.

    Sits between the ``FakeTensorMode`` (built with ``fake_tensor_propagate_real_tensors``, so
    every operator also runs on the twins) and the memory tracker, so the tracker sees every
    output this mode makes. An operator whose fake kernel raises a data-dependent exception is
    run on the twins and its outputs become fake tensors of the real shapes (``item()`` returns
    the real number). The fused attention kernels CUDA picks have no CPU kernel: their fake
    outputs are made without propagation and the forward output's twin is computed by CPU
    attention (flash: ``_scaled_dot_product_flash_attention_for_cpu``, or the math kernel where
    training applies attention dropout, which the CPU flash kernel refuses; memory-efficient: the
    math kernel with the same mask and dropout). Other operators whose CPU kernel refuses what the fake kernel
    takes (the fused attention backwards; a float32 input with bfloat16 norm weights, which only
    CUDA's kernel mixes) run fake only; their twins are computed with the floating inputs in the
    output's dtype where that works, and otherwise they have none, and a data-dependent operator
    that needs one fails as before.
    """

    def __init__(self, fake_mode: FakeTensorMode) -> None:
        super().__init__()
        self.fake_mode = fake_mode
        self.answered: dict[str, int] = {}

    @contextlib.contextmanager
    def _fake_only(self) -> Iterator[None]:
        previous = self.fake_mode.propagate_real_tensors
        self.fake_mode.propagate_real_tensors = False
        try:
            yield
        finally:
            self.fake_mode.propagate_real_tensors = previous

    @staticmethod
    def _twins(tree: Any) -> Any | None:
        leaves, spec = pytree.tree_flatten(tree)
        real = []
        for leaf in leaves:
            if isinstance(leaf, FakeTensor):
                if leaf.real_tensor is None:
                    return None
                leaf = leaf.real_tensor
            real.append(leaf)
        return pytree.tree_unflatten(real, spec)

    def _to_fake(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return self.fake_mode.fake_tensor_converter.from_real_tensor(self.fake_mode, value)
        return value

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in (_aten._scaled_dot_product_flash_attention.default,
                    _aten._scaled_dot_product_efficient_attention.default):
            return self._fused_attention(func, args, kwargs)
        try:
            return func(*args, **kwargs)
        except _DATA_DEPENDENT:
            real = self._twins((args, kwargs))
            if real is None:
                raise
            with no_dispatch():
                out = func(*real[0], **real[1])
            name = str(func.overloadpacket.__name__)
            self.answered[name] = self.answered.get(name, 0) + 1
            return pytree.tree_map(self._to_fake, out)
        except (NotImplementedError, RuntimeError):
            # The real CPU kernel refused what the fake kernel takes (a CUDA-only kernel, a dtype mix
            # only CUDA accepts); it raised before the fake kernel ran. The fake kernel decides: it
            # runs alone (an error of its own is the trace's error), then the twins are made on the
            # CPU with the floating inputs in the output's dtype, where that works.
            with self._fake_only():
                out = func(*args, **kwargs)
            self._promoted_twins(func, args, kwargs, out)
            return out

    def _promoted_twins(self, func: Any, args: Any, kwargs: dict[str, Any], out: Any) -> None:
        fakes = pytree.tree_leaves(out)
        dtype = next((t.dtype for t in fakes if isinstance(t, FakeTensor) and t.is_floating_point()), None)
        if func._schema.is_mutable or dtype is None:
            return
        real = self._twins((args, kwargs))
        if real is None:
            return
        with no_dispatch():
            promoted = pytree.tree_map(
                lambda t: t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t, real)
            try:
                twins = pytree.tree_leaves(func(*promoted[0], **promoted[1]))
            except (NotImplementedError, RuntimeError):
                return  # no twin: a data-dependent operator downstream fails as it did
            for fake, twin in zip(fakes, twins):
                if isinstance(fake, FakeTensor) and isinstance(twin, torch.Tensor) and twin.shape == fake.shape:
                    fake.real_tensor = twin.to(fake.dtype)

    def _fused_attention(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        with self._fake_only():
            out = func(*args, **kwargs)
        real = self._twins((args, kwargs))
        if real is None:
            return out
        (query, key, value, *rest), options = real
        scale = options.get("scale")
        with no_dispatch():
            flash = func is _aten._scaled_dot_product_flash_attention.default
            if flash:
                attn_bias, (dropout_p, is_causal) = None, (list(rest) + [0.0, False])[:2]
            else:
                attn_bias, _, dropout_p, is_causal = (list(rest) + [None, False, 0.0, False][len(rest):])[:4]
            if flash and not dropout_p:
                twin = _aten._scaled_dot_product_flash_attention_for_cpu(
                    query, key, value, dropout_p, is_causal, scale=scale)[0]
            else:  # the CPU flash kernel refuses dropout > 0 (attention dropout in training); math takes it
                twin = _aten._scaled_dot_product_attention_math(
                    query, key, value, attn_bias, dropout_p, is_causal, None, scale=scale)[0]
        out[0].real_tensor = twin
        return out


def real_values_guard(config: Mapping[str, Any], workload: Workload) -> None:
    """Refuse a real-values trace whose twins would not fit the host's memory limit."""
    model = build_meta_model(config)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    dtype = torch_dtype(weight_dtype(config, workload))
    per_param = float(dtype.itemsize)  # the weights
    if workload.is_training and workload.method == "full":
        # Gradients, and the optimizer's states (workload.OptimizerSpec: tensors of the parameter's size,
        # or fixed bytes per element for the 8-bit optimizers).
        optimizer = workload.optimizer
        state = (optimizer.state_bytes_per_param if optimizer.state_bytes_per_param is not None
                 else optimizer.state_tensors * dtype.itemsize)
        per_param += dtype.itemsize + state
    needed = int(n_params * per_param)
    if needed > REAL_VALUES_MAX_BYTES:
        raise TraceError(
            f"tracing {config.get('model_type')!r} needs real values (a data-dependent operator) and their "
            f"host copies do not fit: {n_params:,} parameters x {per_param:g} bytes "
            f"({needed / GiB:.1f} GiB) > {REAL_VALUES_MAX_BYTES / GiB:.0f} GiB (constants.REAL_VALUES_MAX_BYTES)"
        )


# --------------------------------------------------------------------------------------------
