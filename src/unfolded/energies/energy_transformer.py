"""Energy Transformer (Hoover et al., NeurIPS 2023): one recurrent block descending
``E = E_ATT + E_HN`` on the layer-normed tokens ``g = LN(x)``.

    g      = gamma (x - mean(x)) / sqrt(var(x) + eps) + delta            (per token; gamma a scalar)
    E_ATT  = -1/beta sum_h sum_C log sum_{B != C} exp(beta K_hB . Q_hC),  K = W_K g, Q = W_Q g, beta = 1/sqrt(k)
    E_HN   = -1/2 sum_C sum_mu ReLU(xi_mu . g_C)^2
    x     <- x - alpha dE/dg

The layer norm is the gradient of a Lagrangian whose Hessian is positive semi-definite when
``gamma >= 0``, so the continuous-time flow ``dx/dt = -dE/dg`` never raises ``E`` (theorem, continuous
time); a discrete step does not for a small enough step (no constant is given; we state and test one
for the relative step ``alpha |dE/dg| / |x - mean(x)|``). The paper's attention energy leaves out the
diagonal ``B = C``; the published code keeps it (``energy_transformer_code``). The gradient of
``E_ATT`` has a query term, which is ordinary attention, and a key term that only this model has;
without the key term the step is plain attention and can raise ``E_ATT`` however small it is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Counterexample, Energy, masked, uniform

__all__ = ["EnergyTransformer", "EnergyTransformerCode"]


class EnergyTransformer(Energy):
    name = "energy_transformer"
    reference = "Hoover et al., Energy Transformer (NeurIPS 2023)"
    sense = "min"
    guarantee = "continuous-time"
    guarantee_conditions = "gamma >= 0; a discrete step of relative size at most relative_step_bound"
    guarantee_source = "paper"
    guarantee_margins = ("gamma",)
    relative_step_bound = 0.1
    #: the paper's E_ATT sums over B != C; the published code keeps B = C
    include_diagonal = False

    def __init__(self, W_K: Tensor, W_Q: Tensor, memories: Tensor, gamma: float, delta: Tensor, alpha: float,
                 eps: float = 1e-5):
        self.W_K, self.W_Q, self.memories = W_K, W_Q, memories  # (H, k, d), (H, k, d), (M, d)
        self.gamma, self.delta, self.alpha, self.eps = float(gamma), delta, float(alpha), eps
        self._d = W_K.shape[-1]
        self.beta = 1.0 / math.sqrt(W_K.shape[1])

    @classmethod
    def random_instance(cls, d: int, generator: torch.Generator, gamma: float | None = None) -> EnergyTransformer:
        heads, k = int(torch.randint(1, 3, (), generator=generator)), int(torch.randint(1, d + 1, (), generator=generator))
        W_K = torch.randn(heads, k, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
        W_Q = torch.randn(heads, k, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
        memories = torch.randn(int(torch.randint(2, 7, (), generator=generator)), d, generator=generator,
                               dtype=torch.float64) / math.sqrt(d)
        delta = 0.1 * torch.randn(d, generator=generator, dtype=torch.float64)
        return cls(W_K, W_Q, memories, uniform(generator, 0.5, 2.0) if gamma is None else gamma, delta,
                   alpha=math.exp(uniform(generator, math.log(1e-3), math.log(0.1))))

    @classmethod
    def curve_instance(cls, d: int, generator: torch.Generator) -> EnergyTransformer:
        """The published block's settings: ``alpha = 0.1``, ``gamma = 1``, ``delta = 0``, random weights."""
        instance = cls.random_instance(d, generator, gamma=1.0)
        return cls(instance.W_K, instance.W_Q, instance.memories, 1.0, torch.zeros(d, dtype=torch.float64), alpha=0.1)

    @classmethod
    def train_instance(cls, d: int, generator: torch.Generator) -> EnergyTransformer:
        """The published block's settings (``alpha = 0.1``, ``gamma = 1``, ``delta = 0``) with the sizes of its
        models: 2 heads of ``k = max(1, d // 2)``, ``2 d`` memories, weights at the scale ``1 / sqrt(d)``."""
        heads, k = 2, max(1, d // 2)
        W_K = torch.randn(heads, k, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
        W_Q = torch.randn(heads, k, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
        memories = torch.randn(2 * d, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
        return cls(W_K, W_Q, memories, 1.0, torch.zeros(d, dtype=torch.float64), alpha=0.1)

    def scaled(self, factor: float) -> EnergyTransformer:
        """The same instance with its step size multiplied by ``factor``."""
        return type(self)(self.W_K, self.W_Q, self.memories, self.gamma, self.delta, self.alpha * factor, self.eps)

    def layer_norm(self, Y: Tensor) -> Tensor:
        centred = Y - Y.mean(-1, keepdim=True)
        return self.gamma * centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + self.eps) + self.delta.to(Y.dtype)

    def energy_of_g(self, g: Tensor, mask: Tensor | None = None, keys: Tensor | None = None) -> Tensor:
        """``E_ATT + E_HN`` at layer-normed tokens ``g (b, n, d)``; ``keys``: the tokens the keys are made from
        (default ``g``; detached for the step without its key term)."""
        mask = masked(mask, g)
        keys = g if keys is None else keys
        K = torch.einsum("hkd,bnd->bhnk", self.W_K.to(g.dtype), keys)
        Q = torch.einsum("hkd,bnd->bhnk", self.W_Q.to(g.dtype), g)
        logits = self.beta * Q @ K.transpose(-1, -2)  # (b, H, query C, key B)
        allowed = mask[:, None, None, :].expand_as(logits)
        if not self.include_diagonal:
            allowed = allowed & ~torch.eye(g.shape[1], dtype=torch.bool, device=g.device)
        lse = torch.logsumexp(logits.masked_fill(~allowed, float("-inf")), -1)  # (b, H, n)
        lse = torch.where(allowed.any(-1), lse, torch.zeros_like(lse))  # a query without a key adds nothing
        attention = -torch.where(mask[:, None, :], lse, torch.zeros_like(lse)).sum((1, 2)) / self.beta
        overlaps = torch.relu(g @ self.memories.to(g.dtype).T)  # (b, n, M)
        hopfield = -0.5 * torch.where(mask, overlaps.pow(2).sum(-1), torch.zeros_like(overlaps[..., 0])).sum(-1)
        return attention + hopfield

    def energy(self, Y: Tensor, mask: Tensor | None = None, ref: Tensor | None = None) -> Tensor:
        return self.energy_of_g(self.layer_norm(Y), mask)

    def gradient(self, Y: Tensor, mask: Tensor | None = None, key_term: bool = True) -> Tensor:
        """``dE/dg`` at ``g = LN(Y)``; without ``key_term`` only through the queries and memories (the
        gradient of plain attention)."""
        # in training (grad mode, parameters or tokens that require grad) the step stays differentiable: dE/dg is
        # taken at g = LN(Y) inside the graph, with create_graph, so that the loss reaches W_K, W_Q and the memories
        if torch.is_inference_mode_enabled():  # Lightning evaluates under inference mode, where autograd is off
            with torch.inference_mode(False):
                return self.gradient(Y.clone(), None if mask is None else mask.clone(), key_term).detach()
        differentiable = torch.is_grad_enabled()
        with torch.enable_grad():
            g = self.layer_norm(Y if differentiable else Y.detach())
            if not (differentiable and g.requires_grad):
                g, differentiable = g.detach().requires_grad_(True), False
            energy = self.energy_of_g(g, mask, keys=None if key_term else g.detach()).sum()
            (grad,) = torch.autograd.grad(energy, g, create_graph=differentiable)
        return grad

    def step(self, Y: Tensor, mask: Tensor | None = None, key_term: bool = True) -> Tensor:
        out = Y - self.alpha * self.gradient(Y, mask, key_term)
        return torch.where(masked(mask, Y).unsqueeze(-1), out, Y)

    def relative_step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        weights = masked(mask, Y).unsqueeze(-1).to(Y.dtype)
        moved = (self.alpha * self.gradient(Y, mask) * weights).pow(2).sum((1, 2)).sqrt()
        spread = ((Y - Y.mean(-1, keepdim=True)) * weights).pow(2).sum((1, 2)).sqrt()
        return moved / spread.clamp_min(1e-300)

    def conditions(self, Y: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        return {"gamma": torch.tensor(self.gamma), "relative_step": self.relative_step_bound - self.relative_step(Y, mask)}


class EnergyTransformerCode(EnergyTransformer):
    """The published code's attention energy: the sum over keys keeps ``B = C``."""

    name = "energy_transformer_code"
    reference = "Hoover et al., Energy Transformer (NeurIPS 2023), as its code computes E_ATT (diagonal kept)"
    guarantee_source = "code"
    include_diagonal = True


def _tokens(generator: torch.Generator, d: int) -> tuple[Tensor, Tensor]:
    n = int(torch.randint(2, 9, (), generator=generator))
    Y = torch.randn(1, n, d, generator=generator, dtype=torch.float64)
    return Y, torch.ones(1, n, dtype=torch.bool)


def _negative_gamma_trial(generator: torch.Generator, explicit: bool) -> tuple[Tensor, Tensor]:
    """``gamma < 0``: the layer norm's Lagrangian is concave, so the flow ascends ``E``. Explicit: a fixed draw
    (seed 7) at ``gamma = -1`` and a small step."""
    source = torch.Generator().manual_seed(7) if explicit else generator
    d = 4 if explicit else int(torch.randint(2, 7, (), generator=source))
    gamma = -1.0 if explicit else -uniform(source, 0.5, 2.0)
    model = EnergyTransformer.random_instance(d, source, gamma=gamma)
    model = model.scaled(1e-3 / model.alpha)  # a small step: the sign of the flow decides
    Y, mask = _tokens(source, d)
    return model.energy(Y, mask), model.energy(model.step(Y, mask), mask)


#: a draw (seed of the generator that builds it) where the step without its key term raises E_ATT
_KEYLESS_SEED = 307


def _keyless_trial(generator: torch.Generator, explicit: bool) -> tuple[Tensor, Tensor]:
    """The step without the key term of ``dE_ATT/dg`` (plain attention), no memories, tiny step: the
    energy can rise however small the step is."""
    source = torch.Generator().manual_seed(_KEYLESS_SEED) if explicit else generator
    d = int(torch.randint(2, 6, (), generator=source))
    model = EnergyTransformer.random_instance(d, source)
    model.memories = torch.zeros(1, d, dtype=torch.float64)
    model = model.scaled(1e-6 / model.alpha)
    Y, mask = _tokens(source, d)
    Y = Y * 3.0
    return model.energy(Y, mask), model.energy(model.step(Y, mask, key_term=False), mask)


EnergyTransformer.counterexamples = (
    Counterexample("negative_gamma", "gamma >= 0", "Energy Transformer step with gamma < 0", "derived",
                   _negative_gamma_trial),
    Counterexample("no_key_term", "the key term of dE/dg",
                   "Energy Transformer step without the key term of the attention gradient (plain attention), "
                   "alpha = 1e-6", "derived", _keyless_trial),
)
EnergyTransformerCode.counterexamples = ()
