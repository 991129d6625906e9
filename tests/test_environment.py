"""The environment files agree: pyproject.toml's requirements, the hash-locked requirements.lock,
environment.yml and the Makefile's torch build."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of requirements.lock."""
    entries = {}
    for block in re.split(r"\n(?=\S)", (ROOT / "requirements.lock").read_text()):
        head = block.strip().splitlines()[0] if block.strip() else ""
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", head)
        if match:
            entries[canonicalize_name(match.group(1))] = (match.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def _makefile_torch() -> dict[str, str]:
    spec = re.search(r"^TORCH_SPEC \?= (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    return {canonicalize_name(Requirement(part).name): str(Requirement(part).specifier) for part in spec.split()}


def test_every_locked_package_is_pinned_with_hashes():
    lock = _lock()
    assert len(lock) > 50
    for name, (version, hashes) in lock.items():
        assert hashes, f"{name}=={version} has no hash"


def test_the_lock_satisfies_pyproject_and_leaves_the_torch_build_to_the_makefile():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    torch = _makefile_torch()
    for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in torch:
            assert name not in lock, f"{name} comes from TORCH_SPEC, not the lock"
            version = torch[name].removeprefix("==")
            assert requirement.specifier.contains(version), f"TORCH_SPEC {name}{torch[name]} violates {text}"
            continue
        assert name in lock, f"{text} is not in requirements.lock (make lock)"
        assert requirement.specifier.contains(lock[name][0]), f"locked {name}=={lock[name][0]} violates {text}"


def test_environment_yml_pins_the_same_torch_build_as_the_makefile():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    pinned = {canonicalize_name(Requirement(line).name): str(Requirement(line).specifier)
              for line in pip if not line.startswith("-")}
    assert pinned == _makefile_torch()
