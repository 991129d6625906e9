"""``python -m unfolded <stage>``: every pipeline stage as a plain command.

Each stage takes ``--config`` (a YAML file, or inline YAML/JSON text such as the section the
Snakefile passes) and explicit output paths, so a Snakemake rule is one shell line and every
stage also runs by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .registry import FIGURES, MODELS, VARIANTS, data_names

SYNTHETIC_EXPERIMENTS = ("apollonius", "alternating", "kappa")


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="YAML file, or inline YAML/JSON text; missing keys take the schema defaults",
    )


def run_claims(args: argparse.Namespace) -> None:
    import pandas as pd
    from tqdm import tqdm

    from .artifacts import atomic_path, provenance, write_json
    from .claims import CLAIMS, run_all

    config = load_config(args.config)
    settings = config["claims"]
    trials = settings["trials"] if args.trials is None else args.trials
    seed = settings["seed"] if args.seed is None else args.seed
    if trials < 1 or seed < 0:
        raise ConfigError(f"claims: --trials must be a positive integer and --seed non-negative, got {trials} and {seed}")
    results = []
    for claim_id in tqdm(list(CLAIMS), desc="claims", unit="claim", file=sys.stderr):
        results.extend(run_all(trials, seed, ids=[claim_id]))
    frame = pd.DataFrame([r.as_row() for r in results])
    meta = provenance("claims", {"trials": trials, "seed": seed}, seed)
    with atomic_path(args.csv) as temporary:
        frame.to_csv(temporary, index=False, float_format="%.6g")
    write_json(Path(args.csv).with_suffix(".provenance.json"), meta)
    failed = [r.claim for r in results if r.failed]
    print(f"{len(results)} claims checked; failed: {failed or 'none'}", file=sys.stderr)
    if failed and not args.allow_failures:
        details = "; ".join(f"{r.claim} ({r.kind}): {r.verdict}" for r in results if r.failed)
        print(f"error: claims failed: {details}. The table was written; pass --allow-failures to exit 0.",
              file=sys.stderr)
        raise SystemExit(1)


def run_synthetic(args: argparse.Namespace) -> None:
    from . import synthetic
    from .artifacts import provenance, write_parquet
    from .config import AlternatingConfig, ApolloniusConfig, KappaConfig

    config = load_config(args.config)
    build, config_type = {
        "apollonius": (synthetic.apollonius_table, ApolloniusConfig),
        "alternating": (synthetic.alternating_table, AlternatingConfig),
        "kappa": (synthetic.kappa_table, KappaConfig),
    }[args.experiment]
    settings = config_type.from_config(config)
    frame = build(settings)
    table_settings = dict(config["synthetic"][args.experiment])
    table_settings.pop("kappas", None)  # plotting parameter of Figure 4, not of the table
    write_parquet(frame, args.out, provenance(f"synthetic/{args.experiment}", table_settings, settings.seed))
    print(f"{args.out}: {len(frame)} rows", file=sys.stderr)


def run_figure(args: argparse.Namespace) -> None:
    import pandas as pd

    from .artifacts import provenance, read_provenance, save_figure
    from .config import FiguresConfig
    from .figures import DRAW

    config = load_config(args.config)
    figures = FiguresConfig.from_config(config)
    for out in args.out:
        suffix = Path(out).suffix.lstrip(".").lower()
        if suffix not in ("png", "pdf", "svg"):
            raise ConfigError(f"figure {args.name}: cannot write {out}: the format comes from the suffix, "
                              f"one of .png, .pdf, .svg (got {'.' + suffix if suffix else 'none'})")
    registered = FIGURES[args.name]
    expected = registered.experiments or ("table",)
    if not len(expected) <= len(args.data) <= len(expected) + len(registered.optional):
        optional = f" and up to {len(registered.optional)} of {', '.join(registered.optional)}" if registered.optional else ""
        raise ConfigError(f"figure {args.name}: expected {len(expected)} table(s) ({', '.join(expected)}){optional}, "
                          f"got {len(args.data)}")
    for path in args.data:
        if not Path(path).exists():
            raise ConfigError(f"figure {args.name}: table {path} does not exist; build it first (snakemake {path})")
    wanted_per_table = [(f"synthetic/{name}",) if registered.experiments else registered.tables for name in expected]
    wanted_per_table += [registered.optional] * (len(args.data) - len(expected))
    for path, wanted in zip(args.data, wanted_per_table, strict=True):
        try:
            stage = read_provenance(path).get("stage", "")
        except Exception:  # noqa: BLE001 - a foreign parquet file without our metadata
            stage = ""
        if stage not in wanted:
            raise ConfigError(f"figure {args.name}: {path} is not the right table: it was written by stage "
                              f"'{stage or 'unknown'}', the figure needs the table of stage '{wanted[0]}'")
    tables = [pd.read_parquet(path) for path in args.data]
    for path, table in zip(args.data[: len(expected)], tables, strict=False):
        if table.empty:
            raise SystemExit(f"figure {args.name}: table {path} has no rows")
    if len(tables) > len(expected):  # optional tables join the first one
        tables = [pd.concat([tables[0], *(t for t in tables[len(expected):] if not t.empty)], ignore_index=True),
                  *tables[1:len(expected)]]
    options = {}
    if registered.per_dataset:
        if not args.dataset:
            raise SystemExit(f"figure {args.name}: --dataset is required")
        options["dataset"] = args.dataset
    if args.name == "fig4_kappa_regions":
        options["kappas"] = config["synthetic"]["kappa"]["kappas"]
    figure = DRAW[args.name](*tables, **options)
    sources = {Path(p).name: read_provenance(p)["config_hash"] for p in args.data}
    meta = provenance(f"figure/{args.name}", {"figures": config["figures"], **options}, None, tables=sources)
    save_figure(figure, args.out, meta, dpi=figures.dpi)
    print(f"{args.name}: wrote {', '.join(args.out)}", file=sys.stderr)


def _check_data_names(names: list[str]) -> None:
    import difflib

    known = data_names()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown dataset {name}; known: {', '.join(known)}.{hint}")


def _human_bytes(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def run_data(args: argparse.Namespace) -> None:
    from .data import DataUnavailable, catalogue, fetch, prepare

    config = load_config(args.config)
    _check_data_names(args.names)
    if args.action == "fetch":
        if not args.names:
            raise ConfigError(f"data fetch: name at least one dataset or vector archive ({', '.join(data_names())})")
        try:
            lines = [fetch(name, config) for name in args.names]
        except DataUnavailable as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(3) from None
        print("\n".join(lines), file=sys.stderr)
        if args.marker:
            from .artifacts import write_text

            write_text(args.marker, "\n".join(lines) + "\n")
        return
    unavailable = []
    for record in catalogue(config, args.names or None):
        name = record["name"]
        if record["status"] == "missing":
            unavailable.append(name)
            print(f"{name}: missing (about {record['download_gb']:g} GB to download into {record['path']}; "
                  f"fetch with: python -m unfolded data fetch {name})")
            continue
        where = f", {_human_bytes(record['bytes'])} at {record['path']}" if record["path"] else ""
        line = f"{name}: {record['status']}{where}"
        if args.names and not name.startswith("glove-"):
            try:
                data = prepare(name, config, seed=0)
            except DataUnavailable as error:
                unavailable.append(name)
                print(f"{name}: not usable: {error}")
                continue
            lengths = [len(sequence) for sequence in data.splits["train"][0]]
            line += (f"; {data.kind}, splits {data.sizes()}, classes {data.num_classes}, input dim {data.input_dim}, "
                     f"tokens per sequence {min(lengths)}-{max(lengths)}")
            print(line)
            if name in ("sst2", "imdb"):
                _text_info(name, config, data)
            continue
        print(line)
    if args.names and unavailable:
        raise SystemExit(3)


def _text_info(name: str, config: dict, data) -> None:
    """``data info`` for a text dataset: rows and label counts per split, the published counts (a mismatch is a
    warning naming both numbers), the SHA-256 of the source files, and the word vectors' source and dimension."""
    import json

    import torch

    from .data import cache_dir
    from .data.sources import PUBLISHED, canonical_glove, file_digests, resolve_glove
    from .data.text import raw_location

    sizes = data.sizes()
    rows = {"train": sizes["train"] + sizes["val"], "test": sizes["test"]}
    for split, (_, labels) in data.splits.items():
        counts = torch.bincount(labels, minlength=data.num_classes).tolist()
        print(f"  {split}: {len(labels):,} rows, labels " + ", ".join(f"{k}: {c:,}" for k, c in enumerate(counts)))
    published = PUBLISHED.get(name, {})
    for split, count in rows.items():
        expected = published.get(split)
        status = "" if expected is None else (" = published" if count == expected else
                                              f" (warning: the published count is {expected:,})")
        print(f"  {split}{' + validation' if split == 'train' else ''}: {count:,} rows{status}")
        if expected is not None and count != expected:
            print(f"warning: {name} {split}: {count:,} rows, published {expected:,}", file=sys.stderr)
    data_cfg = config["data"]
    cache = cache_dir(data_cfg["cache_dir"])
    record = raw_location(name, cache, data_cfg["sources"].get(name)) / "source.json"
    if record.exists():
        source = json.loads(record.read_text())
        print(f"  source: {source['source']} ({source['layout']} layout)")
        for file, digest in source["sha256"].items():
            print(f"    sha256 {digest}  {file}")
    else:
        print(f"  source: {'the hub download' if data_cfg['sources'].get(name) is None else data_cfg['sources'][name]}")
    variant = canonical_glove(data_cfg["glove"])
    kind, location = resolve_glove(variant, data_cfg["sources"].get("glove"), cache)
    digest = "" if kind == "package" else f", sha256 {next(iter(file_digests([location]).values()))}"
    print(f"  vectors: GloVe {variant}, dimension {data.input_dim}, from {location} ({kind}{digest}); "
          f"{data.meta.get('without_vector', '?'):,} of {data.meta.get('vocabulary', '?'):,} words without a vector")


