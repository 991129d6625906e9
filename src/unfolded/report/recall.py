"""The recall check in prose and tables (docs/results.md, "An energy that remembers its input"; the README's
recall sentences), from its archive alone (``results/archive/<study.recall_id>``): why the exact model failed
(the prespecified reading of :func:`unfolded.retention.reading`), whether ``exact_recall`` learned in Figure 6's
setting, the study setting's paired verdicts, the depth criterion and the input retention per layer."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .format import fmt

__all__ = ["RecallArchive", "recall_block", "recall_headline"]


@dataclass
class RecallArchive:
    """The tables of an archived recall check (missing ones are empty frames)."""

    path: Path
    provenance: dict
    runs: pd.DataFrame
    predictions: pd.DataFrame | None
    learned: pd.DataFrame
    learned_provenance: dict
    depth: pd.DataFrame
    retention: pd.DataFrame
    retention_earlier: pd.DataFrame
    extras: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RecallArchive:
        from ..archive import load_archive, load_extras

        path = Path(path)
        runs, _, _, provenance = load_archive(path)
        extras = load_extras(path)

        def table(name: str) -> pd.DataFrame:
            file = path / name
            return pd.read_csv(file) if file.exists() and file.read_text().strip() else pd.DataFrame()

        learned_meta = path / "figure6" / "provenance.json"
        return cls(path, provenance, runs, extras.get("predictions"), table("figure6/learned_models.csv"),
                   json.loads(learned_meta.read_text()) if learned_meta.exists() else {},
                   table("depth_profile.csv"), table("input_retention.csv"), table("input_retention_earlier.csv"),
                   extras)


def _share(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def readings(archive: RecallArchive) -> list[dict]:
    """The prespecified reading of the trained exact model's failure, per dataset (Figure 6's exact models)."""
    from ..retention import reading

    earlier = archive.retention_earlier
    if earlier.empty:
        return []
    exact = earlier[(earlier["model"] == "exact") & (earlier["state"] == "trained")]
    return [{"dataset": dataset, **reading(group)} for dataset, group in exact.groupby("dataset", sort=True)]


def reading_sentence(archive: RecallArchive) -> str:
    """Why the exact model failed to learn in Figure 6's setting, by the reading fixed before measuring."""
    cells = []
    for r in readings(archive):
        answers = "one class for every test input" if r["predicted_classes"] == 1 else f"{r['predicted_classes']} classes"
        cells.append(f"{r['dataset']}: {r['text']} (seed {r['seed']}: the probe on layer {r['layer']} scores "
                     f"{_share(r['probe_accuracy'])} against a majority class of {_share(r['chance_accuracy'])}, while the "
                     f"model answers {answers} at {_share(r['model_accuracy'])}; the pooled state's spread is "
                     f"{r['relative_spread']:.2g} of the input's; {r['test_count']} test items)")
    if not cells:
        return ""
    return ("Why the exact model did not learn (Figure 6's searched recipe, median seed, the reading fixed before "
            "measuring): " + "; ".join(cells) + ".")


def figure6_table(archive: RecallArchive) -> pd.DataFrame:
    """Figure 6's setting: per (dataset, model) the seeds, the median test accuracy, the majority class, whether it
    learned (median at least the majority + 0.2, exact counts) and the fewest classes a seed predicts."""
    from ..counts import accuracy_share, at_least, median, share
    from ..thresholds import LEARNED_MARGIN

    rows = []
    for (dataset, variant), group in archive.learned.groupby(["dataset", "variant"], sort=True):
        shares = [share(int(c), int(n)) for c, n in zip(group["test_correct"], group["test_count"], strict=True)]
        majority = accuracy_share(float(group["chance_accuracy"].iloc[0]), int(group["test_count"].iloc[0]))
        rows.append({"dataset": dataset, "model": variant, "seeds": len(group),
                     "median test accuracy": float(median(shares)), "majority": float(majority),
                     "learned": at_least(median(shares), majority, LEARNED_MARGIN),
                     "test items": int(group["test_count"].iloc[0])})
    return pd.DataFrame(rows)


