"""The project's registries: one per concept, each the single list that the schema's enums, the CLI's
choices and the Snakefile read. Plain data only: no torch, no pandas (the Snakefile imports this
module at parse time).

- :data:`DATASETS`: every dataset a run can name, where it comes from and what it needs fetched;
- :data:`VECTORS`: the GloVe archives the text datasets need;
- :data:`FIGURES`: every figure, the tables it reads and whether it is drawn per dataset;
- :data:`CURVE_MODELS`: the encoders of Figures 5-6 (the energy-curve stage);
- :data:`MODELS`, :data:`FAMILIES`, :data:`VARIANTS`: the trained encoders, their learning-rate
  families and the unfolded variants with the settings each one overrides;
- :data:`ENERGY_ENCODERS`: the trainable encoders built from the plug-in energies of
  :mod:`unfolded.energies` (model ``<name>_tied``; a plug-in added with ``unfolded.energies.register`` adds
  its own entry at run time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CURVE_MODELS",
    "DATASETS",
    "ENERGY_ENCODERS",
    "FAMILIES",
    "FIGURES",
    "MODELS",
    "VARIANTS",
    "VARIANT_FAMILIES",
    "VECTORS",
    "Dataset",
    "EnergyEncoder",
    "Figure",
    "data_names",
    "energy_encoder",
    "family",
    "fetch_names",
    "figure_names",
    "split_model",
    "variant_applies",
]


@dataclass(frozen=True)
class Dataset:
    """``source``: generated (offline), scikit-learn (bundled), huggingface or torchvision (fetched once);
    ``fetch``: the download it needs besides vectors; ``vectors``: whether it needs GloVe vectors;
    ``short_runs``: a run takes minutes on one CPU core (SLURM groups such runs);
    ``interaction``: a task built so that no model without token interactions can beat its
    ``no_interaction_ceiling`` (its models get the affine head under ``train.head: auto``)."""

    source: str
    fetch: str | None = None
    vectors: bool = False
    short_runs: bool = False
    interaction: bool = False


DATASETS: dict[str, Dataset] = {
    "polarity": Dataset("generated", short_runs=True),
    "order": Dataset("generated", short_runs=True),
    "equality": Dataset("generated", short_runs=True, interaction=True),
    "digits": Dataset("scikit-learn", short_runs=True),
    "imdb": Dataset("huggingface", fetch="imdb", vectors=True),
    "sst2": Dataset("huggingface", fetch="sst2", vectors=True),
    "mnist": Dataset("torchvision", fetch="mnist"),
    "cifar10": Dataset("torchvision", fetch="cifar10"),
}
#: GloVe archives, by the value of config ``data.glove`` (``6B`` is ``6B-300d``; every 6B member sits in one archive)
VECTORS = {"840B": "glove-840B", "6B": "glove-6B", "6B-50d": "glove-6B", "6B-100d": "glove-6B", "6B-200d": "glove-6B",
           "6B-300d": "glove-6B"}


def fetch_names(datasets: list[str] | tuple[str, ...], glove: str) -> list[str]:
    """What ``python -m unfolded data fetch`` must have fetched before ``datasets`` load offline, in order:
    each dataset's own download and, for the text datasets, the GloVe archive ``glove``."""
    names: list[str] = []
    for name in datasets:
        dataset = DATASETS[name]
        wanted = [dataset.fetch] if dataset.fetch else []
        wanted += [VECTORS[glove]] if dataset.vectors else []
        names += [item for item in wanted if item not in names]
    return names


def data_names() -> tuple[str, ...]:
    """Every name ``python -m unfolded data`` knows: the datasets, then the vector archives."""
    return (*DATASETS, *dict.fromkeys(VECTORS.values()))


@dataclass(frozen=True)
class Figure:
    """``tables``: what the figure reads, as the stage that writes each table (``synthetic/<experiment>``
    for Figures 1-4); ``per_dataset``: one figure per dataset (``<name>_<dataset>``)."""

    tables: tuple[str, ...]
    per_dataset: bool = False
    #: the synthetic experiment tables (results/data/<experiment>.parquet) of Figures 1-4
    experiments: tuple[str, ...] = field(default=())
    #: tables the figure draws when given (stages that write them), appended to its first table
    optional: tuple[str, ...] = field(default=())


