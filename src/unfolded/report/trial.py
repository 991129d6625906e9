"""Attention on trial in prose and tables (docs/results.md's study section, the README's study headline),
from an archived study alone: the verdicts under the rule of :mod:`unfolded.verdicts`, the controls
against their ceilings, and the token spread of the trained models (the collapse hypothesis)."""

from __future__ import annotations

import math

import pandas as pd

from ..diagnostics import COLLAPSE_THRESHOLD
from ..thresholds import ATTENTION_HELPS_MARGIN, SIGNIFICANCE_LEVEL
from ..verdicts import DEPENDS
from .format import compact_table, fmt

__all__ = ["SPREAD_MODELS", "controls_sentence", "depth_check_lines", "depth_sweep_sentence", "rule_text", "selection_sentence",
           "sensitivity_sentence", "spread_sentence", "spread_table", "trained_energy_sentence", "verdict_table"]

#: The trained models whose token spread tests the collapse hypothesis (docs/results.md).
SPREAD_MODELS = ("unfolded_tied", "unfolded_tied-residual", "standard_tied")


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def rule_text() -> str:
    """The verdict rule as the documents state it (its thresholds from :mod:`unfolded.thresholds`)."""
    return (f"The rule, fixed before training (`config/study.yaml`): attention **helps** on a task when the model's "
            f"median test accuracy is at least the task's no-interaction ceiling + {ATTENTION_HELPS_MARGIN:.2f} and its "
            f"paired gain over the same model without attention is significant (Holm-adjusted p < "
            f"{SIGNIFICANCE_LEVEL:g}); it **hurts** on a significant paired loss; where the ceiling + "
            f"{ATTENTION_HELPS_MARGIN:.2f} exceeds 1 a gain cannot show it: **not testable here**. Polarity has no known "
            f"interaction-free ceiling: its Bayes bag-of-words accuracy is the reference, so a gain there is evidence, "
            f"not proof.")


def verdict_table(verdicts: pd.DataFrame, compact: bool = False) -> str:
    """One row per (task, model on trial): the reference ceiling, the medians with and without attention,
    runs that did not train, the paired gain over seeds and the seed test's Holm-adjusted p (and, in full,
    its raw p, the item-level test's Holm p, Welch's p and the seeds at the epoch cap); a verdict whose
    model or control ran to the epoch cap on at least half its seeds is marked ``(cap)``."""
    rows = []
    for r in verdicts.itertuples():
        star = "" if r.reference_kind.startswith("no-interaction") else "*"
        reference = "no reference known" if pd.isna(r.reference) else f"{fmt(r.reference)}{star}"
        untrained = f" ({int(r.did_not_train)} n.t.)" if r.did_not_train else ""
        control_untrained = f" ({int(r.control_did_not_train)} n.t.)" if r.control_did_not_train else ""
        row = {"task (ceiling)": f"{r.dataset} ({reference})", "model": r.model,
               "median": f"{fmt(r.median)}{untrained}", "without attention": f"{fmt(r.control_median)}{control_untrained}",
               "paired gain": "n/a" if math.isnan(r.paired_gain) else f"{r.paired_gain:+.3f}",
               "p (seeds, Holm)": _p(r.holm_p)}
        if not compact:
            row.update({"seed pairs": f"{int(r.pairs)}", "p (seeds, raw)": _p(r.seed_p),
                        "p (items, Holm)": _p(r.item_holm_p), "Welch p": _p(r.welch_p),
                        "at epoch cap": f"{int(r.at_cap)}/{int(r.control_at_cap)}"})
        row["verdict"] = r.verdict + (" (cap)" if r.capped else "")
        rows.append(row)
    return compact_table(pd.DataFrame(rows)) if compact else pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def sensitivity_sentence(verdicts: pd.DataFrame, short: bool = False) -> str:
    """The verdicts with the runs that did not train kept in (the same rule and correction): which differ,
    so that the stated verdict reads "depends on runs that did not train"; and which verdicts may reflect
    under-training (at least half the seeds of the model or its control at the epoch cap); ``short``: the README's
    wording."""
    count = int((verdicts["did_not_train"] + verdicts["control_did_not_train"]).sum())
    if count == 0:
        text = "Every picked run trained."
    else:
        changed = verdicts[verdicts["verdict_set_aside"] != verdicts["verdict_kept"]]
        if changed.empty:
            text = f"With the {count} run(s) that did not train (n.t.) kept in, every verdict stays the same."
        else:
            cells = ", ".join(f"{r.dataset} {r.model} ({r.verdict_set_aside} set aside, {r.verdict_kept} kept)"
                              for r in changed.itertuples())
            text = (f"{count} run(s) did not train (n.t.); these verdicts differ with them set aside and kept, so they "
                    f"read \"{DEPENDS}\": {cells}.")
    capped = verdicts[verdicts["capped"].astype(bool)]
    if not capped.empty:
        cells = ", ".join(f"{r.dataset} {r.model} ({int(r.at_cap)}/{int(r.seeds)} and {int(r.control_at_cap)}/"
                          f"{int(r.control_seeds)} seeds)" for r in capped.itertuples())
        text += (f" (cap): half the seeds or more at the epoch cap: {cells}." if short else
                 f" (cap): at least half the seeds of the model or its control ran to the epoch cap, so the verdict "
                 f"may reflect under-training: {cells}.")
    return text


