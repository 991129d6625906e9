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

The verdict's test is seed-aware: the paired sign-flip test over seeds (:func:`unfolded.stats.seed_paired_p`)
on the per-seed test accuracies, the two runs of a seed sharing its train/validation split, so that what a new
seed would change counts. The item-level sign-flip test on the shared test items (each item scored by the share
of seeds that answered it) is kept as a secondary column: it holds the trained seeds fixed, and on a true null
with seed-to-seed variance it rejects far more often than its level (tests/test_attention_trial.py). Welch's
test over seeds is a third column.

Runs that did not train (:func:`unfolded.summaries.did_not_train`) are set apart, and every verdict is also
stated with them kept: a verdict that holds only with them set aside reads "depends on runs that did not
train". A model of which at least half the seeds trained until the epoch cap is flagged (``at_cap``): its
verdict may reflect under-training.
"""

from __future__ import annotations

import math

import pandas as pd

from .registry import ENERGY_ENCODERS
from .stats import holm, paired_permutation_p, seed_paired_p, welch_p
from .summaries import did_not_train, select_learning_rates
from .thresholds import ATTENTION_HELPS_MARGIN, SIGNIFICANCE_LEVEL

__all__ = ["COMPARISONS", "CONTROLS", "DEPENDS", "INTERACTION_FREE", "attention_verdicts", "control_checks", "paired_comparisons",
           "picked_predictions"]

#: The models on trial and their interaction-free controls: the same model without its attention step.
CONTROLS = {"unfolded_tied": "unfolded_tied-no_attention", "standard_tied": "standard_tied-no_attention",
            "unfolded_tied-recall": "unfolded_tied-recall_no_attention",
            **{f"{stem}_tied": f"{stem}_tied-no_attention" for stem, encoder in ENERGY_ENCODERS.items()
               if encoder.mixes_tokens}}
#: Models without token interactions by construction, whose task ceilings bind them like the controls: the
#: plug-in encoders whose step mixes no tokens (unfolded.registry.EnergyEncoder.mixes_tokens).
INTERACTION_FREE = tuple(f"{stem}_tied" for stem, encoder in ENERGY_ENCODERS.items() if not encoder.mixes_tokens)
#: Paired comparisons of a model with the one it modifies (docs/theory.md §8): does recall change accuracy?
COMPARISONS = {"unfolded_tied-recall": "unfolded_tied"}
RUN_KEYS = ["dataset", "model", "lr", "seed"]
#: The verdict of a row whose verdict with the runs that did not train set aside differs from the one with
#: them kept.
DEPENDS = "depends on runs that did not train"


def _picked(runs: pd.DataFrame) -> pd.DataFrame:
    runs = select_learning_rates(runs.drop(columns=["selected"], errors="ignore"))
    runs = runs.assign(did_not_train=did_not_train(runs))
    return runs[runs["selected"] & runs["lr"].notna()]


def picked_predictions(runs: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The per-item test predictions of every picked run (``runs``' learning-rate pick), runs that did not
    train included (a column says which)."""
    picked = _picked(runs)[RUN_KEYS + ["did_not_train"]]
    predictions = predictions.drop(columns=["did_not_train", "diverged"], errors="ignore")
    return predictions.merge(picked, on=RUN_KEYS, how="inner").sort_values([*RUN_KEYS, "item"], ignore_index=True)


def _reference(row: pd.Series) -> tuple[float, str]:
    """The ceiling a verdict is judged against, and what kind it is."""
    if not pd.isna(row.get("no_interaction_ceiling", math.nan)):
        return float(row["no_interaction_ceiling"]), "no-interaction ceiling"
    if not pd.isna(row.get("bag_of_words_ceiling", math.nan)):
        return float(row["bag_of_words_ceiling"]), "bag-of-words reference (evidence, not proof)"
    return math.nan, "none known"


def _item_scores(predictions: pd.DataFrame, model: str, trained_only: bool = True) -> pd.Series:
    """Per test item, the share of the model's picked seeds (those that trained, by default) that
    answered it correctly."""
    rows = predictions[predictions["model"] == model]
    rows = rows[~rows["did_not_train"]] if trained_only else rows
    return rows.groupby("item")["correct"].mean()


def _at_cap(runs: pd.DataFrame) -> int:
    """How many of ``runs`` trained until their epoch cap (0 where the cap is not recorded)."""
    if "epochs" not in runs or "max_epochs" not in runs:
        return 0
    return int((runs["epochs"] >= runs["max_epochs"]).sum())


def _meets_threshold(runs: pd.DataFrame, ceiling: float) -> bool:
    """Whether the median test share of ``runs`` is at least ``ceiling + ATTENTION_HELPS_MARGIN``, in exact
    counts (:mod:`unfolded.counts`)."""
    from fractions import Fraction

    from .counts import at_least, count_of, median, share

    if runs.empty or math.isnan(ceiling):
        return False
    if "test_count" in runs and runs["test_count"].notna().all():
        correct = runs["test_correct"] if "test_correct" in runs else pd.Series(math.nan, index=runs.index)
        shares = [share(c if not pd.isna(c) else count_of(a, int(n)), int(n))
                  for c, a, n in zip(correct, runs["test_accuracy"], runs["test_count"], strict=True)]
    else:
        shares = [Fraction(repr(round(float(a), 9))) for a in runs["test_accuracy"]]
    return at_least(median(shares), Fraction(repr(float(ceiling))), ATTENTION_HELPS_MARGIN)