def figure6_sentence(archive: RecallArchive) -> str:
    table = figure6_table(archive)
    if table.empty:
        return ""
    pick = archive.learned_provenance.get("pick", {})
    cells = "; ".join(f"{r.dataset} {r.model} {fmt(r._4)} ({'learned' if r.learned else 'did not learn'})"
                      for r in table.itertuples())
    recall = table[table["model"] == "exact_recall"]
    verdict = (f"exact_recall learned on {int(recall['learned'].sum())} of {len(recall)} datasets"
               if not recall.empty else "")
    return (f"Figure 6's setting (12 tied layers, the searched recipe, anchor weight {pick.get('recall', '?'):g} picked "
            f"on validation; {int(table['seeds'].max())} fresh seeds, fresh test splits), median test accuracy: {cells}: "
            f"{verdict}.")


def study_tables(archive: RecallArchive) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The study setting's paired comparison with unfolded_tied, the attention verdicts (recall against its control)
    and the controls against their ceilings."""
    from ..verdicts import attention_verdicts, control_checks, paired_comparisons

    return paired_comparisons(archive.runs), attention_verdicts(archive.runs, archive.predictions), \
        control_checks(archive.runs)


def depth_table(archive: RecallArchive) -> pd.DataFrame:
    from ..summaries import recall_depth_criterion

    return recall_depth_criterion(archive.depth) if not archive.depth.empty else pd.DataFrame()


def depth_sentence(archive: RecallArchive) -> str:
    from ..thresholds import DEPTH_KEEP

    table = depth_table(archive)
    if table.empty:
        return ""
    cells = []
    for r in table.itertuples():
        cells.append(f"{r.dataset} {r.model}: {'held' if r.held else 'did not hold'} (worst {r.worst_keep_L_to_max:.2f}; "
                     f"L-1 keeps {r._asdict()['keep_L-1']:.2f})")
    recall = table[table["model"].str.contains("recall")]
    held = f"{int(recall['held'].sum())} of {len(recall)} recall models" if not recall.empty else "no recall model"
    return (f"Depth criterion (fixed before the check: at least {DEPTH_KEEP:.0%} of the accuracy at L at every depth "
            f"from L to 4L, median over seeds): it held for {held}; " + "; ".join(cells) + ".")


def retention_table(archive: RecallArchive) -> pd.DataFrame:
    """Per (source, dataset, model, state): the median over seeds of the pooled spread relative to the input and of
    the probe's test accuracy at layers L and 4L, with the majority class."""
    frames = [frame for frame in (archive.retention_earlier, archive.retention) if not frame.empty]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    rows = []
    for (source, dataset, model, state), group in table.groupby(["source", "dataset", "model", "state"], sort=True):
        depth = int(group["trained_depth"].iloc[0])
        at = lambda layer, column, group=group: float(group[group["layer"] == layer][column].median())  # noqa: E731
        rows.append({"archive": source, "dataset": dataset, "model": model, "state": state,
                     "seeds": int(group["seed"].nunique()), "L": depth,
                     "spread at L": at(depth, "relative_spread"), "spread at 4L": at(4 * depth, "relative_spread"),
                     "probe at 0": at(0, "probe_accuracy"), "probe at L": at(depth, "probe_accuracy"),
                     "probe at 4L": at(4 * depth, "probe_accuracy"),
                     "majority": float(group["chance_accuracy"].median())})
    return pd.DataFrame(rows)


