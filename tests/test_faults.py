"""Reliability under injected faults: killed jobs, interrupted writes, repeated runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unfolded.artifacts import atomic_path, write_parquet

from helpers.workflow import SNAKEMAKE, copy_workflow, snakemake, workflow_env

RUN = "results/runs/polarity/unfolded_tied/lr0.01/seed0"
LONG_TRAINING = 'train={"max_epochs": 40, "seeds": [0], "patience": null}'  # no early stop: the kill must land mid-training


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [SNAKEMAKE, "--workflow-profile", "none", "--cores", "1", *args],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=workflow_env(workdir),
    )


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.workflow
def test_killed_training_resumes_with_the_same_final_metrics(tmp_path):
    target = f"{RUN}/provenance.json"
    args = (target, "--configfile", "config/smoke.yaml", "--config", LONG_TRAINING, "--rerun-incomplete")
    reference = copy_workflow(tmp_path / "reference")
    assert snakemake(reference, *args).returncode == 0
    expected = json.loads((reference / target).read_text())["summary"]
    assert expected["epochs"] == 40  # the whole budget: a kill after the first checkpoint lands mid-training

    workdir = copy_workflow(tmp_path / "killed")
    process = start_snakemake(workdir, *args)
    checkpoints = workdir / "results" / "checkpoints"
    assert wait_for(lambda: any(checkpoints.rglob("last.ckpt")), 120), "no checkpoint appeared"
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)  # the whole job, Snakemake included, as a node failure would
    process.wait()
    assert not (workdir / target).exists()

    # a killed controller leaves its lock behind: release it, then rerun the same command
    assert snakemake(workdir, *args, "--unlock").returncode == 0
    result = snakemake(workdir, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = json.loads((workdir / target).read_text())["summary"]
    assert resumed["resumed"] is True
    assert resumed["steps"] == expected["steps"]
    assert resumed["test_accuracy"] == expected["test_accuracy"]
    assert resumed["test_loss"] == pytest.approx(expected["test_loss"], abs=1e-6)


@pytest.mark.workflow
def test_killed_stage_leaves_no_complete_looking_output(tmp_path):
    workdir = copy_workflow(tmp_path / "w")
    target = "results/tables/claims.csv"
    args = (target, "--config", 'claims={"trials": 400}')
    process = start_snakemake(workdir, *args)
    log = workdir / "results" / "logs" / "claims.log"
    assert wait_for(lambda: log.exists() and "claims" in log.read_text(errors="replace"), 120)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (workdir / target).exists()  # only a hidden .partial file can be left behind
    assert not (workdir / "results" / "tables" / "claims.md").exists()
    assert snakemake(workdir, *args, "--unlock").returncode == 0
    dry = snakemake(workdir, *args, "-n")
    assert "claims" in dry.stdout + dry.stderr
    result = snakemake(workdir, *args, "--rerun-incomplete")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len((workdir / target).read_text().splitlines()) > 20


def test_interrupted_write_leaves_nothing(tmp_path):
    import pandas as pd

    path = tmp_path / "table.parquet"
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as temporary:
        temporary.write_bytes(b"half a table")
        raise KeyboardInterrupt
    assert not path.exists() and not list(tmp_path.iterdir())
    write_parquet(pd.DataFrame({"a": [1]}), path, {"seed": 0})
    assert pd.read_parquet(path)["a"].tolist() == [1]


def run_stages(directory: Path) -> list[Path]:
    directory.mkdir()
    python = [sys.executable, "-m", "unfolded"]
    outputs = []
    for experiment in ("apollonius", "alternating", "kappa"):
        out = directory / f"{experiment}.parquet"
        subprocess.run([*python, "synthetic", experiment, "--config", "config/smoke.yaml", "--out", str(out)], check=True,
                       capture_output=True)
        outputs.append(out)
    subprocess.run([*python, "claims", "--config", "config/smoke.yaml", "--csv", str(directory / "claims.csv")], check=True,
                   capture_output=True)
    subprocess.run([*python, "train", "--config", "config/smoke.yaml", "--dataset", "digits", "--model", "unfolded_untied",
                    "--seed", "0", "--run-dir", str(directory / "run"), "--checkpoint-dir", str(directory / "ckpt"),
                    "--no-progress"], check=True, capture_output=True)
    subprocess.run([*python, "accuracy", "--runs", str(directory / "run"), "--csv", str(directory / "accuracy.csv"),
                    "--markdown", str(directory / "accuracy.md"), "--timings", str(directory / "timings.csv")],
                   check=True, capture_output=True)
    return [*outputs, directory / "claims.csv", directory / "run" / "energies.parquet", directory / "run" / "metrics.csv",
            directory / "accuracy.csv", directory / "accuracy.md"]


@pytest.mark.workflow
def test_same_config_twice_gives_byte_identical_tables(tmp_path):
    first, second = run_stages(tmp_path / "a"), run_stages(tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two runs"
