"""Inference-only measurements on a study's archived checkpoints (no training): the feed-forward step size
of trained tied unfolded encoders, run at depths around the trained one (the depth mechanism,
docs/results.md), and the energies the trained layers' steps descend (:func:`trained_energies`).

`derived` With step size 1, the feed-forward step multiplies the state's distance to its minimiser by
``-lambda`` along each eigenvector of ``Wf`` (docs/theory.md §2.2), so a state that oscillates from
layer to layer sits on the other side at L - 1 and L + 1. A step size below ``1 / (1 + s)``, with ``s``
the spectral bound of ``Wf``, keeps every factor ``1 - alpha (1 + lambda)`` non-negative: no
oscillation. The criterion (:func:`unfolded.summaries.sweep_criterion`) was fixed before the sweep ran.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from .archive import load_checkpoint
from .data import collate, prepare
from .models import SUBSTEP_ENERGIES

__all__ = ["STUDY_MODELS", "SWEEP_ALPHAS", "TRAINED_ENERGIES", "accuracy_by_depth", "alpha_ffn_sweep", "depth_profile",
           "learned_curves", "learned_step_sizes", "plugin_models", "plugin_trained_energies", "trained_energies"]

#: The feed-forward step sizes of the sweep (1 is the trained one).
SWEEP_ALPHAS = (1.0, 0.75, 0.5, 0.25)


def _checkpoints(archive: Path, models: tuple[str, ...] = ("*",), dataset: str = "*") -> list[Path]:
    """An archive's checkpoints ``checkpoints/<dataset>/<model>/seed<k>.pt`` of ``models`` (glob patterns), sorted."""
    return sorted(path for model in models for path in Path(archive).glob(f"checkpoints/{dataset}/{model}/seed*.pt"))


@torch.no_grad()
def accuracy_by_depth(module, data, max_depth: int, split: str = "test", batch_size: int = 256) -> list[float]:
    """Test accuracy of a tied encoder's classifier after each of ``max_depth`` layers (float32, eval mode,
    one pass per batch): element ``t - 1`` is the accuracy at depth ``t``, computed as
    :func:`unfolded.runs.depth_rows` computes it, without the energy trace."""
    from torch.nn.utils import parametrize

    module = module.eval().float().cpu()
    sequences, labels = data.splits[split]
    correct = torch.zeros(max_depth, dtype=torch.long)
    for begin in range(0, len(labels), batch_size):
        batch = collate([(sequences[i], labels[i]) for i in range(begin, min(begin + batch_size, len(labels)))])
        if batch["inputs"].is_floating_point():
            batch["inputs"] = batch["inputs"].float()
        mask = batch["mask"]
        with parametrize.cached():
            states = module.encoder.states(module.embed(batch), mask, num_layers=max_depth)
            for depth, hidden in enumerate(states):
                correct[depth] += (module.head(hidden, mask).argmax(-1) == batch["labels"]).sum()
    return [int(count) / len(labels) for count in correct]


def depth_profile(jobs: list[dict], depth_factor: int = 4, progress: bool = True) -> pd.DataFrame:
    """Every trained tied encoder of ``jobs`` (:mod:`unfolded.retention`'s jobs) run at inference at every depth
    from 1 to ``depth_factor`` x its trained depth L: one row per (job, depth) with the correct test answers."""
    rows = []
    tied = [job for job in jobs if job.get("state", "trained") == "trained" and getattr(job["module"].encoder, "tied", False)]
    for job in tqdm(tied, desc="depth profile", disable=not progress):
        module, data = job["module"], job["data"]
        trained = module.encoder.num_layers
        labels = data.splits["test"][1]
        columns = {key: value for key, value in job.items() if key not in ("module", "data")}
        for depth, accuracy in enumerate(accuracy_by_depth(module, data, depth_factor * trained), start=1):
            rows.append({**columns, "trained_depth": trained, "depth": depth,
                         "test_correct": round(accuracy * len(labels)), "test_count": len(labels),
                         "test_accuracy": accuracy})
    return pd.DataFrame(rows)


