"""The trainable plug-in encoders (unfolded.energy_encoders): each layer is the plug-ins' own step, the
controls mix no tokens, the parameters learn and stay inside the conditions a parametrisation keeps."""

import copy

import pytest
import torch

from unfolded.encoders import build_encoder
from unfolded.energies import REGISTRY
from unfolded.energy_encoders import PluginEncoder
from unfolded.registry import ENERGY_ENCODERS, MODELS, family, split_model, variant_applies

STEMS = sorted(ENERGY_ENCODERS)


def _tokens(seed: int, b: int = 3, n: int = 7, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    Y = torch.randn(b, n, d, generator=generator, dtype=torch.float64)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[0, 5:], mask[2, 3:] = False, False
    return Y, mask


def _encoder(stem: str, seed: int, attention: bool = True, d: int = 8, layers: int = 3) -> PluginEncoder:
    torch.manual_seed(seed)
    model = f"{stem}_tied" + ("" if attention else "-no_attention")
    return build_encoder(model, d, layers, {}).double()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("stem", STEMS)
def test_every_layer_is_the_plugins_own_step(stem, attention, seed):
    """Layer for layer, the encoder's states are the plug-in's step (the control: its isolated step) applied
    to the tokens, computed here from copies of the plug-in instances, to 1e-6."""
    if not attention and not ENERGY_ENCODERS[stem].mixes_tokens:
        pytest.skip("an interaction-free plug-in has no control")
    encoder = _encoder(stem, seed, attention)
    Y, mask = _tokens(seed)
    with torch.no_grad():
        states = encoder.states(Y, mask, num_layers=3)
        hidden = encoder(Y, mask, num_layers=3).hidden
        instances = [copy.copy(instance) for instance in encoder.instances()]
    assert [type(i).name for i in instances] == list(ENERGY_ENCODERS[stem].plugins)
    state = torch.where(mask.unsqueeze(-1), instances[0].project(Y, mask), Y)
    for t in range(3):
        for instance in instances:
            plugin = REGISTRY[type(instance).name]
            state = plugin.step(instance, state, mask) if attention else plugin.isolated_step(instance, state, mask)
        torch.testing.assert_close(states[t], state, rtol=0, atol=1e-6)
    torch.testing.assert_close(hidden, state, rtol=0, atol=1e-6)
    assert torch.equal(states[-1][~mask], Y[~mask]) or stem == "token_clustering"  # padding comes back unchanged


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("stem", STEMS)
def test_a_control_moves_no_token_by_another_and_the_model_does(stem, seed):
    """Perturbing token 4 (at random: a shift along the all-ones direction is what a layer norm removes) leaves
    tokens 0-3 of the control where they were; in the model they move (where its plug-in mixes tokens)."""
    Y, mask = _tokens(seed)
    other = Y.clone()
    shift = torch.Generator().manual_seed(seed)
    other[:, 4] += torch.randn(other.shape[0], other.shape[-1], generator=shift, dtype=torch.float64)
    encoders = [(_encoder(stem, seed, True), ENERGY_ENCODERS[stem].mixes_tokens)]
    if ENERGY_ENCODERS[stem].mixes_tokens:
        encoders.append((_encoder(stem, seed, False), False))
    for encoder, mixes in encoders:
        with torch.no_grad():
            moved = (encoder(Y, mask).hidden[1, :4] - encoder(other, mask).hidden[1, :4]).abs().max()
        if mixes:
            assert moved > 1e-8
        else:
            assert moved == 0.0


@pytest.mark.parametrize("stem", [s for s in STEMS if s != "token_clustering"])
def test_the_loss_reaches_the_plugins_tensors(stem):
    """Training backpropagates through the steps (the Energy Transformer's is a gradient, taken with
    create_graph): every learned tensor of the model gets a non-zero gradient."""
    encoder = _encoder(stem, 3).float()
    Y, mask = _tokens(3)
    Y = Y.float().requires_grad_(True)
    encoder(Y, mask).hidden.pow(2).sum().backward()
    grads = {name: p.grad for name, p in encoder.named_parameters()}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values()), grads.keys()
    assert Y.grad.abs().sum() > 0


def test_crates_dictionary_stays_inside_the_step_condition():
    """``eta |D|^2 <= 1`` at every forward pass, however far the raw parameter moves."""
    encoder = _encoder("crate", 0)
    raw = encoder.raw[1]["D"]
    with torch.no_grad():
        raw.mul_(25.0)
    ista = encoder.instances()[1]
    assert type(ista).name == "crate_ista"
    assert ista.eta * ista.lipschitz <= 1.0 + 1e-9
    assert ista.conditions(*_tokens(0))["step"] >= -1e-9


def test_the_model_names_come_from_the_registry():
    for stem, encoder in ENERGY_ENCODERS.items():
        model = f"{stem}_tied"
        assert model in MODELS and family(model) == "energies" and split_model(model) == (model, "base")
        assert variant_applies(model, "no_attention") == encoder.mixes_tokens
        assert all(name in REGISTRY for name in encoder.plugins)
        assert encoder.mixes_tokens == any(REGISTRY[name].mixes_tokens for name in encoder.plugins)
    with pytest.raises(ValueError, match="residual"):
        split_model("crate_tied-residual")
    from unfolded.config import schema

    train = schema()["properties"]["train"]["properties"]
    assert {"crate_tied", "hopfield_tied"} <= set(train["models"]["items"]["enum"])
    assert "crate_tied" in train["variant_models"]["items"]["enum"]
    assert "hopfield_tied" not in train["variant_models"]["items"]["enum"]


# ------------------------------------------------------------------------------------------------
# The study's report (unfolded.report.energies_trial) on tables built by hand
# ------------------------------------------------------------------------------------------------


