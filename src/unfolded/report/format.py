"""Number and table formatting shared by the renderers."""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["compact_table", "epochs_cell", "fmt", "lr_cell", "optional_table", "p_text", "pct", "range_text"]


def pct(value: float) -> str:
    """A share as a percentage with one decimal; ``n/a`` for a missing value."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def fmt(value: float, digits: int = 3) -> str:
    """A number with ``digits`` decimals; empty for a missing value."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def p_text(value: float) -> str:
    """A p-value as the prose quotes it."""
    if math.isnan(value):
        return "p n/a"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def range_text(values: pd.Series, percent: bool = True) -> str:
    """``12-47%`` (or ``0.120-0.470``), a single value when both ends print the same."""
    low, high = float(values.min()), float(values.max())
    if percent:
        return f"{100 * low:.0f}%" if round(100 * low) == round(100 * high) else f"{100 * low:.0f}-{100 * high:.0f}%"
    return f"{low:.3f}" if f"{low:.3f}" == f"{high:.3f}" else f"{low:.3f}-{high:.3f}"


def lr_cell(lr: float, grid: str) -> str:
    """The pick and its grid; a pick at an end of a grid of three or more is marked: the best rate
    may lie outside the grid."""
    if math.isnan(lr):
        return "C on validation"
    values = [float(v) for v in str(grid).split("/") if v]
    edge = len(values) >= 3 and lr in (min(values), max(values))
    return f"{lr:g} ({grid}{', at an end' if edge else ''})"


def epochs_cell(row: dict) -> str:
    """Mean epochs trained and how many of the seeds ran to the epoch cap: ``16.4 (2/5)``."""
    mean, at_cap = row.get("epochs_mean", math.nan), row.get("epochs_at_cap", math.nan)
    if mean is None or math.isnan(mean):
        return ""
    return f"{mean:.1f}" + ("" if at_cap is None or math.isnan(at_cap) else f" ({int(at_cap)}/{int(row['seeds'])})")


def compact_table(frame: pd.DataFrame) -> str:
    """A Markdown pipe table without column padding (the README's headline blocks: GitHub renders it
    the same, and it keeps the README short); numbers right-aligned."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|")

    align = ["---:" if pd.api.types.is_numeric_dtype(frame[column]) else ":--" for column in frame.columns]
    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def optional_table(path) -> pd.DataFrame:
    """An archive's CSV table that may be absent or empty: an empty frame then."""
    from pathlib import Path

    path = Path(path)
    return pd.read_csv(path) if path.exists() and path.read_text().strip() else pd.DataFrame()
