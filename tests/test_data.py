"""The data layer on small fixtures in the real sources' formats; no network is used."""

import multiprocessing
import os
import pickle
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from unfolded.config import load_config
from unfolded.data import DataUnavailable, collate, fetch, prepare
from unfolded.data.cache import cached, entry_ok
from unfolded.data.text import polarity_task, tokenize

GLOVE_WORDS = {"good": 0.5, "bad": -0.5, "movie": 0.1, "The": 0.2, ",": 0.0, "not": -0.1}


def config_for(cache: Path, **sources) -> dict:
    return load_config({"data": {"cache_dir": str(cache), "sources": {k: str(v) for k, v in sources.items()}}})


@pytest.fixture
def imdb_source(tmp_path):
    """A local dataset in the hub's layout (parquet per split), loadable by datasets.load_dataset."""
    root = tmp_path / "imdb_source" / "plain_text"
    root.mkdir(parents=True)
    texts = ["The movie was good<br />good , good", "bad bad movie", "not good", "The plot , zyzzyva"]
    frame = pd.DataFrame({"text": texts, "label": [1, 0, 0, 1]})
    frame.to_parquet(root / "train-00000-of-00001.parquet")
    frame.iloc[:2].to_parquet(root / "test-00000-of-00001.parquet")
    return tmp_path / "imdb_source"


@pytest.fixture
def glove_archive(tmp_path):
    """A GloVe-format archive: 'word v1 ... v300' per line, one word containing a space."""
    path = tmp_path / "glove.840B.300d.zip"
    lines = [f"{word} " + " ".join([str(value)] * 300) for word, value in GLOVE_WORDS.items()]
    lines.append("two words " + " ".join(["9"] * 300))
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("glove.840B.300d.txt", "\n".join(lines) + "\n")
    return path


def test_tokenizer_removes_line_breaks_and_keeps_case():
    assert tokenize("Great<br /><br />film, isn't it?") == ["Great", "film", ",", "isn't", "it", "?"]


def test_imdb_from_hf_layout_with_glove(tmp_path, imdb_source, glove_archive):
    cache = tmp_path / "cache"
    config = config_for(cache, imdb=imdb_source, glove=glove_archive)
    assert "cached" in fetch("imdb", config)
    data = prepare("imdb", load_config({"data": {**config["data"], "validation_fraction": 0.25}}))
    assert data.kind == "tokens" and data.vectors.shape[1] == 300
    assert sum(data.sizes().values()) == 6 and data.sizes()["test"] == 2
    vocabulary = data.meta["vocabulary"]
    assert data.vectors.shape[0] == vocabulary
    assert data.meta["without_vector"] == vocabulary - 6  # <pad>, <unk>, was, plot, zyzzyva, + 'the'-less words
    # a word with a GloVe vector gets exactly that vector
    sequences = data.splits["train"][0] + data.splits["val"][0]
    assert all(s.dtype == torch.long for s in sequences)
    found = {round(float(v[0]), 3) for v in data.vectors}
    assert {0.5, -0.5, 0.1, 0.2} <= found


def test_cache_is_reused_without_the_source(tmp_path, imdb_source, glove_archive):
    cache = tmp_path / "cache"
    config = config_for(cache, imdb=imdb_source, glove=glove_archive)
    fetch("imdb", config)
    first = prepare("imdb", config)
    stamp = (cache / "raw" / "imdb" / "train.parquet").stat().st_mtime_ns
    for path in imdb_source.rglob("*.parquet"):
        path.unlink()
    glove_archive.unlink()
    fetch("imdb", config)  # a no-op: the cache entry is valid
    second = prepare("imdb", config)
    assert (cache / "raw" / "imdb" / "train.parquet").stat().st_mtime_ns == stamp
    assert torch.equal(first.vectors, second.vectors)