def run_train(args: argparse.Namespace) -> None:
    from .artifacts import provenance, write_parquet
    from .registry import split_model
    from .runs import train_run
    from .training import write_run

    config = load_config(args.config)
    if args.seed < 0:
        raise ConfigError(f"train: --seed must be a non-negative integer, got {args.seed}")
    _check_data_names([args.dataset])
    checkpoint_dir = Path(args.checkpoint_dir)
    try:
        _, variant = split_model(args.model)
    except ValueError as error:
        raise ConfigError(f"train: {error}") from None
    if args.lr is not None and args.lr <= 0:
        raise ConfigError(f"train: --lr must be positive, got {args.lr}")
    module, summary, energies, depth, predictions = train_run(config, args.dataset, args.model, args.seed, checkpoint_dir,
                                                 progress=not args.no_progress, lr=args.lr)
    settings = {"train": config["train"], "data": config["data"]}
    # a variant overrides settings of section train: the run says which, and with what
    overrides = {key: {"config": config["train"].get(key), "variant": value}
                 for key, value in VARIANTS.get(variant, {}).items()}
    meta = provenance("train", settings, args.seed, dataset=args.dataset, model=args.model, lr=summary["lr"],
                      variant_overrides=overrides)
    run_dir = Path(args.run_dir)
    write_parquet(energies, run_dir / "energies.parquet", meta)
    write_parquet(depth, run_dir / "depth.parquet", meta)
    for split, name in (("test", "predictions.parquet"), ("val", "val_predictions.parquet")):
        write_parquet(predictions[predictions["split"] == split].drop(columns="split").reset_index(drop=True),
                      run_dir / name, meta)
    write_run(run_dir, summary, module, checkpoint_dir, meta)
    print(f"{args.dataset}/{args.model}/lr{summary['lr']:g}/seed{args.seed}: test accuracy "
          f"{summary['test_accuracy']:.4f} (best validation {summary['val_accuracy']:.4f})", file=sys.stderr)


def run_probe(args: argparse.Namespace) -> None:
    from .artifacts import provenance, write_json
    from .data import prepare
    from .runs import linear_probe

    config = load_config(args.config)
    _check_data_names([args.dataset])
    result = linear_probe(prepare(args.dataset, config, seed=0), config["train"]["probe_C"])
    meta = provenance("probe", {"data": config["data"], "probe_C": config["train"]["probe_C"]}, 0,
                      dataset=args.dataset, model="linear_probe")
    write_json(args.out, {**meta, "summary": {**result, "variant": "base", "family": "linear_probe", "lr": float("nan")}})
    print(f"{args.dataset}/linear_probe: test accuracy {result['test_accuracy']:.4f} (C = {result['C']:g})", file=sys.stderr)


def run_energy_curves(args: argparse.Namespace) -> None:
    from .artifacts import provenance, write_parquet
    from .curves import energy_curves

    config = load_config(args.config)
    _check_data_names([args.dataset])
    table = energy_curves(config, args.dataset, Path(args.checkpoint_dir), progress=not args.no_progress)
    settings = {"energy_curves": config["energy_curves"], "data": config["data"], "width": config["train"]["width"]}
    write_parquet(table, args.out, provenance("energy-curves", settings, config["energy_curves"]["seed"], dataset=args.dataset))
    print(f"{args.out}: {len(table)} rows", file=sys.stderr)


def run_energy_plugins(args: argparse.Namespace) -> None:
    from .artifacts import provenance, write_parquet
    from .energy_plugins import plugin_curves

    config = load_config(args.config)
    _check_data_names([args.dataset])
    table = plugin_curves(config, args.dataset, progress=not args.no_progress)
    settings = {"energy_plugins": config["energy_plugins"], "data": config["data"], "width": config["train"]["width"]}
    write_parquet(table, args.out, provenance("energy-plugins", settings, config["energy_plugins"]["seed"],
                                              dataset=args.dataset))
    print(f"{args.out}: {len(table)} rows", file=sys.stderr)


def run_energy_summary(args: argparse.Namespace) -> None:
    import pandas as pd

    from .artifacts import atomic_path, write_text
    from .report.energy import energy_summary_markdown
    from .summaries import curve_summary, layer_decomposition

    missing = [p for p in args.data if not Path(p).exists()]
    if missing:
        raise ConfigError(f"energy-summary: table(s) {missing} do not exist; build them first (snakemake <path>)")
    table = pd.concat([pd.read_parquet(p) for p in args.data], ignore_index=True)
    summary = curve_summary(table)
    with atomic_path(args.csv) as temporary:
        summary.to_csv(temporary, index=False, float_format="%.6g")
    if args.layers_csv:
        with atomic_path(args.layers_csv) as temporary:
            layer_decomposition(table).to_csv(temporary, index=False, float_format="%.6g")
    if args.markdown:
        write_text(args.markdown, energy_summary_markdown(summary))
    print(f"{args.csv}: {len(summary)} rows (curve, energy)", file=sys.stderr)


def run_token_spread(args: argparse.Namespace) -> None:
    import pandas as pd

    from .artifacts import atomic_path, provenance, write_parquet
    from .summaries import token_spread_table

    frames = [frame for frame in (pd.read_parquet(p) for p in args.data) if not frame.empty]
    if not frames:
        raise ConfigError("token-spread: no trained run with a layer trace among --data")
    spread = token_spread_table(pd.concat(frames, ignore_index=True))
    with atomic_path(args.csv) as temporary:
        spread.to_csv(temporary, index=False, float_format="%.6g")
    write_parquet(spread, args.out, provenance("token-spread", {"runs": len(args.data)}, None))
    print(f"{args.csv}: {len(spread)} rows", file=sys.stderr)


def _archived_measure(stage: str, archive: str, measure) -> object:
    """Run ``measure(archive, config)`` on an archived study's checkpoints with the study's own config (its data
    settings rebuild each run's splits exactly as it trained on them); user errors for what is missing."""
    import json

    provenance = Path(archive) / "provenance.json"
    if not provenance.exists():
        raise ConfigError(f"{stage}: {archive} is not an archived study (no provenance.json)")
    try:
        return measure(Path(archive), json.loads(provenance.read_text())["config"])
    except FileNotFoundError as error:
        raise ConfigError(f"{stage}: {error}") from None


def run_depth_sweep(args: argparse.Namespace) -> None:
    from .artifacts import atomic_path
    from .summaries import sweep_criterion
    from .sweeps import alpha_ffn_sweep

    sweep = _archived_measure("depth-sweep", args.archive,
                              lambda archive, config: alpha_ffn_sweep(archive, config, progress=not args.no_progress))
    with atomic_path(args.csv) as temporary:
        sweep.to_csv(temporary, index=False, float_format="%.6g")
    with atomic_path(args.criterion) as temporary:
        sweep_criterion(sweep).to_csv(temporary, index=False, float_format="%.6g")
    print(f"{args.csv}: {len(sweep)} rows", file=sys.stderr)


def run_trained_energies(args: argparse.Namespace) -> None:
    from .artifacts import atomic_path
    from .sweeps import trained_energies

    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"trained-energies: --samples must be a positive integer, got {args.samples}")
    if args.plugins:
        from .sweeps import plugin_trained_energies

        if not args.layers:
            raise ConfigError("trained-energies --plugins: give --layers, the per-layer output CSV")
        table, layers = _archived_measure("trained-energies", args.archive, lambda archive, config: plugin_trained_energies(
            archive, config, samples=args.samples, progress=not args.no_progress))
        with atomic_path(args.layers) as temporary:
            layers.to_csv(temporary, index=False, float_format="%.6g")
    else:
        table = _archived_measure("trained-energies", args.archive, lambda archive, config: trained_energies(
            archive, config, samples=args.samples, progress=not args.no_progress))
    with atomic_path(args.csv) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    print(f"{args.csv}: {len(table)} rows", file=sys.stderr)


def run_step_sizes(args: argparse.Namespace) -> None:
    from .artifacts import atomic_path
    from .sweeps import learned_step_sizes

    table = _archived_measure("step-sizes", args.archive, lambda archive, config: learned_step_sizes(archive))
    with atomic_path(args.csv) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    print(f"{args.csv}: {len(table)} rows (run, layer)", file=sys.stderr)


def run_regime_search(args: argparse.Namespace) -> None:
    from .artifacts import atomic_path, provenance, write_json
    from .curves import regime_search, select_regime

    config = load_config(args.config)
    search = config["energy_curves"]["regime_search"]
    datasets = args.datasets or config["datasets"]
    _check_data_names(datasets)
    table = regime_search(config, datasets, progress=not args.no_progress)
    pick = select_regime(table, search["min_active"], search["min_strict"])
    configured = config["energy_curves"]["active_regime"]
    pick["matches_config"] = (pick["alpha_attention"] == configured["alpha_attention"]
                              and pick["w_scale"] == configured["w_scale"])
    with atomic_path(args.csv) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    settings = {"energy_curves": config["energy_curves"], "data": config["data"], "datasets": datasets,
                "width": config["train"]["width"]}
    meta = provenance("regime-search", settings, None, pick=pick)
    write_json(Path(args.csv).with_suffix(".provenance.json"), meta)
    print(f"regime search: pick {pick}", file=sys.stderr)


