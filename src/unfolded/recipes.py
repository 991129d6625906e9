"""Figure 6 from models that learned, the computing part: the prespecified search for one training recipe
under which the energy-curve models (the authors' model and the exact models of
:func:`unfolded.encoders.paper_encoder`) learn the Figure 5-6 datasets, and the training of those models at
the recipe fixed in the configuration, with their checkpoints. The rule that picks the recipe is
:func:`unfolded.summaries.select_recipe`; the archive, :func:`unfolded.archive.archive_learned`; their
curves, :func:`unfolded.sweeps.learned_curves`.

The recipe rule (fixed before any model trained) is :data:`unfolded.summaries.RECIPE_RULE`.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from tqdm.auto import tqdm

from .curves import _module, variant_options
from .data import PreparedData, prepare
from .encoders import paper_encoder
from .traces import chance_accuracy
from .training import SequenceClassifier, fit

__all__ = ["load_learned", "recall_search", "recipe_grid", "recipe_search", "train_learned"]


def recipe_grid(search: dict) -> list[dict]:
    """Every (optimizer, lr) of ``energy_curves.recipe_search.learning_rates``, in config order."""
    return [{"optimizer": optimizer, "lr": float(lr)} for optimizer, rates in search["learning_rates"].items()
            for lr in rates]


def _width(data: PreparedData, config: dict) -> int:
    return data.vectors.shape[1] if data.kind == "tokens" else config["train"]["width"]


def _train(config: dict, data: PreparedData, variant: str, recipe: dict, budget: dict, seed: int, workdir: Path,
           progress: bool) -> tuple[SequenceClassifier, dict, pd.DataFrame]:
    """One energy-curve model (with ReLU) trained at ``recipe`` with validation: the module at its best
    epoch, a row with its validation and test accuracy and counts, and its validation answers item by item."""
    from .runs import item_predictions

    cfg = config["energy_curves"]
    width = _width(data, config)
    options = variant_options(variant, cfg)
    L.seed_everything(seed, verbose=False)
    module = _module(data, paper_encoder(width, cfg["num_layers"], True, variant, **options), width, recipe["lr"],
                     workdir, optimizer=recipe["optimizer"])
    summary = fit(module, data, workdir, seed=seed, batch_size=budget["batch_size"], max_epochs=budget["max_epochs"],
                  patience=budget["patience"], accelerator=config["train"]["accelerator"], validate=True,
                  progress=progress)
    val_labels, test_labels = data.splits["val"][1], data.splits["test"][1]
    test_correct = int((module.predict_split(data, "test") == test_labels).sum())
    answers = item_predictions(module, data, "val")
    row = {"variant": variant, "seed": seed, **options, "optimizer": recipe["optimizer"], "lr": recipe["lr"],
           "val_correct": int(answers["correct"].sum()), "val_count": len(val_labels),
           "val_majority": chance_accuracy(val_labels), "test_accuracy": test_correct / len(test_labels),
           "test_correct": test_correct, "test_count": len(test_labels), "chance_accuracy": chance_accuracy(test_labels),
           "epochs": summary["epochs"], "steps": summary["steps"]}
    keys = {key: row[key] for key in ("variant", "seed", "optimizer", "lr")}
    return module, row, answers.assign(**keys)


def recipe_search(config: dict, dataset: str, workdir: Path, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every recipe of the grid on every variant of ``recipe_search.variants`` and selection seed, on one
    dataset: one row per (variant, recipe, seed) with validation and test counts, and every run's validation
    answers (one row per run and item), from which the pick can be recomputed."""
    search = config["energy_curves"]["recipe_search"]
    grid = [(variant, recipe, seed) for variant in search["variants"] for recipe in recipe_grid(search)
            for seed in search["selection_seeds"]]
    rows, answers = [], []
    for variant, recipe, seed in tqdm(grid, desc=f"recipe search {dataset}", disable=not progress):
        data = prepare(dataset, config, seed=seed)
        run_dir = workdir / variant / f"{recipe['optimizer']}-lr{recipe['lr']:g}" / f"seed{seed}"
        _, row, answered = _train(config, data, variant, recipe, search, seed, run_dir, progress=False)
        rows.append({"dataset": dataset, **row})
        answers.append(answered.assign(dataset=dataset))
    return pd.DataFrame(rows), pd.concat(answers, ignore_index=True)


