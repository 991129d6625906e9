"""Property-based tests: each descent theorem holds on hypothesis-drawn instances (float64)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unfolded.energy import ffn_energy, layernorm_projection, pairwise_energy
from unfolded.steps import attention_step, ffn_step, relu_step
from unfolded.synthetic import QuadraticPair, kappa_ratio

SETTINGS = settings(max_examples=60, deadline=None)
TOL = 1e-10


@st.composite
def instance(draw):
    """Sizes, scales, a seed for the tensors, and a symmetric Wf with spectrum in [low, high]."""
    n = draw(st.integers(2, 10))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.05, 5.0))
    low = draw(st.floats(-0.99, 0.0))
    high = draw(st.floats(0.0, 3.0))
    g = torch.Generator().manual_seed(seed)
    Y = scale * torch.randn(1, n, d, generator=g, dtype=torch.float64)
    W = torch.randn(d, draw(st.integers(1, d + 2)), generator=g, dtype=torch.float64) * draw(st.floats(0.1, 2.0))
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    spectrum = low + (high - low) * torch.rand(d, generator=g, dtype=torch.float64)
    Wf = (Q * spectrum) @ Q.T
    B = torch.randn(d, generator=g, dtype=torch.float64)
    return Y, W, Wf, B, 1.0 + spectrum.max().item()


def no_increase(before, after, slack=0.0):
    return bool((after <= before - slack + TOL * (1 + before.abs())).all())


@SETTINGS
@given(instance(), st.floats(1e-3, 1.0))
def test_attention_step_descends_pairwise_energy(inst, alpha):
    Y, W, *_ = inst
    assert no_increase(pairwise_energy(Y, W), pairwise_energy(attention_step(Y, W, alpha=alpha), W))


@SETTINGS
@given(instance(), st.floats(1e-3, 0.999))
def test_ffn_step_descends(inst, fraction):
    Y, _, Wf, B, L = inst
    alpha = fraction * 2 / L
    assert no_increase(ffn_energy(Y, Wf, B), ffn_energy(ffn_step(Y, Wf, B, alpha), Wf, B))


@SETTINGS
@given(instance(), st.floats(1e-3, 0.999))
def test_relu_prox_step_sufficient_decrease(inst, fraction):
    Y, _, Wf, B, L = inst
    Y = Y.abs()
    alpha = fraction * 2 / L
    after = relu_step(ffn_step(Y, Wf, B, alpha))
    slack = (1 / alpha - L / 2) * (after - Y).pow(2).sum()
    assert no_increase(ffn_energy(Y, Wf, B), ffn_energy(after, Wf, B), slack)


@SETTINGS
@given(instance(), st.floats(1e-3, 1.0))
def test_layernorm_projected_step_descends(inst, fraction):
    Y, _, Wf, B, L = inst
    if Y.shape[-1] < 2:
        return
    Y = layernorm_projection(Y)
    after = layernorm_projection(ffn_step(Y, Wf, B, fraction / L))
    assert no_increase(ffn_energy(Y, Wf, B), ffn_energy(after, Wf, B))


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.floats(0.05, 0.95))
def test_apollonius_lemma(seed, d, fraction):
    g = torch.Generator().manual_seed(seed)

    def spd(low, high):
        Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        return (Q * (low + (high - low) * torch.rand(d, generator=g, dtype=torch.float64))) @ Q.T

    pair = QuadraticPair(
        spd(0.1, 2.0), spd(0.3, 2.0), torch.randn(d, generator=g, dtype=torch.float64),
        torch.randn(d, generator=g, dtype=torch.float64),
    )
    alpha = fraction * pair.step_bound()
    C = pair.constant(alpha)
    points = pair.y_f + C * torch.randn(256, d, generator=g, dtype=torch.float64)
    inside = points[pair.ratio(points) <= C]
    after = pair.h_step(inside, alpha)
    assert no_increase(pair.f(inside) + pair.h(inside), pair.f(after) + pair.h(after))


@SETTINGS
@given(instance(), st.floats(0.01, 0.99))
def test_kappa_lemma_relu_keeps_a_share_of_the_step(inst, fraction):
    Y, _, Wf, B, L = inst
    x = Y[0].abs()
    step = fraction * 2 / L * (x @ Wf + x - B)
    moved = (relu_step(x - step) - x).pow(2).sum(-1)
    assert bool((moved >= (1 + kappa_ratio(x, step)) * step.pow(2).sum(-1) - TOL).all())
