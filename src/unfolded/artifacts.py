"""Writing artifacts: atomically, with provenance attached.

Every file is written under a temporary name in its destination folder and renamed into place,
so an interrupted stage never leaves a file that looks complete. Provenance (config hash, seed,
git commit, package versions, device) travels inside the artifact where the format allows it
(parquet schema metadata, PNG text chunks, PDF/SVG metadata) and in a JSON sidecar otherwise.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from .config import config_hash

__all__ = [
    "PROVENANCE_KEY",
    "atomic_path",
    "provenance",
    "read_provenance",
    "save_figure",
    "write_json",
    "write_parquet",
    "write_text",
]

PROVENANCE_KEY = "unfolded.provenance"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@cache
def _git_state() -> dict:
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit or "unknown", "git_dirty": bool(status) if status is not None else None}


@cache
def _versions() -> dict:
    import numpy
    import pandas
    import torch

    from . import __version__

    return {
        "python": platform.python_version(),
        "unfolded": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.machine()}"


def provenance(stage: str, settings: Any, seed: int | None, **extra: Any) -> dict:
    """What produced an artifact: stage, its settings and their hash, seed, code and environment."""
    return {
        "stage": stage,
        "config_hash": config_hash(settings),
        "config": settings,
        "seed": seed,
        **_git_state(),
        "versions": _versions(),
        "device": _device(),
        **extra,
    }


def write_parquet(frame, path: str | Path, meta: dict) -> None:
    """Write a DataFrame to parquet with the provenance in the schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[PROVENANCE_KEY.encode()] = json.dumps(meta, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary)


def read_provenance(path: str | Path) -> dict:
    """The provenance stored in a parquet file written by :func:`write_parquet`."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[PROVENANCE_KEY.encode()])


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def save_figure(figure, paths: list[str | Path], meta: dict, dpi: int = 200) -> None:
    """Save a matplotlib figure to each path (format from the suffix) with provenance metadata.

    Dates are left out of the metadata so the same inputs give byte-identical files.
    """
    summary = json.dumps(meta, sort_keys=True, default=str)
    for path in map(Path, paths):
        fmt = path.suffix.lstrip(".").lower()
        if fmt == "png":
            metadata = {"Title": path.stem, "Description": summary}
        elif fmt == "pdf":
            metadata = {"Title": path.stem, "Subject": summary, "CreationDate": None}
        elif fmt == "svg":
            metadata = {"Title": path.stem, "Description": summary, "Date": None}
        else:
            raise ValueError(f"figure format {fmt!r} of {path}: expected png, pdf or svg")
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format=fmt, dpi=dpi, metadata=metadata, bbox_inches="tight")
