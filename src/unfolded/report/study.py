"""The study in prose: per-dataset verdicts, convergence, depth extrapolation, follow-up checks and
the study's cost, from the archived tables alone (docs/results.md's study section, the README's study
headline)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..stats import welch_p
from ..summaries import KEYS, did_not_train, relative_depth_stats, select_learning_rates
from ..thresholds import SIGNIFICANCE_LEVEL
from .accuracy import accuracy_markdown
from .format import compact_table, fmt, lr_cell, p_text, range_text

__all__ = [
    "FFN_STEP_BELOW_ONE",
    "NO_ATTENTION",
    "check_markdown",
    "convergence_sentence",
    "depth_sentences",
    "study_block",
    "study_cost",
    "study_headline",
    "study_markdown",
    "study_verdicts",
]

#: Unfolded variants whose feed-forward step size is below 1 (:data:`unfolded.registry.VARIANTS`; a test
#: keeps the two in step). With step size 1 the feed-forward step multiplies the state's distance to
#: its minimiser by ``-lambda`` along each eigenvector of ``Wf`` (docs/theory.md §2.2).
FFN_STEP_BELOW_ONE = ("residual", "ffn_step_half", "learned_steps")
#: The ablation without the attention step: the control for the attention step, not a variant to pick.
NO_ATTENTION = "unfolded_tied-no_attention"


def convergence_sentence(summary: pd.DataFrame, max_epochs: int | None, detail: bool = True) -> str:
    """Which picked runs trained to the epoch cap instead of stopping early, and which learning-rate
    picks sit at an end of their grid (the best rate may lie outside it); ``detail=False`` names
    only the models where both hold."""
    trained = summary[summary["lr"].notna()]
    known = "epochs_at_cap" in trained and trained["epochs_at_cap"].notna().any()
    capped = trained[trained["epochs_at_cap"] > 0] if known else trained.iloc[:0]
    edges = trained[[("at an end" in lr_cell(r.lr, r.lr_grid)) for r in trained.itertuples()]]
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


def depth_sentences(depth: pd.DataFrame, summary: pd.DataFrame, explain: bool = True) -> list[str]:
    """Generated prose on depth extrapolation: one layer past the trained depth, and at the deepest depth;
    ``explain``: with the derived reading of the drop at L+1 (docs/results.md) or a pointer to it (README)."""
    stats = relative_depth_stats(depth)
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
            f"encoders keep {range_text(standard['next'])} of their accuracy at L.")
    if not one.empty:
        under = int((one["accuracy_at_L+1"] < one["dataset"].map(chance)).sum())
        text += (f" Unfolded encoders with feed-forward step size 1 ({', '.join(sorted(one['model'].unique()))}) keep "
                 f"{range_text(one['next'])}, fall below the majority class in {under} of {len(one)} (dataset, model) pairs, "
                 f"and are back at {range_text(one['after_next'])} at L+2")
        text += ": a drop at L+1 and a recovery at L+2." if (one["after_next"] > one["next"]).all() else "."
    if not small.empty:
        text += (f" With a feed-forward step size that starts below 1 ({', '.join(sorted(small['model'].unique()))}; "
                 f"learned_steps then learns its own) they keep {range_text(small['next'])} at L+1.")
    if not one.empty and not explain:
        text += " Why: docs/results.md."
    elif not one.empty:
        text += (" `derived` With step size 1 the feed-forward step multiplies the state's distance to its minimiser "
                 "by `-lambda` along each eigenvector of `Wf`, so it changes sign wherever `lambda > 0`; a step size "
                 "below `1 / (1 + s)` changes no sign (docs/theory.md §2.2). `hypothesis` This sign change, through "
                 "the ReLU and the attention step, is what makes the accuracy drop and recover.")
    lines.append(text)
    shrink = int((unfolded["update_at_max"] < unfolded["update_at_L"]).sum())
    lower = int((unfolded["energy_at_max"] < unfolded["energy_at_L"]).sum())
    lines.append(
        f"Run at {int(stats['max_depth'].max())} layers instead of {int(stats['trained_depth'].min())}, standard "
        f"encoders keep {range_text(standard['kept'])} of their accuracy, unfolded encoders {range_text(unfolded['kept'])}. "
        f"The relative update of the unfolded encoders is smaller at 4L than at L in {shrink} of {len(unfolded)} pairs "
        f"({range_text(unfolded['update_at_max'], percent=False)} at 4L), and their mean energy is lower at 4L in {lower} of "
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
        stats = relative_depth_stats(depth)
        table = stats.assign(**{column: stats[column].map(lambda v: fmt(v, 3)) for column in stats.columns
                                if column.startswith(("accuracy", "update", "energy"))})
        lines.append(table.to_markdown(index=False))
    return "\n".join(lines) + "\n"


def study_verdicts(runs: pd.DataFrame, level: float = SIGNIFICANCE_LEVEL) -> list[str]:
    """One generated sentence per dataset: is ``unfolded_tied`` above ``bag_of_embeddings`` (pooled
    token identity), how far is it from ``standard_tied``, and does any unfolded variant help, each
    with the difference of means and Welch's p over seeds at the picked learning rates; only the
    best-variant test is corrected (Bonferroni over the variants it was picked from)."""
    runs = select_learning_rates(runs.drop(columns=["selected"], errors="ignore"))
    picked = runs[runs["selected"] & ~did_not_train(runs)]  # runs that did not train are counted in the tables, not averaged
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
            facts.append(f"unfolded_tied {where} bag_of_embeddings ({diff:+.3f}, {p_text(p)})")
        ablation = scores(NO_ATTENTION)
        if not ablation.empty:
            diff, p = unfolded.mean() - ablation.mean(), welch_p(unfolded, ablation)
            if p < level and diff > 0:
                facts.append(f"the attention step helps: {diff:+.3f} over the same model without it ({p_text(p)})")
            elif p < level:
                facts.append(f"the attention step hurts: the same model without it is ahead by {-diff:.3f} ({p_text(p)})")
            else:
                facts.append(f"the attention step is not shown to help: {diff:+.3f} against the same model without it "
                             f"({p_text(p)})")
        standard = scores("standard_tied")
        gap = math.nan  # the gap to standard_tied, where one is shown
        if not standard.empty:
            difference, p = standard.mean() - unfolded.mean(), welch_p(standard, unfolded)
            gap = difference if p < level else math.nan
            if p < level:
                facts.append(f"{'standard_tied' if difference > 0 else 'unfolded_tied'} ahead by {abs(difference):.3f} "
                             f"({p_text(p)})")
            else:
                facts.append(f"no difference from standard_tied shown ({-difference:+.3f}, {p_text(p)})")
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
            name, detail = best.split("-", 1)[1], f"{delta:+.3f}{share}; {p_text(p)}{corrected}"
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
        cells.append(f"{r.dataset} {r.model} {fmt(r.test_accuracy_mean)} ± {fmt(r.test_accuracy_sd)} at lr "
                     f"{lr_cell(r.lr, r.lr_grid)}{', the top of its grid' if top else ''}{cap}"
                     + ("" if was is None else f", study {fmt(was)}"))
    head = (f"Follow-up check `{provenance.get('study_id')}` of `{provenance.get('check_of')}`: seeds "
            f"{seeds[0]}-{seeds[-1]}, up to {train.get('max_epochs')} epochs, learning rates "
            + ", ".join(f"{family} {'/'.join(f'{lr:g}' for lr in grid)}" for family, grid in
                        sorted((train.get("learning_rates") or {}).items())
                        if family in set(summary["family"].dropna()))
            + f" ({provenance.get('job_hours', math.nan):.2f} job-hours). ")
    return head + "; ".join(cells) + ". On these seeds: " + verdicts


@dataclass(frozen=True)
class ArchivedStudy:
    """An archived study as the documents quote it: its runs, summary, depth table and provenance
    (:func:`unfolded.archive.load_archive`), its follow-up checks, and the job count of the full grid
    (``config/study.yaml``), which the cost sentence prices at the archive's measured time per job."""

    study_id: str
    runs: pd.DataFrame
    summary: pd.DataFrame
    depth: pd.DataFrame
    provenance: dict
    checks: tuple = ()
    full_grid_jobs: int = 0
    #: the archive's optional tables (:func:`unfolded.archive.load_extras`): per-item predictions, token spread
    extras: dict = field(default_factory=dict)
    #: the optional tables of each follow-up check, in the order of ``checks``
    check_extras: tuple = ()

    def depth_checks(self) -> list[tuple]:
        """The follow-up checks that measured the depth mechanism (a depth sweep or learned step sizes)."""
        extras = self.check_extras or ({},) * len(self.checks)
        return [(check, extra) for check, extra in zip(self.checks, extras, strict=True)
                if "depth_sweep" in extra or "step_sizes" in extra]

    @property
    def on_trial(self) -> bool:
        """Whether the study holds per-item predictions: attention on trial, with paired verdicts."""
        return "predictions" in self.extras

    def verdicts(self) -> pd.DataFrame:
        from ..verdicts import attention_verdicts

        return attention_verdicts(self.runs, self.extras.get("predictions"))

    def controls(self) -> pd.DataFrame:
        from ..verdicts import control_checks

        return control_checks(self.runs)

    def spread(self) -> pd.DataFrame | None:
        """The token spread after the last layer of the picked runs (:func:`report.trial.spread_table`), if archived."""
        if "token_spread" not in self.extras:
            return None
        from .trial import spread_table

        return spread_table(self.extras["token_spread"],
                            select_learning_rates(self.runs.drop(columns=["selected"], errors="ignore")))


