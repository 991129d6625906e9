"""The Snakemake workflow, run for real on the smoke config in a temporary copy of the repository."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from unfolded.archive import load_checkpoint
from unfolded.claims import CLAIMS
from unfolded.config import load_config, load_config_files
from unfolded.data import prepare
from unfolded.energies import REGISTRY
from unfolded.grid import run_specs
from unfolded.models import SUBSTEP_ENERGIES
from unfolded.registry import CURVE_MODELS
from unfolded.summaries import PLOTTED_ENERGY, plotted_rows

from helpers.workflow import SNAKEMAKE, copy_workflow, job_counts, snakemake, workflow_env

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("pipeline"))
    result = snakemake(workdir, "--configfile", "config/smoke.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.parametrize("configfile", [None, "config/paper.yaml"])
def test_dry_run(tmp_path, configfile):
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "-n", *(["--configfile", configfile] if configfile else []))
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    counts = job_counts(output)
    config = load_config_files([name for name in ("config.yaml", configfile) if name])
    datasets = config["train"]["datasets"] or config["datasets"]
    assert counts["synthetic"] == 3 and counts["claims"] == 1 and counts["fig1_apollonius"] == 1
    assert counts["train"] == len(run_specs(config))
    assert counts["energy_curves"] == len(config["datasets"]) and counts["energy_figure"] == 2 * len(config["datasets"])
    assert counts["probe"] == len(datasets) and counts["depth"] == 1 and counts["documents"] == 1
    if configfile:  # the paper's data: IMDB, SST-2 and GloVe are fetched first
        assert counts["fetch"] == 3
        assert "downloads glove-840B (about 2 GB) into" in output  # said before anything runs
        assert "results/runs/imdb/unfolded_tied/lr0.01/seed0" in output
        assert "results/runs/sst2/bag_of_embeddings/lr0.01/seed2" in output
    else:
        assert "fetch" not in counts and "downloads" not in output


def test_slurm_profile_dry_run(tmp_path):
    workdir = copy_workflow(tmp_path)
    result = subprocess.run(
        [SNAKEMAKE, "--workflow-profile", "profiles/slurm", "-n"], cwd=workdir, capture_output=True, text=True,
        env=workflow_env(workdir),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "runtime=" in output
    # training and energy-curve jobs ask SLURM for a GPU, the synthetic ones do not
    for block in output.split("\n\n"):
        if "rule train:" in block or "rule energy_curves:" in block:
            assert "gpu=1" in block
        elif "rule synthetic:" in block:
            assert "gpu=" not in block


def test_outputs_are_valid(smoke_run):
    for name in ("fig1_apollonius", "fig2_alternating_trace", "fig3_alternating_energy", "fig4_kappa_regions"):
        assert Image.open(smoke_run / f"results/figures/{name}.png").format == "PNG"
        assert (smoke_run / f"results/figures/{name}.pdf").read_bytes().startswith(b"%PDF")
        assert (smoke_run / f"results/logs/figures/{name}.log").exists()
    apollonius = pd.read_parquet(smoke_run / "results/data/apollonius.parquet")
    assert len(apollonius) == 2 * 28 * 28 and {"ratio", "inside", "rise", "energy_change"} <= set(apollonius.columns)
    alternating = pd.read_parquet(smoke_run / "results/data/alternating.parquet")
    assert len(alternating) == 20 + 3 and {"pc1", "pc2", "total", "kind"} <= set(alternating.columns)
    kappa = pd.read_parquet(smoke_run / "results/data/kappa.parquet")
    assert len(kappa) == 40 * 40 and {"r", "kept_share"} <= set(kappa.columns)
    claims = pd.read_csv(smoke_run / "results/tables/claims.csv")
    assert len(claims) == len(CLAIMS) and (claims["trials"] >= 5).all()
    assert (smoke_run / "results/benchmarks/claims.tsv").exists()
    accuracy = pd.read_csv(smoke_run / "results/tables/accuracy.csv")
    # 4 datasets x (3 models + 4 unfolded variants + standard_tied-no_attention + the linear probe), one seed
    assert len(accuracy) == 4 * 9 and accuracy["test_accuracy"].between(0, 1).all()
    assert {"dataset", "model", "variant", "lr", "seed", "val_accuracy", "selected", "parameters", "positions",
            "energy_monotone_fraction", "bag_of_words_ceiling", "oracle_ceiling"} <= set(accuracy.columns)
    assert set(accuracy["model"]) == {"unfolded_tied", "standard_untied", "bag_of_embeddings", "linear_probe",
                                      "unfolded_tied-residual", "unfolded_tied-learned_steps", "unfolded_tied-multihead",
                                      "unfolded_tied-no_attention", "standard_tied-no_attention"}
    order = accuracy[accuracy["dataset"] == "order"]
    assert (order["bag_of_words_ceiling"] == 0.5).all() and (order["oracle_ceiling"] == 1.0).all()
    equality = accuracy[accuracy["dataset"] == "equality"]
    assert (equality["no_interaction_ceiling"] == 0.75).all() and (equality["bag_of_words_ceiling"] < 0.75).all()
    assert (accuracy[accuracy["dataset"] == "polarity"]["bag_of_words_ceiling"].between(0.8, 0.9)).all()
    assert accuracy[accuracy["dataset"] == "digits"]["bag_of_words_ceiling"].isna().all()
    # the controls on the interaction task have the affine head, the others LayerNorm
    trained = accuracy[accuracy["lr"].notna()]
    assert set(trained.loc[trained["dataset"] == "equality", "head"]) == {"affine"}
    assert set(trained.loc[trained["dataset"] != "equality", "head"]) == {"layer_norm"}
    verdicts = pd.read_csv(smoke_run / "results/tables/verdicts.csv")
    assert len(verdicts) == 4 and set(verdicts["model"]) == {"unfolded_tied"}  # smoke trains no standard_tied
    assert verdicts["seed_p"].between(0, 1).all() and (verdicts["holm_p"] >= verdicts["seed_p"]).all()
    assert (verdicts["pairs"] >= 1).all() and {"item_p", "seed_p_all", "verdict_set_aside"} <= set(verdicts.columns)
    assert (smoke_run / "results/figures/fig_token_spread.png").exists()
    summary_table = pd.read_csv(smoke_run / "results/tables/accuracy_summary.csv")
    assert len(summary_table) == 4 * 9 and {"lr_grid", "ci95_low", "test_accuracy_sd"} <= set(summary_table.columns)
    depth = pd.read_csv(smoke_run / "results/tables/depth.csv")
    assert list(depth.columns) == ["dataset", "model", "seed", "lr", "trained_depth", "depth", "test_accuracy", "update",
                                   "energy"]
    # tied encoders only (no untied, no baselines), each at depths 1 to 4 x 2
    assert set(depth["model"]) == {"unfolded_tied", "unfolded_tied-residual", "unfolded_tied-learned_steps",
                                   "unfolded_tied-multihead", "unfolded_tied-no_attention", "standard_tied-no_attention"}
    assert len(depth) == 4 * 6 * 8
    assert depth.loc[depth["model"].str.startswith("unfolded"), "energy"].notna().all()
    assert not {"train_seconds", "samples_per_second", "resumed"} & set(accuracy.columns)  # timings apart
    timings = pd.read_csv(smoke_run / "results/tables/timings.csv")
    assert len(timings) == len(accuracy) - 4 and (timings["samples_per_second"] > 0).all()  # no probe timings
    curves = pd.read_parquet(smoke_run / "results/data/energy_curves.parquet")
    assert len(curves) == 2 * len(CURVE_MODELS) * 3 * 8 * 4  # datasets x variants x curves x samples x (layers + 1)
    every_energy = pd.read_csv(smoke_run / "results/tables/energy_summary.csv")
    summary = plotted_rows(every_energy)
    # the energy curves, the plug-in energies' curves, then one trained curve per encoder run
    assert len(summary) == 2 * len(CURVE_MODELS) * 3 + 2 * len(REGISTRY) + 4 * 7
    # every trained unfolded curve also has a row for each energy, with and without the regulariser, each with
    # the model's test accuracy and its majority class
    trained = every_energy[(every_energy["state"] == "trained") & every_energy["variant"].str.startswith("unfolded")]
    energies = trained.groupby(["dataset", "variant", "seed"])["energy"].apply(set)
    assert all(set(names) == {PLOTTED_ENERGY, *(name for name, _ in SUBSTEP_ENERGIES.values())} for names in energies)
    assert trained["test_accuracy"].between(0, 1).all() and trained["chance_accuracy"].between(0, 1).all()
    assert set(REGISTRY) <= set(summary["variant"])
    plugins = pd.read_parquet(smoke_run / "results/data/energy_plugins.parquet")
    assert {"effective_rank", "sense", "guarantee"} <= set(plugins.columns)
    assert Image.open(smoke_run / "results/figures/fig_energies.png").format == "PNG"
    assert "| hopfield" in (smoke_run / "results/documents/energies.md").read_text()
    # a variant run says which settings of section train it overrides, and with what
    import json

    residual = json.loads((smoke_run / "results/runs/polarity/unfolded_tied-residual/lr0.01/seed0/provenance.json")
                          .read_text())
    assert residual["variant_overrides"] == {"alpha_attention": {"config": 1.0, "variant": 0.5},
                                             "alpha_ffn": {"config": 1.0, "variant": 0.5}}
    assert {"monotone_fraction", "strict_fraction", "active_fraction", "monotone_fraction_active",
            "strict_fraction_active", "median_decrease", "collapse_layer", "attention_share", "test_accuracy",
            "test_loss", "chance_accuracy", "change_W", "change_Wf", "change_B"} <= set(summary.columns)
    trained = summary[summary["state"] == "trained"]
    assert trained["test_accuracy"].notna().all() and trained["test_loss"].notna().all()
    regime = pd.read_csv(smoke_run / "results/tables/regime_search.csv")
    assert set(regime["phase"]) == {"selection", "confirmation"}
    assert len(regime) == 2 * 2 * 2 * 2  # datasets x seeds x alphas x relu
    assert "Pick:" in (smoke_run / "results/tables/regime_search.md").read_text()
    for name in ("fig5_energy_untrained_polarity", "fig6_energy_trained_digits", "fig_accuracy", "fig_training_curves",
                 "fig_depth_extrapolation"):
        assert Image.open(smoke_run / f"results/figures/{name}.png").format == "PNG"
    for run in ("polarity/unfolded_tied/lr0.01/seed0", "digits/standard_untied/lr0.003/seed0"):
        assert (smoke_run / "results/runs" / run / "model.ckpt").stat().st_size > 0


def test_rerun_is_a_no_op_and_a_change_reruns_only_dependants(smoke_run):
    result = snakemake(smoke_run, "--configfile", "config/smoke.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr
    result = snakemake(smoke_run, "--configfile", "config/smoke.yaml", "-n", "--config", 'synthetic={"kappa": {"alpha": 0.3}}')
    # the kappa table, Figure 4, and the documents that quote the table
    assert job_counts(result.stdout + result.stderr) == {"synthetic": 1, "fig4_kappa_regions": 1, "documents": 1,
                                                         "all": 1, "total": 4}
    result = snakemake(smoke_run, "--configfile", "config/smoke.yaml", "-n", "--config", 'claims={"trials": 6}')
    # the claims table, its page, and the report's landing page and the documents that quote it
    assert job_counts(result.stdout + result.stderr) == {"claims": 1, "claims_page": 1, "report_pages": 1,
                                                         "documents": 1, "all": 1, "total": 5}


def _clone(smoke_run, destination):
    """A copied clone: every file with its modification time (shutil.copy2), at another path."""
    shutil.copytree(smoke_run, destination, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


@pytest.mark.parametrize("interpreter", ["python", "python3"])
def test_another_path_to_the_same_environment_reruns_nothing(smoke_run, interpreter):
    python = str(Path(sys.executable).with_name(interpreter))
    result = snakemake(smoke_run, "--configfile", "config/smoke.yaml", "-n", command=(python, "-m", "snakemake"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_copied_clone_reruns_nothing(smoke_run, tmp_path):
    clone = _clone(smoke_run, tmp_path / "elsewhere" / "clone")
    result = snakemake(clone, "--configfile", "config/smoke.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]


#: The jobs that compute results from data: editing presentation code must rerun none of them.
COMPUTING = {"train", "energy_curves", "regime_search", "synthetic", "claims", "probe", "energy_plugins"}


def _edited(smoke_run, tmp_path, relative, edit=lambda text: text + "\n# an edit\n"):
    """Job counts of a dry run after editing ``relative`` (a path in the clone) with ``edit``."""
    clone = _clone(smoke_run, tmp_path / "clone")
    source = clone / relative
    source.write_text(edit(source.read_text()))
    result = snakemake(clone, "--configfile", "config/smoke.yaml", "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    return job_counts(result.stdout + result.stderr), result.stdout + result.stderr


@pytest.mark.parametrize("module,reruns", [
    ("summaries.py", {"accuracy", "energy_summary"}),
    ("thresholds.py", {"documents"}),
    ("stats.py", {"accuracy", "documents"}),
    ("report/study.py", {"documents"}),
    ("report/accuracy.py", {"accuracy", "documents"}),
    ("figures.py", {"fig1_apollonius", "energy_figure", "training_figure", "documents"}),
])
def test_editing_presentation_code_retrains_nothing(smoke_run, tmp_path, module, reruns):
    counts, _ = _edited(smoke_run, tmp_path, f"src/unfolded/{module}")
    assert reruns <= set(counts), counts
    assert not COMPUTING & set(counts), counts


def test_editing_the_encoders_reruns_every_train_job(smoke_run, tmp_path):
    counts, _ = _edited(smoke_run, tmp_path, "src/unfolded/encoders.py")
    runs = len(list((smoke_run / "results/runs").glob("*/*/lr*/seed*/provenance.json")))
    assert counts["train"] == runs and counts["energy_curves"] == 2 and counts["regime_search"] == 1
    assert "synthetic" not in counts and "claims" not in counts


def test_editing_the_energies_reruns_what_computes_them(smoke_run, tmp_path):
    counts, _ = _edited(smoke_run, tmp_path, "src/unfolded/energy.py")
    assert counts["claims"] == 1 and counts["energy_curves"] == 2 and counts["regime_search"] == 1
    assert counts["train"] == len(list((smoke_run / "results/runs").glob("*/*/lr*/seed*/provenance.json")))
    assert "synthetic" not in counts


def test_editing_the_synthetic_experiments_retrains_nothing(smoke_run, tmp_path):
    counts, _ = _edited(smoke_run, tmp_path, "src/unfolded/synthetic.py")
    assert counts["synthetic"] == 3 and counts["claims"] == 1  # the claims use its quadratics
    assert not {"train", "energy_curves", "regime_search"} & set(counts)


def test_editing_a_schema_description_reruns_nothing(smoke_run, tmp_path):
    schema = "src/unfolded/schemas/config.schema.yaml"
    counts, output = _edited(smoke_run, tmp_path, schema,
                             lambda text: text.replace("test sequences per curve", "test sequences drawn per curve", 1))
    assert "Nothing to be done" in output, counts


def test_one_figure_by_name(smoke_run):
    target = smoke_run / "results/figures/fig3_alternating_energy.png"
    target.unlink()
    # targets go before --configfile, which takes several values
    result = snakemake(smoke_run, "results/figures/fig3_alternating_energy.png", "--configfile", "config/smoke.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert target.exists()
    assert job_counts(result.stdout + result.stderr) == {"fig3_alternating_energy": 1, "total": 1}


@pytest.mark.parametrize("override,key", [
    ('claims={"trials": -3}', "config.claims.trials"),
    ('claims={"trails": 3}', "config.claims"),
    ('figures={"formats": ["gif"]}', "config.figures.formats[0]"),
])
def test_invalid_config_fails_before_any_job(tmp_path, override, key):
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "--config", override)
    assert result.returncode != 0
    assert key in result.stderr + result.stdout
    assert not (workdir / "results").exists()


def _chromium() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_html_report(smoke_run):
    import os
    import re

    result = subprocess.run(
        [SNAKEMAKE, "--workflow-profile", "none", "--configfile", "config/smoke.yaml", "--report", "report.html"],
        cwd=smoke_run, capture_output=True, text=True, timeout=300, env=workflow_env(smoke_run),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    html = (smoke_run / "report.html").read_text(errors="replace")
    for name in ("fig1_apollonius.png", "fig4_kappa_regions.png", "claims.html", "accuracy.html", "energy_summary.html"):
        assert name in html
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is missing; .ci/run installs chromium-headless-shell")
        pytest.skip("headless Chromium not installed (apt-get install chromium-headless-shell)")
    dom = subprocess.run([browser, "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom",
                          str(smoke_run / "report.html")], capture_output=True, text=True, timeout=180).stdout
    rendered = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", "", dom, flags=re.S)))
    claims = pd.read_csv(smoke_run / "results/tables/claims.csv")
    theorems = claims[claims["kind"].isin(["identity", "theorem"])]
    held = int((theorems["violations"] == 0).sum())
    assert f"Theorems and identities held: {held} of {len(theorems)}" in rendered
    counter = claims[claims["kind"] == "counterexample"]
    assert f"Counter-examples found: {len(counter)} of {len(counter)}" in rendered
    assert "Figures 5-6: energy across layers" in rendered and "Unfolded vs standard: test accuracy" in rendered


def test_archive_and_rebuild_the_study_without_training(smoke_run, tmp_path):
    """`python -m unfolded archive` keeps the tables with provenance; from_archive draws the study figures
    and section from the archive alone: no train job, and it works in a clone without any run."""
    import json

    python = [sys.executable, "-m", "unfolded"]
    result = subprocess.run([*python, "archive", "--config", "config/smoke.yaml", "--study-id", "smoke", "--allow-dirty"],
                            cwd=smoke_run, capture_output=True, text=True, env=workflow_env(smoke_run))
    assert result.returncode == 0, result.stderr[-2000:]
    archive = smoke_run / "results/archive/smoke"
    provenance = json.loads((archive / "provenance.json").read_text())
    config = load_config("config/smoke.yaml")
    jobs, probes = len(run_specs(config)), len(config["train"]["datasets"])
    assert provenance["runs"] == jobs + probes and provenance["train_jobs"] == jobs and provenance["cpu_hours"] > 0
    picked = provenance["checkpoint_sha256"]
    assert len(picked) == jobs and all(len(digest) == 64 for digest in picked.values())
    assert "git_commit" in provenance and provenance["config"]["train"]["seeds"] == [0]
    for path, digest in picked.items():  # the hashes are the archived files'
        assert hashlib.sha256((archive / path).read_bytes()).hexdigest() == digest
    # an archived checkpoint loads with weights_only=True and gives back its recorded test answers exactly
    runs = pd.read_csv(archive / "accuracy.csv")
    row = runs[(runs["dataset"] == "equality") & (runs["model"] == "unfolded_tied")].iloc[0]
    module = load_checkpoint(archive / f"checkpoints/equality/unfolded_tied/seed{int(row['seed'])}.pt")
    data = prepare("equality", config, seed=int(row["seed"]))
    correct = int((module.predict_split(data, "test") == data.splits["test"][1]).sum())
    assert correct == int(row["test_correct"])
    predictions = pd.read_parquet(archive / "predictions.parquet")
    assert int(predictions[(predictions["dataset"] == "equality") & (predictions["model"] == "unfolded_tied")]
               ["correct"].sum()) == correct

    clone = copy_workflow(tmp_path / "fresh")  # no results at all, only the archive
    shutil.copytree(archive, clone / "results/archive/smoke")
    result = snakemake(clone, "--configfile", "config/smoke.yaml", "--config", 'study={"from_archive": true, "id": "smoke"}')
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout + result.stderr)
    assert counts == {"study_figures": 1, "depth_sweep": 1, "trained_energies": 1, "learned_curves": 2,
                      "energy_figure": 2, "all": 1, "total": 8}
    # Figure 6 from the archived checkpoints alone: the learned models' curves, each accuracy checked on the way
    learned = pd.read_parquet(clone / "results/data/learned_curves_digits.parquet")
    assert set(learned["state"]) == {"learned"} and set(learned["variant"]) == {"unfolded_tied", "unfolded_tied-residual"}
    assert (clone / "results/figures/fig6_energy_trained_digits.png").stat().st_size > 0
    energies = pd.read_csv(clone / "results/tables/trained_energies.csv")
    assert set(energies["model"]) == {"unfolded_tied", "unfolded_tied-residual"}
    # every sub-step descends the energy its theorem names, on every trained run
    theorems = energies[energies["guarantee"].str.startswith("theorem")]
    assert len(theorems) == 3 * 2 * len(config["train"]["datasets"]) and (theorems["monotone_fraction"] == 1.0).all()
    # the depth sweep, rebuilt from the archived checkpoints alone: every unfolded_tied checkpoint at 4 step sizes
    sweep = pd.read_csv(clone / "results/tables/depth_sweep.csv")
    assert set(sweep["alpha_ffn"]) == {1.0, 0.75, 0.5, 0.25} and set(sweep["dataset"]) == set(config["train"]["datasets"])
    at_one = sweep[(sweep["alpha_ffn"] == 1.0) & (sweep["offset"] == 0)].set_index("dataset")["test_accuracy"]
    assert at_one.to_dict() == pytest.approx(runs[runs["model"] == "unfolded_tied"].set_index("dataset")["test_accuracy"]
                                             .to_dict(), abs=1e-6)  # the trained step size gives the recorded accuracy
    assert Image.open(clone / "results/figures/study_depth_extrapolation.png").format == "PNG"
    text = (clone / "results/tables/study.md").read_text()
    assert "| equality (0.750)" in text and "unfolded_tied-no_attention" in text and "Every model of the study" in text
    assert Image.open(clone / "results/figures/study_token_spread.png").format == "PNG"
