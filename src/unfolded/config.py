"""Configuration: one JSON schema (``schemas/config.schema.yaml``), validated once, into dataclasses.

The schema is also what the Snakefile validates against (``workflow/schemas`` links to it), so a
bad key fails before any job runs, and a stage run by hand fails the same way.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

__all__ = [
    "AlternatingConfig",
    "ApolloniusConfig",
    "ConfigError",
    "FiguresConfig",
    "KappaConfig",
    "config_hash",
    "load_config",
    "load_config_files",
    "schema",
    "validate_config",
]


class ConfigError(UserError, ValueError):
    """A configuration value is invalid; the message names the key and what was expected."""


#: Where the schema takes a list of names from a registry (``x-registry: NAME`` in the YAML): the
#: registry's names become the ``enum`` there, so the schema, the CLI and the Snakefile share one list.
def _registries() -> dict[str, tuple[str, ...]]:
    from . import registry

    return {"datasets": tuple(registry.DATASETS), "figures": registry.figure_names(),
            "curve_models": registry.CURVE_MODELS, "models": registry.MODELS, "variants": tuple(registry.VARIANTS),
            "variant_models": tuple(m for m in registry.MODELS if any(registry.variant_applies(m, v) for v in registry.VARIANTS))}


def _fill_registries(node, registries: dict) -> None:
    if isinstance(node, dict):
        name = node.pop("x-registry", None)
        if name is not None:
            node["enum"] = list(registries[name])
        for value in node.values():
            _fill_registries(value, registries)
    elif isinstance(node, list):
        for value in node:
            _fill_registries(value, registries)


@cache
def schema() -> dict:
    """The configuration schema, with the registries' names filled in as enums."""
    text = resources.files("unfolded").joinpath("schemas/config.schema.yaml").read_text()
    loaded = yaml.safe_load(text)
    _fill_registries(loaded, _registries())
    return loaded


def _validator_with_defaults():
    """A Draft 2020-12 validator that fills in ``default`` values while it validates."""
    from jsonschema import Draft202012Validator, validators

    def fill_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, prop in properties.items():
                if "default" in prop and name not in instance:
                    instance[name] = copy.deepcopy(prop["default"])
        yield from Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, subschema)

    return validators.extend(Draft202012Validator, {"properties": fill_defaults})


def _describe(error) -> str:
    path = "config" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"{path}: unknown key(s) {unknown}; allowed keys: {allowed}"
    if error.validator == "required":
        return f"{path}: {error.message}"
    return f"{path}: {error.message} (got {json.dumps(error.instance)})"


