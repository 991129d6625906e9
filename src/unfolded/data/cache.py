"""One cache for downloads and conversions: locked, written atomically, verified before use.

Location: ``data.cache_dir`` in config, else ``$UNFOLDED_CACHE``, else ``~/.cache/unfolded``.
Every entry ``<cache>/<relative path>`` has a manifest ``<entry>.manifest.json`` with its size and
SHA-256, written after the entry itself; an entry without a valid manifest is treated as absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from ..errors import UserError

__all__ = ["DataUnavailable", "cache_dir", "cached", "check_online", "entry_ok", "sha256"]


class DataUnavailable(UserError, RuntimeError):
    """A dataset or vector file is not in the cache and cannot be fetched here."""


def cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """``data.cache_dir``, else ``$UNFOLDED_CACHE``, else ``~/.cache/unfolded``."""
    from ..downloads import cache_root

    return cache_root(configured)


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _manifest(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def entry_ok(path: Path, full_hash: bool = True) -> bool:
    """Whether ``path`` exists with a manifest whose size (and, for files, hash) matches."""
    manifest = _manifest(path)
    if not path.exists() or not manifest.exists():
        return False
    try:
        record = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if record.get("size") != _size(path):
        return False
    if full_hash and path.is_file() and record.get("sha256") != sha256(path):
        return False
    return True


def cached(path: Path, build: Callable[[Path], None], full_hash: bool = True) -> Path:
    """Return ``path``, building it first with ``build(temporary_path)`` if it is absent or invalid.

    The build runs under a file lock (so two processes never build the same entry at once),
    writes to a temporary sibling that is renamed into place, and is recorded in a manifest.
    """
    if entry_ok(path, full_hash):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=6 * 3600):
        if entry_ok(path, full_hash):  # another process built it while we waited
            return path
        temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
        try:
            build(temporary)
            if path.exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            os.replace(temporary, path)
        finally:
            if temporary.exists():
                shutil.rmtree(temporary) if temporary.is_dir() else temporary.unlink()
        record = {"size": _size(path)}
        if path.is_file():
            record["sha256"] = sha256(path)
        manifest = _manifest(path)
        partial = manifest.with_name(manifest.name + f".partial-{os.getpid()}")
        partial.write_text(json.dumps(record))
        os.replace(partial, manifest)
    return path


def check_online(host: str, what: str, destination: Path, fetch_command: str, timeout: float = 3.0) -> None:
    """Fail within seconds, with the fix, when ``host`` cannot be reached."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("UNFOLDED_OFFLINE") == "1":
        reason = "offline mode is set (HF_HUB_OFFLINE or UNFOLDED_OFFLINE)"
    else:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            return
        except OSError as error:
            reason = f"{host} is unreachable ({error})"
    raise DataUnavailable(
        f"{what} is not in the cache ({destination}) and cannot be downloaded: {reason}. "
        f"On a machine with internet run `{fetch_command}` and copy the cache folder "
        f"(or set UNFOLDED_CACHE / data.cache_dir to a shared location)."
    )


class UnsafeCacheEntry(UserError, RuntimeError):
    """A cache entry holds pickled objects other than tensors and plain containers."""


def load_tensors(path: Path):
    """Load a cache entry written with ``torch.save`` as data only (``weights_only=True``): tensors,
    lists, tuples, dicts, strings and numbers. Anything else is refused, so a shared cache directory
    cannot make a job run code (the manifest beside the entry does not prevent that)."""
    import pickle

    import torch

    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCacheEntry(
            f"cache entry {path} holds objects other than tensors and plain containers, so it was not loaded "
            f"(torch.load with weights_only=True: {str(error).splitlines()[0]}). Delete it (and its "
            f"{_manifest(path).name}) and rerun to rebuild it."
        ) from None
