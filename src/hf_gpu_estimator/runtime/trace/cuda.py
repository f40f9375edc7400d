"""CUDA semantics on a CPU build: CUDA autocast's op lists and weight-cast cache, and SDPA's kernel choice."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.overrides import TorchFunctionMode



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


class CudaSemantics(TorchFunctionMode):
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
        if func is torch.nn.functional.cross_entropy and self.amp_dtype is not None:
            return self._cross_entropy(*args, **kwargs)
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

    def _cross_entropy(self, input: torch.Tensor, target: torch.Tensor, weight: Any = None, size_average: Any = None,
                       ignore_index: int = -100, reduce: Any = None, reduction: str = "mean",
                       label_smoothing: float = 0.0) -> torch.Tensor:
        """``F.cross_entropy`` under CUDA autocast, as its ATen composite runs below the autocast key.

        CUDA autocast has no entry for ``cross_entropy_loss`` (ATen/autocast_mode.h): the composite
        (aten/src/ATen/native/LossNLL.cpp ``cross_entropy_loss_symint``) calls ``log_softmax(self, class_dim,
        self.scalar_type())``, whose explicit dtype keeps autocast's fp32_set_opt_dtype policy from upcasting it,
        then ``nll_loss``, on autocast's fp32 list, which casts the log-probabilities to an fp32 copy that its
        backward keeps (derivatives.yaml ``nll_loss_forward``: ``self`` is saved). So a 16-bit input gives 16-bit
        log-probabilities and an fp32 copy of them (the emulation's torch-function mode sees only the Python call,
        not the composite's inner operators). Class-index targets without label smoothing (what transformers'
        ``CrossEntropyLoss()`` calls pass); other forms run unchanged."""
        if (input.dtype not in _HALF or target.is_floating_point() or label_smoothing > 0
                or size_average is not None or reduce is not None):
            return torch.nn.functional.cross_entropy(input, target, weight, size_average, ignore_index, reduce,
                                                     reduction, label_smoothing)
        class_dim = 0 if input.dim() == 1 else 1
        log_probs = torch.log_softmax(input, class_dim, dtype=input.dtype)
        return torch.nn.functional.nll_loss(log_probs.to(torch.float32), target, self._cast(weight, torch.float32),
                                            ignore_index=ignore_index, reduction=reduction)

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
