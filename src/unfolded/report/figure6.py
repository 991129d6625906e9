"""Figure 6 from models that learned, in prose and tables: the recipe search's page and the sentence on
the learned models' energies."""

from __future__ import annotations

import pandas as pd

from ..counts import accuracy_share, at_least, median
from ..thresholds import LEARNED_MARGIN

__all__ = ["figure6_block", "figure6_headline", "figure6_sentences", "figure6_table", "recipe_page"]

#: The energies of a trained curve, in the order the tables list them, and their column names.
THEOREM_ENERGIES = ("pairwise term, attention sub-step", "feed-forward quadratic, gradient sub-step",
                    "feed-forward + ReLU indicator, feed-forward sub-step")
TOTALS = {"total without the regulariser, layer": "total", "total with the regulariser, layer": "total + reg."}
ROW_ORDER = {("trained", "authors"): 0, ("trained", "exact"): 1, ("trained", "exact_active"): 2,
             ("trained", "exact_recall"): 3, ("learned", "authors"): 4, ("learned", "exact"): 5,
             ("learned", "exact_active"): 6, ("learned", "exact_recall"): 7, ("learned", "unfolded_tied"): 8,
             ("learned", "unfolded_tied-residual"): 9}
#: The README's rows: the authors' recipe on the authors' model only (the exact models sit at the majority class too)
README_ROWS = set(ROW_ORDER) - {("trained", "exact"), ("trained", "exact_active"), ("trained", "exact_recall"),
                                ("learned", "exact_active"), ("learned", "unfolded_tied-residual")}
ROW_NAMES = {("trained", "authors"): "authors', authors' recipe", ("trained", "exact"): "exact, authors' recipe",
             ("trained", "exact_active"): "exact active, authors' recipe",
             ("trained", "exact_recall"): "exact recall, authors' recipe", ("learned", "authors"): "authors', searched recipe",
             ("learned", "exact"): "exact, searched recipe", ("learned", "exact_active"): "exact active, searched recipe",
             ("learned", "exact_recall"): "exact recall (E_X), searched recipe",
             ("learned", "unfolded_tied"): "unfolded_tied, study",
             ("learned", "unfolded_tied-residual"): "unfolded_tied-residual, study"}


def recipe_page(table: pd.DataFrame, pick: dict, configured: dict) -> str:
    """The recipe search as Markdown: the rule, per recipe how many (dataset, variant) pairs learn and its
    validation answers, per (dataset, variant) the median validation accuracy under each recipe, and whether
    the configured recipe is the pick."""
    from ..summaries import RECIPE_RULE

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
        "Rule (fixed before the search; unfolded.summaries.RECIPE_RULE): " + RECIPE_RULE, "",
        f"Selection seeds {seeds}. A (dataset, variant) learns when its median validation accuracy is at least the "
        f"validation majority class + {LEARNED_MARGIN}.", "",
        f"**Pick: {pick['optimizer']}, learning rate {pick['lr']:g}**; {pick['learned']} of {pick['pairs']} "
        f"(dataset, variant) pairs learn under it ({', '.join(pick['learning']) or 'none'}). {status}", "",
        "## Recipes", "", scores.drop(columns="pairs").to_markdown(index=False, floatfmt=".4g"), "",
        "## Per model and recipe (median over the selection seeds)", "",
        per_model.to_markdown(index=False, floatfmt=".3f"), "",
    ])


