"""The paper's checkable statements, each with a randomised numerical check (docs/theory.md §6).

``CLAIMS`` maps a short id to a :class:`Claim`. ``Claim.check(trials, seed)`` draws random
instances (sizes, scales, weights, masks) in float64 and returns a :class:`ClaimResult`.

Kinds of claim:

* ``identity``: two expressions agree (to ``1e-10`` relative); a violation is a mismatch.
* ``theorem``: an energy does not increase under its stated conditions; must show 0 violations.
* ``counterexample``: the same inequality with its condition dropped; every such check starts
  with an explicit counter-example, so it must show violations (energy increases).
* ``report``: a statement that is not a theorem; we report how often and by how much the energy
  rises, without an expectation.

A violation is counted when the energy after a step exceeds the energy before by more than
``1e-10 (1 + |E|)``; ``max_increase`` is the largest such rise (0 when none).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .bounds import ATTENTION_STEP_BOUND
from .diagnostics import active_steps, relative_spread
from .energy import attention_energy, ffn_energy, layernorm_projection, pairwise_energy
from .models import UnfoldedTransformer, authors_ffn_normalisation
from .reference import pairwise_energy_index_lists
from .steps import attention_step, ffn_step, relu_step
from .synthetic import AlternatingQuadratics, QuadraticPair, kappa_ratio
from .synthetic import apollonius_circle as circle_geometry

__all__ = ["CLAIMS", "Claim", "ClaimResult", "claim", "claim_offset", "energy_claims", "run_all"]

DTYPE = torch.float64
#: Relative tolerance of every claims tally: a violation is ``after - (before - slack) > TOLERANCE (1 + |before|)``,
#: an identity error is ``max |left - right| / (1 + max |.|) > TOLERANCE``.
TOLERANCE = 1e-10
KINDS = ("identity", "theorem", "counterexample", "report")
#: Where a statement comes from: stated in the paper, a property of the authors' code, our own
#: derivation, or our reading of an unclear part of the paper.
SOURCES = ("paper", "code", "derived", "hypothesis")


@dataclass
class Tally:
    """Accumulates trials, violations, the largest energy rise and the largest identity error."""

    trials: int = 0
    violations: int = 0
    max_increase: float = 0.0
    max_error: float = 0.0
    explicit_trials: int = 0  # the explicit counter-example instance(s), part of trials
    explicit_violations: int = 0
    active_trials: int | None = None  # steps from a non-collapsed state (full-layer reports only)
    active_violations: int | None = None

    def descent(self, before: Tensor, after: Tensor, slack: Tensor | float = 0.0, *, explicit: bool = False,
                active: Tensor | None = None) -> None:
        """Record one or more trials of the inequality ``after <= before - slack``.

        ``explicit`` marks an explicit counter-example (counted apart from the
        random search); ``active`` flags which trials start from a non-collapsed state."""
        before, after = torch.as_tensor(before).reshape(-1), torch.as_tensor(after).reshape(-1)
        excess = after - (before - slack)
        tolerance = TOLERANCE * (1.0 + before.abs())
        violated = excess > tolerance
        self.trials += before.numel()
        self.violations += int(violated.sum())
        if explicit:
            self.explicit_trials += before.numel()
            self.explicit_violations += int(violated.sum())
        if active is not None:
            active = torch.as_tensor(active).reshape(-1)
            self.active_trials = (self.active_trials or 0) + int(active.sum())
            self.active_violations = (self.active_violations or 0) + int((violated & active).sum())
        rises = (after - before) > tolerance
        if rises.any():
            self.max_increase = max(self.max_increase, (after - before)[rises].max().item())

    def identity(self, left: Tensor, right: Tensor) -> None:
        """Record one trial of ``left == right`` (relative to the larger magnitude)."""
        scale = 1.0 + max(left.abs().max().item(), right.abs().max().item())
        error = (left - right).abs().max().item() / scale
        self.trials += 1
        self.violations += int(error > TOLERANCE)
        self.max_error = max(self.max_error, error)

    def condition(self, holds: bool, error: float = 0.0) -> None:
        """Record one trial of a boolean property."""
        self.trials += 1
        self.violations += int(not holds)
        self.max_error = max(self.max_error, error)


@dataclass(frozen=True)
class ClaimResult:
    claim: str
    kind: str
    statement: str
    conditions: str
    source: str
    section: str
    trials: int
    violations: int
    max_increase: float
    max_error: float
    explicit_trials: int = 0
    explicit_violations: int = 0
    active_trials: int | None = None
    active_violations: int | None = None

    @property
    def search_trials(self) -> int:
        return self.trials - self.explicit_trials

    @property
    def search_violations(self) -> int:
        return self.violations - self.explicit_violations

    @property
    def verdict(self) -> str:
        if self.kind in ("identity", "theorem"):
            return "holds" if self.violations == 0 else f"FAILS ({self.violations}/{self.trials})"
        if self.kind == "counterexample":
            explicit = (f"explicit instance {'raises' if self.explicit_violations else 'does NOT raise'} the energy"
                        if self.explicit_trials else "no explicit instance")
            return f"{explicit}; search: {self.search_violations}/{self.search_trials} rise"
        text = f"rises in {self.violations}/{self.trials}" if self.violations else "no rise seen"
        if self.active_trials is not None:
            text += f" ({self.active_violations}/{self.active_trials} active steps)"
        return text

    @property
    def failed(self) -> bool:
        """An identity or theorem with a violation, or a counter-example whose explicit instance does
        not show its increase. The random search of a counter-example only reports (it depends on
        the seed at small trial counts)."""
        if self.kind in ("identity", "theorem"):
            return self.violations > 0
        if self.kind == "counterexample":
            return self.explicit_trials > 0 and self.explicit_violations < self.explicit_trials
        return False

    @property
    def as_expected(self) -> bool | None:
        """Whether the outcome is what the claim's kind predicts (None for reports)."""
        if self.kind == "report":
            return None
        if self.kind == "counterexample":
            return not self.failed and self.violations > 0
        return not self.failed

    def as_row(self) -> dict:
        return {
            "claim": self.claim,
            "kind": self.kind,
            "source": self.source,
            "statement": self.statement,
            "conditions": self.conditions,
            "section": self.section,
            "trials": self.trials,
            "violations": self.violations,
            "explicit_trials": self.explicit_trials,
            "explicit_violations": self.explicit_violations,
            "search_trials": self.search_trials,
            "search_violations": self.search_violations,
            "active_trials": self.active_trials,
            "active_violations": self.active_violations,
            "max_increase": self.max_increase,
            "max_error": self.max_error,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Claim:
    id: str
    kind: str
    statement: str
    conditions: str
    source: str
    section: str
    run: Callable[[int, torch.Generator], Tally] = field(repr=False)

    def check(self, trials: int = 100, seed: int = 0) -> ClaimResult:
        if trials < 1:
            raise ValueError(f"trials: expected a positive integer, got {trials}")
        generator = torch.Generator().manual_seed(seed)
        tally = self.run(trials, generator)
        return ClaimResult(
            self.id,
            self.kind,
            self.statement,
            self.conditions,
            self.source,
            self.section,
            tally.trials,
            tally.violations,
            tally.max_increase,
            tally.max_error,
            tally.explicit_trials,
            tally.explicit_violations,
            tally.active_trials,
            tally.active_violations,
        )


# --------------------------------------------------------------------------------------------
# Random instances
# --------------------------------------------------------------------------------------------


#: The registry, in definition order: each check below registers itself with :func:`claim`.
CLAIMS: dict[str, Claim] = {}


def claim(kind: str, source: str, statement: str, conditions: str, section: str):
    """Register the decorated check as a claim whose id is the function's name.

    ``kind`` is one of :data:`KINDS`, ``source`` one of :data:`SOURCES`; ``section`` cites
    docs/theory.md. The check takes ``(trials, generator)`` and returns its :class:`Tally`."""
    if kind not in KINDS:
        raise ValueError(f"claim kind: expected one of {KINDS}, got {kind!r}")
    if source not in SOURCES:
        raise ValueError(f"claim source: expected one of {SOURCES}, got {source!r}")

    def register(check: Callable[[int, torch.Generator], Tally]) -> Callable[[int, torch.Generator], Tally]:
        if check.__name__ in CLAIMS:
            raise ValueError(f"claim {check.__name__!r} is registered twice")
        CLAIMS[check.__name__] = Claim(check.__name__, kind, statement, conditions, source, section, check)
        return check

    return register


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=gen, dtype=DTYPE).item()


