"""Figure 6 from models that learned, in prose and tables: the recipe search's page and the sentence on
the learned models' energies."""

from __future__ import annotations

import pandas as pd

from ..thresholds import LEARNED_MARGIN

__all__ = ["learned_sentence", "recipe_page"]


def recipe_page(table: pd.DataFrame, pick: dict, configured: dict) -> str:
    """The recipe search as Markdown: the rule, per recipe how many (dataset, variant) pairs learn and its
    validation answers, per (dataset, variant) the median validation accuracy under each recipe, and whether
    the configured recipe is the pick."""
    from ..recipes import __doc__ as rule

    scores = pick["scores"].assign(learned=lambda f: f["learned"].astype(str) + " of " + f["pairs"].astype(str))
    per_model = (table.assign(val_accuracy=table["val_correct"] / table["val_count"])
                 .groupby(["dataset", "variant", "optimizer", "lr"])
                 .agg(median_val=("val_accuracy", "median"), majority=("val_majority", "first"),
                      median_test=("test_accuracy", "median"), epochs=("epochs", "median"))
                 .reset_index())
    matches = configured.get("optimizer") == pick["optimizer"] and configured.get("lr") == pick["lr"]
    status = ("energy_curves.learned_recipe matches the pick." if matches else
              f"energy_curves.learned_recipe ({configured.get('optimizer')}, lr {configured.get('lr')}) is NOT the "
              "pick: fix the pick in the config before training the learned models.")
    seeds = sorted(table["seed"].unique().tolist())
    return "\n".join([
        "# Recipe search for Figure 6", "",
        "Rule " + " ".join(rule.split("The rule ")[1].split()) + " (unfolded.recipes)", "",
        f"Selection seeds {seeds}. A (dataset, variant) learns when its median validation accuracy is at least the "
        f"validation majority class + {LEARNED_MARGIN}.", "",
        f"**Pick: {pick['optimizer']}, learning rate {pick['lr']:g}**; {pick['learned']} of {pick['pairs']} "
        f"(dataset, variant) pairs learn under it ({', '.join(pick['learning']) or 'none'}). {status}", "",
        "## Recipes", "", scores.drop(columns="pairs").to_markdown(index=False, floatfmt=".4g"), "",
        "## Per model and recipe (median over the selection seeds)", "",
        per_model.to_markdown(index=False, floatfmt=".3f"), "",
    ])


def learned_sentence(summary: pd.DataFrame) -> str:
    """Which energy is non-increasing where, over the learned curves of ``energy_summary.csv`` (``state`` =
    ``learned``): per energy, on how many curves every step kept it from rising, with the lowest share."""
    learned = summary[summary["state"] == "learned"]
    if learned.empty:
        return "No learned curves (the archives hold no checkpoints)."
    parts = []
    for energy, group in learned.groupby("energy", sort=False):
        whole = int((group["monotone_fraction"] >= 1.0).sum())
        parts.append(f"{energy}: {whole} of {len(group)} curves never rise (lowest share "
                     f"{group['monotone_fraction'].min():.2f})")
    return "; ".join(parts) + "."