def selection_sentence(selection: pd.DataFrame, detail: bool = True) -> str:
    """The learning-rate selection (its own seeds): how many picks sit at an end of their grid, flagged
    (the best rate may lie outside the grid)."""
    trained = selection[selection["lr"].notna()]
    seeds = int(trained["seeds"].max())
    edges = trained[trained["pick_at_edge"].astype(bool)]
    listed = f" ({', '.join(f'{r.dataset} {r.model} {r.lr:g}' for r in edges.itertuples())})" if detail and len(edges) else ""
    return (f"Learning-rate selection ({seeds} seeds per model, not reported): {len(edges)} of {len(trained)} picks "
            f"sit at an end of their grid{listed}; flagged, not widened: the best rate may lie outside the grid.")


def depth_sweep_sentence(criterion: pd.DataFrame) -> str:
    """The depth mechanism against its prespecified criterion (:func:`unfolded.summaries.sweep_criterion`),
    with the drops at L - 1 and L + 1 at the trained step size."""
    from ..thresholds import DEPTH_KEEP

    if criterion.empty:
        return ""
    threshold = float(criterion["threshold"].iloc[0])
    held = criterion[criterion["held"].astype(bool)]
    models = ", ".join(sorted(criterion["model"].unique()))

    def span(column: str) -> str:
        low, high = 100 * criterion[column].min(), 100 * criterion[column].max()
        return f"{low:.0f}%" if round(low) == round(high) else f"{low:.0f}-{high:.0f}%"

    listed = "; ".join(f"{r.dataset} {100 * r.worst_keep_below_threshold:.0f}%" for r in criterion.itertuples())
    return (f"Depth, tested at inference on the archived {models} checkpoints (criterion fixed beforehand: once "
            f"alpha_ffn < 1/(1+s) = {threshold:.3f}, L-1 and L+1 keep at least {100 * DEPTH_KEEP:.0f}% of the accuracy at "
            f"L with alpha_ffn = 1, median over seeds): it held on {len(held)} of {len(criterion)} tasks (worst share "
            f"kept: {listed}). At the trained alpha_ffn = 1, L-1 keeps {span('keep_minus_1_at_1')} and L+1 "
            f"{span('keep_plus_1_at_1')}.")


def _left_out(table: pd.DataFrame) -> str:
    """Which runs the trained-energy counts leave out (those that did not train), and how many sequences."""
    cells = table.drop_duplicates(["dataset", "model"])
    cells = cells[cells["did_not_train"] > 0] if "did_not_train" in cells else cells.iloc[0:0]
    sequences = f"{int(table['samples'].max())} test sequences per run" if "samples" in table else "test sequences"
    if cells.empty:
        return sequences
    return sequences + "; left out as runs that did not train: " + ", ".join(
        f"{r.dataset} {r.model} {int(r.did_not_train)}" for r in cells.itertuples())


def trained_energy_sentence(table: pd.DataFrame) -> str:
    """Which energy the trained layers descend: each theorem's energy on its sub-step, and the two totals."""
    theorems = table[table["guarantee"].str.startswith("theorem")]
    held = int((theorems["non_increasing_min"] >= 1.0).sum())
    models = ", ".join(sorted(table["model"].unique()))
    parts = [f"on the energy its theorem names, {held} of {len(theorems)} (task, model, sub-step) cells never rise "
             f"on any seed"]
    for name, label in (("total without the regulariser, layer", "the total without the regulariser"),
                        ("total with the regulariser, layer", "the total with the authors' regulariser (what the runs "
                                                                "record)")):
        rows = table[table["energy"] == name]
        if rows.empty:
            continue
        never = int((rows["non_increasing_min"] >= 1.0).sum())
        worst = rows.loc[rows["non_increasing_min"].idxmin()]
        low = f"; lowest non-rising share {worst['non_increasing_min']:.2f}, {worst['dataset']} {worst['model']}"
        parts.append(f"on {label}, {never} of {len(rows)} (task, model) pairs never rise"
                     + (low if never < len(rows) else ""))
    return (f"Trained energies ({models} checkpoints that trained, {_left_out(table)}, float64), per step: "
            + "; ".join(parts) + ".")