def _write_recipe_table(table, csv: str, stage: str, config: dict, dataset: str) -> None:
    """A recipe stage's table as CSV, with its provenance (settings, commit) beside it as JSON."""
    from .artifacts import atomic_path, provenance, write_json

    with atomic_path(csv) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    settings = {"energy_curves": config["energy_curves"], "data": config["data"], "width": config["train"]["width"]}
    write_json(Path(csv).with_suffix(".provenance.json"), provenance(stage, settings, None, dataset=dataset))


def _search(args: argparse.Namespace, search, stage: str) -> None:
    """A selection stage of Figure 6's setting (recipe or recall search): its rows, with provenance, and every run's
    validation answers."""
    config = load_config(args.config)
    _check_data_names([args.dataset])
    table, answers = search(config, args.dataset, Path(args.workdir), progress=not args.no_progress)
    _write_recipe_table(table, args.csv, stage, config, args.dataset)
    if args.answers:
        from .artifacts import provenance, write_parquet

        write_parquet(answers, args.answers, provenance(stage, {"csv": args.csv}, None, dataset=args.dataset))
    print(f"{args.csv}: {len(table)} runs", file=sys.stderr)


def _search_tables(paths: list[str], stage: str, rule: str):
    """Every dataset's table of a search, concatenated; a clear error for a missing one."""
    import pandas as pd

    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        raise ConfigError(f"{stage}: {missing} do not exist; run the search first (snakemake {rule})")
    return pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)


def run_recipe_search(args: argparse.Namespace) -> None:
    from .recipes import recipe_search

    _search(args, recipe_search, "recipe-search")


def run_recipe_pick(args: argparse.Namespace) -> None:
    from .artifacts import write_text
    from .report.figure6 import recipe_page
    from .summaries import select_recipe

    table = _search_tables(args.csv, "recipe-pick", "recipe_search")
    pick = select_recipe(table)
    configured = load_config(args.config)["energy_curves"]["learned_recipe"]
    write_text(args.markdown, recipe_page(table, pick, configured))
    print(f"recipe search: pick {pick['optimizer']} lr {pick['lr']:g}; {pick['learned']} of {pick['pairs']} "
          f"(dataset, variant) pairs learn under it ({', '.join(pick['learning']) or 'none'})", file=sys.stderr)


def run_learned_models(args: argparse.Namespace) -> None:
    from .recipes import train_learned
    from .thresholds import LEARNED_MARGIN

    config = load_config(args.config)
    _check_data_names([args.dataset])
    table = train_learned(config, args.dataset, Path(args.workdir), Path(args.checkpoints),
                          progress=not args.no_progress)
    _write_recipe_table(table, args.csv, "learned-models", config, args.dataset)
    from .counts import learned as has_learned

    learned = sum(has_learned(r.test_accuracy, r.chance_accuracy, r.test_count) for r in table.itertuples())
    print(f"{args.csv}: {len(table)} models, {learned} at least the majority class + {LEARNED_MARGIN:g}",
          file=sys.stderr)


def run_recall_search(args: argparse.Namespace) -> None:
    from .recipes import recall_search

    _search(args, recall_search, "recall-search")


def run_recall_pick(args: argparse.Namespace) -> None:
    from .artifacts import write_text
    from .summaries import RECALL_RULE, select_recall

    table = _search_tables(args.csv, "recall-pick", "recall_search")
    pick = select_recall(table)
    configured = float(load_config(args.config)["energy_curves"]["recall"])
    status = ("energy_curves.recall matches the pick." if configured == pick["recall"] else
              f"energy_curves.recall ({configured:g}) is NOT the pick: fix the pick in the recall check's config "
              "(energy_curves.recall and train.recall) before training its models.")
    seeds = sorted(int(seed) for seed in table["seed"].unique())
    write_text(args.markdown, "\n".join([
        "# Recall check: the anchor weight", "", "Rule (fixed before the search; unfolded.summaries.RECALL_RULE): "
        + RECALL_RULE, "", f"Selection seeds {seeds}.", "",
        f"**Pick: recall = {pick['recall']:g}**; {pick['learned']} of {pick['datasets']} datasets learn under it. "
        + status, "", pick["scores"].to_markdown(index=False, floatfmt=".4g"), ""]))
    print(f"recall search: pick {pick['recall']:g} ({pick['learned']} of {pick['datasets']} datasets learn)",
          file=sys.stderr)


def _retention_jobs(args: argparse.Namespace, trained_only: bool = False) -> list[dict]:
    """The retention and depth jobs of ``--study-archive`` (checkpoints of ``--study-models``) and
    ``--learned-archive`` (Figure 6 models of ``--learned-variants``, untrained too unless ``trained_only``), each
    rebuilt with its archive's own data settings."""
    import json

    from .retention import archive_jobs, learned_jobs

    jobs = []
    for archive, make in ((args.study_archive, "study"), (args.learned_archive, "learned")):
        if not archive:
            continue
        provenance = Path(archive) / "provenance.json"
        if not provenance.exists():
            raise ConfigError(f"{args.stage}: {archive} is not an archive (no provenance.json)")
        config = json.loads(provenance.read_text())["config"]
        if make == "study":
            jobs += archive_jobs(Path(archive), tuple(args.study_models), config)
        else:
            jobs += learned_jobs(Path(archive), tuple(args.learned_variants), config, untrained=not trained_only)
    if not jobs:
        raise ConfigError(f"{args.stage}: no checkpoints found (give --study-archive and/or --learned-archive)")
    return jobs


def run_input_retention(args: argparse.Namespace) -> None:
    from .artifacts import atomic_path
    from .retention import input_retention

    if args.train_samples < 10:
        raise ConfigError(f"input-retention: --train-samples must be at least 10, got {args.train_samples}")
    args.stage = "input-retention"
    table = input_retention({}, _retention_jobs(args), train_samples=args.train_samples,
                            depth_factor=args.depth_factor, progress=not args.no_progress)
    with atomic_path(args.csv) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    print(f"{args.csv}: {len(table)} rows (model, layer)", file=sys.stderr)


def run_depth_profile(args: argparse.Namespace) -> None:
    from .artifacts import atomic_path
    from .summaries import recall_depth_criterion
    from .sweeps import depth_profile

    args.stage = "depth-profile"
    table = depth_profile(_retention_jobs(args, trained_only=True), depth_factor=args.depth_factor,
                          progress=not args.no_progress)
    with atomic_path(args.csv) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    if args.criterion:
        with atomic_path(args.criterion) as temporary:
            recall_depth_criterion(table).to_csv(temporary, index=False, float_format="%.6g")
    print(f"{args.csv}: {len(table)} rows (model, depth)", file=sys.stderr)


def run_learned_curves(args: argparse.Namespace) -> None:
    from .artifacts import provenance, write_parquet
    from .sweeps import learned_curves

    config = load_config(args.config)
    _check_data_names([args.dataset])
    archives = [Path(path) if path else None for path in (args.learned_archive, args.study_archive, args.recall_archive)]
    for archive in archives:
        if archive is not None and not (archive / "provenance.json").exists():
            raise ConfigError(f"learned-curves: {archive} is not an archive (no provenance.json)")
    table = learned_curves(config, args.dataset, *archives, progress=not args.no_progress)
    settings = {"energy_curves": config["energy_curves"], "data": config["data"],
                "archives": [str(archive) for archive in archives if archive is not None]}
    write_parquet(table, args.out, provenance("learned-curves", settings, config["energy_curves"]["seed"],
                                              dataset=args.dataset))
    print(f"{args.out}: {len(table)} rows", file=sys.stderr)


def run_archive_learned(args: argparse.Namespace) -> None:
    import pandas as pd

    from .archive import archive_learned
    from .artifacts import write_text
    from .config import load_config_files
    from .report.figure6 import recipe_page
    from .summaries import select_recipe

    config = load_config_files(args.config) if args.config and len(args.config) > 1 else \
        load_config(args.config[0] if args.config else None)
    archive_id = config["energy_curves"]["learned_recipe"]["archive"]
    if not args.search and not args.search_from:
        raise ConfigError("archive-learned: give the search's tables (--search) or an archive that holds it (--search-from)")
    missing = [path for path in (*(args.search or []), *args.models) if not Path(path).exists()]
    if args.search_from and not (Path(args.search_from) / "recipe_search.csv").exists():
        missing.append(str(Path(args.search_from) / "recipe_search.csv"))
    if missing:
        raise ConfigError(f"archive-learned: {missing} do not exist; run snakemake recipe_search learned_models first")
    destination = Path(args.destination) if args.destination else Path("results/archive") / archive_id
    meta = archive_learned(archive_id, [Path(p) for p in args.search or []], [Path(p) for p in args.models], destination,
                           config, allow_dirty=args.allow_dirty,
                           search_from=Path(args.search_from) if args.search_from else None)
    if (destination / "recipe_search.csv").exists():  # the search's page, beside its tables
        search = pd.read_csv(destination / "recipe_search.csv")
        write_text(destination / "recipe_search.md", recipe_page(search, select_recipe(search),
                                                                 config["energy_curves"]["learned_recipe"]))
    print(f"{destination}: {meta['models']} models, {meta['learned']} learned", file=sys.stderr)


def run_page(args: argparse.Namespace) -> None:
    import json

    import pandas as pd

    from .artifacts import write_text

    table = pd.read_csv(args.csv)
    meta = json.loads(Path(args.csv).with_suffix(".provenance.json").read_text())
    if args.table == "claims":
        from .report.claims import claims_page

        text = claims_page(table, meta)
    else:
        from .report.energy import regime_page

        text = regime_page(table, meta)
    write_text(args.markdown, text)
    print(f"{args.markdown}: the {args.table} page", file=sys.stderr)


