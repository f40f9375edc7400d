"""Value objects of the memory model: a term with its formula, a moment of the timeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Bytes per element of the dtypes the memory model handles (torch names).
BYTES: Mapping[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1,
                            "int8": 1, "uint8": 1}

#: The components a moment is made of, in display order. They add up to the allocated total.
COMPONENTS: tuple[str, ...] = (
    "weights", "gradients", "optimizer_states", "activations", "kv_cache", "transient", "workspace",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Term:
    """One memory term: its bytes per device and where the formula comes from.

    ``low``/``high`` bound the value where the term is uncertain (``None``: exact).
    """

    component: str
    name: str
    bytes: int
    formula: str
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True, kw_only=True)
class Moment:
    """Memory allocated at one point of the timeline, by component."""

    phase: str
    components: Mapping[str, int]
    note: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(self.components.values())


@dataclass(frozen=True, kw_only=True)
class MemoryEstimate:
    """Per-device memory of one workload.

    ``allocated_peak_bytes`` is comparable with ``torch.cuda.max_memory_allocated()``,
    ``reserved_peak_bytes`` with ``torch.cuda.max_memory_reserved()``, and
    ``device_total_bytes`` with the used memory nvidia-smi reports for the process.
    ``components`` is the breakdown at the peak moment and adds up to ``allocated_peak_bytes``.
    """

    allocated_peak_bytes: int
    reserved_peak_bytes: int
    device_total_bytes: int
    allocated_low_bytes: int
    allocated_high_bytes: int
    components: Mapping[str, int]
    phase_at_peak: str
    moments: tuple[Moment, ...]
    terms: tuple[Term, ...]
    num_devices: int
    cuda_context_bytes: int
    allocator_overhead_bytes: int
    host_offload_bytes: int = 0
    #: Training: the allocated peak of the *first* step, before optimizer states exist (what
    #: max_memory_allocated shows after one step); the steady-state peak is allocated_peak_bytes.
    first_step_allocated_bytes: int | None = None
    assumptions: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "allocated_peak_bytes": self.allocated_peak_bytes,
            "reserved_peak_bytes": self.reserved_peak_bytes,
            "device_total_bytes": self.device_total_bytes,
            "allocated_range_bytes": [self.allocated_low_bytes, self.allocated_high_bytes],
            "components": dict(self.components),
            "phase_at_peak": self.phase_at_peak,
            "num_devices": self.num_devices,
            "cuda_context_bytes": self.cuda_context_bytes,
            "allocator_overhead_bytes": self.allocator_overhead_bytes,
            "host_offload_bytes": self.host_offload_bytes,
            "first_step_allocated_bytes": self.first_step_allocated_bytes,
            "moments": [{"phase": m.phase, "total_bytes": m.total_bytes, **dict(m.components)} for m in self.moments],
            "terms": [
                {"component": t.component, "name": t.name, "bytes": t.bytes, "formula": t.formula,
                 **({"low": t.low, "high": t.high} if t.low is not None else {})}
                for t in self.terms
            ],
        }  # fmt: skip
