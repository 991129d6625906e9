"""Shared helpers for tests that run the Snakemake workflow in a temporary copy of the repository."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def copy_workflow(destination: Path) -> Path:
    """A copy of the workflow and of the package source; :func:`snakemake` runs it with the copied
    package first on PYTHONPATH, so edits to the copy's modules are what the workflow sees."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml", "environment.yml"):
        shutil.copy(ROOT / name, destination / name)
    for name in ("workflow", "config", "profiles"):
        shutil.copytree(ROOT / name, destination / name, symlinks=False)
    shutil.copytree(ROOT / "src" / "unfolded", destination / "src" / "unfolded", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def workflow_env(workdir: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(workdir) / "src")}


def snakemake(workdir: Path, *args: str, profile: str = "none", timeout: int = 900, cores: str = "2",
              command: tuple[str, ...] = (SNAKEMAKE,)):
    return subprocess.run(
        [*command, "--workflow-profile", profile, "--cores", cores, *args],
        cwd=workdir, capture_output=True, text=True, timeout=timeout, env=workflow_env(workdir),
    )


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a (dry) run."""
    counts = {}
    if "Job stats" not in output:
        return counts
    block = output.split("Job stats:", 1)[1]
    for line in block.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts
