"""Images as token sequences: scikit-learn's bundled digits (offline) and torchvision's MNIST and
CIFAR-10 (downloaded once into the cache). Each image becomes a sequence of non-overlapping
``patch x patch`` patches (row-major), one flattened patch per token, scaled to [0, 1]."""

from __future__ import annotations

from pathlib import Path

import torch

from .cache import DataUnavailable, check_online

__all__ = ["TORCHVISION", "digits", "fetch_torchvision", "patches", "torchvision_split"]

#: name -> (torchvision class name, folder the class checks for)
TORCHVISION = {"mnist": ("MNIST", "MNIST/raw"), "cifar10": ("CIFAR10", "cifar-10-batches-py")}


def patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, (H/patch)(W/patch), C patch^2)`` patch tokens."""
    N, C, H, W = images.shape
    if H % patch or W % patch:
        raise ValueError(f"patch size {patch} must divide the image size {H}x{W}")
    tiles = images.unfold(2, patch, patch).unfold(3, patch, patch)  # (N, C, H/p, W/p, p, p)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(N, (H // patch) * (W // patch), C * patch * patch)


def digits(patch: int, test_fraction: float, seed: int) -> dict:
    """The 1,797 8x8 handwritten digits shipped with scikit-learn, split with a seeded permutation."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    labels = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(labels)))
    tokens = patches(images, patch)
    test, train = order[:n_test], order[n_test:]
    return {"train": (list(tokens[train]), labels[train]), "test": (list(tokens[test]), labels[test]), "classes": 10}


def _dataset_class(name: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, TORCHVISION[name][0])


def fetch_torchvision(name: str, cache: Path) -> Path:
    """Download ``name`` with torchvision into ``cache/torchvision`` (torchvision checks its files)."""
    root = cache / "torchvision"
    cls = _dataset_class(name)
    try:
        for train in (True, False):
            cls(str(root), train=train, download=False)
        return root
    except RuntimeError:
        pass
    check_online("ossci-datasets.s3.amazonaws.com" if name == "mnist" else "www.cs.toronto.edu",
                 f"dataset {name!r}", root / TORCHVISION[name][1], f"python -m unfolded data fetch {name}")
    for train in (True, False):
        cls(str(root), train=train, download=True)
    return root


def torchvision_split(name: str, cache: Path, train: bool, patch: int, limit: int | None) -> tuple[list, torch.Tensor]:
    """One split as patch tokens, read by torchvision from the cache (no download here)."""
    root = cache / "torchvision"
    try:
        dataset = _dataset_class(name)(str(root), train=train, download=False)
    except RuntimeError as error:
        raise DataUnavailable(
            f"dataset {name!r} is not in the cache ({root / TORCHVISION[name][1]}): {error} "
            f"Fetch it on a machine with internet: `python -m unfolded data fetch {name}`."
        ) from None
    data = torch.as_tensor(dataset.data)
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)  # (N, C, H, W)
    labels = torch.as_tensor(dataset.targets, dtype=torch.long)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return list(patches(images.float() / 255.0, patch)), labels
