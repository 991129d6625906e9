import pytest
import torch
from torch.nn.utils import parametrize

from unfolded.models import StandardTransformer, UnfoldedTransformer, authors_ffn_normalisation

from helpers.batches import random_batch


def test_unfolded_output_shapes_and_energy_count(generator):
    torch.manual_seed(0)
    model = UnfoldedTransformer(8, 12)
    Y, mask = random_batch(generator, b=2, n=6, d=8, dtype=torch.float32)
    out = model(Y, mask)
    assert out.hidden.shape == (2, 6, 8)
    assert out.energies.shape == (2, 13)
    assert torch.isfinite(out.energies).all()
    assert model(Y, mask, return_energies=False).energies is None


def test_tied_and_untied_parameter_counts():
    tied, untied = UnfoldedTransformer(6, 4, tied=True), UnfoldedTransformer(6, 4, tied=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(untied) == 4 * count(tied) == 4 * (6 * 6 * 2 + 6)
    assert tied.layer(0) is tied.layer(3) and untied.layer(0) is not untied.layer(3)


def test_spectral_bound_holds_through_training():
    torch.manual_seed(0)
    model = UnfoldedTransformer(10, 3, spectral_bound=0.5)
    optimiser = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(5):  # large steps that would push an unconstrained matrix far out
        optimiser.zero_grad()
        model(torch.randn(4, 7, 10)).hidden.pow(2).sum().backward()
        optimiser.step()
    Wf = model.layer(0).ffn_weight()
    assert parametrize.is_parametrized(model.layer(0), "Wf")
    assert torch.allclose(Wf, Wf.T, atol=1e-6)
    spectrum = torch.linalg.eigvalsh(Wf)
    assert spectrum.min() >= -0.5 - 1e-5 and spectrum.max() <= 0.5 + 1e-5


def test_masked_tokens_do_not_change_real_outputs(generator):
    torch.manual_seed(0)
    Y, mask = random_batch(generator, b=3, n=8, d=8, dtype=torch.float32)
    junk = Y.clone()
    junk[~mask] = 30.0
    for model in (UnfoldedTransformer(8, 4, layer_norm=True), StandardTransformer(8, 2, num_heads=2).eval()):
        a, b = model(Y, mask), model(junk, mask)
        assert torch.allclose(a.hidden[mask], b.hidden[mask], atol=1e-5)
        assert torch.allclose(a.energies, b.energies, rtol=1e-5)


def test_exact_model_without_relu_descends_its_energy_at_small_steps():
    """Small steps in both sub-layers on one tied energy: every layer lowers E_p + E_ff here."""
    torch.manual_seed(0)
    model = UnfoldedTransformer(
        6, 8, relu=False, regularise_energy=False, alpha_attention=0.2, alpha_ffn=0.2
    ).double()
    energies = model(torch.randn(4, 5, 6, dtype=torch.float64)).energies
    assert (energies[:, 1:] <= energies[:, :-1] + 1e-10).all()


def test_standard_transformer(generator):
    model = StandardTransformer(12, 3, num_heads=3, tied=True)
    assert len(model.layers) == 1
    out = model(torch.randn(2, 5, 12), torch.ones(2, 5, dtype=torch.bool))
    assert out.hidden.shape == (2, 5, 12) and out.energies.shape == (2, 4)
    with pytest.raises(ValueError, match="num_heads"):
        StandardTransformer(10, 2, num_heads=3)


def test_authors_normalisation_spectrum(generator):
    A = torch.randn(30, 30, generator=generator, dtype=torch.float64) / 30**0.5
    spectrum = torch.linalg.eigvalsh(authors_ffn_normalisation(A))
    assert spectrum.min() >= -1e-12 and spectrum.max() <= 0.95 + 1e-12
    assert (spectrum > 0.95 - 1e-9).any()  # some eigenvalues were clipped


def test_invalid_options():
    with pytest.raises(ValueError, match="attention_variant"):
        UnfoldedTransformer(4, 2, attention_variant="bad")
    with pytest.raises(ValueError, match="num_layers"):
        UnfoldedTransformer(4, 0)


@pytest.mark.parametrize("learned", [False, True])
def test_a_tied_encoder_computes_its_parametrised_weight_once_and_keeps_the_gradients(learned, monkeypatch):
    """The spectral clamp's eigendecomposition runs once per pass (parametrize.cached), and the pass
    and its gradients equal the layer-by-layer computation without the cache (float64, 1e-10)."""
    import unfolded.models as models

    torch.manual_seed(0)
    encoder = UnfoldedTransformer(16, 5, tied=True, learned_step_sizes=learned, alpha_ffn=0.5).double()
    Y = torch.rand(3, 7, 16, dtype=torch.float64)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, 4:] = False
    calls = []
    original = torch.linalg.eigh
    monkeypatch.setattr(models.torch.linalg, "eigh", lambda *a, **k: calls.append(1) or original(*a, **k))
    out = encoder(Y, mask)
    assert len(calls) == 1
    (out.hidden.square().sum() + out.energies.sum()).backward()
    cached = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    Z, energies = Y, [encoder.layer(0).energy(Y, mask)]
    for t in range(5):
        Z = encoder.layer(t)(Z, mask, encoder.step_sizes(t))
        energies.append(encoder.layer(t).energy(Z, mask))
    assert len(calls) > 5  # without the cache, every application recomputes it
    (Z.square().sum() + torch.stack(energies, -1).sum()).backward()
    assert torch.equal(out.hidden, Z)
    for ours, reference in zip(cached, (p.grad for p in encoder.parameters()), strict=True):
        assert (ours - reference).abs().max() <= 1e-10 * (1 + reference.abs().max())


@pytest.mark.parametrize("encoder", [
    lambda: UnfoldedTransformer(8, 3, tied=True, learned_step_sizes=True, alpha_ffn=0.5),
    lambda: UnfoldedTransformer(8, 3, tied=True, energy_heads=2),
    lambda: StandardTransformer(8, 3, tied=True, num_heads=2),
    lambda: StandardTransformer(8, 3, tied=True, num_heads=2, norm_first=False),
])
def test_states_are_the_outputs_at_every_depth(encoder, generator):
    """Depth extrapolation reads every depth from one pass: state t equals forward at depth t."""
    torch.manual_seed(0)
    model = encoder().eval()
    Y, mask = random_batch(generator, b=2, n=6, d=8, dtype=torch.float32)
    with torch.no_grad():
        states = model.states(Y, mask, num_layers=7)
        assert len(states) == 7
        for depth, state in enumerate(states, start=1):
            assert torch.equal(state, model(Y, mask, num_layers=depth, return_energies=False).hidden), depth
