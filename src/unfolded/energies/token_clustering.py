"""Token clustering (Geshkovski, Letrouit, Polyanskiy, Rigollet, arXiv 2312.10794): self-attention
dynamics of tokens on the unit sphere ascend

    E_beta = 1 / (2 beta n^2) sum_{i,j} exp(beta <x_i, x_j>)

whose maximum is total collapse. The step ``x_i <- normalise(x_i + h sum_j softmax_j(beta <x_i, x_j>) x_j)``
discretises the flow, which never lowers ``E_beta`` (continuous time); a step of small ``h beta`` does not
either (tested, with the threshold stated in ``relative_step_bound``).

On the sphere, ``exp(beta <x_i, x_j>) = e^beta exp(-beta |x_i - x_j|^2 / 2)``, so with ``W = sqrt(beta) I``

    E_beta = -(e^beta / (beta n^2)) P + e^beta / (2 beta n),   P = -sum_{i<j} exp(-1/2 |(x_i - x_j) W|^2),

``P`` the paper's pairwise attention energy (:func:`unfolded.energy.pairwise_energy`): ascending
``E_beta`` is descending Yang et al.'s term, which ties the token collapse of the unfolded layers to
this clustering theorem (derived; checked as an identity).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..energy import pairwise_energy
from .base import Energy, Identity, masked, uniform

__all__ = ["TokenClustering", "clustering_energy"]


def clustering_energy(Y: Tensor, beta: float, mask: Tensor | None = None) -> Tensor:
    """``E_beta`` over the real tokens of each sequence (``n`` their count), ``(b,)``."""
    mask = masked(mask, Y)
    count = mask.to(Y.dtype).sum(-1).clamp_min(1.0)
    pairs = mask.unsqueeze(-1) & mask.unsqueeze(-2)
    kernel = torch.exp((beta * Y @ Y.transpose(-1, -2)).masked_fill(~pairs, float("-inf")))  # padding: exp(-inf) = 0
    return kernel.sum((1, 2)) / (2 * beta * count**2)


class TokenClustering(Energy):
    name = "token_clustering"
    reference = "Geshkovski, Letrouit, Polyanskiy, Rigollet, A mathematical perspective on Transformers (arXiv 2312.10794)"
    sense = "max"
    guarantee = "continuous-time"
    guarantee_conditions = "tokens on the unit sphere; a discrete step with h beta at most relative_step_bound"
    guarantee_source = "paper"
    guarantee_margins = ("on_sphere",)
    relative_step_bound = 0.1

    def __init__(self, beta: float, h: float, d: int = 0):
        self.beta, self.h, self._d = float(beta), float(h), d

    @classmethod
    def random_instance(cls, d: int, generator: torch.Generator) -> TokenClustering:
        beta = math.exp(uniform(generator, math.log(0.25), math.log(9.0)))
        share = math.exp(uniform(generator, math.log(1e-3), 0.0))
        return cls(beta, share * cls.relative_step_bound / beta, d)

    @classmethod
    def curve_instance(cls, d: int, generator: torch.Generator) -> TokenClustering:
        """``beta = 1`` and a step at the stated bound, ``h beta = relative_step_bound``."""
        return cls(1.0, cls.relative_step_bound, d)

    def scaled(self, factor: float) -> TokenClustering:
        return TokenClustering(self.beta, self.h * factor, self._d)

    def energy(self, Y: Tensor, mask: Tensor | None = None, ref: Tensor | None = None) -> Tensor:
        return clustering_energy(Y, self.beta, mask)

    def project(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        return Y / Y.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = masked(mask, Y)
        logits = (self.beta * Y @ Y.transpose(-1, -2)).masked_fill(~mask[:, None, :], float("-inf"))
        out = self.project(Y + self.h * torch.softmax(logits, -1) @ Y)
        return torch.where(mask.unsqueeze(-1), out, Y)

    def relative_step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.full(Y.shape[:1], self.h * self.beta, dtype=Y.dtype)

    def conditions(self, Y: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        weights = masked(mask, Y)
        off_sphere = torch.where(weights, (Y.norm(dim=-1) - 1).abs(), torch.zeros(Y.shape[:2], dtype=Y.dtype))
        return {"on_sphere": 1e-9 - off_sphere.amax(-1), "relative_step": self.relative_step_bound - self.relative_step(Y)}

    def random_tokens(self, generator: torch.Generator, b: int, n: int) -> tuple[Tensor, Tensor]:
        Y, mask = super().random_tokens(generator, b, n)
        return self.project(Y), mask


def _identity_trial(generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``E_beta`` against ``-(e^beta / (beta n^2)) P + e^beta / (2 beta n)`` on random unit-norm tokens with padding."""
    instance = TokenClustering.random_instance(int(torch.randint(2, 7, (), generator=generator)), generator)
    Y, mask = instance.random_tokens(generator, 2, int(torch.randint(2, 10, (), generator=generator)))
    beta = instance.beta
    count = mask.to(Y.dtype).sum(-1)
    P = pairwise_energy(Y, math.sqrt(beta) * torch.eye(Y.shape[-1], dtype=Y.dtype), mask)
    return clustering_energy(Y, beta, mask), -math.exp(beta) / (beta * count**2) * P + math.exp(beta) / (2 * beta * count)


TokenClustering.identities = (
    Identity("pairwise_identity", "on the unit sphere E_beta = -(e^beta / (beta n^2)) P + e^beta / (2 beta n), P the "
             "paper's pairwise energy with W = sqrt(beta) I", "derived", _identity_trial),
)