def _verdict_markdown(comparisons: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    rows = []
    for r in comparisons.itertuples():
        rows.append({"task": r.dataset, "comparison": f"{r.model} vs {r.reference}", "median": fmt(r.median),
                     "other": fmt(r.reference_median), "paired gain": f"{r.paired_gain:+.3f}",
                     "p (seeds, Holm)": _p(r.holm_p), "verdict": r.verdict + (" (cap)" if r.capped else "")})
    recall = verdicts[verdicts["model"] == "unfolded_tied-recall"] if not verdicts.empty else verdicts
    for r in recall.itertuples():
        rows.append({"task": r.dataset, "comparison": f"{r.model} vs {r.control}", "median": fmt(r.median),
                     "other": fmt(r.control_median), "paired gain": f"{r.paired_gain:+.3f}",
                     "p (seeds, Holm)": _p(r.holm_p), "verdict": r.verdict + (" (cap)" if r.capped else "")})
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) if rows else ""


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def study_sentence(archive: RecallArchive) -> str:
    comparisons, verdicts, controls = study_tables(archive)
    if comparisons.empty:
        return ""
    better = comparisons[comparisons["verdict"] == "better"]["dataset"].tolist()
    worse = comparisons[comparisons["verdict"] == "worse"]["dataset"].tolist()
    recall = verdicts[verdicts["model"] == "unfolded_tied-recall"] if not verdicts.empty else verdicts
    on_equality = recall[recall["dataset"] == "equality"]
    equality = (f"; against its own control on equality: {on_equality.iloc[0]['verdict']} "
                f"({fmt(on_equality.iloc[0]['median'])} vs {fmt(on_equality.iloc[0]['control_median'])})"
                if not on_equality.empty else "")
    controls = controls[controls["control"] == "unfolded_tied-recall_no_attention"] if not controls.empty else controls
    ceiling = (f"; its control's best seed on equality sits {controls.iloc[0]['excess_in_se']:+.1f} standard errors from "
               f"the 3/4 ceiling" if not controls.empty else "")
    seeds = sorted(int(s) for s in archive.runs.loc[archive.runs["lr"].notna(), "seed"].unique())
    return (f"Study setting (L = {archive.provenance.get('config', {}).get('train', {}).get('num_layers')}, seeds "
            f"{seeds[0]}-{seeds[-1]}, fresh test splits): unfolded_tied-recall is better than unfolded_tied on "
            f"{', '.join(better) or 'no task'} and worse on {', '.join(worse) or 'no task'} (paired over seeds, Holm)"
            f"{equality}{ceiling}.")


def recall_headline(archive: RecallArchive) -> str:
    """The README: why the exact model failed, whether exact_recall learned, and the depth criterion."""
    parts = [reading_sentence(archive), figure6_sentence(archive), study_sentence(archive), _depth_short(archive)]
    return "\n\n".join("`derived` " + part for part in parts if part)


def _depth_short(archive: RecallArchive) -> str:
    table = depth_table(archive)
    if table.empty:
        return ""
    recall = table[table["model"].str.contains("recall")]
    others = table[~table["model"].str.contains("recall")]
    drop = lambda frame: (f"{frame['keep_L-1'].min():.2f}-{frame['keep_L-1'].max():.2f}"  # noqa: E731
                          if not frame.empty else "n/a")
    return (f"Depth criterion (at least 90% of the accuracy at L from L to 4L, median over seeds, fixed beforehand): "
            f"held for {int(recall['held'].sum())} of {len(recall)} recall models and {int(others['held'].sum())} of "
            f"{len(others)} others; L-1 keeps {drop(recall)} (recall) and {drop(others)} (others).")


def recall_block(archive: RecallArchive) -> str:
    """docs/results.md: the recall check in full."""
    provenance = archive.provenance
    lines = [f"Check `{archive.path.name}` (`config/recall-check.yaml`; commit "
             f"`{str(provenance.get('git_commit', '?'))[:7]}`, git_dirty {str(provenance.get('git_dirty')).lower()}; "
             f"{provenance.get('train_jobs')} train jobs, {provenance.get('job_hours', math.nan):.2f} job-hours on "
             f"{provenance.get('machine')}).", ""]
    sentence = reading_sentence(archive)
    if sentence:
        lines += ["`derived` " + sentence, ""]
    retention = retention_table(archive)
    if not retention.empty:
        lines += [retention.to_markdown(index=False, floatfmt=".3g"), "",
                  "Spread: the pooled state's spread across the test inputs relative to the input's (layer 0); probe: "
                  "test accuracy of a logistic regression fitted on 1,500 train sequences' pooled states of that layer "
                  "(standardised); medians over seeds. `untrained`: the same models at their initialisation.", "",
                  "![Input retention](figures/fig_input_retention.png)", ""]
    table = figure6_table(archive)
    if not table.empty:
        lines += ["`derived` " + figure6_sentence(archive), "",
                  table.to_markdown(index=False, floatfmt=".3f"), ""]
    comparisons, verdicts, controls = study_tables(archive)
    if not comparisons.empty:
        lines += ["`derived` " + study_sentence(archive), "", _verdict_markdown(comparisons, verdicts), ""]
    depth = depth_table(archive)
    if not depth.empty:
        lines += ["`derived` " + depth_sentence(archive), "",
                  depth.drop(columns=["held"]).assign(held=depth["held"]).to_markdown(index=False, floatfmt=".3f"), ""]
    return "\n".join(lines).strip()
