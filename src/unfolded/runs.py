"""One train job (:func:`train_run`): fit a model with Lightning, record its layer trace on test
sequences and, for tied encoders, its accuracy at other depths; and the linear-probe baseline
(:func:`linear_probe`)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from .columns import trace_rows
from .config import TrainConfig
from .data import PreparedData, prepare, sample_indices
from .data.ceilings import CEILING_KEYS
from .diagnostics import non_increasing
from .registry import DATASETS, family, split_model
from .traces import chance_accuracy, energy_parameters, layer_trace, parameter_changes
from .training import SequenceClassifier, fit

__all__ = ["dataset_ceilings", "depth_rows", "item_predictions", "linear_probe", "resolve_head", "train_run"]


def train_run(config: dict, dataset: str, model: str, seed: int, checkpoint_dir: Path, progress: bool = True,
              callbacks: tuple = (), lr: float | None = None):
    """Train one (dataset, model, lr, seed) run; returns the module, its summary, test energies, the
    depth-extrapolation rows (tied encoders only; empty otherwise) and its prediction for every test and
    validation item (``split``, ``item``, ``label``, ``prediction``, ``correct``: what the paired tests of the
    study and the learning-rate pick read).

    ``model`` may name a variant (``unfolded_tied-multihead``, :data:`unfolded.registry.VARIANTS`);
    ``lr`` defaults to the first learning rate of the model's family in ``train.learning_rates``."""
    cfg = TrainConfig.from_config(config)
    name, variant = split_model(model)
    lr = float(cfg.learning_rates[family(model)][0] if lr is None else lr)
    data = prepare(dataset, config, seed=seed)  # data.split_seed null: this seed draws the split
    longest = max(len(sequence) for sequences, _ in data.splits.values() for sequence in sequences)
    L.seed_everything(seed, workers=True, verbose=False)
    head = resolve_head(cfg.head, dataset)
    module = SequenceClassifier(
        kind=data.kind, input_dim=data.input_dim, num_classes=data.num_classes, model=model, width=cfg.width,
        num_layers=cfg.num_layers, vectors=data.vectors, embedding=cfg.embedding, encoder_options=cfg.as_dict(),
        optimizer=cfg.optimizer, lr=lr, weight_decay=cfg.weight_decay, scheduler=cfg.scheduler,
        diagnostics_dir=str(checkpoint_dir), positions=cfg.positions, max_tokens=max(longest, 1), head=head,
    )
    start = energy_parameters(module)
    summary = fit(module, data, checkpoint_dir, seed=seed, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs,
                  max_steps=cfg.max_steps, accelerator=cfg.accelerator, gradient_clip=cfg.gradient_clip,
                  num_workers=cfg.num_workers, progress=progress, callbacks=callbacks, patience=cfg.patience)
    test_labels = data.splits["test"][1]
    predictions = item_predictions(module, data, "test").assign(dataset=dataset, model=model, lr=lr, seed=seed)
    val_labels = data.splits["val"][1]
    val_predictions = item_predictions(module, data, "val").assign(dataset=dataset, model=model, lr=lr, seed=seed)
    val_correct = int(val_predictions["correct"].sum())
    test_correct = int(predictions["correct"].sum())
    # every answer the run gave: test items (the paired tests read them) and validation items (the pick's)
    predictions = pd.concat([predictions.assign(split="test"), val_predictions.assign(split="val")], ignore_index=True)
    summary.update({"variant": variant, "family": family(model), "lr": lr, "chance_accuracy": chance_accuracy(test_labels),
                    "head": head, "split_seed": data.meta["split_seed"], "val_correct": val_correct,
                    "test_correct": test_correct, "test_count": len(test_labels),
                    "val_count": len(val_labels), **dataset_ceilings(data)})
    if name == "bag_of_embeddings":
        summary["energy_monotone_fraction"] = math.nan
        return module, summary, pd.DataFrame(), pd.DataFrame(), predictions
    indices = sample_indices(config["energy_curves"]["samples"], len(test_labels), seed)
    trace = layer_trace(module, data, "test", indices)
    summary["energy_monotone_fraction"] = float(non_increasing(trace.before, trace.after).double().mean())
    relu = cfg.relu if name.startswith("unfolded") else False
    encoder = module.encoder
    record = {"alpha_attention": cfg.alpha_attention if name.startswith("unfolded") else math.nan,
              "w_scale": 1.0 if name.startswith("unfolded") else math.nan,
              "test_accuracy": summary["test_accuracy"], "test_count": len(test_labels), "test_loss": summary["test_loss"],
              "chance_accuracy": chance_accuracy(test_labels), **parameter_changes(start, module)}
    rows = trace_rows(trace, indices, dataset=dataset, variant=model, seed=seed, lr=lr, relu=relu, state="trained",
                      **record)
    if getattr(encoder, "learned_step_sizes", False):
        with torch.no_grad():
            sizes = [encoder.step_sizes(t) for t in range(encoder.num_layers)]
        summary["learned_alpha_attention"] = [float(a) for a, _ in sizes]
        summary["learned_alpha_ffn"] = [float(b) for _, b in sizes]
    depth = pd.DataFrame()
    if encoder.tied:
        depth = depth_rows(module, data, depth_factor=cfg.depth_factor).assign(
            dataset=dataset, model=model, seed=seed, lr=lr, trained_depth=encoder.num_layers)
    return module, summary, rows, depth, predictions


