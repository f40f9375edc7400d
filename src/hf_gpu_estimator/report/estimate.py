"""An :class:`~hf_gpu_estimator.estimator.Estimate` as tables: the breakdown, the range, the fits per GPU,
the suggestions; ``--compare`` (analytic vs exact) and the dtype x quantization grid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hf_gpu_estimator.constants import DEFAULT_MARGIN
from hf_gpu_estimator.exact import TRACE_KEY
from hf_gpu_estimator.memory.terms import COMPONENTS
from hf_gpu_estimator.report.gpus import gpu_label
from hf_gpu_estimator.report.render import (
    VERDICT_STYLES,
    Section,
    gib,
    gib_range,
    percent,
    plain_table,
    signed_gib,
    size,
)
from hf_gpu_estimator.verdict import key_of

if TYPE_CHECKING:
    from hf_gpu_estimator.estimator import Estimate
    from hf_gpu_estimator.exact import Comparison, Difference
    from hf_gpu_estimator.hardware import GPU
    from hf_gpu_estimator.spec import ModelSpec
    from hf_gpu_estimator.suggest import Suggestion
    from hf_gpu_estimator.verdict import Verdict


def render_table(est: Estimate) -> str:
    spec, mem = est.spec, est.memory
    head = [
        f"{spec.id}  ({spec.parameters.total:,} parameters, {spec.stored_dtype})",
        workload_line(est),
        "",
    ]
    rows = [(name.replace("_", " "), gib(mem.components.get(name, 0))) for name in COMPONENTS
            if mem.components.get(name, 0)]
    rows.append(("allocated peak", gib(mem.allocated_peak_bytes)))
    rows.append(("  range", f"{gib(mem.allocated_low_bytes)} - {gib(mem.allocated_high_bytes)}"))
    rows.append(("reserved peak", gib(mem.reserved_peak_bytes)))
    rows.append(("device total (nvidia-smi)", gib(mem.device_total_bytes)))
    rows.append(("  measured range", gib_range(*est.device_total_range_bytes)))
    body = plain_table(rows, header=(f"per device, peak at {mem.phase_at_peak}", "memory"))
    tail = []
    if est.gpu is not None:
        tail.append("\n" + verdict_line(est.verdict()))
    return "\n".join(head) + body + "\n".join(tail)

def verdict_line(v: Verdict) -> str:
    """``fits: needs 17.20–18.04 GiB of 22.80 GiB (RTX-4090: 24.00 GiB less 5 %), 4.76 GiB to spare at the high end``:
    the needs against the same limit the headroom is computed from."""
    spare = (f"{gib(v.headroom_bytes)} to spare" if v.headroom_bytes >= 0 else f"{gib(-v.headroom_bytes)} short")
    why = f"; {v.problem}" if v.problem else ""
    return (f"{v.verdict}: needs {gib_range(v.needs_low_bytes, v.needs_high_bytes)} of {gib(v.limit_bytes)} "
            f"({v.name}: {gib(v.usable_bytes)} less {v.margin:.0%}), {spare} at the high end{why}")

def _served_by_llamacpp(est: Estimate) -> bool:
    from hf_gpu_estimator.memory.llamacpp import is_llamacpp

    return not est.workload.is_training and is_llamacpp(est.spec, est.workload.quantization)

def workload_line(est: Estimate) -> str:
    """The workload in one line: task, batch, tokens, dtype or precision, attention, quantization, split
    (llama.cpp: its -c, -np and -ngl instead of torch's attention path)."""
    w = est.workload
    if _served_by_llamacpp(est):
        ctx = w.batch_size * (w.seq_len + w.new_tokens)
        ngl = "all" if w.gpu_layers is None else str(w.gpu_layers)
        return (f"llama.cpp inference, {w.seq_len} prompt + {w.new_tokens} new tokens, {w.quantization}, "
                f"-c {ctx} -np {w.batch_size} -ngl {ngl}")
    if w.is_training:
        parts = [f"training ({w.method})", f"batch {w.batch_size} x {w.seq_len} tokens", w.precision.name,
                 w.optimizer.name]
        if w.gradient_checkpointing:
            parts.append("gradient checkpointing" + (", inputs offloaded" if w.activation_offloading else ""))
    else:
        parts = ["inference", f"batch {w.batch_size}", f"{w.seq_len} prompt + {w.new_tokens} new tokens",
                 w.dtype or est.spec.stored_dtype]
    parts.append(w.attn_implementation)
    if w.quantization != "none":
        parts.append(w.quantization)
    p = w.parallelism
    if p.num_gpus > 1:
        parts.append(f"{p.num_gpus} GPUs ({p.strategy}, tp={p.tp}, pp={p.pp})")
    return ", ".join(parts)

def estimate_sections(est: Estimate, *, gpus: tuple[GPU, ...] = (), suggestions: tuple[Suggestion, ...] = (),
                      suggestions_for: GPU | None = None) -> list[Section]:
    """An estimate as sections: the breakdown (GiB), totals with their range, fits per GPU, suggestions."""
    spec, mem = est.spec, est.memory
    head = Section(title=f"{spec.id}  ({spec.parameters.total:,} parameters, {spec.stored_dtype})",
                   notes=(workload_line(est),))
    allocated = mem.allocated_peak_bytes or 1
    rows: list[tuple[str, ...]] = []
    styles: list[str | None] = []
    for name in COMPONENTS:
        value = mem.components.get(name, 0)
        if value:
            rows.append((name.replace("_", " "), gib(value), f"{100 * value / allocated:.0f} %"))
            styles.append(None)
    if _served_by_llamacpp(est):  # llama.cpp's own words: its buffers, not torch's allocator
        rows += [
            ("GPU buffers (model + KV + compute, as llama.cpp logs them)", gib(mem.allocated_peak_bytes), "100 %"),
            ("  range", gib_range(mem.allocated_low_bytes, mem.allocated_high_bytes), ""),
            ("device total (nvidia-smi: buffers + CUDA context)", gib(mem.device_total_bytes), ""),
            ("  measured range", gib_range(*est.device_total_range_bytes), ""),
        ]
        styles += ["total", "dim", "total", "dim"]
    else:
        rows += [
            ("allocated peak (torch max_memory_allocated)", gib(mem.allocated_peak_bytes), "100 %"),
            ("  range", gib_range(mem.allocated_low_bytes, mem.allocated_high_bytes), ""),
            ("reserved peak (torch max_memory_reserved)", gib(mem.reserved_peak_bytes), ""),
            ("device total (nvidia-smi, with CUDA context)", gib(mem.device_total_bytes), ""),
            ("  measured range", gib_range(*est.device_total_range_bytes), ""),
        ]
        styles += ["total", "dim", None, "total", "dim"]
    devices = mem.num_devices
    title = f"Memory per device, peak during {mem.phase_at_peak}" + (f" ({devices} devices)" if devices > 1 else "")
    memory = Section(title=title, header=("component", "memory", "share"), rows=tuple(rows), row_styles=tuple(styles))
    sections = [head, memory]
    if gpus:
        verdicts = [est.verdict(g) for g in gpus]
        fit_rows = tuple((gpu_label(g), gib(v.limit_bytes), gib_range(v.needs_low_bytes, v.needs_high_bytes),
                          signed_gib(v.headroom_bytes), v.verdict) for g, v in zip(gpus, verdicts))
        fit_styles = tuple(VERDICT_STYLES[v.verdict] for v in verdicts)
        margin = verdicts[0].margin
        sections.append(Section(title=f"Fits per GPU: the high end of the range vs usable memory less {margin:.0%}",
                                header=("gpu", f"usable - {margin:.0%}", "needs (range)", "headroom", "verdict"),
                                rows=fit_rows, row_styles=fit_styles,
                                notes=(f"range: {verdicts[0].basis}",)))
    if suggestions_for is not None:
        if suggestions:
            sections.append(Section(
                title=f"To fit {gpu_label(suggestions_for)}, each re-estimated",
                header=("change", "flags", "device total", "high end"),
                rows=tuple((s.title, s.flags, gib(s.device_total_bytes), gib(s.device_total_high_bytes))
                           for s in suggestions)))
        else:
            sections.append(Section(notes=((f"no single change we model fits {suggestions_for.name}: "
                                            "try a larger GPU, or `hfge plan MODEL --cheapest`"),)))
    if est.assumptions:
        sections.append(Section(notes=((f"{len(est.assumptions)} assumptions: --format json lists them; "
                                        "docs/methodology.md explains each term"),)))
    return sections

def compare_sections(spec: ModelSpec, analytic: Estimate, exact: Estimate, diff: Comparison) -> list[Section]:
    """``hfge estimate --compare``: analytic and exact side by side, per component and in total."""

    def line(name: str, d: Difference) -> tuple[str, ...]:
        delta = d.difference_bytes
        # "n/a" where the exact figure shows as zero: a percentage of (next to) nothing says nothing.
        error = "n/a" if size(d.exact_bytes) == size(0) else percent(d.relative_error)
        return (name, size(d.analytic_bytes), size(d.exact_bytes), ("+" if delta >= 0 else "-") + size(abs(delta)), error)

    rows = [line(name, d) for name, d in diff.components.items()]
    rows += [line("allocated peak", diff.allocated_peak), line("reserved peak", diff.reserved_peak),
             line("device total", diff.device_total)]
    styles = (None,) * len(diff.components) + ("total", None, None)
    notes = [f"peak phase: analytic {diff.analytic_phase!r}, exact {diff.exact_phase!r}",
             "error = analytic / exact - 1"]
    notes += [a for a in exact.assumptions if key_of(a) == TRACE_KEY]
    return [Section(title=f"{spec.id}: analytic vs exact (traced) memory per device",
                    header=("component", "analytic", "exact", "difference", "error"), rows=tuple(rows),
                    row_styles=styles, notes=tuple(notes))]

def grid_sections(ests: Sequence[Estimate], gpus: Sequence[GPU]) -> list[Section]:
    """``--dtype a,b --quantization x,y``: one row per combination, the verdict per GPU in the last columns."""
    first = ests[0]
    rows = []
    for est in ests:
        w, mem = est.workload, est.memory
        rows.append((w.dtype or f"{est.spec.stored_dtype} (checkpoint)", w.quantization,
                     gib(mem.components.get("weights", 0)), gib(mem.allocated_peak_bytes),
                     gib_range(*est.device_total_range_bytes), *(est.verdict(g).verdict for g in gpus)))
    per_row = {first.workload.dtype or first.spec.stored_dtype, first.workload.quantization}
    line = ", ".join(part for part in workload_line(first).split(", ") if part not in per_row)
    return [Section(title=f"{first.spec.id}  ({first.spec.parameters.total:,} parameters)", notes=(line,)),
            Section(title="Memory per device by dtype and quantization",
                    header=("dtype", "quantization", "weights", "allocated peak", "device total (range)",
                            *(g.name for g in gpus)), rows=tuple(rows),
                    notes=(f"verdict: the high end of the range vs usable memory less {DEFAULT_MARGIN:.0%}",))]