def controls_sentence(controls: pd.DataFrame, short: bool = False) -> str:
    """How far the interaction-free controls stay from their ceilings (a control > 3 SE above is a bug); ``short``:
    the count and the control closest to its ceiling only."""
    if controls.empty:
        return ""
    if short:
        top = controls.loc[controls["excess_in_se"].idxmax()]
        above = int((controls["excess_in_se"] > 3).sum())
        return (f"Controls: {above} of {len(controls)} more than 3 standard errors above the no-interaction ceiling "
                f"(highest: {top['dataset']} {top['control']}, best seed {fmt(top['best_seed'])}, "
                f"{top['excess_in_se']:+.1f} SE).")
    cells = ", ".join(f"{r.dataset} {r.control} best seed {fmt(r.best_seed)} ({r.excess_in_se:+.1f} SE)"
                      for r in controls.itertuples())
    above = int((controls["excess_in_se"] > 3).sum())
    verdict = ("none is more than 3 standard errors above its ceiling" if above == 0
               else f"{above} {'is' if above == 1 else 'are'} more than 3 standard errors above it: a bug to find")
    return f"Controls against the no-interaction ceiling: {cells}; {verdict}."


def spread_table(spread: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): the median over the picked runs of each run's median relative token spread
    after the last layer, its range over runs, and how many runs end collapsed (below
    ``COLLAPSE_THRESHOLD``)."""
    picked = runs[runs["selected"] & runs["lr"].notna()][["dataset", "model", "lr", "seed"]]
    spread = spread.merge(picked, on=["dataset", "model", "lr", "seed"], how="inner")
    last = spread[spread["layer"] == spread.groupby(["dataset", "model", "lr", "seed"])["layer"].transform("max")]
    rows = []
    for (dataset, model), group in last.groupby(["dataset", "model"], sort=True):
        values = group["relative_spread"]
        rows.append({"dataset": dataset, "model": model, "runs": len(group), "median": float(values.median()),
                     "min": float(values.min()), "max": float(values.max()),
                     "collapsed": int((values < COLLAPSE_THRESHOLD).sum())})
    return pd.DataFrame(rows)


def spread_sentence(table: pd.DataFrame, short: bool = False) -> str:
    """The collapse hypothesis against the trained models: which (dataset, model) end collapsed; ``short``:
    each model's range over the tasks (the README)."""
    shown = table[table["model"].isin(SPREAD_MODELS)]
    if shown.empty:
        return ""
    collapsed = shown[2 * shown["collapsed"] > shown["runs"]]  # most runs, in integers
    which = ", ".join(f"{r.dataset} {r.model}" for r in collapsed.itertuples()) or "none"
    if short:
        ranges = shown.groupby("model")["median"].agg(["min", "max"])
        cells = ", ".join(f"{model} {ranges.loc[model, 'min']:.3g}-{ranges.loc[model, 'max']:.3g}"
                          for model in SPREAD_MODELS if model in ranges.index)
        return (f"Last-layer token spread / the input's (median over runs, range over tasks): {cells}; "
                f"collapsed (below {COLLAPSE_THRESHOLD:g} in most runs): {which}.")
    cells = []
    for dataset, group in shown.groupby("dataset", sort=True):
        by = {r.model: r for r in group.itertuples()}
        cells.append(f"{dataset} " + ", ".join(f"{model} {by[model].median:.3g}" for model in SPREAD_MODELS
                                                 if model in by))
    return (f"Token spread after the last layer, relative to the input (median over runs): {'; '.join(cells)}. "
            f"Collapsed (below {COLLAPSE_THRESHOLD:g} in most runs): {which}.")


#: The depth check's variants (config/study-depth-check.yaml) and their names in the README.
DEPTH_CHECK_VARIANTS = ("ffn_step_half", "attention_step_half", "learned_steps")
DEPTH_CHECK_NAMES = {"unfolded_tied": "unfolded_tied", "unfolded_tied-ffn_step_half": "FF step 0.5",
                     "unfolded_tied-attention_step_half": "attention step 0.5",
                     "unfolded_tied-learned_steps": "learned steps"}


def _span(criterion: pd.DataFrame, column: str) -> str:
    low, high = 100 * criterion[column].min(), 100 * criterion[column].max()
    return f"{low:.0f}%" if round(low) == round(high) else f"{low:.0f}-{high:.0f}%"