def validate_config(config: dict | None) -> dict:
    """Validate ``config`` against the schema and return a copy with every default filled in.

    Raises :class:`ConfigError` naming each offending key, e.g.
    ``config.claims.trials: -3 is less than the minimum of 1 (got -3)``.
    """
    config = copy.deepcopy(config) if config is not None else {}
    if not isinstance(config, dict):
        raise ConfigError(f"config: expected a mapping of sections, got {type(config).__name__}")
    _replace_deprecated(config)
    validator = _validator_with_defaults()(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        described = [_describe(e) for e in errors]
        if len(described) == 1:
            raise ConfigError(f"invalid configuration: {described[0]}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(described))
    _check_semantics(config)
    return config


#: Old names of the authors' version, still accepted with a warning: key path -> {old: new}.
DEPRECATED_VALUES: dict[tuple[str, str], dict[str, str]] = {
    ("train", "attention_variant"): {"official": "authors"},
    ("energy_curves", "variants"): {"paper": "authors"},
}


def _replace_deprecated(config: dict) -> None:
    """Rewrite deprecated values in place to their current names, warning once per value."""
    import warnings

    for (section, key), renames in DEPRECATED_VALUES.items():
        settings = config.get(section)
        if not isinstance(settings, dict) or key not in settings:
            continue
        value = settings[key]
        values = value if isinstance(value, list) else [value]
        for old in values:
            if isinstance(old, str) and old in renames:
                warnings.warn(f"config.{section}.{key}: {old!r} is deprecated, use {renames[old]!r}", FutureWarning,
                              stacklevel=3)
        renamed = [renames.get(v, v) if isinstance(v, str) else v for v in values]
        settings[key] = renamed if isinstance(value, list) else renamed[0]


def _check_semantics(config: dict) -> None:
    """Constraints between keys that a JSON schema cannot express."""
    from .bounds import ATTENTION_STEP_BOUND, ffn_step_bound

    train = config["train"]
    for path, value in (("train.alpha_attention", train["alpha_attention"]),
                        ("energy_curves.active_regime.alpha_attention",
                         config["energy_curves"]["active_regime"]["alpha_attention"])):
        if not 0 < value <= ATTENTION_STEP_BOUND:
            raise ConfigError(f"config.{path}: must lie in (0, {ATTENTION_STEP_BOUND:g}], got {value}")
    search = config["energy_curves"]["regime_search"]
    shared = sorted(set(search["selection_seeds"]) & set(search["confirmation_seeds"]))
    if shared:
        raise ConfigError(f"config.energy_curves.regime_search: confirmation_seeds must be fresh, but {shared} "
                          "are also selection_seeds")
    if train["alpha_ffn"] >= ffn_step_bound(train["spectral_bound"]):
        raise ConfigError(
            f"config.train.alpha_ffn: must be below 2 / (1 + spectral_bound) = {ffn_step_bound(train['spectral_bound']):.4g} "
            f"for the feed-forward step to descend its energy, got {train['alpha_ffn']}"
        )
    apollonius = config["synthetic"]["apollonius"]
    for index, panel in enumerate(apollonius["panels"]):
        limit = panel["curvature_h"] / apollonius["curvature_f"]
        if panel["C"] >= limit:
            raise ConfigError(
                f"config.synthetic.apollonius.panels[{index}].C: must be below "
                f"curvature_h / curvature_f = {limit:g} for a positive step size, got {panel['C']}"
            )
        if panel["C"] == 1:
            raise ConfigError(f"config.synthetic.apollonius.panels[{index}].C: C = 1 has no circle")


def _yaml_error(error: yaml.YAMLError, where: str) -> ConfigError:
    mark = getattr(error, "problem_mark", None)
    position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return ConfigError(f"{where} is not valid YAML{position}: {problem}")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. inline JSON longer than a file name may be
        return False


def load_config(source: str | Path | dict | None) -> dict:
    """Load a configuration from a YAML file, inline YAML/JSON text, a dict, or None (all defaults).

    A string that names an existing file is read as that file; any other string is read as inline
    YAML (for example ``'claims: {trials: 7}'`` or ``'{"claims": {"trials": 7}}'``), and must be a
    mapping; one that looks like a file name (a ``.yaml``/``.yml``/``.json`` suffix) is reported as a
    missing file."""
    if source is None or isinstance(source, dict):
        return validate_config(source)
    text = str(source)
    path = Path(text)
    looks_like_file = "\n" not in text and path.suffix in (".yaml", ".yml", ".json")
    if "\n" not in text and _is_file(path):
        where = f"config file {path}"
        text = path.read_text()
    elif looks_like_file:
        raise ConfigError(f"config file {path} does not exist (pass a YAML file or inline YAML/JSON text)")
    else:
        where = "inline config"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise _yaml_error(error, where) from None
    if where == "inline config" and not isinstance(data, dict):
        raise ConfigError(
            f"config {text!r} is neither an existing file nor inline YAML mapping sections to settings "
            "(for example 'claims: {trials: 7}')"
        )
    return validate_config(data)


def load_config_files(paths: list[str]) -> dict:
    """Several YAML files merged in order, key by key (as ``snakemake --configfile a b`` merges them), then
    validated as :func:`load_config` does."""
    merged: dict = {}
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            _deep_merge(merged, yaml.safe_load(Path(path).read_text()) or {})
        except yaml.YAMLError as error:
            raise _yaml_error(error, f"config file {path}") from None
    return validate_config(merged)


def _deep_merge(target: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value
    return target


def config_hash(settings: Any) -> str:
    """A short stable hash of the settings that produced an artifact."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ApolloniusConfig:
    seed: int
    extent: float
    grid_step: float
    curvature_f: float
    panels: tuple[tuple[float, float], ...]  # (C, curvature_h)

    @classmethod
    def from_config(cls, config: dict) -> ApolloniusConfig:
        section = config["synthetic"]["apollonius"]
        panels = tuple((p["C"], p["curvature_h"]) for p in section["panels"])
        return cls(section["seed"], section["extent"], section["grid_step"], section["curvature_f"], panels)


@dataclass(frozen=True)
class AlternatingConfig:
    seed: int
    n: int
    d: int
    weight_scale: float
    init_scale: float
    steps: int
    lr: float
    reference_steps: int
    reference_lr: float
    zoom: float

    @classmethod
    def from_config(cls, config: dict) -> AlternatingConfig:
        return cls(**config["synthetic"]["alternating"])


@dataclass(frozen=True)
class KappaConfig:
    seed: int
    extent: float
    grid_step: float
    alpha: float
    kappas: tuple[float, ...]

    @classmethod
    def from_config(cls, config: dict) -> KappaConfig:
        section = dict(config["synthetic"]["kappa"])
        section["kappas"] = tuple(section["kappas"])
        return cls(**section)


@dataclass(frozen=True)
class FiguresConfig:
    formats: tuple[str, ...]
    dpi: int
    include: tuple[str, ...]

    @classmethod
    def from_config(cls, config: dict) -> FiguresConfig:
        section = config["figures"]
        return cls(tuple(section["formats"]), section["dpi"], tuple(section["include"]))


@dataclass(frozen=True)
class TrainConfig:
    """Section ``train``: which runs exist (datasets, models, seeds, variants, learning-rate grid) and how
    each trains. Every default lives in the schema (``src/unfolded/schemas/config.schema.yaml``); build it
    from a validated configuration with :meth:`from_config`. Values keep their plain YAML types."""

    datasets: list[str] | None
    seeds: list[int]
    models: list[str]
    variants: list[str]
    variant_models: list[str]
    variant_seeds: list[int]
    linear_probe: bool
    probe_C: list[float]
    positions: str
    head: str
    embedding: str
    width: int
    num_layers: int
    num_heads: int
    batch_size: int
    max_epochs: int
    max_steps: int
    patience: int | None
    learning_rates: dict[str, list[float]]
    learning_rate_picks: dict
    depth_factor: int
    optimizer: str
    weight_decay: float
    scheduler: str
    gradient_clip: float | None
    num_workers: int
    accelerator: str
    attention_variant: str
    relu: bool
    layer_norm: bool
    alpha_attention: float
    alpha_ffn: float
    spectral_bound: float
    regularise_energy: bool
    recall: float

    @classmethod
    def from_config(cls, config: dict) -> TrainConfig:
        return cls(**copy.deepcopy(config["train"]))

    def as_dict(self) -> dict:
        """The section as the plain mapping it came from (Lightning hyperparameters, encoder options)."""
        import dataclasses

        return dataclasses.asdict(self)
