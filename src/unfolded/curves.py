"""Energy curves per layer: Figures 5-6 (untrained, and after the authors' training recipe) and the
regime search behind ``exact_active``. Each stage function returns a tidy table (columns in
:mod:`unfolded.columns`); the CLI writes it with provenance.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pandas as pd

from .columns import CURVE_ATTRIBUTES, trace_rows
from .data import PreparedData, prepare, sample_indices
from .diagnostics import curve_summary_row, relative_spread
from .encoders import authors_normalise_, paper_encoder
from .traces import chance_accuracy, energy_parameters, layer_trace, parameter_changes
from .training import SequenceClassifier, fit

__all__ = ["energy_curves", "regime_search", "select_regime", "variant_options"]


def _module(data: PreparedData, encoder, width: int, lr: float, checkpoint_dir: Path,
            optimizer: str = "sgd") -> SequenceClassifier:
    return SequenceClassifier(
        kind=data.kind, input_dim=data.input_dim, num_classes=data.num_classes, model="unfolded_tied",
        width=width, num_layers=encoder.num_layers, vectors=data.vectors, encoder=encoder, optimizer=optimizer,
        lr=lr, scheduler="none", diagnostics_dir=str(checkpoint_dir),
    )


def energy_curves(config: dict, dataset: str, checkpoint_root: Path, progress: bool = True) -> pd.DataFrame:
    """Per-layer traces of ``samples`` test sequences for each variant: untrained with and without
    ReLU (Figure 5), and after the authors' training recipe with ReLU (Figure 6): SGD, batch size 1,
    ``train_steps`` steps (docs/theory.md §4.4). Trained rows carry the model's test accuracy, test loss
    and the relative change of W, Wf and B."""
    cfg = config["energy_curves"]
    data = prepare(dataset, config, seed=0)  # data.split_seed null: the split of seed 0
    width = data.vectors.shape[1] if data.kind == "tokens" else config["train"]["width"]
    test_labels = data.splits["test"][1]
    indices = sample_indices(cfg["samples"], len(test_labels), cfg["seed"])
    chance = chance_accuracy(test_labels)
    frames = []
    for variant in cfg["variants"]:
        options = variant_options(variant, cfg)
        keys = {"dataset": dataset, "variant": variant, "seed": cfg["seed"], **options}
        for relu in (False, True):
            L.seed_everything(cfg["seed"], verbose=False)
            module = _module(data, paper_encoder(width, cfg["num_layers"], relu, variant, **options), width,
                             cfg["lr"], checkpoint_root)
            trace = layer_trace(module, data, "test", indices)
            frames.append(trace_rows(trace, indices, **keys, relu=relu, state="untrained"))
        L.seed_everything(cfg["seed"], verbose=False)
        checkpoint_dir = checkpoint_root / variant
        module = _module(data, paper_encoder(width, cfg["num_layers"], True, variant, **options), width, cfg["lr"],
                         checkpoint_dir)
        start = energy_parameters(module)
        summary = fit(module, data, checkpoint_dir, seed=cfg["seed"], batch_size=1, max_epochs=-1,
                      max_steps=cfg["train_steps"], accelerator=config["train"]["accelerator"], validate=False,
                      progress=progress)
        predicted = int(module.predict_split(data, "test").unique().numel())  # of the tested model
        if variant == "authors":
            authors_normalise_(module.encoder)  # the authors normalise again before painting
        record = {"test_accuracy": summary["test_accuracy"], "test_count": len(test_labels), "test_loss": summary["test_loss"],
                  "chance_accuracy": chance, **parameter_changes(start, module), "predicted_classes": predicted}
        trace = layer_trace(module, data, "test", indices)
        frames.append(trace_rows(trace, indices, **keys, relu=True, state="trained", **record))
    table = pd.concat(frames, ignore_index=True)
    for column in CURVE_ATTRIBUTES:
        if column not in table:
            table[column] = math.nan
    return table


def variant_options(variant: str, cfg: dict) -> dict:
    """Step size, W scale and anchor weight of an energy-curve variant: the paper's (1, 1, no anchor) except
    ``exact_active`` (``energy_curves.active_regime``) and ``exact_recall`` (``energy_curves.recall``)."""
    if variant == "exact_active":
        regime = cfg["active_regime"]
        return {"alpha_attention": float(regime["alpha_attention"]), "w_scale": float(regime["w_scale"]), "recall": 0.0}
    return {"alpha_attention": 1.0, "w_scale": 1.0,
            "recall": float(cfg.get("recall", 1.0)) if variant == "exact_recall" else 0.0}


def regime_search(config: dict, datasets: list[str], progress: bool = True) -> pd.DataFrame:
    """Untrained exact-model curves over a grid of (alpha_attention, w_scale), with and without ReLU,
    on selection seeds and on fresh confirmation seeds (each seed draws its own model and its own test
    samples). One row per curve with the shares of :func:`unfolded.diagnostics.curve_summary_row`."""
    from tqdm import tqdm

    cfg = config["energy_curves"]
    search = cfg["regime_search"]
    grid = [(phase, seed, alpha, scale, relu)
            for phase, seeds in (("selection", search["selection_seeds"]), ("confirmation", search["confirmation_seeds"]))
            for seed in seeds for alpha in search["alphas"] for scale in search["w_scales"] for relu in (False, True)]
    rows = []
    for dataset in datasets:
        data = prepare(dataset, config, seed=0)  # the test split only: any train split will do
        width = data.vectors.shape[1] if data.kind == "tokens" else config["train"]["width"]
        population = len(data.splits["test"][1])
        for phase, seed, alpha, scale, relu in tqdm(grid, desc=f"regime search {dataset}", disable=not progress):
            indices = sample_indices(search["samples"], population, seed)
            L.seed_everything(seed, verbose=False)
            encoder = paper_encoder(width, cfg["num_layers"], relu, "exact_active", alpha_attention=alpha, w_scale=scale)
            trace = layer_trace(_module(data, encoder, width, cfg["lr"], Path(".")), data, "test", indices,
                                substeps=False)  # the rule reads the layer energy only
            summary = curve_summary_row(trace.before, trace.after, relative_spread(trace.spread),
                                        trace.middle - trace.before)
            rows.append({"dataset": dataset, "phase": phase, "seed": seed, "alpha_attention": float(alpha),
                         "w_scale": float(scale), "relu": relu, **summary,
                         "median_update": float(trace.update.double().median())})
    return pd.DataFrame(rows)


def select_regime(table: pd.DataFrame, min_active: float, min_strict: float) -> dict:
    """The prespecified rule: among settings that pass on every dataset, selection seed and ReLU
    choice (``active_fraction >= min_active`` and ``strict_fraction_active >= min_strict``), the one
    closest to the paper's (largest alpha_attention, then smallest w_scale). Returns the pick (or
    None) and whether it passes on the confirmation seeds too."""
    passes = (table["active_fraction"] >= min_active) & (table["strict_fraction_active"].fillna(0) >= min_strict)
    table = table.assign(passes=passes)
    selection = table[table["phase"] == "selection"].groupby(["alpha_attention", "w_scale"])["passes"].all()
    candidates = sorted(selection[selection].index, key=lambda key: (-key[0], key[1]))
    if not candidates:
        return {"alpha_attention": None, "w_scale": None, "confirmed": False, "candidates": 0}
    alpha, scale = candidates[0]
    confirmation = table[(table["phase"] == "confirmation") & (table["alpha_attention"] == alpha)
                         & (table["w_scale"] == scale)]
    return {"alpha_attention": alpha, "w_scale": scale, "confirmed": bool(len(confirmation) and confirmation["passes"].all()),
            "candidates": len(candidates)}
