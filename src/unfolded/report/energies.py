"""The plug-in energies in tables (docs/energies.md's generated block): every claim of every plug-in, and
their untrained curves on the default datasets."""

from __future__ import annotations

import pandas as pd

from ..diagnostics import COLLAPSE_THRESHOLD
from .format import compact_table, pct, range_text

__all__ = ["energies_block", "energies_headline"]


def _claims_table(claims: pd.DataFrame, names: list[str]) -> str:
    def owner(claim: str) -> str | None:
        """The longest registered name the claim id starts with (energy_transformer_code before energy_transformer)."""
        matches = [name for name in names if claim.startswith(f"{name}_")]
        return max(matches, key=len) if matches else None

    owners = claims["claim"].map(owner)
    rows = []
    for name in names:
        for row in claims[owners == name].itertuples():
            rows.append({"energy": name, "claim": row.claim.removeprefix(f"{name}_"), "kind": row.kind,
                         "source": row.source, "conditions": row.conditions, "trials": int(row.trials),
                         "wrong-way steps": int(row.violations), "verdict": row.verdict})
    return compact_table(pd.DataFrame(rows))


def _curves_table(summary: pd.DataFrame, layers: pd.DataFrame, names: list[str]) -> str:
    curves = summary[summary["variant"].isin(names) & (summary["state"] == "untrained")].copy()
    curves["order"] = curves["variant"].map({name: index for index, name in enumerate(names)})
    last = layers.sort_values("layer").groupby(["dataset", "variant"]).tail(1).set_index(["dataset", "variant"])
    rows = []
    for row in curves.sort_values(["dataset", "order"]).itertuples():
        final = last.loc[(row.dataset, row.variant)]
        rows.append({"dataset": row.dataset, "energy": row.variant, "steps": int(row.steps),
                     "not the wrong way": pct(row.monotone_fraction), "active": pct(row.active_fraction),
                     "not the wrong way (active)": pct(row.monotone_fraction_active),
                     "collapse layer": "never" if pd.isna(row.collapse_layer) else str(int(row.collapse_layer)),
                     "spread at the end": f"{final['relative_spread']:.2g}",
                     "effective rank (start → end)": f"{final['rank_start']:.1f} → "
                     + ("collapsed" if final["relative_spread"] < COLLAPSE_THRESHOLD else f"{final['effective_rank']:.1f}")})
    return compact_table(pd.DataFrame(rows))


def energies_block(claims: pd.DataFrame, summary: pd.DataFrame, curves: pd.DataFrame, names: list[str]) -> str:
    """The claims of each plug-in and its untrained curves (``curves``: the plug-in curve tables; ``summary``:
    energy_summary.csv), with the settings of the curves."""
    medians = (curves.groupby(["dataset", "variant", "layer"])[["relative_spread", "effective_rank"]].median()
               .reset_index())
    start = medians[medians["layer"] == 0].set_index(["dataset", "variant"])["effective_rank"]
    medians["rank_start"] = [start[(d, v)] for d, v in zip(medians["dataset"], medians["variant"], strict=True)]
    samples = int(curves.groupby("dataset")["sample"].nunique().max())
    depth = int(curves["layer"].max())
    return ("Every claim of every plug-in (`results/tables/claims.csv`; a wrong-way step raises an energy the "
            "dynamics descend, or lowers one they ascend):\n\n" + _claims_table(claims, names)
            + f"\n\nUntrained curves, one random instance per energy, {depth} tied layers on {samples} test sequences "
            f"per dataset (`results/tables/energy_summary.csv`; active: the step starts from a state whose relative "
            f"token spread is at least {COLLAPSE_THRESHOLD:g}; spread and effective rank: medians over the sequences at "
            "the last layer, collapsed below that spread):\n\n" + _curves_table(summary, medians, names))


def energies_headline(claims: pd.DataFrame, summary: pd.DataFrame, names: list[str]) -> str:
    """One paragraph for the README: how many plug-in energies, what their claims found, and which of their
    untrained curves move the energy the wrong way."""
    own = claims[claims["section"].astype(str).isin([f"docs/energies.md ({name})" for name in names])]
    theorems = own[own["kind"].isin(["theorem", "identity"])]
    counter = own[own["kind"] == "counterexample"]
    shown = int(((counter["explicit_violations"] == counter["explicit_trials"]) & (counter["explicit_trials"] > 0)).sum())
    curves = summary[summary["variant"].isin(names) & (summary["state"] == "untrained")]
    wrong = curves[curves["monotone_fraction"] < 1].assign(share=lambda f: 1 - f["monotone_fraction"])
    listed = ", ".join(f"{name} ({range_text(group['share'])} of steps)"
                       for name, group in wrong.groupby("variant", sort=False))
    return (f"{len(names)} energies behind one interface: {len(theorems) - int((theorems['violations'] > 0).sum())} of "
            f"{len(theorems)} theorem and identity rows hold, {shown} of {len(counter)} counter-examples show their "
            f"wrong-way step. Untrained curves on {curves['dataset'].nunique()} datasets: "
            + (f"the energy moves the wrong way for {listed}." if listed else "no curve moves its energy the wrong way."))
