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
from unfolded.models import StandardTransformer, UnfoldedTransformer

BEFORE = torch.tensor([10.0, -3.0, 0.0], dtype=torch.float64)


def margin(before):
    return DESCENT_TOLERANCE * (1 + before.abs())


def test_a_rise_just_above_the_tolerance_counts_and_one_just_below_does_not():
    above, below = BEFORE + 1.01 * margin(BEFORE), BEFORE + 0.99 * margin(BEFORE)
    assert not non_increasing(BEFORE, above).any()
    assert non_increasing(BEFORE, below).all()
    # the same through the curve summaries (one step per sample, no collapse)
    spread = torch.ones(3, 2, dtype=torch.float64)
    assert curve_summary_row(BEFORE[:, None], above[:, None], spread)["monotone_fraction"] == 0.0
    assert curve_summary_row(BEFORE[:, None], below[:, None], spread)["monotone_fraction"] == 1.0


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


def _trace_table(variant="exact", seed=0, collapse_at=None, rise_at=None, samples=3, layers=4):
    """A tidy energy-curve table like the energy-curves stage writes, with known shares."""
    import numpy as np
    import pandas as pd

    from unfolded.columns import trace_rows
    from unfolded.models import LayerTrace

    energies = torch.tensor([[10.0 - t for t in range(layers + 1)]] * samples, dtype=torch.float64)
    if rise_at is not None:
        energies[0, rise_at] = energies[0, rise_at - 1] + 1.0
    spread = torch.ones(samples, layers + 1, dtype=torch.float64)
    if collapse_at is not None:
        spread[:, collapse_at:] = 1e-6
    before, after = energies[:, :-1], energies[:, 1:]
    middle = before - 0.25 * (before - after)  # the attention sub-step gives a quarter of each change
    trace = LayerTrace(energies, before, middle, after, spread, torch.full((samples, layers), 0.1, dtype=torch.float64))
    rows = trace_rows(trace, list(range(samples)), dataset="toy", variant=variant, seed=seed, relu=True,
                      state="untrained")
    for column in ("alpha_attention", "w_scale", "test_accuracy", "test_loss", "chance_accuracy", "change_W",
                   "change_Wf", "change_B"):
        rows[column] = np.nan
    assert isinstance(rows, pd.DataFrame)
    return rows


def test_curve_summary_and_layer_decomposition_of_a_known_table():
    import pandas as pd

    from unfolded.summaries import curve_summary, layer_decomposition

    table = pd.concat([_trace_table("exact", collapse_at=2), _trace_table("authors", rise_at=3)], ignore_index=True)
    assert len(table) == 2 * 3 * 5 and table["step_before"].isna().sum() == 2 * 3
    summary = curve_summary(table).set_index("variant")
    assert summary.loc["exact", "monotone_fraction"] == 1.0 and summary.loc["exact", "strict_fraction"] == 1.0
    assert summary.loc["exact", "active_fraction"] == pytest.approx(2 / 4)
    assert summary.loc["exact", "collapse_layer"] == 2
    # the rise at layer 3 of sample 0: one of 12 steps, and layer 4 falls from the raised value by 2
    assert summary.loc["authors", "monotone_fraction"] == pytest.approx(11 / 12)
    assert pd.isna(summary.loc["authors", "collapse_layer"]) and summary.loc["authors", "active_fraction"] == 1.0
    assert summary.loc["exact", "attention_share"] == pytest.approx(0.25)
    layers = layer_decomposition(table)
    exact = layers[layers["variant"] == "exact"].set_index("layer")
    assert list(exact.index) == [1, 2, 3, 4] and (exact["samples"] == 3).all()
    assert exact.loc[1, "attention_decrease"] == pytest.approx(0.25) and exact.loc[1, "ffn_decrease"] == pytest.approx(0.75)
    assert exact.loc[1, "total_decrease"] == pytest.approx(1.0)
    assert exact.loc[2, "active_share"] == 1.0 and exact.loc[3, "active_share"] == 0.0  # spread fell at layer 2