def _seed_scores(runs: pd.DataFrame) -> pd.Series:
    """Per seed, the score the seed test compares: the count of correct test answers where every run records it on
    one shared number of items (exact integers: a table's rounded accuracies would decide ties between sign patterns),
    the test accuracy otherwise."""
    indexed = runs.set_index("seed")
    counted = {"test_correct", "test_count"} <= set(runs.columns) and runs["test_correct"].notna().all() \
        and runs["test_count"].nunique() == 1
    return indexed["test_correct"].astype(int) if counted else indexed["test_accuracy"].astype(float)


def _seed_test(ours: pd.DataFrame, theirs: pd.DataFrame) -> tuple[float, float, int]:
    """The paired gain (mean over shared seeds of the per-seed accuracy difference), the seed test's p (on exact
    counts where both sides have them on the same items) and the number of seed pairs."""
    pairs = ours.set_index("seed")["test_accuracy"].to_frame("ours").join(
        theirs.set_index("seed")["test_accuracy"].rename("theirs"), how="inner")
    if pairs.empty:
        return math.nan, math.nan, 0
    difference = pairs["ours"] - pairs["theirs"]
    first, second = _seed_scores(ours), _seed_scores(theirs)
    if first.dtype != second.dtype or ("test_count" in ours and "test_count" in theirs
                                       and set(ours["test_count"]) != set(theirs["test_count"])):
        first, second = ours.set_index("seed")["test_accuracy"], theirs.set_index("seed")["test_accuracy"]
    first, second = first.loc[pairs.index], second.loc[pairs.index]
    return float(difference.mean()), seed_paired_p(first.to_numpy(float), second.to_numpy(float)), len(pairs)


def attention_verdicts(runs: pd.DataFrame, predictions: pd.DataFrame | None,
                       level: float = SIGNIFICANCE_LEVEL, draws: int = 20_000) -> pd.DataFrame:
    """One row per (dataset, model on trial) whose control ran: medians, means, the runs that did not train,
    how many seeds hit the epoch cap, the reference ceiling, the paired gain over seeds with the seed test's
    p and its Holm adjustment over every row (the verdict's test), the item-level test on shared test items
    (secondary, conditional on the trained seeds), Welch's p, and the verdict with the runs that did not train
    set aside, with them kept, and as stated (:data:`DEPENDS` where the two differ)."""
    picked = _picked(runs)
    if predictions is not None and "did_not_train" not in predictions:
        predictions = picked_predictions(runs, predictions)
    rows = []
    for dataset, group in picked.groupby("dataset", sort=True):
        for model, control in CONTROLS.items():
            ours, theirs = group[group["model"] == model], group[group["model"] == control]
            if ours.empty or theirs.empty:
                continue
            ceiling, kind = _reference(ours.iloc[0])
            trained, controls = ours[~ours["did_not_train"]], theirs[~theirs["did_not_train"]]
            row = {"dataset": dataset, "model": model, "control": control, "reference": ceiling, "reference_kind": kind,
                   "threshold": ceiling + ATTENTION_HELPS_MARGIN, "chance_accuracy": float(ours["chance_accuracy"].iloc[0]),
                   "lr": float(ours["lr"].iloc[0]), "control_lr": float(theirs["lr"].iloc[0]),
                   "seeds": len(ours), "control_seeds": len(theirs),
                   "did_not_train": int(ours["did_not_train"].sum()),
                   "control_did_not_train": int(theirs["did_not_train"].sum()),
                   "at_cap": _at_cap(ours), "control_at_cap": _at_cap(theirs),
                   "meets_threshold": _meets_threshold(trained, ceiling),
                   "meets_threshold_all": _meets_threshold(ours, ceiling),
                   "median": float(trained["test_accuracy"].median()),
                   "median_all": float(ours["test_accuracy"].median()),
                   "control_median": float(controls["test_accuracy"].median()),
                   "control_median_all": float(theirs["test_accuracy"].median()),
                   "mean": float(trained["test_accuracy"].mean()),
                   "control_mean": float(controls["test_accuracy"].mean()),
                   "welch_p": welch_p(trained["test_accuracy"], controls["test_accuracy"])}
            row["paired_gain"], row["seed_p"], row["pairs"] = _seed_test(trained, controls)
            row["paired_gain_all"], row["seed_p_all"], row["pairs_all"] = _seed_test(ours, theirs)
            row["item_gain"], row["item_p"], row["items"] = math.nan, math.nan, 0
            if predictions is not None:
                here = predictions[predictions["dataset"] == dataset]
                first, second = _item_scores(here, model), _item_scores(here, control)
                if not first.empty and not second.empty:
                    first, second = first.align(second, join="inner")
                    row["items"] = len(first)
                    row["item_gain"] = float((first - second).mean())
                    row["item_p"] = paired_permutation_p(first.to_numpy(), second.to_numpy(), draws=draws)
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["holm_p"] = holm(table["seed_p"])
    table["item_holm_p"] = holm(table["item_p"])
    table["verdict_set_aside"] = [_verdict(row, level) for row in table.itertuples()]
    # the same rule with the runs that did not train kept in (Holm over the same rows)
    kept = table.assign(meets_threshold=table["meets_threshold_all"], paired_gain=table["paired_gain_all"],
                        seed_p=table["seed_p_all"],
                        holm_p=holm(table["seed_p_all"]))
    table["holm_p_all"] = kept["holm_p"]
    table["verdict_kept"] = [_verdict(row, level) for row in kept.itertuples()]
    table["verdict"] = [first if first == second else DEPENDS
                        for first, second in zip(table["verdict_set_aside"], table["verdict_kept"], strict=True)]
    # at least half the seeds of the model or of its control ran to the epoch cap: perhaps under-trained
    table["capped"] = (2 * table["at_cap"] >= table["seeds"]) | (2 * table["control_at_cap"] >= table["control_seeds"])
    return table


