import numpy as np
import pandas as pd
import pytest

from unfolded.config import AlternatingConfig, ApolloniusConfig, KappaConfig, load_config
from unfolded.synthetic import AlternatingQuadratics, alternating_table, apollonius_table, kappa_table

SMOKE = load_config("config/smoke.yaml")


def test_apollonius_table_shows_the_lemma():
    table = apollonius_table(ApolloniusConfig.from_config(load_config({"synthetic": {"apollonius": {"grid_step": 0.05}}})))
    assert len(table) == 2 * 140 * 140
    for _, panel in table.groupby("panel"):
        assert panel["inside"].any() and panel["rise"].any()
        assert not (panel["rise"] & panel["inside"]).any()  # no increase inside the region
    # C < 1: y_f* inside its region; C > 1: y_h* outside
    first = table.iloc[0]
    assert first["C"] == 0.7


def test_alternating_table_against_the_exact_minimum():
    cfg = AlternatingConfig.from_config(SMOKE)
    table = alternating_table(cfg)
    trace = table[table["kind"] == "trace"]
    exact = table[table["kind"] == "exact_minimum"]["total"].item()
    reference = table[table["kind"] == "gd_reference"]["total"].item()
    assert len(trace) == cfg.steps + 1 and len(table) == cfg.steps + 3
    assert (trace["total"] >= exact - 1e-9).all()
    assert reference == pytest.approx(exact, rel=1e-6)
    assert list(trace["component"][:3]) == ["initial", "e1", "e2"]


def test_exact_minimiser_has_zero_gradient():
    import torch

    problem = AlternatingQuadratics.draw(torch.Generator().manual_seed(0), 12, 5)
    Y = problem.minimiser()
    assert (problem.grad1(Y) + problem.grad2(Y)).abs().max() < 1e-10


def test_kappa_regions_are_nested_and_the_share_bound_holds():
    table = kappa_table(KappaConfig.from_config(SMOKE))
    assert len(table) == 40 * 40
    assert (table["r"] <= 0).all()
    regions = [table["r"] >= -kappa for kappa in (0.2, 0.4, 0.6, 0.8)]
    for small, large in zip(regions, regions[1:], strict=False):
        assert not (small & ~large).any()
    feasible = table[table["feasible"]]
    assert (feasible["kept_share"] >= 1 + feasible["r"] - 1e-12).all()


@pytest.mark.parametrize("build,config_type", [
    (apollonius_table, ApolloniusConfig), (alternating_table, AlternatingConfig), (kappa_table, KappaConfig),
])
def test_same_seed_same_table(build, config_type):
    a, b = build(config_type.from_config(SMOKE)), build(config_type.from_config(SMOKE))
    pd.testing.assert_frame_equal(a, b)
    assert not a.isna().any().any()
    assert np.isfinite(a.select_dtypes("number").to_numpy()).all()
