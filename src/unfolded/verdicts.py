"""Attention on trial: does a model's token mixing do work the same model without it cannot?

The rule, fixed before the study was trained (docs/results.md, "The verdict rule"):

- every task states its no-interaction ceiling (3/4 on ``equality``, 1 on ``order`` and ``digits``; on
  ``polarity`` none is known, so its Bayes bag-of-words accuracy is the reference, and a gain above it
  is evidence, not proof);
- "attention helps on task T" means the model's median test accuracy is at least that ceiling +
  ``ATTENTION_HELPS_MARGIN`` *and* its paired gain over the same model without attention
  (``<model>-no_attention``) is significant after Holm's correction over every verdict stated;
- "hurts" means a significant paired loss; where ceiling + margin > 1, "helps" cannot be shown:
  "not testable here", with the paired difference reported; otherwise "not shown to help".

The paired test compares, item by item on the shared test set, the share of (converged) seeds that
answered correctly (:func:`unfolded.stats.paired_permutation_p`); Welch's test over seeds is kept as a
secondary column. Diverged runs (:func:`unfolded.summaries.diverged_runs`) are counted apart.
"""

from __future__ import annotations

import math

import pandas as pd

from .stats import holm, paired_permutation_p, welch_p
from .summaries import diverged_runs, select_learning_rates
from .thresholds import ATTENTION_HELPS_MARGIN, SIGNIFICANCE_LEVEL

__all__ = ["CONTROLS", "attention_verdicts", "control_checks", "picked_predictions"]

#: The models on trial and their interaction-free controls: the same model without its attention step.
CONTROLS = {"unfolded_tied": "unfolded_tied-no_attention", "standard_tied": "standard_tied-no_attention"}
RUN_KEYS = ["dataset", "model", "lr", "seed"]


def _picked(runs: pd.DataFrame) -> pd.DataFrame:
    runs = select_learning_rates(runs.drop(columns=["selected"], errors="ignore"))
    runs = runs.assign(diverged=diverged_runs(runs))
    return runs[runs["selected"] & runs["lr"].notna()]


