"""Other energies on trial in prose and tables (docs/energies.md, "Trained"; the README's "Other energies"), from
the archived study alone (``results/archive/<study.energies_id>``): each plug-in encoder's verdict against its own
interaction-free control under the attention trial's rule (:mod:`unfolded.verdicts`), the controls against the
no-interaction ceiling, the energies of the trained models step by step, their token spread and their depth
extrapolation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..registry import ENERGY_ENCODERS
from .format import compact_table, fmt, optional_table, pct

__all__ = ["DEPTH_OFFSETS", "EnergiesTrial", "depth_table", "descent_sentence", "descent_table", "energies_trial_block",
           "energies_trial_headline", "trial_verdicts"]

#: The depths of the extrapolation, relative to the trained depth L: L-2 to L+2 and 2L (``"2L"``).
DEPTH_OFFSETS = (-2, -1, 0, 1, 2, "2L")


@dataclass
class EnergiesTrial:
    """The tables of an archived study of the plug-in encoders (missing ones are empty frames)."""

    path: Path
    provenance: dict
    runs: pd.DataFrame
    depth: pd.DataFrame
    energies: pd.DataFrame
    layers: pd.DataFrame
    extras: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> EnergiesTrial:
        from ..archive import load_archive, load_extras

        path = Path(path)
        runs, _, depth, provenance = load_archive(path)
        return cls(path, provenance, runs, depth, optional_table(path / "trained_energies.csv"),
                   optional_table(path / "trained_energy_layers.csv"), load_extras(path))

    @property
    def predictions(self) -> pd.DataFrame | None:
        return self.extras.get("predictions")


def _stem(model: str) -> str:
    return model.partition("-")[0].removesuffix("_tied")


def trial_verdicts(trial: EnergiesTrial) -> pd.DataFrame:
    """The verdict of every plug-in encoder against its control (Holm over the rows of this study)."""
    from ..verdicts import attention_verdicts

    verdicts = attention_verdicts(trial.runs, trial.predictions)
    if verdicts.empty:
        return verdicts
    return verdicts[verdicts["model"].map(_stem).isin(ENERGY_ENCODERS)].reset_index(drop=True)


def _picked(trial: EnergiesTrial) -> pd.DataFrame:
    from ..verdicts import _picked as picked

    return picked(trial.runs)


def descent_table(trial: EnergiesTrial) -> pd.DataFrame:
    """Per (model, energy), pooled over tasks and the seeds that trained: the counts of steps, non-increasing,
    strictly decreasing and active steps (integers, as measured), the share of steps whose input met the plug-in's
    conditions, and the task with the lowest non-increasing share."""
    if trial.energies.empty:
        return pd.DataFrame()
    picked = _picked(trial)[["dataset", "model", "seed", "did_not_train"]]
    table = trial.energies.merge(picked, on=["dataset", "model", "seed"], how="inner")
    table = table[~table["did_not_train"]]
    rows = []
    for (model, energy), group in table.groupby(["model", "energy"], sort=False):
        steps = group["steps"].astype(int)
        by_task = group.groupby("dataset")[["non_increasing", "steps"]].sum()
        worst = (by_task["non_increasing"] / by_task["steps"]).idxmin()
        held = group["conditions_held"]
        rows.append({"model": model, "energy": energy, "guarantee": group["guarantee"].iloc[0], "runs": len(group),
                     "steps": int(steps.sum()), "non_increasing": int(group["non_increasing"].sum()),
                     "strict": int(group["strict"].sum()), "active": int(group["active"].sum()),
                     "conditions_held": float((held * steps).sum() / steps.sum()) if held.notna().all() else math.nan,
                     "lowest_task": worst,
                     "lowest_share": float(by_task.loc[worst, "non_increasing"] / by_task.loc[worst, "steps"])})
    return pd.DataFrame(rows)


def depth_table(trial: EnergiesTrial) -> pd.DataFrame:
    """Per (dataset, model): the median over the picked seeds that trained of the test accuracy at the depths of
    :data:`DEPTH_OFFSETS`, each divided by the accuracy at the trained depth L (1.0: no loss)."""
    if trial.depth.empty:
        return pd.DataFrame()
    picked = _picked(trial)
    picked = picked[~picked["did_not_train"]][["dataset", "model", "lr", "seed"]]
    depth = trial.depth.merge(picked, on=["dataset", "model", "lr", "seed"], how="inner")
    rows = []
    for (dataset, model), group in depth.groupby(["dataset", "model"], sort=True):
        trained = int(group["trained_depth"].iloc[0])
        wanted = {offset: (2 * trained if offset == "2L" else trained + offset) for offset in DEPTH_OFFSETS}
        ratios: dict = {offset: [] for offset in DEPTH_OFFSETS}
        for _, run in group.groupby("seed"):
            at = run.set_index("depth")["test_accuracy"]
            base = float(at.get(trained, math.nan))
            for offset, depth_at in wanted.items():
                value = float(at.get(depth_at, math.nan))
                ratios[offset].append(value / base if base > 0 and not math.isnan(value) else math.nan)
        row = {"dataset": dataset, "model": model, "trained_depth": trained}
        for offset in DEPTH_OFFSETS:
            label = "2L" if offset == "2L" else ("L" if offset == 0 else f"L{offset:+d}")
            row[label] = float(pd.Series(ratios[offset]).median())
        rows.append(row)
    return pd.DataFrame(rows)


def _verdict_cell(row) -> str:
    return row.verdict + (" (cap)" if row.capped else "")


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else ("<0.001" if value < 0.001 else f"{value:.3f}")


def _free_rows(trial: EnergiesTrial) -> pd.DataFrame:
    """The interaction-free plug-in encoders (no control): median accuracy per task, the seeds that did not train."""
    picked = _picked(trial)
    free = [f"{stem}_tied" for stem, encoder in ENERGY_ENCODERS.items() if not encoder.mixes_tokens]
    rows = []
    for (dataset, model), group in picked[picked["model"].isin(free)].groupby(["dataset", "model"], sort=True):
        trained = group[~group["did_not_train"]]
        rows.append({"dataset": dataset, "model": model, "median": float(trained["test_accuracy"].median()),
                     "seeds": len(group), "did_not_train": int(group["did_not_train"].sum()),
                     "ceiling": float(group["no_interaction_ceiling"].iloc[0])})
    return pd.DataFrame(rows)


def descent_sentence(table: pd.DataFrame) -> str:
    """Which trained energies still descend: per trained model (not its control), each plug-in's energy around its
    own step, pooled over tasks and seeds, in exact counts of steps."""
    if table.empty:
        return ""
    shown = table[~table["model"].str.contains("-") & (table["energy"] != "layer")]
    every, partial = [], []
    for r in shown.itertuples():
        label = r.energy
        if r.non_increasing == r.steps:
            every.append(label)
        else:
            partial.append(f"{label} on {pct(1 - r.non_increasing / r.steps)}")
    parts = []
    if every:
        parts.append(f"{', '.join(every)} never move{'s' if len(every) == 1 else ''} the wrong way")
    if partial:
        parts.append("the wrong way: " + ", ".join(partial) + " of steps")
    steps = int(shown["steps"].max()) if not shown.empty else 0
    return (f"Trained, each plug-in's energy around its own step on test sequences ({steps:,} steps per energy): "
            + "; ".join(parts) + ".")


def energies_trial_headline(trial: EnergiesTrial) -> str:
    """The README's table (energy x task: median test accuracy, paired gain over the control, Holm p, verdict) and
    one sentence on which trained energies still descend."""
    verdicts = trial_verdicts(trial)
    free = _free_rows(trial)
    cells: dict[tuple[str, str], str] = {}
    for r in verdicts.itertuples():
        cells[(_stem(r.model), r.dataset)] = f"{fmt(r.median)} {r.paired_gain:+.3f} ({_p(r.holm_p)}) {_verdict_cell(r)}"
    for r in free.itertuples():
        cells[(_stem(r.model), r.dataset)] = f"{fmt(r.median)} no mixing"
    tasks = sorted({task for _, task in cells})
    stems = [stem for stem in ENERGY_ENCODERS if any((stem, task) in cells for task in tasks)]
    rows = [{"energy": stem, **{task: cells.get((stem, task), "") for task in tasks}} for stem in stems]
    picked = _picked(trial)
    majority = picked.groupby("dataset")["chance_accuracy"].median()
    rows.append({"energy": "majority class", **{task: fmt(float(majority.get(task, math.nan))) for task in tasks}})
    seeds = sorted(int(s) for s in picked["seed"].unique())
    return "\n".join([
        f"`derived` Study `{trial.path.name}`, seeds {seeds[0]}-{seeds[-1]}; a cell: median test accuracy, gain over "
        f"the control (Holm p), verdict (the attention trial's rule):", "", compact_table(pd.DataFrame(rows)),
        "", descent_sentence(descent_table(trial))]).strip()


def energies_trial_block(trial: EnergiesTrial) -> str:
    """docs/energies.md's "Trained" section: provenance, the verdicts in full, the controls against the ceiling,
    the interaction-free models, the energies step by step, the token spread and the depth extrapolation."""
    from ..verdicts import control_checks
    from .trial import controls_sentence, rule_text, spread_table, verdict_table

    meta = trial.provenance
    verdicts = trial_verdicts(trial)
    lines = [f"Study `{trial.path.name}` (`config/energies.yaml`), commit {meta.get('git_commit', '?')[:12]}, "
             f"git_dirty {str(meta.get('git_dirty')).lower()}, {meta.get('train_jobs', '?')} train jobs, "
             f"{meta.get('cpu_hours', math.nan):.2f} CPU-hours ({meta.get('job_hours', math.nan):.2f} job-hours).", "",
             rule_text(), "", "Verdicts, each energy against its own control (Holm over these rows):", "",
             verdict_table(verdicts) if not verdicts.empty else "(no verdicts)", ""]
    checks = control_checks(trial.runs)
    if not checks.empty:
        checks = checks[checks["control"].map(_stem).isin(ENERGY_ENCODERS)]
        lines += [controls_sentence(checks), ""]
    free = _free_rows(trial)
    if not free.empty:
        lines += ["Interaction-free by construction (no control; the no-interaction ceiling binds it): "
                  + "; ".join(f"{r.model} on {r.dataset}: median {fmt(r.median)}"
                              + (f" ({r.did_not_train} of {r.seeds} did not train)" if r.did_not_train else "")
                              for r in free.itertuples()) + ".", ""]
    descent = descent_table(trial)
    if not descent.empty:
        shown = descent.assign(**{
            "non-increasing": [f"{r.non_increasing}/{r.steps}" for r in descent.itertuples()],
            "strict": [pct(r.strict / r.steps) for r in descent.itertuples()],
            "active": [pct(r.active / r.steps) for r in descent.itertuples()],
            "conditions held": [pct(v) for v in descent["conditions_held"]],
            "lowest task": [f"{r.lowest_task} {pct(r.lowest_share)}" for r in descent.itertuples()]})
        lines += ["The energies of the trained models, on the test sequences of every checkpoint that trained (float64, "
                  "at the trained depth; `layer`: the sum of the layer's oriented plug-in energies, no guarantee; each "
                  "plug-in's energy around its own step, its target the step's input; conditions held: the share of "
                  "steps whose input meets the plug-in's stated margins):", "",
                  shown[["model", "energy", "guarantee", "runs", "non-increasing", "strict", "active", "conditions held",
                         "lowest task"]].to_markdown(index=False, disable_numparse=True), "",
                  descent_sentence(descent), ""]
    if "token_spread" in trial.extras:
        spread = spread_table(trial.extras["token_spread"], trial.runs)
        if not spread.empty:
            spread = spread.assign(**{"median relative spread": spread["median"].map(lambda v: f"{v:.3g}"),
                                      "collapsed runs": [f"{r.collapsed}/{r.runs}" for r in spread.itertuples()]})
            lines += ["Token spread after the last layer relative to the input's (median over runs):", "",
                      spread[["dataset", "model", "median relative spread", "collapsed runs"]].to_markdown(
                          index=False, disable_numparse=True), ""]
    depth = depth_table(trial)
    if not depth.empty:
        columns = [c for c in depth.columns if c not in ("dataset", "model", "trained_depth")]
        shown = depth.assign(**{c: depth[c].map(lambda v: fmt(v, 2)) for c in columns})
        lines += [f"Depth extrapolation at inference (tied layers run at other depths; median over seeds of the test "
                  f"accuracy relative to the trained depth L = {int(depth['trained_depth'].iloc[0])}):", "",
                  shown.drop(columns=["trained_depth", "L"]).to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(lines).strip()