def study_cost(study: ArchivedStudy, short: bool = False) -> str:
    """The full grid's job count (as a dry run of config/study.yaml lists it) and its cost at the
    archived study's measured wall time per train job."""
    provenance, full = study.provenance, study.full_grid_jobs
    hours = provenance.get("job_hours", provenance["cpu_hours"])
    per_job = hours * 3600.0 / max(1, provenance.get("train_jobs") or provenance["runs"])
    if short:
        return (f"Full grid: {full} train jobs (`snakemake -n --configfile config/study.yaml`), about "
                f"{full * per_job / 3600:.1f} core-hours at the archived {per_job:.0f} s per job.")
    return (f"The full grid (`snakemake -n --configfile config/study.yaml`) is {full} train jobs; at the archived "
            f"study's measured {per_job:.0f} s of wall time per job (one core each), about {full * per_job / 3600:.1f} "
            f"core-hours (`derived`: untied encoders do the same arithmetic per layer as tied ones; on SLURM the jobs go "
            f"16 per submission).")


def study_checks(study: ArchivedStudy, short: bool = False) -> list[str]:
    """Generated paragraphs for every archived follow-up check of the study."""
    return [check_markdown(check, study.summary, short=short) for check in study.checks]


def study_block(study: ArchivedStudy, superseded_by: str | None = None) -> str:
    """The archived study: generated prose, the accuracy tables and the depth-extrapolation summary;
    a study with per-item predictions gets the attention trial (:func:`trial_block`)."""
    if study.on_trial:
        return trial_block(study)
    dirty = ""
    if study.provenance.get("git_dirty") is not False:
        dirty = ("**Dirty archive**: written from a working tree with uncommitted changes (`git_dirty: "
                 f"{str(study.provenance.get('git_dirty')).lower()}` in its provenance), so commit "
                 f"`{str(study.provenance.get('git_commit', '?'))[:7]}` is not exactly the code that made it.\n\n")
    if superseded_by:
        label = (f"**Superseded** by study `{superseded_by}` (above): its tasks could not show whether attention does "
                 f"work, its tests were unpaired and mostly uncorrected, and its follow-up checks reused seeds. "
                 f"Recomputed by the current code (learning-rate ties on exact counts, runs that did not train apart).\n\n")
        return label + dirty + _plain_block(study, cost=False)
    return dirty + _plain_block(study)


