"""Trainable encoders made of the plug-in energies (docs/energies.md, "Trained"): ``<name>_tied`` of
:data:`unfolded.registry.ENERGY_ENCODERS`.

Each layer is the plug-ins' own :meth:`unfolded.energies.Energy.step` applied to the tokens in turn, with
the plug-ins' tensors (:meth:`~unfolded.energies.Energy.trainable`) as the encoder's parameters, tied
across layers: the trained model runs the dynamics that the claims check, and nothing else. A parameter
passes through the plug-in's :meth:`~unfolded.energies.Energy.constrained` at every forward pass (CRATE's
``D`` stays at ``eta |D|^2 <= 1``). Before the first layer the tokens go through the first plug-in's
:meth:`~unfolded.energies.Energy.project` (token clustering: onto the unit sphere).

The interaction-free control (``<name>_tied-no_attention``) runs each plug-in's
:meth:`~unfolded.energies.Energy.isolated_step` instead: the step applied to every token alone (the
Energy Transformer keeps its Hopfield energy and loses its attention energy), or, for CRATE, its
MSSA block removed.

The energies recorded: the curve is the sum of the plug-ins' energies, each oriented so that its
dynamics descend it (:func:`unfolded.energies.base.sense_oriented`), at each state; the sub-step energies
(``LayerTrace.substeps``, one key per plug-in) are each plug-in's energy before and after its own step,
with the step's input as its target (CRATE's ISTA objective ``F_x``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .diagnostics import token_spread
from .energies.base import sense_oriented
from .models import EncoderOutput, LayerTrace, _energy_precision, _relative_update
from .registry import ENERGY_ENCODERS

__all__ = ["PluginEncoder"]


class PluginEncoder(nn.Module):
    """``num_layers`` tied layers of the plug-in steps of ``ENERGY_ENCODERS[stem]`` at width ``d``;
    ``attention=False``: the interaction-free control. The initial parameters are drawn with a generator
    seeded from torch's global generator (so ``seed_everything`` fixes them)."""

    tied = True

    def __init__(self, stem: str, d: int, num_layers: int, *, attention: bool = True):
        super().__init__()
        from .energies import REGISTRY

        if stem not in ENERGY_ENCODERS:
            raise ValueError(f"plug-in encoder: expected one of {tuple(ENERGY_ENCODERS)}, got {stem!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers: expected >= 1, got {num_layers}")
        self.stem, self.d, self.num_layers, self.attention = stem, d, num_layers, attention
        self.plugin_names = ENERGY_ENCODERS[stem].plugins
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
        self._instances = [REGISTRY[name].train_instance(d, generator) for name in self.plugin_names]
        self.raw = nn.ModuleList(
            nn.ParameterDict({key: nn.Parameter(value.detach().float().clone()) for key, value in instance.trainable().items()})
            for instance in self._instances)
        #: the starting values of the parameters, ``"<plug-in index>.<attribute>"`` (not saved with the weights)
        self.initial = {f"{index}.{key}": value.detach().clone() for index, raw in enumerate(self.raw)
                        for key, value in raw.items()}
        #: what :func:`unfolded.sweeps.trained_energies` calls each sub-step energy, and what guarantees it
        self.substep_labels = {
            name: (f"{name} energy, {name} step", f"{type(instance).guarantee} ({type(instance).guarantee_source})")
            for name, instance in zip(self.plugin_names, self._instances, strict=True)}

    def instances(self) -> list:
        """The plug-in instances with the current (constrained) parameters."""
        for instance, raw in zip(self._instances, self.raw, strict=True):
            for key, value in raw.items():
                setattr(instance, key, instance.constrained(key, value))
        return self._instances

    def layer(self, Y: Tensor, mask: Tensor | None, instances: list | None = None) -> Tensor:
        """One layer: every plug-in's step (or, in the control, its isolated step) in turn."""
        for instance in instances if instances is not None else self.instances():
            Y = instance.step(Y, mask) if self.attention else instance.isolated_step(Y, mask)
        return Y

    @staticmethod
    def project(Y: Tensor, mask: Tensor | None, instances: list) -> Tensor:
        """The first plug-in's projection of the real tokens (padding unchanged)."""
        if mask is None:
            return instances[0].project(Y, mask)
        return torch.where(mask.unsqueeze(-1), instances[0].project(Y, mask), Y)

    def curve_energy(self, Y: Tensor, mask: Tensor | None, instances: list) -> Tensor:
        """The sum of the plug-ins' oriented energies at ``Y``, ``(b,)``."""
        Y = _energy_precision(Y)
        return sum(sense_oriented(type(instance).sense, instance.energy(Y, mask)) for instance in instances)

    def _depth(self, num_layers: int | None) -> int:
        return self.num_layers if num_layers is None else num_layers

    def forward(self, Y: Tensor, mask: Tensor | None = None, *, return_energies: bool = True,
                num_layers: int | None = None) -> EncoderOutput:
        """``num_layers`` overrides the depth (the layers are tied)."""
        instances = self.instances()
        Y = self.project(Y, mask, instances)
        energies = [self.curve_energy(Y, mask, instances)] if return_energies else []
        for _ in range(self._depth(num_layers)):
            Y = self.layer(Y, mask, instances)
            if return_energies:
                energies.append(self.curve_energy(Y, mask, instances))
        return EncoderOutput(Y, torch.stack(energies, -1) if return_energies else None)

    def states(self, Y: Tensor, mask: Tensor | None = None, *, num_layers: int | None = None) -> list[Tensor]:
        """The state after each of ``num_layers`` layers, from one pass."""
        instances = self.instances()
        Y = self.project(Y, mask, instances)
        states = []
        for _ in range(self._depth(num_layers)):
            Y = self.layer(Y, mask, instances)
            states.append(Y)
        return states

    @torch.no_grad()
    def trace(self, Y: Tensor, mask: Tensor | None = None, *, num_layers: int | None = None,
              substeps: bool = True) -> LayerTrace:
        """:class:`unfolded.models.LayerTrace`: the curve energy at every state (``before``/``after`` the
        layer's input and output, ``middle`` NaN) and, with ``substeps``, each plug-in's energy before and
        after its own step (key: the plug-in's name)."""
        instances = self.instances()
        Y = self.project(Y, mask, instances)
        energies, spread, update = [self.curve_energy(Y, mask, instances)], [token_spread(_energy_precision(Y), mask)], []
        pairs = {name: ([], []) for name in self.plugin_names} if substeps else {}
        for _ in range(self._depth(num_layers)):
            state = Y
            for name, instance in zip(self.plugin_names, instances, strict=True):
                moved = instance.step(state, mask) if self.attention else instance.isolated_step(state, mask)
                if substeps:
                    target = _energy_precision(state)
                    pairs[name][0].append(instance.energy(target, mask, ref=target))
                    pairs[name][1].append(instance.energy(_energy_precision(moved), mask, ref=target))
                state = moved
            energies.append(self.curve_energy(state, mask, instances))
            spread.append(token_spread(_energy_precision(state), mask))
            update.append(_relative_update(_energy_precision(Y), _energy_precision(state), mask))
            Y = state
        energies = torch.stack(energies, -1)
        nan = torch.full_like(energies[:, 1:], float("nan"))
        sense = {name: type(instance).sense for name, instance in zip(self.plugin_names, instances, strict=True)}
        oriented = {name: tuple(sense_oriented(sense[name], torch.stack(values, -1)) for values in (before, after))
                    for name, (before, after) in pairs.items()}
        return LayerTrace(energies, energies[:, :-1], nan, energies[:, 1:], torch.stack(spread, -1),
                          torch.stack(update, -1), substeps=oriented)

