# Shared helpers. The config is validated here, at parse time, before any job runs.
import json
import os
import shlex
import sys

import yaml
from snakemake.utils import update_config, validate

from unfolded.archive import ARCHIVE_TABLES, OPTIONAL_TABLES
from unfolded.codeversion import stage_digest
from unfolded.config import ConfigError, config_hash, validate_config
from unfolded.downloads import pending_downloads, use_this_interpreter_for_jobs
from unfolded.grid import run_minutes, run_specs, short_runs
from unfolded.registry import DATASETS, FIGURES, MODELS, VECTORS, fetch_names, figure_names
from unfolded.report.blocks import BENCHMARK_BLOCKS, RUN_BLOCKS

# a run's model: a registry model, optionally -<variant>
MODEL_PATTERN = "(" + "|".join(MODELS) + ")(-[a-z_]+)?"


def _typed(value):
    """Snakemake parses nested --config values with YAML's BaseLoader, so every leaf arrives as a
    string ('0.3'); read each leaf again as YAML to get numbers, booleans and lists back."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


update_config(config, _typed(dict(workflow.config_settings.config)))

try:
    # Our validator names the offending key (config.claims.trials: ...) and fills defaults;
    # snakemake's validate then checks the same schema the way every Snakemake workflow does.
    config.update(validate_config(config))
except ConfigError as error:
    raise WorkflowError(str(error)) from None
validate(config, "../schemas/config.schema.yaml")

# Every stage runs `python -m unfolded ...` with the environment that runs Snakemake: its bin folder
# goes first on PATH (inherited by local and SLURM jobs; `--sdm conda` puts the job's own environment
# in front). The interpreter path is never part of a rule's params, so another path to the same
# environment, a moved or copied clone, or another environment with the same package reruns nothing.
use_this_interpreter_for_jobs()
FORMATS = config["figures"]["formats"]
LANDING_PAGE = "results/report/landing.rst"

# Say before any job runs (dry runs too) what would be downloaded, how much and where.
for _name, _gigabytes, _destination in pending_downloads(config["datasets"], config["data"]):
    print(
        f"Note: this workflow downloads {_name} (about {_gigabytes:g} GB) into {_destination} "
        f"unless it is fetched already (python -m unfolded data fetch {_name}) or data.sources names a local copy.",
        file=sys.stderr,
    )


def inline_config(*paths, exclude=()):
    """The config subtrees at `paths` (tuples of keys) as one quoted JSON argument for --config.

    Passing exactly the settings a rule uses makes Snakemake's params trigger rerun that rule,
    and only that rule, when one of them changes.
    """
    subset = {}
    for path in paths:
        node, target = config, subset
        for key in path[:-1]:
            node, target = node[key], target.setdefault(key, {})
        value = node[path[-1]]
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in exclude}
        target[path[-1]] = value
    return shlex.quote(json.dumps(subset, sort_keys=True))


def code(stage):
    """Content digest of the code a stage (a subcommand of python -m unfolded) runs: its entry function
    and the package modules it imports (unfolded.codeversion). A rule's params carry it, so editing a
    module reruns exactly the rules whose stages import it."""
    return stage_digest(stage)


def checkpoint_dir(run, stage, *paths, exclude=()):
    """Where a run keeps its checkpoints: outside the declared outputs, keyed by its settings and by
    the digest of the code that trains it, so a code change never resumes a stale checkpoint."""
    settings = json.loads(shlex.split(inline_config(*paths, exclude=exclude))[0])
    return f"results/checkpoints/{run}/{config_hash({'settings': settings, 'code': code(stage)})}"


def figure_outputs(name):
    return [f"results/figures/{name}.{fmt}" for fmt in FORMATS]


ARCHIVE = f"results/archive/{config['study']['id']}"
# archives since the attention trial hold token_spread.csv, older ones do not (no token-spread figure)
ARCHIVE_SPREAD = os.path.exists(f"{ARCHIVE}/token_spread.csv")
# and weights-only checkpoints, from which the depth sweep is rebuilt without training
ARCHIVE_CHECKPOINTS = os.path.isdir(f"{ARCHIVE}/checkpoints")
# the archived learned models of Figure 6 (recipes.smk), when they have been archived (a fresh clone has them)
LEARNED_ARCHIVE = f"results/archive/{config['energy_curves']['learned_recipe']['archive']}"
HAVE_LEARNED = os.path.exists(f"{LEARNED_ARCHIVE}/provenance.json")


def learned_curves_for(datasets):
    """Figure 6's learned-curve tables (rule learned_curves) when an archive holds checkpoints, else none."""
    if not (HAVE_LEARNED or ARCHIVE_CHECKPOINTS):
        return []
    return [f"results/data/learned_curves_{dataset}.parquet" for dataset in datasets]


