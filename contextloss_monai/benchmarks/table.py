"""The benchmarks' printed tables: one Markdown layout (the rows quoted in the docs) and one plain-text layout
(aligned columns for the terminal), from the same header and already formatted cells."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["markdown_row", "format_table"]


def markdown_row(cells: Sequence[object]) -> str:
    """One Markdown table row, ``| a | b |``."""
    return "| " + " | ".join(map(str, cells)) + " |"


def _is_number(cell: str) -> bool:
    """A number, a ratio such as ``2.5x``, or ``—`` (no value) in a column of numbers."""
    if cell == "—":
        return True
    try:
        float(cell.rstrip("x×"))
    except ValueError:
        return False
    return True


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool) -> str:
    """A benchmark's table as text.

    Args:
        header: the column names.
        rows: one sequence of cells per row, each as it should be printed (numbers already formatted), as many as
            ``header``.
        markdown: a Markdown table (header, ``|---|`` rule, rows), as docs/benchmarks.md quotes it; otherwise
            aligned plain-text columns, numbers right-aligned and text left-aligned.

    Raises:
        ValueError: a row with another number of cells than ``header``.
    """
    cells = [[str(cell) for cell in row] for row in rows]
    for row in cells:
        if len(row) != len(header):
            raise ValueError(f"rows must have {len(header)} cells like the header {list(header)}, got {row}.")
    if markdown:
        return "\n".join([markdown_row(header), "|" + "---|" * len(header)] + [markdown_row(row) for row in cells])
    columns = list(zip(header, *cells)) if cells else [(name,) for name in header]
    widths = [max(map(len, column)) for column in columns]
    numeric = [bool(cells) and all(_is_number(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if right else cell.ljust(w) for cell, w, right in zip(row, widths, numeric)).rstrip()

    return "\n".join([line(list(header))] + [line(row) for row in cells])
