"""The plug-in energies (unfolded.energies): padding, guarantees on random draws, counter-examples, the
formulas against independent computations, and a toy energy through the claims and the curves."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from unfolded.claims import CLAIMS, energy_claims
from unfolded.energies import REGISTRY, Energy
from unfolded.energies.base import sense_oriented
from unfolded.energy import pairwise_energy

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(REGISTRY)


def test_the_registry_holds_the_published_energies_and_the_papers():
    assert {"hopfield", "energy_transformer", "crate_ista", "crate_mssa", "token_clustering", "yang_exact",
            "yang_authors", "yang_multihead"} <= set(REGISTRY)
    for name, plugin in REGISTRY.items():
        assert plugin.name == name and plugin.sense in ("min", "max") and plugin.reference
    assert REGISTRY["yang_exact"].guarantee == "none"  # only its sub-steps have theorems
    kinds = {g.kind for s in REGISTRY["crate_ista"].substeps for g in s.guarantees}
    assert kinds == {"monotone", "fejer"}


@pytest.mark.parametrize("name", PLUGINS)
def test_padding_is_invisible_to_every_energy_and_step(name):
    """Padded tokens holding anything change no energy and no real token's step, and come back unchanged."""
    generator = torch.Generator().manual_seed(11)
    instance = REGISTRY[name].random_instance(6, generator)
    Y, _ = instance.random_tokens(generator, 2, 5)
    mask = torch.ones(2, 5, dtype=torch.bool)
    junk = 50 * torch.randn(2, 3, 6, generator=generator, dtype=torch.float64)
    padded = torch.cat([Y, junk], 1)
    padded_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1)
    torch.testing.assert_close(instance.energy(padded, padded_mask), instance.energy(Y, mask), rtol=1e-10, atol=1e-10)
    stepped = instance.step(padded, padded_mask)
    torch.testing.assert_close(stepped[:, :5], instance.step(Y, mask), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(stepped[:, 5:], junk, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_theorem_of_every_plugin_holds_and_every_explicit_counterexample_fires(seed):
    """At any seed: 0 wrong-way steps for monotone, Fejer and small continuous-time steps; identities to 1e-10;
    each counter-example's explicit instance moves its energy the wrong way."""
    for plugin in REGISTRY.values():
        for entry in energy_claims(plugin):
            result = entry.check(25, seed)
            if entry.kind in ("theorem", "identity"):
                assert result.violations == 0, (entry.id, result.verdict)
            elif entry.kind == "counterexample":
                assert result.explicit_trials == 1 and result.explicit_violations == 1, (entry.id, result.verdict)


@pytest.mark.parametrize("name", ["energy_transformer", "token_clustering"])
def test_continuous_time_rises_vanish_below_the_stated_step(name):
    """Below the stated relative step no draw moves the energy the wrong way; the rate is reported above it."""
    small = CLAIMS[f"{name}_small_steps"].check(150, 5)
    assert small.violations == 0 and small.trials >= 150  # one trial per sequence of each draw
    ten = CLAIMS[f"{name}_steps_x10"].check(50, 5)
    assert ten.kind == "report" and ten.trials >= 50  # the rate just above the bound is measured, not asserted


def test_a_larger_step_does_raise_the_energy_transformer_energy():
    """The threshold is not vacuous: far above it, wrong-way steps appear."""
    result = CLAIMS["energy_transformer_steps_x100"].check(400, 0)
    assert result.violations > 0


# ------------------------------------------------------------------------------------------------
# The formulas against independent computations (numpy, written from the papers' and codes' formulas)
# ------------------------------------------------------------------------------------------------


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    top = values.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(values - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def test_hopfield_energy_and_update_against_the_formulas():
    instance = REGISTRY["hopfield"].random_instance(5, torch.Generator().manual_seed(3))
    X, beta = instance.patterns.numpy(), instance.beta
    Y = np.random.default_rng(0).normal(size=(1, 4, 5))
    expected = sum(-_logsumexp(beta * X @ xi, 0) / beta + 0.5 * xi @ xi + np.log(len(X)) / beta
                   + 0.5 * np.linalg.norm(X, axis=1).max() ** 2 for xi in Y[0])
    assert float(instance.energy(torch.tensor(Y))) == pytest.approx(expected, rel=1e-12)
    # the published update iterates q <- softmax(beta q K^T) K with the keys fixed
    weights = np.exp(beta * Y[0] @ X.T - _logsumexp(beta * Y[0] @ X.T, 1)[:, None])
    np.testing.assert_allclose(instance.step(torch.tensor(Y)).numpy()[0], weights @ X, rtol=1e-12)


@pytest.mark.parametrize("name,diagonal", [("energy_transformer", False), ("energy_transformer_code", True)])
def test_energy_transformer_energy_against_the_formula(name, diagonal):
    instance = REGISTRY[name].random_instance(4, torch.Generator().manual_seed(4))
    x = np.random.default_rng(1).normal(size=(5, 4))
    centred = x - x.mean(-1, keepdims=True)
    g = instance.gamma * centred / np.sqrt((centred**2).mean(-1, keepdims=True) + instance.eps) + instance.delta.numpy()
    beta, total = instance.beta, 0.0
    for W_K, W_Q in zip(instance.W_K.numpy(), instance.W_Q.numpy(), strict=True):
        K, Q = g @ W_K.T, g @ W_Q.T
        for C in range(5):
            keys = [B for B in range(5) if diagonal or B != C]
            total -= _logsumexp(np.array([beta * K[B] @ Q[C] for B in keys]), 0) / beta
    total -= 0.5 * (np.maximum(g @ instance.memories.numpy().T, 0) ** 2).sum()
    assert float(instance.energy(torch.tensor(x[None]))) == pytest.approx(total, rel=1e-12)


def test_energy_transformer_step_is_the_gradient_in_g_applied_to_x():
    """x <- x - alpha dE/dg: the gradient against central differences of E in g."""
    instance = REGISTRY["energy_transformer"].random_instance(3, torch.Generator().manual_seed(5))
    x = torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    g = instance.layer_norm(x)
    numeric = torch.zeros_like(g)
    for index in np.ndindex(*g.shape):
        shift = torch.zeros_like(g)
        shift[index] = 1e-6
        numeric[index] = (instance.energy_of_g(g + shift) - instance.energy_of_g(g - shift)).sum() / 2e-6
    torch.testing.assert_close(instance.step(x), x - instance.alpha * numeric, rtol=1e-6, atol=1e-8)


def test_crate_ista_step_matches_the_code_form():
    """The code: ReLU(x + eta (grad_2 - grad_1) - eta lambda), grad_1 = (x W^T) W, grad_2 = x W, W = D."""
    instance = REGISTRY["crate_ista"].random_instance(5, torch.Generator().manual_seed(7))
    x = np.random.default_rng(2).normal(size=(1, 3, 5))
    W = instance.D.numpy()
    expected = np.maximum(x + instance.eta * (x @ W - (x @ W.T) @ W) - instance.eta * instance.lam, 0)
    np.testing.assert_allclose(instance.step(torch.tensor(x)).numpy(), expected, rtol=1e-12)


def test_coding_rate_is_the_n_by_n_logdet():
    """R^c via the p x p Gram matrix equals the paper's logdet(I_N + a G_k), G_k = (U_k^T Z)^T (U_k^T Z)."""
    instance = REGISTRY["crate_mssa"].random_instance(6, torch.Generator().manual_seed(8))
    Y = np.random.default_rng(3).normal(size=(7, 6))
    p, eps = instance.U.shape[-1], instance.eps
    a = p / (7 * eps**2)
    expected = sum(0.5 * np.linalg.slogdet(np.eye(7) + a * (Y @ U) @ (Y @ U).T)[1] for U in instance.U.numpy())
    assert float(instance.energy(torch.tensor(Y[None]))) == pytest.approx(expected, rel=1e-10)


def test_token_clustering_ascends_and_equals_the_rescaled_pairwise_energy():
    plugin = REGISTRY["token_clustering"]
    instance = plugin(beta=2.0, h=0.02, d=4)
    Y, mask = instance.random_tokens(torch.Generator().manual_seed(9), 3, 6)
    after = instance.step(Y, mask)
    assert (instance.energy(after, mask) >= instance.energy(Y, mask)).all()  # sense max
    assert (sense_oriented("max", instance.energy(after, mask)) <= sense_oriented("max", instance.energy(Y, mask))).all()
    count = mask.double().sum(-1)
    P = pairwise_energy(Y, math.sqrt(2.0) * torch.eye(4, dtype=torch.float64), mask)
    torch.testing.assert_close(instance.energy(Y, mask),
                               -math.exp(2.0) / (2.0 * count**2) * P + math.exp(2.0) / (4.0 * count), rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------------------------
# A toy energy, registered at run time, through the claims and the curves (the docs' example)
# ------------------------------------------------------------------------------------------------


def _docs_examples() -> list[str]:
    text = (ROOT / "docs/energies.md").read_text().split("## Add your own energy", 1)[1]
    return re.findall(r"```python\n(.*?)```", text, re.S)


def _register_docs_example(monkeypatch) -> tuple[type, dict]:
    """Run the docs' plug-in block with the registries patched, so that the registration stays inside the test."""
    import unfolded.energies as energies
    import unfolded.registry as registry

    monkeypatch.setattr("unfolded.energies.REGISTRY", dict(REGISTRY))
    monkeypatch.setattr("unfolded.energy_plugins.REGISTRY", energies.REGISTRY)
    monkeypatch.setattr(registry, "ENERGY_ENCODERS", dict(registry.ENERGY_ENCODERS))
    monkeypatch.setattr("unfolded.energies.ENERGY_ENCODERS", registry.ENERGY_ENCODERS)
    monkeypatch.setattr("unfolded.energy_encoders.ENERGY_ENCODERS", registry.ENERGY_ENCODERS)
    namespace: dict = {}
    exec(compile(_docs_examples()[0], "docs/energies.md", "exec"), namespace)
    return namespace["Anchor"], energies.REGISTRY


def test_a_toy_energy_from_the_docs_runs_through_the_claims_and_the_curves(monkeypatch):
    from unfolded.config import load_config
    from unfolded.energy_plugins import plugin_curves
    from unfolded.summaries import curve_summary

    toy, registry = _register_docs_example(monkeypatch)
    assert registry["anchor"] is toy and issubclass(toy, Energy)
    claims = {entry.id: entry.check(20, 0) for entry in energy_claims(toy)}
    assert claims["anchor_monotone"].kind == "theorem" and claims["anchor_monotone"].violations == 0
    config = load_config({**load_config("config/smoke.yaml"), "energy_plugins": {"energies": ["anchor"], "samples": 4,
                                                                                 "num_layers": 3}})
    table = plugin_curves(config, "polarity", progress=False)
    assert set(table["variant"]) == {"anchor"} and len(table) == 4 * 4
    summary = curve_summary(table)
    assert summary["monotone_fraction"].iloc[0] == 1.0 and summary["steps"].iloc[0] == 4 * 3


def test_a_toy_energy_from_the_docs_trains_without_any_change_elsewhere(monkeypatch, tmp_path):
    """The docs' second block: ``register`` alone makes ``anchor_tied`` a model that trains, whose layer is the
    plug-in's step and whose tensor (the point a) is learned; an interaction-free plug-in has no control."""
    from unfolded.energy_encoders import PluginEncoder
    from unfolded.registry import split_model

    _register_docs_example(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/smoke.yaml").write_text((ROOT / "config/smoke.yaml").read_text())
    namespace: dict = {}
    exec(compile(_docs_examples()[1], "docs/energies.md", "exec"), namespace)
    module, summary = namespace["module"], namespace["summary"]
    assert isinstance(module.encoder, PluginEncoder) and module.encoder.plugin_names == ("anchor",)
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["steps"] > 0
    (learned,) = [p for name, p in module.encoder.named_parameters() if name.endswith("anchor")]
    start = module.encoder.initial["0.anchor"]
    assert not torch.allclose(learned.detach().float().cpu(), start), "the plug-in's tensor did not train"
    with pytest.raises(ValueError, match="no_attention"):
        split_model("anchor_tied-no_attention")


def test_an_unknown_energy_is_named_with_the_registered_ones():
    from unfolded.config import ConfigError, load_config
    from unfolded.energy_plugins import plugin_curves

    config = load_config({"energy_plugins": {"energies": ["hopfeld"]}})
    with pytest.raises(ConfigError, match="unknown energies \\['hopfeld'\\]; registered: .*'hopfield'"):
        plugin_curves(config, "polarity", progress=False)


def test_crates_own_measurement_of_the_coding_rate():
    """vis_utils/coding_rate.py: per subspace the projected tokens scaled to unit norm, and
    1/2 logdet(I_m + p / (m eps) X X^T) with eps = 0.01, summed over the subspaces."""
    from unfolded.energies.crate import coding_rate

    U = REGISTRY["crate_mssa"].random_instance(5, torch.Generator().manual_seed(12)).U
    Y = np.random.default_rng(4).normal(size=(6, 5))
    p, expected = U.shape[-1], 0.0
    for basis in U.numpy():
        X = Y @ basis
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        expected += 0.5 * np.linalg.slogdet(np.eye(6) + p / (6 * 0.01) * X @ X.T)[1]
    assert float(coding_rate(torch.tensor(Y[None]), U, normalise=True)) == pytest.approx(expected, rel=1e-10)


def test_registering_checks_the_plugin():
    from unfolded.energies import register

    class Nameless(Energy):
        pass

    with pytest.raises(ValueError, match="needs a name"):
        register(Nameless)

    class NoBound(Energy):
        name, guarantee = "no_bound", "continuous-time"

    with pytest.raises(ValueError, match="needs relative_step_bound"):
        register(NoBound)

    class Taken(Energy):
        name = "hopfield"

    with pytest.raises(ValueError, match="registered already"):
        register(Taken)
    assert REGISTRY["hopfield"].__name__ == "Hopfield"


def test_a_draw_outside_the_guarantee_conditions_counts_as_a_violation(monkeypatch):
    """The guarantee's margins are checked on every draw: an instance generator that leaves them fails the claim."""
    plugin = REGISTRY["hopfield"]
    monkeypatch.setattr(plugin, "conditions", lambda self, Y, mask=None: {"beta": torch.tensor(-1.0)})
    (claim,) = [entry for entry in energy_claims(plugin) if entry.id == "hopfield_monotone"]
    assert claim.check(5, 0).violations == 5
