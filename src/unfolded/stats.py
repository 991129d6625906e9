"""Statistics of the study: intervals over seeds, the paired tests (over seeds, the verdicts' test; over
shared test items, conditional on the trained seeds), and Holm's correction over the set of stated verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["confidence_interval", "holm", "paired_permutation_p", "seed_paired_p", "welch_p"]

#: Up to this many pairs the seed test enumerates every sign pattern (2**n); above it, it draws them.
EXACT_PAIRS = 16


def confidence_interval(values: pd.Series, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean; NaN with fewer than two values."""
    from scipy import stats

    values = values.dropna()
    if len(values) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def welch_p(first: pd.Series, second: pd.Series) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances) between two sets of per-seed scores;
    NaN with fewer than two values in either set."""
    from scipy.stats import ttest_ind

    first, second = first.dropna().astype(float), second.dropna().astype(float)
    if len(first) < 2 or len(second) < 2:
        return math.nan
    if first.std(ddof=1) == 0 and second.std(ddof=1) == 0:
        return 1.0 if first.mean() == second.mean() else 0.0
    return float(ttest_ind(first, second, equal_var=False).pvalue)


def paired_permutation_p(first, second, draws: int = 20_000, seed: int = 0) -> float:
    """Two-sided p-value of the paired sign-flip permutation test on shared test items.

    ``first`` and ``second`` hold one score per test item (for example the share of seeds that answered
    the item correctly, for two models); under the null the two scores of an item are exchangeable,
    so each item's difference keeps or flips its sign with probability 1/2. The statistic is the summed
    difference; ``p = (1 + #{|T*| >= |T|}) / (1 + draws)`` over ``draws`` seeded random sign flips."""
    difference = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    if difference.ndim != 1 or len(difference) == 0 or not np.isfinite(difference).all():
        raise ValueError("paired_permutation_p: need two equal-length, finite, non-empty score vectors")
    nonzero = difference[difference != 0]
    if len(nonzero) == 0:
        return 1.0
    observed = abs(nonzero.sum())
    rng = np.random.default_rng(seed)
    extreme, done = 0, 0
    while done < draws:
        batch = min(4096, draws - done)
        signs = rng.integers(0, 2, (batch, len(nonzero)), dtype=np.int8) * 2 - 1
        extreme += int((np.abs(signs @ nonzero) >= observed - 1e-9).sum())
        done += batch
    return (1 + extreme) / (1 + draws)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a set of p-values (controls the family-wise error rate): the k-th
    smallest becomes ``max_{j <= k} min(1, (m - j + 1) p_(j))``; NaN p-values stay NaN and do not count."""
    values = np.asarray(pvalues, dtype=float)
    adjusted = np.full(values.shape, np.nan)
    present = np.flatnonzero(~np.isnan(values))
    m = len(present)
    order = present[np.argsort(values[present], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[index]))
        adjusted[index] = running
    return adjusted


def seed_paired_p(first, second, draws: int = 100_000, seed: int = 0) -> float:
    """Two-sided p-value of the paired sign-flip test over seeds: the verdicts' test.

    ``first[k]`` and ``second[k]`` are the scores (test accuracies) of two models trained on the same seed
    ``k``, hence on the same train/validation split; seeds are the unit, so the test accounts for what a new
    seed would change, which the item-level test (:func:`paired_permutation_p`) holds fixed. Under the null
    (the two runs of a pair exchangeable) every difference keeps or flips its sign with probability 1/2.
    The statistic is the summed difference; with at most :data:`EXACT_PAIRS` pairs all ``2**n`` sign
    patterns are enumerated and ``p = #{|T*| >= |T|} / 2**n`` is exact (the smallest p is ``2 / 2**n``:
    0.002 with 10 seeds); with more, ``p = (1 + #{|T*| >= |T|}) / (1 + draws)`` over seeded random flips."""
    difference = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    if difference.ndim != 1 or len(difference) == 0 or not np.isfinite(difference).all():
        raise ValueError("seed_paired_p: need two equal-length, finite, non-empty vectors of per-seed scores")
    observed = abs(difference.sum())
    if observed == 0:
        return 1.0
    tolerance = 1e-12 * max(1.0, float(np.abs(difference).sum()))
    if len(difference) <= EXACT_PAIRS:
        patterns = (np.arange(2 ** len(difference))[:, None] >> np.arange(len(difference))) & 1
        totals = (1 - 2 * patterns) @ difference
        return float((np.abs(totals) >= observed - tolerance).mean())
    rng = np.random.default_rng(seed)
    extreme, done = 0, 0
    while done < draws:
        batch = min(4096, draws - done)
        signs = rng.integers(0, 2, (batch, len(difference)), dtype=np.int8) * 2 - 1
        extreme += int((np.abs(signs @ difference) >= observed - tolerance).sum())
        done += batch
    return (1 + extreme) / (1 + draws)
