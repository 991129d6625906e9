#!/usr/bin/env bash
# Every GPU check in one go, for a machine with a CUDA GPU (about 2-8 minutes):
#   benchmarks/gpu_check.sh            # the CUDA-marked tests (when pytest is installed), then gpu_check.py
#   benchmarks/gpu_check.sh --dry-run  # the same code at toy sizes on the CPU, to check it beforehand
# Runs from the repository root with PYTHONPATH=src: no install, no snakemake, no data downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python}"
DRY_RUN=()
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=(--dry-run); fi
if "$PYTHON" -c "import pytest" 2>/dev/null; then
  # on a CPU the cuda tests are skipped; the bf16 CPU tests run in both cases
  "$PYTHON" -m pytest -q -p no:cacheprovider -m "cuda or not cuda" tests/test_precision.py
else
  echo "pytest not installed: skipping the CUDA-marked tests (gpu_check.py repeats their checks)"
fi
"$PYTHON" benchmarks/gpu_check.py "${DRY_RUN[@]}"