FIGURES: dict[str, Figure] = {
    "fig1_apollonius": Figure(("synthetic/apollonius",), experiments=("apollonius",)),
    "fig2_alternating_trace": Figure(("synthetic/alternating",), experiments=("alternating",)),
    "fig3_alternating_energy": Figure(("synthetic/alternating",), experiments=("alternating",)),
    "fig4_kappa_regions": Figure(("synthetic/kappa",), experiments=("kappa",)),
    "fig5_energy_untrained": Figure(("energy-curves", "combine"), per_dataset=True),
    # from an archive alone (study.from_archive), Figure 6 draws the learned-curve table only
    "fig6_energy_trained": Figure(("energy-curves", "combine", "learned-curves"), per_dataset=True,
                                  optional=("learned-curves",)),
    "fig_accuracy": Figure(("accuracy",)),
    "fig_training_curves": Figure(("accuracy",)),
    "fig_depth_extrapolation": Figure(("depth",)),
    "fig_energies": Figure(("combine",)),
    "fig_token_spread": Figure(("token-spread",)),
}


def figure_names(synthetic: bool | None = None) -> tuple[str, ...]:
    """Figure names; ``synthetic=True``: Figures 1-4 only (drawn from synthetic tables), ``False``: the others."""
    return tuple(name for name, figure in FIGURES.items()
                 if synthetic is None or bool(figure.experiments) == synthetic)


#: The encoders of Figures 5-6 (docs/theory.md §4.4): the authors' model, the exact model, the
#: exact model in the regime picked by the regime search (attention step and W scale from config), and
#: the exact model with recall: its energy anchored to its input (docs/theory.md §8; anchor weight
#: ``energy_curves.recall``).
CURVE_MODELS = ("authors", "exact", "exact_active", "exact_recall")

#: Encoders trained with Lightning (``bag_of_embeddings``: no token mixing, the pooled-token-identity
#: baseline; the control for the attention step itself is the variant ``no_attention``).
@dataclass(frozen=True)
class EnergyEncoder:
    """A trainable encoder made of plug-in energies (docs/energies.md, "Trained"): each layer applies the
    ``step`` of every plug-in of ``plugins`` in turn (names of ``unfolded.energies.REGISTRY``), with tied
    parameters. ``mixes_tokens``: whether a step moves a token by the others (False: the encoder is itself
    interaction-free and has no ``-no_attention`` control; the no-interaction ceiling binds it)."""

    plugins: tuple[str, ...]
    mixes_tokens: bool = True


#: The trainable plug-in encoders, by the name of their model stem (model ``<name>_tied``): the package's
#: own; ``unfolded.energies.register`` adds one entry per plug-in registered from outside the package.
#: CRATE's layer is its MSSA block followed by its ISTA block; the Hopfield step retrieves from stored
#: patterns that do not move with the tokens, so it moves no token by another.
ENERGY_ENCODERS: dict[str, EnergyEncoder] = {
    "hopfield": EnergyEncoder(("hopfield",), mixes_tokens=False),
    "energy_transformer": EnergyEncoder(("energy_transformer",)),
    "crate": EnergyEncoder(("crate_mssa", "crate_ista")),
    "token_clustering": EnergyEncoder(("token_clustering",)),
}
#: The learning-rate family of every plug-in encoder (config ``train.learning_rates.energies``).
ENERGY_FAMILY = "energies"

#: Encoders trained with Lightning (``bag_of_embeddings``: no token mixing, the pooled-token-identity
#: baseline; the control for the attention step itself is the variant ``no_attention``), then the plug-in
#: encoders of :data:`ENERGY_ENCODERS` (tied layers only).
BASE_MODELS = ("unfolded_tied", "unfolded_untied", "standard_tied", "standard_untied", "bag_of_embeddings")
MODELS = BASE_MODELS + tuple(f"{name}_tied" for name in ENERGY_ENCODERS)
#: Learning-rate families (config ``train.learning_rates``): a model's family is the part of its name
#: before the tying (``unfolded_tied`` -> ``unfolded``); every plug-in encoder is in :data:`ENERGY_FAMILY`.
FAMILIES = ("unfolded", "standard", "bag_of_embeddings", ENERGY_FAMILY)


