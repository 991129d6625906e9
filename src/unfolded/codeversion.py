"""Content digests of the package code a stage runs: the workflow's rerun key and the checkpoint key.

A stage is a subcommand of ``python -m unfolded`` (``train``, ``energy-curves``, ``accuracy``, ...), and its
entry is the function ``run_<stage>`` of ``unfolded/cli.py``, which imports what it runs inside its body.
A stage's digest covers the source of that function and every package module it imports, directly or
through other modules, transitively (found by parsing the source, not by importing it, so this module
stays cheap enough for the Snakefile to call at parse time). Only file contents enter the digest: a
copied, moved or re-checked-out clone, or another interpreter running the same code, gives the same
digest. The configuration schema is not part of it: the settings reach every rule with their defaults
filled in, so a changed default reruns the rules whose settings change, and a changed description
reruns nothing.

So editing the summaries, statistics or report code reruns no train, energy-curve or regime-search
job; editing the encoders reruns training. This module is never part of a digest: it decides what
reruns but computes no result.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

__all__ = ["code_digest", "entry_point", "module_closure", "stage_digest", "stages"]

PACKAGE = "unfolded"
ROOT = Path(__file__).resolve().parent

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


def _imports(path: Path, tree: ast.AST | None = None) -> set[str]:
    """Package modules imported anywhere in ``path`` (top level or inside functions), or only inside
    ``tree`` (a node of ``path``'s syntax tree) when given."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree if tree is not None else ast.parse(path.read_text(), str(path))):
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


@cache
def _glue() -> tuple[ast.Module, str]:
    path = _module_file(GLUE)
    text = path.read_text()
    return ast.parse(text, str(path)), text


def stages() -> tuple[str, ...]:
    """Every stage: the subcommands whose entry ``run_<stage>`` the CLI defines."""
    tree, _ = _glue()
    return tuple(node.name.removeprefix("run_").replace("_", "-") for node in tree.body
                 if isinstance(node, ast.FunctionDef) and node.name.startswith("run_"))


@cache
def entry_point(stage: str) -> tuple[str, tuple[str, ...]]:
    """The source of stage ``stage``'s entry function and the package modules it runs: those imported in its
    body and at the top of ``cli.py`` (the CLI's own imports are used by every entry)."""
    tree, text = _glue()
    name = "run_" + stage.replace("-", "_")
    function = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name), None)
    if function is None:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(stages())}")
    glue = _module_file(GLUE)
    top = ast.Module(body=[node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)],
                     type_ignores=[])
    modules = (_imports(glue, function) | _imports(glue, top)) - {GLUE, KEYING}
    return ast.get_source_segment(text, function), tuple(sorted(modules))


def code_digest(entries: tuple[str, ...] | list[str], extra_text: str = "") -> str:
    """16 hex digits of the SHA-256 over the relative paths and contents of :func:`module_closure` and
    ``extra_text``."""
    digest = hashlib.sha256()
    for path in module_closure(tuple(entries)):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(extra_text.encode())
    return digest.hexdigest()[:16]


@cache
def stage_digest(stage: str) -> str:
    """:func:`code_digest` of a pipeline stage: its entry function's source and the modules it runs."""
    source, modules = entry_point(stage)
    return code_digest(modules, source)