def all_targets():
    if config["study"]["from_archive"]:
        return [
            *figure_outputs("study_accuracy"),
            *figure_outputs("study_depth_extrapolation"),
            *(figure_outputs("study_token_spread") if ARCHIVE_SPREAD else []),
            *(["results/tables/depth_sweep.csv", "results/tables/trained_energies.csv"] if ARCHIVE_CHECKPOINTS else []),
            # Figure 6 from the archived learned models and the study's checkpoints
            *(
                [path for dataset in config["datasets"] for path in figure_outputs(f"fig6_energy_trained_{dataset}")]
                if learned_curves_for(config["datasets"])
                else []
            ),
            "results/tables/study.md",
            *(figure_outputs("fig_input_retention") if HAVE_RECALL else []),
            *(figure_outputs("fig_energies_trained") if HAVE_ENERGIES else []),
        ]
    targets = ["results/tables/claims.csv", "results/tables/claims.md"]
    included = config["figures"]["include"]
    for name in included:
        if FIGURES[name].per_dataset:
            for dataset in config["datasets"]:
                targets += figure_outputs(f"{name}_{dataset}")
        else:
            targets += figure_outputs(name)
    trained = any(name in included for name in ("fig_accuracy", "fig_training_curves"))
    curves = any(name in included for name in ("fig5_energy_untrained", "fig6_energy_trained"))
    if trained:
        targets += [
            "results/tables/accuracy.csv",
            "results/tables/accuracy.md",
            "results/tables/accuracy_summary.csv",
            "results/tables/depth.csv",
        ]
        if "fig_depth_extrapolation" not in included:
            targets += figure_outputs("fig_depth_extrapolation")
    if curves:
        targets += ["results/tables/energy_summary.csv", "results/tables/energy_summary.md"]
        if trained:
            targets += [LANDING_PAGE]
        if "exact_active" in config["energy_curves"]["variants"]:
            targets += ["results/tables/regime_search.csv", "results/tables/regime_search.md"]
    if trained and curves and "exact_active" in config["energy_curves"]["variants"]:
        targets += DOCUMENTS  # the generated blocks quote every table of the default run
    if HAVE_RECALL:
        targets += figure_outputs("fig_input_retention")
    if HAVE_ENERGIES:
        targets += figure_outputs("fig_energies_trained")
    return targets


def fetched(wildcards):
    """Fetch markers the job's dataset needs before it can load offline."""
    return fetched_for(wildcards.dataset)


def fetched_for(dataset):
    """Fetch markers (outputs of rule fetch) a dataset needs before it can load offline."""
    return [rules.fetch.output[0].format(name=name) for name in fetch_names([dataset], config["data"]["glove"])]


def run_outputs(pattern, energy_only=False, tied_only=False):
    """``pattern`` (with wildcards dataset, model, lr, seed) for every run; energy_only: encoders with an
    energy trace (not bag_of_embeddings); tied_only: encoders that run at other depths."""
    return [
        pattern.format(dataset=dataset, model=model, lr=lr, seed=seed)
        for dataset, model, lr, seed in run_specs(config)
        if not (energy_only and model.startswith("bag_of_embeddings")) and not (tied_only and "_tied" not in model)
    ]


def run_dirs(**filters):
    """Run directories (filters as in :func:`run_outputs`)."""
    return run_outputs("results/runs/{dataset}/{model}/lr{lr}/seed{seed}", **filters)


def probe_runs():
    if not config["train"]["linear_probe"]:
        return []
    return [
        rules.probe.output[0].format(dataset=dataset) for dataset in config["train"]["datasets"] or config["datasets"]
    ]


# On SLURM, short train/probe runs (unfolded.registry.DATASETS: short_runs) travel in group "runs"
# (profiles/slurm: 16 per submission, one after another); runs on the paper's data are long and go one
# per submission.
def run_group(wildcards):
    """Group "runs" for short runs; long runs are not grouped."""
    return "runs" if short_runs(wildcards.dataset) else None


def job_minutes(wildcards):
    """The time a run may take (minutes): a group's request is the sum over its runs."""
    return run_minutes(wildcards.dataset)


# The generated blocks of rule documents (unfolded.report.blocks). The study blocks need the study
# archive (results/archive/<study.id>), and are left out where it is absent.
STUDY_BLOCKS = ("study", "study-headline", "study-superseded")
# The recall check's blocks and figure need its archive (results/archive/<study.recall_id>), with its measurements
RECALL_BLOCKS = ("recall", "recall-headline")
RECALL_ARCHIVE = f"results/archive/{config['study']['recall_id']}"
HAVE_RECALL = os.path.exists(f"{RECALL_ARCHIVE}/provenance.json") and os.path.exists(
    f"{RECALL_ARCHIVE}/input_retention_earlier.csv"
)


# and the real-data run's (results/archive/<study.realdata_id>)
REALDATA_BLOCKS = ("realdata", "realdata-headline")
REALDATA_ARCHIVE = f"results/archive/{config['study']['realdata_id']}"
HAVE_REALDATA = os.path.exists(f"{REALDATA_ARCHIVE}/provenance.json")


