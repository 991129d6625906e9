import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


def random_batch(generator, b=3, n=9, d=5, dtype=torch.float64, padded=True):
    """A batch with a mask whose rows keep a different number (>= 2) of real tokens."""
    Y = torch.randn(b, n, d, generator=generator, dtype=dtype)
    mask = torch.ones(b, n, dtype=torch.bool)
    if padded:
        for i in range(b):
            mask[i, max(2, n - 2 * i) :] = False
    return Y, mask


def pytest_collection_modifyitems(config, items):
    """Tests marked cuda need a CUDA GPU: skipped here, run by benchmarks/gpu_check.sh on a GPU machine."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
