"""The README's numbers, generated from the result tables (``python -m unfolded readme``, ``make readme``).

Each block sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers, in the README (the
headline blocks) or in ``docs/results.md`` and ``docs/performance.md`` (the full tables), and is rewritten
from the tables under ``results/``; no number in those blocks is typed by hand. A block whose
table is missing is left as it is and reported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

__all__ = ["BLOCKS", "render_blocks", "replace_block", "update_readme"]


def _pct(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _row(claims: pd.DataFrame, claim: str) -> pd.Series:
    rows = claims[claims["claim"] == claim]
    if rows.empty:
        raise KeyError(f"claims table has no row {claim!r}")
    return rows.iloc[0]


def _of(row: pd.Series, what: str = "violations", total: str = "trials") -> str:
    return f"{int(row[what]):,} of {int(row[total]):,}"


def claims_table(tables: Path) -> str:
    return claims_markdown(pd.read_csv(tables / "claims.csv"))


def claims_markdown(frame: pd.DataFrame) -> str:
    """The claims table as Markdown (the README block and results/tables/claims.md)."""
    columns = ["claim", "kind", "source", "conditions", "trials", "violations", "max_increase", "verdict"]
    table = frame[columns].copy()
    table["max_increase"] = table["max_increase"].map(lambda v: f"{v:.3g}")
    table["conditions"] = table["conditions"].str.replace("|", r"\|", regex=False)
    return table.to_markdown(index=False)


def claims_prose(tables: Path) -> str:
    """One sentence per topic, each quoting the claims table and tagged with its source."""
    c = pd.read_csv(tables / "claims.csv")
    r = lambda claim: _row(c, claim)  # noqa: E731
    theorems = c[c["kind"].isin(["identity", "theorem"])]
    failing = theorems[theorems["violations"] > 0]["claim"].tolist()
    counter = c[c["kind"] == "counterexample"]
    explicit_ok = counter[counter["explicit_violations"] == counter["explicit_trials"]]["claim"].tolist()
    lines = [
        f"- Identities and theorems: {len(theorems) - len(failing)} of {len(theorems)} show no violation"
        + (f"; failing: {', '.join(failing)}." if failing else ".")
        + f" Every counter-example's explicit instance raises its energy in {len(explicit_ok)} of {len(counter)} rows.",
        f"- `derived` The attention step with the key bias never raised the pairwise energy: "
        f"{_of(r('attention_descent'))} steps rose, for step sizes up to 2 (half of them at exactly 2), and the "
        f"kernel bound behind that range failed in {_of(r('attention_kernel_bound'))} sequences. Without the key bias "
        f"(`attention_without_key_bias`) the random search over tokens of unequal norm found rises in "
        f"{_of(r('attention_without_key_bias'), 'search_violations', 'search_trials')}; above the bound "
        f"(`attention_large_step`) in {_of(r('attention_large_step'), 'search_violations', 'search_trials')}.",
        f"- `code` The authors' forward pass (`W^T W` in the softmax, `W W^T` in the energy, no key bias) raised "
        f"their attention energy in {_of(r('attention_authors_variant'))} random instances; our step on the "
        f"authors' regularised energy rose in {_of(r('attention_with_regulariser'))}.",
        f"- `derived` Feed-forward, ReLU-proximal and layer-norm-projection steps descended in every trial under "
        f"their step-size conditions ({_of(r('ffn_descent'))}, {_of(r('relu_prox_descent'))}, "
        f"{_of(r('layernorm_descent'))} rose). Outside them, the random searches found rises in "
        f"{_of(r('ffn_large_step'), 'search_violations', 'search_trials')} (feed-forward step above 2/L), "
        f"{_of(r('relu_infeasible_start'), 'search_violations', 'search_trials')} (ReLU from a start with "
        f"negative entries) and {_of(r('layernorm_large_step'), 'search_violations', 'search_trials')} "
        f"(layer norm with 1/L < alpha < 2/L).",
        f"- `derived` Alternating steps on two quadratics (Figures 2-3) each descend their own term "
        f"({_of(r('alternating_component_descent'))} rose) but not the sum ({_of(r('alternating_total_energy'))} rose).",
    ]
    exact, exact_real = r("full_layer_exact"), r("full_layer_exact_realistic")
    authors, authors_real = r("full_layer_authors"), r("full_layer_authors_realistic")
    lines.append(
        f"- `hypothesis` The consistent full layer (key bias, feed-forward step with |Wf| <= 0.95, ReLU, energy without "
        f"the regulariser) rose in {_of(exact)} (sample, layer) steps from non-negative inputs, "
        f"{int(exact['active_trials']):,} of which start from a non-collapsed state, and in {_of(exact_real)} from "
        f"Gaussian inputs with negative entries ({int(exact_real['active_trials']):,} active). `code` The authors' "
        f"layer rose in {_of(authors)} ({int(authors['active_violations'])} of {int(authors['active_trials'])} active "
        f"steps) and in {_of(authors_real)} from Gaussian inputs.")
    return "\n".join(lines)


SUMMARY_ORDER = {"authors": 0, "exact": 1, "exact_active": 2}


def energy_block(tables: Path) -> str:
    """Headline table of the energy curves plus generated sentences on collapse and training."""
    s = pd.read_csv(tables / "energy_summary.csv")
    curves = s[s["variant"].isin(SUMMARY_ORDER)].copy()
    curves["order"] = curves["variant"].map(SUMMARY_ORDER)
    curves = curves.sort_values(["dataset", "order", "state", "relu"], ascending=[True, True, False, True])
    names = {"authors": "authors'", "exact": "exact", "exact_active": "exact, active regime"}
    table = pd.DataFrame({
        "dataset": curves["dataset"],
        "model": curves["variant"].map(names),
        "curve": curves["state"] + curves["relu"].map({True: ", ReLU", False: ", no ReLU"}),
        "non-increasing": curves["monotone_fraction"].map(_pct),
        "active steps": curves["active_fraction"].map(_pct),
        "non-incr. (active)": curves["monotone_fraction_active"].map(_pct),
        "falling (active)": curves["strict_fraction_active"].map(_pct),
        "collapse layer": curves["collapse_layer"].map(lambda v: "never" if pd.isna(v) else str(int(v))),
        "attention share (active)": curves["attention_share_active"].map(_pct),
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
                f"{collapse} (median relative token spread below 1e-3); only {_pct(e['active_fraction'])} of its steps start "
                f"from a non-collapsed state, so its {_pct(e['monotone_fraction'])} non-increasing steps are mostly "
                f"feed-forward steps on one point.")
        authors = group[(group["variant"] == "authors") & (group["state"] == "untrained") & group["relu"]]
        if not authors.empty:
            p = authors.iloc[0]
            where = ("so its rises come in collapsed states" if p["monotone_fraction_active"] == 1.0
                     else "so some rises come from non-collapsed states")
            sentences.append(
                f"- `code` {dataset}: the authors' model (untrained, ReLU) keeps {_pct(p['monotone_fraction'])} of its steps "
                f"non-increasing, but {_pct(p['monotone_fraction_active'])} of its active steps, {where}.")
        if not active.empty:
            a = active.iloc[0]
            sentences.append(
                f"- `derived` {dataset}, active regime (alpha_attention = {a['alpha_attention']:g}, W scale "
                f"{a['w_scale']:g}): {_pct(a['active_fraction'])} of steps active, of which "
                f"{_pct(a['monotone_fraction_active'])} non-increasing and {_pct(a['strict_fraction_active'])} "
                f"strictly falling; the attention sub-step gives {_pct(a['attention_share_active'])} of the decrease "
                f"over active steps.")
        for _, t in group[group["state"] == "trained"].iterrows():
            near_chance = t["test_accuracy"] <= t["chance_accuracy"] + 0.02
            verdict = []
            if near_chance:
                verdict.append("no better than the majority class")
            if max(t["change_W"], t["change_Wf"], t["change_B"]) < 0.01:
                verdict.append("its weights barely moved (every relative change below 1%)")
            elif t["change_W"] < 0.01:
                verdict.append("the attention weight W barely moved (below 1%)")
            sentences.append(
                f"- `derived` {dataset}, {names[t['variant']]} model after the authors' recipe: test accuracy "
                f"{t['test_accuracy']:.3f} against {t['chance_accuracy']:.3f} for the majority class; relative weight change "
                f"W {t['change_W']:.2g}, Wf {t['change_Wf']:.2g}, B {t['change_B']:.2g}"
                + (f" ({'; '.join(verdict)})." if verdict else "."))
    return table.to_markdown(index=False) + "\n\n" + "\n".join(sentences)


def regime_block(tables: Path) -> str:
    text = (tables / "regime_search.md").read_text()
    rule = next(line for line in text.splitlines() if line.startswith("Rule"))
    pick = next(line for line in text.splitlines() if line.startswith(("Pick", "No setting")))
    frame = pd.read_csv(tables / "regime_search.csv")
    meta = json.loads((tables / "regime_search.provenance.json").read_text())["pick"]
    if meta["alpha_attention"] is None:
        return f"{rule}\n\n{pick}"
    chosen = frame[(frame["alpha_attention"] == meta["alpha_attention"]) & (frame["w_scale"] == meta["w_scale"])]
    table = (chosen.groupby(["phase", "dataset", "relu"], sort=False)
             .agg(seeds=("seed", "nunique"), active_min=("active_fraction", "min"),
                  falling_active_min=("strict_fraction_active", "min"),
                  non_increasing_active_min=("monotone_fraction_active", "min"))
             .reset_index())
    for column in ("active_min", "falling_active_min", "non_increasing_active_min"):
        table[column] = table[column].map(_pct)
    return f"{rule}\n\n{pick}\n\n{table.to_markdown(index=False)}"


def accuracy_block(tables: Path) -> str:
    """The default run's accuracy table: every (dataset, model) at its learning rate, beside the baselines
    and the order task's ceilings (from accuracy_summary.csv)."""
    from .study import accuracy_markdown

    return accuracy_markdown(pd.read_csv(tables / "accuracy_summary.csv")).strip()