def run_combine(args: argparse.Namespace) -> None:
    import pandas as pd

    from .artifacts import provenance, read_provenance, write_parquet

    table = pd.concat([pd.read_parquet(p) for p in args.data], ignore_index=True)
    sources = {Path(p).name: read_provenance(p)["config_hash"] for p in args.data}
    write_parquet(table, args.out, provenance("combine", sources, None))


def run_accuracy(args: argparse.Namespace) -> None:
    import pandas as pd

    from .artifacts import atomic_path, provenance, write_parquet, write_text
    from .report.accuracy import accuracy_page
    from .summaries import collect_runs, curve_summary, summarise_accuracy, training_curves

    runs, timings = collect_runs(args.runs, args.probes or [])
    # results (reproduced byte for byte by a rerun) and timings (which are not) go in separate tables
    with atomic_path(args.csv) as temporary:
        runs.to_csv(temporary, index=False, float_format="%.6g")
    summary = summarise_accuracy(runs)
    if args.summary:
        with atomic_path(args.summary) as temporary:
            summary.to_csv(temporary, index=False, float_format="%.6g")
    if args.timings:
        with atomic_path(args.timings) as temporary:
            timings.to_csv(temporary, index=False, float_format="%.6g")
    if args.table:
        write_parquet(runs[runs["selected"]].reset_index(drop=True), args.table,
                      provenance("accuracy", {"runs": len(runs)}, None))
    curves = None
    if args.energy_curves:
        curves = curve_summary(pd.concat([pd.read_parquet(p) for p in args.energy_curves], ignore_index=True),
                               energies=False)
    write_text(args.markdown, accuracy_page(summary, curves))
    if args.training_curves:
        write_parquet(training_curves(args.runs, summary), args.training_curves, provenance("accuracy", {}, None))
    if args.predictions:
        from .verdicts import attention_verdicts, control_checks, picked_predictions

        predictions = picked_predictions(runs, pd.concat(
            [pd.read_parquet(Path(run) / "predictions.parquet") for run in args.runs], ignore_index=True))
        write_parquet(predictions, args.predictions, provenance("accuracy", {"runs": len(runs)}, None))
        for path, table in ((args.verdicts, attention_verdicts(runs, predictions)), (args.controls, control_checks(runs))):
            if path:
                with atomic_path(path) as temporary:
                    table.to_csv(temporary, index=False, float_format="%.6g")
    if args.val_predictions:
        # every run's validation answers, every learning rate: a selection's picks can be recomputed from them
        answers = pd.concat([pd.read_parquet(Path(run) / "val_predictions.parquet") for run in args.runs],
                            ignore_index=True)
        write_parquet(answers.sort_values(["dataset", "model", "lr", "seed", "item"], ignore_index=True),
                      args.val_predictions, provenance("accuracy", {"runs": len(runs)}, None))


def run_pick_rates(args: argparse.Namespace) -> None:
    import pandas as pd
    import yaml

    from .artifacts import _git_state, write_text

    if not Path(args.summary).exists():
        raise ConfigError(f"pick-rates: {args.summary} does not exist; run the selection first "
                          "(snakemake --cores all --configfile config/study.yaml config/study-selection.yaml)")
    summary = pd.read_csv(args.summary)
    trained = summary[summary["lr"].notna()]
    if trained.empty:
        raise ConfigError(f"pick-rates: {args.summary} holds no trained model (only baselines without a learning rate)")
    picks: dict = {}
    for row in trained.sort_values(["dataset", "model"]).itertuples():
        picks.setdefault(row.dataset, {})[row.model] = float(row.lr)
    edges = [f"{r.dataset} {r.model}" for r in trained.itertuples() if r.pick_at_edge]
    # a pick at the top of its grid where selection runs did not train: the best rate may lie below it, between
    # the grid's points; the grid should widen below the pick before the confirmation trusts it
    untrained = [f"{r.dataset} {r.model} ({int(r.did_not_train)} of {int(r.seeds)} seeds)" for r in trained.itertuples()
                 if getattr(r, "did_not_train", 0) and r.pick_at_edge
                 and float(r.lr) == max(float(x) for x in str(r.lr_grid).split("/"))]
    header = (f"# Learning rates picked on validation by a selection run ({args.summary}: {int(trained['seeds'].max())} "
              f"seeds per model, commit {_git_state()['git_commit'][:12]}); written by python -m unfolded pick-rates.\n"
              f"# Picks at an end of their grid: {', '.join(edges) if edges else 'none'}.\n"
              f"# Picks at the top of their grid where selection runs did not train (widen the grid below them): "
              f"{', '.join(untrained) if untrained else 'none'}.\n")
    if untrained:
        print(f"warning: picks at the top of their grid where selection runs did not train: {', '.join(untrained)}; "
              "widen the grid below them before the confirmation", file=sys.stderr)
    write_text(args.out, header + yaml.safe_dump({"train": {"learning_rate_picks": picks}}, sort_keys=True))
    print(f"{args.out}: {sum(len(v) for v in picks.values())} picks, {len(edges)} at an end of their grid", file=sys.stderr)


def run_depth(args: argparse.Namespace) -> None:
    import pandas as pd

    from .artifacts import atomic_path, provenance, write_parquet
    from .summaries import depth_table

    frames = [frame for frame in (pd.read_parquet(p) for p in args.data) if not frame.empty]
    columns = ["dataset", "model", "seed", "lr", "trained_depth", "depth", "test_accuracy", "update", "energy"]
    depth = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    table = depth_table(depth, pd.read_csv(args.selection))
    with atomic_path(args.csv) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    write_parquet(table, args.table, provenance("depth", {"runs": len(args.data)}, None))
    print(f"{args.csv}: {len(table)} rows", file=sys.stderr)


def run_archive(args: argparse.Namespace) -> None:
    from .archive import archive_study
    from .config import load_config_files

    config = load_config_files(args.config)
    config["config_files"] = list(args.config)
    if not args.study_id or "/" in args.study_id:
        raise ConfigError(f"archive: --study-id must be a plain name, got {args.study_id!r}")
    missing = [name for name in ("accuracy.csv", "accuracy_summary.csv", "depth.csv", "timings.csv")
               if not (Path(args.tables) / name).exists()]
    if missing:
        raise ConfigError(f"archive: {args.tables} lacks {missing}; run the study first "
                          "(snakemake --cores all --configfile config/study.yaml)")
    if args.check_of is not None and not (Path(args.out) / args.check_of / "provenance.json").is_file():
        raise ConfigError(f"archive: --check-of {args.check_of}: no archived study in {Path(args.out) / args.check_of}")
    extra = [name for name in args.extra_tables or []]
    absent = [name for name in extra if not (Path(args.tables) / name).exists()]
    if absent:
        raise ConfigError(f"archive: --extra-tables {absent} are not in {args.tables}")
    meta = archive_study(args.study_id, Path(args.tables), Path(args.runs), Path(args.benchmarks),
                         Path(args.out) / args.study_id, config, check_of=args.check_of,
                         allow_dirty=args.allow_dirty, extra_tables=tuple(extra))
    print(f"archived {meta['runs']} runs ({meta['cpu_hours']:.2f} CPU-hours) in {Path(args.out) / args.study_id}",
          file=sys.stderr)


def run_archive_selection(args: argparse.Namespace) -> None:
    from .archive import archive_selection

    destination = Path(args.archive)
    if not (destination / "provenance.json").is_file():
        raise ConfigError(f"archive-selection: {destination} is not an archived study (no provenance.json)")
    record = archive_selection(destination, Path(args.tables), Path(args.runs), allow_dirty=args.allow_dirty)
    rows = record["summary_rows"]
    compared = (f"; {rows['equal']} of {rows['rows']} summary rows equal the ones archived before"
                + (f" (differ: {', '.join(rows['differ'])})" if rows["differ"] else "")) if rows else ""
    print(f"{destination}: selection of {record['runs']} runs archived (seeds {record['seeds']}); the picks recomputed "
          f"from them are the archive's{compared}", file=sys.stderr)


def run_rerender_verdicts(args: argparse.Namespace) -> None:
    import json

    import pandas as pd

    from .archive import load_archive, load_extras
    from .artifacts import _git_state, atomic_path, write_json
    from .verdicts import attention_verdicts, control_checks

    destination = Path(args.archive)
    if not (destination / "provenance.json").is_file():
        raise ConfigError(f"rerender-verdicts: {destination} is not an archived study (no provenance.json)")
    runs, _, _, _ = load_archive(destination)
    extras = load_extras(destination)
    if "predictions" not in extras:
        raise ConfigError(f"rerender-verdicts: {destination} holds no predictions.parquet (not a paired study)")
    before = extras.get("verdicts", pd.DataFrame())
    verdicts, controls = attention_verdicts(runs, extras["predictions"]), control_checks(runs)
    for name, table in (("verdicts.csv", verdicts), ("controls.csv", controls)):
        with atomic_path(destination / name) as temporary:
            table.to_csv(temporary, index=False, float_format="%.6g")
    record = json.loads((destination / "provenance.json").read_text())
    changed = []
    if not before.empty:
        merged = verdicts.merge(before[["dataset", "model", "verdict"]], on=["dataset", "model"], suffixes=("", "_before"))
        changed = [f"{r.dataset} {r.model}: {r.verdict_before} -> {r.verdict}" for r in merged.itertuples()
                   if r.verdict != r.verdict_before]
    record.setdefault("rerendered", []).append({"tables": ["verdicts.csv", "controls.csv"],
                                                "git_commit": _git_state()["git_commit"], "changed": changed})
    write_json(destination / "provenance.json", record)
    print(f"{destination}: verdicts re-rendered from the archived predictions; "
          + ("changed: " + "; ".join(changed) if changed else "no verdict changed"), file=sys.stderr)