def _plain_block(study: ArchivedStudy, cost: bool = True) -> str:
    """``cost``: with the price of the current grid at this study's time per job (not for a superseded study,
    whose grid is not the current one)."""
    checks = "".join(f"\n\n{paragraph}" for paragraph in study_checks(study))
    return (study_markdown(study.runs, study.summary, study.depth, study.provenance).strip() + checks + "\n\n"
            + (study_cost(study) + "\n\n" if cost else "") + "<details><summary>Every model of the study</summary>\n\n"
            + accuracy_markdown(study.summary).strip() + "\n\n</details>")


def study_headline(study: ArchivedStudy) -> str:
    """Per dataset of the archived study: each family's test accuracy (mean +- sd over seeds) beside the
    baselines and the best unfolded variant, then the verdicts, convergence, checks and cost; a study
    with per-item predictions gets the attention trial's verdict table (:func:`trial_headline`)."""
    if study.on_trial:
        return trial_headline(study)
    runs, summary, depth, provenance = study.runs, study.summary, study.depth, study.provenance
    cell = lambda r: (f"{r['test_accuracy_mean']:.3f} ± {r['test_accuracy_sd']:.3f}" if r["seeds"] > 1  # noqa: E731
                      else f"{r['test_accuracy_mean']:.3f}")
    rows = []
    for dataset, group in summary.groupby("dataset", sort=True):
        by = {r["model"]: r for _, r in group.iterrows()}
        variants = group[group["model"].str.startswith("unfolded_tied-") & (group["model"] != NO_ATTENTION)]
        best = variants.loc[variants["val_accuracy_mean"].idxmax()] if not variants.empty else None  # picked on validation
        rows.append({
            "dataset": dataset,
            **{model: cell(by[model]) if model in by else "" for model in
               ("unfolded_tied", "standard_tied", "bag_of_embeddings", "linear_probe")},
            "unfolded variant (best val.)": "" if best is None else f"{best['model'].split('-', 1)[1]} {cell(best)}",
        })
    seeds = int(summary["seeds"].max())
    commits = provenance.get("runs_git_commit") or [provenance.get("git_commit", "?")]
    commits = commits if isinstance(commits, list) else [commits]
    note = (f"Mean ± sd over {seeds} seeds at the learning rate picked per (dataset, model) on validation; study "
            f"`{study.study_id}` ({provenance['runs']} runs, commit "
            f"{', '.join(f'`{str(c)[:7]}`' for c in commits)}). Welch's t-test over seeds, only the best-variant test "
            f"corrected:")
    verdicts = "\n".join(f"- {line}" for line in study_verdicts(runs))
    cap = (provenance.get("config") or {}).get("train", {}).get("max_epochs")
    checks = "".join(f"\n\n{paragraph}" for paragraph in study_checks(study, short=True))
    extrapolation = "".join(f"\n\n{sentence}" for sentence in depth_sentences(depth, summary, explain=False)[:1])
    return (f"{compact_table(pd.DataFrame(rows))}\n\n{note}\n\n{verdicts}\n\n"
            f"{convergence_sentence(summary, cap, detail=False)}{checks}{extrapolation}\n\n"
            f"{study_cost(study, short=True)}")


