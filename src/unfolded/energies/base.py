"""The plug-in interface of an energy whose descent (or ascent) a layer is read as (docs/energies.md).

A plug-in is a subclass of :class:`Energy` in one file of this package, plus one entry in
:data:`unfolded.energies.REGISTRY`. An instance holds the parameters (weights, temperatures, step
sizes); the class says how the layer moves tokens and what is guaranteed about it:

* :meth:`Energy.energy` ``(b,)`` and :meth:`Energy.step`, the layer as the published code runs it;
* ``sense``: ``"min"`` (the dynamics descend the energy) or ``"max"`` (they ascend it);
* ``guarantee``: what is known of the step on the energy, one of :data:`GUARANTEES`;
* ``substeps``: the sub-steps of a layer made of several, each with the energy it acts on and its
  own guarantees (a sub-step may carry several, each with its conditions);
* :meth:`Energy.conditions`: margins, ``>= 0`` where the guarantee applies;
* :meth:`Energy.random_instance` and :meth:`Energy.random_tokens`: random parameters and inputs inside
  the guarantee's conditions;
* ``counterexamples``: one builder per dropped condition, each with an explicit instance whose step
  moves the energy the wrong way.

Tokens are rows, ``Y (b, n, d)``, ``mask (b, n)`` with True for real tokens. Padding is invisible to
every energy and step: padded tokens enter no sum and no softmax (logits are masked with ``-inf``),
and a step returns them unchanged. Everything is differentiable and works in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

__all__ = ["GUARANTEES", "SENSES", "Counterexample", "Energy", "Guarantee", "Identity", "SubStep", "masked",
           "sense_oriented", "uniform"]

#: ``monotone``: the step never moves the energy the wrong way; ``fejer``: the step never moves away
#: from a minimiser of the energy; ``continuous-time``: the gradient flow is monotone, and a step is
#: for small enough step sizes (``Energy.relative_step_bound`` states how small is tested); ``none``:
#: no guarantee is known for the step (a sub-step may still have one).
GUARANTEES = ("monotone", "fejer", "continuous-time", "none")
SENSES = ("min", "max")


@dataclass(frozen=True)
class Guarantee:
    """A guarantee of a step or sub-step: its kind, when it holds (prose, and the names of the margins
    of :meth:`Energy.conditions` that must be ``>= 0``), and where it is stated."""

    kind: str
    conditions: str
    source: str = "paper"
    margins: tuple[str, ...] = ()
    #: random parameters inside this guarantee's conditions, ``(d, generator) -> instance`` (None: the
    #: plug-in's :meth:`Energy.random_instance`)
    instance: Callable | None = None
    #: random tokens inside them, ``(instance, generator, b, n) -> (Y, mask)`` (None: :meth:`Energy.random_tokens`)
    tokens: Callable | None = None

    def __post_init__(self):
        if self.kind not in GUARANTEES:
            raise ValueError(f"guarantee: expected one of {GUARANTEES}, got {self.kind!r}")


@dataclass(frozen=True)
class SubStep:
    """One sub-step of a layer: ``step(instance, Y, mask)`` moves the tokens, ``energy(instance, Y, mask)``
    is the energy it acts on, ``guarantees`` what holds of it (each checked by the claims)."""

    name: str
    step: Callable
    energy: Callable
    guarantees: tuple[Guarantee, ...]


@dataclass(frozen=True)
class Counterexample:
    """What happens when a condition of the guarantee is dropped.

    ``trial(generator, explicit)`` returns ``(before, after)`` energies ``(k,)``, oriented so that a
    rise is a violation (``after > before``): with ``explicit=True`` those of a fixed instance that
    must show the violation, otherwise those of one random draw without the condition."""

    name: str
    drops: str
    statement: str
    source: str
    trial: Callable[[torch.Generator, bool], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Identity:
    """Two expressions that must agree: ``trial(generator) -> (left, right)`` on one random draw."""

    name: str
    statement: str
    source: str
    trial: Callable[[torch.Generator], tuple[Tensor, Tensor]]


def uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One draw from ``U(low, high)`` with ``generator``."""
    return float(torch.empty(()).uniform_(low, high, generator=generator))


def masked(mask: Tensor | None, Y: Tensor) -> Tensor:
    """``mask`` as a ``(b, n)`` boolean tensor (all True when None)."""
    if mask is None:
        return torch.ones(Y.shape[:2], dtype=torch.bool, device=Y.device)
    return mask


def sense_oriented(sense: str, values: Tensor) -> Tensor:
    """Energies oriented so that the dynamics descend them: ``values`` for ``min``, ``-values`` for ``max``."""
    return values if sense == "min" else -values


