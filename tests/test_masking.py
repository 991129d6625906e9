"""Padding is invisible: padded tokens change no output at real tokens, no pooled state, no logit and
no energy, for both families and every variant; neither does the content of the padding."""

import itertools

import pytest
import torch

from unfolded.models import StandardTransformer, UnfoldedTransformer
from unfolded.training import SequenceClassifier

D, N, REAL = 8, 7, 4

UNFOLDED = [
    dict(attention_variant=variant, relu=relu, layer_norm=layer_norm, tied=tied, alpha_attention=alpha)
    for variant, relu, layer_norm, tied, alpha in itertools.product(
        ("exact", "no_bias", "authors"), (False, True), (False, True), (True, False), (1.0, 0.5))
]
# the study's variants: multi-head energy (with and without the residual step) and learned step sizes
UNFOLDED += [dict(energy_heads=2, tied=tied, alpha_attention=alpha) for tied in (True, False) for alpha in (1.0, 0.5)]
UNFOLDED += [dict(learned_step_sizes=True, tied=tied, alpha_ffn=0.5) for tied in (True, False)]
ENCODERS = [("unfolded", options) for options in UNFOLDED] + [("standard", {"tied": t}) for t in (True, False)]


def build(family: str, options: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    if family == "unfolded":
        options = dict(options)
        tied = options.pop("tied")
        return UnfoldedTransformer(D, 3, tied=tied, **options).double().eval()
    return StandardTransformer(D, 3, num_heads=2, **options).double().eval()


def padded_batch(generator: torch.Generator, fill: str):
    real = torch.randn(1, REAL, D, generator=generator, dtype=torch.float64)
    Y = torch.randn(2, N, D, generator=generator, dtype=torch.float64)
    Y[0, :REAL] = real[0]
    if fill == "huge":
        Y[0, REAL:] = 1e3 * torch.randn(N - REAL, D, generator=generator, dtype=torch.float64)
    elif fill == "shuffled":
        Y[0, REAL:] = Y[1, torch.randperm(N, generator=generator)[: N - REAL]]
    mask = torch.ones(2, N, dtype=torch.bool)
    mask[0, REAL:] = False
    return real, Y, mask


@pytest.mark.parametrize("family,options", ENCODERS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(ENCODERS)])
def test_padding_changes_nothing_at_real_tokens(family, options):
    model = build(family, options)
    generator = torch.Generator().manual_seed(1)
    real, Y, mask = padded_batch(generator, "random")
    alone = model(real)
    with torch.no_grad():
        for fill in ("random", "huge", "shuffled"):
            _, Y_fill, _ = padded_batch(torch.Generator().manual_seed(1), fill)
            out = model(Y_fill, mask)
            torch.testing.assert_close(out.hidden[0, :REAL], alone.hidden[0], rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(out.energies[0], alone.energies[0], rtol=1e-9, atol=1e-9)
            trace = model.trace(Y_fill, mask)
            reference = model.trace(real)
            for name in ("before", "after", "spread", "update"):
                torch.testing.assert_close(getattr(trace, name)[0], getattr(reference, name)[0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("model", ["unfolded_tied", "unfolded_untied", "standard_tied", "standard_untied"])
@pytest.mark.parametrize("kind", ["tokens", "features"])
def test_pooled_state_and_logits_ignore_padding(model, kind):
    torch.manual_seed(0)
    vectors = torch.randn(20, D)
    module = SequenceClassifier(kind=kind, input_dim=D, num_classes=3, model=model, width=D, num_layers=2,
                                vectors=vectors if kind == "tokens" else None,
                                encoder_options={"num_heads": 2}).double().eval()
    if kind == "tokens":
        real = torch.randint(1, 20, (1, REAL))
        inputs = torch.randint(1, 20, (2, N))
        inputs[0, :REAL] = real
    else:
        real = torch.randn(1, REAL, D, dtype=torch.float64)
        inputs = torch.randn(2, N, D, dtype=torch.float64)
        inputs[0, :REAL] = real
    mask = torch.ones(2, N, dtype=torch.bool)
    mask[0, REAL:] = False
    with torch.no_grad():
        alone, _ = module({"inputs": real, "mask": torch.ones(1, REAL, dtype=torch.bool)})
        logits, _ = module({"inputs": inputs, "mask": mask})
        other = inputs.clone()
        other[0, REAL:] = other[0, REAL:].flip(0) if kind == "tokens" else 1e3
        changed, _ = module({"inputs": other, "mask": mask})
    torch.testing.assert_close(logits[0], alone[0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(changed[0], alone[0], rtol=1e-9, atol=1e-9)
