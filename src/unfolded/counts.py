"""Rules that count answers, in exact arithmetic.

A rule such as "at least the majority class + 0.2" compares shares of correct answers. In floats,
141/200 = 0.705 falls below 0.505 + 0.2 = 0.7050000000000001, so a model exactly at the threshold
counts as failing it. Every such rule here compares integer counts of answers as exact fractions:
the counts behind an accuracy, the majority class as a count, and the margin as the decimal it is
written as (``0.2`` is 1/5, not the binary float nearest to it).
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["accuracy_share", "at_least", "count_of", "learned", "margin", "median", "share"]


def margin(value: float) -> Fraction:
    """A threshold's margin as the decimal it is written as: ``margin(0.2) == Fraction(1, 5)``."""
    return Fraction(repr(float(value)))


def count_of(accuracy: float, count: int) -> int:
    """The integer number of correct answers behind ``accuracy`` on ``count`` items (an accuracy written
    with at least 6 significant digits identifies it); an error when no integer fits."""
    exact = float(accuracy) * int(count)
    nearest = round(exact)
    if not math.isfinite(exact) or abs(exact - nearest) > 0.01:
        raise ValueError(f"count_of: accuracy {accuracy!r} on {count} items is not a whole number of answers "
                         f"({exact:.4f}); record the count itself")
    return int(nearest)


def share(correct: float, count: int) -> Fraction:
    """``correct / count`` exactly; ``correct`` may be a half-integer (a median of an even number of counts)."""
    if count <= 0:
        raise ValueError(f"share: count must be positive, got {count}")
    return Fraction(float(correct)) / int(count)


def median(values) -> Fraction:
    """The median of exact fractions (the mean of the two middle ones for an even count)."""
    ordered = sorted(Fraction(value) for value in values)
    if not ordered:
        raise ValueError("median: no values")
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def at_least(value: Fraction, reference: Fraction, extra: float) -> bool:
    """Whether ``value >= reference + extra`` exactly (``extra`` read as its decimal, :func:`margin`)."""
    return Fraction(value) >= Fraction(reference) + margin(extra)


def accuracy_share(accuracy: float, count: float | None = None) -> Fraction:
    """An accuracy as the exact share of answers it counts on ``count`` items; without a count (older tables),
    the decimal it is written as, to 9 places."""
    if count is not None and not (isinstance(count, float) and math.isnan(count)) and int(count) > 0:
        return share(count_of(accuracy, int(count)), int(count))
    return Fraction(repr(round(float(accuracy), 9)))


def learned(accuracy: float, majority: float, count: float | None = None, extra: float | None = None) -> bool:
    """"Learned": ``accuracy`` at least the ``majority`` class + ``extra`` (default
    :data:`unfolded.thresholds.LEARNED_MARGIN`), both counted on the same ``count`` items, exactly."""
    from .thresholds import LEARNED_MARGIN

    return at_least(accuracy_share(accuracy, count), accuracy_share(majority, count),
                    LEARNED_MARGIN if extra is None else extra)
