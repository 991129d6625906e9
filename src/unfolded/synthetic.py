"""The synthetic experiments behind Figures 1-4, each returning one tidy table (docs/theory.md §3, §4.1-§4.3).

Random draws follow the authors' scripts (same seeds, same draw order, float32 draws from torch's
CPU generator), and all arithmetic is then done in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from .config import AlternatingConfig, ApolloniusConfig, KappaConfig

__all__ = [
    "AlternatingQuadratics",
    "alternating_table",
    "apollonius_step_size",
    "apollonius_table",
    "kappa_ratio",
    "kappa_table",
]

DTYPE = torch.float64


def _grid(extent: float, step: float) -> Tensor:
    """Points of ``[-extent, extent)^2`` on a square grid, ``(m^2, 2)``, x varying fastest."""
    axis = torch.arange(-extent, extent, step, dtype=DTYPE)
    x2, x1 = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x1.reshape(-1), x2.reshape(-1)], -1)


# ----------------------------------------------------------------------------------------------
# Figure 1: Apollonius regions
# ----------------------------------------------------------------------------------------------


def apollonius_step_size(C: float, curvature_f: float, curvature_h: float) -> float:
    """Step size of the h-step for which the lemma's constant equals ``C`` (docs/theory.md §3.1).

    For ``f = c_f/2 |y - y_f|^2`` and ``h = c_h/2 |y - y_h|^2`` the lemma gives
    ``C = c_h (1 - alpha (c_f + c_h) / 2) / c_f``; solved for alpha.
    """
    alpha = 2.0 * (1.0 - C * curvature_f / curvature_h) / (curvature_f + curvature_h)
    if alpha <= 0:
        raise ValueError(f"C = {C} needs C < curvature_h / curvature_f = {curvature_h / curvature_f}")
    return alpha


def apollonius_table(cfg: ApolloniusConfig) -> pd.DataFrame:
    """One row per (panel, grid point): the ratio ``|y - y_f| / |y - y_h|``, whether the point is in
    the region ``ratio <= C``, and the change of ``f + h`` after one gradient step on ``h``."""
    generator = torch.Generator().manual_seed(cfg.seed)
    y_f = torch.randn(2, generator=generator).to(DTYPE)  # authors' draw order: y_f*, then y_h*
    y_h = torch.randn(2, generator=generator).to(DTYPE)
    points = _grid(cfg.extent, cfg.grid_step)
    ratio = (points - y_f).norm(dim=-1) / (points - y_h).norm(dim=-1)
    frames = []
    for panel, (C, curvature_h) in enumerate(cfg.panels):
        alpha = apollonius_step_size(C, cfg.curvature_f, curvature_h)

        def total(y: Tensor, curvature_h: float = curvature_h) -> Tensor:
            return 0.5 * cfg.curvature_f * (y - y_f).pow(2).sum(-1) + 0.5 * curvature_h * (y - y_h).pow(2).sum(-1)

        after = points - alpha * curvature_h * (points - y_h)
        change = total(after) - total(points)
        frames.append(
            pd.DataFrame(
                {
                    "panel": panel,
                    "C": C,
                    "alpha": alpha,
                    "curvature_f": cfg.curvature_f,
                    "curvature_h": curvature_h,
                    "x1": points[:, 0].numpy(),
                    "x2": points[:, 1].numpy(),
                    "ratio": ratio.numpy(),
                    "inside": (ratio <= C).numpy(),
                    "energy_change": change.numpy(),
                    "rise": (change > 1e-12).numpy(),
                    "yf1": y_f[0].item(),
                    "yf2": y_f[1].item(),
                    "yh1": y_h[0].item(),
                    "yh2": y_h[1].item(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------------------------
# Figures 2-3: alternating minimisation of two quadratics
# ----------------------------------------------------------------------------------------------


@dataclass
class AlternatingQuadratics:
    """``e1 = |Y W1|^2 + |Y - B1|^2`` (feature side, FF-like), ``e2 = |W2 Y|^2 + |Y - B2|^2``
    (token side, attention-like); squared norms without 1/2, as in the authors' script."""

    W1: Tensor  # (d, d)
    W2: Tensor  # (n, n)
    B1: Tensor  # (n, d)
    B2: Tensor  # (n, d)

    def e1(self, Y: Tensor) -> Tensor:
        return (Y @ self.W1).pow(2).sum() + (Y - self.B1).pow(2).sum()

    def e2(self, Y: Tensor) -> Tensor:
        return (self.W2 @ Y).pow(2).sum() + (Y - self.B2).pow(2).sum()

    def grad1(self, Y: Tensor) -> Tensor:
        return 2.0 * (Y @ self.W1 @ self.W1.T + Y - self.B1)

    def grad2(self, Y: Tensor) -> Tensor:
        return 2.0 * (self.W2.T @ (self.W2 @ Y) + Y - self.B2)

    def lipschitz(self) -> tuple[float, float]:
        """Smoothness constants ``2 (|W|_2^2 + 1)`` of e1 and e2."""
        return tuple(2.0 * (torch.linalg.matrix_norm(M, ord=2).item() ** 2 + 1.0) for M in (self.W1, self.W2))

    def minimiser(self) -> Tensor:
        """Exact minimiser of ``e1 + e2``: solves ``W2^T W2 Y + Y (W1 W1^T + 2 I) = B1 + B2``."""
        a, U = torch.linalg.eigh(self.W2.T @ self.W2)
        b, V = torch.linalg.eigh(self.W1 @ self.W1.T + 2.0 * torch.eye(self.W1.shape[0], dtype=self.W1.dtype))
        rotated = U.T @ (self.B1 + self.B2) @ V
        return U @ (rotated / (a.unsqueeze(1) + b.unsqueeze(0))) @ V.T

    @classmethod
    def draw(cls, generator: torch.Generator, n: int, d: int, scale: float = 0.1, dtype=DTYPE):
        """The authors' draw order: W1, W2 (Gaussian), B1, B2 (uniform [0, 1)), in float32."""
        W1 = scale * torch.randn(d, d, generator=generator)
        W2 = scale * torch.randn(n, n, generator=generator)
        B1 = torch.rand(n, d, generator=generator)
        B2 = torch.rand(n, d, generator=generator)
        return cls(*(t.to(dtype) for t in (W1, W2, B1, B2)))


