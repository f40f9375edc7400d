"""Rendering: estimates and specs as plain-text tables (data on stdout, never arithmetic here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.constants import (  # noqa: F401  (COMMON_GPUS: re-exported)
    COMMON_GPUS,
    DEFAULT_MARGIN,
    HOURS_PER_MONTH,
    GiB,
    MiB,
)
from hf_gpu_estimator.memory.terms import COMPONENTS

if TYPE_CHECKING:
    from hf_gpu_estimator.estimator import Estimate
    from hf_gpu_estimator.exact import Comparison, Difference
    from hf_gpu_estimator.hardware import GPU
    from hf_gpu_estimator.measure import MeasureReport
    from hf_gpu_estimator.spec import Architecture, ModelSpec
    from hf_gpu_estimator.suggest import Suggestion
    from hf_gpu_estimator.verdict import Verdict


def gib(nbytes: float) -> str:
    """Bytes as GiB with two decimals (binary units, as torch and nvidia-smi count)."""
    return f"{nbytes / GiB:,.2f} GiB"


def _table(rows: list[tuple[str, ...]], *, header: tuple[str, ...] | None = None) -> str:
    """Aligned plain-text columns: numbers right-aligned, words left-aligned (see :func:`_numeric_columns`)."""
    all_rows = ([header] if header else []) + rows
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
    numeric = _numeric_columns(Section(header=header, rows=tuple(rows)))
    lines = []
    for n, row in enumerate(all_rows):
        cells = [cell.rjust(w) if num else cell.ljust(w) for cell, w, num in zip(row, widths, numeric)]
        lines.append("  ".join(cells).rstrip())
        if header and n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
    body = _table(rows, header=(f"per device, peak at {mem.phase_at_peak}", "memory"))
    tail = []
    if est.gpu is not None:
        tail.append("\n" + verdict_line(est.verdict()))
    return "\n".join(head) + body + "\n".join(tail)


def gib_range(low: float, high: float) -> str:
    """``17.20–18.04 GiB``: a range of bytes in GiB."""
    return f"{low / GiB:,.2f}–{high / GiB:,.2f} GiB"


def signed_gib(nbytes: float) -> str:
    return ("+" if nbytes >= 0 else "-") + gib(abs(nbytes))


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
            parts.append("gradient checkpointing")
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


def render_spec(spec: ModelSpec) -> str:
    text = _table(_spec_rows(spec))
    if spec.assumptions:
        text += "\n\nnotes:\n" + "\n".join(f"  - {a}" for a in spec.assumptions)
    return text


def _spec_rows(spec: ModelSpec) -> list[tuple[str, str]]:
    arch = spec.architecture
    rows = [
        ("id", spec.id),
        ("parameters", f"{spec.parameters.total:,}"),
    ]
    if spec.parameters.active != spec.parameters.total:
        rows.append(("active per token", f"{spec.parameters.active:,}"))
    for role, n in spec.parameters.by_role.items():
        if n:
            rows.append((f"  {role}", f"{n:,}"))
    rows.append(("stored dtype", spec.stored_dtype))
    if spec.checkpoint_bytes is not None:
        rows.append(("checkpoint", gib(spec.checkpoint_bytes)))
    if spec.quantization is not None:
        q = spec.quantization
        rows.append(("quantization", f"{q.method} {q.bits:g}-bit" + (f", group {q.group_size}" if q.group_size else "")))
    if arch is not None:
        rows += [
            ("model type", arch.model_type + (" (generic family)" if arch.derivation == "generic" else "")),
            ("layers", str(arch.num_layers) + _layer_mix(arch)),
            ("hidden / intermediate", f"{arch.hidden_size} / {arch.intermediate_size}"),
            ("heads / kv heads / head dim", f"{arch.num_attention_heads} / {arch.num_key_value_heads} / {arch.head_dim}"),
            ("vocab", f"{arch.vocab_size:,}" + (" (tied)" if arch.tie_word_embeddings else "")),
        ]
        if arch.is_moe:
            rows.append(("experts", f"{arch.num_experts} ({arch.num_experts_per_tok} active)"))
        if arch.sliding_layers:
            rows.append(("sliding-window layers", f"{arch.sliding_layers} (window {arch.sliding_window})"))
        if arch.is_mla:
            rows.append(("MLA ranks (q / kv)", f"{arch.q_lora_rank} / {arch.kv_lora_rank}"))
    rows.append(("facts from", ", ".join(f"{k}: {v}" for k, v in spec.provenance.items())))
    return rows


def _layer_mix(arch: Architecture) -> str:
    """' (30 linear + 10 full attention)' for a model whose layers differ; empty for a uniform one."""
    counts: dict[str, int] = {}
    for layer, n in arch.layer_groups:
        kinds = "+".join(m.kind for m in layer.mixers)
        counts[kinds] = counts.get(kinds, 0) + n
    if len(counts) < 2:
        return ""
    return " (" + " + ".join(f"{n} {kind}" for kind, n in counts.items()) + ")"


# --------------------------------------------------------------------------- formats: text, rich, markdown
#
# Every command builds a list of Sections (plain strings, computed by the API) and one renderer
# turns them into plain text, a rich table (colour, on a terminal) or GitHub markdown.

#: The formats of ``--format`` other than json.
TEXT_FORMATS: tuple[str, ...] = ("table", "markdown", "text")
_STYLES = {"ok": "bold green", "warn": "bold yellow", "bad": "bold red", "dim": "dim", "total": "bold"}
_MARKS = {"ok": "✓ ", "warn": "~ ", "bad": "✗ "}
#: The row style of each verdict.
VERDICT_STYLES = {"fits": "ok", "tight": "warn", "does not fit": "bad", "would not start": "bad"}


@dataclass(frozen=True, kw_only=True)
class Section:
    """One titled table of display strings, with optional lines under it.

    ``row_styles`` names a style per row (``"ok"``, ``"bad"``, ``"total"``, ``"dim"`` or ``None``):
    colour in rich, a mark in markdown, nothing in plain text.
    """

    title: str | None = None
    header: tuple[str, ...] | None = None
    rows: tuple[tuple[str, ...], ...] = ()
    row_styles: tuple[str | None, ...] = ()
    notes: tuple[str, ...] = ()


def gpu_label(gpu: GPU) -> str:
    """``RTX-4090 (24 GB)``: the name and the marketed memory as the vendor writes it.

    Vendors write "24 GB" for 24 GiB of HBM/GDDR (the catalog stores ``memory_bytes`` in binary
    units), so the marketed figure is ``memory_bytes / 2**30`` labelled GB.
    """
    return f"{gpu.name} ({gpu.memory_bytes / GiB:.0f} GB)"


def rich_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None


def render_sections(sections: list[Section], fmt: str = "text") -> str:
    """Sections as ``"text"`` (aligned columns), ``"markdown"`` (GitHub tables), ``"html"`` (notebooks)
    or ``"table"`` (rich, as text)."""
    if fmt == "markdown":
        return _markdown(sections)
    if fmt == "html":
        return _html(sections)
    if fmt == "table" and rich_available():
        return _rich_text(sections, width=120)
    return _plain(sections)


def _rich_text(sections: list[Section], *, width: int) -> str:
    """The rich tables as plain text ``width`` columns wide, without the padding rich leaves at line ends."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    for renderable in _rich(sections):
        console.print(renderable)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines())