def depth_check_lines(check: tuple, extras: dict, short: bool = False) -> list[str]:
    """A follow-up check on the depth mechanism (config/study-depth-check.yaml): per task the median test
    accuracy of each model (an odd depth, the two step sizes separated, learned step sizes), the depth
    criterion on its checkpoints, and the step sizes learned_steps learned; ``short``: one paragraph."""
    from ..summaries import did_not_train, sweep_criterion

    runs, summary, _, provenance = check
    train = (provenance.get("config") or {}).get("train", {})
    # trained models (a linear probe has no learning rate) at their picks; runs that did not train are set
    # apart, by the rule every other table follows, and named
    picked = runs[runs["lr"].notna() & ~did_not_train(runs)]
    if "selected" in picked:
        picked = picked[picked["selected"].astype(bool)]
    apart = runs[runs["lr"].notna() & did_not_train(runs)]
    if "selected" in apart:
        apart = apart[apart["selected"].astype(bool)]
    untrained = ""
    if len(apart):
        counts = apart.groupby(["dataset", "model"]).size()
        untrained = (" Set apart as runs that did not train: " + ", ".join(
            f"{dataset} {DEPTH_CHECK_NAMES.get(model, model)} {count}" for (dataset, model), count in counts.items())
            + ".")
    seeds = sorted(int(seed) for seed in picked["seed"].dropna().unique())
    medians = picked.groupby(["dataset", "model"])["test_accuracy"].median().unstack("model")
    order = [model for model in ("unfolded_tied", *(f"unfolded_tied-{v}" for v in DEPTH_CHECK_VARIANTS))
             if model in medians]
    medians = medians[order + [model for model in medians if model not in order]]
    head = (f"Check `{provenance.get('study_id')}` (fresh seeds {seeds[0]}-{seeds[-1]}, L = {train.get('num_layers')}, "
            "each model at the study's unfolded_tied learning rate)")
    if short:
        names = " / ".join(DEPTH_CHECK_NAMES.get(model, model) for model in medians.columns)
        cells = "; ".join(f"{dataset} " + "/".join(f"{value:.3f}" for value in row) for dataset, row in medians.iterrows())
        lines = [f"Check `{provenance.get('study_id')}` (L = {train.get('num_layers')}, fresh seeds {seeds[0]}-{seeds[-1]}), "
                 f"median accuracy of {names}: {cells}.{untrained}"]
    else:
        cells = "; ".join(f"{dataset} " + ", ".join(f"{model.removeprefix('unfolded_tied-')} {value:.3f}"
                                                  for model, value in row.dropna().items())
                          for dataset, row in medians.iterrows())
        lines = [f"{head}, median test accuracy of the runs that trained: {cells}.{untrained}"]
    if "depth_sweep" in extras:
        criterion = sweep_criterion(extras["depth_sweep"])
        if short:
            held = int(criterion["held"].astype(bool).sum())
            lines.append(f"Depth criterion held on {held} of {len(criterion)} tasks; at alpha_ffn = 1, L-1 keeps "
                         f"{_span(criterion, 'keep_minus_1_at_1')}, L+1 {_span(criterion, 'keep_plus_1_at_1')}, L-2 "
                         f"{_span(criterion, 'keep_minus_2_at_1')}, L+2 {_span(criterion, 'keep_plus_2_at_1')}.")
        else:
            lines.append("At this depth: " + depth_sweep_sentence(criterion)
                         .removeprefix("Depth, tested at inference on the archived ")
                         + f" Two layers away: L-2 keeps {_span(criterion, 'keep_minus_2_at_1')} and L+2 "
                         f"{_span(criterion, 'keep_plus_2_at_1')}.")
    if "step_sizes" in extras and short:
        steps = extras["step_sizes"]
        lines.append(f"Learned steps (medians): alpha_ffn {steps['alpha_ffn'].median():.2f}, alpha_attention "
                     f"{steps['alpha_attention'].median():.2f}; alpha_ffn < 1/(1+s) in "
                     f"{int(steps['no_oscillation'].astype(bool).sum())} of {len(steps)} (run, layer) cells.")
    elif "step_sizes" in extras:
        steps = extras["step_sizes"]
        below = int(steps["no_oscillation"].astype(bool).sum())
        per_layer = steps.groupby("layer")[["alpha_attention", "alpha_ffn"]].median()
        layers = ", ".join(f"{r.Index}: {r.alpha_attention:.2f}/{r.alpha_ffn:.2f}" for r in per_layer.itertuples())
        lines.append(
            f"learned_steps learned alpha_ffn from {steps['alpha_ffn'].min():.3f} to {steps['alpha_ffn'].max():.3f} "
            f"(below 1/(1+s) = {1 / (1 + float(steps['spectral_bound'].iloc[0])):.3f} in {below} of {len(steps)} "
            f"(run, layer) cells) and alpha_attention from {steps['alpha_attention'].min():.3f} to "
            f"{steps['alpha_attention'].max():.3f}; median attention/feed-forward step by layer: {layers}.")
    if short:
        return [" ".join(lines)]
    return lines