def default_study_id() -> str:
    from .config import schema

    return schema()["properties"]["study"]["properties"]["id"]["default"]


def study_cost(tables: Path, short: bool = False) -> str:
    """The full grid's job count (from config/study.yaml, as a dry run lists it) and its cost at the
    archived study's measured wall time per train job."""
    from .config import load_config
    from .study import load_archive, run_specs

    _, _, _, provenance = load_archive(tables.parent / "archive" / default_study_id())
    full = len(run_specs(load_config(str(tables.parent.parent / "config" / "study.yaml"))))
    hours = provenance.get("job_hours", provenance["cpu_hours"])
    per_job = hours * 3600.0 / max(1, provenance.get("train_jobs") or provenance["runs"])
    if short:
        return (f"Full grid: {full} train jobs (`snakemake -n --configfile config/study.yaml`), about "
                f"{full * per_job / 3600:.1f} core-hours at the archived {per_job:.0f} s per job.")
    return (f"The full grid (`snakemake -n --configfile config/study.yaml`) is {full} train jobs; at the archived "
            f"study's measured {per_job:.0f} s of wall time per job (one core each), about {full * per_job / 3600:.1f} "
            f"core-hours (`derived`: untied encoders do the same arithmetic per layer as tied ones; on SLURM the jobs go "
            f"16 per submission).")