def alternating_table(cfg: AlternatingConfig) -> pd.DataFrame:
    """The alternating trajectory, the authors' gradient-descent reference and the exact minimiser.

    Rows: ``kind = trace`` (step 0 is the initial point ``Y^(0)``, then one row per step, the
    component stepped on in ``component``), ``kind = gd_reference`` (``reference_steps`` of gradient
    descent on ``e1 + e2``, the authors' "Y_h*") and ``kind = exact_minimum``. Columns ``pc1, pc2``
    are coordinates in the 2-D PCA plane of the trace; ``e1, e2, total`` the energies.
    """
    from sklearn.decomposition import PCA

    generator = torch.Generator().manual_seed(cfg.seed)
    problem = AlternatingQuadratics.draw(generator, cfg.n, cfg.d, cfg.weight_scale)
    Y = cfg.init_scale * torch.rand(cfg.n, cfg.d, generator=generator).to(DTYPE)
    initial = Y.clone()

    trace, components = [Y], ["initial"]
    for step in range(cfg.steps):
        gradient = problem.grad1 if step % 2 == 0 else problem.grad2
        Y = Y - cfg.lr * gradient(Y)
        trace.append(Y)
        components.append("e1" if step % 2 == 0 else "e2")

    reference = initial.clone()
    for _ in range(cfg.reference_steps):
        reference = reference - cfg.reference_lr * (problem.grad1(reference) + problem.grad2(reference))
    exact = problem.minimiser()

    stacked = torch.stack(trace).reshape(len(trace), -1).numpy()
    pca = PCA(n_components=2, svd_solver="full").fit(stacked)
    extra = torch.stack([reference, exact]).reshape(2, -1).numpy()
    coordinates = pca.transform(stacked)
    extra_coordinates = pca.transform(extra)

    states = [*trace, reference, exact]
    kinds = ["trace"] * len(trace) + ["gd_reference", "exact_minimum"]
    steps = [*range(len(trace)), cfg.reference_steps, -1]
    e1 = [problem.e1(s).item() for s in states]
    e2 = [problem.e2(s).item() for s in states]
    L1, L2 = problem.lipschitz()
    return pd.DataFrame(
        {
            "kind": kinds,
            "step": steps,
            "component": [*components, "sum", "sum"],
            "pc1": [*coordinates[:, 0], *extra_coordinates[:, 0]],
            "pc2": [*coordinates[:, 1], *extra_coordinates[:, 1]],
            "e1": e1,
            "e2": e2,
            "total": [a + b for a, b in zip(e1, e2, strict=True)],
            "lr": cfg.lr,
            "lipschitz_e1": L1,
            "lipschitz_e2": L2,
            "zoom": cfg.zoom,
        }
    )


