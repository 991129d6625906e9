"""The run grid: every (dataset, model, learning rate, seed) train job of a validated configuration.

The Snakefile builds its train jobs from :func:`run_specs` at parse time, so this module imports no
torch and no pandas.
"""

from __future__ import annotations

from .config import schema
from .registry import DATASETS, family, variant_applies

__all__ = ["RUN_LIST_KEYS", "lr_tag", "run_minutes", "run_specs", "short_runs"]

#: Settings of config section ``train`` that decide which runs exist, not how one run trains (marked
#: ``x-run-list`` in the schema): the train rule leaves them out of its params, so changing them reruns
#: no existing run.
RUN_LIST_KEYS = tuple(key for key, setting in schema()["properties"]["train"]["properties"].items()
                      if setting.get("x-run-list"))


def lr_tag(lr: float) -> str:
    """A learning rate as it appears in run paths (``lr0.003``)."""
    return f"{float(lr):g}"


def run_specs(config: dict) -> list[tuple[str, str, str, int]]:
    """Every (dataset, model, lr tag, seed) train job of a validated config: the models on every seed,
    each variant of each variant model it applies to (:data:`unfolded.registry.VARIANT_FAMILIES`) on
    ``variant_seeds``, each at every learning rate of its family, or at its rate in
    ``learning_rate_picks`` where one is fixed for its (dataset, model)."""
    train = config["train"]
    runs = [(model, seed) for model in train["models"] for seed in train["seeds"]]
    variant_seeds = train["variant_seeds"] or train["seeds"]
    runs += [(f"{model}-{variant}", seed) for model in train["variant_models"] for variant in train["variants"]
             if variant_applies(model, variant) for seed in variant_seeds]
    picks = train.get("learning_rate_picks") or {}

    def rates(dataset: str, model: str) -> list[float]:
        fixed = picks.get(dataset, {}).get(model)
        return [fixed] if fixed is not None else train["learning_rates"][family(model)]

    return [(dataset, model, lr_tag(lr), seed)
            for dataset in (train["datasets"] or config["datasets"])
            for model, seed in runs
            for lr in rates(dataset, model)]


def short_runs(dataset: str) -> bool:
    """Whether a run on ``dataset`` takes minutes on one CPU core (SLURM groups those runs)."""
    return DATASETS[dataset].short_runs


def run_minutes(dataset: str) -> int:
    """The time a run may take on SLURM, in minutes (a group's request is the sum over its runs)."""
    return 15 if short_runs(dataset) else 240