def print_sections(sections: list[Section], fmt: str = "table", *, file: Any = None) -> None:
    """Print sections to ``file`` (stdout): rich with colour on a terminal when ``fmt == "table"``."""
    import sys

    out = file if file is not None else sys.stdout
    if fmt == "table" and rich_available():
        from rich.console import Console

        console = Console(file=out)
        if console.is_terminal:
            for renderable in _rich(sections):
                console.print(renderable)
            return
        # Piped: wide enough that no header or number wraps, and no padding at the ends of lines.
        out.write(_rich_text(sections, width=max(console.width, 160)) + "\n")
        return
    out.write(render_sections(sections, "markdown" if fmt == "markdown" else "text") + "\n")


def _plain(sections: list[Section]) -> str:
    parts = []
    for s in sections:
        lines = [s.title] if s.title else []
        if s.rows:
            lines.append(_table(list(s.rows), header=s.header))
        lines += list(s.notes)
        parts.append("\n".join(lines))
    return "\n\n".join(p for p in parts if p)


def _numeric_columns(s: Section) -> list[bool]:
    """Right-align a column (after the first) when every filled cell is a number: "12.55 GiB", "+9.48", "$3.78"."""
    def number(cell: str) -> bool:
        text = cell.strip().lstrip("+-$")
        return not cell.strip() or text[:1].isdigit()

    return [i > 0 and all(number(row[i]) for row in s.rows) for i in range(len(s.rows[0]))]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(sections: list[Section]) -> str:
    parts = []
    for s in sections:
        lines = [f"**{_md_cell(s.title)}**", ""] if s.title else []
        if s.rows:
            header = s.header or tuple("" for _ in s.rows[0])
            lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            lines.append("|" + "|".join("---:" if num else ":---" for num in _numeric_columns(s)) + "|")
            for n, row in enumerate(s.rows):
                style = s.row_styles[n] if n < len(s.row_styles) else None
                cells = [_md_cell(c) for c in row]
                if style in _MARKS:
                    cells[-1] = _MARKS[style] + cells[-1]
                if style == "total":
                    cells = [f"**{c}**" if c.strip() else c for c in cells]
                lines.append("| " + " | ".join(cells) + " |")
        if s.notes:
            if s.rows:
                lines.append("")
            lines += [f"- {_md_cell(n)}" for n in s.notes] if s.rows else [_md_cell(n) for n in s.notes]
        parts.append("\n".join(lines))
    return "\n\n".join(p for p in parts if p)


