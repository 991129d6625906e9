"""End-to-end through a real single-node SLURM cluster (tests/slurm/cluster.sh).

Run with ``python -m pytest -m slurm``; the fixture starts the cluster (installing slurm-wlm and
munge with apt when missing) and stops the daemons it started. Where the cluster cannot be
installed or started, the test is skipped with the reason printed, never silently.
"""

import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers.workflow import ROOT, copy_workflow, snakemake

pytestmark = pytest.mark.slurm

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
TARGETS = [
    "results/data/apollonius.parquet",
    "results/data/alternating.parquet",
    "results/data/kappa.parquet",
    "results/runs/polarity/unfolded_tied/lr0.01/seed0/provenance.json",
]


@pytest.fixture(scope="module")
def cluster():
    started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=900)
    if started.returncode == 2:
        pytest.skip(f"single-node SLURM cluster unavailable: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    yield
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, text=True, timeout=120)


def finished_job_ids() -> set[str]:
    listing = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listing.stdout.splitlines() if line.split()[1] == "COMPLETED"}


def test_workflow_runs_through_sbatch(cluster, tmp_path):
    before = finished_job_ids()
    slurm_dir = copy_workflow(tmp_path / "slurm")
    start = time.perf_counter()
    result = snakemake(slurm_dir, *TARGETS, "--configfile", "config/smoke.yaml", profile="profiles/slurm-local",
                       timeout=900, cores="4")
    wall = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"SLURM end-to-end wall time: {wall:.1f} s")
    # every job went through sbatch: SLURM logs per rule and completed jobs in squeue's history
    root = slurm_dir / ".snakemake" / "slurm_logs"
    submitted = {path.relative_to(root).parts[0] for path in root.rglob("*.log")}
    assert "rule_synthetic" in submitted
    # train jobs travel in group "runs" (up to 16 per submission): one group log instead of one per rule
    assert any(name.startswith("group_runs") for name in submitted), submitted
    assert len(finished_job_ids() - before) >= 4

    local_dir = copy_workflow(tmp_path / "local")
    local = snakemake(local_dir, *TARGETS, "--configfile", "config/smoke.yaml")
    assert local.returncode == 0, local.stderr[-3000:]
    for target in TARGETS[:3]:
        pd.testing.assert_frame_equal(pd.read_parquet(slurm_dir / target), pd.read_parquet(local_dir / target))
    run = "results/runs/polarity/unfolded_tied/lr0.01/seed0/energies.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(slurm_dir / run), pd.read_parquet(local_dir / run))
    assert Path(slurm_dir / "results/runs/polarity/unfolded_tied/lr0.01/seed0/model.ckpt").stat().st_size > 0
