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
    ({"train": {"learning_rates": {"unfolded": [0]}}}, "config.train.learning_rates.unfolded[0]"),
    ({"train": {"learning_rates": {"transformer": [0.1]}}}, "config.train.learning_rates"),
    ({"train": {"positions": "rotary"}}, "config.train.positions"),
    ({"train": {"variants": ["wide"]}}, "config.train.variants[0]"),
    ({"train": {"datasets": ["imbd"]}}, "config.train.datasets[0]"),
    ({"study": {"id": "../x"}}, "config.study.id"),
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


@pytest.mark.cli
def test_defaults_fill_and_files_load(tmp_path):
    config = validate_config({})
    assert config["claims"]["trials"] == 200 and config["synthetic"]["alternating"]["n"] == 500
    assert load_config("config.yaml") == config  # the default file spells out the defaults
    assert load_config('{"claims": {"trials": 7}}')["claims"]["trials"] == 7
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "unfolded", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.cli
def test_cli_rejects_bad_config_fast():
    start = time.perf_counter()
    result = run_cli("synthetic", "kappa", "--config", '{"synthetic": {"kappa": {"alpha": "big"}}}', "--out", "x.parquet")
    assert result.returncode == 2
    assert "config.synthetic.kappa.alpha" in result.stderr
    assert time.perf_counter() - start < 10


@pytest.mark.cli
def test_cli_help_lists_stages():
    result = run_cli("--help")
    assert result.returncode == 0
    for stage in ("claims", "synthetic", "figure", "config"):
        assert stage in result.stdout


@pytest.mark.cli
def test_claims_stage_writes_table_and_provenance(tmp_path):
    csv, markdown = tmp_path / "claims.csv", tmp_path / "claims.md"
    result = run_cli("claims", "--config", '{"claims": {"trials": 3, "seed": 1}}', "--csv", str(csv))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(csv)
    assert list(table["claim"]) == list(CLAIMS)
    assert {"trials", "violations", "max_increase", "verdict", "conditions"} <= set(table.columns)
    assert (table.loc[table["kind"].isin(["identity", "theorem"]), "violations"] == 0).all()
    meta = json.loads((tmp_path / "claims.provenance.json").read_text())
    assert meta["seed"] == 1 and meta["config"] == {"trials": 3, "seed": 1} and meta["versions"]["torch"]
    result = run_cli("page", "claims", "--csv", str(csv), "--markdown", str(markdown))
    assert result.returncode == 0, result.stderr
    page = markdown.read_text()
    assert "| attention_descent" in page and "3 trials each, seed 1; failed" in page and "): none." in page


@pytest.mark.cli
def test_synthetic_stage_provenance(tmp_path):
    out = tmp_path / "kappa.parquet"
    result = run_cli("synthetic", "kappa", "--config", "config/smoke.yaml", "--out", str(out))
    assert result.returncode == 0, result.stderr
    meta = read_provenance(out)
    assert meta["seed"] == 23333 and meta["stage"] == "synthetic/kappa" and "kappas" not in meta["config"]
    assert meta["git_commit"] and meta["device"].startswith(("cpu", "cuda"))


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "unfolded", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def kappa_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("tables") / "kappa.parquet"
    assert _cli("synthetic", "kappa", "--config", "config/smoke.yaml", "--out", str(out)).returncode == 0
    return out


