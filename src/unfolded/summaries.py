"""Summaries of finished stages as tidy tables: the runs' accuracy (learning-rate pick on validation,
seed statistics beside the baselines and ceilings), depth extrapolation, and the energy curves
(one row per curve, and per layer).

Protocol (fixed before any model was trained): for each (dataset, model) the learning rate with
the most correct validation answers summed over seeds is picked (exact integers; ties: the smaller
rate); a pick at an end of a grid of several rates is flagged. At that rate, runs that did not train
(below the majority class + ``DID_NOT_TRAIN_MARGIN`` on validation while most of their siblings are not,
in exact counts) are counted apart; the others' test accuracy is reported as median, mean, sample standard deviation
(ddof = 1) and a 95% confidence interval from Student's t over seeds. Baselines (bag_of_embeddings, linear probe) and the known
ceilings of the generated tasks sit in the same table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import torch

from .columns import CURVE_ATTRIBUTES, CURVE_KEYS
from .data.ceilings import CEILING_KEYS
from .diagnostics import COLLAPSE_THRESHOLD, curve_summary_row
from .stats import confidence_interval

__all__ = [
    "KEYS",
    "collect_runs",
    "PLOTTED_ENERGY",
    "RECIPE_RULE",
    "curve_summary",
    "plotted_rows",
    "depth_table",
    "did_not_train",
    "pick_at_edge",
    "layer_decomposition",
    "median_seed",
    "relative_depth_stats",
    "select_learning_rates",
    "recall_depth_criterion",
    "select_recall",
    "select_recipe",
    "summarise_accuracy",
    "summarise_runs",
    "sweep_criterion",
    "trained_energy_table",
    "token_spread_table",
    "training_curves",
    "validation_score",
]

#: A row of the accuracy summary: one (dataset, model).
KEYS = ["dataset", "model"]
#: Columns of accuracy.csv that are timings, not results: they go to timings.csv.
TIMING_COLUMNS = ("train_seconds", "samples_per_second", "resumed")


def _curve_tensors(group: pd.DataFrame):
    steps = group[group["layer"] > 0]
    wide = lambda column, frame: torch.tensor(  # noqa: E731
        frame.pivot(index="sample", columns="layer", values=column).to_numpy(), dtype=torch.float64)
    return (wide("step_before", steps), wide("step_after", steps), wide("relative_spread", group),
            wide("step_middle", steps))


def _with_keys(table: pd.DataFrame) -> pd.DataFrame:
    """A copy with every curve key present (seed -1 and lr NaN where a table has none)."""
    table = table.copy()
    if "seed" not in table:
        table["seed"] = -1
    if "lr" not in table:
        table["lr"] = math.nan
    return table


#: The ``energy`` of each curve's first summary row: the curve the figures draw, each layer step on the
#: energy of the layer that takes it (the authors' total with the regulariser for their model, the total
#: without it for the exact models, the probe energy for standard Transformers).
PLOTTED_ENERGY = "plotted: the model's own total, layer"
PLOTTED_GUARANTEE = "no theorem (the whole layer)"


def plotted_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`curve_summary` (or of ``energy_summary.csv``) about the plotted energy: one per curve."""
    if "energy" not in summary:
        return summary
    return summary[summary["energy"] == PLOTTED_ENERGY].reset_index(drop=True)


def curve_summary(table: pd.DataFrame, energies: bool = True) -> pd.DataFrame:
    """One row per (curve, energy): the curve is (dataset, variant, relu, state, seed, lr), the energy is
    named in column ``energy``. Each curve has a row for :data:`PLOTTED_ENERGY` and, with ``energies``
    and a trace that records them, one for each energy of :data:`unfolded.models.SUBSTEP_ENERGIES` that
    applies (the ReLU one only with ReLU): the shares of :func:`unfolded.diagnostics.curve_summary_row`
    and, for trained curves, accuracy, majority-class accuracy and weight change on every row."""
    from .models import SUBSTEP_ENERGIES

    table = _with_keys(table)
    rows = []
    for key, group in table.groupby(CURVE_KEYS, sort=True, dropna=False):
        before, after, relative_spread, middle = _curve_tensors(group)
        attention = middle - before if torch.isfinite(middle).all() else None
        keys = dict(zip(CURVE_KEYS, key, strict=True))
        attributes = {column: group[column].iloc[0] if column in group else math.nan for column in CURVE_ATTRIBUTES}
        row = {**keys, "energy": PLOTTED_ENERGY, "guarantee": PLOTTED_GUARANTEE,
               **curve_summary_row(before, after, relative_spread, attention)}
        row.setdefault("attention_share", math.nan)
        row.setdefault("attention_share_active", math.nan)
        rows.append({**row, **attributes})
        if not energies:
            continue
        steps = group[group["layer"] > 0]
        for stem, (name, guarantee) in SUBSTEP_ENERGIES.items():
            if f"{stem}_before" not in steps or steps[f"{stem}_before"].isna().all():
                continue
            wide = [torch.tensor(steps.pivot(index="sample", columns="layer", values=f"{stem}_{end}").to_numpy(),
                                 dtype=torch.float64) for end in ("before", "after")]
            rows.append({**keys, "energy": name, "guarantee": guarantee,
                         **curve_summary_row(*wide, relative_spread), "attention_share": math.nan,
                         "attention_share_active": math.nan, **attributes})
    return pd.DataFrame(rows)


