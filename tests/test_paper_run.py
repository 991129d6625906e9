"""The paper's configuration end to end, offline, on small local copies of its sources.

``config/paper.yaml`` runs as written except for sizes: ``config/smoke.yaml`` shrinks every stage
and a third file points ``data.sources`` at IMDB, SST-2 and GloVe 840B fixtures in the layouts the
real downloads have (``tests/helpers/paper_sources.py``). The run goes through fetch, vocabulary,
GloVe vectors, energy curves, Figures 5-6 for imdb and sst2, training and the accuracy table.
"""

import json
import time
import zipfile

import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from unfolded.config import load_config
from unfolded.data import prepare, text

from helpers.paper_sources import UNSEEN, write_paper_sources
from helpers.workflow import copy_workflow, job_counts, snakemake

pytestmark = pytest.mark.paper

FIGURES = [f"results/figures/{figure}_{dataset}.png" for figure in ("fig5_energy_untrained", "fig6_energy_trained")
           for dataset in ("imdb", "sst2")]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("paper"))
    sources = write_paper_sources(workdir / "sources")
    fixture = {
        "datasets": ["imdb", "sst2"],
        "data": {"cache_dir": str(workdir / "cache"), "sources": sources},
        "train": {"datasets": None},
    }
    (workdir / "paper-fixture.yaml").write_text(yaml.safe_dump(fixture))
    args = ("--configfile", "config/paper.yaml", "config/smoke.yaml", "paper-fixture.yaml")
    dry = snakemake(workdir, *args, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    start = time.monotonic()
    result = snakemake(workdir, *args, timeout=1200)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, args, job_counts(dry.stdout + dry.stderr), seconds


def test_the_paper_config_runs_offline_on_the_sources_formats(paper_run):
    workdir, _, jobs, seconds = paper_run
    print(f"paper fixture run: {sum(v for k, v in jobs.items() if k not in ('all', 'total'))} jobs in {seconds:.0f} s")
    timings = {}
    for path in (workdir / "results" / "benchmarks").rglob("*.tsv"):
        rule = path.relative_to(workdir / "results" / "benchmarks").parts[0].removesuffix(".tsv")
        timings.setdefault(rule, []).append(float(pd.read_csv(path, sep="\t")["s"].iloc[-1]))
    for rule, values in sorted(timings.items()):
        print(f"  {rule:<16} {len(values):>3} jobs {sum(values):>7.1f} s total {max(values):>6.1f} s longest")
    assert jobs["fetch"] == 3  # imdb, sst2 and glove-840B, each from its local copy
    for name in ("imdb", "sst2", "glove-840B"):
        assert (workdir / "results" / "data" / "fetched" / f"{name}.txt").exists()
    for figure in FIGURES:
        with Image.open(workdir / figure) as image:
            assert image.size[0] > 100 and image.size[1] > 100
        assert (workdir / figure).with_suffix(".pdf").stat().st_size > 1000


def test_the_energy_curves_cover_both_datasets(paper_run):
    workdir = paper_run[0]
    layers = pd.read_csv(workdir / "results" / "tables" / "energy_layers.csv")
    assert set(layers["dataset"]) == {"imdb", "sst2"}
    assert set(layers["state"]) == {"untrained", "trained"}
    curves = layers[layers["variant"].isin(["authors", "exact", "exact_active"])]
    assert set(curves["variant"]) == {"authors", "exact", "exact_active"}
    assert set(curves["seed"]) == {2333}  # config/paper.yaml's seed reaches the Figures 5-6 stage
    decreases = layers[["attention_decrease", "ffn_decrease", "total_decrease"]]
    assert decreases.notna().all().all() and decreases.abs().lt(float("inf")).all().all()
    summary = pd.read_csv(workdir / "results" / "tables" / "energy_summary.csv")
    assert set(summary["dataset"]) == {"imdb", "sst2"}
    assert summary["monotone_fraction"].between(0, 1).all()


def test_the_accuracy_table_holds_every_model_on_both_datasets(paper_run):
    workdir = paper_run[0]
    accuracy = pd.read_csv(workdir / "results" / "tables" / "accuracy.csv")
    assert set(accuracy["dataset"]) == {"imdb", "sst2"}
    per_dataset = accuracy.groupby("dataset")["model"].apply(set)
    assert per_dataset["imdb"] == per_dataset["sst2"]
    assert {"unfolded_tied", "standard_untied", "bag_of_embeddings"} <= per_dataset["imdb"]
    assert accuracy["test_accuracy"].between(0, 1).all()


def _fixture_glove(workdir) -> dict[str, list[float]]:
    with zipfile.ZipFile(workdir / "sources" / "glove" / "glove.840B.300d.zip") as bundle:
        lines = bundle.read("glove.840B.300d.txt").decode().splitlines()
    return {" ".join(f[:-300]): [float(x) for x in f[-300:]] for f in (line.split(" ") for line in lines) if len(f) > 300}


@pytest.mark.parametrize("dataset", ["imdb", "sst2"])
def test_the_prepared_data_holds_the_glove_rows_and_only_the_labelled_splits(paper_run, dataset):
    workdir = paper_run[0]
    sources = yaml.safe_load((workdir / "paper-fixture.yaml").read_text())["data"]["sources"]
    config = load_config({"data": {"cache_dir": str(workdir / "cache"), "glove": "840B", "max_length": None,
                                   "sources": sources}})
    data = prepare(dataset, config)
    sizes = data.sizes()
    # imdb: train 64 (unsupervised split ignored), test 32; sst2: train 64, validation 32 as test
    assert sizes["train"] + sizes["val"] == 64 and sizes["test"] == 32
    assert all(set(labels.tolist()) <= {0, 1} for _, labels in data.splits.values())
    glove = _fixture_glove(workdir)
    assert ". . ." in glove and "broken" not in glove  # the spaced token parses, the short line is skipped
    vocabulary = text.build_vocabulary(
        [text.tokenize(t) for t in pd.read_parquet(workdir / "cache" / "raw" / dataset / "train.parquet")["text"]], 1)
    unseen = [w for w in vocabulary[2:] if w not in glove]
    assert sorted(unseen) == sorted(w for w in {*UNSEEN, *(u.lower() for u in UNSEEN)} if w in vocabulary)
    assert data.meta["without_vector"] == 2 + len(unseen)  # <pad>, <unk> and the unseen words
    for word in ("good", ",", ".", "movie"):
        if word in vocabulary:
            assert torch.equal(data.vectors[vocabulary.index(word)], torch.tensor(glove[word], dtype=torch.float32))
    assert data.vectors.shape == (len(vocabulary), 300) and not data.vectors[0].any()


def test_the_runs_train_on_frozen_glove(paper_run):
    workdir = paper_run[0]
    for path in (workdir / "results" / "runs").glob("*/unfolded_tied/lr*/seed0/provenance.json"):
        provenance = json.loads(path.read_text())
        assert provenance["config"]["train"]["embedding"] == "frozen"
        assert provenance["config"]["train"]["num_layers"] == 2  # config/smoke.yaml's size, paper.yaml's recipe
        assert provenance["summary"]["parameters"] > 0


def test_a_rerun_of_the_paper_config_does_nothing(paper_run):
    workdir, args, _, _ = paper_run
    dry = snakemake(workdir, *args, "-n")
    assert dry.returncode == 0
    assert "Nothing to be done" in dry.stdout + dry.stderr
