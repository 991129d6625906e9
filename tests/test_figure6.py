"""Figure 6 from models that learned: the recipe rule, the archived learned models (they reproduce their
accuracy, or the stage stops), the round trip through archive-learned, and the figure's labels."""

import hashlib
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from unfolded.archive import archive_learned
from unfolded.config import load_config
from unfolded.data import prepare
from unfolded.errors import UserError
from unfolded.figures import DRAW
from unfolded.recipes import load_learned, train_learned
from unfolded.report.figure6 import figure6_block, figure6_headline
from unfolded.summaries import PLOTTED_ENERGY, curve_summary, select_recipe
from unfolded.sweeps import learned_curves

ROOT = Path(__file__).resolve().parents[1]
LEARNED = ROOT / "results/archive" / load_config(ROOT / "config.yaml")["energy_curves"]["learned_recipe"]["archive"]
SMOKE = load_config("config/smoke.yaml")


def _search_rows(scores: dict) -> pd.DataFrame:
    """Search rows where ``scores[(optimizer, lr)][(dataset, variant)]`` is the validation correct count of
    both seeds (out of 100, majority 0.5)."""
    return pd.DataFrame([
        {"dataset": dataset, "variant": variant, "seed": seed, "optimizer": optimizer, "lr": lr, "val_correct": correct,
         "val_count": 100, "val_majority": 0.5}
        for (optimizer, lr), models in scores.items() for (dataset, variant), correct in models.items() for seed in (0, 1)])


def test_the_recipe_rule_counts_learned_models_first_then_answers_then_the_smaller_rate():
    a, b = ("d1", "authors"), ("d1", "exact")
    # adamw 0.01 has the most correct answers but only one model learns (>= 70 of 100); sgd 0.1 makes both learn
    table = _search_rows({("adamw", 0.01): {a: 99, b: 69}, ("sgd", 0.1): {a: 70, b: 70}, ("sgd", 0.01): {a: 50, b: 50}})
    pick = select_recipe(table)
    assert (pick["optimizer"], pick["lr"], pick["learned"], pick["pairs"]) == ("sgd", 0.1, 2, 2)
    assert pick["learning"] == ["d1/authors", "d1/exact"]
    # equal counts and answers: the smaller learning rate, then SGD
    tie = _search_rows({("adamw", 0.003): {a: 80, b: 60}, ("adamw", 0.001): {a: 80, b: 60}, ("sgd", 0.001): {a: 80, b: 60}})
    assert (select_recipe(tie)["optimizer"], select_recipe(tie)["lr"]) == ("sgd", 0.001)
    # one point below the margin does not learn
    assert select_recipe(_search_rows({("sgd", 0.1): {a: 69, b: 10}}))["learned"] == 0


def test_the_configured_recipe_is_the_pick_of_the_archived_search():
    search = pd.read_csv(LEARNED / "recipe_search.csv")
    pick = select_recipe(search)
    configured = load_config(ROOT / "config.yaml")["energy_curves"]["learned_recipe"]
    assert (configured["optimizer"], configured["lr"]) == (pick["optimizer"], pick["lr"])
    # in exact counts: polarity/authors at adamw 0.003 has a median of 141 of 200 correct against a majority of
    # 101 of 200, exactly the majority + 0.2 (in floats 0.705 < 0.505 + 0.2), so it learns and the pick is 0.003
    rows = search[(search["dataset"] == "polarity") & (search["variant"] == "authors") & (search["optimizer"] == "adamw")
                  & (search["lr"] == 0.003)]
    assert rows["val_correct"].median() == 141 and "polarity/authors" in pick["learning"]
    meta = json.loads((LEARNED / "provenance.json").read_text())
    assert meta["git_dirty"] is False and all(record["git_dirty"] is False for record in meta["made_by"].values())
    # the models were trained on seeds the search never saw
    models = pd.read_csv(LEARNED / "learned_models.csv")
    assert not set(models["seed"]) & set(search["seed"])


