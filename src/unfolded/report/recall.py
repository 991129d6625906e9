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

from .format import fmt, optional_table

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

        def named(frame: pd.DataFrame) -> pd.DataFrame:  # the check's own Figure 6 folder, named as a path
            if "source" in frame:
                frame = frame.assign(source=frame["source"].replace({"figure6": f"{path.name}/figure6"}))
            return frame

        learned_meta = path / "figure6" / "provenance.json"
        def table(name: str) -> pd.DataFrame:
            return optional_table(path / name)

        return cls(path, provenance, runs, extras.get("predictions"), table("figure6/learned_models.csv"),
                   json.loads(learned_meta.read_text()) if learned_meta.exists() else {},
                   named(table("depth_profile.csv")), named(table("input_retention.csv")),
                   named(table("input_retention_earlier.csv")), extras)


def _share(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def readings(archive: RecallArchive, own: bool = False) -> list[dict]:
    """The prespecified reading of the trained exact model's failure, per dataset: on Figure 6's exact models (the
    archive the reading was fixed for), or with ``own`` on the check's exact models (fresh seeds, fresh test splits).
    Each comes with the probe's correct answers and the counts its two thresholds stand at."""
    from ..counts import accuracy_share, margin
    from ..retention import reading

    table = archive.retention if own else archive.retention_earlier
    if table.empty:
        return []
    exact = table[(table["model"] == "exact") & (table["state"] == "trained")]
    found = []
    for (source, dataset), group in exact.groupby(["source", "dataset"], sort=True):
        result = reading(group)
        count = result["test_count"]
        majority = accuracy_share(result["chance_accuracy"], count) * count
        row = group[(group["seed"] == result["seed"]) & (group["layer"] == result["layer"])].iloc[0]
        found.append({"dataset": dataset, "source": source, "seeds": sorted(int(s) for s in group["seed"].unique()),
                      "probe_correct": int(row["probe_correct"]),
                      "forgot_below": float(majority + margin(0.05) * count),
                      "optimisation_from": float(majority + margin(0.2) * count), **result})
    return found


def _reading_cell(r: dict) -> str:
    answers = "one class for every test input" if r["predicted_classes"] == 1 else f"{r['predicted_classes']} classes"
    return (f"{r['dataset']}: {r['text']} (seed {r['seed']} of {r['seeds'][0]}-{r['seeds'][-1]}: the probe on layer "
            f"{r['layer']} answers {r['probe_correct']} of {r['test_count']} test items, against {r['forgot_below']:g} "
            f"for the majority class + 0.05 and {r['optimisation_from']:g} for + 0.2, while the model answers {answers} "
            f"at {_share(r['model_accuracy'])}; the pooled state's spread is {r['relative_spread']:.1e} of the input's)")


def reading_sentence(archive: RecallArchive) -> str:
    """Why the exact model failed to learn in Figure 6's setting, by the reading fixed before measuring: on the
    models it was fixed for, then on the check's own exact models (fresh seeds and test splits)."""
    cells = [_reading_cell(r) for r in readings(archive)]
    if not cells:
        return ""
    again = [f"{r['dataset']} {r['text']} ({r['probe_correct']} of {r['test_count']})" for r in readings(archive, own=True)]
    source = readings(archive)[0]["source"]
    return (f"Why the exact model did not learn (Figure 6's searched recipe; `{source}`'s exact models, their median "
            f"seed; the reading fixed before measuring): " + "; ".join(cells) + "."
            + (f" On this check's own exact models (fresh seeds and test splits): {'; '.join(again)}." if again else ""))


def figure6_table(archive: RecallArchive) -> pd.DataFrame:
    """Figure 6's setting: per (dataset, model) the seeds, the median test accuracy, the majority class, whether it
    learned (median at least the majority + 0.2, exact counts) and the fewest classes a seed predicts."""
    from ..counts import accuracy_share, at_least, median, share
    from ..thresholds import LEARNED_MARGIN

    cap = ((archive.learned_provenance.get("config") or {}).get("energy_curves", {}).get("recipe_search", {})
           .get("max_epochs"))
    rows = []
    for (dataset, variant), group in archive.learned.groupby(["dataset", "variant"], sort=True):
        shares = [share(int(c), int(n)) for c, n in zip(group["test_correct"], group["test_count"], strict=True)]
        majority = accuracy_share(float(group["chance_accuracy"].iloc[0]), int(group["test_count"].iloc[0]))
        at_cap = int((group["epochs"] >= cap).sum()) if cap else 0
        rows.append({"dataset": dataset, "model": variant, "seeds": len(group),
                     "median test accuracy": float(median(shares)), "majority": float(majority),
                     "learned": at_least(median(shares), majority, LEARNED_MARGIN),
                     "at epoch cap": f"{at_cap} of {len(group)}" + (" (cap)" if 2 * at_cap >= len(group) else ""),
                     "test items": int(group["test_count"].iloc[0])})
    return pd.DataFrame(rows)


def figure6_sentence(archive: RecallArchive) -> str:
    table = figure6_table(archive)
    if table.empty:
        return ""
    pick = archive.learned_provenance.get("pick", {})
    def capped(r: dict) -> str:
        cap = r["at epoch cap"]
        return f", at its epoch cap on {cap.removesuffix(' (cap)')} seeds" if cap.endswith("(cap)") else ""

    cells = "; ".join(f"{r['dataset']} {r['model']} {fmt(r['median test accuracy'])} "
                      f"({'learned' if r['learned'] else 'did not learn'}{capped(r)})" for r in table.to_dict("records"))
    recall = table[table["model"] == "exact_recall"]
    verdict = (f"exact_recall learned on {int(recall['learned'].sum())} of {len(recall)} datasets"
               if not recall.empty else "")
    weight = pick.get("recall")
    weight = f"{weight:g}" if isinstance(weight, (int, float)) else "?"
    return (f"Figure 6's setting (12 tied layers, the searched recipe, anchor weight {weight} picked "
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
    for r in table.to_dict("records"):
        cells.append(f"{r['dataset']} {r['model']}: {'held' if r['held'] else 'did not hold'} (worst "
                     f"{r['worst_keep_L_to_max']:.2f}; L-1 keeps {r['keep_L-1']:.2f})")
    return (f"Depth criterion (fixed before the check: at least {DEPTH_KEEP:.0%} of the accuracy at L at every depth "
            f"from L to 4L, median over seeds): {_depth_counts(archive)}; per model: " + "; ".join(cells) + ". A model that "
            "did not learn (at the majority class at L, as the exact models of Figure 6's setting, which answer one "
            "class there) keeps its accuracy trivially and is left out of the counts.")


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


def _smallest_p(pairs: int) -> float:
    """The smallest p the exact seed test can give with ``pairs`` seed pairs (before Holm's correction)."""
    from ..stats import EXACT_PAIRS

    return 2.0 / 2 ** min(pairs, EXACT_PAIRS) if pairs else math.nan


def _train_samples(archive: RecallArchive) -> str:
    frames = [frame for frame in (archive.retention, archive.retention_earlier) if not frame.empty]
    counts = pd.concat([frame["train_samples"] for frame in frames]) if frames else pd.Series(dtype=int)
    if counts.empty:
        return "?"
    low, high = int(counts.min()), int(counts.max())
    return f"{high:,}" if low == high else f"{high:,} ({low:,} where the train split is smaller)"


def _verdict_markdown(comparisons: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """Both tables' rows, with the seed pairs each rests on and the smallest Holm p they allow."""
    rows = []
    recall = verdicts[verdicts["model"] == "unfolded_tied-recall"] if not verdicts.empty else verdicts
    for frame, other, other_median in ((comparisons, "reference", "reference_median"),
                                       (recall, "control", "control_median")):
        for r in frame.to_dict("records"):
            rows.append({"task": r["dataset"], "comparison": f"{r['model']} vs {r[other]}", "median": fmt(r["median"]),
                         "other": fmt(r[other_median]), "paired gain": f"{r['paired_gain']:+.3f}",
                         "seed pairs": str(int(r["pairs"])), "smallest p (raw)": _p(_smallest_p(r["pairs"])),
                         "p (seeds, Holm)": _p(r["holm_p"]), "verdict": r["verdict"] + (" (cap)" if r["capped"] else "")})
    table = pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) if rows else ""
    return table + ("\n\nSeed pairs: the seeds on which both runs trained; with n pairs the exact test's p is at least "
                    "2/2^n before Holm's correction, which multiplies it by up to the number of rows, so a row with few "
                    "pairs may not be able to reach significance whatever its gain (equality, where runs did not train)."
                    if rows else "")


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def study_sentence(archive: RecallArchive) -> str:
    comparisons, verdicts, controls = study_tables(archive)
    if comparisons.empty:
        return ""
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
            f"{seeds[0]}-{seeds[-1]}, fresh test splits): against unfolded_tied, unfolded_tied-recall is "
            f"{_verdict_cells(comparisons)} (paired over seeds, Holm){equality}{ceiling}.")


def _verdict_cells(comparisons: pd.DataFrame) -> str:
    """Which tasks recall is better or worse on than unfolded_tied, and where the verdict depends on runs that did
    not train (with what it reads when they are set aside)."""
    from ..verdicts import DEPENDS

    better = comparisons[comparisons["verdict"] == "better"]["dataset"].tolist()
    worse = comparisons[comparisons["verdict"] == "worse"]["dataset"].tolist()
    depends = [f"{r.dataset}: {r.verdict_set_aside} with them set aside, {r.verdict_kept} with them kept"
               for r in comparisons.itertuples() if r.verdict == DEPENDS]
    text = f"better on {', '.join(better) or 'no task'} and worse on {', '.join(worse) or 'none'}"
    return text + (f" ({'; '.join(depends)}: depends on runs that did not train)" if depends else "")


def _learned_at_depth(archive: RecallArchive, table: pd.DataFrame) -> pd.Series:
    """Per row of the depth table, whether the model learned at its trained depth (median correct answers over seeds
    at least the majority class + 0.2, exact counts): a model at the majority class keeps it at every depth trivially."""
    from ..counts import accuracy_share, at_least, median, share
    from ..thresholds import LEARNED_MARGIN

    majority = {}
    for frame in (archive.runs, archive.learned):
        for dataset, group in frame.groupby("dataset"):
            majority[dataset] = float(group["chance_accuracy"].dropna().iloc[0])
    flags = []
    for r in table.to_dict("records"):
        rows = archive.depth[(archive.depth["dataset"] == r["dataset"]) & (archive.depth["model"] == r["model"])
                             & (archive.depth["depth"] == r["trained_depth"])]
        count = int(rows["test_count"].iloc[0])
        shares = [share(int(c), count) for c in rows["test_correct"]]
        flags.append(at_least(median(shares), accuracy_share(majority[r["dataset"]], count), LEARNED_MARGIN))
    return pd.Series(flags, index=table.index, dtype=bool)


def _depth_counts(archive: RecallArchive) -> str:
    table = depth_table(archive)
    if table.empty:
        return ""
    table = table[_learned_at_depth(archive, table)]  # a model at the majority class keeps it trivially
    recall = table[table["model"].str.contains("recall")]
    base = table[table["model"] == "unfolded_tied"]
    drop = (f"; at L-1 unfolded_tied keeps {base['keep_L-1'].min():.2f}-{base['keep_L-1'].max():.2f} of its accuracy, "
            f"the recall models {recall['keep_L-1'].min():.2f}-{recall['keep_L-1'].max():.2f}") if not base.empty else ""
    return (f"among the models that learned, the depth criterion held for {int(recall['held'].sum())} of {len(recall)} "
            f"recall models and {int(base['held'].sum())} of {len(base)} unfolded_tied{drop}")


def recall_headline(archive: RecallArchive) -> str:
    """The README: why the exact model failed, whether exact_recall learned, the study verdicts and the depth
    criterion, in two compact sentences (the details are in :func:`recall_block`)."""
    cells = "; ".join(f"{r['dataset']}, {r['text']} (probe {r['probe_correct']} of {r['test_count']})"
                      for r in readings(archive))
    lines = []
    if cells:
        lines.append(f"`derived` Why the exact model did not learn (median seed; reading fixed beforehand): {cells}.")
    table = figure6_table(archive)
    comparisons, _, _ = study_tables(archive)
    parts = []
    if not table.empty:
        recall = table[table["model"] == "exact_recall"]
        pick = archive.learned_provenance.get("pick", {})
        parts.append(f"in Figure 6's setting exact_recall (weight {pick.get('recall', float('nan')):g}) learned on "
                     f"{int(recall['learned'].sum())} of {len(recall)} datasets ("
                     + "; ".join(f"{r['dataset']} {fmt(r['median test accuracy'])}, majority {fmt(r['majority'])}"
                               for r in recall.to_dict("records")) + ")")
    if not comparisons.empty:
        parts.append(f"against unfolded_tied on the study's tasks, unfolded_tied-recall is {_verdict_cells(comparisons)}")
    depth = _depth_counts(archive)
    if depth:
        parts.append(depth)
    if parts:
        lines.append("`derived` With recall: " + "; ".join(parts) + ". Details: docs/results.md.")
    return "\n\n".join(lines)


def recall_block(archive: RecallArchive) -> str:
    """docs/results.md: the recall check in full."""
    provenance = archive.provenance
    commits = provenance.get("runs_git_commit") or [provenance.get("git_commit", "?")]
    lines = [f"Check `{archive.path.name}` (`config/recall-check.yaml`; runs trained by commits "
             f"{', '.join(f'`{str(c)[:7]}`' for c in commits)}, archived by `{str(provenance.get('git_commit', '?'))[:7]}`, "
             f"git_dirty {str(provenance.get('git_dirty')).lower()}; "
             f"{provenance.get('train_jobs')} train jobs, {provenance.get('job_hours', math.nan):.2f} job-hours on "
             f"{provenance.get('machine')}).", ""]
    sentence = reading_sentence(archive)
    if sentence:
        lines += ["`derived` " + sentence, ""]
    retention = retention_table(archive)
    if not retention.empty:
        lines += [retention.to_markdown(index=False, floatfmt=".3g"), "",
                  "Spread: the pooled state's spread across the test inputs relative to the input's (layer 0); probe: "
                  "test accuracy of a logistic regression fitted on the pooled states of that layer of at most "
                  f"{_train_samples(archive)} train sequences (standardised); medians over seeds. `untrained`: the same "
                  "models at their initialisation.", "",
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