def _trial_provenance(study: ArchivedStudy, short: bool = False) -> str:
    provenance = study.provenance
    seeds = sorted(int(seed) for seed in study.runs.loc[study.runs["lr"].notna(), "seed"].unique())
    commits = provenance.get("runs_git_commit") or [provenance.get("git_commit", "?")]
    picks = "learning rates picked on validation by a selection run on other seeds (`config/study-picks.yaml`)" \
        if (provenance.get("config") or {}).get("train", {}).get("learning_rate_picks") else \
        "learning rates picked on validation over the same seeds"
    own = (provenance.get("config") or {}).get("data", {}).get("split_seed", 0) is None
    splits = ", each with its own train/validation split" if own else ""
    reported = int(study.runs["lr"].notna().sum())
    if short:
        return (f"Study `{study.study_id}`: seeds {seeds[0]}-{seeds[-1]}{splits}, rates picked on validation on other "
                f"seeds; {provenance.get('job_hours', math.nan):.2f} job-hours.")
    return (f"Study `{study.study_id}`: {reported} reported train jobs, seeds {seeds[0]}-{seeds[-1]} "
            f"({len(seeds)} per model{splits}), {picks}; {provenance.get('train_jobs')} train jobs and "
            f"{provenance.get('job_hours', math.nan):.2f} job-hours in all on {provenance.get('machine')}, commits "
            f"{', '.join(f'`{str(c)[:7]}`' for c in commits)}.")


