"""Energy functions whose descent steps make up a Transformer layer (docs/theory.md §1).

Conventions: tokens are rows. ``Y`` has shape ``(b, n, d)`` (a single sequence ``(n, d)`` is
accepted and gives a 0-dim result); ``mask`` has shape ``(b, n)``, True marks a real token.
Every function is differentiable, device- and dtype-agnostic, and never loops over tokens or
pairs: pairwise distances come from the Gram matrix, ``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b``, so
memory grows as ``b n^2`` and not ``b n^2 d``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "anchor_energy",
    "attention_energy",
    "head_blocks",
    "merge_heads",
    "ffn_energy",
    "layernorm_projection",
    "pairwise_energy",
    "regulariser",
    "relu_indicator",
    "total_energy",
]


def _batched(Y: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, bool]:
    """Return ``(Y (b, n, d), mask (b, n) as Y.dtype, was_unbatched)``."""
    if Y.dim() not in (2, 3):
        raise ValueError(f"Y: expected shape (b, n, d) or (n, d), got {tuple(Y.shape)}")
    unbatched = Y.dim() == 2
    if unbatched:
        Y = Y.unsqueeze(0)
        mask = None if mask is None else mask.unsqueeze(0)
    if mask is None:
        weights = Y.new_ones(Y.shape[:2])
    else:
        if mask.shape != Y.shape[:2]:
            raise ValueError(f"mask: expected shape {tuple(Y.shape[:2])}, got {tuple(mask.shape)}")
        weights = mask.to(Y.dtype)
    return Y, weights, unbatched


def _unbatch(value: Tensor, unbatched: bool) -> Tensor:
    return value.squeeze(0) if unbatched else value


def squared_distances(Z: Tensor) -> Tensor:
    """Pairwise squared distances ``|z_i - z_j|^2`` of the rows of ``Z (b, n, k)`` -> ``(b, n, n)``."""
    sq_norms = Z.pow(2).sum(-1)  # (b, n)
    gram = Z @ Z.transpose(-1, -2)  # (b, n, n)
    return (sq_norms.unsqueeze(-1) + sq_norms.unsqueeze(-2) - 2.0 * gram).clamp_min(0.0)


def pairwise_energy(Y: Tensor, W: Tensor, mask: Tensor | None = None) -> Tensor:
    """``sum_{i<j} -exp(-1/2 |(y_i - y_j) W|^2)`` over real tokens (docs/theory.md §1.1, rho(z) = -exp(-z)).

    The metric is ``W W^T`` (rows times ``W``), as in the authors' energy. This term alone
    carries the majorization-minimization descent theorem of the attention step (docs/theory.md §2.1).
    Multi-head energy: with ``W (H, k, k)`` and ``d = H k`` the features split into ``H`` blocks
    (:func:`head_blocks`) and the energy is the sum of one such term per block, block ``h`` with
    its own ``W_h``; its MM step is multi-head attention (:func:`unfolded.steps.attention_step`).
    Returns shape ``(b,)``.
    """
    Y, weights, unbatched = _batched(Y, mask)
    return _unbatch(_pairwise(_project(Y, W), weights), unbatched)


def _project(Y: Tensor, W: Tensor) -> Tensor:
    """``Y W`` ``(b, n, k)``, or per feature block ``Y^h W_h`` ``(b, H, n, k)`` for ``W (H, k, k)``."""
    return head_blocks(Y, W.shape[0]) @ W if W.dim() == 3 else Y @ W


def _pairwise(Z: Tensor, weights: Tensor) -> Tensor:
    """``-sum_{i<j} w_i w_j sum_h exp(-1/2 |z^h_i - z^h_j|^2)`` for projections ``Z`` from :func:`_project`."""
    kernel = torch.exp(-0.5 * squared_distances(Z))
    if Z.dim() == 4:
        kernel = kernel.sum(1)  # (b, n, n): the heads' terms add up
    # w^T K w counts every unordered pair twice and adds the diagonal i = j, which is removed.
    both = ((kernel @ weights.unsqueeze(-1)).squeeze(-1) * weights).sum(-1)
    diagonal = (kernel.diagonal(dim1=-2, dim2=-1) * weights.square()).sum(-1)
    return -0.5 * (both - diagonal)


def _regulariser(Z: Tensor, weights: Tensor) -> Tensor:
    squares = Z.pow(2).sum((1, -1)) if Z.dim() == 4 else Z.pow(2).sum(-1)  # (b, n)
    return 0.5 * (squares * weights).sum(-1)


def head_blocks(Y: Tensor, heads: int) -> Tensor:
    """Split the features of ``Y (b, n, d)`` into ``heads`` consecutive blocks: ``(b, heads, n, d / heads)``."""
    b, n, d = Y.shape
    if d % heads:
        raise ValueError(f"heads: {heads} must divide the width d = {d}")
    return Y.reshape(b, n, heads, d // heads).transpose(1, 2)


def merge_heads(Y: Tensor) -> Tensor:
    """Inverse of :func:`head_blocks`: ``(b, H, n, k) -> (b, n, H k)``."""
    b, heads, n, k = Y.shape
    return Y.transpose(1, 2).reshape(b, n, heads * k)


def regulariser(Y: Tensor, W: Tensor, mask: Tensor | None = None) -> Tensor:
    """``1/2 sum_i |y_i W|^2`` over real tokens: the authors' regulariser R(Y) (docs/theory.md §1.1)."""
    Y, weights, unbatched = _batched(Y, mask)
    return _unbatch(_regulariser(_project(Y, W), weights), unbatched)


