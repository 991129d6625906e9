"""Sentences about Figures 1-4, computed from their synthetic tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..figures import alternating_trend

__all__ = ["figures_block"]


def figures_block(data: Path, kappas: list[float]) -> str:
    """Sentences about Figures 1, 3 and 4, computed from their tables (``data``: results/data; ``kappas``:
    Figure 4's panels, config synthetic.kappa.kappas)."""
    lines = []
    alternating = pd.read_parquet(data / "alternating.parquet")
    trace = alternating[alternating["kind"] == "trace"].sort_values("step")
    exact = float(alternating.loc[alternating["kind"] == "exact_minimum", "total"].iloc[0])
    trend = alternating_trend(trace, exact)
    lines.append(
        f"- `code` Figure 3 (the authors' setting): {trend['rises']} of {trend['steps']} alternating steps raise the total "
        f"energy; its lowest value comes at step {trend['argmin_step']} of {trend['last_step']}; over the last 40 steps it "
        f"is {'still falling' if trend['still_falling'] else 'not falling'}"
        + (f", with a rise/fall pattern of period {trend['period']}" if trend["period"] else "")
        + f"; it {'reaches' if trend['reaches_minimum'] else 'does not reach'} the exact minimum {exact:,.2f} "
        f"(smallest gap {trend['min_gap']:.3g} in log units).")
    apollonius = pd.read_parquet(data / "apollonius.parquet")
    parts = []
    for _, g in apollonius.groupby("panel", sort=True):
        parts.append(f"C = {g['C'].iloc[0]:g}: {int(g['rise'].sum()):,} of {len(g):,} grid points, "
                     f"{int((g['rise'] & g['inside']).sum())} inside the region")
    lines.append("- `derived` Figure 1, grid points where one h-step raised f + h: " + "; ".join(parts) + ".")
    kappa = pd.read_parquet(data / "kappa.parquet")
    quadrant = (kappa["x1"] >= 0) & (kappa["x2"] >= 0)
    shares = [f"kappa = {k:g}: {100 * float((kappa.loc[quadrant, 'r'] >= -k).mean()):.1f}%"
              for k in sorted(kappas)]
    lines.append(f"- `derived` Figure 4, share of the quadrant x >= 0 ({int(quadrant.sum()):,} grid points) where the ReLU "
                 f"step keeps a 1 - kappa share of the decrease: {', '.join(shares)}.")
    return "\n".join(lines)
