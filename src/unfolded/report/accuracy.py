"""The accuracy tables in Markdown: the accuracy stage's page and the docs' per-dataset tables."""

from __future__ import annotations

import math

import pandas as pd

from .format import epochs_cell, fmt, lr_cell

__all__ = ["accuracy_markdown", "accuracy_page"]


def accuracy_markdown(summary: pd.DataFrame) -> str:
    """The summary as one Markdown table per dataset, models sorted by mean test accuracy."""
    parts = []
    for dataset, group in summary.groupby("dataset", sort=True):
        group = group.sort_values("test_accuracy_mean", ascending=False)
        table = pd.DataFrame({
            "model": group["model"],
            "test accuracy": [f"{fmt(m)} ± {fmt(s)}" if not math.isnan(s) else fmt(m)
                              for m, s in zip(group["test_accuracy_mean"], group["test_accuracy_sd"], strict=True)],
            **({"median": group["test_accuracy_median"].map(fmt)} if "test_accuracy_median" in group else {}),
            **({"did not train": group["did_not_train"]} if "did_not_train" in group and group["did_not_train"].any() else {}),
            "95% CI": [f"[{fmt(lo)}, {fmt(hi)}]" if not math.isnan(lo) else ""
                       for lo, hi in zip(group["ci95_low"], group["ci95_high"], strict=True)],
            "seeds": group["seeds"],
            "lr (grid)": [lr_cell(lr, grid) for lr, grid in zip(group["lr"], group["lr_grid"], strict=True)],
            "val accuracy": group["val_accuracy_mean"].map(fmt),
            "epochs (at cap)": [epochs_cell(r) for r in group.to_dict("records")],
            "parameters": group["parameters"],
        })
        first = group.iloc[0]
        ceilings = [f"majority class {fmt(first['chance_accuracy'])}"]
        if not math.isnan(first["bag_of_words_ceiling"]):
            se = first.get("bag_of_words_ceiling_se", math.nan)
            error = "" if se is None or math.isnan(se) else f" ± {se:.3f} (Monte Carlo)"
            ceilings.append(f"best bag-of-words classifier {fmt(first['bag_of_words_ceiling'])}{error} (from the generator)")
        if not math.isnan(first.get("no_interaction_ceiling", math.nan)):
            ceilings.append(f"no token interactions {fmt(first['no_interaction_ceiling'])} (docs/theory.md §7)")
        if not math.isnan(first["oracle_ceiling"]):
            ceilings.append(f"oracle {fmt(first['oracle_ceiling'])}")
        parts.append(f"### {dataset}\n\n{table.to_markdown(index=False)}\n\nCeilings and floors: {'; '.join(ceilings)}.")
    note = ("\n\nTest accuracy at the learning rate with the most correct validation answers over the seeds (a pick "
            "at an end of its grid is marked: the best rate may lie outside it; early stopping on "
            "validation accuracy; the best epoch is tested; epochs: mean over seeds, and how many seeds ran to the "
            "epoch cap instead of stopping early). ± is the sample standard deviation over seeds (ddof = 1), "
            "the interval Student's t (clipped to [0, 1]); runs that did not train (if any) are counted apart and left out of "
            "the mean, the median and the interval. Variant runs (model-variant) may have fewer seeds than the "
            "base models.\n")
    return "\n\n".join(parts) + note


def accuracy_page(summary: pd.DataFrame, curves: pd.DataFrame | None = None) -> str:
    """The accuracy stage's page (results/tables/accuracy.md): the summary tables and, when given, the
    energy-curve summary (one row per curve)."""
    text = "# Accuracy\n\n" + accuracy_markdown(summary)
    text += ("\nEnergy non-increasing (accuracy_summary.csv): share of (test sample, layer) steps that did not raise the "
             "energy of the layer taking them; for unfolded models their own energy, for standard models the fixed probe "
             "energy (see README). Every run: results/tables/accuracy.csv; timings: results/tables/timings.csv.\n")
    if curves is not None:
        text += "\n## Energy curves (Figures 5-6)\n\n" + curves.to_markdown(index=False, floatfmt=".4f") + "\n"
    return text