def picked_predictions(runs: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The per-item test predictions of every picked run (``runs``' learning-rate pick), diverged runs
    included (a column says which)."""
    picked = _picked(runs)[RUN_KEYS + ["diverged"]]
    return predictions.merge(picked, on=RUN_KEYS, how="inner").sort_values([*RUN_KEYS, "item"], ignore_index=True)


def _reference(row: pd.Series) -> tuple[float, str]:
    """The ceiling a verdict is judged against, and what kind it is."""
    if not pd.isna(row.get("no_interaction_ceiling", math.nan)):
        return float(row["no_interaction_ceiling"]), "no-interaction ceiling"
    if not pd.isna(row.get("bag_of_words_ceiling", math.nan)):
        return float(row["bag_of_words_ceiling"]), "bag-of-words reference (evidence, not proof)"
    return math.nan, "none known"


def _item_scores(predictions: pd.DataFrame, model: str, converged_only: bool = True) -> pd.Series:
    """Per test item, the share of the model's picked seeds (converged ones only, by default) that
    answered it correctly."""
    rows = predictions[predictions["model"] == model]
    rows = rows[~rows["diverged"]] if converged_only else rows
    return rows.groupby("item")["correct"].mean()


def attention_verdicts(runs: pd.DataFrame, predictions: pd.DataFrame | None,
                       level: float = SIGNIFICANCE_LEVEL, draws: int = 20_000) -> pd.DataFrame:
    """One row per (dataset, model on trial) whose control ran: medians, means, diverged counts, the
    reference ceiling, the paired gain and p-value on shared test items, Welch's p over seeds, the
    Holm-adjusted p over every row, and the verdict under the rule of this module."""
    picked = _picked(runs)
    if predictions is not None and "diverged" not in predictions:
        predictions = picked_predictions(runs, predictions)
    rows = []
    for dataset, group in picked.groupby("dataset", sort=True):
        for model, control in CONTROLS.items():
            ours, theirs = group[group["model"] == model], group[group["model"] == control]
            if ours.empty or theirs.empty:
                continue
            ceiling, kind = _reference(ours.iloc[0])
            converged, controls = ours[~ours["diverged"]], theirs[~theirs["diverged"]]
            row = {"dataset": dataset, "model": model, "control": control, "reference": ceiling, "reference_kind": kind,
                   "threshold": ceiling + ATTENTION_HELPS_MARGIN, "chance_accuracy": float(ours["chance_accuracy"].iloc[0]),
                   "lr": float(ours["lr"].iloc[0]), "control_lr": float(theirs["lr"].iloc[0]),
                   "seeds": len(ours), "control_seeds": len(theirs),
                   "diverged": int(ours["diverged"].sum()), "control_diverged": int(theirs["diverged"].sum()),
                   "median": float(converged["test_accuracy"].median()),
                   "median_all": float(ours["test_accuracy"].median()),
                   "control_median": float(controls["test_accuracy"].median()),
                   "mean": float(converged["test_accuracy"].mean()),
                   "control_mean": float(controls["test_accuracy"].mean()),
                   "welch_p": welch_p(converged["test_accuracy"], controls["test_accuracy"])}
            row["paired_gain"], row["paired_p"], row["items"] = math.nan, math.nan, 0
            row["paired_gain_all"], row["paired_p_all"] = math.nan, math.nan
            if predictions is not None:
                here = predictions[predictions["dataset"] == dataset]
                # the verdict's test on converged runs, and the same with diverged runs kept (a sensitivity check)
                for suffix, converged in (("", True), ("_all", False)):
                    first, second = _item_scores(here, model, converged), _item_scores(here, control, converged)
                    if first.empty or second.empty:
                        continue
                    first, second = first.align(second, join="inner")
                    row["items"] = len(first)
                    row[f"paired_gain{suffix}"] = float((first - second).mean())
                    row[f"paired_p{suffix}"] = (row["paired_p"] if suffix and not (row["diverged"] or row["control_diverged"])
                                                else paired_permutation_p(first.to_numpy(), second.to_numpy(), draws=draws))
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["holm_p"] = holm(table["paired_p"])
    table["verdict"] = [_verdict(row, level) for row in table.itertuples()]
    # the same rule with diverged runs kept in (Holm over the same number of rows): does any verdict hinge on them?
    sensitivity = table.assign(median=table["median_all"], paired_gain=table["paired_gain_all"],
                               paired_p=table["paired_p_all"], holm_p=holm(table["paired_p_all"]))
    table["verdict_with_diverged"] = [_verdict(row, level) for row in sensitivity.itertuples()]
    return table


def _verdict(row, level: float) -> str:
    significant = not math.isnan(row.holm_p) and row.holm_p < level
    if math.isnan(row.paired_p):
        return "no paired data"
    if significant and row.paired_gain < 0:
        return "hurts"
    if math.isnan(row.threshold) or row.threshold > 1:
        return "not testable here"
    if significant and row.paired_gain > 0 and row.median >= row.threshold:
        return "helps"
    return "not shown to help"


def control_checks(runs: pd.DataFrame) -> pd.DataFrame:
    """How far each interaction-free control stays from its task's no-interaction ceiling: the best seed's
    test accuracy in standard errors of the ceiling on the test set (``sqrt(c (1 - c) / n)``). The ceiling
    bounds the population accuracy, so a control more than 3 standard errors above it is a bug."""
    picked = _picked(runs)
    rows = []
    for control in CONTROLS.values():
        for dataset, group in picked[picked["model"] == control].groupby("dataset", sort=True):
            ceiling = float(group["no_interaction_ceiling"].iloc[0]) if "no_interaction_ceiling" in group else math.nan
            if math.isnan(ceiling) or ceiling >= 1:
                continue
            items = float(group["test_count"].iloc[0])
            se = math.sqrt(ceiling * (1 - ceiling) / items)
            best = float(group["test_accuracy"].max())
            rows.append({"dataset": dataset, "control": control, "ceiling": ceiling, "best_seed": best,
                         "median": float(group["test_accuracy"].median()), "test_items": items,
                         "excess_in_se": (best - ceiling) / se if se else math.nan})
    return pd.DataFrame(rows)
