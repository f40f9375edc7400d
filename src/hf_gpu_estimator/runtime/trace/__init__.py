"""Exact mode: run the real transformers model on fake tensors under torch's memory tracker.

The model is built from its config with ``FakeTensorMode`` (no memory, no compute: every
tensor carries only shape, dtype and device) and the workload's phases are driven by
:mod:`hf_gpu_estimator.runtime.phases`, the same code measure mode runs on a GPU. Memory is counted
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
  (:class:`CudaSemantics`: CUDA's op lists from ATen/autocast_mode.h and its weight-cast
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
  (:class:`RealValues`): every fake tensor carries a real CPU twin (torch's
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from hf_gpu_estimator.errors import TraceError
from hf_gpu_estimator.runtime.build import RANDOM_INIT_STD, BuiltModel, build_base_model
from hf_gpu_estimator.runtime.dtypes import torch_dtype, weight_dtype
from hf_gpu_estimator.runtime.methods import apply_method
from hf_gpu_estimator.runtime.optimizers import SUPPORTED_OPTIMIZERS, make_optimizer
from hf_gpu_estimator.runtime.phases import prepare_training, reset_model, run_inference, run_training
from hf_gpu_estimator.runtime.trace.cuda import CudaSemantics
from hf_gpu_estimator.runtime.trace.real_values import (
    REAL_VALUES_SEED,
    RealValues,
    is_data_dependent,
    real_values_guard,
)
from hf_gpu_estimator.runtime.trace.tracker import (
    BLOCK_BYTES,
    TraceHooks,
    Tracker,
    grad_hooks_on_reachable_tensors,
    round_all_devices,
    swappable_params,
)
from hf_gpu_estimator.workload import Workload


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


# Model cache: building a 7B model on fake tensors costs ~1 s; reuse it across workloads.

_CACHE_SIZE = 4
_model_cache: OrderedDict[tuple[str, ...], tuple[Any, BuiltModel]] = OrderedDict()


def clear_cache() -> None:
    """Drop the cached fake models."""
    _model_cache.clear()


def fake_device() -> str:
    """Where the fake tensors live: "cuda" on a CUDA build of torch, else "cpu" (see the module's docstring)."""
    return "cuda" if torch.backends.cuda.is_built() else "cpu"


def _base_model(config: Mapping[str, Any], workload: Workload, device: str, init: str,
                real_values: bool = False) -> tuple[Any, BuiltModel, bool]:
    """(fake mode, built base model, reused) from the LRU cache when the method is full.

    ``real_values``: a fake mode whose tensors carry real twins (never cached)."""
    key = (
        json.dumps(dict(config), sort_keys=True, default=str),
        weight_dtype(config, workload) if workload.method != "qlora" else "bfloat16",
        workload.attn_implementation,
        device,
        init,
        f"{workload.head}:{workload.num_labels}",
    )
    cacheable = workload.method == "full" and not real_values
    if cacheable and key in _model_cache:
        _model_cache.move_to_end(key)
        fake_mode, built = _model_cache[key]
        return fake_mode, BuiltModel(model=built.model, weight_dtype=built.weight_dtype,
                                      fallbacks=list(built.fallbacks)), True
    with torch._functorch.config.patch(fake_tensor_propagate_real_tensors=real_values):
        fake_mode = FakeTensorMode(allow_non_fake_inputs=False)
    # Some models move or cast submodules while they are built (``Module.to``/``.float()`` in __init__).
    with swappable_params(fake_mode):
        built = build_base_model(config, workload, device=device, init=init, fake_mode=fake_mode)
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
        total += math.ceil(st.nbytes() / BLOCK_BYTES) * BLOCK_BYTES
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
    :func:`hf_gpu_estimator.runtime.phases.run_inference`); training traces two optimizer steps
    (``"forward@1"`` … ``"optimizer_step@2"``; step 2 runs with the optimizer states resident),
    see :func:`hf_gpu_estimator.runtime.phases.run_training`.

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
            return trace_once(config, workload, init=init, use_cache=use_cache, real_values=False)
        except TraceError as e:
            if not is_data_dependent(e):
                raise
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(REAL_VALUES_SEED)
            return trace_once(config, workload, init=init, use_cache=use_cache, real_values=True)


#: The modules whose warnings a trace hides (``warnings.filterwarnings(module=...)``).
TORCH_MODULES = r"torch(\.|$)"


def trace_once(config: Mapping[str, Any], workload: Workload, *, init: str, use_cache: bool,
               real_values: bool) -> TraceResult:
    """One attempt of :func:`trace_workload`, on plain fake tensors or (``real_values``) with real twins."""
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
        if workload.optimizer.name not in SUPPORTED_OPTIMIZERS:
            make_optimizer([], workload)
    device = fake_device()
    emulate_amp = device != "cuda"
    if emulate_amp:
        fallbacks.append("CPU-only torch build: traced on fake CPU tensors with CUDA's SDPA kernel choice, "
                         "CUDA autocast op lists and 512-byte allocation rounding emulated")
    if not use_cache:
        clear_cache()
    if real_values:
        real_values_guard(config, workload)
        init = "random" if init == "skip" else init
    fake_mode, built, reused = _base_model(config, workload, device, init, real_values)
    fallbacks.extend(built.fallbacks)
    model = built.model
    try:
        with fake_mode, swappable_params(fake_mode):
            apply_method(built, workload)
        model = built.model
        semantics = CudaSemantics()
        tracker = Tracker(device)
        hooks = TraceHooks(tracker)
        kv_bytes = opt_bytes = None
        with contextlib.ExitStack() as stack:
            if emulate_amp:
                stack.enter_context(round_all_devices())
            stack.enter_context(grad_hooks_on_reachable_tensors())
            stack.enter_context(fake_mode)
            real_mode = RealValues(fake_mode) if real_values else None
            if real_mode is not None:
                stack.enter_context(real_mode)  # below the tracker: it sees what this mode makes
            tracker.track_external(model)
            if workload.is_training:
                amp = torch_dtype(workload.precision.compute_dtype)
                recompute_amp = amp if (emulate_amp and workload.precision.mixed) else None
                optimizer, _ = prepare_training(
                    model, workload,
                    checkpoint_context_fn=lambda: (contextlib.nullcontext(), semantics.recompute(recompute_amp)),
                )
                tracker.track_external(optimizer)
                stack.enter_context(semantics)
                stack.enter_context(tracker)
                run_training(
                    model, optimizer, workload, hooks, device=device,
                    amp_context=(lambda: semantics.autocast(amp, cache=True)) if emulate_amp else None,
                )
                opt_bytes = _storage_bytes(v for s in optimizer.state.values() for v in s.values())
                del optimizer
            else:
                stack.enter_context(semantics)
                stack.enter_context(tracker)
                cache = run_inference(model, workload, hooks, device=device, real_decode=False)
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
            weights = f"random weights N(0, {RANDOM_INIT_STD})" if init == "random" else f"{init} weights"
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
            reset_model(model, workload)