@torch.no_grad()
def alpha_ffn_sweep(archive: Path, config: dict, models: tuple[str, ...] = ("unfolded_tied",),
                    alphas: tuple[float, ...] = SWEEP_ALPHAS, offsets: tuple[int, ...] = (-2, -1, 0, 1, 2),
                    progress: bool = True) -> pd.DataFrame:
    """Test accuracy of every archived checkpoint of ``models`` with its feed-forward step size set to each
    of ``alphas`` (every layer), at the depths ``L + offset``; one row per (dataset, model, seed, alpha,
    depth). ``config``: the study's configuration (its data settings rebuild each run's test split)."""
    paths = _checkpoints(archive, models)
    if not paths:
        raise FileNotFoundError(f"no checkpoints of {list(models)} under {archive}/checkpoints (archived before "
                                "checkpoints were kept?)")
    rows = []
    for path in tqdm(paths, desc="alpha_ffn sweep", disable=not progress):
        dataset, model, seed = path.parent.parent.name, path.parent.name, int(path.stem.removeprefix("seed"))
        data = prepare(dataset, config, seed=seed)
        module = load_checkpoint(path, data)
        encoder = module.encoder
        trained = encoder.num_layers
        bound = (module.hparams.get("encoder_options") or {}).get("spectral_bound") or math.nan
        for alpha in alphas:
            for layer in encoder.layers:
                layer.alpha_ffn = alpha
            accuracies = accuracy_by_depth(module, data, trained + max(offsets))
            for offset in offsets:
                depth = trained + offset
                if depth < 1:
                    continue
                accuracy = accuracies[depth - 1]
                rows.append({"dataset": dataset, "model": model, "seed": seed, "alpha_ffn": alpha,
                             "trained_depth": trained, "offset": offset, "depth": depth,
                             "test_accuracy": accuracy, "spectral_bound": bound})
    return pd.DataFrame(rows)


#: The energies measured on trained checkpoints (:func:`trained_energies`): the step each one judges, and
#: whether a theorem covers it (docs/theory.md §2).
TRAINED_ENERGIES = {name: guarantee for name, guarantee in SUBSTEP_ENERGIES.values()}