# and the study of the plug-in energies as trained encoders (results/archive/<study.energies_id>), with its measurements
ENERGIES_BLOCKS = ("energies-trained", "energies-trained-headline")
ENERGIES_ARCHIVE = f"results/archive/{config['study']['energies_id']}"
HAVE_ENERGIES = os.path.exists(f"{ENERGIES_ARCHIVE}/provenance.json") and os.path.exists(
    f"{ENERGIES_ARCHIVE}/trained_energy_layers.csv"
)


def document_blocks():
    have_archive = os.path.exists(f"{ARCHIVE}/provenance.json")
    return [
        name
        for name in RUN_BLOCKS
        if (have_archive or name not in STUDY_BLOCKS)
        and (HAVE_RECALL or name not in RECALL_BLOCKS)
        and (HAVE_REALDATA or name not in REALDATA_BLOCKS)
        and (HAVE_ENERGIES or name not in ENERGIES_BLOCKS)
    ]


DOCUMENTS = [f"results/documents/{name}.md" for name in document_blocks()]


def archive_files():
    """The study archive and its follow-up checks (every archive folder: a check names its study inside)."""
    if not os.path.exists(f"{ARCHIVE}/provenance.json"):
        return []
    return sorted(
        f"results/archive/{folder}/{name}"
        for folder in os.listdir("results/archive")
        if os.path.exists(f"results/archive/{folder}/provenance.json")
        for name in ("provenance.json", *ARCHIVE_TABLES, *OPTIONAL_TABLES)
        if os.path.exists(f"results/archive/{folder}/{name}")
    )


def recall_files():
    """The recall check's archive files its blocks and figure read (none when it is not archived)."""
    if not HAVE_RECALL:
        return []
    names = (
        "provenance.json",
        "input_retention.csv",
        "input_retention_earlier.csv",
        "depth_profile.csv",
        "figure6/provenance.json",
        "figure6/learned_models.csv",
    )
    return [f"{RECALL_ARCHIVE}/{name}" for name in names if os.path.exists(f"{RECALL_ARCHIVE}/{name}")]


def realdata_files():
    """The real-data run's archive files its blocks read (none when it is not archived)."""
    if not HAVE_REALDATA:
        return []
    names = (
        "provenance.json",
        "accuracy.csv",
        "predictions.parquet",
        "energy_summary.csv",
        "token_spread.csv",
        "trained_energies.csv",
        "figure6/learned_models.csv",
    )
    return [f"{REALDATA_ARCHIVE}/{name}" for name in names if os.path.exists(f"{REALDATA_ARCHIVE}/{name}")]


def energies_files():
    """The energies study's archive files its blocks and figure read (none when it is not archived)."""
    if not HAVE_ENERGIES:
        return []
    names = (
        "provenance.json",
        "accuracy.csv",
        "depth.csv",
        "predictions.parquet",
        "token_spread.csv",
        "trained_energies.csv",
        "trained_energy_layers.csv",
    )
    return [f"{ENERGIES_ARCHIVE}/{name}" for name in names if os.path.exists(f"{ENERGIES_ARCHIVE}/{name}")]


def timed_jobs():
    """The benchmark file of every timed job the default run makes: the runtime blocks quote them."""
    per_dataset = {"fig5_energy_untrained", "fig6_energy_trained"} & set(config["figures"]["include"])
    files = [
        rules.claims.benchmark,
        *expand(rules.synthetic.benchmark, experiment=("apollonius", "alternating", "kappa")),
        *[f"results/benchmarks/figures/{name}.tsv" for name in figure_names(synthetic=True)],
        *(["results/benchmarks/figures/fig_energies.tsv"] if "fig_energies" in config["figures"]["include"] else []),
        *(
            ["results/benchmarks/figures/fig_token_spread.tsv", "results/benchmarks/token_spread.tsv"]
            if "fig_token_spread" in config["figures"]["include"]
            else []
        ),
        *expand(rules.energy_figure.benchmark, figure=sorted(per_dataset), dataset=config["datasets"]),
        *expand(
            rules.training_figure.benchmark,
            figure=("fig_accuracy", "fig_training_curves", "fig_depth_extrapolation"),
        ),
        *run_outputs(rules.train.benchmark),
        *expand(rules.energy_curves.benchmark, dataset=config["datasets"]),
        rules.energy_curves_table.benchmark,
        *expand(rules.energy_plugins.benchmark, dataset=config["datasets"]),
        rules.energy_plugins_table.benchmark,
        rules.energy_summary.benchmark,
        *(
            expand(rules.learned_curves.benchmark, dataset=config["datasets"])
            if learned_curves_for(config["datasets"])
            else []
        ),
        rules.regime_search.benchmark,
        rules.regime_page.benchmark,
        rules.claims_page.benchmark,
        rules.accuracy.benchmark,
        rules.depth.benchmark,
        rules.report_pages.benchmark,
    ]
    if config["train"]["linear_probe"]:
        files += expand(rules.probe.benchmark, dataset=config["train"]["datasets"] or config["datasets"])
    return files