def _html(sections: list[Section]) -> str:
    """Sections as HTML tables (Jupyter's ``_repr_html_``): numbers right-aligned, verdict rows coloured."""
    from html import escape

    colours = {"ok": "#1a7f37", "warn": "#9a6700", "bad": "#cf222e"}
    parts = []
    for s in sections:
        if s.title:
            parts.append(f"<p><b>{escape(s.title)}</b></p>")
        if s.rows:
            numeric = _numeric_columns(s)
            head = "".join(f"<th style='text-align:{'right' if numeric[i] else 'left'}'>{escape(h)}</th>"
                           for i, h in enumerate(s.header or ()))
            body = []
            for n, row in enumerate(s.rows):
                style = s.row_styles[n] if n < len(s.row_styles) else None
                css = f" style='color:{colours[style]}'" if style in colours else ""
                weight = "font-weight:bold;" if style == "total" else ""
                cells = "".join(f"<td style='{weight}text-align:{'right' if numeric[i] else 'left'};white-space:nowrap'>"
                                f"{escape(c)}</td>" for i, c in enumerate(row))
                body.append(f"<tr{css}>{cells}</tr>")
            parts.append("<table>" + (f"<thead><tr>{head}</tr></thead>" if head else "") + "<tbody>" + "".join(body)
                         + "</tbody></table>")
        if s.notes:
            parts.append("".join(f"<div>{escape(n)}</div>" for n in s.notes))
    return "\n".join(parts)


def _rich(sections: list[Section]) -> list[Any]:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    for s in sections:
        if s.rows:
            table = Table(title=s.title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                          show_header=s.header is not None, header_style="bold cyan")
            numeric = _numeric_columns(s)
            for i, name in enumerate(s.header or tuple("" for _ in s.rows[0])):
                table.add_column(name, justify="right" if numeric[i] else "left", overflow="fold")
            for n, row in enumerate(s.rows):
                style = s.row_styles[n] if n < len(s.row_styles) else None
                table.add_row(*row, style=_STYLES.get(style or "", None))
            out.append(table)
        elif s.title:
            out.append(Text(s.title, style="bold"))
        for note in s.notes:
            out.append(Text(note, style="dim" if note.startswith(("note", "assumption", "skipped", "  ")) else ""))
    return out


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


def spec_sections(spec: ModelSpec) -> list[Section]:
    """``hfge inspect`` as one section (the rows of :func:`render_spec`)."""
    rows = _spec_rows(spec)
    notes = tuple(f"note: {a}" for a in spec.assumptions)
    return [Section(title=spec.id, header=("fact", "value"), rows=tuple(rows), notes=notes)]