def test_corrupted_entry_is_rebuilt(tmp_path):
    calls = []

    def build(path):
        calls.append(1)
        path.write_text("payload")

    target = tmp_path / "entry.txt"
    cached(target, build)
    target.write_text("tampered")
    assert not entry_ok(target)
    cached(target, build)
    assert target.read_text() == "payload" and len(calls) == 2


def _slow_build(target: str, log: str) -> None:
    def build(path):
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        path.write_bytes(b"x" * 1000)

    cached(Path(target), build)


@pytest.mark.cli
def test_concurrent_fetch_builds_once(tmp_path):
    target, log = tmp_path / "shared.bin", tmp_path / "builds.log"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_slow_build, args=(str(target), str(log))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert all(worker.exitcode == 0 for worker in workers)
    assert len(log.read_text().split()) == 1
    assert entry_ok(target) and target.read_bytes() == b"x" * 1000
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.cli
def test_offline_error_is_fast_and_says_what_to_do(tmp_path):
    env = {**os.environ, "UNFOLDED_CACHE": str(tmp_path / "empty"), "UNFOLDED_OFFLINE": "1"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "unfolded", "data", "fetch", "sst2"], env=env,
                            capture_output=True, text=True)
    assert time.perf_counter() - start < 10
    assert result.returncode == 3
    for part in ("sst2", str(tmp_path / "empty" / "raw" / "sst2"), "python -m unfolded data fetch sst2"):
        assert part in result.stderr
    with pytest.raises(DataUnavailable, match="python -m unfolded data fetch imdb"):
        prepare("imdb", config_for(tmp_path / "empty"))


def _write_idx(path: Path, array: np.ndarray) -> None:
    kind = 0x08
    header = struct.pack(">HBB", 0, kind, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_in_torchvision_format(tmp_path):
    raw = tmp_path / "cache" / "torchvision" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (count,)))
    data = prepare("mnist", load_config({"data": {"cache_dir": str(tmp_path / "cache"), "validation_fraction": 0.25}}))
    assert data.sizes() == {"train": 9, "val": 3, "test": 5}
    assert data.splits["train"][0][0].shape == (16, 49)
    assert 0.0 <= float(torch.stack(data.splits["test"][0]).min()) and float(torch.stack(data.splits["test"][0]).max()) <= 1.0


def test_cifar10_in_torchvision_format(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    folder = tmp_path / "cache" / "torchvision" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (3, 3072)).astype(np.uint8), "labels": [0, 1, 2]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    # torchvision verifies the real files' MD5 sums, which tiny fixtures cannot match
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: Path(path).exists())
    data = prepare("cifar10", load_config({"data": {"cache_dir": str(tmp_path / "cache")}}))
    assert sum(len(s[1]) for s in data.splits.values()) == 18
    assert data.splits["test"][0][0].shape == (16, 192)


def test_polarity_labels_follow_the_rule():
    task = polarity_task(50, 10, 40, 4, 10, 8, seed=3)
    polar, negations = 40 // 5, 40 // 20
    positive, negative = set(range(2, 2 + polar)), set(range(2 + polar, 2 + 2 * polar))
    negation = set(range(2 + 2 * polar, 2 + 2 * polar + negations))
    for ids, label in zip(*task["train"], strict=True):
        score, flip = 0, False
        for token in ids.tolist():
            if token in negation:
                flip = True
            elif token in positive or token in negative:
                sign = 1 if token in positive else -1
                score += -sign if flip else sign
                flip = False
        assert score != 0 and int(score > 0) == int(label)
    again = polarity_task(50, 10, 40, 4, 10, 8, seed=3)
    assert torch.equal(task["vectors"], again["vectors"])


def test_digits_and_identical_splits_for_the_same_seed():
    config = load_config({})
    a, b = prepare("digits", config), prepare("digits", config)
    assert a.sizes() == {"train": 1294, "val": 144, "test": 359}
    assert torch.equal(a.splits["val"][1], b.splits["val"][1])
    other = prepare("digits", load_config({"data": {"split_seed": 5}}))
    assert not torch.equal(a.splits["val"][1], other.splits["val"][1])