def _trial_runs(gains: dict[str, float], seeds=range(40, 50)):
    import pandas as pd

    rows = []
    for seed in seeds:
        for model, accuracy in (("crate_tied", 0.70 + gains["crate"]), ("crate_tied-no_attention", 0.70),
                                ("hopfield_tied", 0.74)):
            accuracy += 0.001 * (seed % 3)
            rows.append({"dataset": "equality", "model": model, "variant": "base", "family": "energies", "lr": 0.01,
                         "seed": seed, "val_correct": int(100 * accuracy), "val_count": 100, "val_accuracy": accuracy,
                         "test_accuracy": accuracy, "test_correct": int(1000 * accuracy), "test_count": 1000,
                         "parameters": 10, "chance_accuracy": 0.5, "epochs": 3, "max_epochs": 20,
                         "no_interaction_ceiling": 0.75, "bag_of_words_ceiling": float("nan"),
                         "energy_monotone_fraction": 1.0})
    return pd.DataFrame(rows).assign(selected=True)


def _trial(tmp_path, gains):
    import pandas as pd

    from unfolded.report.energies_trial import EnergiesTrial

    runs = _trial_runs(gains)
    energies = pd.DataFrame([
        {"dataset": "equality", "model": "crate_tied", "seed": s, "energy": energy, "guarantee": "g", "steps": 800,
         "monotone_fraction": share, "strict_fraction": 0.5, "active_fraction": 1.0, "conditions_held": 1.0,
         "test_accuracy": 0.9, "non_increasing": int(800 * share), "strict": 400, "active": 800}
        for s in range(40, 50) for energy, share in (("crate_ista", 1.0), ("crate_mssa", 0.25), ("layer", 0.5))])
    depth = pd.DataFrame([{"dataset": "equality", "model": "crate_tied", "lr": 0.01, "seed": s, "depth": d,
                           "test_accuracy": 0.9 if d == 4 else 0.45, "trained_depth": 4}
                          for s in range(40, 50) for d in range(1, 17)])
    return EnergiesTrial(tmp_path / "energies-x", {"git_commit": "abc", "git_dirty": False}, runs, depth, energies,
                         pd.DataFrame())


def test_the_report_counts_descent_in_steps_and_depth_relative_to_L(tmp_path):
    from unfolded.report.energies_trial import depth_table, descent_sentence, descent_table

    trial = _trial(tmp_path, {"crate": 0.25})
    table = descent_table(trial).set_index("energy")
    assert table.loc["crate_ista", "non_increasing"] == table.loc["crate_ista", "steps"] == 8000
    assert table.loc["crate_mssa", "non_increasing"] == 2000
    sentence = descent_sentence(descent_table(trial))
    assert "crate_ista never moves the wrong way" in sentence and "the wrong way: crate_mssa on 75.0% of steps" in sentence
    (row,) = depth_table(trial).to_dict("records")
    assert row["trained_depth"] == 4 and row["L"] == 1.0 and row["L-2"] == row["2L"] == 0.5


@pytest.mark.parametrize("gain, verdict", [(0.25, "helps"), (0.0, "not shown to help")])
def test_the_readme_table_states_each_energys_verdict_and_the_interaction_free_model(tmp_path, gain, verdict):
    from unfolded.report.energies_trial import energies_trial_headline

    text = energies_trial_headline(_trial(tmp_path, {"crate": gain}))
    (crate,) = [line for line in text.splitlines() if line.startswith("| crate |")]
    assert crate.endswith(f"{verdict} |")
    (hopfield,) = [line for line in text.splitlines() if line.startswith("| hopfield |")]
    assert "no mixing" in hopfield
    assert "| majority class | 0.500 |" in text


def test_the_trained_energies_of_archived_plugin_encoders(tmp_path):
    """Train tiny crate and token-clustering encoders, archive their weights as the archive does, and measure them:
    each plug-in's energy around its own step at every layer of every sample, the control's removed MSSA leaving
    its energy where it was, and token clustering's condition (tokens on the sphere) held on every step."""
    import json

    from unfolded.config import load_config
    from unfolded.runs import train_run
    from unfolded.sweeps import plugin_trained_energies

    config = load_config("config/smoke.yaml")
    config["energy_curves"]["samples"] = 6
    archive = tmp_path / "archive"
    for model in ("crate_tied", "crate_tied-no_attention", "token_clustering_tied"):
        module, summary, *_ = train_run(config, "equality", model, 0, tmp_path / "ckpt" / model, progress=False)
        target = archive / "checkpoints/equality" / model / "seed0.pt"
        target.parent.mkdir(parents=True)
        torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                    "test_accuracy": summary["test_accuracy"]}, target)
    (archive / "provenance.json").write_text(json.dumps({"config": config}))
    table, layers = plugin_trained_energies(archive, config, progress=False)
    crate = table[table["model"] == "crate_tied"].set_index("energy")
    assert set(crate.index) == {"layer", "crate_mssa", "crate_ista"}
    assert (crate["steps"] == 6 * 2).all() and crate["monotone_fraction"].between(0, 1).all()
    assert (crate["non_increasing"] == (crate["monotone_fraction"] * crate["steps"]).round()).all()
    control = table[table["model"] == "crate_tied-no_attention"].set_index("energy")
    assert control.loc["crate_mssa", "monotone_fraction"] == 1.0  # the control leaves the tokens where they were
    clustering = table[table["model"] == "token_clustering_tied"].set_index("energy")
    assert clustering.loc["token_clustering", "conditions_held"] == 1.0  # projected onto the sphere first
    assert len(layers) == 3 * (2 + 1) and layers["relative_spread"].iloc[0] == 1.0
