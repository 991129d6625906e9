"""Figure 6 from models that learned: the prespecified search for one training recipe under which the
energy-curve models (the authors' model and the exact models of :func:`unfolded.encoders.paper_encoder`)
learn the Figure 5-6 datasets, the training of those models at the recipe fixed in the configuration,
and their checkpoints.

The rule (fixed before any model trained, ``energy_curves.recipe_search``): every recipe of the grid
(optimizer and learning rate; batch size, epoch budget and early-stopping patience shared; the epoch
with the best validation accuracy is kept) trains every (dataset, variant) on the selection seeds. A
(dataset, variant) *learns* under a recipe when its median validation accuracy over those seeds is at
least the validation majority class + ``LEARNED_MARGIN``. The pick is one recipe for every model: the
one under which the most (dataset, variant) pairs learn, then the most correct validation answers
summed over all of them; ties go to the smaller learning rate, then to SGD (the authors' optimizer).
The pick is written to ``energy_curves.learned_recipe`` by hand (config.yaml), and the models that
Figure 6 draws are trained at that recipe on fresh seeds (``learned_recipe.seeds``).
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from tqdm.auto import tqdm

from .curves import _module, variant_options
from .data import PreparedData, prepare
from .encoders import paper_encoder
from .thresholds import LEARNED_MARGIN
from .traces import chance_accuracy
from .training import SequenceClassifier, fit

__all__ = ["STUDY_MODELS", "archive_learned", "learned_curves", "load_learned", "median_seed", "recipe_grid", "recipe_search",
           "select_recipe", "train_learned"]


def recipe_grid(search: dict) -> list[dict]:
    """Every (optimizer, lr) of ``energy_curves.recipe_search.learning_rates``, in config order."""
    return [{"optimizer": optimizer, "lr": float(lr)} for optimizer, rates in search["learning_rates"].items()
            for lr in rates]


def _width(data: PreparedData, config: dict) -> int:
    return data.vectors.shape[1] if data.kind == "tokens" else config["train"]["width"]


def _train(config: dict, data: PreparedData, variant: str, recipe: dict, budget: dict, seed: int, workdir: Path,
           progress: bool) -> tuple[SequenceClassifier, dict]:
    """One energy-curve model (with ReLU) trained at ``recipe`` with validation: the module at its best
    epoch and a row with its validation and test accuracy and counts."""
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
    row = {"variant": variant, "seed": seed, **options, "optimizer": recipe["optimizer"], "lr": recipe["lr"],
           "val_correct": int((module.predict_split(data, "val") == val_labels).sum()), "val_count": len(val_labels),
           "val_majority": chance_accuracy(val_labels), "test_accuracy": test_correct / len(test_labels),
           "test_correct": test_correct, "test_count": len(test_labels), "chance_accuracy": chance_accuracy(test_labels),
           "epochs": summary["epochs"], "steps": summary["steps"]}
    return module, row


def recipe_search(config: dict, dataset: str, workdir: Path, progress: bool = True) -> pd.DataFrame:
    """Every recipe of the grid on every variant of ``recipe_search.variants`` and selection seed, on one
    dataset: one row per (variant, recipe, seed) with validation and test counts."""
    search = config["energy_curves"]["recipe_search"]
    grid = [(variant, recipe, seed) for variant in search["variants"] for recipe in recipe_grid(search)
            for seed in search["selection_seeds"]]
    rows = []
    for variant, recipe, seed in tqdm(grid, desc=f"recipe search {dataset}", disable=not progress):
        data = prepare(dataset, config, seed=seed)
        run_dir = workdir / variant / f"{recipe['optimizer']}-lr{recipe['lr']:g}" / f"seed{seed}"
        _, row = _train(config, data, variant, recipe, search, seed, run_dir, progress=False)
        rows.append({"dataset": dataset, **row})
    return pd.DataFrame(rows)


def select_recipe(table: pd.DataFrame) -> dict:
    """The rule of this module's docstring on the rows of :func:`recipe_search` (every dataset together):
    the pick, how many (dataset, variant) pairs learn under it, and per recipe the counts it was chosen on."""
    per_model = table.groupby(["optimizer", "lr", "dataset", "variant"]).agg(
        median=("val_correct", lambda s: float(s.median())), count=("val_count", "first"),
        majority=("val_majority", "first"), correct=("val_correct", "sum")).reset_index()
    per_model["learns"] = per_model["median"] / per_model["count"] >= per_model["majority"] + LEARNED_MARGIN
    scores = per_model.groupby(["optimizer", "lr"]).agg(learned=("learns", "sum"), pairs=("learns", "size"),
                                                      correct=("correct", "sum")).reset_index()
    scores["sgd_last"] = scores["optimizer"] != "sgd"
    scores = scores.sort_values(["learned", "correct", "lr", "sgd_last"], ascending=[False, False, True, True])
    best = scores.iloc[0]
    learned = per_model[(per_model["optimizer"] == best["optimizer"]) & (per_model["lr"] == best["lr"])]
    return {"optimizer": str(best["optimizer"]), "lr": float(best["lr"]), "learned": int(best["learned"]),
            "pairs": int(best["pairs"]),
            "learning": sorted(f"{row.dataset}/{row.variant}" for row in learned.itertuples() if row.learns),
            "scores": scores.drop(columns="sgd_last").reset_index(drop=True)}


def _save(module: SequenceClassifier, row: dict, relu: bool, path: Path) -> str:
    """A weights-only checkpoint of a trained energy-curve model, written atomically; returns its SHA-256."""
    from .artifacts import atomic_path

    buffer = io.BytesIO()
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "curve_variant": row["variant"], "relu": relu,
                **{key: row[key] for key in ("alpha_attention", "w_scale", "seed", "optimizer", "lr", "test_accuracy")}},
               buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def load_learned(path: Path) -> tuple[SequenceClassifier, dict]:
    """A checkpoint of :func:`train_learned` (``weights_only=True``) as a module in eval mode, and its record
    (variant, step size, W scale, seed, recipe and recorded test accuracy)."""
    record = torch.load(path, map_location="cpu", weights_only=True)
    hyper = dict(record["hyper_parameters"])
    state = record["state_dict"]
    encoder = paper_encoder(hyper["width"], hyper["num_layers"], record["relu"], record["curve_variant"],
                            **({"alpha_attention": record["alpha_attention"], "w_scale": record["w_scale"]}
                               if record["curve_variant"] == "exact_active" else {}))
    module = SequenceClassifier(**hyper, vectors=state["embedding.weight"] if hyper["kind"] == "tokens" else None,
                                encoder=encoder)
    module.load_state_dict(state)
    return module.eval(), {key: value for key, value in record.items() if key not in ("state_dict", "hyper_parameters")}


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
        module, row = _train(config, data, variant, recipe, budget, seed, workdir / variant / f"seed{seed}", False)
        path = out / dataset / variant / f"seed{seed}.pt"
        digest = _save(module, row, True, path)
        rows.append({"dataset": dataset, **row, "checkpoint": str(path), "sha256": digest,
                     "learned": row["test_accuracy"] >= row["chance_accuracy"] + LEARNED_MARGIN})
    return pd.DataFrame(rows)


def median_seed(group: pd.DataFrame) -> int:
    """The seed of the median test accuracy (the lower middle one for an even count; ties: smaller seed)."""
    ordered = group.sort_values(["test_accuracy", "seed"], ignore_index=True)
    return int(ordered.loc[(len(ordered) - 1) // 2, "seed"])



#: The archived study models that Figure 6 draws beside the energy-curve models (tied unfolded encoders).
STUDY_MODELS = ("unfolded_tied", "unfolded_tied-residual")


def _checkpoints(archive: Path | None, dataset: str, models: tuple[str, ...] | None = None) -> list[Path]:
    if archive is None or not (Path(archive) / "provenance.json").exists():
        return []
    folders = [Path(archive) / "checkpoints" / dataset / model for model in models] if models else \
        sorted((Path(archive) / "checkpoints" / dataset).glob("*"))
    return sorted(path for folder in folders for path in folder.glob("seed*.pt"))


@torch.no_grad()
def learned_curves(config: dict, dataset: str, learned_archive: Path | None, study_archive: Path | None,
                   progress: bool = True) -> pd.DataFrame:
    """Figure 6's learned curves: the layer trace (:func:`unfolded.traces.layer_trace`, every energy of
    :data:`unfolded.models.SUBSTEP_ENERGIES`) of every archived checkpoint of ``dataset``: the energy-curve
    models trained at the learned recipe (``learned_archive``) and the study's tied unfolded models
    (:data:`STUDY_MODELS`, ``study_archive``), on ``energy_curves.samples`` test sequences drawn with
    ``energy_curves.seed``. Each model's test accuracy is recomputed on its test split and must equal the
    recorded one (an archive that does not reproduce is an error, not a curve). ``state`` is ``learned``."""
    import json

    from .archive import load_checkpoint
    from .columns import CURVE_ATTRIBUTES, trace_rows
    from .data import sample_indices
    from .errors import UserError
    from .traces import layer_trace

    cfg = config["energy_curves"]
    # each archive rebuilds its models' splits with the data settings they were trained on
    jobs = [("recipe", path) for path in _checkpoints(learned_archive, dataset)]
    if jobs:
        learned_config = json.loads((Path(learned_archive) / "provenance.json").read_text())["config"]
    if study_archive is not None and _checkpoints(study_archive, dataset, STUDY_MODELS):
        study_config = json.loads((Path(study_archive) / "provenance.json").read_text())["config"]
        jobs += [("study", path) for path in _checkpoints(study_archive, dataset, STUDY_MODELS)]
    frames = []
    for source, path in tqdm(jobs, desc=f"learned curves {dataset}", disable=not progress):
        if source == "recipe":
            module, record = load_learned(path)
            variant, lr = record["curve_variant"], record["lr"]
            options = {"alpha_attention": record["alpha_attention"], "w_scale": record["w_scale"]}
            data = prepare(dataset, learned_config, seed=record["seed"])
        else:
            module = load_checkpoint(path)
            record = torch.load(path, map_location="cpu", weights_only=True)
            record = {key: record[key] for key in ("seed", "lr", "test_accuracy")}
            variant, lr = path.parent.name, record["lr"]
            options = {"alpha_attention": math.nan, "w_scale": math.nan}
            data = prepare(dataset, study_config, seed=record["seed"])
        test_labels = data.splits["test"][1]
        predictions = module.predict_split(data, "test")
        accuracy = float((predictions == test_labels).double().mean())
        if abs(accuracy - record["test_accuracy"]) > 1e-6:
            raise UserError(f"{path}: test accuracy {accuracy:.6f} on its test split, recorded "
                            f"{record['test_accuracy']:.6f}; the archive does not reproduce (data or code changed)")
        indices = sample_indices(cfg["samples"], len(test_labels), cfg["seed"])
        trace = layer_trace(module, data, "test", indices)
        frames.append(trace_rows(trace, indices, dataset=dataset, variant=variant, seed=int(record["seed"]),
                                 lr=float(lr), relu=True, state="learned", **options, test_accuracy=accuracy,
                                 chance_accuracy=chance_accuracy(test_labels), source=source,
                                 predicted_classes=int(predictions.unique().numel())))
    if not frames:
        return pd.DataFrame(columns=["dataset", "variant", "seed", "lr", "relu", "state", "sample", "layer"])
    table = pd.concat(frames, ignore_index=True)
    for column in CURVE_ATTRIBUTES:
        if column not in table:
            table[column] = math.nan
    return table


def archive_learned(archive_id: str, search_tables: list[Path], models: list[Path], destination: Path,
                    config: dict, allow_dirty: bool = False) -> dict:
    """Copy the recipe search's tables, the learned models' table and their checkpoints into ``destination``
    with provenance (config, commit, SHA-256 of every checkpoint), provenance.json last. Refuses a working
    tree with uncommitted changes unless ``allow_dirty``, and checkpoints whose hash differs from the one
    their training recorded."""
    import json
    import shutil

    from .archive import _refuse_dirty, _sha256
    from .artifacts import atomic_path, provenance, write_json, write_text
    from .errors import UserError

    made_by = {}
    for path in (*search_tables, *models):
        record = json.loads(path.with_suffix(".provenance.json").read_text()) \
            if path.with_suffix(".provenance.json").exists() else {}
        made_by[path.name] = {"git_commit": record.get("git_commit", "unknown"), "git_dirty": record.get("git_dirty", True)}
    if not allow_dirty:
        _refuse_dirty(None)
        dirty = [name for name, record in made_by.items() if record["git_dirty"] is not False]
        if dirty:
            raise UserError(f"archive-learned: {dirty} were made from a working tree with uncommitted changes (or have "
                            "no provenance.json beside them); commit, then rerun them")
    destination.mkdir(parents=True, exist_ok=True)
    tables = [pd.read_csv(path) for path in models]
    learned = pd.concat(tables, ignore_index=True)
    digests = {}
    for row in learned.itertuples():
        source = Path(row.checkpoint)
        if _sha256(source) != row.sha256:
            raise UserError(f"archive-learned: {source} is not the checkpoint its training recorded (SHA-256 differs)")
        relative = Path("checkpoints") / row.dataset / row.variant / source.name
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(destination / relative) as temporary:
            shutil.copyfile(source, temporary)
        digests[str(relative)] = row.sha256
    learned = learned.assign(checkpoint=[f"checkpoints/{r.dataset}/{r.variant}/seed{r.seed}.pt" for r in learned.itertuples()])
    for name, frame in (("recipe_search.csv", pd.concat([pd.read_csv(p) for p in search_tables], ignore_index=True)),
                        ("learned_models.csv", learned)):
        with atomic_path(destination / name) as temporary:
            frame.to_csv(temporary, index=False, float_format="%.6g")
    search = pd.read_csv(destination / "recipe_search.csv")
    pick = select_recipe(search)
    from .report.figure6 import recipe_page

    write_text(destination / "recipe_search.md", recipe_page(search, pick, config["energy_curves"]["learned_recipe"]))
    meta = provenance("learned-archive", config, None, archive_id=archive_id, checkpoint_sha256=digests, made_by=made_by,
                      pick={key: value for key, value in pick.items() if key != "scores"},
                      learned=int(learned["learned"].sum()), models=int(len(learned)))
    write_json(destination / "provenance.json", meta)
    return json.loads(json.dumps(meta, default=str))
