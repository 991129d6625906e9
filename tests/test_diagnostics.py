"""The counting rules behind the energy-curve shares: each tolerance has teeth on both sides."""

import math

import pytest
import torch

from unfolded.diagnostics import (
    COLLAPSE_THRESHOLD,
    DESCENT_TOLERANCE,
    active_steps,
    collapse_layer,
    curve_summary_row,
    non_increasing,
    strict_decrease,
    token_spread,
)
from unfolded.experiments import monotone_fraction
from unfolded.models import StandardTransformer, UnfoldedTransformer

BEFORE = torch.tensor([10.0, -3.0, 0.0], dtype=torch.float64)


def margin(before):
    return DESCENT_TOLERANCE * (1 + before.abs())


def test_a_rise_just_above_the_tolerance_counts_and_one_just_below_does_not():
    above, below = BEFORE + 1.01 * margin(BEFORE), BEFORE + 0.99 * margin(BEFORE)
    assert not non_increasing(BEFORE, above).any()
    assert non_increasing(BEFORE, below).all()
    # the same through the curve summaries
    energies = torch.stack([BEFORE, above], 1)
    assert monotone_fraction(energies) == 0.0
    assert monotone_fraction(torch.stack([BEFORE, below], 1)) == 1.0


def test_strict_decrease_needs_more_than_the_tolerance():
    assert strict_decrease(BEFORE, BEFORE - 1.01 * margin(BEFORE)).all()
    assert not strict_decrease(BEFORE, BEFORE - 0.99 * margin(BEFORE)).any()
    assert not strict_decrease(BEFORE, BEFORE).any()


def test_active_steps_and_collapse_layer_follow_the_threshold():
    spread = torch.tensor([[1.0, 1.01 * COLLAPSE_THRESHOLD, 0.99 * COLLAPSE_THRESHOLD, 0.0]], dtype=torch.float64)
    assert active_steps(spread).tolist() == [[True, True, False]]
    assert collapse_layer(spread) == 2
    assert collapse_layer(torch.ones(3, 5)) is None
    # the median across samples decides: two of three collapsed at layer 1
    spread = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    assert collapse_layer(spread) == 1


def test_curve_summary_row_counts_each_share():
    before = torch.tensor([[4.0, 3.0, 2.0], [4.0, 4.0, 5.0]], dtype=torch.float64)
    after = torch.tensor([[3.0, 3.0, 2.5], [4.0, 3.0, 4.0]], dtype=torch.float64)
    spread = torch.tensor([[1.0, 0.5, 1e-4, 1e-5], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    attention = torch.tensor([[-0.5, 0.0, 0.0], [0.0, -1.0, -1.0]], dtype=torch.float64)
    row = curve_summary_row(before, after, spread, attention)
    assert row["steps"] == 6 and row["samples"] == 2
    assert row["monotone_fraction"] == pytest.approx(5 / 6)  # one rise (2 -> 2.5)
    assert row["strict_fraction"] == pytest.approx(3 / 6)  # 4->3, 4->3, 5->4
    assert row["active_fraction"] == pytest.approx(5 / 6)  # the third step of sample 0 starts collapsed
    assert row["monotone_fraction_active"] == pytest.approx(5 / 5)
    assert row["strict_fraction_active"] == pytest.approx(3 / 5)
    assert row["median_decrease"] == pytest.approx(0.5)  # decreases 1, 0, -0.5, 0, 1, 1
    assert row["max_increase"] == pytest.approx(0.5)
    assert row["collapse_layer"] is None  # median of (1e-4, 1) is not below the threshold
    assert row["attention_share"] == pytest.approx(2.5 / 2.5)


def test_summary_of_a_fully_collapsed_curve_has_no_active_shares():
    before = torch.ones(2, 3, dtype=torch.float64)
    spread = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2, dtype=torch.float64)
    row = curve_summary_row(before, before, torch.cat([torch.ones(2, 1), spread[:, 1:]], 1))
    assert row["active_fraction"] == pytest.approx(1 / 3)
    spread = torch.zeros(2, 4, dtype=torch.float64)
    row = curve_summary_row(before, before, spread)
    assert row["active_fraction"] == 0.0 and math.isnan(row["strict_fraction_active"])


def test_token_spread_ignores_padding():
    torch.manual_seed(0)
    Y = torch.randn(2, 5, 3, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    spread = token_spread(Y, mask)
    Y2 = Y.clone()
    Y2[1, 3:] = 1e6
    assert torch.equal(token_spread(Y2, mask), spread)
    real = Y[1, :3]
    assert spread[1] == pytest.approx((real - real.mean(0)).norm(dim=-1).max().item())


@pytest.mark.parametrize("tied", [True, False])
def test_trace_judges_each_step_on_the_layer_that_takes_it(tied):
    torch.manual_seed(1)
    model = UnfoldedTransformer(4, 3, tied=tied, regularise_energy=False).double()
    Y = torch.randn(2, 6, 4, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    trace = model.trace(Y, mask)
    out = model(Y, mask)
    assert torch.allclose(trace.energies, out.energies, rtol=1e-12, atol=1e-12)
    state = Y
    for t in range(3):
        layer = model.layer(t)
        assert torch.allclose(trace.before[:, t], layer.energy(state, mask), rtol=1e-12)
        attended = layer.attend(state, mask)
        assert torch.allclose(trace.middle[:, t], layer.energy(attended, mask), rtol=1e-12)
        state = layer(state, mask)
        assert torch.allclose(trace.after[:, t], layer.energy(state, mask), rtol=1e-12)
        assert torch.allclose(trace.spread[:, t + 1], token_spread(state, mask))
    if tied:
        assert torch.allclose(trace.before, trace.energies[:, :-1]) and torch.allclose(trace.after, trace.energies[:, 1:])
    else:  # untied: layer t+1's energy at Y_t differs from the curve's point E_t(Y_t)
        assert not torch.allclose(trace.before[:, 1:], trace.energies[:, 1:-1])


def test_untied_step_judged_on_one_function_can_differ_from_the_curve():
    """A curve can rise between layers only because the function changed: the per-step rule does not count it."""
    torch.manual_seed(0)
    model = UnfoldedTransformer(3, 2, tied=False, regularise_energy=False, alpha_ffn=0.1).double()
    with torch.no_grad():
        model.layers[1].B.add_(50.0)  # layer 2's energy is much larger everywhere
    trace = model.trace(torch.randn(1, 4, 3, dtype=torch.float64).abs())
    assert trace.energies[0, 2] > trace.energies[0, 1]  # the curve rises at layer 2 ...
    assert non_increasing(trace.before, trace.after).all()  # ... but no step raised its own energy


def test_standard_trace_has_probe_energies_and_no_split():
    torch.manual_seed(0)
    model = StandardTransformer(8, 2, num_heads=2).double()
    trace = model.trace(torch.randn(2, 5, 8, dtype=torch.float64))
    assert trace.energies.shape == (2, 3) and torch.isnan(trace.middle).all()
    assert torch.equal(trace.before, trace.energies[:, :-1])


def test_deeper_than_trained_only_for_tied_models():
    tied = UnfoldedTransformer(3, 2, tied=True).double()
    assert tied.trace(torch.rand(1, 4, 3, dtype=torch.float64), num_layers=5).energies.shape == (1, 6)
    with pytest.raises(ValueError, match="untied model has 2 layers"):
        UnfoldedTransformer(3, 2, tied=False).trace(torch.rand(1, 4, 3), num_layers=5)
