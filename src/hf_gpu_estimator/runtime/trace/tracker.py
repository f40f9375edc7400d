"""The memory tracker: MemTracker rounded as the CUDA caching allocator, with the peak's phase and holders."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.autograd import graph as _autograd_graph
from torch.distributed._tools import mem_tracker as _mt
from torch.distributed._tools import mod_tracker as _mod_tracker



#: CUDA caching allocator block granularity (kMinBlockSize = 512 bytes).
BLOCK_BYTES = 512

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




# The memory tracker.


class Tracker(_mt.MemTracker):
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
def round_all_devices() -> Iterator[None]:
    """Round every tracked storage to 512 bytes, not only CUDA ones (CPU-only builds trace on CPU)."""
    original = _mt._WeakRefInfo._calculate_mem_consumed

    def rounded(self: Any) -> int:
        mem = self.size * self.element_size
        return math.ceil(mem / BLOCK_BYTES) * BLOCK_BYTES

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
def grad_hooks_on_reachable_tensors() -> Iterator[None]:
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
def swappable_params(fake_mode: FakeTensorMode) -> Iterator[None]:
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


class TraceHooks:
    """Records each phase's peak; ``setup`` work counts as live memory but never as a peak."""

    def __init__(self, tracker: Tracker) -> None:
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
