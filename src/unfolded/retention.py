"""Input retention: how much of the input a tied unfolded encoder keeps, layer by layer (docs/theory.md §8).

`derived` The exact energy has no term in the input X, so its minimiser is the same point for every input
(docs/theory.md §8, Proposition 8.1): descent that converges forgets the input. Two measurements, per layer
``t`` from 0 (the embedded input) to the trained depth L, and on to 4L for tied encoders:

- **spread**: the spread across test inputs of the pooled state (the masked mean over tokens, what the
  classifier reads), ``sqrt(sum_k Var_i p_ik)``, relative to its value at layer 0: near 0, every input is
  pooled to one point;
- **probe**: the test accuracy of a logistic regression (scikit-learn) on the pooled state of that layer,
  fitted on the *train* split's states of the same layer (at most ``train_samples`` of them), with features
  standardised on those train states, so that a tiny scale alone does not decide. It tells whether the input
  is still there to be read, whatever the trained head makes of it.

The reading of the exact model's failure (docs/results.md) is fixed before measuring (:func:`reading`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

__all__ = ["READINGS", "input_retention", "pooled_states", "probe_accuracy", "reading", "retention_rows"]

#: The three readings of the exact model's failure, fixed before the measurement (issue text, docs/results.md).
READINGS = {
    "forgot": "the representation forgot the input",
    "optimisation": "an optimisation failure",
    "unresolved": "unresolved",
}


@torch.no_grad()
def pooled_states(module, data, split: str, indices: list[int] | None = None, max_depth: int | None = None,
                  batch_size: int = 256) -> np.ndarray:
    """The pooled state (masked mean over tokens) after each layer ``0..max_depth`` of ``module``'s encoder on the
    chosen items of ``split``: an array ``(max_depth + 1, items, d)`` in float64 (layer 0: the embedded input)."""
    from .data import collate

    module = module.eval().cpu().double()
    encoder = module.encoder
    depth = encoder.num_layers if max_depth is None else max_depth
    sequences, labels = data.splits[split]
    indices = list(range(len(labels))) if indices is None else list(indices)
    chunks = []
    for begin in range(0, len(indices), batch_size):
        chosen = indices[begin:begin + batch_size]
        batch = collate([(sequences[i], labels[i]) for i in chosen])
        if batch["inputs"].is_floating_point():
            batch["inputs"] = batch["inputs"].double()
        mask = batch["mask"]
        weights = mask.unsqueeze(-1).double()
        embedded = module.embed(batch)
        states = [embedded, *encoder.states(embedded, mask, num_layers=depth)]
        pooled = [(state * weights).sum(1) / weights.sum(1).clamp_min(1.0) for state in states]
        chunks.append(torch.stack(pooled).numpy())
    return np.concatenate(chunks, axis=1)


def spread(pooled: np.ndarray) -> float:
    """``sqrt(sum_k Var_i p_ik)`` of pooled states ``(items, d)``: their spread across inputs."""
    return float(np.sqrt(pooled.var(axis=0).sum()))


def probe_accuracy(train_states: np.ndarray, train_labels: np.ndarray, test_states: np.ndarray,
                   test_labels: np.ndarray, seed: int = 0) -> int:
    """Correct test answers of a logistic regression fitted on ``train_states`` (standardised on them) and
    applied to ``test_states``: the probe never sees a test state or label before it answers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(train_labels)) < 2:
        raise ValueError("probe_accuracy: the train labels hold a single class")
    scaler = StandardScaler().fit(train_states)
    probe = LogisticRegression(max_iter=2000, random_state=seed).fit(scaler.transform(train_states), train_labels)
    return int((probe.predict(scaler.transform(test_states)) == test_labels).sum())


def retention_rows(module, data, max_depth: int, train_samples: int, seed: int = 0) -> pd.DataFrame:
    """One row per layer ``0..max_depth``: the pooled state's spread across the test inputs relative to layer 0,
    and the probe's correct answers and accuracy on the whole test split (fitted on at most ``train_samples``
    train sequences drawn with ``seed``)."""
    from .data import sample_indices

    train_labels_all = data.splits["train"][1]
    chosen = sample_indices(train_samples, len(train_labels_all), seed)
    train = pooled_states(module, data, "train", chosen, max_depth)
    test = pooled_states(module, data, "test", None, max_depth)
    train_labels, test_labels = train_labels_all[chosen].numpy(), data.splits["test"][1].numpy()
    base = spread(test[0])
    rows = []
    for layer in range(max_depth + 1):
        correct = probe_accuracy(train[layer], train_labels, test[layer], test_labels, seed)
        rows.append({"layer": layer, "spread": spread(test[layer]),
                     "relative_spread": spread(test[layer]) / base if base > 0 else math.nan,
                     "probe_correct": correct, "test_count": len(test_labels),
                     "probe_accuracy": correct / len(test_labels), "train_samples": len(chosen)})
    return pd.DataFrame(rows)


