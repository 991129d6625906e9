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
    "study_verdicts",
    "check_markdown",
    "welch_p",
    "summarise_accuracy",
]

#: result tables an archived study keeps (results/archive/<study-id>/)
ARCHIVE_TABLES = ("accuracy.csv", "accuracy_summary.csv", "depth.csv", "timings.csv")
KEYS = ["dataset", "model"]
#: Unfolded variants whose feed-forward step size is below 1 (unfolded.training.VARIANTS; a test
#: keeps the two in step). With step size 1 the feed-forward step multiplies the state's distance to
#: its minimiser by ``-lambda`` along each eigenvector of ``Wf`` (docs/theory.md §2.2).
FFN_STEP_BELOW_ONE = ("residual", "learned_steps")
#: The ablation without the attention step: the control for token interactions, not a variant to pick.
NO_ATTENTION = "unfolded_tied-no_attention"


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
            "epochs_at_cap": _at_cap(picked),
            "parameters": int(first["parameters"]),
            "energy_monotone_fraction": float(picked["energy_monotone_fraction"].mean())
            if "energy_monotone_fraction" in picked else math.nan,
            "chance_accuracy": float(first["chance_accuracy"]),
            "bag_of_words_ceiling": float(first.get("bag_of_words_ceiling", math.nan)),
            "oracle_ceiling": float(first.get("oracle_ceiling", math.nan)),
        })
    return pd.DataFrame(rows)


def _at_cap(picked: pd.DataFrame) -> float:
    """How many runs trained until their ``max_epochs`` (early stopping did not end them); NaN when
    the runs do not record their epoch cap (the linear probe, older tables)."""
    if "epochs" not in picked or "max_epochs" not in picked or picked["max_epochs"].isna().all():
        return math.nan
    return float((picked["epochs"] >= picked["max_epochs"]).sum())


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


def _epochs_cell(row: dict) -> str:
    """Mean epochs trained and how many of the seeds ran to the epoch cap: ``16.4 (2/5)``."""
    mean, at_cap = row.get("epochs_mean", math.nan), row.get("epochs_at_cap", math.nan)
    if mean is None or math.isnan(mean):
        return ""
    return f"{mean:.1f}" + ("" if at_cap is None or math.isnan(at_cap) else f" ({int(at_cap)}/{int(row['seeds'])})")


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
            "epochs (at cap)": [_epochs_cell(r) for r in group.to_dict("records")],
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
            "validation accuracy; the best epoch is tested; epochs: mean over seeds, and how many seeds ran to the "
            "epoch cap instead of stopping early). ± is the sample standard deviation over seeds (ddof = 1), "
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


def _range(values: pd.Series, percent: bool = True) -> str:
    low, high = float(values.min()), float(values.max())
    if percent:
        return f"{100 * low:.0f}%" if round(100 * low) == round(100 * high) else f"{100 * low:.0f}-{100 * high:.0f}%"
    return f"{low:.3f}" if f"{low:.3f}" == f"{high:.3f}" else f"{low:.3f}-{high:.3f}"


def convergence_sentence(summary: pd.DataFrame, max_epochs: int | None, detail: bool = True) -> str:
    """Which picked runs trained to the epoch cap instead of stopping early, and which learning-rate
    picks sit at an end of their grid (the best rate may lie outside it); ``detail=False`` names
    only the models where both hold."""
    trained = summary[summary["lr"].notna()]
    known = "epochs_at_cap" in trained and trained["epochs_at_cap"].notna().any()
    capped = trained[trained["epochs_at_cap"] > 0] if known else trained.iloc[:0]
    edges = trained[[("at an end" in _lr_cell(r.lr, r.lr_grid)) for r in trained.itertuples()]]
    parts = []
    if known:
        total = int(trained["seeds"][trained["epochs_at_cap"].notna()].sum())
        listed = ", ".join(f"{r.dataset} {r.model} {int(r.epochs_at_cap)}/{int(r.seeds)}" for r in capped.itertuples())
        cap = f" of {max_epochs} epochs" if max_epochs else ""
        parts.append(f"{int(trained['epochs_at_cap'].sum())} of {total} runs at the picked learning rates trained to "
                     f"the cap{cap} instead of stopping early" + (f" ({listed})" if listed and detail else ""))
    if not edges.empty:
        listed = ", ".join(f"{r.dataset} {r.model}" for r in edges.itertuples())
        parts.append(f"{len(edges)} of {len(trained)} learning-rate picks sit at an end of their grid"
                     + (f" ({listed})" if detail else ""))
    if not parts:
        return ""
    both = capped.merge(edges[KEYS], on=KEYS)
    text = "Convergence: " + "; ".join(parts) + "."
    if not both.empty:
        text += (" Both hold for " + ", ".join(f"{r.dataset} {r.model}" for r in both.itertuples())
                 + ": a longer budget or a wider grid could change their accuracy.")
    return text