def recall_search(config: dict, dataset: str, workdir: Path, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recall check's selection (Figure 6 setting): ``exact_recall`` at the searched recipe
    (``energy_curves.learned_recipe``) for every anchor weight of ``energy_curves.recall_grid`` on the recipe
    search's selection seeds, one dataset; rows and validation answers as :func:`recipe_search` (column ``recall``).
    The pick is :func:`unfolded.summaries.select_recall`."""
    import copy

    cfg = config["energy_curves"]
    recipe = cfg["learned_recipe"]
    if recipe.get("optimizer") is None:
        from .config import ConfigError

        raise ConfigError("energy_curves.learned_recipe is not set: the recall search trains at the searched recipe")
    budget = {key: cfg["recipe_search"][key] for key in ("batch_size", "max_epochs", "patience")}
    grid = [(float(recall), seed) for recall in cfg["recall_grid"] for seed in cfg["recipe_search"]["selection_seeds"]]
    rows, answers = [], []
    for recall, seed in tqdm(grid, desc=f"recall search {dataset}", disable=not progress):
        local = copy.deepcopy(config)
        local["energy_curves"]["recall"] = recall
        data = prepare(dataset, local, seed=seed)
        run_dir = workdir / f"recall{recall:g}" / f"seed{seed}"
        _, row, answered = _train(local, data, "exact_recall", recipe, budget, seed, run_dir, progress=False)
        rows.append({"dataset": dataset, **row})
        answers.append(answered.assign(dataset=dataset, recall=recall))
    return pd.DataFrame(rows), pd.concat(answers, ignore_index=True)


def _save(module: SequenceClassifier, row: dict, relu: bool, path: Path) -> str:
    """A weights-only checkpoint of a trained energy-curve model, written atomically; returns its SHA-256."""
    from .artifacts import atomic_path
    from .weights import without_frozen_vectors

    buffer = io.BytesIO()
    state, vectors = without_frozen_vectors(module.state_dict(), dict(module.hparams))
    torch.save({"state_dict": state, "hyper_parameters": dict(module.hparams), **vectors,
                "curve_variant": row["variant"], "relu": relu,
                **{key: row[key] for key in ("alpha_attention", "w_scale", "recall", "seed", "optimizer", "lr",
                                             "test_accuracy")}},
               buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def load_learned(path: Path, data=None) -> tuple[SequenceClassifier, dict]:
    """A checkpoint of :func:`train_learned` (``weights_only=True``) as a module in eval mode, and its record
    (variant, step size, W scale, seed, recipe and recorded test accuracy). ``data``: the run's prepared data,
    needed where the checkpoint left its frozen word vectors out (:func:`unfolded.weights.restore_frozen_vectors`)."""
    from .weights import VECTORS_KEY, restore_frozen_vectors

    record = torch.load(path, map_location="cpu", weights_only=True)
    hyper = dict(record["hyper_parameters"])
    state = restore_frozen_vectors(record, data, path)
    encoder = paper_encoder(hyper["width"], hyper["num_layers"], record["relu"], record["curve_variant"],
                            **({"alpha_attention": record["alpha_attention"], "w_scale": record["w_scale"]}
                               if record["curve_variant"] == "exact_active" else {}),
                            **({"recall": record["recall"]} if record["curve_variant"] == "exact_recall" else {}))
    module = SequenceClassifier(**hyper, vectors=state[VECTORS_KEY] if hyper["kind"] == "tokens" else None,
                                encoder=encoder)
    module.load_state_dict(state)
    return module.eval(), {key: value for key, value in record.items()
                           if key not in ("state_dict", "hyper_parameters", "vectors_sha256", "vectors_shape")}


def train_learned(config: dict, dataset: str, workdir: Path, out: Path, progress: bool = True) -> pd.DataFrame:
    """Every variant of ``recipe_search.variants`` trained at ``energy_curves.learned_recipe`` on its fresh
    seeds; saves each model's weights to ``out/<dataset>/<variant>/seed<k>.pt`` and returns one row per
    model (accuracy, counts, checkpoint path and SHA-256)."""
    cfg = config["energy_curves"]
    recipe = cfg["learned_recipe"]
    if recipe.get("optimizer") is None:
        from .config import ConfigError

        raise ConfigError("energy_curves.learned_recipe is not set: run the recipe search (make figure6-search) and "
                          "fix its pick in the config")
    budget = {key: cfg["recipe_search"][key] for key in ("batch_size", "max_epochs", "patience")}
    rows = []
    jobs = [(variant, seed) for variant in cfg["recipe_search"]["variants"] for seed in recipe["seeds"]]
    for variant, seed in tqdm(jobs, desc=f"learned models {dataset}", disable=not progress):
        data = prepare(dataset, config, seed=seed)
        module, row, _ = _train(config, data, variant, recipe, budget, seed, workdir / variant / f"seed{seed}", False)
        path = out / dataset / variant / f"seed{seed}.pt"
        digest = _save(module, row, True, path)
        rows.append({"dataset": dataset, **row, "checkpoint": str(path), "sha256": digest})
    return pd.DataFrame(rows)