@pytest.mark.parametrize("args,needle", [
    (["claims", "--csv", "c.csv", "--trials", "-3"], "--trials must be a positive integer"),
    (["train", "--config", "config/smoke.yaml", "--dataset", "polarity", "--model", "unfolded_tied", "--seed", "-1",
      "--run-dir", "r", "--checkpoint-dir", "k"], "--seed must be a non-negative integer"),
    (["train", "--dataset", "imbd", "--model", "unfolded_tied", "--seed", "0", "--run-dir", "r", "--checkpoint-dir", "k"],
     "Did you mean imdb?"),
    (["config", "--config", "claims: {trials: -3}"], "config.claims.trials"),
    (["config", "--config", "claims: {trials: 7"], "inline config is not valid YAML at line 1"),
    (["config", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
    (["data", "info", "imbd"], "unknown dataset imbd"),
    (["data", "fetch"], "name at least one dataset"),
])
@pytest.mark.cli
def test_bad_cli_input_gives_one_line_error(tmp_path, args, needle):
    result = _cli(*[str(tmp_path / a) if a in ("c.csv", "r", "k") else a for a in args])
    assert result.returncode in (2, 3)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert "'" not in errors[0].split("error:", 1)[1][:2]  # no stray quotes around the message


@pytest.mark.cli
def test_figure_rejects_a_wrong_table_and_an_unknown_format(tmp_path, kappa_table):
    result = _cli("figure", "fig1_apollonius", "--data", str(kappa_table), "--out", str(tmp_path / "f.png"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is not the right table" in result.stderr and "synthetic/apollonius" in result.stderr
    result = _cli("figure", "fig4_kappa_regions", "--data", str(kappa_table), "--out", str(tmp_path / "f.jpg"))
    assert result.returncode == 2 and "one of .png, .pdf, .svg" in result.stderr
    assert not (tmp_path / "f.jpg").exists()


@pytest.mark.cli
def test_malformed_yaml_file_is_named_with_line_and_column(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("claims:\n  trials: [1\n")
    result = _cli("config", "--config", str(broken))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"config file {broken} is not valid YAML at line 3, column 1" in result.stderr


@pytest.mark.cli
def test_data_info_lists_every_dataset_and_carries_on(tmp_path):
    result = _cli("data", "info", "--config", json.dumps({"data": {"cache_dir": str(tmp_path)}}))
    assert result.returncode == 0, result.stderr
    names = [line.split(":")[0] for line in result.stdout.splitlines()]
    assert names == ["polarity", "order", "equality", "digits", "imdb", "sst2", "mnist", "cifar10", "glove-840B",
                     "glove-6B"]
    assert "missing (about 2 GB to download into" in result.stdout and str(tmp_path) in result.stdout
    result = _cli("data", "info", "imdb", "polarity", "glove-6B", "--config", json.dumps({"data": {"cache_dir": str(tmp_path)}}))
    assert result.returncode == 3  # imdb and glove-6B are missing, but polarity is still described
    assert "polarity: generated; tokens, splits" in result.stdout and "glove-6B: missing" in result.stdout


def test_every_stage_has_a_description_and_help_for_every_option():
    from unfolded.cli import build_parser

    stages = build_parser()._subparsers._group_actions[0].choices
    for name, parser in stages.items():
        assert parser.description, f"{name} --help has no description"
        undocumented = [action.dest for action in parser._actions if not action.help and action.dest != "help"]
        assert not undocumented, f"{name}: options without help: {undocumented}"


def test_old_names_of_the_authors_version_still_work_and_warn():
    with pytest.warns(FutureWarning, match="'official' is deprecated, use 'authors'"):
        config = load_config({"train": {"attention_variant": "official"}})
    assert config["train"]["attention_variant"] == "authors"
    with pytest.warns(FutureWarning, match="'paper' is deprecated"):
        config = load_config({"energy_curves": {"variants": ["paper", "exact"]}})
    assert config["energy_curves"]["variants"] == ["authors", "exact"]


def test_the_typed_training_section_has_every_schema_key_and_no_defaults_of_its_own():
    import dataclasses

    from unfolded.config import TrainConfig, schema

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert set(fields) == set(schema()["properties"]["train"]["properties"])
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields.values())
    config = load_config({"train": {"width": 48, "learning_rates": {"unfolded": [0.02]}}})
    train = TrainConfig.from_config(config)
    assert train.width == 48 and train.learning_rates["unfolded"] == [0.02]
    assert train.as_dict() == config["train"]  # the plain mapping Lightning stores as hyperparameters
