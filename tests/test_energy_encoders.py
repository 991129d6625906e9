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
    raw = dict(encoder.raw[1].items())["D"]
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
