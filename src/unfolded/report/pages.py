"""The HTML report's landing page (reStructuredText) and its in-page tables (rule report_pages)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..summaries import plotted_rows
from .energy import SUMMARY_ORDER
from .format import pct

__all__ = ["html_table", "landing_rst", "write_report_pages"]


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
        summary = plotted_rows(pd.read_csv(tables / "energy_summary.csv"))
        curves = summary[summary["variant"].isin(SUMMARY_ORDER) & summary["relu"]]
        frame = pd.DataFrame({
            "dataset": curves["dataset"], "model": curves["variant"], "state": curves["state"],
            "non-increasing": curves["monotone_fraction"].map(pct),
            "active steps": curves["active_fraction"].map(pct),
            "falling (active)": curves["strict_fraction_active"].map(pct),
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
    from ..artifacts import write_text

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