def _integer(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in ``[low, high]``."""
    return int(torch.randint(low, high + 1, (), generator=gen))


def _normal(gen: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return scale * torch.randn(*shape, generator=gen, dtype=DTYPE)


def _sequence(gen: torch.Generator, max_n: int = 12, max_d: int = 6) -> tuple[Tensor, Tensor, int, int]:
    """A batch of sequences ``(b, n, d)`` with random scale and a mask keeping >= 2 tokens each."""
    b, n, d = _integer(gen, 1, 3), _integer(gen, 2, max_n), _integer(gen, 1, max_d)
    Y = _normal(gen, b, n, d, scale=math.exp(_uniform(gen, -1.5, 1.5)))
    mask = torch.rand(b, n, generator=gen) < _uniform(gen, 0.5, 1.0)
    mask[:, :2] = True
    return Y, mask, n, d


def _matrix(gen: torch.Generator, d: int, k: int | None = None) -> Tensor:
    """A Gaussian ``(d, k)`` matrix with a random overall scale."""
    return _normal(gen, d, k or d, scale=math.exp(_uniform(gen, -1.0, 0.7)) / math.sqrt(d))


def _well_conditioned(gen: torch.Generator, d: int) -> Tensor:
    """``Q diag(s)`` with ``Q`` orthogonal and ``s`` in [0.5, 1.5]: an invertible metric factor."""
    Q, _ = torch.linalg.qr(_normal(gen, d, d))
    return Q * (0.5 + torch.rand(d, generator=gen, dtype=DTYPE))


def _symmetric(gen: torch.Generator, d: int, low: float, high: float) -> Tensor:
    """A symmetric matrix with eigenvalues drawn uniformly in ``[low, high]``."""
    Q, _ = torch.linalg.qr(_normal(gen, d, d))
    eigenvalues = low + (high - low) * torch.rand(d, generator=gen, dtype=DTYPE)
    return (Q * eigenvalues) @ Q.T


def _laplacian_terms(Y: Tensor, W: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``Gamma (b, n, n)`` with ``gamma_ij = exp(-1/2 |(y_i - y_j) W|^2)`` over real pairs, ``D`` its row sums."""
    Z = Y @ W
    distances = (Z.unsqueeze(-2) - Z.unsqueeze(-3)).pow(2).sum(-1)  # explicit, independent of energy.py
    weights = mask.to(DTYPE)
    gamma = torch.exp(-0.5 * distances) * weights.unsqueeze(-1) * weights.unsqueeze(-2)
    return gamma, gamma.sum(-1)


def _pairwise_gradient(Y: Tensor, W: Tensor, mask: Tensor) -> Tensor:
    """``L Y W W^T`` with ``L = D - Gamma`` (docs/theory.md §2.1)."""
    gamma, degree = _laplacian_terms(Y, W, mask)
    return (degree.unsqueeze(-1) * Y - gamma @ Y) @ (W @ W.T)


def _attention_bound(Y: Tensor, W: Tensor, mask: Tensor) -> Tensor:
    """``2 / lambda_max(D^-1/2 L D^-1/2)`` per sequence: the step-size bound of the MM descent."""
    gamma, degree = _laplacian_terms(Y, W, mask)
    laplacian = torch.diag_embed(degree) - gamma
    inv_sqrt = torch.where(degree > 0, degree.rsqrt(), torch.zeros_like(degree))
    normalised = inv_sqrt.unsqueeze(-1) * laplacian * inv_sqrt.unsqueeze(-2)
    return 2.0 / torch.linalg.eigvalsh(normalised)[..., -1]


# --------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------


@claim("identity", "derived",
       "grad of the pairwise energy is L Y W W^T",
       "any W, masks", "§2.1")
def pairwise_gradient(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        Y, mask, _, d = _sequence(gen)
        W = _matrix(gen, d, _integer(gen, 1, d + 2))
        Y.requires_grad_(True)
        (autograd,) = torch.autograd.grad(pairwise_energy(Y, W, mask).sum(), Y)
        tally.identity(autograd * mask.unsqueeze(-1), _pairwise_gradient(Y.detach(), W, mask))
    return tally


@claim("identity", "derived",
       "attention step = Y - alpha D^-1 grad E_p (W W^T)^-1",
       "W invertible, alpha in (0, 1]", "§2.1")
def attention_is_preconditioned_step(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        Y, mask, _, d = _sequence(gen)
        W = _well_conditioned(gen, d)
        alpha = _uniform(gen, 0.05, 1.0)
        _, degree = _laplacian_terms(Y, W, mask)
        precond = _pairwise_gradient(Y, W, mask) @ torch.linalg.inv(W @ W.T)
        expected = Y - alpha * precond / degree.clamp_min(1e-300).unsqueeze(-1)
        step = attention_step(Y, W, mask, alpha)
        keep = mask.unsqueeze(-1)
        tally.identity(step * keep, expected * keep)
    return tally


@claim("theorem", "derived",
       "attention step never increases the pairwise energy",
       "0 < alpha <= 2 (half the draws at alpha = 2), any W", "§2.1")
def attention_descent(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        Y, mask, _, d = _sequence(gen)
        W = _matrix(gen, d, _integer(gen, 1, d + 2))
        for i in range(Y.shape[0]):
            # half the draws at the bound itself, where a loose proof would fail first
            alpha = ATTENTION_STEP_BOUND * (1.0 if _integer(gen, 0, 1) else _uniform(gen, 0.0, 1.0))
            y, m = Y[i : i + 1], mask[i : i + 1]
            tally.descent(pairwise_energy(y, W, m), pairwise_energy(attention_step(y, W, m, alpha), W, m))
    return tally


@claim("theorem", "derived",
       "the kernel matrix is PSD, so lambda_max(D^-1/2 L D^-1/2) <= 1 and the MM step bound is >= 2",
       "any W, masks", "§2.1")
def attention_kernel_bound(trials: int, gen: torch.Generator) -> Tally:
    """The kernel matrix is PSD, so ``lambda_max(D^-1/2 L D^-1/2) <= 1``: the MM bound is at least 2."""
    tally = Tally()
    for _ in range(trials):
        Y, mask, _, d = _sequence(gen)
        W = _matrix(gen, d, _integer(gen, 1, d + 2)) * math.exp(_uniform(gen, -1.0, 2.0))
        gamma, _ = _laplacian_terms(Y, W, mask)
        smallest = torch.linalg.eigvalsh(gamma + torch.diag_embed((~mask).to(DTYPE)))[..., 0]  # padded rows: 1
        bound = _attention_bound(Y, W, mask)
        for i in range(Y.shape[0]):
            excess = max(0.0, ATTENTION_STEP_BOUND - bound[i].item(), -smallest[i].item())
            tally.condition(excess <= TOLERANCE, excess)
    return tally


def _one_dimensional(values: list[float]) -> Tensor:
    return torch.tensor(values, dtype=DTYPE).reshape(1, -1, 1)


ONE = torch.ones(1, 1, dtype=DTYPE)


@claim("counterexample", "derived",
       "attention step with alpha above the bound",
       "alpha in (1, 3] x bound; Y=[0,1], alpha=3", "§2.1")
def attention_large_step(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    Y = _one_dimensional([0.0, 1.0])  # docs/theory.md §2.1: alpha = 3 > 2.65 raises E_p.
    tally.descent(pairwise_energy(Y, ONE), pairwise_energy(attention_step(Y, ONE, alpha=3.0), ONE), explicit=True)
    for _ in range(trials - 1):
        Y, mask, _, d = _sequence(gen)
        Y, mask = Y[:1], mask[:1]
        W = _matrix(gen, d)
        alpha = _attention_bound(Y, W, mask).item() * _uniform(gen, 1.0, 3.0)
        tally.descent(pairwise_energy(Y, W, mask), pairwise_energy(attention_step(Y, W, mask, alpha), W, mask))
    return tally


def _varied_norm_tokens(gen: torch.Generator) -> Tensor:
    """1-D tokens of very different sizes, where the key bias matters most."""
    n = _integer(gen, 2, 6)
    return _normal(gen, 1, n, 1, scale=_uniform(gen, 0.5, 6.0))


@claim("counterexample", "derived",
       "plain softmax (no key bias) on the pairwise energy",
       "tokens of unequal norm", "§2.1")
def attention_without_key_bias(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    Y = _one_dimensional([0.298, 0.174, 5.855, -0.554])  # docs/theory.md §2.1: -2.455 -> -0.746.
    tally.descent(pairwise_energy(Y, ONE), pairwise_energy(attention_step(Y, ONE, variant="no_bias"), ONE), explicit=True)
    for _ in range(trials - 1):
        Y = _varied_norm_tokens(gen)
        W = ONE * _uniform(gen, 0.5, 1.5)
        tally.descent(pairwise_energy(Y, W), pairwise_energy(attention_step(Y, W, variant="no_bias"), W))
    return tally


@claim("report", "code",
       "attention step on pairwise energy + 1/2|YW|^2 (the authors' energy)",
       "alpha = 1, random instances", "§2.1")
def attention_with_regulariser(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    Y = _one_dimensional([-8.02, -8.15, 5.82, -5.74])  # docs/theory.md §2.1: 97.661 -> 97.893.
    tally.descent(attention_energy(Y, ONE), attention_energy(attention_step(Y, ONE), ONE), explicit=True)
    for _ in range(trials - 1):
        Y, mask, _, d = _sequence(gen)
        W = _matrix(gen, d)
        tally.descent(attention_energy(Y, W, mask), attention_energy(attention_step(Y, W, mask), W, mask))
    return tally


@claim("report", "code",
       "authors' attention (W^T W, no key bias) on their energy (W W^T)",
       "d in {2, 20}, Xavier W", "§2.1, §5")
def attention_authors_variant(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        d = 2 if _integer(gen, 0, 1) else 20
        n = _integer(gen, 2, 12)
        W = _normal(gen, d, d, scale=math.sqrt(1.0 / d))  # Xavier normal, as in the authors' code
        Y = _normal(gen, 1, n, d)
        after = attention_step(Y, W, variant="authors")
        tally.descent(attention_energy(Y, W), attention_energy(after, W))
    return tally


# --------------------------------------------------------------------------------------------
# Feed-forward, ReLU, layer norm
# --------------------------------------------------------------------------------------------


def _ffn_instance(gen: torch.Generator, low: float = -0.95, high: float = 0.95):
    Y, mask, _, d = _sequence(gen)
    Wf = _symmetric(gen, d, _uniform(gen, low, 0.0), _uniform(gen, 0.0, high))
    B = _normal(gen, d)
    lipschitz = 1.0 + torch.linalg.eigvalsh(Wf)[-1].item()
    return Y, mask, Wf, B, lipschitz


@claim("identity", "derived",
       "ffn step = Y - alpha autograd grad E_ff",
       "Wf symmetric", "§2.2")
def ffn_is_gradient_step(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        Y, mask, Wf, B, _ = _ffn_instance(gen, -3.0, 3.0)
        alpha = _uniform(gen, 0.0, 2.0)
        Y.requires_grad_(True)
        (gradient,) = torch.autograd.grad(ffn_energy(Y, Wf, B).sum(), Y)
        tally.identity(ffn_step(Y.detach(), Wf, B, alpha), Y.detach() - alpha * gradient)
    return tally


def _ffn_step_trials(tally: Tally, count: int, gen: torch.Generator, low: float, high: float,
                     anchored: bool = False) -> Tally:
    """Feed-forward steps with ``alpha`` drawn in ``[low, high] x 2/L``; ``anchored``: on the recall term
    (:func:`_recall_instance`, ``L = 1 + recall + lambda_max(Wf)``)."""
    for _ in range(count):
        if anchored:
            Y, mask, Wf, B, X, recall, lipschitz = _recall_instance(gen, -0.99, 3.0)
            anchor = {"anchor": X, "recall": recall}
        else:
            (Y, mask, Wf, B, lipschitz), anchor = _ffn_instance(gen, -0.99, 3.0), {}
        alpha = _uniform(gen, low, high) * 2.0 / lipschitz
        tally.descent(ffn_energy(Y, Wf, B, mask, **anchor),
                      ffn_energy(ffn_step(Y, Wf, B, alpha, **anchor), Wf, B, mask, **anchor))
    return tally


@claim("theorem", "derived",
       "ffn step never increases E_ff",
       "0 < alpha < 2/lambda_max(I + Wf), Wf > -I", "§2.2")
def ffn_descent(trials: int, gen: torch.Generator) -> Tally:
    return _ffn_step_trials(Tally(), trials, gen, 0.0, 1.0)


@claim("counterexample", "derived",
       "ffn step with alpha above 2/L",
       "alpha in [1, 1.5] x 2/L; Wf=diag(1.5,0), alpha=1", "§2.2")
def ffn_large_step(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    Wf, B = torch.diag(torch.tensor([1.5, 0.0], dtype=DTYPE)), torch.zeros(2, dtype=DTYPE)
    Y = torch.tensor([[[1.0, 0.0]]], dtype=DTYPE)  # docs/theory.md §2.2: 1.25 -> 2.8125.
    tally.descent(ffn_energy(Y, Wf, B), ffn_energy(ffn_step(Y, Wf, B, 1.0), Wf, B), explicit=True)
    return _ffn_step_trials(tally, trials - 1, gen, 1.0, 1.5)


@claim("theorem", "derived",
       "ReLU(ffn step) decreases E_ff by (1/alpha - L/2)|Y'-Y|^2",
       "Y >= 0, alpha < 2/L", "§2.3")
def relu_prox_descent(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        Y, mask, Wf, B, lipschitz = _ffn_instance(gen, -0.99, 3.0)
        Y = Y.abs()  # feasible start
        alpha = _uniform(gen, 0.01, 0.99) * 2.0 / lipschitz
        after = relu_step(ffn_step(Y, Wf, B, alpha))
        moved = ((after - Y).pow(2).sum(-1) * mask).sum(-1)
        guaranteed = (1.0 / alpha - lipschitz / 2.0) * moved
        tally.descent(ffn_energy(Y, Wf, B, mask), ffn_energy(after, Wf, B, mask), guaranteed)
    return tally


@claim("counterexample", "derived",
       "ReLU(ffn step) from a start with negative entries",
       "Y unconstrained; x=-1, b=-1", "§2.3")
def relu_infeasible_start(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    Y, Wf, B = -torch.ones(1, 1, 1, dtype=DTYPE), torch.zeros(1, 1, dtype=DTYPE), -torch.ones(1, dtype=DTYPE)
    tally.descent(ffn_energy(Y, Wf, B), ffn_energy(relu_step(ffn_step(Y, Wf, B, 1.0)), Wf, B), explicit=True)  # 0 -> 0.5
    for _ in range(trials - 1):
        Y, mask, Wf, B, lipschitz = _ffn_instance(gen, -0.99, 3.0)
        B = -B.abs()  # a minimiser with negative entries: the constraint is active
        alpha = _uniform(gen, 0.01, 0.99) * 2.0 / lipschitz
        after = relu_step(ffn_step(Y, Wf, B, alpha))
        tally.descent(ffn_energy(Y, Wf, B, mask), ffn_energy(after, Wf, B, mask))
    return tally


def _on_sphere(gen: torch.Generator, *shape: int) -> Tensor:
    return layernorm_projection(_normal(gen, *shape))


@claim("identity", "derived",
       "LN(y) is the nearest point of {sum z = 0, |z|^2 = d}",
       "no affine, eps = 0", "§1.4")
def layernorm_is_projection(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        d = _integer(gen, 2, 12)
        y = _normal(gen, d, scale=math.exp(_uniform(gen, -2.0, 2.0)))
        z = layernorm_projection(y)
        constraint_error = max(abs(z.sum().item()), abs(z.pow(2).sum().item() - d) / d)
        competitors = _on_sphere(gen, 256, d)  # other points of S, none may be closer to y
        closest = (competitors - y).norm(dim=-1).min().item()
        tally.condition(
            constraint_error < TOLERANCE and (z - y).norm().item() <= closest + TOLERANCE, constraint_error
        )
    return tally


def _layernorm_instance(gen: torch.Generator):
    Y, mask, _, d = _sequence(gen)
    d = max(d, 2)
    Y = _on_sphere(gen, Y.shape[0], Y.shape[1], d)
    Wf = _symmetric(gen, d, _uniform(gen, -0.99, 0.0), _uniform(gen, 0.0, 3.0))
    B = _normal(gen, d, scale=math.exp(_uniform(gen, -1.0, 1.5)))
    return Y, mask, Wf, B, 1.0 + torch.linalg.eigvalsh(Wf)[-1].item()


@claim("theorem", "derived",
       "LN(ffn step) never increases E_ff",
       "Y on the LN set, alpha <= 1/L", "§2.4")
def layernorm_descent(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        Y, mask, Wf, B, lipschitz = _layernorm_instance(gen)
        alpha = _uniform(gen, 0.0, 1.0) / lipschitz
        after = layernorm_projection(ffn_step(Y, Wf, B, alpha))
        tally.descent(ffn_energy(Y, Wf, B, mask), ffn_energy(after, Wf, B, mask))
    return tally


@claim("counterexample", "derived",
       "LN(ffn step) with 1/L < alpha < 2/L",
       "non-convex set; d=2 explicit case", "§2.4")
def layernorm_large_step(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    # d = 2: S is the two points +-(1, -1). From y = (1, -1) with B = 0.1 y and alpha = 1.9 (L = 1)
    # the step lands at -0.71 y and projects to -y, where the energy is higher (0.81 -> 1.21).
    Y = torch.tensor([[[1.0, -1.0]]], dtype=DTYPE)
    Wf, B = torch.zeros(2, 2, dtype=DTYPE), 0.1 * Y[0, 0]
    tally.descent(ffn_energy(Y, Wf, B), ffn_energy(layernorm_projection(ffn_step(Y, Wf, B, 1.9)), Wf, B), explicit=True)
    for _ in range(trials - 1):
        Y, mask, Wf, B, lipschitz = _layernorm_instance(gen)
        alpha = _uniform(gen, 1.0, 2.0) / lipschitz
        after = layernorm_projection(ffn_step(Y, Wf, B, alpha))
        tally.descent(ffn_energy(Y, Wf, B, mask), ffn_energy(after, Wf, B, mask))
    return tally


# --------------------------------------------------------------------------------------------
# Apollonius and kappa lemmas (docs/theory.md §3.1, 5.2)
# --------------------------------------------------------------------------------------------


def _quadratic_pair(gen: torch.Generator) -> QuadraticPair:
    d = _integer(gen, 1, 4)
    return QuadraticPair(
        _symmetric(gen, d, 0.1, _uniform(gen, 0.2, 3.0)),
        _symmetric(gen, d, _uniform(gen, 0.1, 1.0), _uniform(gen, 1.0, 3.0)),
        _normal(gen, d),
        _normal(gen, d),
    )


def _apollonius_points(gen: torch.Generator, pair: QuadraticPair, inside: bool, count: int = 64) -> Tensor:
    """Points around ``y_f`` (scale of the circle) on the requested side of the Apollonius boundary."""
    alpha = _uniform(gen, 0.05, 0.95) * pair.step_bound()
    C = pair.constant(alpha)
    spread = max(C, 0.05) * (pair.y_f - pair.y_h).norm().item() * 2.0
    points = pair.y_f + _normal(gen, count, pair.y_f.numel(), scale=spread)
    keep = pair.ratio(points) <= C if inside else pair.ratio(points) > C
    return points[keep], alpha


def _record_h_step(tally: Tally, pair: QuadraticPair, points: Tensor, alpha: float, explicit: bool = False) -> None:
    """One trial per point: does a gradient step on h raise f + h?"""
    after = pair.h_step(points, alpha)
    tally.descent(pair.f(points) + pair.h(points), pair.f(after) + pair.h(after), explicit=explicit)


def _apollonius_trials(tally: Tally, trials: int, gen: torch.Generator, inside: bool) -> Tally:
    while tally.trials < trials:
        pair = _quadratic_pair(gen)
        points, alpha = _apollonius_points(gen, pair, inside=inside)
        points = points[: trials - tally.trials]
        if len(points):
            _record_h_step(tally, pair, points, alpha)
    return tally


@claim("theorem", "derived",
       "an h-step decreases f + h inside the Apollonius region (our constant C; the paper's is unknown)",
       "|y-y_f| <= C |y-y_h|, C = mu_h(1-alpha(L_f+L_h)/2)/L_f", "§3.1")
def apollonius_lemma(trials: int, gen: torch.Generator) -> Tally:
    return _apollonius_trials(Tally(), trials, gen, inside=True)


@claim("counterexample", "derived",
       "an h-step outside the Apollonius region",
       "|y-y_f| > C |y-y_h|; 1-D y=0.9", "§3.1")
def apollonius_outside(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    one = torch.ones(1, 1, dtype=DTYPE)
    pair = QuadraticPair(one, one, torch.zeros(1, dtype=DTYPE), torch.ones(1, dtype=DTYPE))
    _record_h_step(tally, pair, torch.tensor([[0.9]], dtype=DTYPE), 0.5, explicit=True)  # docs/theory.md §3.1: 0.41 -> 0.4525
    return _apollonius_trials(tally, trials, gen, inside=False)


@claim("identity", "derived",
       "centre (y_f - C^2 y_h)/(1-C^2), radius C|y_f-y_h|/|1-C^2| bound the region",
       "C != 1", "§3.1")
def apollonius_circle(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        y_f, y_h = _normal(gen, 2), _normal(gen, 2)
        C = _uniform(gen, 0.1, 0.9) if _integer(gen, 0, 1) else _uniform(gen, 1.1, 4.0)
        centre, radius = circle_geometry(y_f, y_h, C)
        angle = _normal(gen, 32)
        boundary = centre + radius * torch.stack([angle.cos(), angle.sin()], -1)
        ratio = (boundary - y_f).norm(dim=-1) / (boundary - y_h).norm(dim=-1)
        tally.identity(ratio, torch.full_like(ratio, C))
    return tally


def _kappa_energy(y: Tensor, W: Tensor, b: Tensor) -> Tensor:
    return 0.5 * ((y @ W) * y).sum(-1) + 0.5 * (y - b).pow(2).sum(-1)


@claim("theorem", "derived",
       "ReLU step keeps a (1 + r(x)) share of the gradient step's decrease (our reading of kappa)",
       "x >= 0, alpha < 2/L", "§3.2")
def kappa_lemma(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        d = _integer(gen, 2, 10)
        G = _normal(gen, d, d)
        W = G @ G.T / d
        b = _normal(gen, d)
        lipschitz = 1.0 + torch.linalg.eigvalsh(W)[-1].item()
        alpha = _uniform(gen, 0.05, 0.95) * 2.0 / lipschitz
        x = _normal(gen, 16, d).abs()  # feasible points
        step = alpha * (x @ W + x - b)
        after = relu_step(x - step)
        r = kappa_ratio(x, step)
        moved = (after - x).pow(2).sum(-1)
        # The ReLU step moves at least sqrt(1 + r) times as far as the plain gradient step ...
        tally.descent(-(1.0 + r) * step.pow(2).sum(-1), -moved)
        # ... and so keeps a (1 + r) fraction of its guaranteed decrease.
        guaranteed = (1.0 / alpha - lipschitz / 2.0) * (1.0 + r) * step.pow(2).sum(-1)
        tally.descent(_kappa_energy(x, W, b), _kappa_energy(after, W, b), guaranteed)
    return tally


# --------------------------------------------------------------------------------------------
# The authors' code, the alternating quadratics (Figs. 2-3), the full layer
# --------------------------------------------------------------------------------------------


@claim("identity", "code",
       "Gram energy = index-list energy; FFN = gradient step; normalised Wf spectrum in [0, 0.95]",
       "authors' conventions", "§1.1, §5")
def authors_code_fidelity(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        n, d = _integer(gen, 2, 20), _integer(gen, 1, 8)
        Y, W = _normal(gen, n, d), _normal(gen, d, d, scale=math.sqrt(1.0 / d))
        # Gram-matrix energy equals the authors' per-pair index-list energy.
        tally.identity(attention_energy(Y, W), pairwise_energy_index_lists(Y, W))
        # Their FFN forward, Y @ (-sym(Wf)) + B, is the gradient step with alpha = 1.
        raw, B = _normal(gen, d, d), _normal(gen, d)
        symmetric = 0.5 * (raw + raw.T)
        tally.identity(Y @ (-symmetric) + B, ffn_step(Y, symmetric, B, 1.0))
        # Their weight normalisation leaves a symmetric matrix with spectrum in [0, 0.95].
        normalised = authors_ffn_normalisation(raw)
        spectrum = torch.linalg.eigvalsh(normalised)
        asymmetry = (normalised - normalised.T).abs().max().item()
        tally.condition(
            asymmetry < TOLERANCE and spectrum[0] >= -TOLERANCE and spectrum[-1] <= 0.95 + TOLERANCE, asymmetry
        )
    # The encoder reports num_layers + 1 energies per sequence.
    model = UnfoldedTransformer(6, 12, attention_variant="authors").double()
    energies = model(_normal(gen, 2, 5, 6)).energies
    tally.condition(tuple(energies.shape) == (2, 13) and bool(torch.isfinite(energies).all()))
    return tally


def _alternating_instance(gen: torch.Generator) -> tuple[AlternatingQuadratics, Tensor]:
    n, d = _integer(gen, 4, 40), _integer(gen, 2, 16)
    problem = AlternatingQuadratics.draw(gen, n, d, scale=_uniform(gen, 0.05, 0.4))
    return problem, 2.0 * torch.rand(n, d, generator=gen, dtype=DTYPE)


def _alternating_trials(trials: int, gen: torch.Generator, measured) -> Tally:
    """20 alternating steps (even on e1, odd on e2) per instance, lr < 2/L of both; each step is
    checked against ``measured(problem, step)``, the energy that must not rise."""
    tally = Tally()
    for _ in range(trials):
        problem, Y = _alternating_instance(gen)
        L1, L2 = problem.lipschitz()
        lr = _uniform(gen, 0.05, 0.99) * 2.0 / max(L1, L2)
        for step in range(20):
            energy = measured(problem, step)
            after = Y - lr * (problem.grad1 if step % 2 == 0 else problem.grad2)(Y)
            tally.descent(energy(Y), energy(after))
            Y = after
    return tally


@claim("theorem", "derived",
       "each alternating step decreases its own quadratic",
       "lr < 2/L of both", "§4.2")
def alternating_component_descent(trials: int, gen: torch.Generator) -> Tally:
    return _alternating_trials(trials, gen, lambda problem, step: problem.e1 if step % 2 == 0 else problem.e2)


@claim("report", "derived",
       "alternating steps on e1 + e2 (not a descent method on the sum)",
       "lr < 2/L of both, 20 steps", "§4.2")
def alternating_total_energy(trials: int, gen: torch.Generator) -> Tally:
    return _alternating_trials(trials, gen, lambda problem, step: lambda Y: problem.e1(Y) + problem.e2(Y))


def _full_layer(trials: int, gen: torch.Generator, feasible: bool = True, **layer_options) -> Tally:
    """Six tied layers on a random input; each step judged on the layer's own energy, and flagged
    active when it starts from a non-collapsed state (relative token spread >= COLLAPSE_THRESHOLD).
    ``feasible``: non-negative inputs (where the ReLU indicator is finite); otherwise Gaussian
    inputs with negative entries, as real embeddings have."""
    tally = Tally()
    for _ in range(trials):
        n, d = _integer(gen, 2, 16), _integer(gen, 2, 12)
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=gen)))
        model = UnfoldedTransformer(d, 6, **layer_options).double()
        Y = _normal(gen, 1, n, d, scale=math.exp(_uniform(gen, -1.0, 1.0)))
        trace = model.trace(Y.abs() if feasible else Y)
        active = active_steps(relative_spread(trace.spread))[0]
        tally.descent(trace.before[0], trace.after[0], active=active)
    return tally


@claim("report", "hypothesis",
       "consistent layer (key bias, ffn, ReLU) on E_p + E_ff",
       "6 tied layers, alpha = 1, |Wf| <= 0.95, Y >= 0", "§3.3")
def full_layer_exact(trials: int, gen: torch.Generator) -> Tally:
    return _full_layer(trials, gen, attention_variant="exact", relu=True, regularise_energy=False)


@claim("report", "hypothesis",
       "consistent layer on E_p + E_ff from inputs with negative entries",
       "6 tied layers, alpha = 1, |Wf| <= 0.95, Gaussian Y", "§3.3")
def full_layer_exact_realistic(trials: int, gen: torch.Generator) -> Tally:
    return _full_layer(trials, gen, feasible=False, attention_variant="exact", relu=True, regularise_energy=False)


@claim("report", "code",
       "authors' layer (no key bias, W^T W, ReLU) on their energy",
       "6 tied layers, alpha = 1, Y >= 0", "§5, §3.3")
def full_layer_authors(trials: int, gen: torch.Generator) -> Tally:
    return _full_layer(trials, gen, attention_variant="authors", relu=True, regularise_energy=True)


@claim("report", "code",
       "authors' layer on their energy from inputs with negative entries",
       "6 tied layers, alpha = 1, Gaussian Y", "§5, §3.3")
def full_layer_authors_realistic(trials: int, gen: torch.Generator) -> Tally:
    return _full_layer(trials, gen, feasible=False, attention_variant="authors", relu=True, regularise_energy=True)


# --------------------------------------------------------------------------------------------
# Unfolded variants (residual step sizes, learned step sizes, multi-head energy)
# --------------------------------------------------------------------------------------------


def _multihead_instance(gen: torch.Generator):
    heads, k = _integer(gen, 2, 4), _integer(gen, 1, 3)
    b, n = _integer(gen, 1, 3), _integer(gen, 2, 12)
    Y = _normal(gen, b, n, heads * k, scale=math.exp(_uniform(gen, -1.5, 1.5)))
    mask = torch.rand(b, n, generator=gen) < _uniform(gen, 0.5, 1.0)
    mask[:, :2] = True
    W = torch.stack([_matrix(gen, k) for _ in range(heads)]) * math.exp(_uniform(gen, -1.0, 1.0))
    return Y, mask, W


@claim("identity", "derived",
       "multi-head energy = sum of per-block pairwise terms; its MM step = per-block attention, concatenated",
       "W (H, k, k), d = H k, masks", "§2.6 (extension)")
def multihead_energy_identity(trials: int, gen: torch.Generator) -> Tally:
    """The multi-head energy and its MM step are the per-block single-head ones, summed and concatenated."""
    tally = Tally()
    for _ in range(trials):
        Y, mask, W = _multihead_instance(gen)
        heads, k = W.shape[0], W.shape[1]
        blocks = [Y[..., h * k : (h + 1) * k] for h in range(heads)]
        alpha = _uniform(gen, 0.0, ATTENTION_STEP_BOUND)
        tally.identity(pairwise_energy(Y, W, mask), sum(pairwise_energy(y, W[h], mask) for h, y in enumerate(blocks)))
        expected = torch.cat([attention_step(y, W[h], mask, alpha, use_sdpa=False) for h, y in enumerate(blocks)], -1)
        tally.identity(attention_step(Y, W, mask, alpha), expected)
    return tally


@claim("theorem", "derived",
       "multi-head attention step (key bias, one W_h per block) never increases the multi-head energy",
       "0 < alpha <= 2 (half the draws at 2), any W_h", "§2.6 (extension)")
def multihead_attention_descent(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        Y, mask, W = _multihead_instance(gen)
        alpha = ATTENTION_STEP_BOUND * (1.0 if _integer(gen, 0, 1) else _uniform(gen, 0.0, 1.0))
        tally.descent(pairwise_energy(Y, W, mask), pairwise_energy(attention_step(Y, W, mask, alpha), W, mask))
    return tally


@claim("theorem", "derived",
       "learned step sizes alpha = bound x sigmoid(logit) stay in range, and each sub-step descends its term",
       "any logit, |Wf| <= spectral_bound", "§2.7 (extension)")
def learned_step_sizes_descent(trials: int, gen: torch.Generator) -> Tally:
    """Step-size logits anywhere on the real line (up to +-40, where the sigmoid saturates in float64):
    each sub-step of every layer still descends its own term (attention: pairwise, feed-forward: E_ff)."""
    tally = Tally()
    for _ in range(trials):
        n, d = _integer(gen, 2, 12), _integer(gen, 2, 8)
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=gen)))
        model = UnfoldedTransformer(d, 3, tied=_integer(gen, 0, 1) == 1, learned_step_sizes=True, relu=False,
                                    regularise_energy=False, spectral_bound=_uniform(gen, 0.1, 0.99)).double()
        with torch.no_grad():
            model.step_logits.copy_(_normal(gen, 3, 2, scale=_uniform(gen, 0.1, 40.0)))
        Y = _normal(gen, 1, n, d, scale=math.exp(_uniform(gen, -1.0, 1.0)))
        with torch.no_grad():
            for t in range(3):
                layer = model.layer(t)
                alpha_attention, alpha_ffn = model.step_sizes(t)
                excess = max(0.0, float(alpha_attention) - ATTENTION_STEP_BOUND, float(alpha_ffn) - model.step_bounds[1],
                             -float(alpha_attention), -float(alpha_ffn))
                tally.condition(0 < alpha_attention <= ATTENTION_STEP_BOUND
                                and 0 < alpha_ffn <= model.step_bounds[1], excess)
                attended = layer.attend(Y, None, alpha_attention)
                tally.descent(pairwise_energy(Y, layer.W), pairwise_energy(attended, layer.W))
                Wf = layer.ffn_weight()
                out = layer.feed_forward(attended, alpha_ffn)
                tally.descent(ffn_energy(attended, Wf, layer.B), ffn_energy(out, Wf, layer.B))
                Y = out
    return tally


@claim("theorem", "derived",
       "with step sizes below 1 (residual-like), attention descends E_p and the ffn step E_ff",
       "0 < alpha < 1, |Wf| <= 0.95", "§2.7 (extension)")
def residual_substeps_descent(trials: int, gen: torch.Generator) -> Tally:
    """Step sizes below 1 (the residual variant): each sub-step keeps its own descent."""
    tally = Tally()
    for _ in range(trials):
        Y, mask, _, d = _sequence(gen)
        W = _matrix(gen, d, _integer(gen, 1, d + 2))
        Wf = _symmetric(gen, d, _uniform(gen, -0.95, 0.0), _uniform(gen, 0.0, 0.95))
        B = _normal(gen, d)
        alpha = _uniform(gen, 0.0, 1.0)
        attended = attention_step(Y, W, mask, alpha)
        tally.descent(pairwise_energy(Y, W, mask), pairwise_energy(attended, W, mask))
        tally.descent(ffn_energy(attended, Wf, B, mask), ffn_energy(ffn_step(attended, Wf, B, alpha), Wf, B, mask))
    return tally


@claim("report", "hypothesis",
       "consistent layer with step sizes 0.5 on E_p + E_ff from inputs with negative entries",
       "6 tied layers, alpha = 0.5, |Wf| <= 0.95, Gaussian Y", "§3.3 (extension)")
def full_layer_residual(trials: int, gen: torch.Generator) -> Tally:
    return _full_layer(trials, gen, feasible=False, attention_variant="exact", relu=True, regularise_energy=False,
                       alpha_attention=0.5, alpha_ffn=0.5)




# --------------------------------------------------------------------------------------------
# Recall: the energy anchored to the encoder's input, E_X(Y) = E(Y) + recall/2 sum_i |y_i - x_i|^2 (§8)
# --------------------------------------------------------------------------------------------


def _recall_instance(gen: torch.Generator, low: float = -0.95, high: float = 0.95):
    """An anchored feed-forward instance: ``Y``, ``mask``, ``Wf``, ``B``, the input ``X``, ``recall`` and the
    curvature ``L = 1 + recall + lambda_max(Wf)``."""
    Y, mask, Wf, B, lipschitz = _ffn_instance(gen, low, high)
    X = _normal(gen, *Y.shape, scale=math.exp(_uniform(gen, -1.0, 1.0)))
    recall = math.exp(_uniform(gen, math.log(0.01), math.log(10.0)))
    return Y, mask, Wf, B, X, recall, lipschitz + recall


@claim("identity", "derived",
       "anchored ffn step = Y - alpha autograd grad (E_ff + recall/2 |Y - X|^2)",
       "Wf symmetric, any recall >= 0", "§8")
def recall_ffn_is_gradient_step(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    for _ in range(trials):
        Y, _, Wf, B, X, recall, _ = _recall_instance(gen, -3.0, 3.0)
        alpha = _uniform(gen, 0.0, 2.0)
        Y.requires_grad_(True)
        (gradient,) = torch.autograd.grad(ffn_energy(Y, Wf, B, anchor=X, recall=recall).sum(), Y)
        tally.identity(ffn_step(Y.detach(), Wf, B, alpha, anchor=X, recall=recall), Y.detach() - alpha * gradient)
    return tally


@claim("theorem", "derived",
       "anchored ffn step never increases E_ff + recall/2 |Y - X|^2",
       "0 < alpha < 2 / (1 + recall + lambda_max(Wf)), Wf > -I", "§8")
def recall_ffn_descent(trials: int, gen: torch.Generator) -> Tally:
    return _ffn_step_trials(Tally(), trials, gen, 0.0, 1.0, anchored=True)


@claim("counterexample", "derived",
       "anchored ffn step just above its bound",
       "alpha in [1, 1.5] x 2/(1 + recall + s); Wf=diag(0.9,0), recall=1, alpha=1", "§8")
def recall_ffn_large_step(trials: int, gen: torch.Generator) -> Tally:
    tally = Tally()
    # the bound is 2 / 2.9 = 0.69; at alpha = 1 the factor along the first axis is 1 - 2.9 = -1.9: 1.45 -> 5.2345
    Wf, B = torch.diag(torch.tensor([0.9, 0.0], dtype=DTYPE)), torch.zeros(2, dtype=DTYPE)
    Y, X = torch.tensor([[[1.0, 0.0]]], dtype=DTYPE), torch.zeros(1, 1, 2, dtype=DTYPE)
    anchored = {"anchor": X, "recall": 1.0}
    tally.descent(ffn_energy(Y, Wf, B, **anchored), ffn_energy(ffn_step(Y, Wf, B, 1.0, **anchored), Wf, B, **anchored),
                  explicit=True)
    return _ffn_step_trials(tally, trials - 1, gen, 1.0, 1.5, anchored=True)


@claim("identity", "derived",
       "the anchored ffn term's minimiser ((1 + recall) I + Wf)^-1 (B + recall x_i) moves with X",
       "recall > 0, Wf > -(1 + recall) I; two inputs X, X'", "§8")
def recall_minimiser_depends_on_input(trials: int, gen: torch.Generator) -> Tally:
    """Two identities per trial: the anchored gradient vanishes at the closed form, and the closed forms for two
    inputs differ by exactly ``recall ((1 + recall) I + Wf)^-1 (x_i - x'_i)`` (nonzero for ``X != X'``)."""
    tally = Tally()
    for _ in range((trials + 1) // 2):
        _, _, Wf, B, X, recall, _ = _recall_instance(gen, -0.95, 3.0)
        other = _normal(gen, *X.shape)
        system = (1.0 + recall) * torch.eye(Wf.shape[0], dtype=DTYPE) + Wf

        def minimiser(anchor: Tensor, system: Tensor = system, B: Tensor = B, recall: float = recall) -> Tensor:
            return torch.linalg.solve(system, (B + recall * anchor).transpose(-1, -2)).transpose(-1, -2)

        Y = minimiser(X).requires_grad_(True)
        (gradient,) = torch.autograd.grad(ffn_energy(Y, Wf, B, anchor=X, recall=recall).sum(), Y)
        tally.identity(gradient, torch.zeros_like(gradient))
        shift = recall * torch.linalg.solve(system, (X - other).transpose(-1, -2)).transpose(-1, -2)
        tally.identity(minimiser(X) - minimiser(other), shift)
    return tally


@claim("identity", "derived",
       "without recall the ffn step's fixed point (I + Wf)^-1 B is the same from every input",
       "recall = 0, |Wf| <= 0.9, alpha = 1/1.9: 400 steps from two inputs", "§8")
def recall_absent_minimiser_ignores_input(trials: int, gen: torch.Generator) -> Tally:
    """The energy without the anchor has no term in X: the feed-forward descent from two different inputs ends at
    one point, its closed-form minimiser (two identities per trial)."""
    tally = Tally()
    for _ in range((trials + 1) // 2):
        _, _, Wf, B, X, _, _ = _recall_instance(gen, -0.9, 0.9)
        first, second = X.clone(), _normal(gen, *X.shape)
        for _ in range(400):  # contracts by a factor of at most 1.8 / 1.9 per step: 400 steps reach 1e-9
            first, second = ffn_step(first, Wf, B, 1.0 / 1.9), ffn_step(second, Wf, B, 1.0 / 1.9)
        closed = torch.linalg.solve(torch.eye(Wf.shape[0], dtype=DTYPE) + Wf, B).expand_as(first)
        tally.identity(first, second)
        tally.identity(first, closed)
    return tally


@claim("report", "derived",
       "exact layer with recall (key bias, anchored ffn, ReLU) on E_X: the whole layer",
       "12 tied layers, alpha_attention = 1, alpha_ffn = 1/(1 + recall), |Wf| <= 0.95, Y >= 0", "§8, §3.3")
def recall_full_layer(trials: int, gen: torch.Generator) -> Tally:
    """Each sub-step descends its own term (the claims above and §2); the layer alternates them, so the anchored
    total has no guarantee (§3.3): reported, not asserted."""
    tally = Tally()
    for _ in range(trials):
        n, d = _integer(gen, 2, 16), _integer(gen, 2, 12)
        recall = math.exp(_uniform(gen, math.log(0.1), math.log(1.0)))
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=gen)))
        model = UnfoldedTransformer(d, 12, attention_variant="exact", relu=True, regularise_energy=False,
                                    recall=recall, alpha_ffn=1.0 / (1.0 + recall)).double()
        Y = _normal(gen, 1, n, d, scale=math.exp(_uniform(gen, -1.0, 1.0))).abs()
        trace = model.trace(Y)
        active = active_steps(relative_spread(trace.spread))[0]
        tally.descent(trace.before[0], trace.after[0], active=active)
    return tally


# --------------------------------------------------------------------------------------------
# The plug-in energies (unfolded.energies, docs/energies.md): claims generated from each plug-in
# --------------------------------------------------------------------------------------------


def _oriented(plugin, values: Tensor) -> Tensor:
    from .energies.base import sense_oriented

    return sense_oriented(plugin.sense, values)


def _draw(plugin, gen: torch.Generator, guarantee=None):
    """A random instance and tokens inside ``guarantee``'s conditions (the plug-in's defaults otherwise)."""
    d = _integer(gen, 2, 8)
    instance = (guarantee.instance if guarantee is not None and guarantee.instance else plugin.random_instance)(d, gen)
    tokens = guarantee.tokens if guarantee is not None and guarantee.tokens else type(instance).random_tokens
    Y, mask = tokens(instance, gen, _integer(gen, 1, 3), _integer(gen, 2, 10))
    return instance, Y, mask


def _margins_hold(tally: Tally, instance, Y: Tensor, mask: Tensor, names: tuple[str, ...]) -> None:
    """Count a violation (without a trial of its own) when a draw falls outside the guarantee's conditions:
    the named margins of ``instance.conditions`` must all be >= 0."""
    margins = instance.conditions(Y, mask)
    smallest = min((float(torch.as_tensor(margins[name]).min()) for name in names), default=0.0)
    if smallest < 0:
        tally.violations += 1
        tally.max_error = max(tally.max_error, -smallest)


def _guarantee_check(plugin, guarantee, step, energy):
    """The check of a guarantee of ``step`` on ``energy`` (``(instance, Y, mask[, ref])``): the distance to the
    minimiser for a Fejer guarantee, the oriented energy otherwise (for ``none``: only counted, a report)."""

    def check(trials: int, gen: torch.Generator) -> Tally:
        tally = Tally()
        for _ in range(trials):
            instance, Y, mask = _draw(plugin, gen, guarantee)
            if guarantee.margins:
                _margins_hold(tally, instance, Y, mask, guarantee.margins)
            after = step(instance, Y, mask)
            if guarantee.kind == "fejer":
                target = instance.minimiser(Y, mask)
                tally.descent((Y - target).pow(2).sum((1, 2)), (after - target).pow(2).sum((1, 2)))
            else:
                tally.descent(_oriented(plugin, energy(instance, Y, mask, Y)),
                              _oriented(plugin, energy(instance, after, mask, Y)))
        return tally

    return check


def _continuous_check(plugin, low: float, high: float):
    """Steps whose relative size is drawn log-uniformly in ``[low, high]`` times the stated bound."""

    def check(trials: int, gen: torch.Generator) -> Tally:
        tally = Tally()
        for _ in range(trials):
            instance, Y, mask = _draw(plugin, gen)
            size = instance.relative_step(Y, mask).max()
            target = plugin.relative_step_bound * math.exp(_uniform(gen, math.log(low), math.log(high)))
            instance = instance.scaled(target / float(size))
            _margins_hold(tally, instance, Y, mask, plugin.guarantee_margins)
            after = instance.step(Y, mask)
            tally.descent(_oriented(plugin, instance.energy(Y, mask)), _oriented(plugin, instance.energy(after, mask)))
        return tally

    return check


def _wrong_way_check(plugin, trial, explicit: bool):
    """Counter-examples (an explicit instance first) and reports (random draws only)."""

    def check(trials: int, gen: torch.Generator) -> Tally:
        tally = Tally()
        if explicit:
            before, after = trial(gen, True)
            tally.descent(before, after, explicit=True)
        for _ in range(trials - int(explicit)):
            before, after = trial(gen, False)
            tally.descent(before, after)
        return tally

    return check


def _identity_check(identity):
    def check(trials: int, gen: torch.Generator) -> Tally:
        tally = Tally()
        for _ in range(trials):
            tally.identity(*identity.trial(gen))
        return tally

    return check


def energy_claims(plugin) -> list[Claim]:
    """The claims of a plug-in energy (:class:`unfolded.energies.base.Energy`), ids prefixed by its name:
    its guarantee (a theorem for monotone and Fejer steps; for continuous-time ones a theorem at relative
    steps up to the stated bound and reports of the rate ten and a hundred times above it; a report of
    the layer for "none"), every sub-step's guarantees, its identities, counter-examples and reports."""
    name = plugin.name
    section = f"docs/energies.md ({name})"
    direction = "lowers" if plugin.sense == "max" else "raises"
    claims = []

    def add(suffix, kind, source, statement, conditions, check):
        claims.append(Claim(f"{name}_{suffix}", kind, statement, conditions, source, section, check))

    def step(instance, Y, mask):
        return instance.step(Y, mask)

    def energy(instance, Y, mask, ref):
        return instance.energy(Y, mask, ref)

    from .energies.base import Guarantee

    covered = {guarantee.kind for substep in plugin.substeps for guarantee in substep.guarantees}
    guarantee = Guarantee(plugin.guarantee, plugin.guarantee_conditions, plugin.guarantee_source,
                          plugin.guarantee_margins)
    if plugin.guarantee in ("monotone", "fejer") and plugin.guarantee in covered and len(plugin.substeps) == 1:
        pass  # the layer is its one sub-step, whose rows below state the guarantee
    elif plugin.guarantee in ("monotone", "fejer"):
        add(plugin.guarantee, "theorem", plugin.guarantee_source, f"{name} step never {direction} its energy"
            if plugin.guarantee == "monotone" else f"{name} step never moves away from the minimiser",
            plugin.guarantee_conditions, _guarantee_check(plugin, guarantee, step, energy))
    elif plugin.guarantee == "continuous-time":
        bound = plugin.relative_step_bound
        add("small_steps", "theorem", "derived",
            f"{name} step never {direction} its energy at a relative step up to {bound:g} (the discretised flow)",
            plugin.guarantee_conditions, _continuous_check(plugin, 1e-3, 1.0))
        for factor in (10, 100):
            add(f"steps_x{factor}", "report", "derived",
                f"{name} step at a relative step {factor // 10 if factor > 10 else 1}-{factor} times {bound:g}",
                f"relative step in ({bound:g}, {factor * bound:g}]"
                if factor == 10 else f"relative step in ({10 * bound:g}, {factor * bound:g}]",
                _continuous_check(plugin, factor / 10, float(factor)))
    else:
        add("layer", "report", plugin.guarantee_source, f"{name} layer on its energy (no guarantee)",
            plugin.guarantee_conditions, _guarantee_check(plugin, guarantee, step, energy))
    for substep in plugin.substeps:
        for guarantee in substep.guarantees:
            add(f"{substep.name}_{guarantee.kind}", "theorem", guarantee.source,
                f"{name} sub-step {substep.name} never {direction} the energy it acts on"
                if guarantee.kind == "monotone" else f"{name} sub-step {substep.name} never moves away from the minimiser",
                guarantee.conditions, _guarantee_check(plugin, guarantee, substep.step, substep.energy))
    for identity in plugin.identities:
        add(identity.name, "identity", identity.source, identity.statement, "random draws with padding",
            _identity_check(identity))
    for counterexample in plugin.counterexamples:
        add(counterexample.name, "counterexample", counterexample.source, counterexample.statement,
            f"without: {counterexample.drops}", _wrong_way_check(plugin, counterexample.trial, True))
    for report in plugin.reports:
        add(report.name, "report", report.source, report.statement, "random draws", _wrong_way_check(plugin, report.trial, False))
    return claims


def _register_energy_claims() -> None:
    from .energies import REGISTRY

    for plugin in REGISTRY.values():
        for entry in energy_claims(plugin):
            if entry.id in CLAIMS:
                raise ValueError(f"claim {entry.id!r} is registered twice")
            CLAIMS[entry.id] = entry


_register_energy_claims()


def claim_offset(claim_id: str) -> int:
    """A claim's seed offset, a stable function of its id (CRC-32 modulo 2^16): results depend neither
    on which other claims run nor on their order in the file."""
    import zlib

    return zlib.crc32(claim_id.encode()) % 65536


def run_all(trials: int = 100, seed: int = 0, ids: list[str] | None = None) -> list[ClaimResult]:
    """Check every claim (or those in ``ids``), in registry order; claim ``c`` uses seed
    ``seed + claim_offset(c)``."""
    unknown = sorted(set(ids or []) - set(CLAIMS))
    if unknown:
        raise KeyError(f"unknown claim id(s) {unknown}; known: {sorted(CLAIMS)}")
    return [
        entry.check(trials, seed + claim_offset(entry.id))
        for entry in CLAIMS.values()
        if ids is None or entry.id in ids
    ]