# --------------------------------------------------------------------------- the other commands' sections


def size(nbytes: int) -> str:
    """GiB, or MiB below 1 GiB (the tiny configs of CPU runs)."""
    return gib(nbytes) if abs(nbytes) >= GiB else f"{nbytes / MiB:,.1f} MiB"


def size_or_dash(nbytes: int | None) -> str:
    return "-" if nbytes is None else size(nbytes)


def percent(value: float | None) -> str:
    """A relative error as ``+1.2%``; ``-`` when there is none."""
    return "-" if value is None else f"{value * 100:+.1f}%"


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """``hfge inspect --format json``: ``parameters`` at the top level."""
    import dataclasses

    arch = dataclasses.asdict(spec.architecture) if spec.architecture is not None else None
    return {
        "id": spec.id,
        "parameters": spec.parameters.total,
        "active_parameters": spec.parameters.active,
        "parameters_by_role": dict(spec.parameters.by_role),
        "stored_dtype": spec.stored_dtype,
        "checkpoint_bytes": spec.checkpoint_bytes,
        "checkpoint_bytes_by_dtype": dict(spec.checkpoint_bytes_by_dtype),
        "quantization": dataclasses.asdict(spec.quantization) if spec.quantization else None,
        "architecture": arch,
        "provenance": dict(spec.provenance),
        "revision": spec.revision,
        "source": spec.source_url,
        "assumptions": list(spec.assumptions),
    }


def gpu_sections(gpus: Sequence[GPU]) -> list[Section]:
    """``hfge gpus``: one row per catalog entry."""
    rows = []
    for g in gpus:
        bf16 = g.peak_flops.get("bf16")
        price = f"${g.price_per_hour_usd:.2f}/h" if g.price_per_hour_usd else "-"
        rows.append((g.name, g.vendor, f"{g.usable_memory_bytes / GiB:.1f} GiB",
                     f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s",
                     f"{bf16 / 1e12:.0f} TFLOP/s" if bf16 else "-", price))
    return [Section(header=("gpu", "vendor", "memory", "bandwidth", "bf16 dense", "price"), rows=tuple(rows))]


def plan_sections(p: Any) -> list[Section]:
    """``hfge plan --gpu``: a :class:`~hf_gpu_estimator.planner.Plan` as fact/value rows."""
    v = p.verdict
    if v is not None:
        needs = (gib(v.needs_bytes) if v.needs_low_bytes == v.needs_high_bytes
                 else gib_range(v.needs_low_bytes, v.needs_high_bytes))
        basis = (f"{gib(v.limit_bytes)} usable ({v.margin:.0%} kept free)" if v.engine_starts is None
                 else f"{gib(v.limit_bytes)} the engine may use")
        fits_text = f"{v.verdict}: needs {needs} per device of {basis}"
    else:
        fits_text = f"{'yes' if p.fits else 'no'}: needs {gib_range(*_range(p.device_total_bytes, p.workload))} per device"
    on = p.deployment.describe() if p.deployment is not None else p.gpu.name
    rows: list[tuple[str, str]] = [
        ("gpu", f"{p.gpu.name} ({p.gpu.usable_memory_bytes / GiB:.1f} GiB usable)"),
        ("deployment", on),
        ("fits", fits_text),
    ]
    if p.serving is not None:
        s = p.serving
        name = {"vllm": "vLLM", "sglang": "SGLang", "llama.cpp": "llama.cpp", "transformers": "transformers"}.get(
            s.engine, s.engine)
        rows += [(f"{name} KV cache", f"{s.kv_cache_tokens:,} tokens ({s.kv_pool_bytes / GiB:.1f} GiB"
                                      + (f", {s.num_blocks:,} blocks of {s.block_size})" if s.block_size > 1 else ")")),
                 ("max batch size (concurrent seqs)", f"{p.max_batch_size} at max_model_len {s.max_model_len:,}"
                  + ("" if p.fits else f" ({name} would not start)")),
                 ("largest max_model_len", f"{s.largest_max_model_len:,}")]
    else:
        rows += [("max batch size", str(p.max_batch_size)), ("max seq len", str(p.max_seq_len))]
    rows.append(("min GPUs", p.min_gpus.description if p.min_gpus else "none tried fits"))
    from hf_gpu_estimator.perf import InferenceSpeed

    sp = p.speed
    if isinstance(sp, InferenceSpeed):
        rows += [("TTFT", f"{sp.ttft_seconds * 1e3:.1f} ms ({sp.prefill_bound}-bound)"),
                 ("TPOT", f"{sp.tpot_seconds * 1e3:.2f} ms ({sp.decode_bound}-bound)"),
                 ("decode", f"{sp.decode_tokens_per_s:,.0f} tokens/s at batch {sp.batch_size}")]
    elif sp is not None:
        rows += [("training", f"{sp.tokens_per_s:,.0f} tokens/s, {sp.step_seconds:.2f} s/step")]
    if p.hourly_usd is not None:
        cost = f"${p.hourly_usd:.2f}/h"
        if p.usd_per_million_output_tokens is not None:
            cost += f", ${p.usd_per_million_output_tokens:.2f} per 1M output tokens"
        rows.append(("cost", cost))
    launch = p.launch if p.fits else (p.min_gpus.verdict.launch if p.min_gpus and p.min_gpus.verdict else None)
    if launch is not None:
        rows.append(("launch" if p.fits else f"launch ({p.min_gpus.num_gpus} GPUs)", launch.command))
        extra = launch.extra
        for key in ("lightning", "training_arguments"):
            if key in extra:
                rows.append((key.replace("_", " "), ", ".join(f"{k}={v!r}" for k, v in extra[key].items())))
    styles = [("ok" if p.fits else "bad") if name == "fits" else None for name, _ in rows]
    return [Section(title=f"{p.gpu.name}: plan", rows=tuple(rows), row_styles=tuple(styles),
                    notes=tuple(f"note: {n}" for n in p.notes))]


