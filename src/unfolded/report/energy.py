"""The energy curves and the regime search in prose and tables: the stages' Markdown, the docs'
full tables and sentences, the README's headline."""

from __future__ import annotations

import pandas as pd

from ..counts import accuracy_share, margin
from ..registry import CURVE_MODELS
from ..thresholds import NEAR_CHANCE_MARGIN, WEIGHTS_MOVED
from .format import pct

__all__ = ["energy_block", "energy_summary_markdown", "regime_block", "regime_page"]

#: The energy-curve models in the order the tables list them, and their names in prose.
SUMMARY_ORDER = {name: index for index, name in enumerate(CURVE_MODELS)}
NAMES = {"authors": "authors'", "exact": "exact", "exact_active": "exact, active regime",
         "exact_recall": "exact with recall (energy E_X)"}


def energy_summary_markdown(summary) -> str:
    """The energy summary as a Markdown table with readable shares."""
    table = summary.copy()
    percent = ["monotone_fraction", "strict_fraction", "active_fraction", "monotone_fraction_active",
               "strict_fraction_active", "attention_share", "attention_share_active"]
    for column in percent:
        table[column] = table[column].map(lambda v: "" if v != v else f"{100 * v:.1f}%")
    for column in ("test_accuracy", "chance_accuracy", "change_W", "change_Wf", "change_B"):
        table[column] = table[column].map(lambda v: "" if v != v else f"{v:.3g}")
    table["collapse_layer"] = table["collapse_layer"].map(lambda v: "never" if v != v or v is None else str(int(v)))
    if "energy" not in table:
        table["energy"] = "plotted"
    columns = ["dataset", "variant", "relu", "state", "seed", "lr", "energy", "steps", *percent[:5], "collapse_layer",
               "attention_share_active", "test_accuracy", "chance_accuracy", "change_W", "change_Wf", "change_B",
               *(["predicted_classes"] if "predicted_classes" in table else [])]
    note = ("\n\nShares count (sample, layer) steps. The plotted energy judges each step on the total energy of the "
            "layer that takes it; each other energy is judged around the step it names (the three sub-step energies "
            "are the ones the theorems are about). Tolerance: unfolded.diagnostics.DESCENT_TOLERANCE. "
            "Active: the step starts from a state whose "
            "relative token spread is at least unfolded.diagnostics.COLLAPSE_THRESHOLD. For standard models the "
            "energy is a fixed probe, not an energy they descend.\n")
    return table[columns].to_markdown(index=False) + note


def _regime_rule(search: dict) -> str:
    return (f"Rule (fixed before the search): a setting passes when every untrained curve (each dataset, seed, with "
            f"and without ReLU) has active_fraction >= {search['min_active']} and strict_fraction_active >= "
            f"{search['min_strict']}; among passing settings the largest alpha_attention, then the smallest w_scale, "
            f"wins. Selection seeds {search['selection_seeds']}, confirmation seeds {search['confirmation_seeds']}, "
            f"{search['samples']} test sequences per curve.")


def _regime_verdict(pick: dict, configured: dict) -> str:
    if pick["alpha_attention"] is None:
        return "No setting of the grid passes on every selection seed."
    return (f"Pick: alpha_attention = {pick['alpha_attention']:g}, w_scale = {pick['w_scale']:g} "
            f"({pick['candidates']} of the grid's settings pass on the selection seeds); on the fresh "
            f"confirmation seeds it {'passes' if pick['confirmed'] else 'FAILS'}. The configured "
            f"active_regime ({configured['alpha_attention']:g}, {configured['w_scale']:g}) "
            f"{'matches' if pick['matches_config'] else 'does NOT match'} the pick.")


def regime_page(table: pd.DataFrame, meta: dict) -> str:
    """The regime search's page: the rule, the pick and the min and max of each share over seeds
    (``meta``: the table's provenance, with the settings and the pick)."""
    search = meta["config"]["energy_curves"]["regime_search"]
    configured = meta["config"]["energy_curves"]["active_regime"]
    pick = meta["pick"]
    columns = ["active_fraction", "strict_fraction_active", "monotone_fraction_active", "attention_share_active"]
    summary = (table.groupby(["phase", "dataset", "alpha_attention", "w_scale", "relu"])[columns]
               .agg(["min", "max"]).round(3))
    summary.columns = [f"{a} {b}" for a, b in summary.columns]
    return (f"# Regime search\n\n{_regime_rule(search)}\n\n{_regime_verdict(pick, configured)}\n\n"
            f"Min and max over seeds:\n\n{summary.to_markdown()}\n")


def regime_block(frame: pd.DataFrame, meta: dict) -> str:
    """The rule, the pick and, for the picked setting, the smallest shares over seeds per phase, dataset
    and ReLU choice (``frame``: regime_search.csv; ``meta``: its provenance)."""
    search = meta["config"]["energy_curves"]["regime_search"]
    configured = meta["config"]["energy_curves"]["active_regime"]
    pick = meta["pick"]
    rule, verdict = _regime_rule(search), _regime_verdict(pick, configured)
    if pick["alpha_attention"] is None:
        return f"{rule}\n\n{verdict}"
    chosen = frame[(frame["alpha_attention"] == pick["alpha_attention"]) & (frame["w_scale"] == pick["w_scale"])]
    table = (chosen.groupby(["phase", "dataset", "relu"], sort=False)
             .agg(seeds=("seed", "nunique"), active_min=("active_fraction", "min"),
                  falling_active_min=("strict_fraction_active", "min"),
                  non_increasing_active_min=("monotone_fraction_active", "min"))
             .reset_index())
    for column in ("active_min", "falling_active_min", "non_increasing_active_min"):
        table[column] = table[column].map(pct)
    return f"{rule}\n\n{verdict}\n\n{table.to_markdown(index=False)}"