def test_an_archived_learned_model_gives_back_its_recorded_test_answers():
    meta = json.loads((LEARNED / "provenance.json").read_text())
    models = pd.read_csv(LEARNED / "learned_models.csv")
    # a model the archive says learned (median over its seeds aside): it must give back its recorded answers
    assert models["learned"].any()
    row = models[models["learned"]].iloc[0]
    path = LEARNED / row["checkpoint"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["checkpoint_sha256"][row["checkpoint"]] == row["sha256"]
    module, record = load_learned(path)
    data = prepare(row["dataset"], meta["config"], seed=int(row["seed"]))
    correct = int((module.predict_split(data, "test") == data.splits["test"][1]).sum())
    assert correct == row["test_correct"] and record["test_accuracy"] == pytest.approx(row["test_accuracy"], abs=1e-6)
    # learned, in exact counts: at least the majority class + 0.2 of the test items
    majority = round(row["chance_accuracy"] * row["test_count"])
    assert 5 * correct >= 5 * majority + row["test_count"]


def test_learned_curves_stop_on_an_archive_that_does_not_reproduce(tmp_path):
    config = json.loads((LEARNED / "provenance.json").read_text())["config"]
    config["energy_curves"]["samples"] = 6
    source = "checkpoints/digits/exact/seed0.pt"
    good = tmp_path / "good"
    (good / source).parent.mkdir(parents=True)
    shutil.copy(LEARNED / "provenance.json", good / "provenance.json")
    shutil.copy(LEARNED / source, good / source)
    table = learned_curves(config, "digits", good, None, progress=False)
    assert set(table["state"]) == {"learned"} and set(table["sample"].unique()).__len__() == 6
    summary = curve_summary(table)
    assert (summary["energy"] == PLOTTED_ENERGY).sum() == 1 and len(summary) == 6  # plotted + five energies
    # a planted fault: the recorded accuracy no longer matches what the weights do
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    record = torch.load(bad / source, weights_only=True)
    record["test_accuracy"] += 0.01
    torch.save(record, bad / source)
    with pytest.raises(UserError, match="does not reproduce"):
        learned_curves(config, "digits", bad, None, progress=False)


def test_learned_models_round_trip_through_the_archive(tmp_path, monkeypatch):
    config = json.loads(json.dumps(SMOKE))
    config["energy_curves"]["recipe_search"].update({"variants": ["authors", "exact"], "max_epochs": 1})
    config["energy_curves"]["learned_recipe"].update({"optimizer": "adamw", "lr": 0.01, "seeds": [3]})
    models = train_learned(config, "polarity", tmp_path / "work", tmp_path / "checkpoints", progress=False)
    assert list(models["variant"]) == ["authors", "exact"] and (models["test_count"] == 40).all()
    data = prepare("polarity", config, seed=3)
    for row in models.itertuples():
        module, record = load_learned(Path(row.checkpoint), data)
        assert record["curve_variant"] == row.variant and record["seed"] == 3
        assert int((module.predict_split(data, "test") == data.splits["test"][1]).sum()) == row.test_correct
    models_csv, search_csv = tmp_path / "learned_polarity.csv", tmp_path / "search_polarity.csv"
    models.to_csv(models_csv, index=False)
    pd.DataFrame([{**row, "val_majority": 0.5} for row in models.drop(columns=["checkpoint", "sha256"])
                  .to_dict("records")]).to_csv(search_csv, index=False)
    monkeypatch.chdir(tmp_path)
    # tables without provenance count as made from uncommitted code
    with pytest.raises(UserError, match="uncommitted"):
        archive_learned("t", [search_csv], [models_csv], tmp_path / "archive", config)
    meta = archive_learned("t", [search_csv], [models_csv], tmp_path / "archive", config, allow_dirty=True)
    assert set(meta["checkpoint_sha256"]) == {"checkpoints/polarity/authors/seed3.pt", "checkpoints/polarity/exact/seed3.pt"}
    archived = pd.read_csv(tmp_path / "archive/learned_models.csv")
    assert archived["checkpoint"].str.startswith("checkpoints/").all()
    # a checkpoint changed after training is refused
    Path(models.loc[0, "checkpoint"]).write_bytes(b"not the trained weights")
    with pytest.raises(UserError, match="SHA-256"):
        archive_learned("t", [search_csv], [models_csv], tmp_path / "again", config, allow_dirty=True)


def _curve_rows(dataset, variant, state, seed, accuracy, chance, classes, rng, layers=4, samples=4):
    rows = []
    for sample in range(samples):
        energies = np.cumsum(-rng.random(layers + 1))
        for layer, energy in enumerate(energies):
            before = energies[layer - 1] if layer else np.nan
            rows.append({"dataset": dataset, "variant": variant, "relu": True, "state": state, "seed": seed, "lr": 0.001,
                         "sample": sample, "layer": layer, "energy": energy, "step_before": before,
                         "step_middle": np.nan, "step_after": energy if layer else np.nan, "relative_spread": 1.0,
                         "alpha_attention": 1.0, "w_scale": 1.0, "test_accuracy": accuracy, "chance_accuracy": chance,
                         "change_W": 0.1, "change_Wf": 0.2, "change_B": 0.3, "predicted_classes": classes,
                         # the total with the regulariser rises on every step; the rest fall
                         **{f"{key}_before": before for key in ("pairwise", "ffn_quadratic", "ffn_relu", "total")},
                         **{f"{key}_after": energy if layer else np.nan
                            for key in ("pairwise", "ffn_quadratic", "ffn_relu", "total")},
                         "total_regularised_before": before, "total_regularised_after": before + 1.0})
    return rows


def test_figure6_labels_who_learned_and_the_tables_count_each_energy():
    rng = np.random.default_rng(0)
    rows = _curve_rows("toy", "authors", "trained", 2333, 0.5, 0.5, 2, rng)
    for seed, accuracy in ((0, 0.9), (1, 0.6), (2, 0.95)):  # the median seed is 0
        rows += _curve_rows("toy", "unfolded_tied", "learned", seed, accuracy, 0.5, 2, rng)
    rows += _curve_rows("toy", "exact", "learned", 0, 0.45, 0.5, 1, rng)
    frame = pd.DataFrame(rows)
    figure = DRAW["fig6_energy_trained"](frame, dataset="toy")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    plt.close(figure)
    assert len(titles) == 3
    assert "authors' recipe, did not learn here" in titles[0] and "searched" not in titles[0]
    assert "learned recipe (lr 0.001), did not learn here" in titles[1] and "predicts 1 class\n" in titles[1] + "\n"
    assert "study, lr 0.001, learned" in titles[2] and "seed 0, the median of 3" in titles[2]
    assert "total + regulariser 0%" in titles[2] and "pairwise (attention) 100%" in titles[2]
    summary = curve_summary(frame)
    block = figure6_block(summary)
    assert "- `derived` total with the regulariser, layer: never rises on any seed in 0 of 3 models" in block
    assert "- `derived` pairwise term, attention sub-step: never rises on any seed in 3 of 3 models." in block
    assert "1 of 3 models (toy unfolded_tied, study)" in block and "one class for every test input: toy exact" in block
    headline = figure6_headline(summary, {"samples": 4})
    assert "| toy | unfolded_tied, study | 3 | 0.900 (0.500) | 2 | 100% | 100% | 0% |" in headline
    assert "2 of 3 rows stay below the majority class + 0.2" in headline


def test_the_recipe_stages_run_from_the_command_line(tmp_path):
    """recipe-search, recipe-pick and learned-models end to end through the CLI, on toy sizes."""
    import subprocess
    import sys

    config = json.dumps({"data": SMOKE["data"], "train": {"width": 16}, "energy_curves": {
        "num_layers": 2, "recipe_search": {"variants": ["authors"], "learning_rates": {"adamw": [0.01]}, "max_epochs": 1,
                                           "selection_seeds": [100]},
        "learned_recipe": {"optimizer": "adamw", "lr": 0.01, "seeds": [0]}}})

    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "unfolded", *args], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stderr

    cli("recipe-search", "--config", config, "--dataset", "polarity", "--csv", "search.csv", "--workdir", "w1",
        "--no-progress")
    assert json.loads((tmp_path / "search.provenance.json").read_text())["stage"] == "recipe-search"
    assert "pick adamw lr 0.01" in cli("recipe-pick", "--config", config, "--csv", "search.csv", "--markdown", "p.md")
    assert "learned_recipe matches the pick" in (tmp_path / "p.md").read_text()
    out = cli("learned-models", "--config", config, "--dataset", "polarity", "--csv", "learned.csv",
              "--checkpoints", "ckpt", "--workdir", "w2", "--no-progress")
    assert "learned.csv: 1 models" in out and (tmp_path / "ckpt/polarity/authors/seed0.pt").exists()