def catalog_sections(result: Any, *, verbose: bool = False) -> list[Section]:
    """``hfge plan MODEL`` without ``--gpu``: one row per GPU type, fewest GPUs and cheapest first; the
    types on which nothing tried fits in one closing line (``verbose``: each with its reason)."""
    rows, styles = [], []
    left_out = [r for r in result.rows if r.min_gpus is None]
    for r in result.rows:
        if r.min_gpus is None:
            continue
        m = r.min_gpus
        split = m.description.split(", ", 1)[1] if ", " in m.description else m.description
        rows.append((r.gpu.name, f"{r.gpu.usable_memory_bytes / GiB:.0f} GiB", r.verdict.verdict, str(m.num_gpus),
                     split, "-" if r.hourly_usd is None else f"${r.hourly_usd:.2f}"))
        styles.append(VERDICT_STYLES[r.verdict.verdict])
    what = (f"{result.engine} at max_model_len {result.max_model_len:,}" if result.engine and result.max_model_len
            else "as the framework runs it")
    notes = [f"verdict on 1 GPU; 'gpus': the fewest on which it starts and fits ({what}); "
             "hfge plan MODEL --gpu NAME for the launch command"]
    if left_out:
        notes.append(f"{len(left_out)} GPU types fit at none of the splits tried"
                     + ("" if verbose else "; --verbose lists them"))
        if verbose:
            notes += [f"  {r.gpu.name}: {r.reason}" for r in left_out]
    return [Section(title="Every GPU type: fewest GPUs first, then cheapest",
                    header=("gpu", "memory", "on 1 GPU", "gpus", "split", "$/hour"), rows=tuple(rows),
                    row_styles=tuple(styles), notes=tuple(notes))]


def _range(total_bytes: int, workload: Any) -> tuple[int, int]:
    from hf_gpu_estimator.verdict import uncertainty_for

    u = uncertainty_for(workload)
    return u.low_bytes(total_bytes), u.high_bytes(total_bytes)