def paired_comparisons(runs: pd.DataFrame, pairs: dict[str, str] | None = None,
                       level: float = SIGNIFICANCE_LEVEL) -> pd.DataFrame:
    """One row per (dataset, model, reference) of ``pairs`` (default :data:`COMPARISONS`) whose runs both exist:
    medians, the paired gain over seeds and the seed test's p (:func:`unfolded.stats.seed_paired_p`), Holm over
    every row, with the runs that did not train set aside and kept; ``verdict``: "better" or "worse" on a
    Holm-significant paired difference, else "not shown to differ" (:data:`DEPENDS` where set aside and kept
    disagree)."""
    picked = _picked(runs)
    rows = []
    for dataset, group in picked.groupby("dataset", sort=True):
        for model, reference in (pairs or COMPARISONS).items():
            ours, theirs = group[group["model"] == model], group[group["model"] == reference]
            if ours.empty or theirs.empty:
                continue
            trained, others = ours[~ours["did_not_train"]], theirs[~theirs["did_not_train"]]
            row = {"dataset": dataset, "model": model, "reference": reference,
                   "lr": float(ours["lr"].iloc[0]), "reference_lr": float(theirs["lr"].iloc[0]),
                   "seeds": len(ours), "reference_seeds": len(theirs),
                   "did_not_train": int(ours["did_not_train"].sum()),
                   "reference_did_not_train": int(theirs["did_not_train"].sum()),
                   "at_cap": _at_cap(ours), "reference_at_cap": _at_cap(theirs),
                   "median": float(trained["test_accuracy"].median()),
                   "reference_median": float(others["test_accuracy"].median())}
            row["paired_gain"], row["seed_p"], row["pairs"] = _seed_test(trained, others)
            row["paired_gain_all"], row["seed_p_all"], row["pairs_all"] = _seed_test(ours, theirs)
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["holm_p"], table["holm_p_all"] = holm(table["seed_p"]), holm(table["seed_p_all"])

    def verdict(gain: float, p: float) -> str:
        if math.isnan(p):
            return "no paired data"
        if p < level:
            return "better" if gain > 0 else "worse"
        return "not shown to differ"

    table["verdict_set_aside"] = [verdict(g, p) for g, p in zip(table["paired_gain"], table["holm_p"], strict=True)]
    table["verdict_kept"] = [verdict(g, p) for g, p in zip(table["paired_gain_all"], table["holm_p_all"], strict=True)]
    table["verdict"] = [first if first == second else DEPENDS
                        for first, second in zip(table["verdict_set_aside"], table["verdict_kept"], strict=True)]
    table["capped"] = (2 * table["at_cap"] >= table["seeds"]) | (2 * table["reference_at_cap"] >= table["reference_seeds"])
    return table


def _verdict(row, level: float) -> str:
    if math.isnan(row.seed_p):
        return "no paired data"
    significant = not math.isnan(row.holm_p) and row.holm_p < level
    if significant and row.paired_gain < 0:
        return "hurts"
    if math.isnan(row.threshold) or row.threshold > 1:
        return "not testable here"
    if significant and row.paired_gain > 0 and row.meets_threshold:
        return "helps"
    return "not shown to help"


def control_checks(runs: pd.DataFrame) -> pd.DataFrame:
    """How far each interaction-free control stays from its task's no-interaction ceiling: the best seed's
    test accuracy in standard errors of the ceiling on the test set (``sqrt(c (1 - c) / n)``). The ceiling
    bounds the population accuracy, so a control more than 3 standard errors above it is a bug."""
    picked = _picked(runs)
    rows = []
    for control in (*CONTROLS.values(), *INTERACTION_FREE):
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
