import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from unfolded.artifacts import read_provenance
from unfolded.claims import CLAIMS
from unfolded.config import ConfigError, load_config, validate_config

# (config, key that the error must name)
BAD_CONFIGS = [
    ({"claims": {"trials": "many"}}, "config.claims.trials"),
    ({"claims": {"trials": -3}}, "config.claims.trials"),
    ({"claims": {"trials": 0}}, "config.claims.trials"),
    ({"claims": {"trails": 10}}, "config.claims"),
    ({"claim": {}}, "config"),
    ({"synthetic": {"alternating": {"lr": -0.1}}}, "config.synthetic.alternating.lr"),
    ({"synthetic": {"alternating": {"n": 1.5}}}, "config.synthetic.alternating.n"),
    ({"synthetic": {"kappa": {"kappas": []}}}, "config.synthetic.kappa.kappas"),
    ({"synthetic": {"kappa": {"kappas": [0.2, 1.5]}}}, "config.synthetic.kappa.kappas[1]"),
    ({"synthetic": {"apollonius": {"panels": [{"curvature_h": 1.0}]}}}, "config.synthetic.apollonius.panels[0]"),
    ({"synthetic": {"apollonius": {"panels": [{"C": 3.0, "curvature_h": 1.0}]}}}, "config.synthetic.apollonius.panels[0].C"),
    ({"figures": {"formats": ["jpg"]}}, "config.figures.formats[0]"),
    ({"figures": {"formats": []}}, "config.figures.formats"),
    ({"figures": {"include": ["fig9"]}}, "config.figures.include[0]"),
    ({"figures": {"dpi": 10}}, "config.figures.dpi"),
    ([1, 2], "config"),
    ({"data": {"glove": "42B"}}, "config.data.glove"),
    ({"data": {"max_length": 1}}, "config.data.max_length"),
    ({"datasets": []}, "config.datasets"),
    ({"datasets": ["wikitext"]}, "config.datasets[0]"),
    ({"train": {"seeds": []}}, "config.train.seeds"),
    ({"train": {"models": ["bert"]}}, "config.train.models[0]"),
    ({"train": {"lr": 0}}, "config.train.lr"),
    ({"energy_curves": {"samples": 0}}, "config.energy_curves.samples"),
    ({"energy_curves": {"variants": ["official"]}}, "config.energy_curves.variants[0]"),
    ({"train": {"alpha_attention": 2.5}}, "config.train.alpha_attention"),
    ({"train": {"alpha_ffn": 1.1}}, "config.train.alpha_ffn"),  # above 2 / (1 + 0.95)
    ({"energy_curves": {"active_regime": {"alpha_attention": 2.5}}}, "config.energy_curves.active_regime.alpha_attention"),
    ({"energy_curves": {"regime_search": {"selection_seeds": [0, 1], "confirmation_seeds": [1, 2]}}},
     "config.energy_curves.regime_search"),
]


def test_at_least_twenty_bad_configs():
    assert len(BAD_CONFIGS) + 1 >= 20  # + the missing config file below


@pytest.mark.parametrize("config,key", BAD_CONFIGS, ids=[k for _, k in BAD_CONFIGS])
def test_bad_config_names_the_key(config, key):
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert f"{key}:" in str(error.value)


def test_step_size_bounds_are_one_constant():
    from unfolded.bounds import ATTENTION_STEP_BOUND, ffn_step_bound
    from unfolded.config import schema

    properties = schema()["properties"]
    assert properties["train"]["properties"]["alpha_attention"]["maximum"] == ATTENTION_STEP_BOUND
    regime = properties["energy_curves"]["properties"]["active_regime"]["properties"]
    assert regime["alpha_attention"]["maximum"] == ATTENTION_STEP_BOUND
    assert validate_config({"train": {"alpha_attention": ATTENTION_STEP_BOUND}})["train"]["alpha_attention"] == 2
    just_below = 0.999 * ffn_step_bound(0.5)
    assert validate_config({"train": {"alpha_ffn": just_below, "spectral_bound": 0.5}})
    with pytest.raises(ConfigError, match="alpha_ffn"):
        validate_config({"train": {"alpha_ffn": ffn_step_bound(0.5), "spectral_bound": 0.5}})


def test_defaults_fill_and_files_load(tmp_path):
    config = validate_config({})
    assert config["claims"]["trials"] == 200 and config["synthetic"]["alternating"]["n"] == 500
    assert load_config("config.yaml") == config  # the default file spells out the defaults
    assert load_config('{"claims": {"trials": 7}}')["claims"]["trials"] == 7
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "unfolded", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_rejects_bad_config_fast():
    start = time.perf_counter()
    result = run_cli("synthetic", "kappa", "--config", '{"synthetic": {"kappa": {"alpha": "big"}}}', "--out", "x.parquet")
    assert result.returncode == 2
    assert "config.synthetic.kappa.alpha" in result.stderr
    assert time.perf_counter() - start < 10


def test_cli_help_lists_stages():
    result = run_cli("--help")
    assert result.returncode == 0
    for stage in ("claims", "synthetic", "figure", "config"):
        assert stage in result.stdout


def test_claims_stage_writes_table_and_provenance(tmp_path):
    csv, markdown = tmp_path / "claims.csv", tmp_path / "claims.md"
    result = run_cli("claims", "--config", '{"claims": {"trials": 3, "seed": 1}}', "--csv", str(csv), "--markdown", str(markdown))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(csv)
    assert list(table["claim"]) == list(CLAIMS)
    assert {"trials", "violations", "max_increase", "verdict", "conditions"} <= set(table.columns)
    assert (table.loc[table["kind"].isin(["identity", "theorem"]), "violations"] == 0).all()
    meta = json.loads((tmp_path / "claims.provenance.json").read_text())
    assert meta["seed"] == 1 and meta["config"] == {"trials": 3, "seed": 1} and meta["versions"]["torch"]
    assert "| attention_descent" in markdown.read_text()


def test_synthetic_stage_provenance(tmp_path):
    out = tmp_path / "kappa.parquet"
    result = run_cli("synthetic", "kappa", "--config", "config/smoke.yaml", "--out", str(out))
    assert result.returncode == 0, result.stderr
    meta = read_provenance(out)
    assert meta["seed"] == 23333 and meta["stage"] == "synthetic/kappa" and "kappas" not in meta["config"]
    assert meta["git_commit"] and meta["device"].startswith(("cpu", "cuda"))