def energy_encoder(model: str) -> EnergyEncoder | None:
    """The plug-in encoder of a model name (``crate_tied`` or ``crate_tied-no_attention``), None for the others."""
    stem = model.partition("-")[0]
    return ENERGY_ENCODERS.get(stem.removesuffix("_tied")) if stem.endswith("_tied") else None


def _model_family(model: str) -> str:
    """``unfolded``, ``standard``, ``bag_of_embeddings`` or :data:`ENERGY_FAMILY` of a base model name."""
    if model == "bag_of_embeddings":
        return model
    return ENERGY_FAMILY if energy_encoder(model) is not None else model.split("_")[0]
#: Unfolded variants, as the settings of config section ``train`` each one overrides (a run's model is
#: ``<model>-<variant>``, e.g. ``unfolded_tied-multihead``; the overrides go into the run's provenance).
#: ``residual``: step sizes below 1, a convex combination with the current state; ``learned_steps``:
#: per-layer step sizes learned inside their descent ranges; ``multihead``: the multi-head energy, whose
#: MM step is multi-head attention; ``no_attention``: an ablation, the same layers without the
#: attention step; ``recall``: the energy anchored to the encoder's input with weight ``train.recall``
#: (docs/theory.md §8), the feed-forward step scaled by ``1 / (1 + recall)`` so that it stays a descent
#: step; ``recall_no_attention``: its control, the same without the attention step.
VARIANTS: dict[str, dict] = {
    "residual": {"alpha_attention": 0.5, "alpha_ffn": 0.5},
    "ffn_step_half": {"alpha_attention": 1.0, "alpha_ffn": 0.5},
    "attention_step_half": {"alpha_attention": 0.5, "alpha_ffn": 1.0},
    "learned_steps": {"learned_step_sizes": True, "alpha_attention": 1.0, "alpha_ffn": 0.5},
    "multihead": {"energy_heads": 4},
    "no_attention": {"attention": False},
    "recall": {"anchored": True},
    "recall_no_attention": {"anchored": True, "attention": False},
}
#: The model families each variant applies to (the ablation applies to both: standard_tied-no_attention
#: is the standard layer without its self-attention sub-layer).
VARIANT_FAMILIES: dict[str, tuple[str, ...]] = {
    "residual": ("unfolded",), "ffn_step_half": ("unfolded",), "attention_step_half": ("unfolded",),
    "learned_steps": ("unfolded",), "multihead": ("unfolded",),
    "no_attention": ("unfolded", "standard", ENERGY_FAMILY), "recall": ("unfolded",), "recall_no_attention": ("unfolded",),
}


def variant_applies(model: str, variant: str) -> bool:
    """Whether ``variant`` can be run on base model ``model`` (:data:`VARIANT_FAMILIES`; ``no_attention`` only
    on plug-in encoders whose step mixes tokens)."""
    encoder = energy_encoder(model)
    if encoder is not None and not encoder.mixes_tokens:
        return False
    return _model_family(model) in VARIANT_FAMILIES.get(variant, ())


def split_model(name: str) -> tuple[str, str]:
    """``"unfolded_tied-multihead"`` -> ``("unfolded_tied", "multihead")``; ``"standard_tied"`` -> ``(.., "base")``."""
    model, _, variant = name.partition("-")
    if model not in BASE_MODELS and energy_encoder(model) is None:
        known = BASE_MODELS + tuple(f"{stem}_tied" for stem in ENERGY_ENCODERS)
        raise ValueError(f"model: expected one of {known} (optionally -<variant>), got {name!r}")
    if variant and (variant not in VARIANTS or not variant_applies(model, variant)):
        raise ValueError(f"model {name!r}: variant {variant!r} applies to "
                         f"{VARIANT_FAMILIES.get(variant, ('no',))} models only (variants: {sorted(VARIANTS)})")
    return model, variant or "base"


def family(name: str) -> str:
    """The learning-rate family of a model name (a variant keeps its model's family):
    ``unfolded_tied-residual`` -> ``unfolded``; ``linear_probe`` (no learning rate) -> ``linear_probe``."""
    if name == "linear_probe":
        return name
    model, _ = split_model(name)
    return _model_family(model)
