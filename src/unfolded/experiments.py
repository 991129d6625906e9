"""The trained experiments: energy curves per layer (Figures 5-6) and unfolded vs standard runs.

Each function returns a tidy table; the CLI writes it with provenance.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from .config import TrainConfig
from .data import PreparedData, prepare
from .diagnostics import curve_summary_row, non_increasing, relative_spread
from .models import LayerTrace
from .training import SequenceClassifier, authors_normalise_, family, fit, layer_trace, paper_encoder, split_model

__all__ = [
    "curve_summary",
    "depth_rows",
    "linear_probe",
    "energy_curves",
    "monotone_fraction",
    "parameter_changes",
    "sample_indices",
    "summarise_runs",
    "trace_rows",
    "train_run",
]

#: A curve: Figures 5-6's (lr NaN) or a trained run's (variant = the run's model, lr its learning rate).
CURVE_KEYS = ["dataset", "variant", "relu", "state", "seed", "lr"]
#: Per-curve attributes repeated on every row of a curve (NaN where they do not apply).
CURVE_ATTRIBUTES = ["alpha_attention", "w_scale", "test_accuracy", "test_loss", "chance_accuracy",
                    "change_W", "change_Wf", "change_B"]


def sample_indices(count: int, population: int, seed: int) -> list[int]:
    """The authors draw test samples with ``random.sample`` under a fixed seed (docs/theory.md §4.4)."""
    return sorted(random.Random(seed).sample(range(population), min(count, population)))


def monotone_fraction(energies: torch.Tensor) -> float:
    """Share of consecutive points of ``energies (samples, layers + 1)`` that did not rise
    (:data:`unfolded.diagnostics.DESCENT_TOLERANCE`). For a tied model or a fixed probe energy this
    is the share of non-increasing steps."""
    return float(non_increasing(energies[:, :-1], energies[:, 1:]).double().mean())


def _module(data: PreparedData, encoder, width: int, lr: float, checkpoint_dir: Path) -> SequenceClassifier:
    return SequenceClassifier(
        kind=data.kind, input_dim=data.input_dim, num_classes=data.num_classes, model="unfolded_tied",
        width=width, num_layers=encoder.num_layers, vectors=data.vectors, encoder=encoder, optimizer="sgd",
        lr=lr, scheduler="none", diagnostics_dir=str(checkpoint_dir),
    )


def trace_rows(trace: LayerTrace, indices: list[int], **columns) -> pd.DataFrame:
    """Tidy rows, one per (sample, layer), of a :class:`unfolded.models.LayerTrace`.

    ``energy`` is the plotted curve; ``step_before``/``step_middle``/``step_after`` are the energies of
    the layer that produced this state, at its input, after its attention sub-step and at its
    output (NaN at layer 0); ``spread`` is the token spread and ``relative_spread`` the same divided
    by its layer-0 value; ``update`` the relative change of the state."""
    samples, layers = trace.energies.shape
    nan_column = torch.full((samples, 1), float("nan"), dtype=torch.float64)

    def padded(values: torch.Tensor) -> np.ndarray:
        return torch.cat([nan_column, values.double()], 1).reshape(-1).numpy()

    spread = trace.spread.double()
    relative = relative_spread(spread)
    return pd.DataFrame({
        **columns,
        "sample": np.repeat(np.asarray(indices), layers),
        "layer": np.tile(np.arange(layers), samples),
        "energy": trace.energies.double().reshape(-1).numpy(),
        "step_before": padded(trace.before),
        "step_middle": padded(trace.middle),
        "step_after": padded(trace.after),
        "spread": spread.reshape(-1).numpy(),
        "relative_spread": relative.reshape(-1).numpy(),
        "update": padded(trace.update),
    })


def _energy_parameters(module: torch.nn.Module) -> dict[str, list[torch.Tensor]]:
    """The effective W, Wf (after its parametrisation) and B of every unfolded layer; {} otherwise."""
    layers = getattr(module.encoder, "layers", [])
    if not layers or not hasattr(layers[0], "ffn_weight"):
        return {}
    with torch.no_grad():
        return {
            "W": [layer.W.detach().cpu().double().clone() for layer in layers],
            "Wf": [layer.ffn_weight().detach().cpu().double().clone() for layer in layers],
            "B": [layer.B.detach().cpu().double().clone() for layer in layers],
        }


def parameter_changes(before: dict[str, list[torch.Tensor]], module: torch.nn.Module) -> dict[str, float]:
    """``|p_after - p_before| / |p_before|`` (Frobenius) of the effective W, Wf and B, averaged over
    layers (one layer when tied); NaN for models without an energy (standard Transformers)."""
    after = _energy_parameters(module)
    changes = {}
    for name in ("W", "Wf", "B"):
        if name not in before:
            changes[f"change_{name}"] = math.nan
            continue
        ratios = [float((a - b).norm() / b.norm().clamp_min(1e-300)) for a, b in zip(after[name], before[name], strict=True)]
        changes[f"change_{name}"] = float(np.mean(ratios))
    return changes


def chance_accuracy(labels: torch.Tensor) -> float:
    """Accuracy of always predicting the most frequent class of ``labels``."""
    return float(torch.bincount(labels).max()) / len(labels)


def energy_curves(config: dict, dataset: str, checkpoint_root: Path, progress: bool = True) -> pd.DataFrame:
    """Per-layer traces of ``samples`` test sequences for each variant: untrained with and without
    ReLU (Figure 5), and after the authors' training recipe with ReLU (Figure 6): SGD, batch size 1,
    ``train_steps`` steps (docs/theory.md §4.4). Trained rows carry the model's test accuracy, test loss
    and the relative change of W, Wf and B."""
    cfg = config["energy_curves"]
    data = prepare(dataset, config)
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
        start = _energy_parameters(module)
        summary = fit(module, data, checkpoint_dir, seed=cfg["seed"], batch_size=1, max_epochs=-1,
                      max_steps=cfg["train_steps"], accelerator=config["train"]["accelerator"], validate=False,
                      progress=progress)
        if variant == "authors":
            authors_normalise_(module.encoder)  # the authors normalise again before painting
        record = {"test_accuracy": summary["test_accuracy"], "test_loss": summary["test_loss"],
                  "chance_accuracy": chance, **parameter_changes(start, module)}
        trace = layer_trace(module, data, "test", indices)
        frames.append(trace_rows(trace, indices, **keys, relu=True, state="trained", **record))
    table = pd.concat(frames, ignore_index=True)
    for column in CURVE_ATTRIBUTES:
        if column not in table:
            table[column] = math.nan
    return table


def variant_options(variant: str, cfg: dict) -> dict:
    """Step size and W scale of an energy-curve variant: the paper's (1, 1) except ``exact_active``."""
    if variant == "exact_active":
        regime = cfg["active_regime"]
        return {"alpha_attention": float(regime["alpha_attention"]), "w_scale": float(regime["w_scale"])}
    return {"alpha_attention": 1.0, "w_scale": 1.0}


