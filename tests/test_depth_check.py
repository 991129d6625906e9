"""The follow-up check on the depth mechanism: its variants reach the encoder, its learned step sizes are
read from checkpoints, and its sentences count what the tables hold."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from unfolded.archive import load_checkpoint
from unfolded.config import load_config, load_config_files
from unfolded.grid import run_specs
from unfolded.registry import VARIANTS
from unfolded.report.trial import depth_check_lines
from unfolded.sweeps import learned_step_sizes
from unfolded.training import SequenceClassifier

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "results/archive/depth-2026-12"
CONFIGS = [ROOT / "config/study.yaml", ROOT / "config/study-picks.yaml", ROOT / "config/study-depth-check.yaml"]


def test_the_check_trains_an_odd_depth_and_the_two_step_sizes_apart_at_the_studys_rates():
    config = load_config_files([str(path) for path in CONFIGS])
    assert config["train"]["num_layers"] % 2 == 1
    specs = run_specs(config)
    models = {model for _, model, _, _ in specs}
    assert models == {"unfolded_tied", "unfolded_tied-ffn_step_half", "unfolded_tied-attention_step_half",
                      "unfolded_tied-learned_steps"}
    picks = load_config_files([str(CONFIGS[0]), str(CONFIGS[1])])["train"]["learning_rate_picks"]
    for dataset, _model, lr, _ in specs:  # every model at the study's unfolded_tied pick, one rate each
        assert float(lr) == picks[dataset]["unfolded_tied"]
    study_seeds = set(load_config_files([str(CONFIGS[0]), str(CONFIGS[1])])["train"]["seeds"])
    assert not {seed for *_, seed in specs} & study_seeds  # fresh seeds
    options = load_config(None)["train"]
    built = {}
    for variant in ("ffn_step_half", "attention_step_half"):
        layer = SequenceClassifier(kind="tokens", input_dim=8, num_classes=2, model=f"unfolded_tied-{variant}", width=8,
                                   num_layers=3, vectors=torch.randn(10, 8), encoder_options=options).encoder.layers[0]
        built[variant] = (layer.alpha_attention, layer.alpha_ffn)
        assert built[variant] == (VARIANTS[variant]["alpha_attention"], VARIANTS[variant]["alpha_ffn"])
    assert built["ffn_step_half"] == built["attention_step_half"][::-1] == (1.0, 0.5)


def _check(tmp_path):
    runs = pd.DataFrame([{"dataset": "toy", "model": model, "seed": seed, "test_accuracy": accuracy, "lr": 0.01,
                          "selected": True}
                         for model, values in (("unfolded_tied", (0.8, 0.9, 1.0)),
                                               ("unfolded_tied-ffn_step_half", (0.5, 0.6, 0.7)))
                         for seed, accuracy in zip((10, 11, 12), values, strict=True)])
    provenance = {"study_id": "toy-check", "check_of": "toy", "config": {"train": {"num_layers": 5}}}
    steps = pd.DataFrame([{"dataset": "toy", "model": "unfolded_tied-learned_steps", "seed": seed, "layer": layer,
                           "alpha_attention": 0.9, "alpha_ffn": 0.3 if layer == 1 else 0.8, "spectral_bound": 0.95,
                           "no_oscillation": layer == 1, "bound_attention": 2.0, "bound_ffn": 1.02, "test_accuracy": 0.9}
                          for seed in (10, 11) for layer in (1, 2)])
    return (runs, None, None, provenance), {"step_sizes": steps}


def test_the_check_sentences_count_what_the_tables_hold(tmp_path):
    check, extras = _check(tmp_path)
    lines = depth_check_lines(check, extras)
    assert lines[0].startswith("Check `toy-check` (fresh seeds 10-12, L = 5")
    assert "toy unfolded_tied 0.900, ffn_step_half 0.600" in lines[0]
    assert "alpha_ffn from 0.300 to 0.800 (below 1/(1+s) = 0.513 in 2 of 4 (run, layer) cells)" in lines[1]
    assert "by layer: 1: 0.90/0.30, 2: 0.90/0.80" in lines[1]
    assert len(depth_check_lines(check, extras, short=True)) == 1


@pytest.mark.skipif(not CHECK.exists(), reason="the depth check is not archived")
def test_the_archived_learned_step_sizes_are_what_the_checkpoints_hold():
    meta = json.loads((CHECK / "provenance.json").read_text())
    assert meta["check_of"] == "attention-2026-12" and meta["git_dirty"] is False
    table = learned_step_sizes(CHECK)
    archived = pd.read_csv(CHECK / "step_sizes.csv")
    # the archived CSV keeps six significant digits
    pd.testing.assert_frame_equal(table.reset_index(drop=True), archived, check_dtype=False, rtol=1e-5)
    # every learned step stays inside the range where its sub-step keeps its descent theorem
    assert ((table["alpha_attention"] > 0) & (table["alpha_attention"] < table["bound_attention"])).all()
    assert ((table["alpha_ffn"] > 0) & (table["alpha_ffn"] < table["bound_ffn"])).all()
    path = sorted(CHECK.glob("checkpoints/*/unfolded_tied-learned_steps/seed*.pt"))[0]
    encoder = load_checkpoint(path).encoder
    first = table[(table["dataset"] == path.parent.parent.name) & (table["seed"] == int(path.stem[4:]))
                  & (table["layer"] == 1)].iloc[0]
    assert float(encoder.step_sizes(0)[1]) == pytest.approx(first["alpha_ffn"], abs=1e-6)
