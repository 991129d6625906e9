"""The trained experiments: energy curves per layer (Figures 5-6) and unfolded vs standard runs.

Each function returns a tidy table; the CLI writes it with provenance.
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import pandas as pd
import torch

from .data import PreparedData, prepare
from .training import SequenceClassifier, authors_normalise_, fit, layer_energies, paper_encoder

__all__ = ["energy_curves", "monotone_fraction", "sample_indices", "summarise_runs", "train_run"]

TOLERANCE = 1e-9


def sample_indices(count: int, population: int, seed: int) -> list[int]:
    """The authors draw test samples with ``random.sample`` under a fixed seed (paper.md 6.4)."""
    return sorted(random.Random(seed).sample(range(population), min(count, population)))


def monotone_fraction(energies: torch.Tensor) -> float:
    """Share of (sample, layer) steps whose energy did not increase (relative tolerance 1e-9)."""
    before, after = energies[:, :-1], energies[:, 1:]
    return float((after <= before + TOLERANCE * (1 + before.abs())).double().mean())


def _module(data: PreparedData, encoder, width: int, lr: float, checkpoint_dir: Path) -> SequenceClassifier:
    return SequenceClassifier(
        kind=data.kind, input_dim=data.input_dim, num_classes=data.num_classes, model="unfolded_tied",
        width=width, num_layers=encoder.num_layers, vectors=data.vectors, encoder=encoder, optimizer="sgd",
        lr=lr, scheduler="none", diagnostics_dir=str(checkpoint_dir),
    )


def _rows(dataset, variant, relu, state, energies: torch.Tensor, indices: list[int]) -> pd.DataFrame:
    samples, layers = energies.shape
    return pd.DataFrame({
        "dataset": dataset,
        "variant": variant,
        "relu": relu,
        "state": state,
        "sample": [indices[i] for i in range(samples) for _ in range(layers)],
        "layer": list(range(layers)) * samples,
        "energy": energies.reshape(-1).numpy(),
    })


def energy_curves(config: dict, dataset: str, checkpoint_root: Path, progress: bool = True) -> pd.DataFrame:
    """Per-layer energies of ``samples`` test sequences for each variant: untrained with and
    without ReLU (Figure 5), and after the authors' training recipe with ReLU (Figure 6): SGD,
    batch size 1, ``train_steps`` steps (paper.md 6.4)."""
    cfg = config["energy_curves"]
    data = prepare(dataset, config)
    width = data.vectors.shape[1] if data.kind == "tokens" else config["train"]["width"]
    indices = sample_indices(cfg["samples"], len(data.splits["test"][1]), cfg["seed"])
    frames = []
    for variant in cfg["variants"]:
        for relu in (False, True):
            L.seed_everything(cfg["seed"], verbose=False)
            module = _module(data, paper_encoder(width, cfg["num_layers"], relu, variant), width, cfg["lr"], checkpoint_root)
            frames.append(_rows(dataset, variant, relu, "untrained", layer_energies(module, data, "test", indices), indices))
        L.seed_everything(cfg["seed"], verbose=False)
        checkpoint_dir = checkpoint_root / variant
        module = _module(data, paper_encoder(width, cfg["num_layers"], True, variant), width, cfg["lr"], checkpoint_dir)
        fit(module, data, checkpoint_dir, seed=cfg["seed"], batch_size=1, max_epochs=-1, max_steps=cfg["train_steps"],
            accelerator=config["train"]["accelerator"], validate=False, progress=progress)
        if variant == "paper":
            authors_normalise_(module.encoder)  # the authors normalise again before painting
        frames.append(_rows(dataset, variant, True, "trained", layer_energies(module, data, "test", indices), indices))
    return pd.concat(frames, ignore_index=True)


def curve_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One number per curve: the fraction of (sample, layer) steps whose energy did not increase."""
    rows = []
    for key, group in table.groupby(["dataset", "variant", "relu", "state"], sort=True):
        energies = torch.tensor(group.pivot(index="sample", columns="layer", values="energy").to_numpy())
        rows.append({**dict(zip(["dataset", "variant", "relu", "state"], key, strict=True)),
                     "samples": energies.shape[0], "monotone_fraction": monotone_fraction(energies)})
    return pd.DataFrame(rows)


def train_run(config: dict, dataset: str, model: str, seed: int, checkpoint_dir: Path, progress: bool = True,
              callbacks: tuple = ()):
    """Train one (dataset, model, seed) run; returns the module, its summary and test energies."""
    cfg = config["train"]
    data = prepare(dataset, config)
    L.seed_everything(seed, workers=True, verbose=False)
    module = SequenceClassifier(
        kind=data.kind, input_dim=data.input_dim, num_classes=data.num_classes, model=model, width=cfg["width"],
        num_layers=cfg["num_layers"], vectors=data.vectors, embedding=cfg["embedding"], encoder_options=cfg,
        optimizer=cfg["optimizer"], lr=cfg["lr"],
        weight_decay=cfg["weight_decay"], scheduler=cfg["scheduler"], diagnostics_dir=str(checkpoint_dir),
    )
    summary = fit(module, data, checkpoint_dir, seed=seed, batch_size=cfg["batch_size"], max_epochs=cfg["max_epochs"],
                  max_steps=cfg["max_steps"], accelerator=cfg["accelerator"], gradient_clip=cfg["gradient_clip"],
                  num_workers=cfg["num_workers"], progress=progress, callbacks=callbacks)
    indices = sample_indices(config["energy_curves"]["samples"], len(data.splits["test"][1]), seed)
    energies = layer_energies(module, data, "test", indices)
    summary["energy_monotone_fraction"] = monotone_fraction(energies)
    return module, summary, _rows(dataset, model, cfg["relu"], "trained", energies, indices)


def summarise_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """Tidy accuracy table: one row per (dataset, model, seed) from each run's provenance.json."""
    import json

    rows = []
    for run_dir in run_dirs:
        record = json.loads((Path(run_dir) / "provenance.json").read_text())
        summary = record["summary"]
        rows.append({"dataset": record["dataset"], "model": record["model"], "seed": record["seed"], **summary})
    return pd.DataFrame(rows).sort_values(["dataset", "model", "seed"], ignore_index=True)
