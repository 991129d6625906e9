"""Counting rules that turn energy trajectories into the project's headline shares.

Every share in ``energy_summary.csv``, the accuracy table and the figure titles is computed here,
with the tolerances defined once below.

* A step **rises** when ``after > before + DESCENT_TOLERANCE * (1 + |before|)``; it is
  **non-increasing** otherwise.
* A step **strictly decreases** when ``after < before - DESCENT_TOLERANCE * (1 + |before|)``.
* A state is **collapsed** when its relative token spread (the largest distance of a real token
  from its sequence's masked mean, divided by the same quantity at layer 0) is below
  ``COLLAPSE_THRESHOLD``; a step is **active** when it starts from a non-collapsed state.

Steps are judged on one function: the energy of the layer that takes the step, evaluated before
and after it (``E_t(Y_{t-1})`` against ``E_t(Y_t)``), which for untied layers differs from comparing
consecutive points of the plotted curve.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "COLLAPSE_THRESHOLD",
    "DESCENT_TOLERANCE",
    "active_steps",
    "collapse_layer",
    "curve_summary_row",
    "non_increasing",
    "relative_spread",
    "strict_decrease",
    "token_spread",
]

#: Relative tolerance of every descent tally over trained or untrained model trajectories.
DESCENT_TOLERANCE = 1e-9
#: Relative token spread below which a sequence counts as collapsed to one point.
COLLAPSE_THRESHOLD = 1e-3
# The thresholds of the written verdicts (near chance, weights that barely moved, significance) are
# in unfolded.thresholds: they judge results, so editing them reruns no computation.


def _margin(before: Tensor) -> Tensor:
    return DESCENT_TOLERANCE * (1.0 + before.abs())


def non_increasing(before: Tensor, after: Tensor) -> Tensor:
    """Boolean tensor: the step did not raise the energy by more than the tolerance."""
    before, after = torch.as_tensor(before, dtype=torch.float64), torch.as_tensor(after, dtype=torch.float64)
    return after <= before + _margin(before)


def strict_decrease(before: Tensor, after: Tensor) -> Tensor:
    """Boolean tensor: the step lowered the energy by more than the tolerance."""
    before, after = torch.as_tensor(before, dtype=torch.float64), torch.as_tensor(after, dtype=torch.float64)
    return after < before - _margin(before)


def token_spread(Y: Tensor, mask: Tensor | None = None) -> Tensor:
    """Largest distance of a real token from its sequence's masked mean, ``(b,)`` for ``Y (b, n, d)``."""
    if mask is None:
        mask = torch.ones(Y.shape[:2], dtype=torch.bool, device=Y.device)
    weights = mask.unsqueeze(-1).to(Y.dtype)
    mean = (Y * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1.0)
    distance = (Y - mean).norm(dim=-1).masked_fill(~mask, 0.0)
    return distance.max(-1).values


def relative_spread(spread: Tensor) -> Tensor:
    """``spread (samples, layers + 1)`` divided by its layer-0 value, in float64."""
    spread = torch.as_tensor(spread, dtype=torch.float64)
    return spread / spread[..., :1].clamp_min(torch.finfo(torch.float64).tiny)


def active_steps(relative_spread: Tensor) -> Tensor:
    """``(samples, layers)`` boolean: the step into layer ``t + 1`` starts from a non-collapsed state.

    ``relative_spread`` has shape ``(samples, layers + 1)`` (layer 0 included)."""
    return torch.as_tensor(relative_spread, dtype=torch.float64)[:, :-1] >= COLLAPSE_THRESHOLD


def collapse_layer(relative_spread: Tensor) -> int | None:
    """The first layer at which the median relative spread falls below the threshold, or None."""
    median = torch.quantile(torch.as_tensor(relative_spread, dtype=torch.float64), 0.5, dim=0)
    below = (median < COLLAPSE_THRESHOLD).nonzero()
    return int(below[0]) if len(below) else None


def _share(flags: Tensor) -> float:
    return float(flags.double().mean()) if flags.numel() else math.nan


def curve_summary_row(before: Tensor, after: Tensor, relative_spread: Tensor,
                      attention_change: Tensor | None = None) -> dict:
    """The summary of one energy curve.

    ``before``/``after``: ``(samples, layers)`` energies of each layer's own function at its input
    and output; ``relative_spread``: ``(samples, layers + 1)``; ``attention_change``: optional
    ``(samples, layers)`` energy change of the attention sub-step alone (same function).
    """
    before = torch.as_tensor(before, dtype=torch.float64)
    after = torch.as_tensor(after, dtype=torch.float64)
    keep, strict = non_increasing(before, after), strict_decrease(before, after)
    active = active_steps(relative_spread)
    change = after - before
    row = {
        "samples": int(before.shape[0]),
        "steps": int(before.numel()),
        "monotone_fraction": _share(keep),
        "strict_fraction": _share(strict),
        "active_fraction": _share(active),
        "monotone_fraction_active": _share(keep[active]),
        "strict_fraction_active": _share(strict[active]),
        "median_decrease": float(torch.quantile(-change.reshape(-1), 0.5)),
        "max_increase": float(change.max().clamp_min(0.0)),
        "collapse_layer": collapse_layer(relative_spread),
    }
    if attention_change is not None:
        attention_change = torch.as_tensor(attention_change, dtype=torch.float64)
        total = float(-change.sum())
        row["attention_share"] = float(-attention_change.sum()) / total if total else math.nan
        row["attention_share_active"] = (
            float(-attention_change[active].sum()) / float(-change[active].sum())
            if active.any() and float(change[active].sum()) else math.nan
        )
    return row
