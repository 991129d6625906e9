"""Slow reference implementations, used only to check the fast ones and in benchmarks.

They follow the authors' approach (docs/theory.md §5, item 10): one sequence at a time, pairs
enumerated through index lists of size ``n (n - 1) / 2``, so memory grows as ``n^2 d``.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["pair_index_lists", "pairwise_energy_index_lists", "plain_softmax_attention"]


@lru_cache(maxsize=16)
def pair_index_lists(n: int) -> tuple[Tensor, Tensor]:
    """Index lists ``(i, j)`` of all pairs ``i > j`` (cached per length, like the authors' code)."""
    first, second = [], []
    for i in range(n):
        for j in range(i):
            first.append(i)
            second.append(j)
    return torch.tensor(first, dtype=torch.long), torch.tensor(second, dtype=torch.long)


def pairwise_energy_index_lists(Y: Tensor, W: Tensor, regularise: bool = True) -> Tensor:
    """``sum_{i>j} -exp(-1/2 |z_i - z_j|^2) [+ 1/2 |Z|^2]`` with ``Z = Y W`` for one sequence ``(n, d)``."""
    Z = Y @ W
    first, second = pair_index_lists(Z.shape[0])
    differences = Z[first.to(Z.device)] - Z[second.to(Z.device)]  # (n (n - 1) / 2, k)
    energy = -torch.exp(-0.5 * differences.pow(2).sum(-1)).sum()
    if regularise:
        energy = energy + 0.5 * Z.pow(2).sum()
    return energy


def plain_softmax_attention(Q: Tensor, K: Tensor, V: Tensor) -> Tensor:
    """``softmax(Q K^T) V`` written out, the textbook attention at scale 1."""
    return torch.softmax(Q @ K.transpose(-1, -2), -1) @ V