def study_checks(tables: Path, short: bool = False) -> list[str]:
    """Generated paragraphs for every archived follow-up check of the README's study."""
    from .study import check_markdown, load_archive

    root = tables.parent / "archive"
    _, study, _, _ = load_archive(root / default_study_id())
    paragraphs = []
    for path in sorted(root.glob("*/provenance.json")):
        if json.loads(path.read_text()).get("check_of") == default_study_id():
            paragraphs.append(check_markdown(load_archive(path.parent), study, short=short))
    return paragraphs


def study_block(tables: Path) -> str:
    """The archived study (results/archive/<study.id>/): generated prose, the accuracy tables and the
    depth-extrapolation summary, from the archive alone."""
    from .study import accuracy_markdown, load_archive, study_markdown

    runs, summary, depth, provenance = load_archive(tables.parent / "archive" / default_study_id())
    checks = "".join(f"\n\n{paragraph}" for paragraph in study_checks(tables))
    return (study_markdown(runs, summary, depth, provenance).strip() + checks + "\n\n" + study_cost(tables)
            + "\n\n<details><summary>Every model of the study</summary>\n\n" + accuracy_markdown(summary).strip()
            + "\n\n</details>")


def figures_block(tables: Path) -> str:
    """Sentences about Figures 1, 3 and 4, computed from their tables (results/data)."""
    from .figures import alternating_trend

    data = tables.parent / "data"
    lines = []
    alternating = pd.read_parquet(data / "alternating.parquet")
    trace = alternating[alternating["kind"] == "trace"].sort_values("step")
    exact = float(alternating.loc[alternating["kind"] == "exact_minimum", "total"].iloc[0])
    trend = alternating_trend(trace, exact)
    lines.append(
        f"- `code` Figure 3 (the authors' setting): {trend['rises']} of {trend['steps']} alternating steps raise the total "
        f"energy; its lowest value comes at step {trend['argmin_step']} of {trend['last_step']}; over the last 40 steps it "
        f"is {'still falling' if trend['still_falling'] else 'not falling'}"
        + (f", with a rise/fall pattern of period {trend['period']}" if trend["period"] else "")
        + f"; it {'reaches' if trend['reaches_minimum'] else 'does not reach'} the exact minimum {exact:,.2f} "
        f"(smallest gap {trend['min_gap']:.3g} in log units).")
    apollonius = pd.read_parquet(data / "apollonius.parquet")
    parts = []
    for _, g in apollonius.groupby("panel", sort=True):
        parts.append(f"C = {g['C'].iloc[0]:g}: {int(g['rise'].sum()):,} of {len(g):,} grid points, "
                     f"{int((g['rise'] & g['inside']).sum())} inside the region")
    lines.append("- `derived` Figure 1, grid points where one h-step raised f + h: " + "; ".join(parts) + ".")
    kappa = pd.read_parquet(data / "kappa.parquet")
    quadrant = (kappa["x1"] >= 0) & (kappa["x2"] >= 0)
    shares = [f"kappa = {k:g}: {100 * float((kappa.loc[quadrant, 'r'] >= -k).mean()):.1f}%"
              for k in sorted({0.2, 0.4, 0.6, 0.8})]
    lines.append(f"- `derived` Figure 4, share of the quadrant x >= 0 ({int(quadrant.sum()):,} grid points) where the ReLU "
                 f"step keeps a 1 - kappa share of the decrease: {', '.join(shares)}.")
    return "\n".join(lines)


