"""CRATE (Yu et al., NeurIPS 2023): a layer of two half-steps on two objectives.

``crate_ista``: the ISTA block, one proximal-gradient step on the non-negative LASSO
``F_x(Z) = 1/2 |x - Z D^T|^2 + lambda |Z|_1`` (tokens as rows, ``Z >= 0``) started at ``Z0 = x``:

    Z1 = ReLU(x + eta (x - x D^T) D - eta lambda)        (the code: ReLU(x + eta (D^T x - D^T D x) - eta lambda))

With ``eta <= 1/|D|^2`` it never raises ``F_x``, from a feasible start ``x >= 0`` (theorem); with
``eta <= 2/|D|^2`` it never moves away from the minimiser of ``F_x + indicator(Z >= 0)``, from any start
(Fejer monotone, theorem). The code feeds it a layer-normed ``x``, which always has negative entries:
an infeasible start, where the first guarantee says nothing.

``crate_mssa``: the multi-head subspace self-attention block against the coding rate of the tokens
in ``K`` subspaces ``U_k (d, p)``:

    R^c(Z) = sum_k 1/2 logdet(I + a (Z U_k)^T (Z U_k)),   a = p / (N eps^2)

The paper approximates its gradient step by ``Z <- (1 - kappa a) Z + kappa a sum_k SSA(Z | U_k) U_k^T``,
``SSA(Z | U_k) = softmax((Z U_k)(Z U_k)^T) Z U_k``; the code runs ``Z + Attn(LN(Z)) W_out + b`` with
queries = keys = values ``LN(Z) U_k``, scale ``p^-1/2`` and an untied output map. Neither has a
guarantee; the exact gradient step with ``kappa <= 1 / (a K)`` (orthonormal ``U_k``) is the control
that has one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Counterexample, Energy, Guarantee, SubStep, masked, uniform

__all__ = ["CrateISTA", "CrateMSSA", "coding_rate"]


class CrateISTA(Energy):
    name = "crate_ista"
    reference = "Yu et al., White-Box Transformers via Sparse Rate Reduction (NeurIPS 2023), the ISTA block"
    sense = "min"
    guarantee = "monotone"
    guarantee_conditions = "eta <= 1/|D|^2 and a feasible start x >= 0 (Fejer monotone for eta <= 2/|D|^2 from any start)"
    guarantee_source = "paper"

    def __init__(self, D: Tensor, eta: float, lam: float):
        self.D, self.eta, self.lam, self._d = D, float(eta), float(lam), D.shape[0]

    @property
    def lipschitz(self) -> float:
        """``|D|^2`` (spectral norm), the gradient's Lipschitz constant."""
        return float(torch.linalg.matrix_norm(self.D.detach(), 2)) ** 2

    def constrained(self, name: str, raw: Tensor) -> Tensor:
        """``D`` scaled down where needed so that ``eta |D|^2 <= 1``: the step condition of both guarantees (a trained
        encoder starts from :meth:`curve_instance`, the code's ``eta = lambda = 0.1``)."""
        if name != "D":
            return raw
        bound = 1.0 / math.sqrt(self.eta)
        norm = torch.linalg.matrix_norm(raw, 2)
        return raw * torch.clamp(bound / norm.clamp_min(1e-12), max=1.0)

    @classmethod
    def random_instance(cls, d: int, generator: torch.Generator, eta_share: tuple[float, float] = (0.1, 1.0)) -> CrateISTA:
        """``D = Q diag(s)`` with ``s`` in [0.5, 1.5] (well conditioned), ``eta`` a share of ``1/|D|^2``."""
        Q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
        D = Q * (0.5 + torch.rand(d, generator=generator, dtype=torch.float64))
        lipschitz = float(torch.linalg.matrix_norm(D, 2)) ** 2
        return cls(D, uniform(generator, *eta_share) / lipschitz, uniform(generator, 0.01, 0.5))

    @classmethod
    def curve_instance(cls, d: int, generator: torch.Generator) -> CrateISTA:
        """The code's settings, ``eta = lambda = 0.1``, with a random well-conditioned ``D``."""
        return cls(cls.random_instance(d, generator).D, 0.1, 0.1)

    def energy(self, Y: Tensor, mask: Tensor | None = None, ref: Tensor | None = None) -> Tensor:
        """``F_ref(Y)``: the LASSO objective with target ``ref`` (the layer's input; ``Y`` itself by default)."""
        ref = Y if ref is None else ref
        weights = masked(mask, Y).to(Y.dtype)
        residual = ref - Y @ self.D.to(Y.dtype).T
        per_token = 0.5 * residual.pow(2).sum(-1) + self.lam * Y.abs().sum(-1)
        return torch.where(weights > 0, per_token, torch.zeros_like(per_token)).sum(-1)

    def ista(self, Z: Tensor, target: Tensor, eta: float | None = None) -> Tensor:
        """One proximal-gradient step on ``F_target + indicator(Z >= 0)`` from ``Z``."""
        eta = self.eta if eta is None else eta
        D = self.D.to(Z.dtype)
        return torch.relu(Z + eta * (target - Z @ D.T) @ D - eta * self.lam)

    def step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.where(masked(mask, Y).unsqueeze(-1), self.ista(Y, Y), Y)

    def minimiser(self, Y: Tensor, mask: Tensor | None = None, iterations: int = 20000) -> Tensor:
        """The minimiser of ``F_Y + indicator(Z >= 0)`` (strongly convex: ``D`` is well conditioned), by ISTA
        at step ``1/|D|^2`` until it stops moving."""
        Z, eta = torch.relu(Y), 1.0 / self.lipschitz
        for _ in range(iterations):
            following = self.ista(Z, Y, eta)
            if (following - Z).abs().max() < 1e-15:
                break
            Z = following
        return Z

    def conditions(self, Y: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        weights = masked(mask, Y).unsqueeze(-1)
        smallest = torch.where(weights, Y, torch.full_like(Y, math.inf)).amin((1, 2))
        return {"step": torch.tensor(1.0 / self.lipschitz - self.eta), "feasible": smallest,
                "fejer_step": torch.tensor(2.0 / self.lipschitz - self.eta)}

    def random_tokens(self, generator: torch.Generator, b: int, n: int) -> tuple[Tensor, Tensor]:
        Y, mask = super().random_tokens(generator, b, n)
        return Y.abs(), mask  # a feasible start


def _fejer_instance(d: int, generator: torch.Generator) -> CrateISTA:
    return CrateISTA.random_instance(d, generator, eta_share=(0.1, 2.0))


def _any_tokens(instance: CrateISTA, generator: torch.Generator, b: int, n: int) -> tuple[Tensor, Tensor]:
    return Energy.random_tokens(instance, generator, b, n)  # any sign: Fejer needs no feasible start


CrateISTA.substeps = (
    SubStep("ista", lambda model, Y, mask: model.step(Y, mask), lambda model, Y, mask, ref: model.energy(Y, mask, ref),
            (Guarantee("monotone", "eta <= 1/|D|^2, Z0 = x >= 0", "paper", ("step", "feasible")),
             Guarantee("fejer", "eta <= 2/|D|^2, any start", "paper", ("fejer_step",), instance=_fejer_instance,
                       tokens=_any_tokens))),
)


def _infeasible_trial(generator: torch.Generator, explicit: bool) -> tuple[Tensor, Tensor]:
    """The start the code feeds in: a layer-normed token, which has negative entries. Explicit: ``D = I``
    and an entry below ``-2 lambda``, where the objective goes from ``lambda |x|`` to ``x^2 / 2``."""
    if explicit:
        model = CrateISTA(torch.eye(2, dtype=torch.float64), eta=0.5, lam=0.1)
        Y = torch.tensor([[[-1.0, 0.5]]], dtype=torch.float64)
    else:
        d = int(torch.randint(2, 9, (), generator=generator))
        model = CrateISTA.random_instance(d, generator)
        Y = torch.randn(1, int(torch.randint(1, 9, (), generator=generator)), d, generator=generator, dtype=torch.float64)
        Y = (Y - Y.mean(-1, keepdim=True)) / Y.std(-1, correction=0, keepdim=True).clamp_min(1e-12)  # LN(x)
    return model.energy(Y, ref=Y), model.energy(model.step(Y), ref=Y)


CrateISTA.counterexamples = (
    Counterexample("infeasible_start", "a feasible start x >= 0",
                   "ISTA step from a layer-normed token (negative entries), as the code runs it", "code",
                   _infeasible_trial),
)


# --------------------------------------------------------------------------------------------------


def coding_rate(Y: Tensor, U: Tensor, mask: Tensor | None = None, eps: float = 1.0, normalise: bool = False) -> Tensor:
    """``R^c = sum_k 1/2 logdet(I_p + a (Y U_k)^T (Y U_k))`` over the real tokens, ``a = p / (N eps^2)`` with
    ``N`` real tokens, ``U (K, d, p)``, ``(b,)``. ``normalise``: CRATE's own measurement
    (``vis_utils/coding_rate.py``): each projected token ``y U_k`` scaled to unit norm, and ``a = p / (N 0.01)``."""
    weights = masked(mask, Y).to(Y.dtype).unsqueeze(-1)
    p = U.shape[-1]
    count = weights.sum((1, 2)).clamp_min(1.0)  # (b,)
    projected = torch.einsum("bnd,kdp->bknp", Y, U.to(Y.dtype))  # (b, K, n, p)
    if normalise:
        projected = projected / projected.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(Y.dtype).tiny)
        a = p / (count * 0.01)
    else:
        a = p / (count * eps**2)
    projected = projected * weights.unsqueeze(1)
    gram = projected.transpose(-1, -2) @ projected  # (b, K, p, p)
    eye = torch.eye(p, dtype=Y.dtype, device=Y.device)
    return 0.5 * torch.logdet(eye + a[:, None, None, None] * gram).sum(-1)