def run_recall_figures(args: argparse.Namespace) -> None:
    import pandas as pd

    from .artifacts import provenance, save_figure
    from .config import FiguresConfig
    from .figures import fig_input_retention

    config = load_config(args.config)
    missing = [path for path in args.tables if not Path(path).exists()]
    if missing:
        raise ConfigError(f"recall-figures: {missing} do not exist; run python -m unfolded input-retention first "
                          "(make recall-measure)")
    frames = [pd.read_csv(path) for path in args.tables]
    table = pd.concat([frame for frame in frames if not frame.empty], ignore_index=True)
    if table.empty:
        raise ConfigError(f"recall-figures: {args.tables} hold no rows")
    meta = provenance("recall-figures", {"tables": [str(p) for p in args.tables]}, None)
    save_figure(fig_input_retention(table), args.out, meta, dpi=FiguresConfig.from_config(config).dpi)
    print(f"fig_input_retention: wrote {', '.join(args.out)}", file=sys.stderr)


def run_energies_figures(args: argparse.Namespace) -> None:
    import pandas as pd

    from .artifacts import provenance, save_figure, write_text
    from .config import FiguresConfig
    from .figures import fig_energies_trained
    from .report.energies_trial import EnergiesTrial, energies_trial_block

    config = load_config(args.config)
    layers = Path(args.archive) / "trained_energy_layers.csv"
    if not (Path(args.archive) / "provenance.json").exists() or not layers.exists():
        raise ConfigError(f"energies-figures: {args.archive} is not an archived energies study with its measurements "
                          "(provenance.json, trained_energy_layers.csv); run make energies, or make energies-measure")
    meta = provenance("energies-figures", {"archive": str(args.archive)}, None)
    save_figure(fig_energies_trained(pd.read_csv(layers)), args.out, meta, dpi=FiguresConfig.from_config(config).dpi)
    if args.markdown:
        write_text(args.markdown, energies_trial_block(EnergiesTrial.load(Path(args.archive))) + "\n")
    print(f"fig_energies_trained: wrote {', '.join(args.out)}", file=sys.stderr)


def run_study_figures(args: argparse.Namespace) -> None:
    from .archive import load_archive, load_extras
    from .artifacts import provenance, save_figure, write_text
    from .config import FiguresConfig
    from .figures import fig_accuracy, fig_depth_extrapolation, fig_token_spread
    from .report.study import ArchivedStudy, study_block
    from .summaries import did_not_train

    config = load_config(args.config)
    figures = FiguresConfig.from_config(config)
    runs, summary, depth, archived = load_archive(Path(args.archive))
    extras = load_extras(Path(args.archive))
    meta = provenance("study-figures", {"archive": str(args.archive), "config_hash": archived.get("config_hash")}, None)
    picked = runs[runs["selected"]]
    if "test_accuracy" in picked and "chance_accuracy" in picked:  # runs that did not train are shown in the tables, not drawn
        picked = picked[~did_not_train(runs)[runs["selected"]]]
    save_figure(fig_accuracy(picked), args.accuracy, meta, dpi=figures.dpi)
    save_figure(fig_depth_extrapolation(depth), args.depth, meta, dpi=figures.dpi)
    if args.spread:
        if "token_spread" not in extras:
            raise ConfigError(f"study-figures: {args.archive} has no token_spread.csv (archived before the attention "
                              "trial); leave out --spread")
        keys = ["dataset", "model", "lr", "seed"]
        spread = extras["token_spread"].merge(runs[runs["selected"]][keys], on=keys, how="inner")
        save_figure(fig_token_spread(spread), args.spread, meta, dpi=figures.dpi)
    if args.markdown:
        study = ArchivedStudy(Path(args.archive).name, runs, summary, depth, archived, extras=extras)
        write_text(args.markdown, study_block(study))


def run_documents(args: argparse.Namespace) -> None:
    from .artifacts import write_text
    from .report.blocks import BENCHMARK_BLOCKS, RUN_BLOCKS, Sources, render

    config = load_config(args.config)
    grid_jobs = 0
    if args.study_config:
        from .grid import run_specs

        grid_jobs = len(run_specs(load_config(args.study_config)))
    from .claims import TOLERANCE

    sources = Sources(
        tables=Path(args.tables), data=Path(args.data), archive=Path(args.archive), study_id=config["study"]["id"],
        superseded=tuple(config["study"]["superseded"]), recall_id=config["study"]["recall_id"],
        realdata_id=config["study"]["realdata_id"], energies_id=config["study"]["energies_id"],
        study_grid_jobs=grid_jobs, kappas=tuple(config["synthetic"]["kappa"]["kappas"]), claims_tolerance=TOLERANCE,
        benchmarks=tuple(Path(p) for p in args.benchmarks), benchmarks_root=Path(args.benchmarks_root),
        energy_curves=tuple(Path(p) for p in args.energy_curves),
        plugin_curves=tuple(Path(p) for p in args.plugin_curves),
        ratios=Path(args.ratios) if args.ratios else None,
        paper_estimate=Path(args.paper_estimate) if args.paper_estimate else None)
    names = args.blocks or list(BENCHMARK_BLOCKS if args.ratios else RUN_BLOCKS)
    unknown = sorted(set(names) - set(RUN_BLOCKS) - set(BENCHMARK_BLOCKS))
    if unknown:
        raise ConfigError(f"documents: unknown block(s) {unknown}; known: {sorted({**RUN_BLOCKS, **BENCHMARK_BLOCKS})}")
    needs = {"energies": args.plugin_curves, "energies-headline": args.plugin_curves,
             "energy-headline": args.energy_curves, "performance": args.ratios, "performance-headline": args.ratios,
             "paper-estimate": args.paper_estimate}
    missing = [name for name in names if name in needs and not needs[name]]
    if missing:
        raise ConfigError(f"documents: block(s) {missing} need their tables (--plugin-curves, --energy-curves, --ratios "
                          "or --paper-estimate); rule documents passes them")
    out = Path(args.out)
    for name, body in render(names, sources).items():
        write_text(out / f"{name}.md", body + "\n")
    print(f"{out}: rendered {', '.join(names)}", file=sys.stderr)


def run_readme(args: argparse.Namespace) -> None:
    from .report.blocks import splice

    documents = [Path(document) for document in args.documents]
    missing = [str(page) for page in documents if not page.is_file()]
    if missing:
        raise ConfigError(f"readme: {', '.join(missing)} does not exist")
    replaced, kept = splice(documents, Path(args.blocks))
    print(f"{', '.join(map(str, documents))}: replaced blocks {replaced}"
          + (f"; kept (nothing rendered in {args.blocks}) {kept}" if kept else ""), file=sys.stderr)


def run_report_pages(args: argparse.Namespace) -> None:
    from .report.pages import write_report_pages

    pages = write_report_pages(Path(args.tables), Path(args.landing))
    print(f"report pages: {', '.join(map(str, pages))}", file=sys.stderr)


