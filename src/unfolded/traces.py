"""Layer traces of trained or untrained encoders on chosen test sequences, as tensors and as tidy rows:
what the energy-curve stage (:mod:`unfolded.curves`) and the train stage (:mod:`unfolded.runs`) record.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .models import LayerTrace
from .training import DivergenceError, SequenceClassifier

__all__ = ["chance_accuracy", "energy_parameters", "layer_trace", "parameter_changes"]


def energy_parameters(module: torch.nn.Module) -> dict[str, list[torch.Tensor]]:
    """The effective W, Wf (after its parametrisation) and B of every unfolded layer; {} otherwise."""
    layers = getattr(module.encoder, "layers", [])
    if not layers or not hasattr(layers[0], "ffn_weight"):
        return {}
    with torch.no_grad():
        return {
            "W": [layer.W.detach().cpu().double().clone() for layer in layers],
            "Wf": [layer.ffn_weight().detach().cpu().double().clone() for layer in layers],
            "B": [layer.B.detach().cpu().double().clone() for layer in layers],
        }


def parameter_changes(before: dict[str, list[torch.Tensor]], module: torch.nn.Module) -> dict[str, float]:
    """``|p_after - p_before| / |p_before|`` (Frobenius) of the effective W, Wf and B, averaged over
    layers (one layer when tied); NaN for models without an energy (standard Transformers)."""
    after = energy_parameters(module)
    changes = {}
    for name in ("W", "Wf", "B"):
        if name not in before:
            changes[f"change_{name}"] = math.nan
            continue
        ratios = [float((a - b).norm() / b.norm().clamp_min(1e-300)) for a, b in zip(after[name], before[name], strict=True)]
        changes[f"change_{name}"] = float(np.mean(ratios))
    return changes


def chance_accuracy(labels: torch.Tensor) -> float:
    """Accuracy of always predicting the most frequent class of ``labels``."""
    return float(torch.bincount(labels).max()) / len(labels)


def _chunks(sequences, indices: list[int], budget: float = 2.5e7) -> list[list[int]]:
    """Batches of ``indices`` whose ``(b, n, n)`` Gram matrices stay below ``budget`` entries."""
    chunks, chunk, longest = [], [], 0
    for i in indices:
        longest_if_added = max(longest, len(sequences[i]))
        if chunk and (len(chunk) + 1) * longest_if_added**2 > budget:
            chunks.append(chunk)
            chunk, longest_if_added = [], len(sequences[i])
        chunk.append(i)
        longest = longest_if_added
    chunks.append(chunk)
    return chunks


@torch.no_grad()
def layer_trace(module: SequenceClassifier, data, split: str, indices: list[int], num_layers: int | None = None,
                substeps: bool = True):
    """:class:`unfolded.models.LayerTrace` of the chosen sequences, evaluated in float64 on the CPU (with
    ``substeps``, also every energy of :data:`unfolded.models.SUBSTEP_ENERGIES` of an unfolded encoder)."""
    from .data import collate

    module = module.eval().cpu().double()
    sequences, labels = data.splits[split]
    traces = []
    for chunk in _chunks(sequences, indices):
        batch = collate([(sequences[i], labels[i]) for i in chunk])
        if batch["inputs"].is_floating_point():
            batch["inputs"] = batch["inputs"].double()
        traces.append(module.encoder.trace(module.embed(batch), batch["mask"], num_layers=num_layers, substeps=substeps))
    fields = [f for f in LayerTrace.__dataclass_fields__ if f != "substeps"]
    trace = LayerTrace(*(torch.cat([getattr(t, f) for t in traces]) for f in fields),
                       substeps={key: tuple(torch.cat([t.substeps[key][i] for t in traces]) for i in (0, 1))
                                 for key in traces[0].substeps})
    for name in ("energies", "before", "after", "spread"):
        values = getattr(trace, name)
        if not torch.isfinite(values).all():
            raise DivergenceError(f"non-finite {name} in {int((~torch.isfinite(values)).sum())} entries")
    return trace
