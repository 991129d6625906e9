"""Lightning training on the smoke configuration: learning, resume, divergence guard, energy curves."""

import pandas as pd
import pytest
import torch

from unfolded.config import load_config
from unfolded.curves import energy_curves
from unfolded.data import prepare
from unfolded.models import SUBSTEP_ENERGIES
from unfolded.registry import MODELS, VARIANTS
from unfolded.runs import train_run
from unfolded.summaries import curve_summary, layer_decomposition, plotted_rows
from unfolded.training import DivergenceError, SequenceClassifier, fit

SMOKE = load_config("config/smoke.yaml")


@pytest.mark.parametrize("model", [*MODELS, *(f"unfolded_tied-{variant}" for variant in VARIANTS)])
@pytest.mark.parametrize("dataset", ["polarity", "digits"])
def test_a_few_steps_reduce_the_loss(model, dataset):
    data = prepare(dataset, SMOKE)
    torch.manual_seed(0)
    module = SequenceClassifier(kind=data.kind, input_dim=data.input_dim, num_classes=data.num_classes, model=model,
                                width=16, num_layers=2, vectors=data.vectors, embedding="learned", lr=1e-2,
                                positions="learned", max_tokens=64)
    from unfolded.data import collate

    batch = collate([(data.splits["train"][0][i], data.splits["train"][1][i]) for i in range(32)])
    optimiser = module.configure_optimizers()
    losses = []
    for _ in range(25):
        optimiser.zero_grad()
        logits, _ = module(batch)
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0]


class Kill(__import__("lightning").Callback):
    """Stops the process-like run at the start of the second epoch, after the first checkpoint."""

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated kill")


def test_resume_continues_from_the_checkpoint(tmp_path):
    config = load_config({**SMOKE, "train": {**SMOKE["train"], "max_epochs": 2}})
    _, uninterrupted, energies, depth, _ = train_run(config, "polarity", "unfolded_tied", 0, tmp_path / "full", progress=False)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_run(config, "polarity", "unfolded_tied", 0, tmp_path / "split", progress=False, callbacks=(Kill(),))
    assert (tmp_path / "split" / "last.ckpt").exists()
    _, resumed, resumed_energies, resumed_depth, _ = train_run(config, "polarity", "unfolded_tied", 0, tmp_path / "split",
                                                            progress=False)
    assert resumed["resumed"] and not uninterrupted["resumed"]
    assert resumed["steps"] == uninterrupted["steps"]
    assert resumed["test_accuracy"] == uninterrupted["test_accuracy"]
    assert resumed["test_loss"] == pytest.approx(uninterrupted["test_loss"], abs=1e-6)
    pd.testing.assert_frame_equal(energies, resumed_energies)
    pd.testing.assert_frame_equal(depth, resumed_depth)


def test_checkpoint_from_other_code_is_not_resumed(tmp_path):
    from unfolded.training import CODE_KEY_FILE

    config = load_config({**SMOKE, "train": {**SMOKE["train"], "max_epochs": 2}})
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_run(config, "polarity", "unfolded_tied", 0, tmp_path / "ckpt", progress=False, callbacks=(Kill(),))
    (tmp_path / "ckpt" / CODE_KEY_FILE).write_text("0123456789abcdef\n")  # as if the code had changed since
    with pytest.warns(UserWarning, match="made by other code"):
        _, summary, _, _, predictions = train_run(config, "polarity", "unfolded_tied", 0, tmp_path / "ckpt",
                                                  progress=False)
    assert not summary["resumed"] and summary["epochs"] == 2
    # the counts are each split's own: test answers for the test count, validation answers for the validation one
    for split, prefix in (("test", "test"), ("val", "val")):
        answers = predictions[predictions["split"] == split]
        assert summary[f"{prefix}_count"] == len(answers) and summary[f"{prefix}_correct"] == int(answers["correct"].sum())
    assert summary["test_correct"] == round(summary["test_accuracy"] * summary["test_count"])


def test_a_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    import pickle

    from unfolded.codeversion import stage_digest
    from unfolded.training import CODE_KEY_FILE, CheckpointRefused

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    checkpoint_dir = tmp_path / "ckpt"
    checkpoint_dir.mkdir()
    (checkpoint_dir / CODE_KEY_FILE).write_text(stage_digest("train") + "\n")
    with open(checkpoint_dir / "last.ckpt", "wb") as handle:
        pickle.dump({"state_dict": {}, "payload": Payload()}, handle)
    with pytest.raises(CheckpointRefused, match="weights_only=True"):
        train_run(SMOKE, "polarity", "unfolded_tied", 0, checkpoint_dir, progress=False)
    assert not marker.exists()