@torch.no_grad()
def trained_energies(archive: Path, config: dict, models: tuple[str, ...] = ("unfolded_tied", "unfolded_tied-residual"),
                     samples: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Each energy of :data:`unfolded.models.SUBSTEP_ENERGIES` before and after every layer step of the archived
    checkpoints of ``models``: one row per (dataset, model, seed, energy) with the non-increasing, strict and active
    shares of :func:`unfolded.diagnostics.curve_summary_row`. The trace is Figure 6's (:func:`learned_curves`):
    :func:`unfolded.traces.layer_trace` in float64 on ``energy_curves.samples`` test sequences drawn with
    ``energy_curves.seed`` (``samples`` overrides the count), so the two report one number for one quantity."""
    from .data import sample_indices
    from .diagnostics import curve_summary_row, relative_spread
    from .traces import layer_trace

    paths = _checkpoints(archive, models)
    if not paths:
        raise FileNotFoundError(f"no checkpoints of {list(models)} under {archive}/checkpoints")
    cfg = config["energy_curves"]
    samples = cfg["samples"] if samples is None else samples
    rows = []
    for path in tqdm(paths, desc="trained energies", disable=not progress):
        dataset, model, seed = path.parent.parent.name, path.parent.name, int(path.stem.removeprefix("seed"))
        data = prepare(dataset, config, seed=seed)
        module = load_checkpoint(path, data)
        recorded = float(torch.load(path, map_location="cpu", weights_only=True)["test_accuracy"])
        indices = sample_indices(samples, len(data.splits["test"][1]), cfg["seed"])
        trace = layer_trace(module, data, "test", indices)
        relative = relative_spread(trace.spread)
        for stem, (before, after) in trace.substeps.items():
            if not torch.isfinite(before).any():
                continue  # an energy that does not apply (no ReLU)
            name, guarantee = SUBSTEP_ENERGIES[stem]
            row = curve_summary_row(before, after, relative)
            rows.append({"dataset": dataset, "model": model, "seed": seed, "energy": name,
                         "guarantee": guarantee, "test_accuracy": recorded,
                         **{key: row[key] for key in ("samples", "steps", "monotone_fraction", "strict_fraction",
                                                      "active_fraction", "monotone_fraction_active")}})
    return pd.DataFrame(rows)


def plugin_models() -> tuple[str, ...]:
    """Checkpoint folder patterns of the plug-in encoders and their controls (:data:`unfolded.registry.ENERGY_ENCODERS`)."""
    from .registry import ENERGY_ENCODERS

    return tuple(pattern for stem in ENERGY_ENCODERS for pattern in (f"{stem}_tied", f"{stem}_tied-*"))


@torch.no_grad()
def plugin_trained_energies(archive: Path, config: dict, samples: int | None = None,
                            progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The energies of the archived plug-in encoders (:mod:`unfolded.energy_encoders`), on ``energy_curves.samples``
    test sequences drawn with ``energy_curves.seed`` (float64, at the trained depth).

    Returns two tables. Per (dataset, model, seed, energy): the layer's summed energy (``energy``: ``layer``) and
    each plug-in's energy around its own step (``energy``: the plug-in's name), with the non-increasing, strict and
    active shares (:func:`unfolded.diagnostics.curve_summary_row`), the plug-in's guarantee, and
    ``conditions_held``: the share of its steps whose input meets every margin of the plug-in's conditions
    (:meth:`unfolded.energies.Energy.conditions`; NaN where it states none). Per (dataset, model, seed, layer): the
    median over samples of the layer energy and of the token spread relative to layer 0 (the figure's curves)."""
    from .data import sample_indices
    from .diagnostics import active_steps, curve_summary_row, non_increasing, relative_spread, strict_decrease
    from .traces import layer_trace

    def counts(before, after, relative) -> dict:  # exact step counts, what the report's rules compare
        return {"non_increasing": int(non_increasing(before, after).sum()), "strict": int(strict_decrease(before, after).sum()),
                "active": int(active_steps(relative).sum())}

    paths = _checkpoints(archive, plugin_models())
    if not paths:
        raise FileNotFoundError(f"no checkpoints of plug-in encoders {list(plugin_models())} under {archive}/checkpoints")
    cfg = config["energy_curves"]
    samples = cfg["samples"] if samples is None else samples
    rows, layers = [], []
    keys = ("samples", "steps", "monotone_fraction", "strict_fraction", "active_fraction", "monotone_fraction_active",
            "max_increase", "collapse_layer")
    for path in tqdm(paths, desc="plug-in energies", disable=not progress):
        dataset, model, seed = path.parent.parent.name, path.parent.name, int(path.stem.removeprefix("seed"))
        data = prepare(dataset, config, seed=seed)
        module = load_checkpoint(path, data).double()
        recorded = float(torch.load(path, map_location="cpu", weights_only=True)["test_accuracy"])
        indices = sample_indices(samples, len(data.splits["test"][1]), cfg["seed"])
        trace = layer_trace(module, data, "test", indices)
        relative = relative_spread(trace.spread)
        encoder = module.encoder
        base = {"dataset": dataset, "model": model, "seed": seed, "test_accuracy": recorded,
                "attention": bool(encoder.attention)}
        row = curve_summary_row(trace.before, trace.after, relative)
        rows.append({**base, "energy": "layer", "guarantee": "none (the sum over the layer's plug-ins)",
                     "conditions_held": math.nan, **{key: row[key] for key in keys},
                     **counts(trace.before, trace.after, relative)})
        held = _conditions_held(module, data, indices)
        for name, (before, after) in trace.substeps.items():
            row = curve_summary_row(before, after, relative)
            rows.append({**base, "energy": name, "guarantee": encoder.substep_labels[name][1],
                         "conditions_held": held.get(name, math.nan), **{key: row[key] for key in keys},
                         **counts(before, after, relative)})
        energies, spreads = trace.energies.double(), relative
        for layer in range(energies.shape[1]):
            layers.append({**base, "layer": layer, "energy": float(energies[:, layer].median()),
                           "relative_spread": float(spreads[:, layer].median())})
    return pd.DataFrame(rows), pd.DataFrame(layers)


def _conditions_held(module, data, indices: list[int]) -> dict[str, float]:
    """Per plug-in of ``module``'s encoder, the share of its steps (sequence, layer) on the sequences ``indices``
    whose input meets every margin of its conditions (``>= 0``): its guarantee's margins when it states them,
    else all it reports, and for a continuous-time guarantee the discrete step's relative size
    (``relative_step``); plug-ins that report none are left out."""
    from .data import collate

    encoder = module.encoder
    sequences, labels = data.splits["test"]
    batch = collate([(sequences[i], labels[i]) for i in indices])
    if batch["inputs"].is_floating_point():
        batch["inputs"] = batch["inputs"].double()
    mask = batch["mask"]
    instances = encoder.instances()
    state = encoder.project(module.embed(batch), mask, instances)
    counts: dict[str, list[int]] = {}
    for _ in range(encoder.num_layers):
        for name, instance in zip(encoder.plugin_names, instances, strict=True):
            margins = instance.conditions(state, mask)
            wanted = type(instance).guarantee_margins or tuple(margins)
            if type(instance).guarantee == "continuous-time" and "relative_step" in margins:
                wanted = (*wanted, "relative_step")  # a discrete step descends only below the stated relative size
            if wanted:
                ok = torch.ones(state.shape[0], dtype=torch.bool)
                for key in wanted:
                    ok &= (torch.as_tensor(margins[key]).expand(state.shape[0]) >= 0)
                held, total = counts.setdefault(name, [0, 0])
                counts[name] = [held + int(ok.sum()), total + int(ok.numel())]
            state = instance.step(state, mask) if encoder.attention else instance.isolated_step(state, mask)
    return {name: held / total for name, (held, total) in counts.items() if total}


@torch.no_grad()
def learned_step_sizes(archive: Path, models: tuple[str, ...] = ("unfolded_tied-learned_steps",)) -> pd.DataFrame:
    """The step sizes that the archived checkpoints of ``models`` learned, per layer: one row per (dataset,
    model, seed, layer) with alpha_attention and alpha_ffn, their upper bounds, the spectral bound s of Wf and
    whether alpha_ffn < 1 / (1 + s) (every feed-forward factor 1 - alpha (1 + lambda) non-negative: no
    oscillation, docs/results.md), with the run's recorded test accuracy."""
    paths = _checkpoints(archive, models)
    if not paths:
        raise FileNotFoundError(f"no checkpoints of {list(models)} under {archive}/checkpoints")
    rows = []
    for path in paths:
        dataset, model, seed = path.parent.parent.name, path.parent.name, int(path.stem.removeprefix("seed"))
        module = load_checkpoint(path)
        encoder = module.encoder
        if not getattr(encoder, "learned_step_sizes", False):
            raise ValueError(f"{path}: {model} has no learned step sizes")
        accuracy = float(torch.load(path, map_location="cpu", weights_only=True)["test_accuracy"])
        bound = (module.hparams.get("encoder_options") or {}).get("spectral_bound") or math.nan
        for layer in range(encoder.num_layers):
            alpha_attention, alpha_ffn = (float(value) for value in encoder.step_sizes(layer))
            rows.append({"dataset": dataset, "model": model, "seed": seed, "layer": layer + 1,
                         "alpha_attention": alpha_attention, "alpha_ffn": alpha_ffn,
                         "bound_attention": float(encoder.step_bounds[0]), "bound_ffn": float(encoder.step_bounds[1]),
                         "spectral_bound": bound, "no_oscillation": alpha_ffn < 1.0 / (1.0 + bound),
                         "test_accuracy": accuracy})
    return pd.DataFrame(rows)


#: The archived study models that Figure 6 draws beside the energy-curve models (tied unfolded encoders).
STUDY_MODELS = ("unfolded_tied", "unfolded_tied-residual")




@torch.no_grad()
def learned_curves(config: dict, dataset: str, learned_archive: Path | None, study_archive: Path | None,
                   recall_archive: Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Figure 6's learned curves: the layer trace (:func:`unfolded.traces.layer_trace`, every energy of
    :data:`unfolded.models.SUBSTEP_ENERGIES`) of every archived checkpoint of ``dataset``: the energy-curve
    models trained at the learned recipe (``learned_archive``) and the study's tied unfolded models
    (:data:`STUDY_MODELS`, ``study_archive``), on ``energy_curves.samples`` test sequences drawn with
    ``energy_curves.seed``. Each model's test accuracy is recomputed on its test split and must equal the
    recorded one (an archive that does not reproduce is an error, not a curve). ``state`` is ``learned``.
    ``recall_archive``: the recall check's learned models (its ``figure6`` folder), of which ``exact_recall`` is
    drawn (its ``exact`` models are the check's comparison, drawn from ``learned_archive`` instead)."""
    import json

    from .columns import CURVE_ATTRIBUTES, trace_rows
    from .data import sample_indices
    from .errors import UserError
    from .traces import chance_accuracy, layer_trace

    cfg = config["energy_curves"]
    # each archive rebuilds its models' splits with the data settings they were trained on
    archived = lambda archive: archive is not None and (Path(archive) / "provenance.json").exists()  # noqa: E731
    jobs = [("recipe", path) for path in _checkpoints(learned_archive, dataset=dataset)] if archived(learned_archive) else []
    if archived(recall_archive):
        jobs += [("recall", path) for path in _checkpoints(recall_archive, ("exact_recall",), dataset)]
    configs = {"recipe": learned_archive, "recall": recall_archive}
    configs = {source: json.loads((Path(archive) / "provenance.json").read_text())["config"]
               for source, archive in configs.items() if archived(archive)}
    if archived(study_archive) and _checkpoints(study_archive, STUDY_MODELS, dataset):
        study_config = json.loads((Path(study_archive) / "provenance.json").read_text())["config"]
        jobs += [("study", path) for path in _checkpoints(study_archive, STUDY_MODELS, dataset)]
    frames = []
    for source, path in tqdm(jobs, desc=f"learned curves {dataset}", disable=not progress):
        if source in ("recipe", "recall"):
            from .recipes import load_learned

            data = prepare(dataset, configs[source], seed=int(path.stem.removeprefix("seed")))
            module, record = load_learned(path, data)
            variant, lr = record["curve_variant"], record["lr"]
            options = {"alpha_attention": record["alpha_attention"], "w_scale": record["w_scale"],
                       "recall": float(record.get("recall", 0.0))}
            relu = bool(record["relu"])
        else:
            data = prepare(dataset, study_config, seed=int(path.stem.removeprefix("seed")))
            module = load_checkpoint(path, data)
            record = torch.load(path, map_location="cpu", weights_only=True)
            record = {key: record[key] for key in ("seed", "lr", "test_accuracy")}
            variant, lr = path.parent.name, record["lr"]
            options = {"alpha_attention": math.nan, "w_scale": math.nan,
                       "recall": float((module.hparams.get("encoder_options") or {}).get("recall", 0.0))
                       if (module.hparams.get("encoder_options") or {}).get("anchored") else 0.0}
            relu = bool((module.hparams.get("encoder_options") or {}).get("relu", True))
        test_labels = data.splits["test"][1]
        predictions = module.predict_split(data, "test")
        accuracy = float((predictions == test_labels).double().mean())
        if abs(accuracy - record["test_accuracy"]) > 1e-6:
            raise UserError(f"{path}: test accuracy {accuracy:.6f} on its test split, recorded "
                            f"{record['test_accuracy']:.6f}; the archive does not reproduce (data or code changed)")
        indices = sample_indices(cfg["samples"], len(test_labels), cfg["seed"])
        trace = layer_trace(module, data, "test", indices)
        frames.append(trace_rows(trace, indices, dataset=dataset, variant=variant, seed=int(record["seed"]),
                                 lr=float(lr), relu=relu, state="learned", **options, test_accuracy=accuracy,
                                 test_count=len(test_labels),
                                 chance_accuracy=chance_accuracy(test_labels), source=source,
                                 predicted_classes=int(predictions.unique().numel())))
    if not frames:
        return pd.DataFrame(columns=["dataset", "variant", "seed", "lr", "relu", "state", "sample", "layer"])
    table = pd.concat(frames, ignore_index=True)
    for column in CURVE_ATTRIBUTES:
        if column not in table:
            table[column] = math.nan
    return table