def depth_sentences(depth: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Generated prose on depth extrapolation: one layer past the trained depth, and at the deepest depth."""
    stats = _relative_depth_stats(depth)
    stats["next"] = stats["accuracy_at_L+1"] / stats["accuracy_at_L"]
    stats["after_next"] = stats["accuracy_at_L+2"] / stats["accuracy_at_L"]
    stats["kept"] = stats["accuracy_at_max"] / stats["accuracy_at_L"]
    standard = stats[stats["model"].str.startswith("standard")]
    unfolded = stats[stats["model"].str.startswith("unfolded")]
    if standard.empty or unfolded.empty:
        return []
    below = unfolded["model"].map(lambda m: m.partition("-")[2] in FFN_STEP_BELOW_ONE)
    one, small = unfolded[~below], unfolded[below]
    chance = summary.groupby("dataset")["chance_accuracy"].first()
    lines = []
    text = (f"Depth extrapolation (tied encoders trained at depth L, run deeper): one layer past L, standard "
            f"encoders keep {_range(standard['next'])} of their accuracy at L.")
    if not one.empty:
        under = int((one["accuracy_at_L+1"] < one["dataset"].map(chance)).sum())
        text += (f" Unfolded encoders with feed-forward step size 1 ({', '.join(sorted(one['model'].unique()))}) keep "
                 f"{_range(one['next'])}, fall below the majority class in {under} of {len(one)} (dataset, model) pairs, "
                 f"and are back at {_range(one['after_next'])} at L+2")
        text += ": a drop at L+1 and a recovery at L+2." if (one["after_next"] > one["next"]).all() else "."
    if not small.empty:
        text += (f" With a feed-forward step size that starts below 1 ({', '.join(sorted(small['model'].unique()))}; "
                 f"learned_steps then learns its own) they keep {_range(small['next'])} at L+1.")
    if not one.empty:
        text += (" `derived` With step size 1 the feed-forward step multiplies the state's distance to its minimiser "
                 "by `-lambda` along each eigenvector of `Wf`, so it changes sign wherever `lambda > 0`; a step size "
                 "below `1 / (1 + s)` changes no sign (docs/theory.md §2.2). `hypothesis` This sign change, through "
                 "the ReLU and the attention step, is what makes the accuracy drop and recover.")
    lines.append(text)
    shrink = int((unfolded["update_at_max"] < unfolded["update_at_L"]).sum())
    lower = int((unfolded["energy_at_max"] < unfolded["energy_at_L"]).sum())
    lines.append(
        f"Run at {int(stats['max_depth'].max())} layers instead of {int(stats['trained_depth'].min())}, standard "
        f"encoders keep {_range(standard['kept'])} of their accuracy, unfolded encoders {_range(unfolded['kept'])}. "
        f"The relative update of the unfolded encoders is smaller at 4L than at L in {shrink} of {len(unfolded)} pairs "
        f"({_range(unfolded['update_at_max'], percent=False)} at 4L), and their mean energy is lower at 4L in {lower} of "
        f"{len(unfolded)} (the energy measured includes the regulariser R, for which no step guarantees descent). "
        f"`hypothesis` Running the descent past L moves the state away from the one the classifier was trained on.")
    return lines


def study_markdown(runs: pd.DataFrame, summary: pd.DataFrame, depth: pd.DataFrame,
                   provenance: dict | None = None) -> str:
    """The study's prose and tables (docs/results.md), generated from the tables alone: provenance,
    the per-dataset verdicts (:func:`study_verdicts`), convergence, and depth extrapolation."""
    lines = []
    max_epochs = None
    if provenance:
        trained_by = ", ".join(str(c)[:12] for c in provenance.get("runs_git_commit") or [provenance.get("git_commit", "")])
        jobs = provenance.get("train_jobs", provenance.get("runs"))
        lines.append(f"Study `{provenance.get('study_id')}`: {jobs} train jobs and {provenance.get('runs', 0) - jobs} "
                     f"linear probes; train jobs took {provenance.get('job_hours', math.nan):.2f} job-hours (wall time, one core "
                     f"each; {provenance.get('cpu_hours', math.nan):.2f} CPU-hours as Snakemake's benchmarks sampled them) on "
                     f"{provenance.get('machine')}, trained by commit {trained_by}.")
        lines.append("")
        max_epochs = (provenance.get("config") or {}).get("train", {}).get("max_epochs")
    lines.append("What the runs support (difference of means, Welch's t-test over seeds at the picked learning rates; "
                 "only the best-variant test is corrected for the number of variants):")
    lines.append("")
    lines += [f"- {line}" for line in study_verdicts(runs)]
    convergence = convergence_sentence(summary, max_epochs)
    if convergence:
        lines += ["", convergence]
    if not depth.empty:
        lines.append("")
        for sentence in depth_sentences(depth, summary):
            lines += [sentence, ""]
        lines.append("Depth extrapolation (tied encoders trained at depth L, run at 1 to 4L; mean over seeds):")
        lines.append("")
        stats = _relative_depth_stats(depth)
        table = stats.assign(**{column: stats[column].map(lambda v: _fmt(v, 3)) for column in stats.columns
                                if column.startswith(("accuracy", "update", "energy"))})
        lines.append(table.to_markdown(index=False))
    return "\n".join(lines) + "\n"


def welch_p(first: pd.Series, second: pd.Series) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances) between two sets of per-seed scores;
    NaN with fewer than two values in either set."""
    from scipy.stats import ttest_ind

    first, second = first.dropna().astype(float), second.dropna().astype(float)
    if len(first) < 2 or len(second) < 2:
        return math.nan
    if first.std(ddof=1) == 0 and second.std(ddof=1) == 0:
        return 1.0 if first.mean() == second.mean() else 0.0
    return float(ttest_ind(first, second, equal_var=False).pvalue)


def _p(value: float) -> str:
    if math.isnan(value):
        return "p n/a"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def study_verdicts(runs: pd.DataFrame, level: float = 0.05) -> list[str]:
    """One generated sentence per dataset: is ``unfolded_tied`` above ``bag_of_embeddings`` (pooled
    token identity), how far is it from ``standard_tied``, and does any unfolded variant help, each
    with the difference of means and Welch's p over seeds at the picked learning rates; only the
    best-variant test is corrected (Bonferroni over the variants it was picked from)."""
    runs = select_learning_rates(runs.drop(columns=["selected"], errors="ignore"))
    picked = runs[runs["selected"]]
    lines = []
    for dataset, group in picked.groupby("dataset", sort=True):
        def scores(model: str, group: pd.DataFrame = group) -> pd.Series:
            return group.loc[group["model"] == model, "test_accuracy"]

        unfolded = scores("unfolded_tied")
        if unfolded.empty:
            continue
        facts = []
        first = group.iloc[0]
        ceilings = [f"{name} {first[column]:.3f}" for column, name in
                    (("bag_of_words_ceiling", "best bag of words"), ("oracle_ceiling", "oracle"))
                    if column in group and not pd.isna(first[column])]
        bag = scores("bag_of_embeddings")
        if not bag.empty:
            diff, p = unfolded.mean() - bag.mean(), welch_p(unfolded, bag)
            where = "above" if diff > 0 and p < level else ("below" if p < level else "not separated from")
            facts.append(f"unfolded_tied {where} bag_of_embeddings ({diff:+.3f}, {_p(p)})")
        ablation = scores(NO_ATTENTION)
        if not ablation.empty:
            diff, p = unfolded.mean() - ablation.mean(), welch_p(unfolded, ablation)
            if p < level and diff > 0:
                facts.append(f"the attention step helps: {diff:+.3f} over the same model without it ({_p(p)})")
            elif p < level:
                facts.append(f"the attention step hurts: the same model without it is ahead by {-diff:.3f} ({_p(p)})")
            else:
                facts.append(f"the attention step is not shown to help: {diff:+.3f} against the same model without it "
                             f"({_p(p)})")
        standard = scores("standard_tied")
        gap = math.nan  # the gap to standard_tied, where one is shown
        if not standard.empty:
            difference, p = standard.mean() - unfolded.mean(), welch_p(standard, unfolded)
            gap = difference if p < level else math.nan
            if p < level:
                facts.append(f"{'standard_tied' if difference > 0 else 'unfolded_tied'} ahead by {abs(difference):.3f} "
                             f"({_p(p)})")
            else:
                facts.append(f"no difference from standard_tied shown ({-difference:+.3f}, {_p(p)})")
        variants = sorted(m for m in group["model"].unique() if m.startswith("unfolded_tied-") and m != NO_ATTENTION)
        if variants:
            # the variant is picked on validation; testing the best of several: Bonferroni over the variants
            best = max(variants, key=lambda m: group.loc[group["model"] == m, "val_accuracy"].mean())
            delta = scores(best).mean() - unfolded.mean()
            raw = welch_p(scores(best), unfolded)
            p = raw if math.isnan(raw) else min(1.0, raw * len(variants))
            helps = delta > 0 and p < level
            share = f", {100 * delta / gap:.0f}% of the gap" if helps and not math.isnan(gap) and gap > 0 else ""
            corrected = f", Bonferroni over {len(variants)}" if len(variants) > 1 else ""
            name, detail = best.split("-", 1)[1], f"{delta:+.3f}{share}; {_p(p)}{corrected}"
            facts.append(f"variant {name} helps ({detail})" if helps
                         else f"no variant helps (best on validation: {name} {detail})")
        head = f"**{dataset}**" + (f" ({', '.join(ceilings)})" if ceilings else "")
        lines.append(f"{head}: " + "; ".join(facts) + ".")
    return lines


def check_markdown(check: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict], study: pd.DataFrame,
                   short: bool = False) -> str:
    """A follow-up check of an archived study (an archive whose provenance has ``check_of``): each
    model at its picked rate beside the study's number, convergence, and the verdicts on the check's
    own seeds; ``short`` keeps the settings and the verdicts only."""
    runs, summary, _, provenance = check
    train = (provenance.get("config") or {}).get("train", {})
    seeds = sorted(int(seed) for seed in runs.loc[runs["lr"].notna(), "seed"].dropna().unique())
    verdicts = " ".join(study_verdicts(runs))
    if short:
        return (f"Check `{provenance.get('study_id')}` (fresh seeds {seeds[0]}-{seeds[-1]}, up to "
                f"{train.get('max_epochs')} epochs): {verdicts}")
    before = {(r.dataset, r.model): r.test_accuracy_mean for r in study.itertuples()}
    cells = []
    for r in summary[summary["lr"].notna()].itertuples():
        cap = "" if pd.isna(r.epochs_at_cap) else f"; {int(r.epochs_at_cap)}/{r.seeds} at the epoch cap"
        was = before.get((r.dataset, r.model))
        grid = [float(v) for v in str(r.lr_grid).split("/") if v]
        top = len(grid) > 1 and r.lr == max(grid)
        cells.append(f"{r.dataset} {r.model} {_fmt(r.test_accuracy_mean)} ± {_fmt(r.test_accuracy_sd)} at lr "
                     f"{_lr_cell(r.lr, r.lr_grid)}{', the top of its grid' if top else ''}{cap}"
                     + ("" if was is None else f", study {_fmt(was)}"))
    head = (f"Follow-up check `{provenance.get('study_id')}` of `{provenance.get('check_of')}`: seeds "
            f"{seeds[0]}-{seeds[-1]}, up to {train.get('max_epochs')} epochs, learning rates "
            + ", ".join(f"{family} {'/'.join(f'{lr:g}' for lr in grid)}" for family, grid in
                        sorted((train.get("learning_rates") or {}).items())
                        if family in set(summary["family"].dropna()))
            + f" ({provenance.get('job_hours', math.nan):.2f} job-hours). ")
    return head + "; ".join(cells) + ". On these seeds: " + verdicts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_study(study_id: str, tables: Path, runs_root: Path, benchmarks: Path, destination: Path,
                  config: dict, check_of: str | None = None) -> dict:
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
                      checkpoint_sha256=checkpoints, **({"check_of": check_of} if check_of else {}))
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
    if "max_epochs" not in runs:  # archives record the epoch cap once, in their config
        cap = provenance.get("config", {}).get("train", {}).get("max_epochs")
        runs["max_epochs"] = [math.nan if cap is None or pd.isna(lr) else float(cap) for lr in runs["lr"]]
    # the archive keeps every run; the summary is recomputed from them, by the current code
    return runs, summarise_accuracy(runs.drop(columns=["selected"])), pd.read_csv(directory / "depth.csv"), provenance