def run_show_config(args: argparse.Namespace) -> None:
    import yaml

    print(yaml.safe_dump(load_config(args.config), sort_keys=False), end="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unfolded",
        description="Stages of the 'Transformers from an Optimization Perspective' replication pipeline.",
    )
    stages = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")

    depth = stages.add_parser(
        "depth", help="depth-extrapolation table of the tied runs at their picked learning rates",
        description="Concatenate the runs' depth.parquet (tied encoders run at depths 1 to depth_factor x L) and keep "
                    "each (dataset, model) at the learning rate picked in accuracy_summary.csv.")
    depth.add_argument("--data", nargs="+", required=True, help="runs' depth.parquet files")
    depth.add_argument("--selection", required=True, help="accuracy_summary.csv (the learning-rate picks)")
    depth.add_argument("--csv", required=True, help="output CSV (results/tables/depth.csv)")
    depth.add_argument("--table", required=True, help="output parquet with provenance (for the figure)")
    depth.set_defaults(run=run_depth)

    archive = stages.add_parser(
        "archive", help="archive a finished study's result tables with provenance",
        description="Copy accuracy.csv, accuracy_summary.csv, depth.csv and timings.csv into <out>/<study-id>/ with "
                    "provenance.json: config, commit, machine, CPU-hours from the train jobs' benchmarks, job count, and "
                    "the SHA-256 of the checkpoints of every picked run.")
    archive.add_argument("--config", nargs="+", required=True,
                         help="the study's config file(s), merged in order as snakemake --configfile does")
    archive.add_argument("--study-id", required=True, help="name of the archive folder")
    archive.add_argument("--tables", default="results/tables", help="where the study's tables are")
    archive.add_argument("--runs", default="results/runs", help="where the study's runs are (checkpoints)")
    archive.add_argument("--benchmarks", default="results/benchmarks/train", help="the train jobs' benchmark files")
    archive.add_argument("--out", default="results/archive", help="archive root")
    archive.add_argument("--allow-dirty", action="store_true",
                         help="archive runs trained from, or a tree with, uncommitted changes (refused otherwise); the "
                              "provenance records git_dirty: true. For tests and drafts only")
    archive.add_argument("--extra-tables", nargs="+", default=None, metavar="NAME",
                         help="further tables of --tables to archive (for example energy_summary.csv: the run's energy "
                              "curves)")
    archive.add_argument("--check-of", default=None, metavar="STUDY_ID",
                         help="mark this archive as a follow-up check of an archived study (its README section "
                              "then reports the check beside the study)")
    archive.set_defaults(run=run_archive)

    selection = stages.add_parser(
        "archive-selection", help="add a study's learning-rate selection (every run) to its archive",
        description="Copy selection_runs.csv, selection_val_predictions.parquet and selection_summary.csv (written by "
                    "make study-select) into an archived study, after checking each run's count of correct validation "
                    "answers against its answers and that the picks recomputed from the runs are the archive's "
                    "train.learning_rate_picks. Refuses runs or a tree with uncommitted changes.")
    selection.add_argument("--archive", required=True, help="results/archive/<study-id>")
    selection.add_argument("--tables", default="results/tables", help="where the selection's tables are")
    selection.add_argument("--runs", default="results/runs", help="where the selection's runs are")
    selection.add_argument("--allow-dirty", action="store_true", help="for tests and drafts only")
    selection.set_defaults(run=run_archive_selection)

    rerender = stages.add_parser(
        "rerender-verdicts", help="recompute an archived study's verdicts from its archived predictions (no training)",
        description="Read an archived study's accuracy.csv and predictions.parquet, apply the current verdict rule "
                    "(unfolded.verdicts) and write verdicts.csv and controls.csv back into the archive; its provenance "
                    "records the commit and which verdicts changed.")
    rerender.add_argument("--archive", required=True, help="results/archive/<study-id>")
    rerender.set_defaults(run=run_rerender_verdicts)

    recall_figures = stages.add_parser(
        "recall-figures", help="the recall check's input-retention figure, from its archived tables",
        description="Draw fig_input_retention (unfolded.figures.fig_input_retention) from input-retention tables "
                    "(python -m unfolded input-retention). No training.")
    _config_argument(recall_figures)
    recall_figures.add_argument("--tables", nargs="+", required=True, help="input-retention CSV tables")
    recall_figures.add_argument("--out", nargs="+", required=True, help="output figure files (.png/.pdf/.svg)")
    recall_figures.set_defaults(run=run_recall_figures)

    energies_figures = stages.add_parser(
        "energies-figures", help="the trained plug-in energies' figure (and docs section), from their archived study",
        description="Draw fig_energies_trained (unfolded.figures.fig_energies_trained) from an energies study's "
                    "trained_energy_layers.csv (make energies-measure); optionally write the docs section "
                    "(unfolded.report.energies_trial). No training.")
    _config_argument(energies_figures)
    energies_figures.add_argument("--archive", required=True, help="results/archive/<study.energies_id>")
    energies_figures.add_argument("--out", nargs="+", required=True, help="output figure files (.png/.pdf/.svg)")
    energies_figures.add_argument("--markdown", default=None, help="also write the docs section here")
    energies_figures.set_defaults(run=run_energies_figures)

    study_figures = stages.add_parser(
        "study-figures", help="rebuild the study figures and README section from an archive, without training",
        description="Read results/archive/<study-id>/ and draw the accuracy and depth-extrapolation figures; "
                    "optionally write the generated study section.")
    _config_argument(study_figures)
    study_figures.add_argument("--archive", required=True, help="results/archive/<study-id>")
    study_figures.add_argument("--accuracy", nargs="+", required=True, help="accuracy figure path(s)")
    study_figures.add_argument("--depth", nargs="+", required=True, help="depth-extrapolation figure path(s)")
    study_figures.add_argument("--spread", nargs="+", help="token-spread figure path(s) (archives with token_spread.csv)")
    study_figures.add_argument("--markdown", help="output Markdown of the study section")
    study_figures.set_defaults(run=run_study_figures)

    claims = stages.add_parser(
        "claims", help="check every claim of unfolded.claims and write the table",
        description="Run the randomised check of every claim (float64 instances) and write one row per claim with its "
                    "kind, source tag, trials, violations and verdict. Exits 1, naming the claim, when a theorem or "
                    "identity is violated or a counter-example's explicit instance does not raise its energy.")
    _config_argument(claims)
    claims.add_argument("--csv", required=True, help="output CSV (a .provenance.json sidecar is written next to it)")
    claims.add_argument("--trials", type=int, help="override config claims.trials")
    claims.add_argument("--seed", type=int, help="override config claims.seed")
    claims.add_argument("--allow-failures", action="store_true",
                        help="exit 0 even when a theorem or identity is violated or an explicit counter-example "
                             "does not raise its energy (for exploration)")
    claims.set_defaults(run=run_claims)

    synthetic = stages.add_parser(
        "synthetic", help="run a synthetic experiment (Figures 1-4) into a parquet table",
        description="apollonius: Figure 1's grid of ratios and h-step energy changes; alternating: Figures 2-3's "
                    "alternating gradient steps on two quadratics; kappa: Figure 4's kappa ratio on a grid.")
    synthetic.add_argument("experiment", choices=SYNTHETIC_EXPERIMENTS, help="which experiment's table to build")
    _config_argument(synthetic)
    synthetic.add_argument("--out", required=True, help="output parquet file")
    synthetic.set_defaults(run=run_synthetic)

    figure = stages.add_parser(
        "figure", help="draw one figure from its table(s)",
        description="Draw one figure from the tidy table(s) its stage wrote; the table's provenance is checked, so "
                    "a wrong table is named instead of failing inside the plot.")
    figure.add_argument("name", choices=list(FIGURES), help="the figure to draw")
    figure.add_argument("--dataset", help="dataset of fig5_energy_untrained / fig6_energy_trained")
    _config_argument(figure)
    figure.add_argument("--data", nargs="+", required=True, help="input parquet table(s)")
    figure.add_argument("--out", nargs="+", required=True, help="output files; format from the suffix (png, pdf, svg)")
    figure.set_defaults(run=run_figure)

    data = stages.add_parser(
        "data", help="fetch datasets into the cache, or describe them",
        description="fetch: download datasets or GloVe vectors once into the cache (data.cache_dir, $UNFOLDED_CACHE "
                    "or ~/.cache/unfolded). info: without names, list every dataset and vector archive with its cache "
                    "status, size and path; with names, also load each and describe its splits.")
    data.add_argument("action", choices=("fetch", "info"), help="fetch into the cache, or show what is there")
    data.add_argument("names", nargs="*", metavar="name", help=f"any of: {', '.join(data_names())}")
    _config_argument(data)
    data.add_argument("--marker", help="fetch: also write this file (the Snakemake target of the fetch rule)")
    data.set_defaults(run=run_data)

    train = stages.add_parser(
        "train", help="train one (dataset, model, seed) run with Lightning",
        description="Train one model with the settings of config section train, test it, and write its metrics, "
                    "per-layer energy trace of test sequences, final checkpoint and provenance. A rerun resumes from "
                    "the checkpoint directory when the checkpoints there were made by the same code.")
    _config_argument(train)
    train.add_argument("--dataset", required=True, help=f"one of: {', '.join(data_names()[:-2])}")
    train.add_argument("--model", required=True,
                       help=f"one of: {', '.join(MODELS)}; an unfolded model may carry a variant "
                            f"(<model>-<variant>, variants: {', '.join(VARIANTS)})")
    train.add_argument("--lr", type=float,
                       help="learning rate (default: the first of train.learning_rates for the model's family)")
    train.add_argument("--seed", type=int, required=True, help="seed of the initialisation and the batch order (>= 0)")
    train.add_argument("--run-dir", required=True,
                       help="outputs: metrics.csv, energies.parquet, depth.parquet, model.ckpt (the tested epoch), "
                            "provenance.json")
    train.add_argument("--checkpoint-dir", required=True, help="Lightning checkpoints; a rerun resumes from last.ckpt here")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=run_train)

    probe = stages.add_parser(
        "probe", help="the linear-probe baseline of one dataset (scikit-learn logistic regression)",
        description="Fit a logistic regression on the flattened raw input (token vectors or patches of every position, "
                    "zero-padded), pick C from train.probe_C on the validation split, and write test accuracy, the "
                    "dataset's known accuracy ceilings and provenance as JSON.")
    _config_argument(probe)
    probe.add_argument("--dataset", required=True, help="dataset name")
    probe.add_argument("--out", required=True, help="output JSON (the run's provenance.json)")
    probe.set_defaults(run=run_probe)

    curves = stages.add_parser(
        "energy-curves", help="per-layer energies before and after training (Figures 5-6)",
        description="For each variant of energy_curves.variants: the per-layer trace (energy, each step on its "
                    "layer's own energy, attention sub-step, token spread) of the sampled test sequences, untrained "
                    "without and with ReLU, and after the authors' training recipe with ReLU.")
    _config_argument(curves)
    curves.add_argument("--dataset", required=True, help="dataset to draw test sequences from")
    curves.add_argument("--out", required=True, help="output parquet table, one row per (curve, sample, layer)")
    curves.add_argument("--checkpoint-dir", required=True, help="checkpoints of the trained models (resumed on a rerun)")
    curves.add_argument("--no-progress", action="store_true", help="no progress bar")
    curves.set_defaults(run=run_energy_curves)

    plugins = stages.add_parser(
        "energy-plugins", help="untrained energy curves of the plug-in energies on one dataset (docs/energies.md)",
        description="Apply each plug-in energy's layer (unfolded.energies.REGISTRY, or energy_plugins.energies) "
                    "num_layers times to embedded test sequences: per layer its energy, each step on the layer's own "
                    "energy, the token spread and the effective rank.")
    _config_argument(plugins)
    plugins.add_argument("--dataset", required=True, help="dataset to draw test sequences from")
    plugins.add_argument("--out", required=True, help="output parquet table, one row per (energy, sample, layer)")
    plugins.add_argument("--no-progress", action="store_true", help="no progress bar")
    plugins.set_defaults(run=run_energy_plugins)

    regime = stages.add_parser(
        "regime-search",
        help="pick the exact_active regime: untrained curves over (alpha_attention, w_scale) on selection seeds, "
             "confirmed on fresh seeds",
        description="Untrained exact-model energy curves for every (alpha_attention, w_scale) of "
                    "energy_curves.regime_search, with and without ReLU; applies the prespecified rule on the "
                    "selection seeds and reports the pick on the confirmation seeds.")
    _config_argument(regime)
    regime.add_argument("--datasets", nargs="+", help="datasets to search on (default: config datasets)")
    regime.add_argument("--csv", required=True, help="output CSV, one row per curve (a .provenance.json is written beside it)")
    regime.add_argument("--no-progress", action="store_true", help="no progress bar")
    regime.set_defaults(run=run_regime_search)

    steps = stages.add_parser(
        "step-sizes", help="the step sizes archived learned_steps checkpoints learned, per layer",
        description="For every archived checkpoint of unfolded_tied-learned_steps: the learned attention and "
                    "feed-forward step sizes of each layer, their bounds, and whether the feed-forward one is below "
                    "1 / (1 + spectral_bound).")
    steps.add_argument("--archive", required=True, help="results/archive/<study-id>")
    steps.add_argument("--csv", required=True, help="output CSV, one row per (run, layer)")
    steps.set_defaults(run=run_step_sizes)

    searches = (
        ("recipe-search", run_recipe_search, "Figure 6: train the energy-curve models on a grid of recipes (selection seeds)",
         "Every (optimizer, learning rate) of energy_curves.recipe_search trains every variant on the selection seeds of "
         "one dataset, with validation; one row per run (the rule that picks one recipe from these rows is in "
         "unfolded.recipes; run recipe-pick on every dataset's table).", "(variant, recipe, seed)",
         "recipe-pick", run_recipe_pick, "apply the prespecified rule to the recipe search's tables",
         "Reads every dataset's recipe-search table, picks one recipe for all models (unfolded.recipes) and writes the "
         "search as Markdown, with whether energy_curves.learned_recipe matches the pick."),
        ("recall-search", run_recall_search,
         "recall check: exact_recall at the searched recipe for every anchor weight (selection seeds)",
         "Every anchor weight of energy_curves.recall_grid trains exact_recall at energy_curves.learned_recipe on the "
         "recipe search's selection seeds of one dataset, with validation; one row per run (the rule that picks one "
         "weight is unfolded.summaries.RECALL_RULE; run recall-pick on every dataset's table).", "(anchor weight, seed)",
         "recall-pick", run_recall_pick, "apply the prespecified rule to the recall search's tables",
         "Reads every dataset's recall-search table, picks one anchor weight (unfolded.summaries.RECALL_RULE) and writes "
         "the search as Markdown, with whether energy_curves.recall matches the pick."))
    for name, run, short, summary, rows, pick_name, pick_run, pick_short, pick_summary in searches:
        search = stages.add_parser(name, help=short, description=summary)
        _config_argument(search)
        search.add_argument("--dataset", required=True, help="dataset to train on")
        search.add_argument("--csv", required=True, help=f"output CSV, one row per {rows}")
        search.add_argument("--answers", default=None,
                            help="output parquet: every run's validation answers, item by item (archived with the search)")
        search.add_argument("--workdir", required=True, help="Lightning checkpoints and logs of the runs")
        search.add_argument("--no-progress", action="store_true", help="no progress bar")
        search.set_defaults(run=run)
        pick = stages.add_parser(pick_name, help=pick_short, description=pick_summary)
        _config_argument(pick)
        pick.add_argument("--csv", nargs="+", required=True, help=f"{name} tables, one per dataset")
        pick.add_argument("--markdown", required=True, help="output Markdown page")
        pick.set_defaults(run=pick_run)

    for name, run, short, summary in (
            ("input-retention", run_input_retention, "how much of the input archived encoders keep, layer by layer",
             "Per layer (0 to 4L for tied encoders): the pooled state's spread across test inputs relative to the input, "
             "and the test accuracy of a logistic-regression probe fitted on the train split's states of that layer "
             "(standardised); unfolded.retention"),
            ("depth-profile", run_depth_profile, "accuracy of archived tied encoders at every depth",
             "The test accuracy of every archived tied encoder at every depth from 1 to 4L, and the recall check's depth "
             "criterion (unfolded.summaries.recall_depth_criterion)")):
        stage = stages.add_parser(name, help=short, description=summary + ". No training.")
        stage.add_argument("--study-archive", default=None, help="results/archive/<study-id> (checkpoints/<dataset>/<model>)")
        stage.add_argument("--study-models", nargs="+", default=["unfolded_tied", "unfolded_tied-residual"],
                           help="the study archive's models to measure")
        stage.add_argument("--learned-archive", default=None,
                           help="an archive of Figure 6's learned models (python -m unfolded archive-learned)")
        stage.add_argument("--learned-variants", nargs="+", default=["exact"],
                           help="the learned archive's energy-curve models to measure")
        stage.add_argument("--csv", required=True, help="output CSV")
        stage.add_argument("--depth-factor", type=int, default=4, help="tied encoders run to this many times L")
        if name == "input-retention":
            stage.add_argument("--train-samples", type=int, default=1500,
                               help="train sequences the probe is fitted on (default 1500)")
        else:
            stage.add_argument("--criterion", default=None, help="output CSV: the depth criterion per model")
        stage.add_argument("--no-progress", action="store_true", help="no progress bar")
        stage.set_defaults(run=run)

    learned = stages.add_parser(
        "learned-models", help="Figure 6: train the energy-curve models at energy_curves.learned_recipe (fresh seeds)",
        description="Trains every variant of energy_curves.recipe_search.variants at the configured learned recipe "
                    "on its seeds and saves weights-only checkpoints (loaded by unfolded.recipes.load_learned).")
    _config_argument(learned)
    learned.add_argument("--dataset", required=True, help="dataset to train on")
    learned.add_argument("--csv", required=True, help="output CSV, one row per model")
    learned.add_argument("--checkpoints", required=True, help="directory for <dataset>/<variant>/seed<k>.pt")
    learned.add_argument("--workdir", required=True, help="Lightning checkpoints and logs of the runs")
    learned.add_argument("--no-progress", action="store_true", help="no progress bar")
    learned.set_defaults(run=run_learned_models)

    curves_learned = stages.add_parser(
        "learned-curves", help="Figure 6: layer traces of the archived learned models (no training)",
        description="Every archived checkpoint of one dataset: the energy-curve models trained at the learned recipe "
                    "and the study's tied unfolded models; each model's recorded test accuracy is checked, then its "
                    "per-layer trace (every energy) is written, state 'learned'.")
    _config_argument(curves_learned)
    curves_learned.add_argument("--dataset", required=True, help="dataset whose checkpoints to trace")
    curves_learned.add_argument("--learned-archive", help="results/archive/<energy_curves.learned_recipe.archive>")
    curves_learned.add_argument("--study-archive", help="results/archive/<study.id> (its checkpoints)")
    curves_learned.add_argument("--recall-archive",
                                help="results/archive/<study.recall_id>/figure6 (the recall check's exact_recall models)")
    curves_learned.add_argument("--out", required=True, help="output parquet")
    curves_learned.add_argument("--no-progress", action="store_true", help="no progress bar")
    curves_learned.set_defaults(run=run_learned_curves)

    archive_models = stages.add_parser(
        "archive-learned", help="archive the recipe search and the learned models (weights only, SHA-256)",
        description="Copies the recipe search's tables, the learned models' table and their checkpoints to "
                    "results/archive/<energy_curves.learned_recipe.archive>/ with provenance. Refuses uncommitted "
                    "changes to tracked files.")
    archive_models.add_argument("--config", nargs="+", default=None,
                                help="YAML file(s), merged in order as snakemake --configfile does (config.yaml first "
                                     "when others add to it), or one inline YAML/JSON text")
    archive_models.add_argument("--search", nargs="+", default=None, help="recipe-search tables")
    archive_models.add_argument("--search-from", default=None,
                                help="an earlier learned archive whose recipe search to reuse as it is (when only the "
                                     "models are trained anew, for example at a corrected pick)")
    archive_models.add_argument("--models", nargs="+", required=True, help="learned-models tables")
    archive_models.add_argument("--destination", default=None,
                                help="archive folder (default results/archive/<energy_curves.learned_recipe.archive>)")
    archive_models.add_argument("--allow-dirty", action="store_true", help="archive a dirty tree, marked git_dirty")
    archive_models.set_defaults(run=run_archive_learned)

    summary = stages.add_parser(
        "energy-summary", help="one row per energy curve: monotone, strict and active shares, collapse layer",
        description="Summarise energy-curve tables (energy-curves stage, trained runs' energies.parquet) into "
                    "one row per curve: the shares of unfolded.diagnostics, collapse layer, attention share, and "
                    "trained models' accuracy and weight change.")
    summary.add_argument("--data", nargs="+", required=True, help="input parquet tables of per-layer traces")
    summary.add_argument("--csv", required=True, help="output CSV (results/tables/energy_summary.csv)")
    summary.add_argument("--markdown", help="output Markdown table")
    summary.add_argument("--layers-csv", help="output CSV: per curve and layer, the attention and feed-forward "
                                              "sub-steps' mean energy decrease (results/tables/energy_layers.csv)")
    summary.set_defaults(run=run_energy_summary)

    page = stages.add_parser(
        "page", help="the Markdown page of a computing stage's table (claims, regime search)",
        description="Render the Markdown page of the claims table or of the regime search from the CSV and its "
                    ".provenance.json sidecar; kept apart from the computing stage, so editing the prose reruns no "
                    "computation.")
    page.add_argument("table", choices=("claims", "regime-search"), help="which table")
    page.add_argument("--csv", required=True, help="the stage's CSV (its .provenance.json sidecar is read too)")
    page.add_argument("--markdown", required=True, help="output Markdown page")
    page.set_defaults(run=run_page)

    combine = stages.add_parser("combine", help="concatenate tidy parquet tables",
                                description="Concatenate tidy parquet tables with the same columns into one.")
    combine.add_argument("--data", nargs="+", required=True, help="input parquet tables")
    combine.add_argument("--out", required=True, help="output parquet table")
    combine.set_defaults(run=run_combine)

    accuracy = stages.add_parser(
        "accuracy", help="summarise training runs into the accuracy table",
        description="Collect every run's provenance.json into one row per (dataset, model, seed); timings go to a "
                    "separate table so the accuracy table is reproduced byte for byte.")
    accuracy.add_argument("--runs", nargs="+", required=True,
                          help="run directories (results/runs/<dataset>/<model>/lr<rate>/seed<k>)")
    accuracy.add_argument("--probes", nargs="*", default=[],
                          help="linear-probe results (results/runs/<dataset>/linear_probe/provenance.json)")
    accuracy.add_argument("--csv", required=True, help="output CSV, one row per run, with the learning-rate pick (selected)")
    accuracy.add_argument("--summary", help="output CSV, one row per (dataset, model): pick, mean, sd, 95%% CI, ceilings")
    accuracy.add_argument("--markdown", required=True, help="output Markdown summary (mean ± sd over seeds)")
    accuracy.add_argument("--table", help="output parquet of the picked runs (read by fig_accuracy)")
    accuracy.add_argument("--timings", help="output CSV of training times and throughput, kept out of the results")
    accuracy.add_argument("--energy-curves", nargs="*", default=[], help="energy-curve tables to summarise")
    accuracy.add_argument("--training-curves", help="output parquet: every run's logged metrics")
    accuracy.add_argument("--val-predictions", help="output parquet: every run's per-item validation answers, at "
                                                    "every learning rate (read from <run>/val_predictions.parquet)")
    accuracy.add_argument("--predictions", help="output parquet: every picked run's per-item test predictions "
                                                "(read from <run>/predictions.parquet)")
    accuracy.add_argument("--verdicts", help="output CSV: attention on trial, one row per (dataset, model) with a "
                                             "no_attention control (paired test, Holm)")
    accuracy.add_argument("--controls", help="output CSV: each interaction-free control against its ceiling")
    accuracy.set_defaults(run=run_accuracy)

    spread = stages.add_parser(
        "token-spread", help="per trained run and layer, the median relative token spread on test sequences",
        description="Read the trained runs' layer traces (results/runs/.../energies.parquet) and write, per run and "
                    "layer, the median over test sequences of the relative token spread (spread / its layer-0 value).")
    spread.add_argument("--data", nargs="+", required=True, help="the runs' energies.parquet")
    spread.add_argument("--csv", required=True, help="output CSV (results/tables/token_spread.csv)")
    spread.add_argument("--out", required=True, help="output parquet (read by fig_token_spread)")
    spread.set_defaults(run=run_token_spread)

    sweep = stages.add_parser(
        "depth-sweep", help="the feed-forward step size of archived tied unfolded checkpoints, at depths L-2 to L+2",
        description="Load every archived unfolded_tied checkpoint of a study (weights only), set its feed-forward step "
                    "size to 1, 0.75, 0.5 and 0.25 at inference, and record its test accuracy at depths L-2 to L+2; "
                    "then test the prespecified criterion (unfolded.sweeps.sweep_criterion). No training.")
    sweep.add_argument("--archive", required=True, help="results/archive/<study-id>")
    sweep.add_argument("--csv", required=True, help="output CSV, one row per (dataset, model, seed, alpha, depth)")
    sweep.add_argument("--criterion", required=True, help="output CSV, the criterion per (dataset, model)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(run=run_depth_sweep)

    energies = stages.add_parser(
        "trained-energies", help="which energy the layers of archived unfolded checkpoints descend, step by step",
        description="Load every archived unfolded_tied and unfolded_tied-residual checkpoint of a study (weights only) "
                    "and measure, on test sequences in float64, each sub-step on the energy a theorem gives it (the "
                    "pairwise term for attention, the feed-forward quadratic for its gradient step, that plus the ReLU "
                    "indicator for the feed-forward sub-step) and every layer on the total energy with and without the "
                    "authors' regulariser: non-increasing, strict and active shares per run. No training.")
    energies.add_argument("--archive", required=True, help="results/archive/<study-id>")
    energies.add_argument("--csv", required=True, help="output CSV, one row per (dataset, model, seed, energy)")
    energies.add_argument("--samples", type=int, default=None,
                          help="test sequences per run (default: the study's energy_curves.samples, drawn with its "
                               "energy_curves.seed, as Figure 6 draws them)")
    energies.add_argument("--plugins", action="store_true",
                          help="measure the plug-in encoders instead (<name>_tied and their controls): each plug-in's "
                               "energy around its own step, the layer's summed energy, and how often the step's input "
                               "meets the plug-in's conditions")
    energies.add_argument("--layers", default=None,
                          help="with --plugins: output CSV, one row per (dataset, model, seed, layer) with the median "
                               "layer energy and relative token spread (the trained-energies figure)")
    energies.add_argument("--no-progress", action="store_true", help="no progress bar")
    energies.set_defaults(run=run_trained_energies)

    pick_rates = stages.add_parser(
        "pick-rates", help="fix a selection run's learning-rate picks in a config file",
        description="Write the learning rate picked per (dataset, model) in an accuracy summary as config "
                    "train.learning_rate_picks, so that a confirmation run on fresh seeds trains at the picks only.")
    pick_rates.add_argument("--summary", default="results/tables/accuracy_summary.csv",
                            help="the selection run's accuracy summary")
    pick_rates.add_argument("--out", required=True, help="output YAML (for example config/study-picks.yaml)")
    pick_rates.set_defaults(run=run_pick_rates)

    documents = stages.add_parser(
        "documents", help="render the generated blocks of the README and the docs pages into a folder",
        description="Render every generated block (rule documents: the default run's tables and the study archive; "
                    "with --ratios: the benchmark blocks) into <out>/<block>.md; `readme` splices them in.")
    _config_argument(documents)
    documents.add_argument("--tables", default="results/tables", help="the default run's tables")
    documents.add_argument("--data", default="results/data", help="the default run's data tables (Figures 1-4)")
    documents.add_argument("--archive", default="results/archive", help="the study archives (study.id names one)")
    documents.add_argument("--study-config", help="config/study.yaml: the full grid whose cost the study block states")
    documents.add_argument("--benchmarks", nargs="*", default=[], help="the jobs' Snakemake benchmark files")
    documents.add_argument("--benchmarks-root", default="results/benchmarks", help="folder of the benchmark files")
    documents.add_argument("--energy-curves", nargs="*", default=[], help="the energy-curve tables (their settings)")
    documents.add_argument("--plugin-curves", nargs="*", default=[], help="the plug-in energies' curve tables")
    documents.add_argument("--ratios", help="benchmarks/ratios.py's table: render the benchmark blocks instead")
    documents.add_argument("--paper-estimate", help="benchmarks/paper_estimate.py's page")
    documents.add_argument("--blocks", nargs="*", help="only these blocks")
    documents.add_argument("--out", required=True, help="folder of the rendered blocks")
    documents.set_defaults(run=run_documents)

    readme = stages.add_parser(
        "readme", help="splice rendered blocks into the README and the docs pages",
        description="Replace every <!-- NAME:start --> ... <!-- NAME:end --> block of the documents whose rendered "
                    "body <blocks>/NAME.md exists (`make readme` renders them first with rule documents).")
    readme.add_argument("documents", nargs="*", default=["README.md", "docs/results.md", "docs/performance.md",
                                                         "docs/paper-run.md", "docs/energies.md"],
                        help="the documents to update")
    readme.add_argument("--blocks", default="results/documents", help="folder of the rendered blocks")
    readme.set_defaults(run=run_readme)

    pages = stages.add_parser(
        "report-pages", help="write the HTML report's landing page and in-page tables",
        description="Write the landing page of `snakemake --report` (verdict counts, key numbers, commit) as "
                    "reStructuredText, and an HTML page for each result table so the report shows it in the page.")
    pages.add_argument("--tables", default="results/tables", help="folder of the result tables (default results/tables)")
    pages.add_argument("--landing", default="results/report/landing.rst", help="output landing page (.rst)")
    pages.set_defaults(run=run_report_pages)

    show = stages.add_parser(
        "config", help="validate a configuration and print it with all defaults filled in",
        description="Validate a configuration file (or inline YAML) against the schema and print it with every "
                    "default filled in; a malformed file is reported with its path, line and column.")
    _config_argument(show)
    show.set_defaults(run=run_show_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    # Before anything touches CUDA: deterministic cuBLAS workspaces, headless plotting.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = build_parser().parse_args(argv)
    from .errors import UserError

    try:
        args.run(args)
    except UserError as error:  # the project's own errors; anything else is a bug and keeps its traceback
        if os.environ.get("UNFOLDED_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 3 if type(error).__name__ == "DataUnavailable" else 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
