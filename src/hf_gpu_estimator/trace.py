"""Exact mode: run the real transformers model on fake tensors under torch's memory tracker.

The model is built from its config with ``FakeTensorMode`` (no memory, no compute: every
tensor carries only shape, dtype and device) and the workload's phases are driven by
:mod:`hf_gpu_estimator._runner`, the same code measure mode runs on a GPU. Memory is counted
by a subclass of ``torch.distributed._tools.mem_tracker.MemTracker``: every storage that an
operator creates is tracked until it is freed, rounded up to 512 bytes as the CUDA caching
allocator rounds a block (``kMinBlockSize``, c10/cuda/CUDACachingAllocator.cpp), and
categorized as parameter, buffer, gradient, activation, temporary or optimizer state. The
peak is the analogue of ``torch.cuda.max_memory_allocated()``.

CUDA code paths. The tracer must take the paths a CUDA GPU (sm80+, e.g. A100/H100) takes:

* Device. On a CUDA build of torch the fake tensors live on ``"cuda"`` and real
  ``torch.autocast("cuda")`` runs. On a CPU-only build, autograd cannot run on fake CUDA
  tensors (``InputMetadata`` asks the CUDA device guard for a stream and a CPU build has no
  CUDA guard; ``FakeTensorMode``'s ``_ensureCUDADeviceGuardSet`` only patches a CUDA build),
  so the fake tensors live on ``"cpu"`` and CUDA autocast is emulated
  (:class:`_CudaSemantics`: CUDA's op lists from ATen/autocast_mode.h and its weight-cast
  cache), with the 512-byte rounding applied to CPU storages. Recorded in ``fallbacks``.
* SDPA. ``F.scaled_dot_product_attention`` is routed to the kernel CUDA would pick (the
  ``can_use_flash_attention``/``can_use_mem_efficient_attention`` gates of
  aten/src/ATen/native/transformers/cuda/sdp_utils.cpp, priority flash → memory-efficient →
  math): flash for fp16/bf16 without a mask, memory-efficient (no GQA) otherwise, math last
  (which materializes the scores, in float32 for half inputs as CUDA's math path upcasts).
  The fused kernels' outputs (attention output, float32 logsumexp) are what the fake kernel
  allocates; their internal workspaces (flash backward's float32 ``dq_accum``) are not.
* Data-dependent operators (``.item()``, ``.tolist()``, ``nonzero``, boolean indexing) have no
  answer on fake tensors. A workload whose trace fails on one is traced again with real values
  (:class:`_RealValues`): every fake tensor carries a real CPU twin (torch's
  ``fake_tensor_propagate_real_tensors``), the weights are random (N(0, 0.02), as measure mode,
  under a fixed seed :data:`REAL_VALUES_SEED`), and the data-dependent operators are answered
  from the twins. Memory is still counted on the fake tensors, by the same tracker, rounding
  and CUDA routing; only the values that steer control flow (an MoE's token split among its
  experts, a length check) come from the twins, and so from the seeded random weights. Recorded
  in ``fallbacks``; it runs only after the fake run failed on such an operator.
* Eager attention materializes ``[batch, heads, q, k]`` scores and softmaxes them in float32
  (transformers' ``eager_attention_forward``); the causal-LM loss upcasts logits to float32
  (transformers ``ForCausalLMLoss``): both are the real code and are traced as such.

Import this module lazily: it imports torch at the top.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensor,
    FakeTensorMode,
)
from torch.autograd import graph as _autograd_graph
from torch.distributed._tools import mem_tracker as _mt
from torch.distributed._tools import mod_tracker as _mod_tracker
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._mode_utils import no_dispatch
from torch.utils._python_dispatch import TorchDispatchMode

from hf_gpu_estimator import _runner
from hf_gpu_estimator.constants import REAL_VALUES_MAX_BYTES, GiB
from hf_gpu_estimator.errors import TraceError
from hf_gpu_estimator.workload import Workload

#: CUDA caching allocator block granularity (kMinBlockSize = 512 bytes).
_BLOCK_BYTES = 512

#: Breakdown keys, from MemTracker's reference types.
CATEGORY_NAMES: Mapping[str, str] = {
    "Parameter": "params",
    "Buffer": "buffers",
    "Gradient": "grads",
    "Activation": "activations",
    "Temp": "temporaries",
    "Optstate": "optimizer",
    "Other": "inputs",
}


@dataclass(frozen=True, kw_only=True)
class TraceResult:
    """What exact mode measured for one workload.

    ``peak_bytes`` is the maximum of live tracked bytes over the traced phases, the analogue of
    ``torch.cuda.max_memory_allocated()`` (no allocator cache, no CUDA context, no kernel
    workspaces). ``breakdown_at_peak`` splits it by category (params, buffers, grads,
    activations, temporaries, optimizer, inputs); ``optimizer`` holds optimizer *states*,
    temporaries of the optimizer step are under ``temporaries``.
    """

    peak_bytes: int
    phase_at_peak: str
    module_at_peak: str | None
    phase_peaks: Mapping[str, int]
    breakdown_at_peak: Mapping[str, int]
    top_holders: tuple[tuple[str, int], ...]
    fallbacks: tuple[str, ...]
    trace_seconds: float
    device: str  # the fake device: "cuda" or "cpu" (CPU-only torch build)
    weight_dtype: str
    parameters: int  # all parameters of the traced model (LoRA adapters included)
    trainable_parameters: int
    kv_cache_bytes: int | None = None  # inference: the cache after the last decode step
    optimizer_state_bytes: int | None = None  # training: states resident after the last step
    attention_backends: Mapping[str, int] = field(default_factory=dict)  # SDPA kernel → calls

    def to_dict(self) -> dict[str, object]:
        return {
            "peak_bytes": self.peak_bytes,
            "phase_at_peak": self.phase_at_peak,
            "module_at_peak": self.module_at_peak,
            "phase_peaks": dict(self.phase_peaks),
            "breakdown_at_peak": dict(self.breakdown_at_peak),
            "top_holders": [list(h) for h in self.top_holders],
            "fallbacks": list(self.fallbacks),
            "trace_seconds": self.trace_seconds,
            "device": self.device,
            "weight_dtype": self.weight_dtype,
            "parameters": self.parameters,
            "trainable_parameters": self.trainable_parameters,
            "kv_cache_bytes": self.kv_cache_bytes,
            "optimizer_state_bytes": self.optimizer_state_bytes,
            "attention_backends": dict(self.attention_backends),
        }


# --------------------------------------------------------------------------------------------
# CUDA semantics on fake tensors: SDPA backend choice and (CPU builds) autocast emulation.

# Op lists of CUDA autocast, ATen/autocast_mode.h (AT_FORALL_LOWER_PRECISION_FP, AT_FORALL_FP32,
# AT_FORALL_FP32_SET_OPT_DTYPE, AT_FORALL_PROMOTE), by Python function name (torch.*, F.*,
# Tensor methods and operators).
_AMP_LOWER = frozenset({
    "conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "convolution", "prelu", "addmm", "addmv", "addr", "matmul", "__matmul__", "__rmatmul__", "einsum", "mm",
    "mv", "linalg_vecdot", "linear", "addbmm", "baddbmm", "bmm", "chain_matmul", "multi_dot",
    "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "scaled_dot_product_attention",
})  # fmt: skip
_AMP_FP32 = frozenset({
    "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal",
    "rsqrt", "sinh", "tan", "pow", "__pow__", "__rpow__", "softplus", "layer_norm", "rms_norm", "group_norm",
    "frobenius_norm", "nuclear_norm", "cosine_similarity", "poisson_nll_loss", "cosine_embedding_loss",
    "nll_loss", "hinge_embedding_loss", "kl_div", "l1_loss", "smooth_l1_loss", "huber_loss", "mse_loss",
    "margin_ranking_loss", "multilabel_margin_loss", "soft_margin_loss", "triplet_margin_loss",
    "multi_margin_loss", "binary_cross_entropy_with_logits", "dist", "pdist", "cdist", "renorm", "logsumexp",
})  # fmt: skip
_AMP_FP32_OPT_DTYPE = frozenset({"prod", "softmax", "log_softmax", "cumprod", "cumsum", "sum"})
_AMP_PROMOTE = frozenset({"addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "vdot", "tensordot", "index_put", "scatter_add"})
_HALF = (torch.float16, torch.bfloat16)


def _sdpa_backend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any, is_causal: bool,
                  enable_gqa: bool) -> str:
    """The SDPA kernel CUDA picks on sm80+ (flash → efficient → math), from sdp_utils.cpp gates.

    Respects ``torch.nn.attention.sdpa_kernel`` (the global enable flags). cuDNN attention is not
    modelled: torch prefers it only on sm90/sm100 with cuDNN > 9.15 (check_prefer_cudnn_attention)
    and its memory (output + float32 stats) equals flash's.
    """
    dims_equal = q.shape[-1] == k.shape[-1] == v.shape[-1]
    same_heads = q.shape[-3] == k.shape[-3] == v.shape[-3]
    gqa_ok = same_heads or (enable_gqa and q.shape[-3] % k.shape[-3] == 0)
    if (
        torch.backends.cuda.flash_sdp_enabled()
        and q.dtype in _HALF
        and q.dtype == k.dtype == v.dtype
        and attn_mask is None
        and dims_equal
        and q.shape[-1] <= 256
        and not (is_causal and q.shape[-2] != k.shape[-2])  # check_flash_causal_non_square_seqlens
        and gqa_ok
    ):
        return "flash"
    alignment = 8 if q.dtype in _HALF else 4  # minimum_gemm_alignment on sm80+
    if (
        torch.backends.cuda.mem_efficient_sdp_enabled()
        and q.dtype in (*_HALF, torch.float32)
        and q.dtype == k.dtype == v.dtype
        and q.shape[-1] == k.shape[-1]
        and q.shape[-1] % alignment == 0
        and v.shape[-1] % alignment == 0
        and same_heads  # check_batch_size_and_num_heads_dense<false>: no GQA
    ):
        return "efficient"
    return "math"


class _CudaSemantics(TorchFunctionMode):
    """Routes SDPA to CUDA's kernel choice and, when asked, emulates CUDA autocast.

    Autocast emulation (CPU-only torch builds): while ``amp_dtype`` is set, floating arguments
    of CUDA's lower-precision ops are cast to it, those of its float32 ops to float32, as
    autocast does above autograd (so the casts are recorded and their outputs saved for
    backward as on CUDA). Casts of leaf tensors that require grad (weights) are cached until
    the forward's autocast region ends, like autocast's cast cache (autocast_mode.cpp
    ``cached_cast``). The autograd engine does not carry torch-function modes into backward, so
    activation-checkpoint recomputation re-enters this mode through checkpoint's ``context_fn``
    (:meth:`recompute`), with the cast cache off: the recomputation's autocast region is one
    checkpointed block, whose weight casts die with it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.amp_dtype: torch.dtype | None = None
        self.amp_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.backends: dict[str, int] = {}
        self.grouped_mm_stand_ins = 0

    @contextlib.contextmanager
    def recompute(self, dtype: torch.dtype | None) -> Iterator[None]:
        """Active again during checkpoint recomputation (the engine drops torch-function modes)."""
        with self, self.autocast(dtype, cache=False) if dtype is not None else contextlib.nullcontext():
            yield

    @contextlib.contextmanager
    def autocast(self, dtype: torch.dtype, *, cache: bool) -> Iterator[None]:
        previous = self.amp_dtype, self.amp_cache
        self.amp_dtype, self.amp_cache = dtype, ({} if cache else None)
        try:
            yield
        finally:
            self.amp_dtype, self.amp_cache = previous

    def _cast(self, t: Any, dtype: torch.dtype) -> Any:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dtype in (dtype, torch.float64):
            return t
        cacheable = (
            self.amp_cache is not None and t.dtype == torch.float32 and dtype != torch.float32
            and t.requires_grad and t.is_leaf
        )
        if cacheable:
            hit = self.amp_cache.get(id(t))  # type: ignore[union-attr]
            if hit is not None and hit[0] is t:
                return hit[1]
        out = t.to(dtype)
        if cacheable:
            self.amp_cache[id(t)] = (t, out)  # type: ignore[index]
        return out

    def _cast_all(self, args: Any, kwargs: dict[str, Any], dtype: torch.dtype) -> tuple[Any, dict[str, Any]]:
        def cast(x: Any) -> Any:
            if isinstance(x, (list, tuple)):
                return type(x)(cast(i) for i in x)
            return self._cast(x, dtype)

        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if self.amp_dtype is not None:
            if name in _AMP_LOWER:
                args, kwargs = self._cast_all(args, kwargs, self.amp_dtype)
            elif name in _AMP_FP32:
                args, kwargs = self._cast_all(args, kwargs, torch.float32)
            elif name in _AMP_FP32_OPT_DTYPE:
                first = args[0] if args else None
                if isinstance(first, torch.Tensor) and first.dtype in _HALF and kwargs.get("dtype") is None:
                    if not (name in ("softmax", "log_softmax") and len(args) >= 3 and args[2] is not None):
                        kwargs["dtype"] = torch.float32
            elif name in _AMP_PROMOTE:
                dtypes = [a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
                if dtypes:
                    widest = functools_reduce_promote(dtypes)
                    args, kwargs = self._cast_all(args, kwargs, widest)
        if func is torch.nn.functional.scaled_dot_product_attention:
            return self._sdpa(*args, **kwargs)
        if name == "__deepcopy__" and args and isinstance(args[0], FakeTensor) and args[0].constant is not None:
            return self._deepcopy_constant(*args, **kwargs)
        if func is torch.nn.functional.dropout:
            return self._dropout(*args, **kwargs)
        if name == "softmax" and args and isinstance(args[0], torch.Tensor) and args[0].dtype == torch.float16:
            # CUDA's softmax(fp16, dtype=float32) runs half_to_float: fp32 output, no fp32 copy of the
            # input (aten/src/ATen/native/SoftMax.cpp; bf16 is converted first, as on CPU).
            positional_dtype = 3 if func is torch.nn.functional.softmax else 2
            dtype = kwargs.get("dtype", args[positional_dtype] if len(args) > positional_dtype else None)
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            if dtype == torch.float32 and dim is not None:
                return torch.ops.aten._softmax(args[0], dim, True)
        if name in ("grouped_mm", "_grouped_mm") and len(args) >= 2 and args[0].dtype != torch.bfloat16 \
                and args[0].dim() == 2 and args[1].dim() == 3 and kwargs.get("bias") is None:
            self.grouped_mm_stand_ins += 1
            return _GroupedMMShape.apply(args[0], args[1], kwargs.get("offs"))
        return func(*args, **kwargs)

    @staticmethod
    def _deepcopy_constant(t: torch.Tensor, memo: dict[int, Any]) -> torch.Tensor:
        """``copy.deepcopy`` of a fake tensor made from real data (``torch.tensor(...)``, which keeps its value as
        a CPU ``constant``): torch's ``Tensor.__deepcopy__`` sets the copy's storage to the meta one and fails
        ("devices must match"). The copy is a fresh fake clone, as large as the tensor (dory's model deep-copies
        the cache layers of its looped section, whose sliding-window layers hold such a scalar)."""
        if id(t) in memo:
            return memo[id(t)]
        with torch.no_grad():
            out = t.clone(memory_format=torch.preserve_format)
        out.requires_grad_(t.requires_grad)
        memo[id(t)] = out
        return out

    @staticmethod
    def _dropout(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
        """CUDA's dropout: ``at::dropout`` takes the fused ``native_dropout`` on CUDA, which saves a
        bool mask for backward; on CPU it multiplies by a float noise tensor and saves that
        (aten/src/ATen/native/Dropout.cpp ``is_fused_kernel_acceptable``, ``_dropout_impl``), 3 bytes
        more per element than a GPU keeps."""
        if not training or not 0 < p < 1 or input.device.type == "cuda" or inplace:
            return torch.nn.functional.dropout(input, p, training, inplace)
        return torch.native_dropout(input, p, True)[0]

    def _sdpa(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None,
              dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
              enable_gqa: bool = False) -> torch.Tensor:
        dev = query.device.type
        if self.amp_dtype is None and torch.is_autocast_enabled(dev):
            # Real autocast casts SDPA's floating inputs (lower-precision list) before the choice.
            dtype = torch.get_autocast_dtype(dev)
            query, key, value = (self._cast(t, dtype) for t in (query, key, value))
            attn_mask = self._cast(attn_mask, dtype)
        backend = _sdpa_backend(query, key, value, attn_mask, is_causal, enable_gqa)
        self.backends[backend] = self.backends.get(backend, 0) + 1
        with torch.autocast(dev, enabled=False) if torch.is_autocast_enabled(dev) else contextlib.nullcontext():
            if backend == "flash":
                return torch.ops.aten._scaled_dot_product_flash_attention(
                    query, key, value, dropout_p, is_causal, False, scale=scale
                )[0]
            if backend == "efficient":
                if attn_mask is not None and attn_mask.dtype == torch.bool:
                    # convert_boolean_attn_mask: where(logical_not(mask), -inf, 0) in the query dtype.
                    attn_mask = torch.where(
                        attn_mask.logical_not(),
                        torch.tensor(float("-inf"), dtype=query.dtype, device=query.device),
                        torch.tensor(0.0, dtype=query.dtype, device=query.device),
                    )
                if attn_mask is not None:
                    attn_mask = attn_mask.expand(query.shape[0], query.shape[1], query.shape[-2], key.shape[-2])
                needs_lse = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
                return torch.ops.aten._scaled_dot_product_efficient_attention(
                    query, key, value, attn_mask, needs_lse, dropout_p, is_causal, scale=scale
                )[0]
            # Math: CUDA upcasts half inputs to float32 unless allowFP16BF16ReductionMathSDP.
            out_dtype = query.dtype
            if query.dtype in _HALF:
                query, key, value = query.float(), key.float(), value.float()
                if attn_mask is not None and attn_mask.is_floating_point():
                    attn_mask = attn_mask.float()
            out = torch.ops.aten._scaled_dot_product_attention_math(
                query, key, value, attn_mask, dropout_p, is_causal, None, scale=scale, enable_gqa=enable_gqa
            )[0]
            return out.to(out_dtype)


class _GroupedMMShape(torch.autograd.Function):
    """Stand-in for ``grouped_mm`` on non-bf16 inputs: same outputs, saved tensors and grads.

    torch's meta kernel of ``_grouped_mm`` accepts bf16 only, while transformers' MoE experts
    call it on float32 weights under mixed precision (integrations/moe.py casts the input to the
    weight dtype); the CUDA op takes float32 through its fallback path. Memory is what matters:
    an ``[tokens, out]`` output, ``input`` and ``weight`` saved for backward, gradients of
    their shapes.
    """

    @staticmethod
    def forward(ctx: Any, mat_a: torch.Tensor, mat_b: torch.Tensor, offs: Any) -> torch.Tensor:
        ctx.save_for_backward(mat_a, mat_b)
        return mat_a.new_empty((mat_a.shape[0], mat_b.shape[-1]))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        mat_a, mat_b = ctx.saved_tensors
        return grad.new_empty(mat_a.shape), grad.new_empty(mat_b.shape), None


def functools_reduce_promote(dtypes: list[torch.dtype]) -> torch.dtype:
    widest = dtypes[0]
    for d in dtypes[1:]:
        widest = torch.promote_types(widest, d)
    return widest


# --------------------------------------------------------------------------------------------
# Real values for data-dependent operators (the fallback after a fake run failed on one).

#: Seed of the random weights and token ids of a real-values trace: the values that steer
#: control flow (an MoE's routing) depend on them, so a re-trace gives the same figures.
REAL_VALUES_SEED = 0

_DATA_DEPENDENT = (DataDependentOutputException, DynamicOutputShapeException)

_aten = torch.ops.aten


def _is_data_dependent(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) is fake tensors' data-dependent failure."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _DATA_DEPENDENT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _RealValues(TorchDispatchMode):
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


def _real_values_guard(config: Mapping[str, Any], workload: Workload) -> None:
    """Refuse a real-values trace whose twins would not fit the host's memory limit."""
    model = _runner.build_meta_model(config)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    dtype = _runner.torch_dtype(_runner.weight_dtype(config, workload))
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
# The memory tracker.


class _Tracker(_mt.MemTracker):
    """MemTracker with a cheaper peak update that also records where the peak happened.

    ``MemTracker._update_peak_stats`` walks every tracked module on every operator to keep
    per-module peak snapshots; on a 7B model that dominates the trace. This keeps only the
    global peak, its category snapshot, the innermost active module and the phase.
    """

    def __init__(self, device_type: str) -> None:
        super().__init__()
        self.device_type = device_type
        self.peak_module: str | None = None

    def _track(self, reftype: Any, t: torch.Tensor) -> None:
        # torch.optim keeps each parameter's "step" as a 0-dim tensor on the host (not
        # capturable, not fused: torch/optim/adamw.py _init_group), so it is no device memory.
        # On a CPU-only build everything is "cpu": skip 0-dim tensors made inside step().
        if self._in_opt and t.dim() == 0:
            return
        super()._track(reftype, t)

    def _track_optimizer_states(self, reftype: Any, optimizer: Any) -> None:
        for states in optimizer.state.values():
            for val in states.values():
                if isinstance(val, torch.Tensor) and val.dim() > 0:
                    self._update_and_maybe_create_winfos(val, reftype)

    def _update_peak_stats(self, peak_state: Any) -> None:
        for dev, snap in self._curr_mem_snap.items():
            if dev.type != self.device_type:
                continue
            total = snap[_mt._TOTAL_KEY]
            if self._peak_mem.get(dev, 0) < total:
                self._peak_mem[dev] = total
                self._peak_mem_snap[dev] = dict(snap)
                parents = self._mod_tracker.parents
                # The innermost module is the longest dotted name among the active parents.
                self.peak_module = max((p for p in parents if p != "Global"), key=len, default=None)

    def _track_module_params_and_buffers(self, module: Any, install_grad_hooks: bool = True) -> tuple[int, int]:
        # MemTracker registers gradient hooks on every parameter, and register_hook raises on a
        # frozen one (LoRA's base weights): hook only the parameters that take gradients.
        ref = _mt._MemRefType

        def grad_hook(grad: torch.Tensor) -> None:
            self._update_and_maybe_create_winfos(grad, ref.GRAD)

        param_memory = 0
        for param in module.parameters():
            winfos = self._update_and_maybe_create_winfos(param, ref.PARAM)
            param_memory += sum(w.mem_consumed for w in winfos)
            if param.grad is not None:
                self._update_and_maybe_create_winfos(param.grad, ref.GRAD)
            if install_grad_hooks and param.requires_grad and self._param_to_grad_hook_handles.get(param) is None:
                self._param_to_grad_hook_handles[param] = (
                    param.register_hook(grad_hook),
                    param.register_post_accumulate_grad_hook(lambda p: grad_hook(p.grad)),
                )
        buffer_memory = 0
        for buffer in module.buffers():
            winfos = self._update_and_maybe_create_winfos(buffer, ref.BUFFER)
            buffer_memory += sum(w.mem_consumed for w in winfos)
        return param_memory, buffer_memory

    def reset_peak(self) -> None:
        self._peak_mem = {dev: s[_mt._TOTAL_KEY] for dev, s in self._curr_mem_snap.items()}
        self._peak_mem_snap = {dev: dict(s) for dev, s in self._curr_mem_snap.items()}
        self.peak_module = None

    def peak(self) -> tuple[int, dict[str, int]]:
        total = sum(v for dev, v in self._peak_mem.items() if dev.type == self.device_type)
        breakdown: dict[str, int] = {}
        for dev, snap in self._peak_mem_snap.items():
            if dev.type != self.device_type:
                continue
            for key, value in snap.items():
                if key == _mt._TOTAL_KEY:
                    continue
                name = CATEGORY_NAMES.get(getattr(key, "value", str(key)), str(key))
                breakdown[name] = breakdown.get(name, 0) + int(value)
        return int(total), breakdown


@contextlib.contextmanager
def _round_all_devices() -> Iterator[None]:
    """Round every tracked storage to 512 bytes, not only CUDA ones (CPU-only builds trace on CPU)."""
    original = _mt._WeakRefInfo._calculate_mem_consumed

    def rounded(self: Any) -> int:
        mem = self.size * self.element_size
        return math.ceil(mem / _BLOCK_BYTES) * _BLOCK_BYTES

    _mt._WeakRefInfo._calculate_mem_consumed = rounded  # type: ignore[method-assign]
    try:
        yield
    finally:
        _mt._WeakRefInfo._calculate_mem_consumed = original  # type: ignore[method-assign]


def _has_grad_node(t: torch.Tensor) -> bool:
    try:
        _autograd_graph._get_grad_fn_or_grad_acc(t)
    except AssertionError:
        return False
    return True


@contextlib.contextmanager
def _grad_hooks_on_reachable_tensors() -> Iterator[None]:
    """Let ModTracker hook a module's inputs even when one has no autograd node.

    ModTracker hooks a gradient on every module input that requires one, to pop the module when
    backward reaches it; a view of a parameter taken under ``no_grad`` (DBRX's experts slice
    their weights in a no-grad forward and pass the slices to a submodule) requires a gradient
    but has no node, and torch's ``register_multi_grad_hook`` raises ("Expected gradient function
    to be set"). No gradient can ever arrive through such a view, so it is left out of the hook
    (and a hook with no tensor left is not registered). Tensors with nodes are hooked as before:
    this only acts where torch raised.
    """
    original = _mod_tracker.register_multi_grad_hook

    def register(tensors: Any, fn: Any, **kwargs: Any) -> Any:
        try:
            return original(tensors, fn, **kwargs)
        except AssertionError:
            reachable = [t for t in tensors if _has_grad_node(t)]
            if len(reachable) == len(tensors):
                raise
            return original(reachable, fn, **kwargs) if reachable else None

    _mod_tracker.register_multi_grad_hook = register  # type: ignore[assignment]
    try:
        yield
    finally:
        _mod_tracker.register_multi_grad_hook = original  # type: ignore[assignment]


@contextlib.contextmanager
def _swappable_params(fake_mode: FakeTensorMode) -> Iterator[None]:
    """Let ``nn.Module.to()`` swap fake parameters created in this block (peft moves its adapters, some
    models cast submodules in ``__init__``).

    ``Module._apply`` always swaps FakeTensor parameters (``torch.utils.swap_tensors``), which
    refuses tensors with a weakref, and the fake-tensor converter's memo holds a weakref to every
    fake tensor an operator returns. While adapters are created the memo is a plain dict (strong
    references, no weakrefs); it is dropped afterwards, before any memory is tracked.
    """
    converter = fake_mode.fake_tensor_converter.meta_converter
    original = converter.tensor_memo
    converter.tensor_memo = {}  # type: ignore[assignment]
    try:
        yield
    finally:
        converter.tensor_memo = original


_FORWARD_PHASES = ("prefill", "decode", "forward")


class _TraceHooks:
    """Records each phase's peak; ``setup`` work counts as live memory but never as a peak."""

    def __init__(self, tracker: _Tracker) -> None:
        self.tracker = tracker
        self.phase_peaks: dict[str, int] = {}
        self.best: tuple[int, str, str | None, dict[str, int]] | None = None
        self.holders: dict[str, list[tuple[str, int]]] = {}
        self.order: list[str] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t = self.tracker
        if name.startswith(_FORWARD_PHASES):
            # MemTracker refuses a second call of the root module without a reset.
            t.reset_mod_stats()
        t.reset_peak()
        yield
        peak, breakdown = t.peak()
        self.phase_peaks[name] = peak
        self.order.append(name)
        if self.best is None or peak > self.best[0]:
            self.best = (peak, name, t.peak_module, breakdown)
        if name.startswith(_FORWARD_PHASES):
            self.holders[name] = self._holders()

    @contextlib.contextmanager
    def setup(self, name: str) -> Iterator[None]:
        self.tracker.reset_mod_stats()
        yield
        self.tracker.reset_mod_stats()

    def _holders(self, top: int = 10) -> list[tuple[str, int]]:
        """Leaf modules by parameter bytes plus bytes their forward left alive."""
        t = self.tracker
        stats = list(t.memory_tracking.values())
        names = [s.mod_fqn for s in stats]
        out: list[tuple[str, int]] = []
        for s in stats:
            if any(n.startswith(s.mod_fqn + ".") for n in names):
                continue  # not a leaf
            pre = s.snapshots.get(_mt._ModState.PRE_FW)
            post = s.snapshots.get(_mt._ModState.POST_FW)
            retained = 0
            if pre and post:
                before = sum(d[_mt._TOTAL_KEY] for d in pre[0].values())
                after = sum(d[_mt._TOTAL_KEY] for d in post[0].values())
                retained = max(0, after - before)
            out.append((s.mod_fqn, int(getattr(s, "parameter_mem", 0)) + retained))
        out.sort(key=lambda x: -x[1])
        return out[:top]

    def holders_for(self, phase: str) -> list[tuple[str, int]]:
        if phase in self.holders:
            return self.holders[phase]
        index = self.order.index(phase)
        for previous in reversed(self.order[:index]):
            if previous in self.holders:
                return self.holders[previous]
        return []


# --------------------------------------------------------------------------------------------
# Model cache: building a 7B model on fake tensors costs ~1 s; reuse it across workloads.

_CACHE_SIZE = 4
_model_cache: OrderedDict[tuple[str, ...], tuple[Any, _runner.BuiltModel]] = OrderedDict()


def clear_cache() -> None:
    """Drop the cached fake models."""
    _model_cache.clear()


def _fake_device() -> str:
    return "cuda" if torch.backends.cuda.is_built() else "cpu"


def _base_model(config: Mapping[str, Any], workload: Workload, device: str, init: str,
                real_values: bool = False) -> tuple[Any, _runner.BuiltModel, bool]:
    """(fake mode, built base model, reused) from the LRU cache when the method is full.

    ``real_values``: a fake mode whose tensors carry real twins (never cached)."""
    key = (
        json.dumps(dict(config), sort_keys=True, default=str),
        _runner.weight_dtype(config, workload) if workload.method != "qlora" else "bfloat16",
        workload.attn_implementation,
        device,
        init,
        f"{workload.head}:{workload.num_labels}",
    )
    cacheable = workload.method == "full" and not real_values
    if cacheable and key in _model_cache:
        _model_cache.move_to_end(key)
        fake_mode, built = _model_cache[key]
        return fake_mode, _runner.BuiltModel(model=built.model, weight_dtype=built.weight_dtype,
                                              fallbacks=list(built.fallbacks)), True
    with torch._functorch.config.patch(fake_tensor_propagate_real_tensors=real_values):
        fake_mode = FakeTensorMode(allow_non_fake_inputs=False)
    # Some models move or cast submodules while they are built (``Module.to``/``.float()`` in __init__).
    with _swappable_params(fake_mode):
        built = _runner.build_base_model(config, workload, device=device, init=init, fake_mode=fake_mode)
    if cacheable:
        _model_cache[key] = (fake_mode, built)
        while len(_model_cache) > _CACHE_SIZE:
            _model_cache.popitem(last=False)
    return fake_mode, built, False


def _storage_bytes(tensors: Any) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            continue  # optimizer "step" counters live on the host
        st = t.untyped_storage()
        if id(st) in seen:
            continue
        seen.add(id(st))
        total += math.ceil(st.nbytes() / _BLOCK_BYTES) * _BLOCK_BYTES
    return total


def _cache_tensors(cache: Any) -> list[torch.Tensor]:
    """Every tensor a decoding cache holds: keys and values, and the conv/recurrent states of
    linear-attention and SSM layers; a model's own state (tuples of tensors) as well."""
    out: list[torch.Tensor] = []
    if isinstance(cache, torch.Tensor):
        return [cache]
    if isinstance(cache, (list, tuple)):
        for item in cache:
            out.extend(_cache_tensors(item))
        return out
    layers = getattr(cache, "layers", None)
    holders = list(layers) if isinstance(layers, (list, tuple)) else [cache]
    for holder in holders:
        for value in vars(holder).values():
            if isinstance(value, torch.Tensor):
                out.append(value)
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
                out.extend(value)
    return out


def trace_workload(config: Mapping[str, Any], workload: Workload, *, init: str = "skip",
                   use_cache: bool = True) -> TraceResult:
    """Trace ``workload`` on the transformers model built from ``config``, on fake tensors.

    Inference traces ``"prefill"`` and ``"decode"`` (the last decode step, see
    :func:`hf_gpu_estimator._runner.run_inference`); training traces two optimizer steps
    (``"forward@1"`` … ``"optimizer_step@2"``; step 2 runs with the optimizer states resident),
    see :func:`hf_gpu_estimator._runner.run_training`.

    Args:
        config: a config.json mapping (with ``model_type``).
        workload: from :func:`hf_gpu_estimator.workload.make_workload`. Parallelism and
            quantization other than QLoRA's are not traced (one device, unquantized weights).
        init: weight initialization ("skip", or "default" for the naive benchmark).
        use_cache: reuse a fake model built for the same config, dtype and attention.

    A trace that fails on a data-dependent operator is run again with real values (see the
    module's docstring), recorded in ``fallbacks``.

    Raises:
        TraceError: unknown architecture, unsupported optimizer, or a failure while tracing.
    """
    with warnings.catch_warnings():
        # PyTorch's own warnings from inside the tracer (ModTracker: "The module hierarchy tracking maybe
        # be messed up", "Module is None. Skipping PRE_BW hook") are about its tools, and the libraries'
        # deprecations between each other (peft calling transformers' is_gradient_checkpointing) about
        # their code: neither is about the user's model, so neither is shown.
        warnings.filterwarnings("ignore", module=TORCH_MODULES)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)(\.|$)")
        try:
            return _trace_workload(config, workload, init=init, use_cache=use_cache, real_values=False)
        except TraceError as e:
            if not _is_data_dependent(e):
                raise
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(REAL_VALUES_SEED)
            return _trace_workload(config, workload, init=init, use_cache=use_cache, real_values=True)


#: The modules whose warnings a trace hides (``warnings.filterwarnings(module=...)``).
TORCH_MODULES = r"torch(\.|$)"


def _trace_workload(config: Mapping[str, Any], workload: Workload, *, init: str, use_cache: bool,
                    real_values: bool) -> TraceResult:
    start = time.perf_counter()
    fallbacks: list[str] = []
    if workload.parallelism.num_gpus > 1:
        fallbacks.append("traced on one device; parallelism is applied by the analytic model")
    if workload.quantization not in ("none", "nf4", "fp4") or (workload.quantization != "none" and workload.method != "qlora"):
        fallbacks.append(f"quantization {workload.quantization!r} not traced: weights traced unquantized")
    if workload.is_training and workload.gradient_checkpointing and workload.use_reentrant:
        fallbacks.append("reentrant checkpointing: torch's ModTracker loses the module hierarchy in the nested "
                         "backward, and the tensors of each recompute stay tracked after step 1 (the traced phases "
                         "grow step by step), so phases after step 1 read high; step 1's backward is the reference "
                         "(tests/test_exact.py)")
    if workload.is_training:
        # Fail before building anything.
        if workload.optimizer.name not in _runner.SUPPORTED_OPTIMIZERS:
            _runner.make_optimizer([], workload)
    device = _fake_device()
    emulate_amp = device != "cuda"
    if emulate_amp:
        fallbacks.append("CPU-only torch build: traced on fake CPU tensors with CUDA's SDPA kernel choice, "
                         "CUDA autocast op lists and 512-byte allocation rounding emulated")
    if not use_cache:
        clear_cache()
    if real_values:
        _real_values_guard(config, workload)
        init = "random" if init == "skip" else init
    fake_mode, built, reused = _base_model(config, workload, device, init, real_values)
    fallbacks.extend(built.fallbacks)
    model = built.model
    try:
        with fake_mode, _swappable_params(fake_mode):
            _runner.apply_method(built, workload)
        model = built.model
        semantics = _CudaSemantics()
        tracker = _Tracker(device)
        hooks = _TraceHooks(tracker)
        kv_bytes = opt_bytes = None
        with contextlib.ExitStack() as stack:
            if emulate_amp:
                stack.enter_context(_round_all_devices())
            stack.enter_context(_grad_hooks_on_reachable_tensors())
            stack.enter_context(fake_mode)
            real_mode = _RealValues(fake_mode) if real_values else None
            if real_mode is not None:
                stack.enter_context(real_mode)  # below the tracker: it sees what this mode makes
            tracker.track_external(model)
            if workload.is_training:
                amp = _runner.torch_dtype(workload.precision.compute_dtype)
                recompute_amp = amp if (emulate_amp and workload.precision.mixed) else None
                optimizer, _ = _runner.prepare_training(
                    model, workload,
                    checkpoint_context_fn=lambda: (contextlib.nullcontext(), semantics.recompute(recompute_amp)),
                )
                tracker.track_external(optimizer)
                stack.enter_context(semantics)
                stack.enter_context(tracker)
                _runner.run_training(
                    model, optimizer, workload, hooks, device=device,
                    amp_context=(lambda: semantics.autocast(amp, cache=True)) if emulate_amp else None,
                )
                opt_bytes = _storage_bytes(v for s in optimizer.state.values() for v in s.values())
                del optimizer
            else:
                stack.enter_context(semantics)
                stack.enter_context(tracker)
                cache = _runner.run_inference(model, workload, hooks, device=device, real_decode=False)
                kv_bytes = _storage_bytes(_cache_tensors(cache))
                del cache
        if hooks.best is None:
            raise TraceError("no phase was traced")
        peak, phase_at_peak, module_at_peak, breakdown = hooks.best
        if opt_bytes is not None and "optimizer" in breakdown:
            # MemTracker files everything allocated inside optimizer.step() as optimizer state;
            # what exceeds the resident states is the step's temporaries.
            extra = breakdown["optimizer"] - min(breakdown["optimizer"], opt_bytes)
            breakdown["optimizer"] -= extra
            breakdown["temporaries"] = breakdown.get("temporaries", 0) + extra
        if real_mode is not None:
            answered = ", ".join(f"{op} x{n}" for op, n in sorted(real_mode.answered.items()))
            weights = f"random weights N(0, {_runner.RANDOM_INIT_STD})" if init == "random" else f"{init} weights"
            fallbacks.append(
                f"data-dependent operators answered from real values ({answered or 'none'}): fake tensors "
                f"carried real CPU twins, {weights} and token ids under seed {REAL_VALUES_SEED}, so "
                "data-dependent splits (MoE routing) follow those values"
            )
        if semantics.grouped_mm_stand_ins:
            fallbacks.append("MoE grouped_mm on float32 traced with a shape-only stand-in (torch's meta kernel is bf16-only)")
        n_params = sum(p.numel() for p in model.parameters())
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad) if workload.is_training else 0
        return TraceResult(
            peak_bytes=peak,
            phase_at_peak=phase_at_peak,
            module_at_peak=module_at_peak,
            phase_peaks=dict(hooks.phase_peaks),
            breakdown_at_peak={k: v for k, v in breakdown.items() if v},
            top_holders=tuple(hooks.holders_for(phase_at_peak)),
            fallbacks=tuple(dict.fromkeys(fallbacks)),
            trace_seconds=time.perf_counter() - start,
            device=device,
            weight_dtype=built.weight_dtype,
            parameters=n_params,
            trainable_parameters=n_train,
            kv_cache_bytes=kv_bytes,
            optimizer_state_bytes=opt_bytes,
            attention_backends=dict(semantics.backends),
        )
    except TraceError:
        raise
    except (RuntimeError, ValueError, TypeError, NotImplementedError, AttributeError, IndexError) as e:
        clear_cache()  # a half-run model may hold hooks or grads
        raise TraceError(f"tracing {config.get('model_type')!r} failed: {type(e).__name__}: {e}") from e
    finally:
        if workload.method == "full" and model is not None:
            _runner.reset_model(model, workload)