def test_divergence_stops_with_diagnostics(tmp_path):
    data = prepare("polarity", SMOKE)
    module = SequenceClassifier(kind="tokens", input_dim=16, num_classes=2, model="unfolded_untied", width=16, num_layers=2,
                                vectors=data.vectors * 1e3, embedding="learned", encoder_options={"relu": False},
                                optimizer="sgd", lr=1e12, diagnostics_dir=str(tmp_path))
    with pytest.raises(DivergenceError, match="diverged at step"):
        fit(module, data, tmp_path / "ckpt", seed=0, batch_size=16, max_epochs=3, progress=False)
    saved = torch.load(tmp_path / "divergence.pt", weights_only=False)
    norms = torch.tensor(list(saved["parameter_norms"].values()))
    assert (not torch.isfinite(torch.tensor(saved["loss"]))) or not torch.isfinite(norms).all()
    assert saved["reason"] and saved["batch"]["inputs"].shape[0] == 16


def test_energy_curve_table(tmp_path):
    table = energy_curves(SMOKE, "polarity", tmp_path, progress=False)
    cfg = SMOKE["energy_curves"]
    # per variant: untrained without and with ReLU, trained with ReLU; samples x (layers + 1) rows each
    assert len(table) == len(cfg["variants"]) * 3 * cfg["samples"] * (cfg["num_layers"] + 1)
    assert {"dataset", "variant", "relu", "state", "seed", "sample", "layer", "energy", "step_before", "step_middle",
            "step_after", "spread", "relative_spread", "update", "test_accuracy", "change_W"} <= set(table.columns)
    assert table["energy"].notna().all()
    steps = table[table["layer"] > 0]
    assert steps[["step_before", "step_after", "update"]].notna().all().all()
    assert table.loc[table["layer"] == 0, "relative_spread"].eq(1.0).all()
    # tied models: a step's own function is the curve's, so step_after is the plotted energy
    assert (steps["step_after"] - steps["energy"]).abs().max() < 1e-9
    every_energy = curve_summary(table)
    summary = plotted_rows(every_energy)
    assert len(summary) == 3 * len(cfg["variants"]) and summary["monotone_fraction"].between(0, 1).all()
    # each curve also has a row per energy that applies: the ReLU sub-step energy only with ReLU
    counts = every_energy.groupby(["variant", "state", "relu"]).size()
    assert set(counts[counts.index.get_level_values("relu")]) == {1 + len(SUBSTEP_ENERGIES)}
    assert set(counts[~counts.index.get_level_values("relu")]) == {len(SUBSTEP_ENERGIES)}
    # the theorems: on the exact models every sub-step descends the energy it is about, trained or not
    theorems = [name for name, guarantee in SUBSTEP_ENERGIES.values() if guarantee.startswith("theorem")]
    exact_substeps = every_energy[every_energy["variant"].str.startswith("exact") & every_energy["energy"].isin(theorems)]
    exact_models = [variant for variant in cfg["variants"] if variant.startswith("exact")]
    assert len(exact_substeps) == len(exact_models) * (2 + 3 + 3) and (exact_substeps["monotone_fraction"] == 1.0).all()
    # exact_recall's curves are the anchored energy E_X: its anchor weight is on every row
    recall = table[table["variant"] == "exact_recall"]
    assert set(recall["recall"]) == {SMOKE["energy_curves"]["recall"]} and set(table.loc[table["variant"] != "exact_recall",
                                                                                           "recall"]) == {0.0}
    # the whole layer: no theorem; the exact models' plotted totals rarely rise, exact_recall's E_X does at
    # alternate layers (docs/theory.md §8.2), so it is reported, not asserted
    exact = summary[summary["variant"].isin(["exact", "exact_active"])]
    assert (exact["monotone_fraction"] > 0.9).all()
    trained = summary[summary["state"] == "trained"]
    assert trained["test_accuracy"].between(0, 1).all() and trained["chance_accuracy"].between(0.5, 1).all()
    assert (trained[["change_W", "change_Wf", "change_B"]] > 0).all().all()  # training moved every weight
    untrained = summary[summary["state"] == "untrained"]
    assert untrained["test_accuracy"].isna().all()
    active = table[table["variant"] == "exact_active"]
    assert set(active["alpha_attention"]) == {SMOKE["energy_curves"]["active_regime"]["alpha_attention"]}
    layers = layer_decomposition(table)
    assert len(layers) == len(summary) * cfg["num_layers"]
    assert ((layers["attention_decrease"] + layers["ffn_decrease"] - layers["total_decrease"]).abs() < 1e-6).all()
    assert layers["active_share"].between(0, 1).all()