class Energy:
    """Base class of a plug-in (see the module docstring). Subclasses set the class attributes and
    implement :meth:`random_instance`, :meth:`energy` and :meth:`step`."""

    #: registry name
    name: ClassVar[str] = ""
    #: one line: the paper (authors, venue) the energy comes from
    reference: ClassVar[str] = ""
    sense: ClassVar[str] = "min"
    guarantee: ClassVar[str] = "none"
    #: the conditions of :attr:`guarantee`, in prose
    guarantee_conditions: ClassVar[str] = ""
    #: where the guarantee is stated: paper, code or derived (docs/theory.md's tags)
    guarantee_source: ClassVar[str] = "paper"
    #: the margins of :meth:`conditions` that must be ``>= 0`` for :attr:`guarantee`; the claims check them on
    #: every draw
    guarantee_margins: ClassVar[tuple[str, ...]] = ()
    #: whether the step moves a token by the others (False: its trainable encoder is interaction-free itself)
    mixes_tokens: ClassVar[bool] = True
    #: whether the layer ends with a ReLU (the ``relu`` column of the energy-curve tables)
    relu: ClassVar[bool] = False
    substeps: ClassVar[tuple[SubStep, ...]] = ()
    counterexamples: ClassVar[tuple[Counterexample, ...]] = ()
    #: rows that only report how often a step moves the energy the wrong way (no expectation); the
    #: ``explicit`` argument of their trial is always False
    reports: ClassVar[tuple[Counterexample, ...]] = ()
    identities: ClassVar[tuple[Identity, ...]] = ()
    #: continuous-time guarantees: no step with a relative step size (:meth:`relative_step`) at or below
    #: this moves the energy the wrong way on random draws (the stated threshold the claims check)
    relative_step_bound: ClassVar[float | None] = None

    @classmethod
    def random_instance(cls, d: int, generator: torch.Generator) -> Energy:
        """An instance of width ``d`` with random parameters inside the guarantee's conditions."""
        raise NotImplementedError

    @classmethod
    def curve_instance(cls, d: int, generator: torch.Generator) -> Energy:
        """The instance the energy curves run: the published code's default settings where it has them, random
        weights otherwise (:meth:`random_instance` by default)."""
        return cls.random_instance(d, generator)

    def energy(self, Y: Tensor, mask: Tensor | None = None, ref: Tensor | None = None) -> Tensor:
        """The energy of each sequence, ``(b,)``. ``ref``: the layer's input, for energies that depend on
        it (an ISTA step's target); ignored by the others."""
        raise NotImplementedError

    def step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        """The layer as the published code runs it; padded tokens come back unchanged."""
        raise NotImplementedError

    def conditions(self, Y: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Margins of the guarantee's conditions at ``Y``: ``>= 0`` where the guarantee applies."""
        return {}

    def random_tokens(self, generator: torch.Generator, b: int, n: int) -> tuple[Tensor, Tensor]:
        """Random float64 tokens ``(b, n, d)`` inside the conditions, and a mask with padding."""
        Y = torch.randn(b, n, self.d, generator=generator, dtype=torch.float64)
        mask = torch.rand(b, n, generator=generator) < 0.8
        mask[:, :2] = True
        return Y, mask

    def relative_step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        """How large the step is relative to the state, ``(b,)`` (continuous-time guarantees)."""
        raise NotImplementedError

    def scaled(self, factor: float) -> Energy:
        """The same instance with its step size multiplied by ``factor`` (``continuous-time`` guarantees)."""
        raise NotImplementedError

    def minimiser(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        """A minimiser of the energy the step is Fejer-monotone towards (``fejer`` guarantees)."""
        raise NotImplementedError

    # ---- training (unfolded.energy_encoders): a plug-in trains as it is; these hooks only refine it ----

    @classmethod
    def train_instance(cls, d: int, generator: torch.Generator) -> Energy:
        """The instance a trainable encoder starts from, inside the guarantee's conditions: the energy-curve
        instance (:meth:`curve_instance`) by default."""
        return cls.curve_instance(d, generator)

    def trainable(self) -> dict[str, Tensor]:
        """The tensors that training learns, by attribute name: every floating-point tensor attribute by
        default (step sizes and temperatures held as floats stay fixed)."""
        return {name: value for name, value in vars(self).items()
                if isinstance(value, Tensor) and value.is_floating_point()}

    def constrained(self, name: str, raw: Tensor) -> Tensor:
        """The value parameter ``name`` takes from its unconstrained ``raw`` value at every forward pass: a
        parametrisation that keeps the guarantee's conditions during training (the identity by default)."""
        return raw

    def isolated_step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        """The step with its token mixing removed (the interaction-free control): by default the step applied
        to every real token as a sequence of its own, so that no token moves by another."""
        b, n, d = Y.shape
        alone = torch.ones(b * n, 1, dtype=torch.bool, device=Y.device)  # padded rows too (discarded below): no NaN
        out = self.step(Y.reshape(b * n, 1, d), alone).reshape(b, n, d)
        return torch.where(masked(mask, Y).unsqueeze(-1), out, Y)

    def project(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        """Map arbitrary tokens (embedded test sequences) into the energy's domain before the first layer
        (the unit sphere for token clustering); the identity by default."""
        return Y

    @property
    def d(self) -> int:
        return self._d
