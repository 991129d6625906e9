import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


def pytest_collection_modifyitems(config, items):
    """Tests marked cuda need a CUDA GPU: skipped here, run by benchmarks/gpu_check.sh on a GPU machine."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