def resolve_head(head: str, dataset: str) -> str:
    """Config ``train.head``: ``auto`` is the affine head on the interaction tasks (registry
    ``interaction``), LayerNorm + linear elsewhere."""
    if head != "auto":
        return head
    return "affine" if DATASETS[dataset].interaction else "layer_norm"


def item_predictions(module: SequenceClassifier, data: PreparedData, split: str = "test") -> pd.DataFrame:
    """One row per item of ``split``: its index, label, the module's prediction and whether it is right."""
    labels = data.splits[split][1]
    predicted = module.predict_split(data, split)
    return pd.DataFrame({"item": np.arange(len(labels)), "label": labels.numpy(), "prediction": predicted.numpy(),
                         "correct": (predicted == labels).numpy()})


def dataset_ceilings(data: PreparedData) -> dict:
    """Accuracy ceilings the generator knows (:mod:`unfolded.data.ceilings`), NaN otherwise."""
    ceilings = data.meta.get("ceilings") or {}
    return {key: math.nan if ceilings.get(key) is None else float(ceilings[key]) for key in CEILING_KEYS}


@torch.no_grad()
@torch.no_grad()
def depth_rows(module: SequenceClassifier, data: PreparedData, depth_factor: int = 4, split: str = "test",
               batch_size: int = 256) -> pd.DataFrame:
    """Run a tied encoder at every depth from 1 to ``depth_factor`` x its trained depth on the whole
    ``split``: test accuracy, the mean relative update ``|Y_t - Y_{t-1}| / |Y_{t-1}|`` of the last
    layer, and (unfolded encoders only) the mean energy of the final state. Float32, in eval mode."""
    from .data import collate

    module = module.eval().float().cpu()
    encoder = module.encoder
    if not encoder.tied:
        raise ValueError("depth extrapolation needs tied weights (an untied encoder has no layer beyond its depth)")
    sequences, labels = data.splits[split]
    max_depth = depth_factor * encoder.num_layers
    correct = torch.zeros(max_depth + 1, dtype=torch.long)
    updates = torch.zeros(max_depth + 1, dtype=torch.float64)
    energies = torch.zeros(max_depth + 1, dtype=torch.float64)
    unfolded = hasattr(encoder, "step_sizes")
    for begin in range(0, len(labels), batch_size):
        batch = collate([(sequences[i], labels[i]) for i in range(begin, min(begin + batch_size, len(labels)))])
        if batch["inputs"].is_floating_point():
            batch["inputs"] = batch["inputs"].float()
        mask = batch["mask"]
        embedded = module.embed(batch)
        trace = encoder.trace(embedded, mask, num_layers=max_depth)
        updates[1:] += trace.update.double().sum(0)
        if unfolded:
            energies += trace.energies.double().sum(0)
        # one pass: the state after layer t is what the encoder returns when run at depth t
        for depth, hidden in enumerate(encoder.states(embedded, mask, num_layers=max_depth), start=1):
            correct[depth] += (module.head(hidden, mask).argmax(-1) == batch["labels"]).sum()
    count = len(labels)
    rows = [{"depth": depth, "test_accuracy": int(correct[depth]) / count, "update": float(updates[depth] / count),
             "energy": float(energies[depth] / count) if unfolded else math.nan}
            for depth in range(1, max_depth + 1)]
    return pd.DataFrame(rows)


def linear_probe(data: PreparedData, C_grid: list[float], seed: int = 0) -> dict:
    """Logistic regression (scikit-learn) on the flattened raw input: the token vectors (tokens) or
    the patches (features) of every position, zero-padded to the longest sequence. ``C`` is picked on
    the validation split; returns test and validation accuracy, the grid and the pick."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    longest = max(len(sequence) for sequences, _ in data.splits.values() for sequence in sequences)

    def flat(split: str) -> tuple[np.ndarray, np.ndarray]:
        sequences, labels = data.splits[split]
        rows = []
        for sequence in sequences:
            values = data.vectors[sequence] if data.kind == "tokens" else sequence.float()
            padded = torch.zeros(longest, values.shape[-1])
            padded[: len(values)] = values
            rows.append(padded.flatten())
        return torch.stack(rows).double().numpy(), labels.numpy()

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = flat("train"), flat("val"), flat("test")
    scaler = StandardScaler().fit(x_train)
    x_train, x_val, x_test = scaler.transform(x_train), scaler.transform(x_val), scaler.transform(x_test)
    scores = {}
    for C in C_grid:
        fitted = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(x_train, y_train)
        scores[C] = (fitted.score(x_val, y_val), fitted)
    best = max(C_grid, key=lambda C: (scores[C][0], -C))  # ties: the stronger regularisation
    return {"test_accuracy": float(scores[best][1].score(x_test, y_test)), "val_accuracy": float(scores[best][0]),
            "C": best, "C_grid": list(C_grid), "features": int(x_train.shape[1]),
            "parameters": int(x_train.shape[1] * max(1, data.num_classes if data.num_classes > 2 else 1)
                              + max(1, data.num_classes if data.num_classes > 2 else 1)),
            "chance_accuracy": chance_accuracy(data.splits["test"][1]), **dataset_ceilings(data)}