def token_spread_table(table: pd.DataFrame) -> pd.DataFrame:
    """The mechanism behind the attention verdicts, per trained run and layer: the median over test
    sequences of the relative token spread (spread / its layer-0 value; near 0: every token of a sequence
    at one point) and of the absolute spread. One row per (dataset, model, lr, seed, layer)."""
    trained = _with_keys(table)
    trained = trained[trained["state"] == "trained"]
    if trained.empty:
        return pd.DataFrame(columns=["dataset", "model", "lr", "seed", "layer", "relative_spread", "spread", "samples"])
    grouped = trained.groupby(["dataset", "variant", "lr", "seed", "layer"], sort=True)
    return grouped.agg(relative_spread=("relative_spread", "median"), spread=("spread", "median"),
                       samples=("sample", "count")).reset_index().rename(columns={"variant": "model"})


def summarise_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """Tidy accuracy table: one row per (dataset, model, seed) from each run's provenance.json."""
    rows = []
    for run_dir in run_dirs:
        record = json.loads((Path(run_dir) / "provenance.json").read_text())
        summary = record["summary"]
        rows.append({"dataset": record["dataset"], "model": record["model"], "seed": record["seed"], **summary})
    return pd.DataFrame(rows).sort_values(["dataset", "model", "seed"], ignore_index=True)


def layer_decomposition(table: pd.DataFrame) -> pd.DataFrame:
    """Per curve and layer: how much of the step's energy decrease comes from the attention sub-step
    (``step_before - step_middle``) and how much from the feed-forward sub-step with its ReLU/LN
    (``step_middle - step_after``), as means over samples, and the share of samples whose state
    was active (relative spread >= COLLAPSE_THRESHOLD) before the step. Curves without a split
    (standard models) are left out."""
    table = _with_keys(table).sort_values([*CURVE_KEYS, "sample", "layer"])
    table["active_before"] = table.groupby([*CURVE_KEYS, "sample"], dropna=False)["relative_spread"].shift(1) \
        >= COLLAPSE_THRESHOLD
    steps = table[(table["layer"] > 0) & table["step_middle"].notna()]
    steps = steps.assign(attention_decrease=steps["step_before"] - steps["step_middle"],
                         ffn_decrease=steps["step_middle"] - steps["step_after"],
                         total_decrease=steps["step_before"] - steps["step_after"])
    grouped = steps.groupby([*CURVE_KEYS, "layer"], sort=True, dropna=False)
    return grouped.agg(samples=("sample", "count"), active_share=("active_before", "mean"),
                       attention_decrease=("attention_decrease", "mean"), ffn_decrease=("ffn_decrease", "mean"),
                       total_decrease=("total_decrease", "mean")).reset_index()


def _clip(value: float) -> float:
    """Accuracies are in [0, 1]; so are the reported ends of their intervals."""
    return value if math.isnan(value) else min(1.0, max(0.0, value))


def _counted(runs: pd.DataFrame) -> pd.Series:
    """Per run, whether every run of its (dataset, model) recorded its count of correct validation answers."""
    present = runs["val_correct"].notna() if "val_correct" in runs else pd.Series(False, index=runs.index)
    return present.groupby([runs[key] for key in KEYS]).transform("all")