def test_select_regime_prefers_the_setting_closest_to_the_paper():
    import pandas as pd

    from unfolded.curves import select_regime

    rows = []
    for phase in ("selection", "confirmation"):
        for alpha, scale, active in ((1.0, 1.0, 0.2), (0.5, 1.0, 0.6), (0.5, 2.0, 0.9), (0.25, 1.0, 1.0)):
            rows.append({"phase": phase, "alpha_attention": alpha, "w_scale": scale, "active_fraction": active,
                         "strict_fraction_active": 1.0})
    table = pd.DataFrame(rows)
    pick = select_regime(table, 0.5, 0.5)
    assert (pick["alpha_attention"], pick["w_scale"]) == (0.5, 1.0) and pick["confirmed"] and pick["candidates"] == 3
    # exactly at the threshold passes; a step that does nothing (no strict decrease) does not
    table.loc[table["alpha_attention"] == 1.0, "active_fraction"] = 0.5
    assert select_regime(table, 0.5, 0.5)["alpha_attention"] == 1.0
    table.loc[table["alpha_attention"] == 1.0, "strict_fraction_active"] = 0.49
    assert select_regime(table, 0.5, 0.5)["alpha_attention"] == 0.5
    # the pick fails on a confirmation seed
    table.loc[(table["phase"] == "confirmation") & (table["alpha_attention"] == 0.5) & (table["w_scale"] == 1.0),
              "active_fraction"] = 0.1
    assert not select_regime(table, 0.5, 0.5)["confirmed"]
    assert select_regime(table.assign(active_fraction=0.0), 0.5, 0.5)["alpha_attention"] is None


def test_parameter_changes_and_chance_accuracy():
    from types import SimpleNamespace

    from unfolded.traces import chance_accuracy, energy_parameters, parameter_changes

    torch.manual_seed(0)
    module = SimpleNamespace(encoder=UnfoldedTransformer(4, 2, tied=False))
    start = energy_parameters(module)
    with torch.no_grad():
        module.encoder.layers[0].W.mul_(1.5)  # layer 1: |dW| / |W| = 0.5; layer 2 unchanged
        module.encoder.layers[1].B.add_(module.encoder.layers[1].B)  # layer 2: |dB| / |B| = 1
    changes = parameter_changes(start, module)
    assert changes["change_W"] == pytest.approx(0.25) and changes["change_B"] == pytest.approx(0.5)
    assert changes["change_Wf"] == 0.0
    standard = SimpleNamespace(encoder=StandardTransformer(4, 1, num_heads=2))
    changes = parameter_changes(energy_parameters(standard), standard)
    assert set(changes) == {"change_W", "change_Wf", "change_B"} and all(math.isnan(v) for v in changes.values())
    assert chance_accuracy(torch.tensor([0, 1, 1, 2])) == 0.5


def test_a_step_exactly_at_the_tolerance_is_not_a_rise():
    """The rule is strict: a rise is after > before + tolerance; equality is still non-increasing."""
    from unfolded.diagnostics import _margin

    before = torch.tensor([0.0, 3.0, -7.0], dtype=torch.float64)
    at = before + _margin(before)
    assert non_increasing(before, at).all()
    below = before - _margin(before)
    assert not strict_decrease(before, below).any()  # exactly at the tolerance is not a strict decrease
    assert active_steps(torch.tensor([[COLLAPSE_THRESHOLD, 0.0]], dtype=torch.float64)).tolist() == [[True]]


def test_summaries_sort_their_curves_name_missing_seeds_and_carry_curve_attributes():
    import pandas as pd

    from unfolded.summaries import curve_summary, layer_decomposition

    unfolded = _trace_table("exact")
    unfolded.loc[:, ["test_accuracy", "chance_accuracy", "change_W"]] = [0.7, 0.5, 0.01]
    standard = _trace_table("standard_tied")
    standard["step_middle"] = float("nan")  # a standard layer has no attention sub-step energy
    table = pd.concat([standard, unfolded], ignore_index=True).iloc[::-1].drop(columns="seed")
    summary = curve_summary(table)
    assert list(summary["variant"]) == ["exact", "standard_tied"] and (summary["seed"] == -1).all()
    exact, standard_row = summary.iloc[0], summary.iloc[1]
    assert exact["test_accuracy"] == 0.7 and exact["chance_accuracy"] == 0.5 and exact["change_W"] == 0.01
    assert pd.isna(standard_row["test_accuracy"]) and pd.isna(standard_row["change_B"])
    assert exact["attention_share"] == pytest.approx(0.25) and exact["attention_share_active"] == pytest.approx(0.25)
    assert pd.isna(standard_row["attention_share"]) and pd.isna(standard_row["attention_share_active"])
    layers = layer_decomposition(table)
    assert set(layers["variant"]) == {"exact"} and (layers["seed"] == -1).all()
    assert list(layers["layer"]) == [1, 2, 3, 4] and layers["active_share"].eq(1.0).all()