def attention_energy(
    Y: Tensor, W: Tensor, mask: Tensor | None = None, *, regularise: bool = True
) -> Tensor:
    """Token-interaction energy ``pairwise_energy + regulariser`` (the authors' E_att), ``(b,)``.

    With ``regularise=False`` only the pairwise term is returned; only that term is guaranteed
    to decrease under :func:`unfolded.steps.attention_step` (docs/theory.md §2.1).
    """
    Y, weights, unbatched = _batched(Y, mask)
    Z = _project(Y, W)  # one projection serves both terms
    energy = _pairwise(Z, weights)
    if regularise:
        energy = energy + _regulariser(Z, weights)
    return _unbatch(energy, unbatched)


def anchor_energy(Y: Tensor, X: Tensor, recall: float, mask: Tensor | None = None) -> Tensor:
    """The recall anchor ``recall/2 sum_i |y_i - x_i|^2`` over real tokens (docs/theory.md §8), ``(b,)``: it ties
    the state to the encoder's input ``X`` (same shape as ``Y``), so that the energy's minimiser depends on it."""
    if X.shape != Y.shape:
        raise ValueError(f"anchor X: expected the shape of Y {tuple(Y.shape)}, got {tuple(X.shape)}")
    Y, weights, unbatched = _batched(Y, mask)
    X = X.unsqueeze(0) if X.dim() == 2 else X
    energy = 0.5 * recall * ((Y - X).pow(2).sum(-1) * weights).sum(-1)
    return _unbatch(energy, unbatched)


def ffn_energy(Y: Tensor, Wf: Tensor, B: Tensor, mask: Tensor | None = None, *, anchor: Tensor | None = None,
               recall: float = 0.0) -> Tensor:
    """``1/2 sum_i y_i Wf y_i^T + 1/2 sum_i |y_i - B|^2`` over real tokens (docs/theory.md §1.2), ``(b,)``; with
    ``recall > 0`` plus the anchor :func:`anchor_energy` to the input ``anchor`` (§8).

    ``Wf`` is a symmetric ``(d, d)`` matrix, ``B`` a ``(d,)`` vector. The gradient is
    ``Y Wf + Y - B (+ recall (Y - X))``; the energy is ``(1 + lambda_max(Wf) + recall)``-smooth.
    """
    if recall and anchor is None:
        raise ValueError("ffn_energy: recall > 0 needs the anchor (the encoder's input X)")
    Y, weights, unbatched = _batched(Y, mask)
    quadratic = ((Y @ Wf) * Y).sum(-1)  # (b, n)
    distance = (Y - B).pow(2).sum(-1)  # (b, n)
    energy = 0.5 * ((quadratic + distance) * weights).sum(-1)
    if recall:
        energy = energy + anchor_energy(Y, anchor.unsqueeze(0) if anchor.dim() == 2 else anchor, recall,
                                        weights.bool())
    return _unbatch(energy, unbatched)


def total_energy(
    Y: Tensor,
    W: Tensor,
    Wf: Tensor,
    B: Tensor,
    mask: Tensor | None = None,
    *,
    regularise: bool = True,
    anchor: Tensor | None = None,
    recall: float = 0.0,
) -> Tensor:
    """``attention_energy + ffn_energy`` (docs/theory.md §1.5, the energy the authors plot), ``(b,)``; with
    ``recall > 0`` the anchored energy ``E_X`` (§8), the anchor to the input ``anchor`` inside the feed-forward term."""
    return attention_energy(Y, W, mask, regularise=regularise) + ffn_energy(Y, Wf, B, mask, anchor=anchor,
                                                                            recall=recall)


def relu_indicator(Y: Tensor, mask: Tensor | None = None) -> Tensor:
    """Indicator of ``Y >= 0`` over real tokens: 0 where feasible, ``+inf`` otherwise (docs/theory.md §1.3)."""
    Y, weights, unbatched = _batched(Y, mask)
    infeasible = ((Y < 0).any(-1) & (weights > 0)).any(-1)
    value = torch.where(infeasible, math.inf, 0.0).to(Y.dtype)
    return _unbatch(value, unbatched)


def layernorm_projection(Y: Tensor, eps: float = 0.0) -> Tensor:
    """Layer norm without affine parameters, token-wise (docs/theory.md §1.4).

    With ``eps = 0`` it is the Euclidean projection of each row onto the non-convex set
    ``S = {z : sum(z) = 0, |z|^2 = d}``. Works on any shape ``(..., d)``.
    """
    centred = Y - Y.mean(-1, keepdim=True)
    variance = centred.pow(2).mean(-1, keepdim=True)
    return centred / torch.sqrt(variance + eps)
