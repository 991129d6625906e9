"""Accuracy ceilings of the generated tasks, computed from their generators (docs/theory.md §7).

Three ceilings per task, stored in ``PreparedData.meta["ceilings"]`` and in the accuracy tables:

- ``bag_of_words_ceiling``: the Bayes accuracy of a classifier that sees only the multiset of tokens
  (any function of it, nonlinear included), exact or by Monte Carlo with ``bag_of_words_ceiling_se``;
- ``no_interaction_ceiling``: the best accuracy of any model without token interactions (a per-token map
  of (token, position), sum or mean pooling, an affine head); None where no bound is known;
- ``oracle_ceiling``: the accuracy of the rule that made the labels (1.0: the label is a function of the
  sequence).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["CEILING_KEYS", "NO_INTERACTION_EQUALITY", "equality_bag_of_words", "polarity_bag_of_words"]

#: The ceilings a generated task may know, as they appear in ``meta["ceilings"]`` and the accuracy tables.
CEILING_KEYS = ("bag_of_words_ceiling", "bag_of_words_ceiling_se", "no_interaction_ceiling", "oracle_ceiling")

#: The interaction-free ceiling of the equality task, for every number of symbols K >= 2 (docs/theory.md §7).
NO_INTERACTION_EQUALITY = 0.75


@lru_cache(maxsize=8)
def equality_bag_of_words(symbols: int, min_length: int, max_length: int, samples: int, seed: int = 0) -> tuple[float, float]:
    """Bayes bag-of-words accuracy of :func:`unfolded.data.text.equality_task` and its Monte Carlo standard
    error: ``(accuracy, se)``.

    Given the symbol counts ``c`` of a sequence of length ``n`` (the slots' two symbols and ``n - 2``
    uniform fillers), the likelihood ratio of "equal" to "different" is
    ``(K - 1) sum_s c_s (c_s - 1) / (n^2 - sum_s c_s^2)`` (a duplicate is evidence); with equal priors
    the Bayes classifier predicts "equal" when it exceeds 1 (ties: "different")."""
    rng = np.random.default_rng(seed)
    K = symbols
    equal = rng.random(samples) < 0.5
    a = rng.integers(0, K, samples)
    other = rng.integers(0, K - 1, samples)
    b = np.where(equal, a, np.where(other >= a, other + 1, other))
    lengths = rng.integers(min_length, max_length + 1, samples)
    fillers = rng.integers(0, K, (samples, max_length - 2))
    used = np.arange(max_length - 2)[None, :] < (lengths - 2)[:, None]
    rows = np.repeat(np.arange(samples), max_length - 2)[used.reshape(-1)]
    counts = np.bincount(rows * K + fillers.reshape(-1)[used.reshape(-1)], minlength=samples * K).reshape(samples, K)
    counts[np.arange(samples), a] += 1
    counts[np.arange(samples), b] += 1
    ratio_numerator = (K - 1) * (counts * (counts - 1)).sum(1)
    ratio_denominator = lengths.astype(np.int64) ** 2 - (counts.astype(np.int64) ** 2).sum(1)
    accuracy = float(((ratio_numerator > ratio_denominator) == equal).mean())
    return accuracy, float(np.sqrt(accuracy * (1 - accuracy) / samples))


def _polarity_scores(codes: np.ndarray) -> np.ndarray:
    """The polarity generator's label score of each row of class codes (0 neutral, 1 positive, 2 negative,
    3 negation): a negation flips the next polar word."""
    score = np.zeros(len(codes), dtype=np.int64)
    flip = np.zeros(len(codes), dtype=bool)
    for column in codes.T:
        polar = (column == 1) | (column == 2)
        sign = np.where(column == 1, 1, -1) * np.where(flip, -1, 1)
        score += np.where(polar, sign, 0)
        flip = np.where(column == 3, True, np.where(polar, False, flip))
    return score


@lru_cache(maxsize=8)
def polarity_bag_of_words(vocab_size: int, min_length: int, max_length: int, samples: int = 100_000,
                          orderings: int = 400, seed: int = 0) -> tuple[float, float]:
    """Bayes bag-of-words accuracy of :func:`unfolded.data.text.polarity_task` and its standard error.

    Given the multiset, every ordering is equally likely, so the label's posterior depends only on the
    counts (p, q, r) of positive, negative and negation words: the share of orderings whose score is
    positive among those with a non-zero score (``orderings`` random orderings per count). Sequences are
    drawn from the generator (score-0 sequences redrawn), and the Bayes decision is scored on them."""
    rng = np.random.default_rng(seed)
    polar, negations = max(2, vocab_size // 5), max(1, vocab_size // 20)
    weights = np.array([vocab_size - 2 * polar - negations, polar, polar, negations], dtype=float) / vocab_size
    lengths = rng.integers(min_length, max_length + 1, 4 * samples)
    codes = rng.choice(4, size=(4 * samples, max_length), p=weights)
    codes[np.arange(max_length)[None, :] >= lengths[:, None]] = 0  # past the end: neutral, changes nothing
    scores = _polarity_scores(codes)
    keep = np.flatnonzero(scores != 0)[:samples]
    codes, labels = codes[keep], scores[keep] > 0
    counts = np.stack([(codes == c).sum(1) for c in (1, 2, 3)], 1)
    decisions = {}
    for triple in {tuple(row) for row in counts.tolist()}:
        multiset = np.repeat([1, 2, 3], triple)
        shuffled = rng.permuted(np.broadcast_to(multiset, (orderings, len(multiset))).copy(), axis=1)
        ordered = _polarity_scores(shuffled) if len(multiset) else np.zeros(orderings, dtype=np.int64)
        decided = ordered != 0
        decisions[triple] = decided.any() and (ordered[decided] > 0).mean() > 0.5
    predicted = np.array([decisions[tuple(row)] for row in counts.tolist()])
    accuracy = float((predicted == labels).mean())
    return accuracy, float(np.sqrt(accuracy * (1 - accuracy) / len(labels)))
