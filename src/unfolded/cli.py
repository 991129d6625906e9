"""``python -m unfolded <stage>``: every pipeline stage as a plain command.

Each stage takes ``--config`` (a YAML file, or inline YAML/JSON text such as the section the
Snakefile passes) and explicit output paths, so a Snakemake rule is one shell line and every
stage also runs by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import FIGURE_TABLES, ConfigError, load_config

SYNTHETIC_EXPERIMENTS = ("apollonius", "alternating", "kappa")
README_START, README_END = "<!-- claims:start -->", "<!-- claims:end -->"


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="YAML file, or inline YAML/JSON text; missing keys take the schema defaults",
    )


def _claims_markdown(frame) -> str:
    columns = ["claim", "kind", "conditions", "trials", "violations", "max_increase", "verdict"]
    table = frame[columns].copy()
    table["max_increase"] = table["max_increase"].map(lambda v: f"{v:.3g}")
    table["conditions"] = table["conditions"].str.replace("|", r"\|", regex=False)
    return table.to_markdown(index=False)


def run_claims(args: argparse.Namespace) -> None:
    import pandas as pd
    from tqdm import tqdm

    from .artifacts import atomic_path, provenance, write_json, write_text
    from .claims import CLAIMS, run_all

    config = load_config(args.config)
    settings = config["claims"]
    trials = args.trials or settings["trials"]
    seed = settings["seed"] if args.seed is None else args.seed
    ids = list(CLAIMS)
    results = []
    for claim_id in tqdm(ids, desc="claims", unit="claim", file=sys.stderr):
        results.extend(run_all(trials, seed, ids=[claim_id]))
    frame = pd.DataFrame([r.as_row() for r in results])
    meta = provenance("claims", {"trials": trials, "seed": seed}, seed)
    with atomic_path(args.csv) as temporary:
        frame.to_csv(temporary, index=False, float_format="%.6g")
    write_json(Path(args.csv).with_suffix(".provenance.json"), meta)
    markdown = _claims_markdown(frame)
    if args.markdown:
        unexpected = [r.claim for r in results if r.as_expected is False]
        footer = (
            f"\n\n{len(results)} claims, {trials} trials each, seed {seed}; "
            f"outcomes contrary to their kind: {unexpected or 'none'}. "
            f"Config hash {meta['config_hash']}, commit {meta['git_commit'][:12]}.\n"
        )
        write_text(args.markdown, markdown + footer)
    if args.update_readme:
        _update_readme(Path(args.update_readme), markdown)
    failed = [r.claim for r in results if r.as_expected is False]
    print(f"{len(results)} claims checked; theorems or identities that failed: {failed or 'none'}", file=sys.stderr)


def _update_readme(path: Path, markdown: str) -> None:
    from .artifacts import write_text

    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{path}: markers {README_START} / {README_END} not found")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    write_text(path, f"{head}{README_START}\n{markdown}\n{README_END}{tail}")


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
    from .config import FIGURE_TABLES, FiguresConfig
    from .figures import FIGURES

    config = load_config(args.config)
    figures = FiguresConfig.from_config(config)
    expected = FIGURE_TABLES[args.name]
    if len(args.data) != len(expected):
        raise SystemExit(f"figure {args.name}: expected {len(expected)} table(s) ({', '.join(expected)}), got {len(args.data)}")
    for path in args.data:
        if not Path(path).exists():
            raise SystemExit(f"figure {args.name}: table {path} does not exist; build it first (snakemake {path})")
    tables = [pd.read_parquet(path) for path in args.data]
    for path, table in zip(args.data, tables, strict=True):
        if table.empty:
            raise SystemExit(f"figure {args.name}: table {path} has no rows")
    options = {}
    if args.name == "fig4_kappa_regions":
        options["kappas"] = config["synthetic"]["kappa"]["kappas"]
    figure = FIGURES[args.name](*tables, **options)
    sources = {Path(p).name: read_provenance(p)["config_hash"] for p in args.data}
    meta = provenance(f"figure/{args.name}", {"figures": config["figures"], **options}, None, tables=sources)
    save_figure(figure, args.out, meta, dpi=figures.dpi)
    print(f"{args.name}: wrote {', '.join(args.out)}", file=sys.stderr)


def run_show_config(args: argparse.Namespace) -> None:
    import yaml

    print(yaml.safe_dump(load_config(args.config), sort_keys=False), end="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unfolded",
        description="Stages of the 'Transformers from an Optimization Perspective' replication pipeline.",
    )
    stages = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")

    claims = stages.add_parser("claims", help="check every claim of unfolded.claims and write the table")
    _config_argument(claims)
    claims.add_argument("--csv", required=True, help="output CSV (a .provenance.json sidecar is written next to it)")
    claims.add_argument("--markdown", help="output Markdown table")
    claims.add_argument("--trials", type=int, help="override config claims.trials")
    claims.add_argument("--seed", type=int, help="override config claims.seed")
    claims.add_argument("--update-readme", metavar="README", help="replace the table between the claims markers")
    claims.set_defaults(run=run_claims)

    synthetic = stages.add_parser("synthetic", help="run a synthetic experiment (Figures 1-4) into a parquet table")
    synthetic.add_argument("experiment", choices=SYNTHETIC_EXPERIMENTS)
    _config_argument(synthetic)
    synthetic.add_argument("--out", required=True, help="output parquet file")
    synthetic.set_defaults(run=run_synthetic)

    figure = stages.add_parser("figure", help="draw one figure from its table(s)")
    figure.add_argument("name", choices=sorted(FIGURE_TABLES))
    _config_argument(figure)
    figure.add_argument("--data", nargs="+", required=True, help="input parquet table(s)")
    figure.add_argument("--out", nargs="+", required=True, help="output files; format from the suffix (png, pdf, svg)")
    figure.set_defaults(run=run_figure)

    show = stages.add_parser("config", help="validate a configuration and print it with all defaults filled in")
    _config_argument(show)
    show.set_defaults(run=run_show_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
