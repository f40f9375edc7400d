"""A :class:`~hf_gpu_estimator.runtime.measure.MeasureReport` (``hfge measure``): measured vs estimated."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hf_gpu_estimator.report.render import Section, percent, size, size_or_dash

if TYPE_CHECKING:
    from hf_gpu_estimator.runtime.measure import MeasureReport


def measure_sections(report: MeasureReport) -> list[Section]:
    """``hfge measure``: measured vs analytic (vs exact) memory, each with its error, and throughput."""
    m = report.measured
    a, e = report.analytic, report.exact
    rows: list[tuple[str, ...]] = []
    for label, measured, attr in (("allocated peak", m.allocated_peak_bytes, "allocated"),
                                  ("reserved peak", m.reserved_peak_bytes, "reserved"),
                                  ("device total (nvidia-smi)", report.nvml_process_bytes, "device_total")):
        key = "device_total_bytes" if attr == "device_total" else f"{attr}_peak_bytes"
        row = [label, size_or_dash(measured), size(getattr(a, key)), percent(getattr(a, f"{attr}_error"))]
        if e is not None:
            row += [size(getattr(e, key)), percent(getattr(e, f"{attr}_error"))]
        rows.append(tuple(row))
    header = ("", "measured", "analytic", "error") + (("exact", "error") if e is not None else ())
    notes = [f"command: {report.command}", "error = estimate / measured - 1"]
    if m.phase_peaks:
        notes.append(f"measured peak in {max(m.phase_peaks, key=m.phase_peaks.__getitem__)!r}; analytic peak in "
                     f"{a.phase_at_peak!r}" + (f"; exact peak in {e.phase_at_peak!r}" if e is not None else ""))
    speed = [f"{name} {value:,.0f} tokens/s" for name, value in
             (("prefill", m.prefill_tokens_per_s), ("decode", m.decode_tokens_per_s), ("train", m.train_tokens_per_s))
             if value]
    if speed:
        notes.append("throughput: " + ", ".join(speed))
    if m.allocated_peak_bytes is None:
        notes.append(f"{report.device.requested}: no allocator statistics; host peak RSS "
                     f"{size_or_dash(m.host_peak_rss_bytes)} (Python, torch and the model: not comparable)")
    if e is None:
        notes.append(f"exact: {report.exact_error}")
    v = m.versions
    notes.append("versions: " + ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "cuda", "driver") if k in v))
    return [Section(title=f"{report.model_id} on {report.device.name}: measured vs estimated", header=header,
                    rows=tuple(rows), notes=tuple(notes))]
