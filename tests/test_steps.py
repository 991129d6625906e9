import pytest
import torch

from unfolded.energy import ffn_energy, layernorm_projection, pairwise_energy
from unfolded.reference import plain_softmax_attention
from unfolded.steps import (
    ATTENTION_VARIANTS,
    attention_step,
    attention_weights,
    ffn_step,
    relu_step,
)

from helpers.batches import random_batch


def test_ffn_step_is_the_autograd_gradient_step(generator):
    Y = torch.randn(3, 7, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    A = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    Wf, B = A + A.T, torch.randn(5, generator=generator, dtype=torch.float64)
    (grad,) = torch.autograd.grad(ffn_energy(Y, Wf, B).sum(), Y)
    for alpha in (0.1, 0.5, 1.0, 1.7):
        assert (ffn_step(Y.detach(), Wf, B, alpha) - (Y.detach() - alpha * grad)).abs().max() < 1e-10


def test_attention_step_is_the_preconditioned_majorizer_step(generator):
    """(1-a) Y + a softmax_beta(.) Y == Y - a D^-1 grad E_p(Y) (W W^T)^-1 (docs/theory.md §2.1)."""
    Y, mask = random_batch(generator)
    W = torch.randn(5, 5, generator=generator, dtype=torch.float64) + 2 * torch.eye(5, dtype=torch.float64)
    Yg = Y.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(pairwise_energy(Yg, W, mask).sum(), Yg)
    # D = row sums of gamma_ij = exp(-1/2 |(y_i - y_j) W|^2) over real tokens, self-pair included
    Z = Y @ W
    gamma = torch.exp(-0.5 * torch.cdist(Z, Z).pow(2)) * mask.unsqueeze(-2)
    degree = gamma.sum(-1, keepdim=True)
    for alpha in (0.3, 1.0):
        expected = Y - alpha * (grad / degree) @ torch.linalg.inv(W @ W.T)
        got = attention_step(Y, W, mask, alpha)
        assert (got - expected)[mask].abs().max() < 1e-10


@pytest.mark.parametrize("variant", ATTENTION_VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sdpa_path_equals_plain_softmax_path(generator, variant, dtype):
    Y, mask = random_batch(generator, n=11, d=13, dtype=dtype)
    W = torch.randn(13, 13, generator=generator, dtype=dtype) / 13**0.5
    fused = attention_step(Y, W, mask, 0.7, variant=variant, use_sdpa=True)
    plain = attention_step(Y, W, mask, 0.7, variant=variant, use_sdpa=False)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    assert (fused - plain).abs().max() < tolerance


def test_variants_match_their_formulas(generator):
    Y = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    W = torch.randn(4, 4, generator=generator, dtype=torch.float64) / 2
    Z = Y @ W
    exact = torch.softmax(Z @ Z.T - 0.5 * Z.pow(2).sum(-1), -1) @ Y
    assert torch.allclose(attention_step(Y, W), exact, atol=1e-12)
    assert torch.allclose(attention_step(Y, W, variant="no_bias"), plain_softmax_attention(Z, Z, Y), atol=1e-12)
    # the authors' forward: softmax(Y W_s Y^T) Y with W_s = W^T W
    authors = torch.softmax(Y @ W.T @ W @ Y.T, -1) @ Y
    assert torch.allclose(attention_step(Y, W, variant="authors"), authors, atol=1e-12)
    with pytest.raises(ValueError, match="attention variant"):
        attention_step(Y, W, variant="nope")


def test_padded_tokens_change_nothing(generator):
    Y, mask = random_batch(generator)
    W = torch.randn(5, 5, generator=generator, dtype=torch.float64) / 2
    junk = Y.clone()
    junk[~mask] = 50 * torch.randn(int((~mask).sum()), 5, generator=generator, dtype=torch.float64)
    for variant in ATTENTION_VARIANTS:
        a, b = attention_step(Y, W, mask, variant=variant), attention_step(junk, W, mask, variant=variant)
        assert torch.allclose(a[mask], b[mask], atol=1e-12)
        assert torch.equal(b[~mask], junk[~mask])  # padded tokens are returned unchanged
    weights = attention_weights(Y, W, mask)
    assert torch.all(weights.masked_select(~mask.unsqueeze(-2).expand_as(weights)) == 0)
    assert torch.allclose(weights.sum(-1), torch.ones_like(weights.sum(-1)))


def test_batched_equals_per_sample(generator):
    Y, mask = random_batch(generator)
    W = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    batched = attention_step(Y, W, mask)
    for i in range(Y.shape[0]):
        real = Y[i, mask[i]]
        assert torch.allclose(batched[i, mask[i]], attention_step(real, W), atol=1e-12)


def test_relu_and_layernorm_steps(generator):
    Y = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    assert torch.equal(relu_step(Y), torch.where(Y > 0, Y, torch.zeros_like(Y)))
    Z = layernorm_projection(Y)
    assert torch.allclose(Z.pow(2).sum(-1), torch.full((4,), 6.0, dtype=torch.float64))


def test_attention_step_is_differentiable(generator):
    Y = torch.randn(2, 5, 8, generator=generator, requires_grad=True)
    W = torch.randn(8, 8, generator=generator, requires_grad=True)
    attention_step(Y, W, torch.ones(2, 5, dtype=torch.bool), 0.5).sum().backward()
    assert torch.isfinite(W.grad).all() and W.grad.abs().sum() > 0


def test_the_feed_forward_step_at_size_one_flips_the_state_along_positive_eigenvectors(generator):
    """docs/theory.md §2.2: the deviation from the minimiser is multiplied by 1 - alpha (1 + lambda)
    along each eigenvector of Wf: at alpha = 1 it changes sign where lambda > 0 (the energy still falls);
    below 1 / (1 + s) it keeps its sign everywhere."""
    d, s = 6, 0.9
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    lambdas = torch.linspace(-s, s, d, dtype=torch.float64)
    Wf, B = (Q * lambdas) @ Q.T, torch.randn(d, generator=generator, dtype=torch.float64)
    minimiser = torch.linalg.solve(Wf + torch.eye(d, dtype=torch.float64), B)  # grad E_ff = Y Wf + Y - B = 0
    Y = minimiser + torch.randn(5, d, generator=generator, dtype=torch.float64)
    for alpha, flips in ((1.0, lambdas > 0), (0.99 / (1 + s), torch.zeros(d, dtype=torch.bool))):
        before, after = (Y - minimiser) @ Q, (ffn_step(Y, Wf, B, alpha) - minimiser) @ Q
        torch.testing.assert_close(after, before * (1 - alpha * (1 + lambdas)), rtol=1e-12, atol=1e-12)
        assert torch.equal((after * before < 0).all(0), flips)
        assert (ffn_energy(ffn_step(Y, Wf, B, alpha), Wf, B) < ffn_energy(Y, Wf, B)).all()