def cheapest_sections(result: Any, *, verbose: bool = False) -> list[Section]:
    """``hfge plan --cheapest``: the options, cheapest first, then one line on what was skipped (``verbose``:
    every GPU type skipped and why)."""
    rows = []
    serving = result.kind == "serving"
    for o in result.options:
        d = o.to_dict()
        if serving:
            rows.append((o.gpu, str(o.num_gpus), f"tp{o.tp}" + (f" pp{o.pp}" if o.pp > 1 else ""), str(o.replicas),
                         str(o.batch_size), f"{d['tpot_ms']:.1f}", f"{d['ttft_ms']:.0f}", f"${o.hourly_usd:.2f}",
                         f"${o.usd_per_million_output_tokens:.3f}"))
        else:
            rows.append((o.gpu, str(d["num_gpus"]), str(d["strategy"]), f"{d['tokens_per_s']:,.0f}",
                         f"{o.hours:.1f}", f"${o.hourly_usd:.2f}", f"${o.total_usd:,.0f}"))
    if serving:
        header: tuple[str, ...] = ("gpu", "gpus", "split", "replicas", "batch", "TPOT ms", "TTFT ms", "$/hour",
                                   "$/1M out")
    else:
        header = ("gpu", "gpus", "strategy", "tokens/s", "hours", "$/hour", "total $")
    notes: list[str] = []
    if serving and result.max_model_len:
        notes.append(f"{result.engine} at max_model_len {result.max_model_len:,}: only splits that start are ranked")
    best = result.options[0] if result.options else None
    launch = None if best is None else best.launch if serving else (best.launch.command if best.launch else None)
    if launch is not None:
        notes.append("launch: " + launch)
    line = result.skipped_note(verbose=verbose)
    if line:
        notes.append(line)
    if verbose:
        notes += [f"  {s.gpu}: {s.reason}" for s in result.skipped]
    styles = ("ok",) + (None,) * (len(rows) - 1) if rows else ()
    return [Section(title="Cheapest options, cheapest first", header=header, rows=tuple(rows), row_styles=styles,
                    notes=tuple(notes))]


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
    notes += [a for a in exact.assumptions if a.startswith(("exact:", "trace:"))]
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


def _token_count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def eval_sections(plan: Any) -> list[Section]:
    """``hfge plan MODEL --eval ...``: per-task demand and the totals of an :class:`~hf_gpu_estimator.planner.evals.EvalPlan`."""
    rows = []
    styles: list[str | None] = []
    for t in plan.tasks:
        rows.append((t.task + ("*" if t.tokens_estimated else ""), str(t.num_fewshot), t.kind, f"{t.requests:,}",
                     f"{t.forwards:,}", f"{t.prompt_tokens:,.0f}", _token_count(t.processed_tokens),
                     _token_count(t.generated_tokens), str(t.batch_size), _duration(t.seconds)))
        styles.append(None)
    d = plan.to_dict()["total"]
    rows.append(("total", "", "", f"{d['requests']:,}", f"{d['forwards']:,}", "", _token_count(d["processed_tokens"]),
                 _token_count(d["generated_tokens"]), "", _duration(d["seconds"])))
    styles.append("total")
    cost = f"${plan.cost_usd:,.2f}" if plan.cost_usd is not None else "no price"
    summary = [("engine", plan.engine), ("GPUs", f"{plan.num_gpus} x {plan.gpu}"),
               ("weights per device", f"{plan.weights_bytes / GiB:.1f} GiB"),
               ("memory per device", f"{plan.device_total_bytes / GiB:.1f} GiB")]
    if plan.kv_cache_tokens is not None:
        summary.append(("vLLM KV cache", f"{plan.kv_cache_tokens:,} tokens"))
    summary += [("wall time", _duration(plan.seconds)), ("GPU-hours", f"{plan.gpu_hours:.2f}"),
                ("$/hour", f"${plan.hourly_usd:.2f}" if plan.hourly_usd is not None else "no price"), ("cost", cost)]
    notes = ["* token lengths estimated (see data/eval_suites.json tokens_basis)"] if any(
        t.tokens_estimated for t in plan.tasks) else []
    notes += list(plan.assumptions)
    return [Section(title=f"{plan.model}: evaluation on {plan.num_gpus} x {plan.gpu} ({plan.engine})",
                    header=("task", "shots", "scoring", "requests", "forwards", "prompt tok", "processed",
                            "generated", "batch", "time"), rows=tuple(rows), row_styles=tuple(styles)),
            Section(title="Totals", rows=tuple(summary), notes=tuple(notes))]


