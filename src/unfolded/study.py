"""Unfolded vs standard as a study: learning-rate pick on validation, seed statistics beside the
baselines and ceilings, depth extrapolation, the archive and the generated prose.

Protocol (fixed before any model was trained): for each (dataset, model) the learning rate with
the best mean validation accuracy over seeds is picked (ties: the smaller rate); the test accuracy
at that rate is reported as mean, sample standard deviation (ddof = 1) and a 95% confidence
interval from Student's t over seeds. Baselines (bag_of_embeddings, linear probe) and the known
ceilings of the order task sit in the same table.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from pathlib import Path

import pandas as pd

__all__ = [
    "ARCHIVE_TABLES",
    "family_picks",
    "run_specs",
    "archive_study",
    "depth_table",
    "select_learning_rates",
    "study_markdown",
    "summarise_accuracy",
]

#: result tables an archived study keeps (results/archive/<study-id>/)
ARCHIVE_TABLES = ("accuracy.csv", "accuracy_summary.csv", "depth.csv", "timings.csv")
KEYS = ["dataset", "model"]


def lr_tag(lr: float) -> str:
    """A learning rate as it appears in run paths (``lr0.003``)."""
    return f"{float(lr):g}"


def model_family(model: str) -> str:
    base = model.split("-")[0]
    return base if base == "bag_of_embeddings" else base.split("_")[0]


def run_specs(config: dict) -> list[tuple[str, str, str, int]]:
    """Every (dataset, model, lr tag, seed) train job of a validated config: the models on every seed,
    each variant of each variant model on ``variant_seeds``, each at every learning rate of its
    family. The Snakefile builds its jobs from this list."""
    train = config["train"]
    runs = [(model, seed) for model in train["models"] for seed in train["seeds"]]
    variant_seeds = train["variant_seeds"] or train["seeds"]
    runs += [(f"{model}-{variant}", seed) for model in train["variant_models"] for variant in train["variants"]
             for seed in variant_seeds]
    return [(dataset, model, lr_tag(lr), seed)
            for dataset in (train["datasets"] or config["datasets"])
            for model, seed in runs
            for lr in train["learning_rates"][model_family(model)]]


def confidence_interval(values: pd.Series, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean; NaN with fewer than two values."""
    from scipy import stats

    values = values.dropna()
    if len(values) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def _clip(value: float) -> float:
    """Accuracies are in [0, 1]; so are the reported ends of their intervals."""
    return value if math.isnan(value) else min(1.0, max(0.0, value))


def select_learning_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with a boolean ``selected`` column: per (dataset, model) the learning rate with the
    best mean validation accuracy over seeds (ties: the smaller rate). Runs without a learning rate
    (the linear probe) are always selected."""
    runs = runs.copy()
    runs["selected"] = runs["lr"].isna()
    trained = runs[runs["lr"].notna()]
    if trained.empty:
        return runs
    means = trained.groupby([*KEYS, "lr"])["val_accuracy"].mean().reset_index()
    means = means.sort_values([*KEYS, "val_accuracy", "lr"], ascending=[True, True, False, True])
    picks = means.groupby(KEYS).head(1)[[*KEYS, "lr"]]
    picked = set(map(tuple, picks.to_numpy().tolist()))
    chosen = [(d, m, lr) in picked for d, m, lr in runs[[*KEYS, "lr"]].itertuples(index=False)]
    runs["selected"] = runs["selected"] | pd.Series(chosen, index=runs.index, dtype=bool)
    return runs


def summarise_accuracy(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model) at its picked learning rate: the grid, the pick, seeds, mean,
    sd and 95% CI of test accuracy, mean validation accuracy, parameters, the majority class and the
    dataset's known ceilings."""
    runs = select_learning_rates(runs)
    rows = []
    for (dataset, model), group in runs.groupby(KEYS, sort=True):
        picked = group[group["selected"]]
        grid = sorted(group["lr"].dropna().unique())
        low, high = confidence_interval(picked["test_accuracy"])
        first = picked.iloc[0]
        rows.append({
            "dataset": dataset, "model": model, "variant": first.get("variant", "base"),
            "family": first.get("family", ""),
            "lr_grid": "/".join(f"{lr:g}" for lr in grid) if grid else "",
            "lr": first["lr"], "seeds": int(picked["seed"].nunique()),
            "test_accuracy_mean": float(picked["test_accuracy"].mean()),
            "test_accuracy_sd": float(picked["test_accuracy"].std(ddof=1)) if len(picked) > 1 else math.nan,
            "ci95_low": _clip(low), "ci95_high": _clip(high),
            "val_accuracy_mean": float(picked["val_accuracy"].mean()),
            "epochs_mean": float(picked["epochs"].mean()) if "epochs" in picked else math.nan,
            "parameters": int(first["parameters"]),
            "energy_monotone_fraction": float(picked["energy_monotone_fraction"].mean())
            if "energy_monotone_fraction" in picked else math.nan,
            "chance_accuracy": float(first["chance_accuracy"]),
            "bag_of_words_ceiling": float(first.get("bag_of_words_ceiling", math.nan)),
            "oracle_ceiling": float(first.get("oracle_ceiling", math.nan)),
        })
    return pd.DataFrame(rows)


