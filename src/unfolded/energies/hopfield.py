"""Modern Hopfield networks (Ramsauer et al., ICLR 2021): each token is a query state ``xi`` retrieving
from fixed stored patterns ``X (N, d)`` (rows).

    E(xi) = -lse(beta, X xi) + 1/2 xi.xi + log(N) / beta + 1/2 M^2,   lse(beta, z) = log(sum e^(beta z)) / beta,

with ``M`` the largest pattern norm, summed over the real tokens of a sequence. The update
``xi <- X^T softmax(beta X xi)`` is the CCCP step of the convex ``1/2 |xi|^2`` against the concave
``-lse``: it never raises ``E``, for any ``beta > 0`` and with no step size (theorem). The patterns
stay fixed; when they move with the tokens (stacked self-attention, ``X = Y``) the theorem says nothing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Counterexample, Energy, masked, uniform

__all__ = ["Hopfield", "hopfield_energy"]


def hopfield_energy(Y: Tensor, X: Tensor, beta: float, mask: Tensor | None = None) -> Tensor:
    """``sum_i E(y_i)`` over the real tokens of each sequence, ``Y (b, n, d)``, patterns ``X (N, d)`` or
    one set per sequence ``(b, N, d)``; ``(b,)``."""
    mask = masked(mask, Y)
    patterns = X if X.dim() == 3 else X.unsqueeze(0)
    scores = beta * Y @ patterns.transpose(-1, -2)  # (b, n, N)
    largest = patterns.norm(dim=-1).amax(-1)  # (b,) or (1,)
    count = patterns.shape[-2]
    per_token = (-torch.logsumexp(scores, -1) / beta + 0.5 * Y.pow(2).sum(-1)
                 + math.log(count) / beta + 0.5 * largest.unsqueeze(-1) ** 2)
    return torch.where(mask, per_token, torch.zeros_like(per_token)).sum(-1)


class Hopfield(Energy):
    name = "hopfield"
    reference = "Ramsauer et al., Hopfield Networks is All You Need (ICLR 2021)"
    sense = "min"
    guarantee = "monotone"
    guarantee_conditions = "any beta > 0, stored patterns fixed (CCCP)"
    guarantee_source = "paper"
    guarantee_margins = ("beta",)
    mixes_tokens = False  # each token retrieves from the stored patterns alone

    def __init__(self, patterns: Tensor, beta: float):
        self.patterns, self.beta, self._d = patterns, float(beta), patterns.shape[-1]

    @classmethod
    def random_instance(cls, d: int, generator: torch.Generator) -> Hopfield:
        count = int(torch.randint(2, 9, (), generator=generator))
        scale = math.exp(uniform(generator, -1.0, 1.0))
        beta = math.exp(uniform(generator, -1.5, 2.0))
        patterns = torch.randn(count, d, generator=generator, dtype=torch.float64) * scale
        return cls(patterns, beta)

    @classmethod
    def curve_instance(cls, d: int, generator: torch.Generator) -> Hopfield:
        """Eight stored patterns of the tokens' scale, ``beta = 1 / sqrt(d)`` (the ``Hopfield`` layer's default)."""
        return cls(torch.randn(8, d, generator=generator, dtype=torch.float64) / math.sqrt(d), 1.0 / math.sqrt(d))

    @classmethod
    def train_instance(cls, d: int, generator: torch.Generator) -> Hopfield:
        """``d`` stored patterns of the tokens' scale (learned), ``beta = 1 / sqrt(d)`` (fixed)."""
        return cls(torch.randn(d, d, generator=generator, dtype=torch.float64) / math.sqrt(d), 1.0 / math.sqrt(d))

    def energy(self, Y: Tensor, mask: Tensor | None = None, ref: Tensor | None = None) -> Tensor:
        return hopfield_energy(Y, self.patterns.to(Y.dtype), self.beta, mask)

    def retrieve(self, Y: Tensor) -> Tensor:
        """``X^T softmax(beta X y)`` for every token."""
        patterns = self.patterns.to(Y.dtype)
        return torch.softmax(self.beta * Y @ patterns.T, -1) @ patterns

    def step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.where(masked(mask, Y).unsqueeze(-1), self.retrieve(Y), Y)

    def conditions(self, Y: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        return {"beta": torch.tensor(self.beta)}


def _damped_trial(generator: torch.Generator, explicit: bool) -> tuple[Tensor, Tensor]:
    """A damped step ``xi - eta (xi - X^T softmax(.))`` with ``eta > 2``. Explicit: one stored pattern, where
    ``E = 1/2 |xi - x|^2 + const`` and the step multiplies ``xi - x`` by ``1 - eta``."""
    if explicit:
        model = Hopfield(torch.tensor([[0.5, -1.0]], dtype=torch.float64), beta=1.0)
        Y, eta = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64), 2.5
    else:
        model = Hopfield.random_instance(int(torch.randint(2, 7, (), generator=generator)), generator)
        Y = torch.randn(1, int(torch.randint(1, 9, (), generator=generator)), model.d, generator=generator,
                        dtype=torch.float64) * 2.0
        eta = uniform(generator, 2.05, 4.0)
    after = Y - eta * (Y - model.retrieve(Y))
    return model.energy(Y), model.energy(after)


#: three tokens for which stacked self-attention at beta = 1 raises the summed energy (by about 0.077)
_MOVING = torch.tensor([[[2.3, -0.4], [-3.3, 0.9], [-1.6, -2.1]]], dtype=torch.float64)


def _moving_patterns_trial(generator: torch.Generator, explicit: bool) -> tuple[Tensor, Tensor]:
    """Stacked self-attention ``Y <- softmax(beta Y Y^T) Y``: the stored patterns are the tokens and move
    with them, so the energy measured with the current patterns (``X = Y`` before, ``X = Y'`` after) can rise."""
    if explicit:
        Y, beta = _MOVING, 1.0
    else:
        n, d = int(torch.randint(2, 9, (), generator=generator)), int(torch.randint(2, 7, (), generator=generator))
        Y = torch.randn(1, n, d, generator=generator, dtype=torch.float64) * math.exp(
            uniform(generator, -1.0, 1.0))
        beta = math.exp(uniform(generator, -1.5, 2.0))
    after = torch.softmax(beta * Y @ Y.transpose(-1, -2), -1) @ Y
    return hopfield_energy(Y, Y, beta), hopfield_energy(after, after, beta)


Hopfield.counterexamples = (
    Counterexample("damped_step", "no step size", "damped Hopfield step xi - eta (xi - X softmax(beta X xi)), eta > 2",
                   "derived", _damped_trial),
    Counterexample("moving_patterns", "fixed stored patterns",
                   "stacked self-attention Y <- softmax(beta Y Y^T) Y, the patterns moving with the tokens",
                   "derived", _moving_patterns_trial),
)
