"""The ground floor of rendering: units, and :class:`Section` tables as plain text, markdown, HTML or rich.

Every command builds a list of Sections (display strings, computed by the API) and one renderer
turns them into plain text, a rich table (colour, on a terminal), GitHub markdown or HTML. Nothing
here knows a result type; the modules beside it turn each result into Sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_gpu_estimator.constants import GiB, MiB


def gib(nbytes: float) -> str:
    """Bytes as GiB with two decimals (binary units, as torch and nvidia-smi count)."""
    return f"{nbytes / GiB:,.2f} GiB"

def gib_range(low: float, high: float) -> str:
    """``17.20–18.04 GiB``: a range of bytes in GiB."""
    return f"{low / GiB:,.2f}–{high / GiB:,.2f} GiB"

def signed_gib(nbytes: float) -> str:
    return ("+" if nbytes >= 0 else "-") + gib(abs(nbytes))

def size(nbytes: int) -> str:
    """GiB, or MiB below 1 GiB (the tiny configs of CPU runs)."""
    return gib(nbytes) if abs(nbytes) >= GiB else f"{nbytes / MiB:,.1f} MiB"

def size_or_dash(nbytes: int | None) -> str:
    return "-" if nbytes is None else size(nbytes)

def percent(value: float | None) -> str:
    """A relative error as ``+1.2%``; ``-`` when there is none."""
    return "-" if value is None else f"{value * 100:+.1f}%"


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

def plain_table(rows: list[tuple[str, ...]], *, header: tuple[str, ...] | None = None) -> str:
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
            lines.append(plain_table(list(s.rows), header=s.header))
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