def validation_score(runs: pd.DataFrame) -> pd.Series:
    """What the learning-rate pick compares, per run: the number of correct validation answers (an exact
    integer) where every run of its (dataset, model) recorded one; otherwise (older archives) the
    validation accuracy rounded to 9 decimals, so that float noise (0.8119999999999999 against 0.812)
    is a tie, not a win. One kind per (dataset, model): counts and accuracies are never compared."""
    rounded = runs["val_accuracy"].round(9)
    return runs["val_correct"].where(_counted(runs), rounded) if "val_correct" in runs else rounded


def select_learning_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with a boolean ``selected`` column: per (dataset, model) the learning rate with the
    most correct validation answers summed over its seeds (:func:`validation_score`; ties: the smaller
    rate). Runs without a learning rate (the linear probe) are always selected."""
    runs = runs.copy()
    runs["selected"] = runs["lr"].isna()
    trained = runs[runs["lr"].notna()]
    if trained.empty:
        return runs
    scored = trained.assign(score=validation_score(trained), counted=_counted(trained))
    # a sum of counts over the seeds where every run counts answers; a mean of accuracies otherwise
    grouped = scored.groupby([*KEYS, "lr"])
    means = grouped["score"].sum().where(grouped["counted"].all(), grouped["score"].mean().round(9))
    means = means.rename("score").reset_index()
    means = means.sort_values([*KEYS, "score", "lr"], ascending=[True, True, False, True])
    picks = means.groupby(KEYS).head(1)[[*KEYS, "lr"]]
    picked = set(map(tuple, picks.to_numpy().tolist()))
    chosen = [(d, m, lr) in picked for d, m, lr in runs[[*KEYS, "lr"]].itertuples(index=False)]
    runs["selected"] = runs["selected"] | pd.Series(chosen, index=runs.index, dtype=bool)
    return runs


def _exact_shares(runs: pd.DataFrame) -> tuple[list, list]:
    """Per run, its validation share (test where no validation was recorded) and its majority-class share
    as exact fractions from counts (:mod:`unfolded.counts`); None where a run records neither."""
    from fractions import Fraction

    from .counts import count_of, share

    def exact(accuracy, correct, count):
        if pd.isna(accuracy) and (correct is None or pd.isna(correct)):
            return None
        if count is not None and not pd.isna(count) and int(count) > 0:
            if correct is not None and not pd.isna(correct):
                return share(correct, int(count))
            return share(count_of(accuracy, int(count)), int(count))
        return Fraction(repr(round(float(accuracy), 9)))  # older tables without counts: the written decimal

    column = lambda name: runs[name] if name in runs else pd.Series([None] * len(runs), index=runs.index)  # noqa: E731
    prefix = "val" if "val_accuracy" in runs else "test"
    scores = [exact(a, c, n) for a, c, n in zip(column(f"{prefix}_accuracy"), column(f"{prefix}_correct"),
                                                  column(f"{prefix}_count"), strict=True)]
    majority = [exact(a, None, n) for a, n in zip(column("chance_accuracy"), column("test_count"), strict=True)]
    return scores, majority


def did_not_train(runs: pd.DataFrame) -> pd.Series:
    """Per run, whether it did not train, judged on validation (never on test) in exact counts: its best
    validation share is below its majority class + ``DID_NOT_TRAIN_MARGIN`` while the median of its (dataset,
    model, lr) group is not, and such runs are a strict minority of the group. A group that sits at the
    majority class as a whole, or splits half and half, is reported as it is: nothing is set apart.

    Such runs stop early at the validation accuracy of a constant answer (often their test accuracy is exactly
    the majority class): a failure to start training, not a loss that blew up."""
    from .counts import at_least, median
    from .thresholds import DID_NOT_TRAIN_MARGIN

    scores, majority = _exact_shares(runs)
    low = pd.Series([score is not None and base is not None and not at_least(score, base, DID_NOT_TRAIN_MARGIN)
                     for score, base in zip(scores, majority, strict=True)], index=runs.index, dtype=bool)
    keys = [runs[key] for key in ("dataset", "model")] + [runs["lr"].fillna(-1.0)]
    group_trained = pd.Series(False, index=runs.index)
    for _, index in runs.groupby(keys, sort=False).groups.items():
        known = [(scores[runs.index.get_loc(i)], majority[runs.index.get_loc(i)]) for i in index]
        known = [(score, base) for score, base in known if score is not None and base is not None]
        if known:
            trained = at_least(median(score for score, _ in known), median(base for _, base in known),
                               DID_NOT_TRAIN_MARGIN)
            group_trained[index] = trained
    minority = low.groupby(keys).transform("sum") * 2 < low.groupby(keys).transform("size")
    return (low & group_trained & minority).astype(bool)


def pick_at_edge(lr: float, grid: list[float]) -> bool:
    """Whether a learning-rate pick sits at an end of a grid of several rates (the best may lie outside)."""
    return len(grid) > 1 and (lr == min(grid) or lr == max(grid))


def summarise_accuracy(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model) at its picked learning rate: the grid, the pick and whether it sits at
    an end of the grid, seeds, runs that did not train (counted apart), median, mean, sd and 95% CI of the other
    runs' test accuracy, mean validation accuracy, parameters, the majority class and the dataset's
    known ceilings."""
    runs = select_learning_rates(runs)
    runs["did_not_train"] = did_not_train(runs)
    rows = []
    for (dataset, model), group in runs.groupby(KEYS, sort=True):
        everything = group[group["selected"]]
        picked = everything[~everything["did_not_train"]]
        grid = sorted(group["lr"].dropna().unique())
        low, high = confidence_interval(picked["test_accuracy"])
        first = everything.iloc[0]
        rows.append({
            "dataset": dataset, "model": model, "variant": first.get("variant", "base"),
            "family": first.get("family", ""),
            "lr_grid": "/".join(f"{lr:g}" for lr in grid) if grid else "",
            "lr": first["lr"], "pick_at_edge": pick_at_edge(first["lr"], grid),
            "seeds": int(everything["seed"].nunique()), "did_not_train": int(everything["did_not_train"].sum()),
            "test_accuracy_median": float(picked["test_accuracy"].median()),
            "test_accuracy_mean": float(picked["test_accuracy"].mean()),
            "test_accuracy_sd": float(picked["test_accuracy"].std(ddof=1)) if len(picked) > 1 else math.nan,
            "ci95_low": _clip(low), "ci95_high": _clip(high),
            "val_accuracy_mean": float(picked["val_accuracy"].mean()),
            "epochs_mean": float(picked["epochs"].mean()) if "epochs" in picked else math.nan,
            "epochs_at_cap": _at_cap(picked),
            "parameters": int(first["parameters"]),
            "energy_monotone_fraction": float(picked["energy_monotone_fraction"].mean())
            if "energy_monotone_fraction" in picked else math.nan,
            "chance_accuracy": float(first["chance_accuracy"]),
            **{column: float(first.get(column, math.nan)) for column in CEILING_KEYS},
        })
    return pd.DataFrame(rows)


