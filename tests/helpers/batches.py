"""Random inputs for the maths tests."""

import torch


def random_batch(generator, b=3, n=9, d=5, dtype=torch.float64, padded=True):
    """A batch with a mask whose rows keep a different number (>= 2) of real tokens."""
    Y = torch.randn(b, n, d, generator=generator, dtype=dtype)
    mask = torch.ones(b, n, dtype=torch.bool)
    if padded:
        for i in range(b):
            mask[i, max(2, n - 2 * i) :] = False
    return Y, mask