class CrateMSSA(Energy):
    name = "crate_mssa"
    reference = "Yu et al., White-Box Transformers via Sparse Rate Reduction (NeurIPS 2023), the MSSA block"
    sense = "min"
    guarantee = "none"
    guarantee_conditions = "none for the paper's or the code's step; the exact gradient step with kappa <= 1/(a K) descends R^c"
    guarantee_source = "derived"

    def __init__(self, U: Tensor, kappa: float, W_out: Tensor, b_out: Tensor, eps: float = 1.0):
        self.U, self.kappa, self.W_out, self.b_out, self.eps = U, float(kappa), W_out, b_out, eps
        self._d = U.shape[1]

    @classmethod
    def random_instance(cls, d: int, generator: torch.Generator) -> CrateMSSA:
        heads = int(torch.randint(1, 4, (), generator=generator))
        p = int(torch.randint(1, d + 1, (), generator=generator))
        U = torch.stack([torch.linalg.qr(torch.randn(d, p, generator=generator, dtype=torch.float64))[0]
                         for _ in range(heads)])
        W_out = torch.randn(heads * p, d, generator=generator, dtype=torch.float64) / math.sqrt(heads * p)
        b_out = 0.1 * torch.randn(d, generator=generator, dtype=torch.float64)
        return cls(U, uniform(generator, 0.05, 1.0), W_out, b_out)

    @classmethod
    def train_instance(cls, d: int, generator: torch.Generator) -> CrateMSSA:
        """The code's block with 2 heads of ``p = max(1, d // 2)``, orthonormal ``U_k`` at the start, ``W_out`` at
        the scale ``1 / sqrt(K p)`` and ``b_out = 0`` (all learned; the block has no guarantee to keep)."""
        heads, p = 2, max(1, d // 2)
        U = torch.stack([torch.linalg.qr(torch.randn(d, p, generator=generator, dtype=torch.float64))[0]
                         for _ in range(heads)])
        W_out = torch.randn(heads * p, d, generator=generator, dtype=torch.float64) / math.sqrt(heads * p)
        return cls(U, 1.0, W_out, torch.zeros(d, dtype=torch.float64))

    def isolated_step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        """The control removes the MSSA block (CRATE's only token mixing): the tokens pass unchanged."""
        return Y

    def a(self, Y: Tensor, mask: Tensor | None) -> Tensor:
        count = masked(mask, Y).to(Y.dtype).sum(-1).clamp_min(1.0)
        return self.U.shape[-1] / (count * self.eps**2)

    def energy(self, Y: Tensor, mask: Tensor | None = None, ref: Tensor | None = None,
               normalise: bool = False) -> Tensor:
        return coding_rate(Y, self.U, mask, self.eps, normalise)

    def _attention(self, Z: Tensor, mask: Tensor | None, scale: float) -> list[Tensor]:
        """``softmax(scale (Z U_k)(Z U_k)^T) Z U_k`` per subspace, keys restricted to real tokens."""
        outputs = []
        for U in self.U.to(Z.dtype):
            projected = Z @ U  # (b, n, p)
            logits = scale * projected @ projected.transpose(-1, -2)
            logits = logits.masked_fill(~masked(mask, Z)[:, None, :], float("-inf"))
            outputs.append(torch.softmax(logits, -1) @ projected)
        return outputs

    def paper_step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(1 - kappa a) Y + kappa a sum_k SSA(Y | U_k) U_k^T``."""
        a = self.a(Y, mask)[:, None, None]
        attended = sum(out @ U.T for out, U in zip(self._attention(Y, mask, 1.0), self.U.to(Y.dtype), strict=True))
        out = (1 - self.kappa * a) * Y + self.kappa * a * attended
        return torch.where(masked(mask, Y).unsqueeze(-1), out, Y)

    def step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        """The code's block: ``Y + Attn(LN(Y)) W_out + b`` (tied queries, keys and values ``LN(Y) U_k``)."""
        normed = (Y - Y.mean(-1, keepdim=True)) / torch.sqrt(Y.var(-1, correction=0, keepdim=True) + 1e-5)
        heads = self._attention(normed, mask, 1.0 / math.sqrt(self.U.shape[-1]))
        out = Y + torch.cat(heads, -1) @ self.W_out.to(Y.dtype) + self.b_out.to(Y.dtype)
        return torch.where(masked(mask, Y).unsqueeze(-1), out, Y)

    def gradient_step(self, Y: Tensor, mask: Tensor | None = None, kappa: float | None = None) -> Tensor:
        """The exact gradient step ``Y - kappa grad R^c(Y)``."""
        with torch.enable_grad():
            Z = Y.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(Z, mask).sum(), Z)
        out = Y - (self.kappa if kappa is None else kappa) * grad
        return torch.where(masked(mask, Y).unsqueeze(-1), out, Y)



