"""Untrained energy curves of the plug-in energies (:data:`unfolded.energies.REGISTRY`) on a dataset's
embedded test sequences: each plug-in's layer applied ``num_layers`` times (tied; one instance per
plug-in and seed, :meth:`unfolded.energies.base.Energy.curve_instance`), with each step judged on the
energy of the layer that takes it, the token spread and the effective rank per layer. One tidy table,
in the layout of the Figures 5-6 curves (:mod:`unfolded.columns`), so the energy summary counts its
steps by the same collapse-aware rules.

Energies are oriented so that the dynamics descend them: a plug-in whose dynamics ascend its energy
(``sense = "max"``) has its energy negated in ``energy``, ``step_before`` and ``step_after`` (column ``sense``
says which).
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from tqdm import tqdm

from .columns import CURVE_ATTRIBUTES, trace_rows
from .data import collate, prepare, sample_indices
from .diagnostics import token_spread
from .energies import REGISTRY
from .energies.base import sense_oriented
from .models import LayerTrace, _relative_update

__all__ = ["effective_rank", "plugin_curves", "plugin_trace"]


def effective_rank(Y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``exp`` of the entropy of the normalised singular values of each sequence's centred real tokens
    (Roy and Vetterli's effective rank), ``(b,)``: 1 for tokens on one line, 0 when every token is the same."""
    weights = mask.unsqueeze(-1).to(Y.dtype)
    mean = (Y * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1.0)
    values = torch.linalg.svdvals((Y - mean) * weights)  # (b, min(n, d))
    total = values.sum(-1, keepdim=True)
    shares = values / total.clamp_min(torch.finfo(Y.dtype).tiny)
    entropy = -(shares * torch.log(shares.clamp_min(torch.finfo(Y.dtype).tiny))).sum(-1)
    return torch.where(total.squeeze(-1) > 0, torch.exp(entropy), torch.zeros_like(entropy))


@torch.no_grad()
def plugin_trace(instance, Y: torch.Tensor, mask: torch.Tensor, num_layers: int) -> tuple[LayerTrace, torch.Tensor]:
    """The trace of ``num_layers`` steps of one plug-in instance from ``Y (b, n, d)``, as a
    :class:`unfolded.models.LayerTrace` (energies oriented; each step judged on the layer's own energy with
    ``ref`` = the step's input; no attention split), and the effective rank of each state ``(b, L + 1)``."""
    sense = type(instance).sense
    Y = instance.project(Y, mask)
    energies, before, after = [sense_oriented(sense, instance.energy(Y, mask))], [], []
    spread, rank, update = [token_spread(Y, mask)], [effective_rank(Y, mask)], []
    for _ in range(num_layers):
        following = instance.step(Y, mask)
        before.append(sense_oriented(sense, instance.energy(Y, mask, Y)))
        after.append(sense_oriented(sense, instance.energy(following, mask, Y)))
        update.append(_relative_update(Y, following, mask))
        Y = following
        energies.append(sense_oriented(sense, instance.energy(Y, mask)))
        spread.append(token_spread(Y, mask))
        rank.append(effective_rank(Y, mask))
    stack = lambda values: torch.stack(values, 1).double()  # noqa: E731
    trace = LayerTrace(energies=stack(energies), before=stack(before), middle=torch.full_like(stack(before), math.nan),
                       after=stack(after), spread=stack(spread), update=stack(update))
    for name in ("energies", "before", "after", "spread", "update"):
        values = getattr(trace, name)
        if not torch.isfinite(values).all():
            raise FloatingPointError(f"{type(instance).name}: non-finite {name} in {int((~torch.isfinite(values)).sum())} "
                                     "entries")
    return trace, stack(rank)


def _embedded(data, indices: list[int], width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test sequences as the untrained encoders of Figure 5 see them: token vectors (no positions), or
    patches through a seeded random linear projection to ``width``; float64."""
    sequences, labels = data.splits["test"]
    batch = collate([(sequences[i], labels[i]) for i in indices])
    if data.kind == "tokens":
        return data.vectors.double()[batch["inputs"]], batch["mask"]
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(data.input_dim, width, generator=generator, dtype=torch.float64) / math.sqrt(data.input_dim)
    return batch["inputs"].double() @ projection, batch["mask"]


def plugin_curves(config: dict, dataset: str, progress: bool = True) -> pd.DataFrame:
    """One curve per plug-in of ``config.energy_plugins.energies`` (every registered one when null) on
    ``samples`` test sequences of ``dataset``."""
    cfg = config["energy_plugins"]
    names = cfg["energies"] or list(REGISTRY)
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        from .config import ConfigError

        raise ConfigError(f"config.energy_plugins.energies: unknown energies {unknown}; registered: {list(REGISTRY)}")
    data = prepare(dataset, config, seed=0)  # the test split only: any train split will do
    indices = sample_indices(cfg["samples"], len(data.splits["test"][1]), cfg["seed"])
    Y, mask = _embedded(data, indices, config["train"]["width"], cfg["seed"])
    frames = []
    for name in tqdm(names, desc=f"energy plug-ins {dataset}", disable=not progress):
        plugin = REGISTRY[name]
        instance = plugin.curve_instance(Y.shape[-1], torch.Generator().manual_seed(cfg["seed"]))
        trace, rank = plugin_trace(instance, Y, mask, cfg["num_layers"])
        rows = trace_rows(trace, indices, dataset=dataset, variant=name, relu=plugin.relu, state="untrained",
                          seed=cfg["seed"], sense=plugin.sense, guarantee=plugin.guarantee)
        frames.append(rows.assign(effective_rank=rank.reshape(-1).numpy()))
    table = pd.concat(frames, ignore_index=True)
    for column in CURVE_ATTRIBUTES:
        table[column] = math.nan
    return table