def runtime_block(tables: Path) -> str:
    """Time per rule of the last run, from Snakemake's benchmark files (results/benchmarks)."""
    root = tables.parent / "benchmarks"
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        rule = path.relative_to(root).parts[0].removesuffix(".tsv")
        frame = pd.read_csv(path, sep="\t")
        rows.append({"rule": rule, "seconds": float(frame["s"].iloc[-1])})
    if not rows:
        return "(no benchmark files yet)"
    table = pd.DataFrame(rows).groupby("rule", sort=True)["seconds"].agg(["count", "sum", "max"]).reset_index()
    total = table["sum"].sum()
    table.columns = ["rule", "jobs", "total s", "longest job s"]
    text = table.to_markdown(index=False, floatfmt=".0f")
    wall = last_full_run(tables.parent.parent / ".snakemake" / "log")
    measured = (f" The last complete `snakemake --cores all` ran {wall[0]} jobs in {wall[1] / 60:.1f} min wall "
                f"(from its log in .snakemake/log)." if wall else "")
    return (f"{text}\n\nJob time summed over the timed rules: {total / 60:.1f} min (one thread per job; with "
            f"`--cores 2` two jobs run at a time).{measured} Measured on the machine that produced the README's numbers.")


def last_full_run(logs: Path, min_jobs: int = 40, rule: str = "regime_search") -> tuple[int, float, int | None] | None:
    """(jobs, wall seconds, cores) of the newest Snakemake log that finished all of at least
    ``min_jobs`` jobs, among them ``rule`` (only the default configuration runs the regime search,
    so a study's log is not taken for it): from its first to its last timestamp."""
    import re
    from datetime import datetime

    stamp = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", re.MULTILINE)
    done = re.compile(r"^(\d+) of (\d+) steps \(100%\) done$", re.MULTILINE)
    for log in sorted(logs.glob("*.snakemake.log"), reverse=True) if logs.is_dir() else []:
        text = log.read_text(errors="replace")
        finished = done.search(text)
        times = stamp.findall(text)
        ran_rule = re.search(rf"^(local)?rule {rule}:$", text, re.MULTILINE)
        if finished and ran_rule and int(finished.group(2)) >= min_jobs and len(times) >= 2 and "--dry-run" not in text:
            parse = lambda value: datetime.strptime(" ".join(value.split()), "%a %b %d %H:%M:%S %Y")  # noqa: E731
            cores = re.search(r"^Provided cores: (\d+)$", text, re.MULTILINE)
            return (int(finished.group(2)), (parse(times[-1]) - parse(times[0])).total_seconds(),
                    int(cores.group(1)) if cores else None)
    return None