def test_collate_pads_and_masks():
    batch = collate([(torch.tensor([3, 4, 5]), 1), (torch.tensor([7]), 0)])
    assert batch["inputs"].tolist() == [[3, 4, 5], [7, 0, 0]]
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["labels"].tolist() == [1, 0]
    features = collate([(torch.ones(2, 4), 0), (torch.ones(3, 4), 1)])
    assert features["inputs"].shape == (2, 3, 4) and features["mask"].sum().item() == 5


def test_datamodule_shuffles_reproducibly():
    from unfolded.data import SequenceDataModule

    data = prepare("polarity", load_config({"data": {"polarity": {"n_train": 60, "n_test": 20}}}))
    first = [b["labels"].tolist() for b in SequenceDataModule(data, 8, seed=1).train_dataloader()]
    second = [b["labels"].tolist() for b in SequenceDataModule(data, 8, seed=1).train_dataloader()]
    assert first == second
    assert len(list(SequenceDataModule(data, 8, eval_batch_size=8).test_dataloader())) == 3


def test_a_malicious_pickle_in_the_cache_is_refused_and_runs_nothing(tmp_path, imdb_source, glove_archive):
    """Someone who can write to a shared cache plants a pickle and rewrites its manifest to match."""
    import json
    import pickle

    from unfolded.data import UnsafeCacheEntry
    from unfolded.data.cache import sha256

    cache = tmp_path / "cache"
    config = config_for(cache, imdb=imdb_source, glove=glove_archive)
    fetch("imdb", config)
    prepare("imdb", config)
    (entry,) = (cache / "prepared").glob("imdb-*.pt")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(entry, "wb") as handle:
        pickle.dump({"splits": Payload()}, handle)
    manifest = entry.with_name(entry.name + ".manifest.json")
    record = json.loads(manifest.read_text())
    record.update({"size": entry.stat().st_size, "sha256": sha256(entry)})
    manifest.write_text(json.dumps(record))
    with pytest.raises(UnsafeCacheEntry, match="weights_only=True"):
        prepare("imdb", config)
    assert not marker.exists()


@pytest.mark.cli
def test_the_data_module_is_a_top_level_class_and_importing_the_data_layer_stays_light():
    code = ("import sys, unfolded.data as d; assert 'lightning' not in sys.modules; "
            "from unfolded.data.datamodule import SequenceDataModule as S; assert d.SequenceDataModule is S; "
            "import lightning; assert issubclass(S, lightning.LightningDataModule)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("task", ["polarity", "order", "equality", "digits"])
def test_a_test_seed_draws_a_fresh_test_split_and_null_keeps_todays(task):
    """``data.<task>.test_seed``: a fresh test split (for digits another partition); null is the split every earlier
    study used, byte for byte; train items, vectors and the validation carve stay put for the generated tasks."""
    default = prepare(task, load_config({"data": {"split_seed": 0}}))
    explicit = prepare(task, load_config({"data": {"split_seed": 0, task: {"test_seed": None}}}))
    fresh = prepare(task, load_config({"data": {"split_seed": 0, task: {"test_seed": 7}}}))
    again = prepare(task, load_config({"data": {"split_seed": 0, task: {"test_seed": 7}}}))

    def same(a, b, split):
        (xa, ya), (xb, yb) = a.splits[split], b.splits[split]
        return torch.equal(ya, yb) and all(torch.equal(p, q) for p, q in zip(xa, xb, strict=True))

    assert same(default, explicit, "test") and same(fresh, again, "test")
    assert not same(default, fresh, "test")
    assert len(fresh.splits["test"][1]) == len(default.splits["test"][1])
    if task != "digits":
        assert same(default, fresh, "train") and same(default, fresh, "val")
        assert torch.equal(default.vectors, fresh.vectors)
        # the fresh items come from the same generator: balanced labels where the task balances them
        if task in ("order", "equality"):
            assert int(fresh.splits["test"][1].sum()) * 2 == len(fresh.splits["test"][1])
