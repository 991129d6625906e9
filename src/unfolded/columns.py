"""The layout of the energy-curve tables, shared by the stages that write them (:mod:`unfolded.curves`,
:mod:`unfolded.runs`, :mod:`unfolded.energy_plugins`) and the one that reads them (:mod:`unfolded.summaries`):
the key and attribute columns, and :func:`trace_rows`, which turns a layer trace into rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from .diagnostics import relative_spread

if TYPE_CHECKING:
    from .models import LayerTrace

__all__ = ["CURVE_ATTRIBUTES", "CURVE_KEYS", "trace_rows"]

#: A curve: Figures 5-6's (lr NaN) or a trained run's (variant = the run's model, lr its learning rate).
CURVE_KEYS = ["dataset", "variant", "relu", "state", "seed", "lr"]
#: Per-curve attributes repeated on every row of a curve (NaN where they do not apply); predicted_classes:
#: how many classes a trained model predicts over the whole test split (1: one answer for every input).
CURVE_ATTRIBUTES = ["alpha_attention", "w_scale", "recall", "test_accuracy", "test_count", "test_loss", "chance_accuracy",
                    "change_W", "change_Wf", "change_B", "predicted_classes"]


def trace_rows(trace: LayerTrace, indices: list[int], **columns) -> pd.DataFrame:
    """Tidy rows, one per (sample, layer), of a :class:`unfolded.models.LayerTrace`.

    ``energy`` is the plotted curve; ``step_before``/``step_middle``/``step_after`` are the energies of
    the layer that produced this state, at its input, after its attention sub-step and at its
    output (NaN at layer 0); ``spread`` is the token spread and ``relative_spread`` the same divided
    by its layer-0 value; ``update`` the relative change of the state; ``<key>_before``/``<key>_after``
    each energy of :data:`unfolded.models.SUBSTEP_ENERGIES` around the step it is about (unfolded
    models only)."""
    samples, layers = trace.energies.shape
    nan_column = torch.full((samples, 1), float("nan"), dtype=torch.float64)

    def padded(values: torch.Tensor) -> np.ndarray:
        return torch.cat([nan_column, values.double()], 1).reshape(-1).numpy()

    spread = trace.spread.double()
    relative = relative_spread(spread)
    return pd.DataFrame({
        **columns,
        "sample": np.repeat(np.asarray(indices), layers),
        "layer": np.tile(np.arange(layers), samples),
        "energy": trace.energies.double().reshape(-1).numpy(),
        "step_before": padded(trace.before),
        "step_middle": padded(trace.middle),
        "step_after": padded(trace.after),
        "spread": spread.reshape(-1).numpy(),
        "relative_spread": relative.reshape(-1).numpy(),
        "update": padded(trace.update),
        **{f"{key}_{end}": padded(values[i]) for key, values in trace.substeps.items()
           for i, end in enumerate(("before", "after"))},
    })
