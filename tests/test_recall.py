"""Recall (docs/theory.md §8): the exact energy forgets its input, the anchored energy E_X does not; the anchor in
the step and in the energy, the models that carry it, the input-retention probe, and the recall check's rules."""

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from unfolded.claims import CLAIMS, run_all
from unfolded.encoders import build_encoder, paper_encoder
from unfolded.energy import anchor_energy, ffn_energy, total_energy
from unfolded.models import UnfoldedTransformer
from unfolded.steps import ffn_step

SEEDS = (0, 1, 2)


def _pooled_spread(state: torch.Tensor) -> float:
    """The spread across inputs of the mean-pooled state, ``sqrt(sum_k Var_i p_ik)``."""
    return float(state.mean(1).var(0, unbiased=False).sum().sqrt())


def _spreads(variant: str, seed: int, layers=(12, 24, 48)) -> dict[int, float]:
    torch.manual_seed(seed)
    encoder = paper_encoder(64, 12, True, variant).double()
    inputs = torch.rand(128, 16, 64, generator=torch.Generator().manual_seed(4242 + seed), dtype=torch.float64)
    with torch.no_grad():
        states = encoder.states(inputs, None, num_layers=max(layers))
    base = _pooled_spread(inputs)
    return {layer: _pooled_spread(states[layer - 1]) / base for layer in layers}