def test_attention_share_over_active_steps_and_its_empty_cases():
    before = torch.tensor([[4.0, 3.0]], dtype=torch.float64)
    after = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    attention = torch.tensor([[-0.5, -0.2]], dtype=torch.float64)
    spread = torch.tensor([[1.0, 1e-6, 1e-6]], dtype=torch.float64)  # only the first step is active
    row = curve_summary_row(before, after, spread, attention)
    assert row["attention_share_active"] == pytest.approx(0.5) and row["attention_share"] == pytest.approx(0.7 / 3)
    collapsed = curve_summary_row(before, after, torch.zeros(1, 3, dtype=torch.float64), attention)
    assert math.isnan(collapsed["attention_share_active"])
    flat = curve_summary_row(before, before, torch.ones(1, 3, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))
    assert math.isnan(flat["attention_share"]) and math.isnan(flat["attention_share_active"])
    # a median spread exactly at the threshold is not collapsed
    assert collapse_layer(torch.tensor([[1.0, COLLAPSE_THRESHOLD]], dtype=torch.float64)) is None


def test_trace_rows_divide_the_spread_by_its_first_layer():
    from unfolded.columns import trace_rows
    from unfolded.models import LayerTrace

    energies = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
    trace = LayerTrace(energies, energies[:, :1], energies[:, :1], energies[:, 1:],
                       torch.tensor([[2.0, 0.5]], dtype=torch.float64), torch.tensor([[0.3]], dtype=torch.float64))
    rows = trace_rows(trace, [7], dataset="toy")
    assert list(rows["relative_spread"]) == [1.0, 0.25] and list(rows["sample"]) == [7, 7]
    assert math.isnan(rows["step_before"].iloc[0]) and rows["update"].iloc[1] == pytest.approx(0.3)


def test_relu_indicator_shapes_zero_entries_and_padding():
    from unfolded.energy import relu_indicator

    Y = torch.zeros(2, 3, 4, dtype=torch.float64)
    Y[1, 2, 0] = -1.0
    assert relu_indicator(Y).tolist() == [0.0, math.inf] and relu_indicator(Y).dtype == torch.float64
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert relu_indicator(Y, mask).tolist() == [0.0, 0.0]  # the negative entry is padding
    assert relu_indicator(Y[1]).shape == () and relu_indicator(Y[1]).item() == math.inf


def test_select_regime_never_passes_a_curve_without_active_steps():
    import pandas as pd

    from unfolded.curves import select_regime

    table = pd.DataFrame([{"phase": phase, "alpha_attention": 1.0, "w_scale": 1.0, "active_fraction": 0.9,
                           "strict_fraction_active": float("nan")} for phase in ("selection", "confirmation")])
    pick = select_regime(table, 0.5, 0.5)
    assert pick == {"alpha_attention": None, "w_scale": None, "confirmed": False, "candidates": 0}


def test_the_tolerances_are_tight_in_absolute_terms():
    """A loosened tolerance (say 1e-3 relative) would hide real rises: pin what must count."""
    from unfolded.claims import Tally

    one = torch.tensor([1.0, -50.0, 1e4], dtype=torch.float64)
    assert not non_increasing(one, one + 1e-7 * (1 + one.abs())).any()  # a rise of 1e-7 relative is a rise
    assert strict_decrease(one, one - 1e-7 * (1 + one.abs())).all()
    tally = Tally()
    tally.descent(one, one + 1e-8 * (1 + one.abs()))  # the claims are stricter still
    assert tally.violations == 3
    assert COLLAPSE_THRESHOLD <= 1e-3 and DESCENT_TOLERANCE <= 1e-9


def test_counting_rules_compare_plain_python_numbers_in_float64():
    """Energies and spreads may arrive as Python floats; they are compared in float64. A rise of 1e-8
    at energy 1 is five times the tolerance, yet float32 cannot tell 1 + 1e-8 from 1."""
    assert not bool(non_increasing([1.0], [1.0 + 1e-8])[0])
    assert bool(strict_decrease([1.0], [1.0 - 1e-8])[0])
    below = COLLAPSE_THRESHOLD * (1 - 5e-9)
    assert bool(torch.tensor([below], dtype=torch.float32)[0] >= COLLAPSE_THRESHOLD)  # float32 would call it active
    assert not bool(active_steps([[1.0, below, 1.0]])[0, 1])
    assert collapse_layer([[1.0, below], [1.0, below], [1.0, below]]) == 1
    row = curve_summary_row([[1.0, 1.0]], [[1.0 + 1e-8, 1.0 - 1e-8]], [[1.0, 1.0, 1.0]], attention_change=[[0.1, -0.3]])
    assert row["monotone_fraction"] == 0.5 and row["strict_fraction"] == 0.5
    total = -((1.0 + 1e-8 - 1.0) + (1.0 - 1e-8 - 1.0))  # float64 arithmetic, as the rule does
    assert row["attention_share"] == pytest.approx(-(0.1 - 0.3) / total, rel=1e-12)