def _small_gradient_step(model: CrateMSSA, Y: Tensor, mask: Tensor | None) -> Tensor:
    """The control: the exact gradient step at a share of ``1 / (a K)``."""
    share = float(model.kappa)  # kappa in (0.05, 1): used as the share of the bound
    return model.gradient_step(Y, mask, kappa=share / (float(model.a(Y, mask).max()) * model.U.shape[0]))


CrateMSSA.substeps = (
    SubStep("gradient_step", _small_gradient_step, lambda model, Y, mask, ref: model.energy(Y, mask),
            (Guarantee("monotone", "exact gradient step, kappa <= 1/(a K) (R^c is (a K)-smooth)", "derived"),)),
)


def _form_trial(form: str, normalise: bool):
    def trial(generator: torch.Generator, explicit: bool) -> tuple[Tensor, Tensor]:
        d = int(torch.randint(2, 9, (), generator=generator))
        model = CrateMSSA.random_instance(d, generator)
        Y = torch.randn(1, int(torch.randint(2, 13, (), generator=generator)), d, generator=generator,
                        dtype=torch.float64) * math.exp(uniform(generator, -1.0, 1.0))
        after = model.paper_step(Y) if form == "paper" else model.step(Y)
        return model.energy(Y, normalise=normalise), model.energy(after, normalise=normalise)

    return trial


#: report rows: how often each form of the step raises R^c, measured on raw and on normalised tokens
CrateMSSA.reports = tuple(
    Counterexample(f"{form}_form{'_normalised' if normalise else ''}", "",
                   f"MSSA in the {form}'s form on R^c" + (" as CRATE measures it (unit-norm projected tokens)" if normalise
                                                           else ""), "paper" if form == "paper" else "code",
                   _form_trial(form, normalise))
    for form in ("paper", "code") for normalise in (False, True)
)