@pytest.mark.parametrize("seed", SEEDS)
def test_recall_keeps_the_spread_of_the_input_from_L_to_4L_and_the_exact_model_loses_it(seed):
    exact, recall = _spreads("exact", seed), _spreads("exact_recall", seed)
    # the exact model forgets: the pooled spread keeps shrinking with depth, towards one point for every input
    assert exact[48] < 0.1 * exact[12] and exact[48] < 0.005
    # recall holds it: what is left at L is still there at 4L, and it is a sizeable share of the input's
    assert recall[48] >= 0.9 * recall[12] and recall[12] > 0.2


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_recall_substeps_descend_their_energies_and_the_layer_is_reported(seed):
    """Each sub-step never raises the energy its theorem names (on E_X's anchored feed-forward term); the whole
    layer has no guarantee, and the claims' report row counts its rises."""
    torch.manual_seed(seed)
    encoder = paper_encoder(32, 12, True, "exact_recall", recall=0.3).double()
    inputs = torch.rand(64, 10, 32, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    trace = encoder.trace(inputs)
    for key in ("pairwise", "ffn_quadratic", "ffn_relu"):
        before, after = trace.substeps[key]
        assert (after <= before + 1e-9 * (1 + before.abs())).all(), key
    # the traced energies are E_X: the plain energy plus the anchor to the input
    layer = encoder.layer(0)
    plain = total_energy(inputs, layer.W, layer.ffn_weight(), layer.B, regularise=False)
    assert torch.allclose(trace.energies[:, 0], plain)  # at layer 0 the anchor term is 0
    out = encoder(inputs)
    anchored = total_energy(out.hidden, layer.W, layer.ffn_weight(), layer.B, regularise=False) \
        + anchor_energy(out.hidden, inputs, 0.3)
    assert torch.allclose(out.energies[:, -1], anchored) and (anchor_energy(out.hidden, inputs, 0.3) > 0).all()


def test_the_anchor_is_in_the_step_and_in_the_energy_and_the_step_is_its_gradient():
    generator = torch.Generator().manual_seed(7)
    Y, X = torch.randn(3, 5, 4, generator=generator, dtype=torch.float64), torch.randn(3, 5, 4, generator=generator,
                                                                                       dtype=torch.float64)
    A = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    Wf, B = 0.3 * (A + A.T), torch.randn(4, generator=generator, dtype=torch.float64)
    recall, alpha = 0.7, 0.4
    stepped = ffn_step(Y, Wf, B, alpha, anchor=X, recall=recall)
    # the written-out step, with the anchor's pull towards X
    assert torch.allclose(stepped, Y - alpha * (Y @ Wf + Y - B + recall * (Y - X)), atol=1e-12)
    assert not torch.allclose(stepped, ffn_step(Y, Wf, B, alpha), atol=1e-6)
    # the energy holds the anchor, and the step is a gradient step on exactly that energy (float64, 1e-10)
    assert torch.allclose(ffn_energy(Y, Wf, B, anchor=X, recall=recall) - ffn_energy(Y, Wf, B),
                          anchor_energy(Y, X, recall), atol=1e-12)
    Y.requires_grad_(True)
    (gradient,) = torch.autograd.grad(ffn_energy(Y, Wf, B, anchor=X, recall=recall).sum(), Y)
    assert torch.allclose(stepped, Y.detach() - alpha * gradient, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="anchor"):
        ffn_step(Y.detach(), Wf, B, alpha, recall=recall)


def test_the_encoder_anchors_every_layer_to_its_own_input():
    """``encoder(Y)`` needs no anchor argument: it is the input of layer 0, the same for every layer."""
    torch.manual_seed(3)
    encoder = UnfoldedTransformer(6, 3, tied=True, recall=0.5, alpha_ffn=1 / 1.5).double()
    inputs = torch.rand(2, 4, 6, dtype=torch.float64)
    layer, state = encoder.layer(0), inputs
    for _ in range(3):
        state = layer.feed_forward(layer.attend(state), anchor=inputs)
    assert torch.allclose(encoder(inputs).hidden, state)
    # two inputs keep two different fixed points; without the anchor both go to one point
    other = torch.rand(2, 4, 6, dtype=torch.float64)
    deep = lambda model, x: model.states(x, num_layers=60)[-1].mean(1)  # noqa: E731
    assert (deep(encoder, inputs) - deep(encoder, other)).abs().max() > 1e-3
    torch.manual_seed(3)
    plain = UnfoldedTransformer(6, 3, tied=True, alpha_ffn=1.0).double()
    assert (deep(plain, inputs) - deep(plain, other)).abs().max() < 1e-3


def test_the_recall_variants_build_anchored_encoders_and_their_control_has_no_attention():
    cfg = {"recall": 0.3, "alpha_ffn": 1.0}
    recall = build_encoder("unfolded_tied-recall", 8, 4, cfg)
    control = build_encoder("unfolded_tied-recall_no_attention", 8, 4, cfg)
    base = build_encoder("unfolded_tied", 8, 4, cfg)
    assert recall.layer(0).recall == 0.3 and recall.layer(0).alpha_ffn == pytest.approx(1 / 1.3)
    assert control.layer(0).recall == 0.3 and not control.layer(0).attention and recall.layer(0).attention
    assert base.layer(0).recall == 0.0 and base.layer(0).alpha_ffn == 1.0  # train.recall is the variant's alone
    # the scaled step stays inside the anchored descent bound 2 / (1 + s + recall)
    assert recall.layer(0).alpha_ffn < 2 / (1 + 0.95 + 0.3)


def test_the_recall_claims_hold_and_their_counterexample_fires():
    ids = [claim for claim in CLAIMS if "recall" in claim]
    kinds = {claim: CLAIMS[claim].kind for claim in ids}
    assert {"theorem", "counterexample", "identity", "report"} <= set(kinds.values())
    for result in run_all(60, 0, ids):
        if result.kind in ("theorem", "identity"):
            assert result.violations == 0, result.claim
        elif result.kind == "counterexample":
            assert result.explicit_violations == result.explicit_trials >= 1, result.claim


# ------------------------------------------------------------------------------------------------
# Input retention: the probe is fitted on the train split, never on test
# ------------------------------------------------------------------------------------------------


def _feature_data(train_labels_random: bool):
    from unfolded.data import PreparedData

    generator = torch.Generator().manual_seed(11)

    def split(count: int, random_labels: bool):
        features = torch.randn(count, 3, 4, generator=generator)
        labels = (features[:, :, 0].mean(1) > 0).long()
        if random_labels:
            labels = torch.randint(0, 2, (count,), generator=generator)
        return list(features), labels

    return PreparedData("toy", "features", {"train": split(600, train_labels_random), "val": split(50, False),
                                            "test": split(400, False)}, 2)


@pytest.mark.parametrize("random_train_labels", [False, True])
def test_the_retention_probe_is_fitted_on_train_states_only(random_train_labels):
    from unfolded.retention import retention_rows
    from unfolded.training import SequenceClassifier

    data = _feature_data(random_train_labels)
    torch.manual_seed(0)
    module = SequenceClassifier(kind="features", input_dim=4, num_classes=2, model="unfolded_tied-recall", width=8,
                                num_layers=2, encoder_options={"recall": 0.5, "alpha_ffn": 1.0})
    rows = retention_rows(module, data, max_depth=2, train_samples=600)
    first = rows[rows["layer"] == 0].iloc[0]
    if random_train_labels:
        # fitted on labels that carry nothing, it cannot read the test labels: were it fitted on test, it would
        assert first["probe_accuracy"] < 0.65
    else:
        assert first["probe_accuracy"] > 0.9
    assert (rows["relative_spread"].iloc[0] == 1.0) and (rows["train_samples"] == 600).all()


def test_the_prespecified_reading_of_the_exact_models_failure():
    from unfolded.retention import reading

    def rows(probe_correct, model_correct, classes):
        return pd.DataFrame([{"layer": 12, "trained_depth": 12, "seed": seed, "probe_correct": p, "test_count": 200,
                              "probe_accuracy": p / 200, "model_correct": m, "chance_accuracy": 0.5,
                              "predicted_classes": c, "relative_spread": 0.01}
                             for seed, (p, m, c) in enumerate(zip(probe_correct, model_correct, classes, strict=True))])

    # the median seed by the model's own accuracy is seed 1 (model 100 of 200)
    assert reading(rows([100, 109, 180], [99, 100, 101], [1, 1, 1]))["reading"] == "forgot"  # 109 < 110
    assert reading(rows([100, 110, 180], [99, 100, 101], [1, 1, 1]))["reading"] == "unresolved"  # 110 = 100 + 10
    assert reading(rows([100, 140, 100], [99, 100, 101], [1, 1, 1]))["reading"] == "optimisation"  # 140 = 100 + 40
    assert reading(rows([100, 140, 100], [99, 100, 101], [2, 2, 2]))["reading"] == "unresolved"  # it answers 2 classes
    assert reading(rows([100, 140, 100], [99, 100, 101], [1, 1, 1]))["seed"] == 1


# ------------------------------------------------------------------------------------------------
# The recall check's rules: the anchor weight and the depth criterion, in exact counts
# ------------------------------------------------------------------------------------------------


def test_the_anchor_weight_rule_counts_learned_datasets_then_answers_then_the_smaller_weight():
    from unfolded.summaries import select_recall

    def rows(scores):
        return pd.DataFrame([{"dataset": dataset, "recall": recall, "seed": seed, "val_correct": correct,
                              "val_count": 200, "val_majority": 0.505}
                             for recall, per in scores.items() for dataset, correct in per.items() for seed in (0, 1)])

    # 141 of 200 is exactly the majority (101) + 0.2: it learns (in floats 0.705 < 0.7050000000000001)
    pick = select_recall(rows({0.1: {"a": 141, "b": 50}, 0.3: {"a": 140, "b": 100}, 1.0: {"a": 141, "b": 60}}))
    assert pick["recall"] == 1.0 and pick["learned"] == 1  # 0.1 and 1 both learn once; 1.0 has more answers
    tie = select_recall(rows({0.1: {"a": 141, "b": 60}, 1.0: {"a": 141, "b": 60}}))
    assert tie["recall"] == 0.1


def test_the_depth_criterion_is_the_median_ratio_over_seeds_in_exact_counts():
    from unfolded.summaries import recall_depth_criterion

    def profile(at_depth):
        return pd.DataFrame([{"dataset": "d", "model": "m", "seed": seed, "trained_depth": 2, "depth": depth,
                              "test_correct": correct[seed], "test_count": 100, "test_accuracy": correct[seed] / 100}
                             for depth, correct in at_depth.items() for seed in range(3)])

    base = {1: [50, 50, 50], 2: [90, 80, 70]}
    kept = profile({**base, **{depth: [81, 72, 63] for depth in range(3, 9)}})  # exactly 9/10 on every seed
    (row,) = recall_depth_criterion(kept).to_dict("records")
    assert row["held"] and row["worst_keep_L_to_max"] == pytest.approx(0.9) and row["keep_4L"] == pytest.approx(0.9)
    assert row["keep_L-1"] == pytest.approx(float(Fraction(50, 80)))
    dropped = profile({**base, **{depth: [81, 72, 63] for depth in range(3, 8)}, 8: [81, 71, 62]})
    assert not recall_depth_criterion(dropped).iloc[0]["held"]  # one answer fewer at 4L on two seeds
    assert math.isnan(recall_depth_criterion(kept).iloc[0]["keep_L-2"])  # depth 0 is not a depth


def test_recall_paired_comparison_and_the_controls_ceiling():
    from unfolded.verdicts import attention_verdicts, control_checks, paired_comparisons

    rng = np.random.default_rng(5)
    runs = []
    for model, rate in (("unfolded_tied", 0.8), ("unfolded_tied-recall", 0.95), ("unfolded_tied-recall_no_attention", 0.5)):
        for seed in range(10):
            accuracy = float(np.clip(rng.normal(rate, 0.01), 0, 1))
            runs.append({"dataset": "equality", "model": model, "variant": model.partition("-")[2] or "base",
                         "family": "unfolded", "lr": 0.01, "seed": seed, "val_correct": 80, "val_count": 100,
                         "val_accuracy": 0.8, "test_accuracy": accuracy, "test_count": 1000,
                         "test_correct": round(accuracy * 1000), "parameters": 1, "chance_accuracy": 0.5,
                         "no_interaction_ceiling": 0.75, "epochs": 3})
    runs = pd.DataFrame(runs)
    (comparison,) = paired_comparisons(runs).to_dict("records")
    assert comparison["model"] == "unfolded_tied-recall" and comparison["reference"] == "unfolded_tied"
    assert comparison["verdict"] == "better" and comparison["seed_p"] == pytest.approx(2 / 1024)
    (verdict,) = attention_verdicts(runs, None).to_dict("records")
    assert verdict["control"] == "unfolded_tied-recall_no_attention" and verdict["verdict"] == "helps"
    (control,) = control_checks(runs).to_dict("records")
    assert control["control"] == "unfolded_tied-recall_no_attention" and control["excess_in_se"] < 3


# ------------------------------------------------------------------------------------------------
# The archived recall check
# ------------------------------------------------------------------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _recall_archive():
    from unfolded.config import load_config

    return ROOT / "results" / "archive" / load_config(None)["study"]["recall_id"]


def test_the_recall_archive_holds_what_the_check_promised():
    import hashlib
    import json

    archive = _recall_archive()
    provenance = json.loads((archive / "provenance.json").read_text())
    learned = json.loads((archive / "figure6" / "provenance.json").read_text())
    assert provenance["git_dirty"] is False and learned["git_dirty"] is False
    # the study setting: 10 seeds per model and task, fresh test splits never used before
    runs = pd.read_csv(archive / "accuracy.csv")
    trained = runs[runs["lr"].notna() & runs["selected"]]
    counts = trained.groupby(["dataset", "model"])["seed"].nunique()
    assert set(counts.index.get_level_values("model")) == {"unfolded_tied", "unfolded_tied-recall",
                                                           "unfolded_tied-recall_no_attention"}
    assert (counts == 10).all() and len(counts) == 12
    data = provenance["config"]["data"]
    assert all(data[task]["test_seed"] is not None for task in ("polarity", "order", "equality", "digits"))
    # Figure 6's setting: at least 5 seeds per model, exact against exact_recall
    models = pd.read_csv(archive / "figure6" / "learned_models.csv")
    assert (models.groupby(["dataset", "variant"])["seed"].nunique() >= 5).all()
    assert set(models["variant"]) == {"exact", "exact_recall"}
    # weights-only checkpoints with their SHA-256, and the measurements
    for relative, digest in {**provenance["checkpoint_sha256"], **learned["checkpoint_sha256"]}.items():
        folder = archive if (archive / relative).exists() else archive / "figure6"
        assert hashlib.sha256((folder / relative).read_bytes()).hexdigest() == digest
    for name in ("input_retention.csv", "input_retention_earlier.csv", "depth_profile.csv", "selection_runs.csv"):
        assert (archive / name).exists(), name


def test_the_recall_reading_and_criterion_recompute_from_the_archive():
    """The reading of the exact model's failure and the depth criterion come from the archived tables by the rules
    fixed before the check ran; the probe was fitted on at most 1,500 train sequences, never on test."""
    from unfolded.report.recall import RecallArchive, depth_table, readings

    archive = RecallArchive.load(_recall_archive())
    found = readings(archive)
    assert {r["dataset"] for r in found} == {"polarity", "digits"}
    assert all(r["reading"] in ("forgot", "optimisation", "unresolved") for r in found)
    assert (archive.retention_earlier["train_samples"] <= 1500).all()
    assert (archive.retention["probe_correct"] <= archive.retention["test_count"]).all()
    depth = depth_table(archive)
    assert set(depth["model"]) >= {"unfolded_tied-recall", "exact_recall", "exact"}
    assert depth["held"].isin([True, False]).all()