def figure6_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, trained model) of ``energy_summary.csv`` (every energy's rows; trained = after the authors'
    recipe, learned = the searched recipe and the study's models; ReLU): seeds, median test accuracy, majority
    class, the fewest classes any seed predicts, whether the median seed learned, and per energy the
    non-increasing share of steps (mean over seeds) with its minimum over seeds, plus the active share."""
    from ..registry import CURVE_MODELS

    # Figure 6's curves: the energy-curve models after the authors' recipe, and every learned model (the
    # default run's own train runs, also state "trained", are the accuracy tables' business)
    figure6 = (summary["state"] == "learned") | ((summary["state"] == "trained") & summary["variant"].isin(CURVE_MODELS))
    rows = summary[figure6 & summary["relu"].astype(bool)]
    out = []
    for (dataset, state, variant), group in rows.groupby(["dataset", "state", "variant"], sort=True):
        first = group.iloc[0]
        accuracy = float(group.groupby("seed")["test_accuracy"].first().median())
        per_seed = group.groupby("seed")[["test_accuracy", *(["test_count"] if "test_count" in group else [])]].first()
        shares = [accuracy_share(a, per_seed["test_count"].iloc[i] if "test_count" in per_seed else None)
                  for i, a in enumerate(per_seed["test_accuracy"])]
        count = per_seed["test_count"].iloc[0] if "test_count" in per_seed else None
        record = {"dataset": dataset, "state": state, "variant": variant, "seeds": int(group["seed"].nunique()),
                  "test_accuracy": accuracy, "chance_accuracy": float(first["chance_accuracy"]),
                  "learned": at_least(median(shares), accuracy_share(first["chance_accuracy"], count), LEARNED_MARGIN),
                  "predicted_classes": group["predicted_classes"].min() if "predicted_classes" in group else float("nan"),
                  "active": float(group["active_fraction"].mean())}
        for energy, shares in group.groupby("energy")["monotone_fraction"]:
            record[energy] = float(shares.mean())
            record[f"{energy} (min)"] = float(shares.min())
        out.append(record)
    table = pd.DataFrame(out)
    if table.empty:
        return table
    table["order"] = [ROW_ORDER.get((state, variant), 9) for state, variant in zip(table["state"], table["variant"],
                                                                                  strict=True)]
    return table.sort_values(["dataset", "order", "variant"]).drop(columns="order").reset_index(drop=True)


def _share(value) -> str:
    return "" if value != value else f"{100 * value:.0f}%"


def _theorems(row) -> str:
    """The lowest of the three sub-step energies' non-increasing shares (each on its own sub-step)."""
    values = [row.get(name, float("nan")) for name in THEOREM_ENERGIES]
    values = [value for value in values if value == value]
    return _share(min(values)) if values else ""


def figure6_headline(summary: pd.DataFrame, settings: dict) -> str:
    """The README's Figure 6 rows: per dataset, the authors' model after the authors' recipe and every model the
    recipe search and the study trained, with accuracy and the non-increasing share of layer steps on the
    sub-step energies (lowest of three), the total, and the total with the authors' regulariser."""
    from .format import compact_table

    table = figure6_table(summary)
    if table.empty:
        return "No trained energy curves in this run."
    table = table[[key in README_ROWS for key in zip(table["state"], table["variant"], strict=True)]]
    frame = pd.DataFrame({
        "dataset": table["dataset"],
        "model, recipe": [ROW_NAMES[key].replace("searched recipe", "searched")
                          for key in zip(table["state"], table["variant"], strict=True)],
        "seeds": table["seeds"],
        "test acc. (majority)": [f"{a:.3f} ({m:.3f})" for a, m in zip(table["test_accuracy"], table["chance_accuracy"],
                                                                       strict=True)],
        "classes": table["predicted_classes"].map(lambda v: "" if v != v else str(int(v))),
        "sub-steps": [_theorems(row) for _, row in table.iterrows()],
        **{name: table[energy].map(_share) if energy in table else "" for energy, name in TOTALS.items()},
    })
    failing = table[~table["learned"]]
    intro = (f"Non-increasing share of layer steps ({settings['samples']} test sequences, seed mean; accuracy: median); "
             "*sub-steps*: the lowest of three, each on its theorem's energy; *total*: the layer, without and with the "
             "authors' regulariser:\n\n")
    return (intro + compact_table(frame) + f"\n\n{len(failing)} of {len(table)} rows stay below the majority class + "
            f"{LEARNED_MARGIN:g} (did not learn here).")


def figure6_block(summary: pd.DataFrame) -> str:
    """docs/results.md: every trained and learned curve's energies, each with its mean and minimum over seeds."""
    table = figure6_table(summary)
    if table.empty:
        return "No trained energy curves in this run."
    energies = [*THEOREM_ENERGIES, *TOTALS]
    frame = pd.DataFrame({
        "dataset": table["dataset"],
        "model, recipe": [ROW_NAMES.get(key, f"{key[1]}, {key[0]}") for key in zip(table["state"], table["variant"],
                                                                                 strict=True)],
        "seeds": table["seeds"],
        "test acc. (majority)": [f"{a:.3f} ({m:.3f})" for a, m in zip(table["test_accuracy"], table["chance_accuracy"],
                                                                       strict=True)],
        "classes": table["predicted_classes"].map(lambda v: "" if v != v else str(int(v))),
        "active": table["active"].map(_share),
        **{name: [f"{_share(row[name])} ({_share(row[f'{name} (min)'])})" if name in row and row[name] == row[name]
                  else "" for _, row in table.iterrows()] for name in energies},
    })
    return frame.to_markdown(index=False) + "\n\n" + "\n".join(figure6_sentences(table))


def figure6_sentences(table: pd.DataFrame) -> list[str]:
    """Which energy is non-increasing where, with counts over the rows of :func:`figure6_table` that carry
    every energy, and which rows learned."""
    measured = table.dropna(subset=[*THEOREM_ENERGIES[:2], *TOTALS])
    def names(rows: pd.DataFrame) -> str:
        listed = [f"{r.dataset} {ROW_NAMES.get((r.state, r.variant), r.variant)}" for r in rows.itertuples()]
        return ", ".join(listed) if len(listed) <= 4 else ", ".join(listed[:4]) + f" and {len(listed) - 4} more"

    lines = []
    for energy in (*THEOREM_ENERGIES, *TOTALS):
        rows = measured.dropna(subset=[energy])
        kept = rows[rows[f"{energy} (min)"] >= 1.0]
        rising = rows[rows[f"{energy} (min)"] < 1.0]
        lines.append(f"- `derived` {energy}: never rises on any seed in {len(kept)} of {len(rows)} models"
                     + (f"; rises in {names(rising)} (lowest share on a seed "
                        f"{rising[f'{energy} (min)'].min():.2f})." if len(rising) else "."))
    learned = table[table["learned"]]
    single = table[table["predicted_classes"] == 1]
    lines.append(f"- `derived` Learned (median test accuracy at least the majority class + {LEARNED_MARGIN:g}): "
                 f"{len(learned)} of {len(table)} models ({names(learned) or 'none'})."
                 + (f" Predicting one class for every test input: {names(single)}." if len(single) else ""))
    return lines