def _at_cap(picked: pd.DataFrame) -> float:
    """How many runs trained until their ``max_epochs`` (early stopping did not end them); NaN when
    the runs do not record their epoch cap (the linear probe, older tables)."""
    if "epochs" not in picked or "max_epochs" not in picked or picked["max_epochs"].isna().all():
        return math.nan
    return float((picked["epochs"] >= picked["max_epochs"]).sum())


def depth_table(depth: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Depth rows of the runs at each model's picked learning rate, in the published column order."""
    picks = summary[[*KEYS, "lr"]]
    merged = depth.merge(picks, on=[*KEYS, "lr"], how="inner")
    columns = ["dataset", "model", "seed", "lr", "trained_depth", "depth", "test_accuracy", "update", "energy"]
    return merged[columns].sort_values(["dataset", "model", "seed", "depth"], ignore_index=True)


def relative_depth_stats(depth: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): accuracy at the trained depth L, one and two layers past it and at the
    deepest depth; the relative update and the energy at L and at the deepest depth."""
    rows = []
    for (dataset, model), group in depth.groupby(KEYS, sort=True):
        trained = int(group["trained_depth"].iloc[0])
        deepest = int(group["depth"].max())

        def at(d: int, column: str, group: pd.DataFrame = group) -> float:
            return float(group[group["depth"] == d][column].mean())

        rows.append({"dataset": dataset, "model": model, "trained_depth": trained, "max_depth": deepest,
                     "accuracy_at_L": at(trained, "test_accuracy"),
                     "accuracy_at_L+1": at(trained + 1, "test_accuracy"),
                     "accuracy_at_L+2": at(trained + 2, "test_accuracy"),
                     "accuracy_at_max": at(deepest, "test_accuracy"),
                     "update_at_L": at(trained, "update"), "update_at_max": at(deepest, "update"),
                     "energy_at_L": at(trained, "energy"), "energy_at_max": at(deepest, "energy")})
    return pd.DataFrame(rows)




def collect_runs(run_dirs: list[Path], probes: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run of ``run_dirs`` (their provenance.json) and every linear probe (its provenance.json) as
    one row each, with the position code and epoch cap each run trained with and the learning-rate
    pick (``selected``); returns (runs, timings): results, which a rerun reproduces byte for byte, and
    the training times, which it does not."""
    runs = summarise_runs([Path(p) for p in run_dirs])
    records = [json.loads((Path(p) / "provenance.json").read_text()) for p in run_dirs]
    keys = list(runs[["dataset", "model", "lr", "seed"]].itertuples(index=False, name=None))
    by_run = {(r["dataset"], r["model"], r["summary"]["lr"], r["seed"]): r["config"]["train"] for r in records}
    # the position code each run's inputs had (config train.positions; patches always have learned positions)
    runs["positions"] = [by_run[key]["positions"] for key in keys]
    # and its epoch cap, so the tables can say which runs early stopping did not end
    runs["max_epochs"] = [by_run[key]["max_epochs"] for key in keys]
    probe_records = [json.loads(Path(p).read_text()) for p in probes]
    if probe_records:
        runs = pd.concat([runs, pd.DataFrame([{"dataset": r["dataset"], "model": "linear_probe", "seed": r["seed"],
                                               **r["summary"]} for r in probe_records])], ignore_index=True)
    runs = select_learning_rates(runs)
    timing_columns = [c for c in TIMING_COLUMNS if c in runs]
    timings = runs[runs["lr"].notna()][["dataset", "model", "lr", "seed", *timing_columns]]  # Lightning runs
    runs = runs.drop(columns=[*timing_columns, "C_grid", "learned_alpha_attention", "learned_alpha_ffn"], errors="ignore")
    return runs, timings


def training_curves(run_dirs: list[Path], summary: pd.DataFrame) -> pd.DataFrame:
    """Every logged metric of the runs at their (dataset, model)'s picked learning rate, one row per log line."""
    frames = []
    for run in run_dirs:
        record = json.loads((Path(run) / "provenance.json").read_text())
        metrics = pd.read_csv(Path(run) / "metrics.csv")
        frames.append(metrics.assign(dataset=record["dataset"], model=record["model"], seed=record["seed"],
                                     lr=record["summary"]["lr"]))
    curves = pd.concat(frames, ignore_index=True)
    picked = set(map(tuple, summary[["dataset", "model", "lr"]].dropna().to_numpy().tolist()))
    curves = curves[[(d, m, lr) in picked for d, m, lr in curves[["dataset", "model", "lr"]].itertuples(index=False)]]
    return curves.reset_index(drop=True)


def sweep_criterion(sweep: pd.DataFrame, keep: float | None = None) -> pd.DataFrame:
    """Per (dataset, model): the median over seeds of the accuracy at L - 1 and L + 1 relative to the
    accuracy at L with alpha_ffn = 1, at alpha_ffn = 1 and at every swept alpha below ``1 / (1 + s)``;
    ``held``: both ratios at least ``keep`` (default ``DEPTH_KEEP``) at every such alpha."""
    from .thresholds import DEPTH_KEEP

    keep = DEPTH_KEEP if keep is None else keep
    rows = []
    for (dataset, model), group in sweep.groupby(["dataset", "model"], sort=True):
        base = group[(group["alpha_ffn"] == 1.0) & (group["offset"] == 0)].set_index("seed")["test_accuracy"]

        def ratio(alpha: float, offset: int, group: pd.DataFrame = group, base: pd.Series = base) -> float:
            at = group[(group["alpha_ffn"] == alpha) & (group["offset"] == offset)].set_index("seed")["test_accuracy"]
            return float((at / base).median())

        threshold = 1.0 / (1.0 + float(group["spectral_bound"].iloc[0]))
        small = sorted(a for a in group["alpha_ffn"].unique() if a < threshold)
        row = {"dataset": dataset, "model": model, "seeds": int(base.size), "threshold": threshold,
               "accuracy_at_L": float(base.median()),
               "keep_minus_1_at_1": ratio(1.0, -1), "keep_plus_1_at_1": ratio(1.0, 1),
               "keep_minus_2_at_1": ratio(1.0, -2), "keep_plus_2_at_1": ratio(1.0, 2)}
        worst = [min(ratio(a, -1), ratio(a, 1)) for a in small]
        row["alphas_below_threshold"] = "/".join(f"{a:g}" for a in small)
        row["worst_keep_below_threshold"] = min(worst) if worst else math.nan
        row["held"] = bool(worst) and min(worst) >= keep
        rows.append(row)
    return pd.DataFrame(rows)


def trained_energy_table(energies: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (dataset, model, energy) of :func:`unfolded.sweeps.trained_energies`: the non-increasing share of
    steps (mean over seeds and its minimum), the strict share and the active share. With the study's ``runs``,
    the runs that did not train (:func:`did_not_train`) are left out, as every verdict leaves them out, and
    column ``did_not_train`` counts them."""
    energies = energies.assign(did_not_train=False)
    if runs is not None:  # the archived checkpoints are the picked runs': only those are matched
        flags = did_not_train(runs)
        flagged = runs[flags & runs["selected"].astype(bool)] if "selected" in runs else runs[flags]
        apart = set(zip(flagged["dataset"], flagged["model"], flagged["seed"].astype(int), strict=True))
        energies["did_not_train"] = [(d, m, int(k)) in apart for d, m, k in
                                     zip(energies["dataset"], energies["model"], energies["seed"], strict=True)]
    kept = energies[~energies["did_not_train"]]
    grouped = kept.groupby(["dataset", "model", "energy"], sort=False)
    table = grouped.agg(guarantee=("guarantee", "first"), seeds=("seed", "nunique"),
                        non_increasing=("monotone_fraction", "mean"), non_increasing_min=("monotone_fraction", "min"),
                        strict=("strict_fraction", "mean"), active=("active_fraction", "mean"),
                        samples=("samples", "first")).reset_index()
    apart = energies[energies["did_not_train"]].groupby(["dataset", "model", "energy"])["seed"].nunique()
    table["did_not_train"] = [int(apart.get((d, m, e), 0)) for d, m, e in
                              zip(table["dataset"], table["model"], table["energy"], strict=True)]
    return table


#: Figure 6's recipe rule, fixed before any model trained (``energy_curves.recipe_search``).
RECIPE_RULE = (
    "Every recipe of the grid (optimizer and learning rate; batch size, epoch budget and early-stopping patience "
    "shared; the epoch with the best validation accuracy is kept) trains every (dataset, variant) on the selection "
    "seeds. A (dataset, variant) learns under a recipe when its median validation accuracy over those seeds is at "
    "least the validation majority class + LEARNED_MARGIN (unfolded.thresholds). The pick is one recipe for every "
    "model: the one under which the most (dataset, variant) pairs learn, then the most correct validation answers "
    "summed over all of them; ties go to the smaller learning rate, then to SGD (the authors' optimizer). The pick "
    "is written to energy_curves.learned_recipe by hand, and the models Figure 6 draws are trained at it on fresh "
    "seeds (learned_recipe.seeds)."
)


def select_recipe(table: pd.DataFrame) -> dict:
    """:data:`RECIPE_RULE` on the rows of :func:`unfolded.recipes.recipe_search` (every dataset together):
    the pick, how many (dataset, variant) pairs learn under it, and per recipe the counts it was chosen on."""
    per_model = table.groupby(["optimizer", "lr", "dataset", "variant"]).agg(
        median=("val_correct", lambda s: float(s.median())), count=("val_count", "first"),
        majority=("val_majority", "first"), correct=("val_correct", "sum")).reset_index()
    from .counts import accuracy_share, at_least, share
    from .thresholds import LEARNED_MARGIN

    # in exact counts: a median of 141 correct of 200 against a majority of 101 of 200 + 1/5 learns
    per_model["learns"] = [at_least(share(row.median, int(row.count)), accuracy_share(row.majority, row.count),
                                    LEARNED_MARGIN) for row in per_model.itertuples()]
    scores = per_model.groupby(["optimizer", "lr"]).agg(learned=("learns", "sum"), pairs=("learns", "size"),
                                                      correct=("correct", "sum")).reset_index()
    scores["sgd_last"] = scores["optimizer"] != "sgd"
    scores = scores.sort_values(["learned", "correct", "lr", "sgd_last"], ascending=[False, False, True, True])
    best = scores.iloc[0]
    learned = per_model[(per_model["optimizer"] == best["optimizer"]) & (per_model["lr"] == best["lr"])]
    return {"optimizer": str(best["optimizer"]), "lr": float(best["lr"]), "learned": int(best["learned"]),
            "pairs": int(best["pairs"]),
            "learning": sorted(f"{row.dataset}/{row.variant}" for row in learned.itertuples() if row.learns),
            "scores": scores.drop(columns="sgd_last").reset_index(drop=True)}


#: The recall check's rule for the anchor weight (Figure 6 setting), fixed before the search.
RECALL_RULE = (
    "exact_recall trains at the searched recipe with every anchor weight of energy_curves.recall_grid on every "
    "dataset and selection seed. The pick is the weight under which the most datasets learn (median validation "
    "accuracy at least the validation majority class + LEARNED_MARGIN, exact counts), then the most correct "
    "validation answers summed over datasets and seeds; ties go to the smaller weight."
)


def select_recall(table: pd.DataFrame) -> dict:
    """:data:`RECALL_RULE` on the rows of :func:`unfolded.recipes.recall_search` (every dataset together): the pick,
    how many datasets learn under it, and per weight the counts it was chosen on."""
    from .counts import accuracy_share, at_least, share
    from .thresholds import LEARNED_MARGIN

    per_dataset = table.groupby(["recall", "dataset"]).agg(
        median=("val_correct", lambda s: float(s.median())), count=("val_count", "first"),
        majority=("val_majority", "first"), correct=("val_correct", "sum")).reset_index()
    per_dataset["learns"] = [at_least(share(row.median, int(row.count)), accuracy_share(row.majority, row.count),
                                      LEARNED_MARGIN) for row in per_dataset.itertuples()]
    scores = per_dataset.groupby("recall").agg(learned=("learns", "sum"), datasets=("learns", "size"),
                                               correct=("correct", "sum")).reset_index()
    scores = scores.sort_values(["learned", "correct", "recall"], ascending=[False, False, True], ignore_index=True)
    best = scores.iloc[0]
    return {"recall": float(best["recall"]), "learned": int(best["learned"]), "datasets": int(best["datasets"]),
            "scores": scores}


def recall_depth_criterion(profile: pd.DataFrame, keep: float | None = None) -> pd.DataFrame:
    """The recall check's depth criterion (fixed before it ran) on a :func:`unfolded.sweeps.depth_profile`: per
    (source, dataset, model), each seed's correct answers at depth d over those at its trained depth L, as exact
    fractions; their median over seeds at L-2, L-1, L+1, L+2, 2L and 4L, and the smallest median over every depth
    from L to 4L. ``held``: that smallest median is at least ``keep`` (default ``DEPTH_KEEP``, 9/10)."""
    from fractions import Fraction

    from .counts import margin, median
    from .thresholds import DEPTH_KEEP

    keep = margin(DEPTH_KEEP if keep is None else keep)
    keys = [key for key in ("source", "dataset", "model") if key in profile]
    rows = []
    for key, group in profile.groupby(keys, sort=True):
        trained = int(group["trained_depth"].iloc[0])
        deepest = int(group["depth"].max())
        at = group.pivot_table(index="seed", columns="depth", values="test_correct", aggfunc="first")

        def ratio(depth: int, at: pd.DataFrame = at, trained: int = trained) -> Fraction:
            # a seed with no correct answer at L keeps everything it had (ratio 1 when it still has none)
            return median(Fraction(int(c), int(b)) if int(b) else Fraction(1 if int(c) == 0 else int(c))
                          for c, b in zip(at[depth], at[trained], strict=True))

        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row.update({"seeds": int(len(at)), "trained_depth": trained, "max_depth": deepest,
                    "accuracy_at_L": float(group[group["depth"] == trained]["test_accuracy"].median())})
        for name, depth in (("L-2", trained - 2), ("L-1", trained - 1), ("L+1", trained + 1), ("L+2", trained + 2),
                            ("2L", 2 * trained), ("4L", 4 * trained)):
            row[f"keep_{name}"] = float(ratio(depth)) if 1 <= depth <= deepest else math.nan
        worst = min(ratio(depth) for depth in range(trained, min(deepest, 4 * trained) + 1))
        row["worst_keep_L_to_max"] = float(worst)
        row["held"] = bool(worst >= keep)
        rows.append(row)
    return pd.DataFrame(rows)


def median_seed(group: pd.DataFrame) -> int:
    """The seed of the median test accuracy (the lower middle one for an even count; ties: smaller seed)."""
    ordered = group.sort_values(["test_accuracy", "seed"], ignore_index=True)
    return int(ordered.loc[(len(ordered) - 1) // 2, "seed"])