# ------------------------------------------------------------------------------------------------
# Headline blocks of the README (the full tables live in docs/results.md and docs/performance.md)
# ------------------------------------------------------------------------------------------------


def runtime_headline(tables: Path) -> str:
    """One sentence: how long the last complete default run took, from its Snakemake log."""
    wall = last_full_run(tables.parent.parent / ".snakemake" / "log")
    if wall is None:
        return "(no complete run logged yet in .snakemake/log)"
    jobs, seconds, cores = wall
    machine = json.loads((tables / "claims.provenance.json").read_text()).get("device", "?")
    return (f"The last complete default run here took {seconds / 60:.1f} min wall for {jobs} jobs on "
            f"{cores if cores else '?'} cores (`{machine}`), from its log in `.snakemake/log`.")


def compact_table(frame: pd.DataFrame) -> str:
    """A Markdown pipe table without column padding (the README's headline blocks: GitHub renders it
    the same, and it keeps the README short); numbers right-aligned."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|")

    align = ["---:" if pd.api.types.is_numeric_dtype(frame[column]) else ":--" for column in frame.columns]
    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def claims_headline(tables: Path) -> str:
    """How the claims were checked, then one row per kind of claim: how many, and what the checks found."""
    from .claims import TOLERANCE

    c = pd.read_csv(tables / "claims.csv")
    settings = json.loads((tables / "claims.provenance.json").read_text())["config"]
    intro = (f"{settings['trials']} random float64 instances per claim (seed {settings['seed']}), tolerance "
             f"{TOLERANCE:g} relative (`results/tables/claims.csv`):\n\n")
    rows = []
    for kind, meaning in (("identity", "two expressions agree"), ("theorem", "an energy never rises"),
                          ("counterexample", "outside a theorem's conditions the energy can rise"),
                          ("report", "not a theorem: how often the energy rises")):
        group = c[c["kind"] == kind]
        if group.empty:
            continue
        if kind in ("identity", "theorem"):
            failing = group[group["violations"] > 0]["claim"].tolist()
            found = (f"{len(group) - len(failing)} hold, 0 violations in {int(group['trials'].sum()):,} trials"
                     if not failing else f"{len(failing)} violated: {', '.join(failing)}")
        elif kind == "counterexample":
            shown = int((group["explicit_violations"] == group["explicit_trials"]).sum())
            found = f"explicit instance raises the energy in {shown} of {len(group)}"
        else:
            rising = group[group["violations"] > 0]
            found = f"{len(rising)} of {len(group)} see rises (" + ", ".join(
                f"{r.claim} {int(r.violations):,}/{int(r.trials):,}" for r in rising.itertuples()) + ")"
        rows.append({"kind": kind, "meaning": meaning, "claims": len(group), "found": found})
    return intro + compact_table(pd.DataFrame(rows))


def energy_headline(tables: Path) -> str:
    """Per dataset, the trained curves with ReLU: how many layer steps do not raise the energy, in all
    steps and in active (non-collapsed) ones, and the test accuracy beside the majority class."""
    from .artifacts import read_provenance

    s = pd.read_csv(tables / "energy_summary.csv")
    names = {"authors": "authors'", "exact": "exact", "exact_active": "exact, active regime"}
    sources = sorted((tables.parent / "data").glob("energy_curves_*.parquet"))
    every = [read_provenance(path)["config"]["energy_curves"] for path in sources]
    if not every or any(other != every[0] for other in every):
        raise ValueError(f"energy headline: expected energy curves with one shared setting in {tables.parent / 'data'}")
    settings = every[0]
    intro = (f"The energy after each of {settings['num_layers']} tied layers on {settings['samples']} test sequences, "
             f"after the authors' training recipe (SGD at learning rate {settings['lr']:g}, batch 1, "
             f"{settings['train_steps']} steps). A step is *active* when the tokens have not collapsed onto one "
             f"point:\n\n")
    curves = s[s["variant"].isin(SUMMARY_ORDER) & (s["state"] == "trained") & s["relu"]].copy()
    curves["order"] = curves["variant"].map(SUMMARY_ORDER)
    curves = curves.sort_values(["dataset", "order"])
    table = pd.DataFrame({
        "dataset": curves["dataset"], "model (trained, ReLU)": curves["variant"].map(names),
        "non-increasing steps": curves["monotone_fraction"].map(_pct),
        "active steps": curves["active_fraction"].map(_pct),
        "non-increasing (active)": curves["monotone_fraction_active"].map(_pct),
        "test acc. (majority)": [f"{a:.3f} ({m:.3f})" for a, m in zip(curves["test_accuracy"], curves["chance_accuracy"],
                                                                       strict=True)],
    })
    return intro + compact_table(table)


def study_headline(tables: Path) -> str:
    """Per dataset of the archived study: each family's test accuracy (mean +- sd over seeds) beside the
    baselines and the best unfolded variant."""
    from .study import NO_ATTENTION, convergence_sentence, depth_sentences, load_archive, study_verdicts

    runs, summary, depth, provenance = load_archive(tables.parent / "archive" / default_study_id())
    picked = summary
    cell = lambda r: (f"{r['test_accuracy_mean']:.3f} ± {r['test_accuracy_sd']:.3f}" if r["seeds"] > 1  # noqa: E731
                      else f"{r['test_accuracy_mean']:.3f}")
    rows = []
    for dataset, group in picked.groupby("dataset", sort=True):
        by = {r["model"]: r for _, r in group.iterrows()}
        variants = group[group["model"].str.startswith("unfolded_tied-") & (group["model"] != NO_ATTENTION)]
        best = variants.loc[variants["val_accuracy_mean"].idxmax()] if not variants.empty else None  # picked on validation
        rows.append({
            "dataset": dataset,
            **{model: cell(by[model]) if model in by else "" for model in
               ("unfolded_tied", "standard_tied", "bag_of_embeddings", "linear_probe")},
            "unfolded variant (best val.)": "" if best is None else f"{best['model'].split('-', 1)[1]} {cell(best)}",
        })
    seeds = int(picked["seeds"].max())
    commits = provenance.get("runs_git_commit") or [provenance.get("git_commit", "?")]
    commits = commits if isinstance(commits, list) else [commits]
    note = (f"Mean ± sd over {seeds} seeds at the learning rate picked per (dataset, model) on validation; study "
            f"`{default_study_id()}` ({provenance['runs']} runs, commit "
            f"{', '.join(f'`{str(c)[:7]}`' for c in commits)}). Welch's t-test over seeds, only the best-variant test "
            f"corrected:")
    verdicts = "\n".join(f"- {line}" for line in study_verdicts(runs))
    cap = (provenance.get("config") or {}).get("train", {}).get("max_epochs")
    checks = "".join(f"\n\n{paragraph}" for paragraph in study_checks(tables, short=True))
    extrapolation = "".join(f"\n\n{sentence}" for sentence in depth_sentences(depth, summary)[:1])
    return (f"{compact_table(pd.DataFrame(rows))}\n\n{note}\n\n{verdicts}\n\n"
            f"{convergence_sentence(summary, cap, detail=False)}{checks}{extrapolation}\n\n"
            f"{study_cost(tables, short=True)}")


def performance_block(tables: Path) -> str:
    """The speed targets of ``benchmarks/ratios.py`` (results/benchmarks/ratios.csv)."""
    frame = pd.read_csv(tables.parent / "benchmarks" / "ratios.csv")
    table = frame[["target", "shape", "ours_ms", "reference_ms", "ratio", "goal", "met"]].copy()
    table["met"] = table["met"].map({True: "yes", False: "**no**"})
    machine = frame["machine"].iloc[0]
    return (table.to_markdown(index=False, floatfmt=".2f") + f"\n\n{machine}; median of {int(frame['repeats'].iloc[0])} "
            "interleaved repeats (`python benchmarks/ratios.py`). Ratio: reference time / ours for the speed-ups, ours / "
            "reference for the layer.")


def performance_headline(tables: Path) -> str:
    """One row per speed target: the worst ratio over its shapes against the goal."""
    frame = pd.read_csv(tables.parent / "benchmarks" / "ratios.csv")
    rows = []
    for target, group in frame.groupby("target", sort=False):
        at_least = group["goal"].iloc[0].startswith(">=")
        worst = group.loc[group["ratio"].idxmin() if at_least else group["ratio"].idxmax()]
        rows.append({"target": target, "goal": worst["goal"], "worst ratio": f"{worst['ratio']:.2f}",
                     "at": worst["shape"], "met": f"{int(group['met'].sum())} of {len(group)} shapes"})
    return (compact_table(pd.DataFrame(rows)) + f"\n\n{frame['machine'].iloc[0]}, median of "
            f"{int(frame['repeats'].iloc[0])} interleaved repeats (`python benchmarks/ratios.py`).")


def provenance_block(tables: Path) -> str:
    """Which machine, commit and configuration produced the tables."""
    meta = json.loads((tables / "claims.provenance.json").read_text())
    commit = meta.get("git_commit") or "unknown"
    dirty = " (with uncommitted changes)" if meta.get("git_dirty") else ""
    versions = meta.get("versions", {})
    return (f"Produced on `{meta.get('device', '?')}` by commit `{commit[:7]}`{dirty} with `config.yaml` "
            f"(the default run; `snakemake --cores all`), Python {versions.get('python', '?')}, torch "
            f"{versions.get('torch', '?')}; per-stage provenance sits beside every table (`*.provenance.json`).")


BLOCKS: dict[str, tuple[str, Callable[[Path], str]]] = {
    "claims": ("claims.csv", claims_table),
    "claims-prose": ("claims.csv", claims_prose),
    "energy": ("energy_summary.csv", energy_block),
    "regime": ("regime_search.csv", regime_block),
    "accuracy": ("accuracy_summary.csv", accuracy_block),
    "study": (f"../archive/{default_study_id()}/provenance.json", study_block),
    "figures": ("../data/alternating.parquet", figures_block),
    "runtime": ("../benchmarks", runtime_block),
    "provenance": ("claims.provenance.json", provenance_block),
    "runtime-headline": ("claims.csv", runtime_headline),
    "claims-headline": ("claims.csv", claims_headline),
    "energy-headline": ("energy_summary.csv", energy_headline),
    "study-headline": (f"../archive/{default_study_id()}/provenance.json", study_headline),
    "performance": ("../benchmarks/ratios.csv", performance_block),
    "performance-headline": ("../benchmarks/ratios.csv", performance_headline),
    "paper-estimate": ("../benchmarks/paper_estimate.md",
                       lambda tables: (tables.parent / "benchmarks" / "paper_estimate.md").read_text().strip()),
}


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise KeyError(f"README markers {start} / {end} not found")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def render_blocks(tables: Path) -> tuple[dict[str, str], list[str]]:
    """Rendered bodies of every block whose table exists, and the names of those skipped."""
    bodies, skipped = {}, []
    for name, (table, render) in BLOCKS.items():
        if (tables / table).exists():
            bodies[name] = render(tables)
        else:
            skipped.append(f"{name} ({tables / table} missing)")
    return bodies, skipped


def update_readme(readme: Path | list[Path], tables: Path) -> tuple[list[str], list[str]]:
    """Rewrite the generated blocks of the README and of the docs pages given with it: every block
    whose markers a file holds; returns (updated, skipped) block names."""
    from .artifacts import write_text

    documents = [readme] if isinstance(readme, str | Path) else list(readme)
    bodies, skipped = render_blocks(tables)
    updated = set()
    for document in documents:
        text = Path(document).read_text()
        for name, body in bodies.items():
            if f"<!-- {name}:start -->" in text:
                text = replace_block(text, name, body)
                updated.add(name)
        write_text(document, text)
    return sorted(updated), skipped


# ------------------------------------------------------------------------------------------------
# The HTML report's landing page and in-page tables (rule report_pages)
# ------------------------------------------------------------------------------------------------


def _rst_table(frame: pd.DataFrame) -> str:
    """A reStructuredText grid table (docutils renders it in the report's landing page)."""
    text = frame.astype(str).to_markdown(index=False, tablefmt="grid")
    return text


def landing_rst(tables: Path) -> str:
    """The report's first page: what this is, the claims' verdict counts, the key numbers of
    Figures 5-6 and of the accuracy table, and the commit and config hash they come from."""
    claims = pd.read_csv(tables / "claims.csv")
    provenance = json.loads((tables / "claims.provenance.json").read_text())
    theorems = claims[claims["kind"].isin(["identity", "theorem"])]
    held = int((theorems["violations"] == 0).sum())
    counter = claims[claims["kind"] == "counterexample"]
    shown = int(((counter["explicit_violations"] == counter["explicit_trials"]) & (counter["explicit_trials"] > 0)).sum())
    reports = claims[claims["kind"] == "report"]
    rising = int((reports["violations"] > 0).sum())
    lines = [
        "Replication of *Transformers from an Optimization Perspective* (Yang, Huang, Wipf, NeurIPS 2022):",
        "Transformer layers read as descent steps on an energy.",
        "",
        "Verdicts",
        "--------",
        "",
        f"- **Theorems and identities held: {held} of {len(theorems)}** (each checked on random float64 instances; "
        f"a violation is a rise above a relative tolerance of 1e-10).",
        f"- **Counter-examples found: {shown} of {len(counter)}** (the explicit instance of each raises its energy).",
        f"- **Reports: {len(reports)}**, of which {rising} show energy rises (statements that are not theorems).",
        "",
    ]
    failing = theorems[theorems["violations"] > 0]["claim"].tolist()
    if failing:
        lines += [f"- **FAILING:** {', '.join(failing)}", ""]
    if (tables / "energy_summary.csv").exists():
        summary = pd.read_csv(tables / "energy_summary.csv")
        curves = summary[summary["variant"].isin(SUMMARY_ORDER) & summary["relu"]]
        frame = pd.DataFrame({
            "dataset": curves["dataset"], "model": curves["variant"], "state": curves["state"],
            "non-increasing": curves["monotone_fraction"].map(_pct),
            "active steps": curves["active_fraction"].map(_pct),
            "falling (active)": curves["strict_fraction_active"].map(_pct),
            "test accuracy": curves["test_accuracy"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}"),
        })
        lines += ["Figures 5-6: energy across layers (with ReLU)", "---------------------------------------------", "",
                  _rst_table(frame), ""]
    if (tables / "accuracy_summary.csv").exists():
        summary = pd.read_csv(tables / "accuracy_summary.csv")
        frame = pd.DataFrame({
            "dataset": summary["dataset"], "model": summary["model"],
            "test accuracy (mean ± sd)": [f"{m:.3f} ± {sd:.3f}" if sd == sd else f"{m:.3f}"
                                          for m, sd in zip(summary["test_accuracy_mean"], summary["test_accuracy_sd"],
                                                           strict=True)],
            "seeds": summary["seeds"],
        })
        lines += ["Unfolded vs standard: test accuracy", "-----------------------------------", "", _rst_table(frame), ""]
    lines += [
        "Provenance",
        "----------",
        "",
        f"Commit ``{provenance.get('git_commit', 'unknown')[:12]}``"
        f"{' (uncommitted changes)' if provenance.get('git_dirty') else ''}; claims config hash "
        f"``{provenance.get('config_hash', '?')}``. The full tables are under *Claims*, *Figures 5-6* and *Training*.",
        "",
    ]
    return "\n".join(lines)


def html_table(frame: pd.DataFrame, title: str, note: str = "") -> str:
    """A standalone HTML page with one table, shown inside the report."""
    style = ("body{font-family:sans-serif;font-size:13px;margin:12px}table{border-collapse:collapse}"
             "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f0f0f0}"
             "tr:nth-child(even){background:#fafafa}")
    table = frame.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>"
            f"<body><h3>{title}</h3>{table}<p>{note}</p></body></html>\n")


def write_report_pages(tables: Path, landing: Path) -> list[Path]:
    """The landing page (reStructuredText) and an HTML page per result table; returns the pages written."""
    from .artifacts import write_text

    written = [landing]
    write_text(landing, landing_rst(tables))
    pages = {"claims": ("Claims", "Every claim with its kind, source tag, trials, violations and verdict."),
             "energy_summary": ("Energy curves", "One row per curve; shares of (sample, layer) steps."),
             "accuracy": ("Unfolded vs standard", "One row per (dataset, model) at its learning-rate pick: mean, sd "
                                                  "(ddof = 1) and 95% CI over seeds, baselines and ceilings; every run "
                                                  "is in accuracy.csv.")}
    sources = {"accuracy": "accuracy_summary.csv"}
    for name, (title, note) in pages.items():
        source = tables / sources.get(name, f"{name}.csv")
        if source.exists():
            page = tables / f"{name}.html"
            write_text(page, html_table(pd.read_csv(source), title, note))
            written.append(page)
    return written
