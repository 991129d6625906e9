"""The study archive (results/archive/<study-id>/): a finished study's result tables with provenance,
and loading them back for figures and documents without training."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from pathlib import Path

__all__ = ["ARCHIVE_TABLES", "archive_study", "load_archive"]

#: result tables an archived study keeps (results/archive/<study-id>/)
ARCHIVE_TABLES = ("accuracy.csv", "accuracy_summary.csv", "depth.csv", "timings.csv")


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
    import pandas as pd

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
                              f"{os.cpu_count()} cores, {platform.system()}",
                      cpu_hours=seconds / 3600.0, job_hours=wall / 3600.0, train_jobs=jobs, runs_git_commit=commits,
                      checkpoint_sha256=checkpoints, **({"check_of": check_of} if check_of else {}))
    write_json(destination / "provenance.json", meta)
    return meta


def load_archive(directory: Path) -> tuple:
    """The archived runs, their summary (recomputed with :func:`summarise_accuracy`), the depth table and the
    provenance; a clear error when something is missing."""
    import pandas as pd

    from .errors import UserError
    from .summaries import summarise_accuracy

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


def load_checks(root: Path, study_id: str) -> list[tuple]:
    """Every archive under ``root`` that is a follow-up check of ``study_id`` (its provenance says
    ``check_of``), loaded with :func:`load_archive`, in the order of their folder names."""
    return [load_archive(path.parent) for path in sorted(Path(root).glob("*/provenance.json"))
            if json.loads(path.read_text()).get("check_of") == study_id]