def input_retention(config: dict, jobs: list[dict], train_samples: int = 1500, depth_factor: int = 4,
                    progress: bool = True) -> pd.DataFrame:
    """:func:`retention_rows` for every job: a dict with ``module`` (a classifier), ``data`` (its prepared splits)
    and the columns that name it (``dataset``, ``model``, ``state``, ``seed``, ...). Tied encoders run to
    ``depth_factor`` times their trained depth. Each row also carries the model's own test accuracy and how
    many classes it predicts (the head it was trained with)."""
    from .traces import chance_accuracy

    frames = []
    for job in tqdm(jobs, desc="input retention", disable=not progress):
        module, data = job["module"], job["data"]
        encoder = module.encoder
        depth = encoder.num_layers * (depth_factor if getattr(encoder, "tied", False) else 1)
        rows = retention_rows(module, data, depth, train_samples, seed=int(job.get("seed", 0)))
        predictions = module.float().predict_split(data, "test")
        labels = data.splits["test"][1]
        columns = {key: value for key, value in job.items() if key not in ("module", "data")}
        frames.append(rows.assign(**columns, trained_depth=encoder.num_layers,
                                  model_correct=int((predictions == labels).sum()),
                                  predicted_classes=int(predictions.unique().numel()),
                                  chance_accuracy=chance_accuracy(labels)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def reading(rows: pd.DataFrame) -> dict:
    """The prespecified reading of a trained exact model's failure, on its median seed (by the model's own test
    accuracy; ties: the smaller seed) and the probe at its trained depth L, in exact counts:

    - probe below the majority class + 0.05: "the representation forgot the input";
    - probe at least the majority class + 0.2 while the model answers one class: "an optimisation failure";
    - otherwise: "unresolved".
    """
    from .counts import accuracy_share, at_least, share

    at_depth = rows[rows["layer"] == rows["trained_depth"]]
    seeds = at_depth.sort_values(["model_correct", "seed"], ignore_index=True)
    median = seeds.iloc[(len(seeds) - 1) // 2]
    count = int(median["test_count"])
    probe, majority = share(int(median["probe_correct"]), count), accuracy_share(median["chance_accuracy"], count)
    if not at_least(probe, majority, 0.05):
        key = "forgot"
    elif at_least(probe, majority, 0.2) and int(median["predicted_classes"]) == 1:
        key = "optimisation"
    else:
        key = "unresolved"
    return {"reading": key, "text": READINGS[key], "seed": int(median["seed"]),
            "probe_accuracy": float(median["probe_accuracy"]), "chance_accuracy": float(median["chance_accuracy"]),
            "model_accuracy": int(median["model_correct"]) / count, "predicted_classes": int(median["predicted_classes"]),
            "relative_spread": float(median["relative_spread"]), "test_count": count, "layer": int(median["layer"])}


def archive_jobs(archive: Path, models: tuple[str, ...], config: dict, dataset: str = "*") -> list[dict]:
    """Retention jobs for an archived study's checkpoints of ``models`` (each rebuilt on its own seed's splits with
    the archive's data settings)."""
    from .archive import load_checkpoint
    from .data import prepare
    from .sweeps import _checkpoints

    jobs = []
    for path in _checkpoints(archive, models, dataset):
        seed = int(path.stem.removeprefix("seed"))
        data = prepare(path.parent.parent.name, config, seed=seed)
        jobs.append({"module": load_checkpoint(path, data), "data": data,
                     "dataset": path.parent.parent.name, "model": path.parent.name, "state": "trained",
                     "seed": seed, "source": Path(archive).name})
    return jobs


def learned_jobs(archive: Path, variants: tuple[str, ...], config: dict, untrained: bool = True) -> list[dict]:
    """Retention jobs for an archive of Figure 6's learned models (:func:`unfolded.recipes.train_learned`) of
    ``variants``; with ``untrained``, the same models at their initialisation too (rebuilt from the seed, as the
    learned-models stage built them before training)."""
    import lightning as L

    from .curves import _module
    from .data import prepare
    from .encoders import paper_encoder
    from .recipes import load_learned
    from .sweeps import _checkpoints

    jobs = []
    for path in _checkpoints(archive, variants):
        dataset, seed = path.parent.parent.name, int(path.stem.removeprefix("seed"))
        data = prepare(dataset, config, seed=seed)
        module, record = load_learned(path, data)
        common = {"dataset": dataset, "model": record["curve_variant"], "seed": seed, "source": Path(archive).name}
        jobs.append({"module": module, "data": data, "state": "trained", **common})
        if untrained:
            L.seed_everything(seed, verbose=False)
            hyper = module.hparams
            options = {"alpha_attention": record["alpha_attention"], "w_scale": record["w_scale"]} \
                if record["curve_variant"] == "exact_active" else {}
            if record["curve_variant"] == "exact_recall":
                options["recall"] = record["recall"]
            encoder = paper_encoder(hyper["width"], hyper["num_layers"], bool(record["relu"]), record["curve_variant"],
                                    **options)
            fresh = _module(data, encoder, hyper["width"], record["lr"], Path("."), optimizer=record["optimizer"])
            jobs.append({"module": fresh, "data": data, "state": "untrained", **common})
    return jobs
