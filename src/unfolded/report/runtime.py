"""Where and how fast the results were made: time per rule from Snakemake's benchmark files, the speed
targets of ``benchmarks/ratios.py``, and the provenance line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .format import compact_table

__all__ = ["job_timings", "performance_block", "performance_headline", "provenance_block", "runtime_block",
           "runtime_headline"]


def job_timings(benchmarks: list[Path], root: Path) -> pd.DataFrame:
    """One row per benchmarked job: its rule (the first folder below ``root``, or the file's stem), its
    wall seconds, and when it ended and started (the benchmark file's modification time, less its
    seconds)."""
    rows = []
    for path in sorted(Path(p) for p in benchmarks):
        seconds = float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
        parts = path.relative_to(root).parts
        end = path.stat().st_mtime
        rows.append({"rule": parts[0].removesuffix(".tsv"), "seconds": seconds, "start": end - seconds, "end": end})
    return pd.DataFrame(rows, columns=["rule", "seconds", "start", "end"])


def runtime_block(timings: pd.DataFrame) -> str:
    """Time per rule of the run that wrote the benchmark files."""
    if timings.empty:
        return "(no benchmark files yet)"
    table = timings.groupby("rule", sort=True)["seconds"].agg(["count", "sum", "max"]).reset_index()
    table.columns = ["rule", "jobs", "total s", "longest job s"]
    span = timings["end"].max() - timings["start"].min()
    return (f"{table.to_markdown(index=False, floatfmt='.0f')}\n\nJob time summed over the timed rules: "
            f"{timings['seconds'].sum() / 60:.1f} min (one thread per job); from the first job's start to the last "
            f"job's end: {span / 60:.1f} min wall. Measured on the machine that produced the README's numbers.")


def runtime_headline(timings: pd.DataFrame, device: str) -> str:
    """One sentence: how long the run that wrote the benchmark files took, first start to last end."""
    if timings.empty:
        return "(no benchmark files yet)"
    span = timings["end"].max() - timings["start"].min()
    return (f"The default run that made these results took {span / 60:.1f} min wall from its first job's start to its "
            f"last job's end ({len(timings)} timed jobs, {timings['seconds'].sum() / 60:.1f} job-minutes, `{device}`), "
            f"from the rules' benchmark files.")


def performance_block(frame: pd.DataFrame) -> str:
    """The speed targets of ``benchmarks/ratios.py`` (results/benchmarks/ratios.csv)."""
    table = frame[["target", "shape", "ours_ms", "reference_ms", "ratio", "goal", "met"]].copy()
    table["met"] = table["met"].map({True: "yes", False: "**no**"})
    machine = frame["machine"].iloc[0]
    return (table.to_markdown(index=False, floatfmt=".2f") + f"\n\n{machine}; median of {int(frame['repeats'].iloc[0])} "
            "interleaved repeats (`python benchmarks/ratios.py`). Ratio: reference time / ours for the speed-ups, ours / "
            "reference for the layer.")


def performance_headline(frame: pd.DataFrame) -> str:
    """One row per speed target: the worst ratio over its shapes against the goal."""
    rows = []
    for target, group in frame.groupby("target", sort=False):
        at_least = group["goal"].iloc[0].startswith(">=")
        worst = group.loc[group["ratio"].idxmin() if at_least else group["ratio"].idxmax()]
        rows.append({"target": target, "goal": worst["goal"], "worst ratio": f"{worst['ratio']:.2f}",
                     "at": worst["shape"], "met": f"{int(group['met'].sum())} of {len(group)} shapes"})
    return (compact_table(pd.DataFrame(rows)) + f"\n\n{frame['machine'].iloc[0]}, median of "
            f"{int(frame['repeats'].iloc[0])} interleaved repeats (`python benchmarks/ratios.py`).")


def provenance_block(meta: dict) -> str:
    """Which machine, commit and configuration produced the tables (``meta``: the claims' provenance)."""
    commit = meta.get("git_commit") or "unknown"
    dirty = " (with uncommitted changes)" if meta.get("git_dirty") else ""
    versions = meta.get("versions", {})
    return (f"Produced on `{meta.get('device', '?')}` by commit `{commit[:7]}`{dirty} with `config.yaml` "
            f"(the default run; `snakemake --cores all`), Python {versions.get('python', '?')}, torch "
            f"{versions.get('torch', '?')}; per-stage provenance sits beside every table (`*.provenance.json`).")