def eval_ranking_section(ranked: Any) -> Section:
    """``hfge plan MODEL --eval ... --cheapest``: the GPU types by the cost of the whole evaluation."""
    rows = tuple((p.gpu, str(p.num_gpus), _duration(p.seconds), f"{p.gpu_hours:.2f}", f"${p.hourly_usd:.2f}",
                  f"${p.cost_usd:,.2f}") for p in ranked.options)
    notes = (f"skipped {len(ranked.skipped)} GPU types",) if ranked.skipped else ()
    return Section(title="GPU types, cheapest first", header=("gpu", "gpus", "wall time", "GPU-hours", "$/hour", "cost"),
                   rows=rows, row_styles=("ok",) + (None,) * (len(rows) - 1), notes=notes)


def eval_list_sections(suites: Mapping[str, Any], tasks: Mapping[str, Any]) -> list[Section]:
    """``hfge plan --eval-list``: the suites and tasks of the evaluation data (``planner.eval_suites()``,
    ``planner.eval_tasks()``)."""
    suite_rows = [(name, s.title, ", ".join(t + (f":{k}" if k is not None else "") for t, k in s.tasks))
                  for name, s in suites.items()]
    rows = tuple((t.name, t.suite, f"{t.examples:,}", str(t.num_fewshot), t.kind,
                  "estimate" if t.tokens_estimated else "measured") for t in tasks.values())
    return [Section(title="Evaluation suites (--eval NAME, or all)", header=("suite", "title", "tasks"),
                    rows=tuple(suite_rows)),
            Section(title="Tasks", header=("task", "suite", "examples", "shots", "scoring", "token lengths"), rows=rows)]


def fleet_sections(result: Any) -> list[Section]:
    """``hfge plan --fleet FILE``: one table per model and a total (GPUs by type, $/hour, $/month)."""
    sections = []
    for e in result.entries:
        if e.error:
            sections.append(Section(title=f"{e.model} ({e.kind})", rows=(("error", e.error),), row_styles=("bad",)))
            continue
        best = (e.serving or e.training).best.to_dict()  # type: ignore[union-attr]
        if e.kind == "serving":
            s = e.serving
            rows = (("traffic", f"{s.request_rate_per_s:g} req/s, {s.input_tokens} -> {s.output_tokens} tokens"),
                    ("GPUs", f"{best['num_gpus']} x {best['gpu']} (tp {best['tp']}, {best['replicas']} replicas)"),
                    ("batch per replica", f"{best['batch_size']} ({e.serving.best.limit})"),
                    ("TPOT / TTFT", f"{best['tpot_ms']:.1f} ms / {best['ttft_ms']:.0f} ms"),
                    ("$/hour", f"${best['hourly_usd']:.2f}"),
                    ("$/month", f"${best['hourly_usd'] * HOURS_PER_MONTH:,.0f}"),
                    ("$/1M output tokens", f"${best['usd_per_million_output_tokens']:.3f}"))
        else:
            rows = (("token budget", f"{e.training.token_budget:.3g} tokens"),
                    ("GPUs", f"{best['num_gpus']} x {best['gpu']} ({best['strategy']})"),
                    ("throughput", f"{best['tokens_per_s']:,.0f} tokens/s"), ("hours", f"{best['hours']:.1f}"),
                    ("$/hour", f"${best['hourly_usd']:.2f}"), ("total", f"${best['total_usd']:,.0f}"))
        sections.append(Section(title=f"{e.model} ({e.kind})", rows=rows))
    total = [(g, str(n)) for g, n in sorted(result.gpus.items())]
    total += [("serving $/hour", f"${result.hourly_usd:,.2f}"),
              ("serving $/month", f"${result.hourly_usd * HOURS_PER_MONTH:,.0f}")]
    if result.training_usd:
        total.append(("training jobs $", f"${result.training_usd:,.0f}"))
    failed = sum(1 for e in result.entries if e.error)
    notes = (f"{failed} entries could not be planned (see above)",) if failed else ()
    sections.append(Section(title="Fleet total: serving GPUs by type, $/hour, $/month", rows=tuple(total),
                            row_styles=("total",) * len(total), notes=notes))
    return sections
