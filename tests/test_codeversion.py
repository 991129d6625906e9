"""The rerun keys: which modules each stage's digest covers, and what the Snakefile imports at parse time."""

import subprocess
import sys

import pytest

from unfolded.codeversion import entry_point, module_closure, stage_digest, stages

PRESENTATION = {"summaries.py", "stats.py", "archive.py", "figures.py", "report"}


def _files(stage: str) -> set[str]:
    _, modules = entry_point(stage)
    return {path.name if path.parent.name != "report" else "report" for path in module_closure(modules)}


@pytest.mark.parametrize("stage", ["train", "probe", "energy-curves", "regime-search", "claims", "synthetic",
                                   "energy-plugins", "recipe-search", "learned-models"])
def test_computing_stages_never_run_presentation_code(stage):
    assert not PRESENTATION & _files(stage), sorted(PRESENTATION & _files(stage))


def test_the_summary_stages_run_what_they_summarise_with():
    assert {"summaries.py", "stats.py", "report"} <= _files("accuracy")
    assert "encoders.py" in _files("train") and "runs.py" in _files("train") and "curves.py" not in _files("train")
    assert "curves.py" in _files("energy-curves") and "runs.py" not in _files("energy-curves")


def test_every_rule_stage_has_an_entry_and_an_unknown_one_is_named():
    for stage in ("train", "accuracy", "documents", "page", "figure", "combine", "energy-summary"):
        assert stage in stages() and len(stage_digest(stage)) == 16
    with pytest.raises(KeyError, match="unknown stage 'trian'"):
        entry_point("trian")


@pytest.mark.cli
def test_what_the_snakefile_imports_at_parse_time_loads_neither_torch_nor_pandas():
    code = ("import sys, unfolded.archive, unfolded.codeversion, unfolded.config, unfolded.downloads, unfolded.grid, "
            "unfolded.registry, unfolded.report.blocks; import unfolded.codeversion as c; c.stage_digest('train'); "
            "unfolded.grid.run_specs(unfolded.config.load_config(None)); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas', 'lightning')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_plugin_curves_run_no_training_code():
    assert not {"training.py", "encoders.py", "runs.py", "curves.py"} & _files("energy-plugins")
    assert "energy_plugins.py" in _files("energy-plugins")
