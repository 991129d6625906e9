import math

import pytest
import torch

from unfolded.energy import (
    attention_energy,
    ffn_energy,
    layernorm_projection,
    pairwise_energy,
    regulariser,
    relu_indicator,
    total_energy,
)
from unfolded.reference import pairwise_energy_index_lists

from helpers.batches import random_batch


def test_gram_energy_equals_authors_index_lists(generator):
    Y = torch.randn(17, 6, generator=generator, dtype=torch.float64)
    W = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    expected = pairwise_energy_index_lists(Y, W)
    assert torch.allclose(attention_energy(Y, W), expected, rtol=1e-12, atol=1e-12)
    assert torch.allclose(
        pairwise_energy(Y, W), pairwise_energy_index_lists(Y, W, regularise=False), rtol=1e-12, atol=1e-12
    )


def test_explicit_small_case():
    # Two tokens 0 and 1 in d = 1, W = 1: E_p = -exp(-1/2), R = 1/2.
    Y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    W = torch.ones(1, 1, dtype=torch.float64)
    assert pairwise_energy(Y, W).item() == pytest.approx(-math.exp(-0.5), abs=1e-15)
    assert regulariser(Y, W).item() == pytest.approx(0.5)
    # Fully collapsed tokens reach the minimum -n(n-1)/2 of the pairwise term.
    assert pairwise_energy(torch.zeros(5, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)).item() == -10


def test_padded_tokens_change_nothing(generator):
    Y, mask = random_batch(generator)
    W = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    Wf = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    Wf = Wf + Wf.T
    B = torch.randn(5, generator=generator, dtype=torch.float64)
    junk = Y.clone()
    junk[~mask] = 1e3 * torch.randn(int((~mask).sum()), 5, generator=generator, dtype=torch.float64)
    for energy in (
        lambda y: attention_energy(y, W, mask),
        lambda y: ffn_energy(y, Wf, B, mask),
        lambda y: total_energy(y, W, Wf, B, mask, regularise=False),
    ):
        assert torch.allclose(energy(Y), energy(junk), rtol=1e-12)
    # and a masked batch equals each sequence cut to its real tokens
    for i in range(Y.shape[0]):
        real = Y[i, mask[i]]
        assert torch.allclose(total_energy(Y, W, Wf, B, mask)[i], total_energy(real, W, Wf, B), rtol=1e-12)


def test_batched_equals_per_sample(generator):
    Y, _ = random_batch(generator, padded=False)
    W = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    batched = attention_energy(Y, W)
    assert batched.shape == (3,)
    for i in range(3):
        assert torch.allclose(batched[i], attention_energy(Y[i], W), rtol=1e-13)


def test_ffn_energy_formula(generator):
    Y = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    Wf = torch.diag(torch.tensor([0.5, -0.2, 0.0], dtype=torch.float64))
    B = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    expected = sum(0.5 * y @ Wf @ y + 0.5 * (y - B) @ (y - B) for y in Y)
    assert ffn_energy(Y, Wf, B).item() == pytest.approx(expected.item(), rel=1e-13)


def test_float32_and_gradients(generator):
    Y = torch.randn(2, 6, 4, generator=generator, requires_grad=True)
    W = torch.randn(4, 4, generator=generator, requires_grad=True)
    attention_energy(Y, W).sum().backward()
    assert Y.grad is not None and W.grad is not None and torch.isfinite(Y.grad).all()


def test_layernorm_projection_lands_on_the_set(generator):
    Y = 3 * torch.randn(5, 7, generator=generator, dtype=torch.float64) + 2
    Z = layernorm_projection(Y)
    assert torch.allclose(Z.sum(-1), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(Z.pow(2).sum(-1), torch.full((5,), 7.0, dtype=torch.float64))
    # with eps = 0 it is torch's layer norm without affine parameters
    reference = torch.nn.functional.layer_norm(Y, (7,), eps=0.0)
    assert torch.allclose(Z, reference, atol=1e-12)


def test_relu_indicator(generator):
    Y, mask = random_batch(generator)
    Y = Y.abs()
    assert (relu_indicator(Y, mask) == 0).all()
    Y[0, 0, 0] = -1.0
    assert relu_indicator(Y, mask)[0] == math.inf
    Y2 = Y.abs()
    Y2[1, -1, 0] = -1.0  # a padded token (row 1 keeps only 7 of 9)
    assert relu_indicator(Y2, mask)[1] == 0


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match="Y: expected shape"):
        pairwise_energy(torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="mask: expected shape"):
        pairwise_energy(torch.zeros(2, 4, 3), torch.eye(3), torch.ones(2, 5, dtype=torch.bool))