# ----------------------------------------------------------------------------------------------
# Figure 4: kappa regions
# ----------------------------------------------------------------------------------------------


def kappa_ratio(x: Tensor, step: Tensor) -> Tensor:
    """``r(x) = sum_k min(0, x_k^2 - s_k^2) / |s|^2`` with ``s = alpha g(x)`` (docs/theory.md §3.2), ``<= 0``."""
    return torch.clamp_max(x.pow(2) - step.pow(2), 0.0).sum(-1) / step.pow(2).sum(-1).clamp_min(1e-300)


def kappa_table(cfg: KappaConfig) -> pd.DataFrame:
    """One row per grid point: ``r(x)`` and the share ``|ReLU(x - s) - x|^2 / |s|^2`` of the
    gradient step that the ReLU step keeps, for ``E(x) = 1/2 x W x^T + 1/2 |x - b|^2`` with
    ``W = G G^T`` (authors' draw: ``G``, then ``b``)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    G = torch.randn(2, 2, generator=generator).to(DTYPE)
    W = G @ G.T
    b = torch.randn(1, 2, generator=generator).to(DTYPE)
    x = _grid(cfg.extent, cfg.grid_step)
    step = cfg.alpha * (x @ W + x - b)
    moved = (torch.clamp_min(x - step, 0.0) - x).pow(2).sum(-1)
    return pd.DataFrame(
        {
            "x1": x[:, 0].numpy(),
            "x2": x[:, 1].numpy(),
            "r": kappa_ratio(x, step).numpy(),
            "kept_share": (moved / step.pow(2).sum(-1).clamp_min(1e-300)).numpy(),
            "feasible": (x >= 0).all(-1).numpy(),
            "alpha": cfg.alpha,
            "lipschitz": 1.0 + torch.linalg.eigvalsh(W)[-1].item(),
        }
    )


# Geometry of the Apollonius lemma (docs/theory.md §3.1), shared by Figure 1 and the claims.


@dataclass
class QuadraticPair:
    """``f(y) = 1/2 (y - y_f)^T A (y - y_f)`` and ``h(y) = 1/2 (y - y_h)^T H (y - y_h)``."""

    A: Tensor
    H: Tensor
    y_f: Tensor
    y_h: Tensor

    def f(self, y: Tensor) -> Tensor:
        r = y - self.y_f
        return 0.5 * ((r @ self.A) * r).sum(-1)

    def h(self, y: Tensor) -> Tensor:
        r = y - self.y_h
        return 0.5 * ((r @ self.H) * r).sum(-1)

    def h_step(self, y: Tensor, alpha: float) -> Tensor:
        return y - alpha * (y - self.y_h) @ self.H

    def constant(self, alpha: float) -> float:
        """``C = mu_h (1 - alpha (L_f + L_h) / 2) / L_f`` of the Apollonius lemma."""
        L_f = torch.linalg.eigvalsh(self.A)[-1].item()
        eig_h = torch.linalg.eigvalsh(self.H)
        return eig_h[0].item() * (1.0 - alpha * (L_f + eig_h[-1].item()) / 2.0) / L_f

    def step_bound(self) -> float:
        return 2.0 / (torch.linalg.eigvalsh(self.A)[-1].item() + torch.linalg.eigvalsh(self.H)[-1].item())

    def ratio(self, y: Tensor) -> Tensor:
        return (y - self.y_f).norm(dim=-1) / (y - self.y_h).norm(dim=-1)


def apollonius_circle(y_f: Tensor, y_h: Tensor, C: float) -> tuple[Tensor, float]:
    """Centre and radius of ``{y : |y - y_f| = C |y - y_h|}`` for ``C != 1`` (docs/theory.md §3.1)."""
    if C <= 0 or C == 1:
        raise ValueError(f"C: expected a positive value other than 1, got {C}")
    centre = (y_f - C**2 * y_h) / (1.0 - C**2)
    radius = C * (y_f - y_h).norm().item() / abs(1.0 - C**2)
    return centre, radius
