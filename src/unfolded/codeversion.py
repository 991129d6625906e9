"""Content digests of the package code a stage runs: the workflow's rerun key and the checkpoint key.

A stage's digest covers the source files of its entry modules and every package module they import,
directly or inside functions (found by parsing the source, not by importing it, so this module stays
cheap enough for the Snakefile to call at parse time). Only file contents enter the digest: a copied,
moved or re-checked-out clone, or another interpreter running the same code, gives the same digest.

This module is never part of a digest: it decides what reruns but computes no result.

Policy: the command-line glue ``unfolded/cli.py`` imports every stage lazily, so its imports are never
followed. The stages whose outputs are cheap to rebuild (claims, figures, summaries) add the file
``cli.py`` itself to their digest; the expensive ones (training, energy curves, synthetic tables)
depend on their computing modules only, so a change of an option's help text retrains nothing.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

__all__ = ["STAGE_MODULES", "code_digest", "module_closure", "stage_digest"]

PACKAGE = "unfolded"
ROOT = Path(__file__).resolve().parent

#: Entry modules of each pipeline stage (see the module docstring for the policy).
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "claims": ("unfolded.claims", "unfolded.artifacts"),
    "synthetic": ("unfolded.synthetic", "unfolded.artifacts"),
    "figure": ("unfolded.figures", "unfolded.artifacts"),
    "data": ("unfolded.data", "unfolded.artifacts"),
    "train": ("unfolded.experiments", "unfolded.artifacts"),
    "energy-curves": ("unfolded.experiments", "unfolded.artifacts"),
    "regime-search": ("unfolded.experiments", "unfolded.artifacts"),
    "summary": ("unfolded.experiments", "unfolded.study", "unfolded.artifacts"),
    "study": ("unfolded.study", "unfolded.figures", "unfolded.artifacts"),
    "report": ("unfolded.readme", "unfolded.artifacts"),
}
#: Stages whose digest also covers the file cli.py (without following its imports).
WITH_CLI = ("claims", "figure", "summary", "report", "study")
GLUE = "unfolded.cli"
#: This module: the keying machinery itself, not part of any result (editing it must not retrain).
KEYING = "unfolded.codeversion"


def _module_file(name: str) -> Path | None:
    """The source file of package module ``name`` (``unfolded.x.y``), or None if it is not one."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    parts = name.split(".")[1:]
    base = ROOT.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def _imports(path: Path) -> set[str]:
    """Package modules imported anywhere in ``path`` (top level or inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # submodules imported by name
    return {module for module in found if _module_file(module) is not None}


@cache
def module_closure(entries: tuple[str, ...]) -> tuple[Path, ...]:
    """Source files of ``entries`` and of every package module they import, transitively."""
    seen: set[Path] = set()
    stack = []
    for entry in entries:
        path = _module_file(entry)
        if path is None:
            raise ValueError(f"{entry!r} is not a module of the {PACKAGE} package")
        stack.append(path)
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(path):
            if module not in (GLUE, KEYING):
                stack.append(_module_file(module))
        if path.name != "__init__.py":  # importing a.b runs a/__init__.py first
            parent = path.parent / "__init__.py"
            if parent.is_file():
                stack.append(parent)
    return tuple(sorted(seen))


def code_digest(entries: tuple[str, ...] | list[str], extra_files: tuple[Path, ...] = ()) -> str:
    """16 hex digits of the SHA-256 over the relative paths and contents of :func:`module_closure`,
    the packaged config schema (its defaults shape every stage's settings) and ``extra_files``."""
    digest = hashlib.sha256()
    files = [*module_closure(tuple(entries)), ROOT / "schemas" / "config.schema.yaml", *extra_files]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def stage_digest(stage: str) -> str:
    """:func:`code_digest` of a pipeline stage (:data:`STAGE_MODULES`)."""
    if stage not in STAGE_MODULES:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_MODULES)}")
    extra = (_module_file(GLUE),) if stage in WITH_CLI else ()
    return code_digest(STAGE_MODULES[stage], extra)
