"""Statistics of the study: intervals and tests over seeds."""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["confidence_interval", "welch_p"]


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