def family_picks(summary: pd.DataFrame) -> dict[str, float]:
    """Per model family, the learning rate picked most often over (dataset, model) pairs (ties: the
    smaller): the default configuration's ``train.learning_rates``."""
    trained = summary[summary["lr"].notna()]
    picks = {}
    for family, group in trained.groupby("family", sort=True):
        counts = group["lr"].value_counts()
        picks[family] = float(min(counts[counts == counts.max()].index))
    return picks


def _fmt(value: float, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _lr_cell(lr: float, grid: str) -> str:
    """The pick and its grid; a pick at an end of a grid of three or more is marked: the best rate
    may lie outside the grid."""
    if math.isnan(lr):
        return "C on validation"
    values = [float(v) for v in str(grid).split("/") if v]
    edge = len(values) >= 3 and lr in (min(values), max(values))
    return f"{lr:g} ({grid}{', at an end' if edge else ''})"


def accuracy_markdown(summary: pd.DataFrame) -> str:
    """The summary as one Markdown table per dataset, models sorted by mean test accuracy."""
    parts = []
    for dataset, group in summary.groupby("dataset", sort=True):
        group = group.sort_values("test_accuracy_mean", ascending=False)
        table = pd.DataFrame({
            "model": group["model"],
            "test accuracy": [f"{_fmt(m)} ± {_fmt(s)}" if not math.isnan(s) else _fmt(m)
                              for m, s in zip(group["test_accuracy_mean"], group["test_accuracy_sd"], strict=True)],
            "95% CI": [f"[{_fmt(lo)}, {_fmt(hi)}]" if not math.isnan(lo) else ""
                       for lo, hi in zip(group["ci95_low"], group["ci95_high"], strict=True)],
            "seeds": group["seeds"],
            "lr (grid)": [_lr_cell(lr, grid) for lr, grid in zip(group["lr"], group["lr_grid"], strict=True)],
            "val accuracy": group["val_accuracy_mean"].map(_fmt),
            "parameters": group["parameters"],
        })
        first = group.iloc[0]
        ceilings = [f"majority class {_fmt(first['chance_accuracy'])}"]
        if not math.isnan(first["bag_of_words_ceiling"]):
            ceilings.append(f"best bag-of-words classifier {_fmt(first['bag_of_words_ceiling'])} (from the generator)")
        if not math.isnan(first["oracle_ceiling"]):
            ceilings.append(f"oracle {_fmt(first['oracle_ceiling'])}")
        parts.append(f"### {dataset}\n\n{table.to_markdown(index=False)}\n\nCeilings and floors: {'; '.join(ceilings)}.")
    note = ("\n\nTest accuracy at the learning rate with the best mean validation accuracy (a pick at an end of its "
            "grid is marked: the best rate may lie outside it; early stopping on "
            "validation accuracy; the best epoch is tested). ± is the sample standard deviation over seeds (ddof = 1), "
            "the interval Student's t (clipped to [0, 1]). Variant runs (model-variant) may have fewer seeds than the "
            "base models.\n")
    return "\n\n".join(parts) + note


def depth_table(depth: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Depth rows of the runs at each model's picked learning rate, in the published column order."""
    picks = summary[[*KEYS, "lr"]]
    merged = depth.merge(picks, on=[*KEYS, "lr"], how="inner")
    columns = ["dataset", "model", "seed", "lr", "trained_depth", "depth", "test_accuracy", "update", "energy"]
    return merged[columns].sort_values(["dataset", "model", "seed", "depth"], ignore_index=True)


def _relative_depth_stats(depth: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): accuracy at the trained depth L and at 4L, and the update at 4L."""
    rows = []
    for (dataset, model), group in depth.groupby(KEYS, sort=True):
        trained = int(group["trained_depth"].iloc[0])
        deepest = int(group["depth"].max())

        def at(d: int, column: str, group: pd.DataFrame = group) -> float:
            return float(group[group["depth"] == d][column].mean())

        rows.append({"dataset": dataset, "model": model, "trained_depth": trained, "max_depth": deepest,
                     "accuracy_at_L": at(trained, "test_accuracy"), "accuracy_at_max": at(deepest, "test_accuracy"),
                     "update_at_L": at(trained, "update"), "update_at_max": at(deepest, "update"),
                     "energy_at_L": at(trained, "energy"), "energy_at_max": at(deepest, "energy")})
    return pd.DataFrame(rows)


def _separated(ci: dict, dataset: str, first: str, second: str) -> bool:
    """Whether two models' 95% intervals on a dataset are disjoint (False when either is missing)."""
    (a_low, a_high), (b_low, b_high) = ci.get((dataset, first), (math.nan,) * 2), ci.get((dataset, second), (math.nan,) * 2)
    if any(math.isnan(value) for value in (a_low, a_high, b_low, b_high)):
        return False
    return a_low > b_high or a_high < b_low


def study_markdown(summary: pd.DataFrame, depth: pd.DataFrame, provenance: dict | None = None) -> str:
    """The README's unfolded-vs-standard prose and tables, generated from the tables alone."""
    lines = []
    if provenance:
        trained_by = ", ".join(str(c)[:12] for c in provenance.get("runs_git_commit") or [provenance.get("git_commit", "")])
        jobs = provenance.get("train_jobs", provenance.get("runs"))
        lines.append(f"Study `{provenance.get('study_id')}`: {jobs} train jobs and {provenance.get('runs', 0) - jobs} "
                     f"linear probes; train jobs took {provenance.get('job_hours', math.nan):.2f} job-hours (wall time, one core "
                     f"each; {provenance.get('cpu_hours', math.nan):.2f} CPU-hours as Snakemake's benchmarks sampled them) on "
                     f"{provenance.get('machine')}, trained by commit {trained_by}.")
    mean = {(r.dataset, r.model): r.test_accuracy_mean for r in summary.itertuples()}
    ci = {(r.dataset, r.model): (r.ci95_low, r.ci95_high) for r in summary.itertuples()}
    for dataset in sorted(summary["dataset"].unique()):
        def get(model: str, dataset: str = dataset) -> float:
            return mean.get((dataset, model), math.nan)

        unfolded, standard, bag = get("unfolded_tied"), get("standard_tied"), get("bag_of_embeddings")
        probe = get("linear_probe")
        facts = []
        if not math.isnan(unfolded) and not math.isnan(bag):
            low, high = ci.get((dataset, "unfolded_tied"), (math.nan, math.nan))
            bag_low, bag_high = ci.get((dataset, "bag_of_embeddings"), (math.nan, math.nan))
            separated = not math.isnan(low) and not math.isnan(bag_high) and (low > bag_high or high < bag_low)
            verdict = ("above" if unfolded > bag else "below") if separated else "not separated from"
            facts.append(f"unfolded_tied {unfolded:.3f} is {verdict} bag_of_embeddings {bag:.3f} "
                         f"({'95% intervals do not overlap' if separated else '95% intervals overlap'})")
        if not math.isnan(unfolded) and not math.isnan(standard):
            gap = standard - unfolded
            facts.append(f"standard_tied {standard:.3f} ({'above' if gap > 0 else 'below'} unfolded_tied by {abs(gap):.3f}"
                         f"{'' if _separated(ci, dataset, 'standard_tied', 'unfolded_tied') else '; 95% intervals overlap'})")
            for row in summary[(summary["dataset"] == dataset) & (summary["variant"] != "base")
                               & summary["model"].str.startswith("unfolded_tied")].itertuples():
                delta = row.test_accuracy_mean - unfolded
                text = f"{row.model} {row.test_accuracy_mean:.3f} ({row.seeds} seed{'s' if row.seeds != 1 else ''}, {delta:+.3f}"
                if gap > 0.01:
                    text += f", {100 * delta / gap:.0f}% of the gap to standard_tied"
                if row.seeds > 1:
                    text += "; separated from unfolded_tied" if _separated(ci, dataset, row.model, "unfolded_tied") \
                        else "; not separated from unfolded_tied"
                facts.append(text + ")")
        if not math.isnan(probe):
            facts.append(f"linear probe {probe:.3f}")
        first = summary[summary["dataset"] == dataset].iloc[0]
        if not math.isnan(first["bag_of_words_ceiling"]):
            facts.append(f"ceilings: bag of words {first['bag_of_words_ceiling']:.3f}, oracle {first['oracle_ceiling']:.3f}")
        lines.append(f"- **{dataset}**: " + "; ".join(facts) + ".")
    if not depth.empty:
        stats = _relative_depth_stats(depth)
        stats["kept"] = stats["accuracy_at_max"] / stats["accuracy_at_L"]
        standard = stats[stats["model"].str.startswith("standard")]
        unfolded = stats[stats["model"].str.startswith("unfolded")]
        lines.append("")
        if not standard.empty and not unfolded.empty:
            lower = (unfolded["energy_at_max"] < unfolded["energy_at_L"]).sum()
            lines.append(
                f"Run at {int(stats['max_depth'].max())} layers instead of {int(stats['trained_depth'].min())}, standard "
                f"encoders keep {100 * standard['kept'].min():.0f}-{100 * standard['kept'].max():.0f}% of their accuracy, "
                f"unfolded encoders {100 * unfolded['kept'].min():.0f}-{100 * unfolded['kept'].max():.0f}%. The unfolded "
                f"updates shrink (relative update at 4L {unfolded['update_at_max'].min():.3f}-"
                f"{unfolded['update_at_max'].max():.3f}) and the mean energy at 4L is below its value at L for {lower} of "
                f"{len(unfolded)} (dataset, model) pairs. `hypothesis` Energy descent past L moves the state away from "
                f"the one the classifier was trained on.")
            lines.append("")
        lines.append("Depth extrapolation (tied encoders trained at depth L, run at 1 to 4L; mean over seeds):")
        lines.append("")
        stats = stats.drop(columns=["kept"], errors="ignore")
        table = stats.assign(**{column: stats[column].map(lambda v: _fmt(v, 3)) for column in stats.columns
                                if column.startswith(("accuracy", "update", "energy"))})
        lines.append(table.to_markdown(index=False))
    return "\n".join(lines) + "\n"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_study(study_id: str, tables: Path, runs_root: Path, benchmarks: Path, destination: Path,
                  config: dict) -> dict:
    """Copy the study's result tables into ``destination`` with provenance: the config, commit, machine,
    CPU-hours (sum of the train jobs' measured seconds), job count and the SHA-256 of the checkpoints
    behind each picked (dataset, model). Returns the provenance."""
    from .artifacts import atomic_path, provenance, write_json

    destination.mkdir(parents=True, exist_ok=True)
    for name in ARCHIVE_TABLES:
        with atomic_path(destination / name) as temporary:
            temporary.write_bytes((tables / name).read_bytes())
    runs = pd.read_csv(tables / "accuracy.csv")
    seconds, wall, jobs = 0.0, 0.0, 0
    for path in benchmarks.rglob("*.tsv"):
        jobs += 1
        frame = pd.read_csv(path, sep="\t")
        wall += float(frame["s"].iloc[-1])
        seconds += float(frame["cpu_time"].iloc[-1]) if "cpu_time" in frame and frame["cpu_time"].notna().all() \
            else float(frame["s"].iloc[-1])
    commits = sorted({json.loads(path.read_text()).get("git_commit", "unknown")
                      for path in runs_root.glob("*/*/lr*/seed*/provenance.json")})
    checkpoints = {}
    for row in runs[runs["selected"] & runs["lr"].notna()].itertuples():
        path = runs_root / row.dataset / row.model / f"lr{row.lr:g}" / f"seed{row.seed}" / "model.ckpt"
        if path.exists():
            checkpoints[str(path)] = _sha256(path)
    meta = provenance("study-archive", config, None, study_id=study_id, runs=int(len(runs)),
                      machine=f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                              f"{__import__('os').cpu_count()} cores, {platform.system()}",
                      cpu_hours=seconds / 3600.0, job_hours=wall / 3600.0, train_jobs=jobs, runs_git_commit=commits,
                      checkpoint_sha256=checkpoints)
    write_json(destination / "provenance.json", meta)
    return meta


def load_archive(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """The archived runs, their summary (recomputed with :func:`summarise_accuracy`), the depth table and the
    provenance; a clear error when something is missing."""
    from .errors import UserError

    missing = [name for name in (*ARCHIVE_TABLES, "provenance.json") if not (directory / name).exists()]
    if missing:
        raise UserError(f"study archive {directory} lacks {missing}; run the study (snakemake --configfile "
                        f"config/study.yaml) and archive it (python -m unfolded archive), or pick another study.id")
    provenance = json.loads((directory / "provenance.json").read_text())
    runs = pd.read_csv(directory / "accuracy.csv")
    # the archive keeps every run; the summary is recomputed from them, by the current code
    return runs, summarise_accuracy(runs.drop(columns=["selected"])), pd.read_csv(directory / "depth.csv"), provenance