def test_summary_of_curves_without_an_attention_split_holds_nan_shares():
    """A standard model's curve has no attention sub-step: its shares are NaN floats, also when it is
    the only curve in the table; a missing curve attribute column reads as NaN."""
    from unfolded.summaries import curve_summary

    standard = _trace_table("standard_tied").drop(columns="test_loss")
    standard["step_middle"] = float("nan")
    row = curve_summary(standard).iloc[0]
    for column in ("attention_share", "attention_share_active", "test_loss"):
        assert isinstance(row[column], float) and math.isnan(row[column]), column


def test_curves_with_a_missing_learning_rate_are_kept_and_judged_per_sample():
    """Energy-curve rows carry no learning rate (NaN): grouping must keep them, and a step's activity is
    read from the same sample's previous layer."""
    import pandas as pd

    from unfolded.summaries import curve_summary, layer_decomposition

    collapsed = _trace_table("exact", collapse_at=2).assign(lr=float("nan"))
    trained = _trace_table("exact", seed=1).assign(lr=0.01)
    table = pd.concat([trained, collapsed], ignore_index=True)
    summary = curve_summary(table)
    assert len(summary) == 2 and summary["lr"].isna().sum() == 1
    layers = layer_decomposition(table)
    nan_lr = layers[layers["lr"].isna()].set_index("layer")
    assert list(nan_lr.index) == [1, 2, 3, 4]
    assert nan_lr.loc[2, "active_share"] == 1.0 and nan_lr.loc[3, "active_share"] == 0.0


def test_parameter_changes_refuse_models_of_different_depth():
    from types import SimpleNamespace

    from unfolded.traces import energy_parameters, parameter_changes

    two = SimpleNamespace(encoder=UnfoldedTransformer(4, 2, tied=False))
    three = SimpleNamespace(encoder=UnfoldedTransformer(4, 3, tied=False))
    with pytest.raises(ValueError):
        parameter_changes(energy_parameters(two), three)


def test_select_regime_passes_a_strict_share_exactly_at_its_threshold():
    import pandas as pd

    from unfolded.curves import select_regime

    table = pd.DataFrame([{"phase": phase, "alpha_attention": 1.0, "w_scale": 1.0, "active_fraction": 0.9,
                           "strict_fraction_active": 0.5} for phase in ("selection", "confirmation")])
    assert select_regime(table, 0.5, 0.5)["alpha_attention"] == 1.0


def test_the_energy_before_a_step_is_read_in_float64_too():
    """1 + 3e-8 is 1 in float32: read in float32, a step to 1 + 1e-8 would look like a rise of 1e-8
    instead of a fall of 2e-8."""
    before, after = [[1.0 + 3e-8]], [[1.0 + 1e-8]]
    assert bool(strict_decrease(before[0], after[0])[0]) and bool(non_increasing(before[0], after[0])[0])
    row = curve_summary_row(before, after, [[1.0, 1.0]])
    assert row["strict_fraction"] == 1.0 and row["max_increase"] == 0.0


def test_curve_summary_orders_its_rows_by_curve_whatever_the_input_order():
    import pandas as pd

    from unfolded.summaries import curve_summary

    table = pd.concat([_trace_table("z_last"), _trace_table("a_first"), _trace_table("m_middle")], ignore_index=True)
    assert list(curve_summary(table)["variant"]) == ["a_first", "m_middle", "z_last"]


def test_select_regime_with_zero_minimums_passes_a_curve_without_active_steps():
    """With both minimums at 0 nothing is required, so a curve without active steps (no strict share)
    passes; the missing share counts as 0, not as a failure."""
    import pandas as pd

    from unfolded.curves import select_regime

    table = pd.DataFrame([{"phase": phase, "alpha_attention": 1.0, "w_scale": 1.0, "active_fraction": 0.0,
                           "strict_fraction_active": float("nan")} for phase in ("selection", "confirmation")])
    assert select_regime(table, 0.0, 0.0)["alpha_attention"] == 1.0