def trial_block(study: ArchivedStudy) -> str:
    """docs/results.md: attention on trial in full: provenance, the rule, the verdict table, the controls,
    the token spread of the trained models, convergence, depth extrapolation and every model's accuracy."""
    from .trial import controls_sentence, rule_text, sensitivity_sentence, spread_sentence, verdict_table

    verdicts = study.verdicts()
    lines = [_trial_provenance(study), "", rule_text(), "",
             "The verdict's test is over seeds: for each seed, the test accuracy with attention minus that of the "
             "control trained on the same seed (hence the same train/validation split); an exact sign-flip test "
             "on the summed difference, enumerating all 2^n sign patterns of the n seed pairs; Holm over every row "
             "below. The item-level sign-flip test (per test item, the share of seeds that answered it; 20,000 "
             "draws) is a secondary column: it conditions on the trained seeds, and on a true null with "
             "seed-to-seed variance it rejects far above its level. Runs that did not train (best validation "
             "accuracy below the majority class + 0.05 in exact counts while most of their siblings are not) are "
             "counted apart (n.t.); every verdict is also computed with them kept. `*`: a reference, not a ceiling.",
             "",
             verdict_table(verdicts), "", sensitivity_sentence(verdicts), ""]
    controls = controls_sentence(study.controls(), short=True)
    if controls:
        lines += [controls, ""]
    table = study.spread()
    if table is not None:
        lines += ["`derived` " + spread_sentence(table), "",
                  table.assign(**{c: table[c].map(lambda v: f"{v:.3g}") for c in ("median", "min", "max")})
                  .to_markdown(index=False), ""]
    cap = (study.provenance.get("config") or {}).get("train", {}).get("max_epochs")
    convergence = convergence_sentence(study.summary, cap)
    if convergence:
        lines += [convergence, ""]
    if "selection_summary" in study.extras:
        from .trial import selection_sentence

        lines += [selection_sentence(study.extras["selection_summary"]), ""]
    if "trained_energies" in study.extras:
        from ..summaries import trained_energy_table
        from .trial import trained_energy_sentence

        table = trained_energy_table(study.extras["trained_energies"], study.runs)
        lines += ["`derived` " + trained_energy_sentence(table), "",
                  table.drop(columns=["samples"]).assign(**{c: table[c].map(lambda v: f"{v:.3f}") for c in
                                  ("non_increasing", "non_increasing_min", "strict", "active")})
                  .to_markdown(index=False), "",
                  f"Shares over (test sequence, layer) steps on {int(table['samples'].max())} test sequences per run "
                  "(Figure 6's sequences), mean over the seeds that trained and the lowest of them; a step counts as "
                  "rising above a relative tolerance of 1e-9. The first layer's input has negative entries, so its "
                  "ReLU indicator is infinite before the feed-forward sub-step: that step counts as non-increasing "
                  "but not strict.", ""]
    if "depth_sweep" in study.extras:
        from ..summaries import sweep_criterion
        from .trial import depth_sweep_sentence

        criterion = sweep_criterion(study.extras["depth_sweep"])
        lines += [depth_sweep_sentence(criterion), "",
                  criterion.assign(**{c: criterion[c].map(lambda v: f"{v:.3f}") for c in criterion.columns
                                      if c.startswith(("keep", "worst", "accuracy", "threshold"))})
                  .to_markdown(index=False), ""]
    for check, extra in study.depth_checks():
        from .trial import depth_check_lines

        lines += ["`derived` " + "\n\n".join(depth_check_lines(check, extra)), ""]
        if "step_sizes" in extra:
            steps = extra["step_sizes"].groupby(["dataset", "layer"])[["alpha_attention", "alpha_ffn"]].agg(
                ["median", "min", "max"])
            steps.columns = [f"{name} {stat}" for name, stat in steps.columns]
            lines += [steps.reset_index().to_markdown(index=False, floatfmt=".3f"), ""]
    if not study.depth.empty:
        lines += [sentence + "\n" for sentence in depth_sentences(study.depth, study.summary)]
    lines += ["<details><summary>Every model of the study</summary>", "", accuracy_markdown(study.summary).strip(), "",
              "</details>"]
    return "\n".join(lines).strip()


def trial_headline(study: ArchivedStudy) -> str:
    """The README: the verdict table and one sentence each on the protocol, the controls, the token spread
    and the cost (the trained energies step by step are docs/results.md's, :func:`study_block`)."""
    from .trial import controls_sentence, sensitivity_sentence, spread_sentence, verdict_table

    verdicts = study.verdicts()
    lines = [verdict_table(verdicts, compact=True), "",
             _trial_provenance(study, short=True) + " Exact paired sign-flip test over seeds (a seed's two runs "
             f"share its split), Holm over the {len(verdicts)} rows; `*`: a bag-of-words reference; n.t.: did not train, "
             f"counted apart. {sensitivity_sentence(verdicts, short=True)} Rule and details: docs/results.md."]
    controls = controls_sentence(study.controls(), short=True)
    if controls:
        lines += ["", controls]
    table = study.spread()
    if table is not None:
        lines += ["", "`derived` " + spread_sentence(table, short=True)]
    return "\n".join(lines)