def _curve_tensors(group: pd.DataFrame):
    steps = group[group["layer"] > 0]
    wide = lambda column, frame: torch.tensor(  # noqa: E731
        frame.pivot(index="sample", columns="layer", values=column).to_numpy(), dtype=torch.float64)
    return (wide("step_before", steps), wide("step_after", steps), wide("relative_spread", group),
            wide("step_middle", steps))


def _with_keys(table: pd.DataFrame) -> pd.DataFrame:
    """A copy with every curve key present (seed -1 and lr NaN where a table has none)."""
    table = table.copy()
    if "seed" not in table:
        table["seed"] = -1
    if "lr" not in table:
        table["lr"] = math.nan
    return table


def curve_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per curve (dataset, variant, relu, state, seed) with the shares of
    :func:`unfolded.diagnostics.curve_summary_row` and, for trained curves, accuracy and weight change."""
    table = _with_keys(table)
    rows = []
    for key, group in table.groupby(CURVE_KEYS, sort=True, dropna=False):
        before, after, relative_spread, middle = _curve_tensors(group)
        attention = middle - before if torch.isfinite(middle).all() else None
        row = dict(zip(CURVE_KEYS, key, strict=True))
        row.update(curve_summary_row(before, after, relative_spread, attention))
        row.setdefault("attention_share", math.nan)
        row.setdefault("attention_share_active", math.nan)
        for column in CURVE_ATTRIBUTES:
            row[column] = group[column].iloc[0] if column in group else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def train_run(config: dict, dataset: str, model: str, seed: int, checkpoint_dir: Path, progress: bool = True,
              callbacks: tuple = (), lr: float | None = None):
    """Train one (dataset, model, lr, seed) run; returns the module, its summary, test energies and the
    depth-extrapolation rows (tied encoders only; empty otherwise).

    ``model`` may name a variant (``unfolded_tied-multihead``, :data:`unfolded.training.VARIANTS`);
    ``lr`` defaults to the first learning rate of the model's family in ``train.learning_rates``."""
    cfg = TrainConfig.from_config(config)
    name, variant = split_model(model)
    lr = float(cfg.learning_rates[family(model)][0] if lr is None else lr)
    data = prepare(dataset, config)
    longest = max(len(sequence) for sequences, _ in data.splits.values() for sequence in sequences)
    L.seed_everything(seed, workers=True, verbose=False)
    module = SequenceClassifier(
        kind=data.kind, input_dim=data.input_dim, num_classes=data.num_classes, model=model, width=cfg.width,
        num_layers=cfg.num_layers, vectors=data.vectors, embedding=cfg.embedding, encoder_options=cfg.as_dict(),
        optimizer=cfg.optimizer, lr=lr, weight_decay=cfg.weight_decay, scheduler=cfg.scheduler,
        diagnostics_dir=str(checkpoint_dir), positions=cfg.positions, max_tokens=max(longest, 1),
    )
    start = _energy_parameters(module)
    summary = fit(module, data, checkpoint_dir, seed=seed, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs,
                  max_steps=cfg.max_steps, accelerator=cfg.accelerator, gradient_clip=cfg.gradient_clip,
                  num_workers=cfg.num_workers, progress=progress, callbacks=callbacks, patience=cfg.patience)
    test_labels = data.splits["test"][1]
    summary.update({"variant": variant, "family": family(model), "lr": lr, "chance_accuracy": chance_accuracy(test_labels),
                    **dataset_ceilings(data)})
    if name == "bag_of_embeddings":
        summary["energy_monotone_fraction"] = math.nan
        return module, summary, pd.DataFrame(), pd.DataFrame()
    indices = sample_indices(config["energy_curves"]["samples"], len(test_labels), seed)
    trace = layer_trace(module, data, "test", indices)
    summary["energy_monotone_fraction"] = float(non_increasing(trace.before, trace.after).double().mean())
    relu = cfg.relu if name.startswith("unfolded") else False
    encoder = module.encoder
    record = {"alpha_attention": cfg.alpha_attention if name.startswith("unfolded") else math.nan,
              "w_scale": 1.0 if name.startswith("unfolded") else math.nan,
              "test_accuracy": summary["test_accuracy"], "test_loss": summary["test_loss"],
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
    return module, summary, rows, depth


def dataset_ceilings(data: PreparedData) -> dict:
    """Accuracy ceilings the generator knows (order task: bag-of-words and oracle), NaN otherwise."""
    ceilings = data.meta.get("ceilings") or {}
    return {key: math.nan if ceilings.get(key) is None else float(ceilings[key])
            for key in ("bag_of_words_ceiling", "oracle_ceiling")}


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


def summarise_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """Tidy accuracy table: one row per (dataset, model, seed) from each run's provenance.json."""
    import json

    rows = []
    for run_dir in run_dirs:
        record = json.loads((Path(run_dir) / "provenance.json").read_text())
        summary = record["summary"]
        rows.append({"dataset": record["dataset"], "model": record["model"], "seed": record["seed"], **summary})
    return pd.DataFrame(rows).sort_values(["dataset", "model", "seed"], ignore_index=True)


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
        data = prepare(dataset, config)
        width = data.vectors.shape[1] if data.kind == "tokens" else config["train"]["width"]
        population = len(data.splits["test"][1])
        for phase, seed, alpha, scale, relu in tqdm(grid, desc=f"regime search {dataset}", disable=not progress):
            indices = sample_indices(search["samples"], population, seed)
            L.seed_everything(seed, verbose=False)
            encoder = paper_encoder(width, cfg["num_layers"], relu, "exact_active", alpha_attention=alpha, w_scale=scale)
            trace = layer_trace(_module(data, encoder, width, cfg["lr"], Path(".")), data, "test", indices)
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


def layer_decomposition(table: pd.DataFrame) -> pd.DataFrame:
    """Per curve and layer: how much of the step's energy decrease comes from the attention sub-step
    (``step_before - step_middle``) and how much from the feed-forward sub-step with its ReLU/LN
    (``step_middle - step_after``), as means over samples, and the share of samples whose state
    was active (relative spread >= COLLAPSE_THRESHOLD) before the step. Curves without a split
    (standard models) are left out."""
    from .diagnostics import COLLAPSE_THRESHOLD

    table = _with_keys(table).sort_values([*CURVE_KEYS, "sample", "layer"])
    table["active_before"] = table.groupby([*CURVE_KEYS, "sample"], dropna=False)["relative_spread"].shift(1) \
        >= COLLAPSE_THRESHOLD
    steps = table[(table["layer"] > 0) & table["step_middle"].notna()]
    steps = steps.assign(attention_decrease=steps["step_before"] - steps["step_middle"],
                         ffn_decrease=steps["step_middle"] - steps["step_after"],
                         total_decrease=steps["step_before"] - steps["step_after"])
    grouped = steps.groupby([*CURVE_KEYS, "layer"], sort=True, dropna=False)
    return grouped.agg(samples=("sample", "count"), active_share=("active_before", "mean"),
                       attention_decrease=("attention_decrease", "mean"), ffn_decrease=("ffn_decrease", "mean"),
                       total_decrease=("total_decrease", "mean")).reset_index()