def energy_block(s: pd.DataFrame) -> str:
    """The energy summary ``s`` as the docs' table of the energy-curve models, plus generated sentences on
    collapse and training."""
    curves = s[s["variant"].isin(SUMMARY_ORDER)].copy()
    curves["order"] = curves["variant"].map(SUMMARY_ORDER)
    curves = curves.sort_values(["dataset", "order", "state", "relu"], ascending=[True, True, False, True])
    table = pd.DataFrame({
        "dataset": curves["dataset"],
        "model": curves["variant"].map(NAMES),
        "curve": curves["state"] + curves["relu"].map({True: ", ReLU", False: ", no ReLU"}),
        "non-increasing": curves["monotone_fraction"].map(pct),
        "active steps": curves["active_fraction"].map(pct),
        "non-incr. (active)": curves["monotone_fraction_active"].map(pct),
        "falling (active)": curves["strict_fraction_active"].map(pct),
        "collapse layer": curves["collapse_layer"].map(lambda v: "never" if pd.isna(v) else str(int(v))),
        "attention share (active)": curves["attention_share_active"].map(pct),
        "test acc. (majority)": [
            "" if pd.isna(a) else f"{a:.3f} ({m:.3f})" for a, m in zip(curves["test_accuracy"], curves["chance_accuracy"],
                                                                       strict=True)],
        "rel. change W / Wf / B": [
            "" if pd.isna(w) else f"{w:.2g} / {f:.2g} / {b:.2g}"
            for w, f, b in zip(curves["change_W"], curves["change_Wf"], curves["change_B"], strict=True)],
    })
    sentences = []
    for dataset, group in curves.groupby("dataset", sort=True):
        exact = group[(group["variant"] == "exact") & (group["state"] == "untrained") & group["relu"]]
        active = group[(group["variant"] == "exact_active") & (group["state"] == "untrained") & group["relu"]]
        if not exact.empty:
            e = exact.iloc[0]
            collapse = "never" if pd.isna(e["collapse_layer"]) else f"at layer {int(e['collapse_layer'])}"
            sentences.append(
                f"- `derived` {dataset}: in the paper's setting (alpha = 1) the untrained exact model with ReLU collapses "
                f"{collapse} (median relative token spread below 1e-3); only {pct(e['active_fraction'])} of its steps start "
                f"from a non-collapsed state, so its {pct(e['monotone_fraction'])} non-increasing steps are mostly "
                f"feed-forward steps on one point.")
        authors = group[(group["variant"] == "authors") & (group["state"] == "untrained") & group["relu"]]
        if not authors.empty:
            p = authors.iloc[0]
            where = ("so its rises come in collapsed states" if p["monotone_fraction_active"] == 1.0
                     else "so some rises come from non-collapsed states")
            sentences.append(
                f"- `code` {dataset}: the authors' model (untrained, ReLU) keeps {pct(p['monotone_fraction'])} of its steps "
                f"non-increasing, but {pct(p['monotone_fraction_active'])} of its active steps, {where}.")
        if not active.empty:
            a = active.iloc[0]
            sentences.append(
                f"- `derived` {dataset}, active regime (alpha_attention = {a['alpha_attention']:g}, W scale "
                f"{a['w_scale']:g}): {pct(a['active_fraction'])} of steps active, of which "
                f"{pct(a['monotone_fraction_active'])} non-increasing and {pct(a['strict_fraction_active'])} "
                f"strictly falling; the attention sub-step gives {pct(a['attention_share_active'])} of the decrease "
                f"over active steps.")
        for _, t in group[group["state"] == "trained"].iterrows():
            count = t["test_count"] if "test_count" in t else None
            near_chance = accuracy_share(t["test_accuracy"], count) <= accuracy_share(t["chance_accuracy"], count) \
                + margin(NEAR_CHANCE_MARGIN)
            verdict = []
            if near_chance:
                verdict.append("no better than the majority class")
            if max(t["change_W"], t["change_Wf"], t["change_B"]) < WEIGHTS_MOVED:
                verdict.append(f"its weights barely moved (every relative change below {WEIGHTS_MOVED:.0%})")
            elif t["change_W"] < WEIGHTS_MOVED:
                verdict.append(f"the attention weight W barely moved (below {WEIGHTS_MOVED:.0%})")
            sentences.append(
                f"- `derived` {dataset}, {NAMES[t['variant']]} model after the authors' recipe: test accuracy "
                f"{t['test_accuracy']:.3f} against {t['chance_accuracy']:.3f} for the majority class; relative weight change "
                f"W {t['change_W']:.2g}, Wf {t['change_Wf']:.2g}, B {t['change_B']:.2g}"
                + (f" ({'; '.join(verdict)})." if verdict else "."))
    return table.to_markdown(index=False) + "\n\n" + "\n".join(sentences)
