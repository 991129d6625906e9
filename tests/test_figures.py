import json

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from unfolded.artifacts import provenance, save_figure
from unfolded.config import AlternatingConfig, ApolloniusConfig, KappaConfig, load_config
from unfolded.figures import DRAW as FIGURES
from unfolded.synthetic import alternating_table, apollonius_table, kappa_table

SMOKE = load_config("config/smoke.yaml")


@pytest.fixture(scope="module")
def tables():
    return {
        "fig1_apollonius": (apollonius_table(ApolloniusConfig.from_config(SMOKE)),),
        "fig2_alternating_trace": (alternating_table(AlternatingConfig.from_config(SMOKE)),),
        "fig3_alternating_energy": (alternating_table(AlternatingConfig.from_config(SMOKE)),),
        "fig4_kappa_regions": (kappa_table(KappaConfig.from_config(SMOKE)),),
    }


EXPECTED_AXES = {"fig1_apollonius": 4, "fig2_alternating_trace": 3, "fig3_alternating_energy": 2, "fig4_kappa_regions": 2}


@pytest.mark.parametrize("name", sorted(EXPECTED_AXES))
def test_figure_from_tiny_tables(tmp_path, tables, name):
    options = {"kappas": [0.2, 0.8]} if name == "fig4_kappa_regions" else {}
    figure = FIGURES[name](*tables[name], **options)
    assert len(figure.axes) == EXPECTED_AXES[name]  # fig2: two panels and a colour bar
    assert all(ax.get_xlabel() for ax in figure.axes[:2])
    paths = [tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"]
    save_figure(figure, paths, provenance(name, {"x": 1}, 0), dpi=50)
    plt.close(figure)
    image = Image.open(paths[0])
    assert image.format == "PNG" and image.size[0] > 100
    assert json.loads(image.text["Description"])["config_hash"]
    assert paths[1].read_bytes().startswith(b"%PDF")
    assert not list(tmp_path.glob(".*partial*"))


def test_figure_files_are_deterministic(tmp_path, tables):
    for run in ("a", "b"):
        figure = FIGURES["fig3_alternating_energy"](*tables["fig3_alternating_energy"])
        save_figure(figure, [tmp_path / run / "f.png", tmp_path / run / "f.pdf"], {"seed": 0}, dpi=50)
        plt.close(figure)
    for name in ("f.png", "f.pdf"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_trained_figures_from_tiny_tables(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for variant in ("authors", "exact", "exact_active"):
        for relu, state in ((False, "untrained"), (True, "untrained"), (True, "trained")):
            for sample in range(6):
                energies = np.cumsum(-rng.random(5))  # a decreasing curve
                spread = 0.05 ** np.arange(5) if variant == "exact" else np.ones(5)  # exact collapses at layer 3
                rows += [{"dataset": "toy", "variant": variant, "relu": relu, "state": state, "seed": 0,
                          "sample": sample, "layer": layer, "energy": e,
                          "step_before": energies[layer - 1] if layer else np.nan, "step_middle": np.nan,
                          "step_after": e if layer else np.nan, "relative_spread": spread[layer],
                          "alpha_attention": 0.5, "w_scale": 1.0, "test_accuracy": 0.61, "chance_accuracy": 0.5,
                          "change_W": 0.1, "change_Wf": 0.2, "change_B": 0.3}
                         for layer, e in enumerate(energies)]
    curves = pd.DataFrame(rows)
    figure = FIGURES["fig5_energy_untrained"](curves, dataset="toy")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert len(titles) == 6 and "non-increasing: 100.0% of 24 steps" in titles[0]
    assert "active (spread >= 1e-3): 100.0%" in titles[0] and "active (spread >= 1e-3): 75.0%" in titles[2]
    trained = FIGURES["fig6_energy_trained"](curves, dataset="toy")
    titles = [ax.get_title() for ax in trained.axes if ax.get_title()]
    assert len(titles) == 3 and all("test accuracy 0.610 (majority class 0.500)" in t for t in titles)
    assert "W 0.1, Wf 0.2, B 0.3" in titles[0]
    runs = pd.DataFrame({"dataset": ["toy"] * 4, "model": ["unfolded_tied", "unfolded_tied", "standard_tied", "standard_tied"],
                         "seed": [0, 1, 0, 1], "test_accuracy": [0.7, 0.72, 0.8, 0.79]})
    assert len(FIGURES["fig_accuracy"](runs).axes) == 1
    metrics = pd.DataFrame({"dataset": "toy", "model": ["unfolded_tied"] * 3, "step": [1, 2, 3],
                            "val_accuracy": [0.5, 0.6, 0.7]})
    figure = FIGURES["fig_training_curves"](metrics)
    save_figure(figure, [tmp_path / "curves.png"], {"seed": 0}, dpi=50)
    assert Image.open(tmp_path / "curves.png").format == "PNG"
    plt.close("all")
