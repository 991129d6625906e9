import json

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from unfolded.artifacts import provenance, save_figure
from unfolded.config import AlternatingConfig, ApolloniusConfig, KappaConfig, load_config
from unfolded.figures import FIGURES
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
    for variant in ("paper", "exact"):
        for relu, state in ((False, "untrained"), (True, "untrained"), (True, "trained")):
            for sample in range(6):
                energies = np.cumsum(-rng.random(5))  # a decreasing curve
                rows += [{"dataset": "toy", "variant": variant, "relu": relu, "state": state, "sample": sample,
                          "layer": layer, "energy": e} for layer, e in enumerate(energies)]
    curves = pd.DataFrame(rows)
    figure = FIGURES["fig5_energy_untrained"](curves, dataset="toy")
    assert len(figure.axes) == 4 and "100.0%" in figure.axes[0].get_title()
    assert len(FIGURES["fig6_energy_trained"](curves, dataset="toy").axes) == 2
    runs = pd.DataFrame({"dataset": ["toy"] * 4, "model": ["unfolded_tied", "unfolded_tied", "standard_tied", "standard_tied"],
                         "seed": [0, 1, 0, 1], "test_accuracy": [0.7, 0.72, 0.8, 0.79]})
    assert len(FIGURES["fig_accuracy"](runs).axes) == 1
    metrics = pd.DataFrame({"dataset": "toy", "model": ["unfolded_tied"] * 3, "step": [1, 2, 3],
                            "val_accuracy": [0.5, 0.6, 0.7]})
    figure = FIGURES["fig_training_curves"](metrics)
    save_figure(figure, [tmp_path / "curves.png"], {"seed": 0}, dpi=50)
    assert Image.open(tmp_path / "curves.png").format == "PNG"
    plt.close("all")
