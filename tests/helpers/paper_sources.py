"""Small local copies of the paper's sources, in the layouts the real downloads have.

* IMDB as the Hugging Face hub stores it: ``plain_text/{train,test,unsupervised}-00000-of-00001.parquet``
  with columns ``text`` and ``label`` (the unsupervised split's labels are -1);
* GLUE SST-2 as the hub stores it: ``data/{train,validation,test}-00000-of-00001.parquet`` with
  columns ``idx``, ``sentence`` and ``label`` (the test split's labels are -1);
* ``glove.840B.300d.zip`` holding ``glove.840B.300d.txt``: ``word v1 ... v300`` per line, including
  tokens with spaces inside (``. . .``) and a line with a different number of fields, as the real
  840B file has.

The texts are drawn from a fixed vocabulary so that the sentiment is learnable and every stage of
the paper configuration has real work to do.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

POSITIVE = ["good", "great", "wonderful", "moving", "funny", "brilliant"]
NEGATIVE = ["bad", "awful", "boring", "dull", "weak", "terrible"]
NEUTRAL = ["The", "movie", "film", "plot", "actors", "was", "is", "and", "a", "story", "it", ",", ".", "!", "the"]
#: in no GloVe line: these stay unknown and get random vectors
UNSEEN = ["zyzzyva", "Qwerty"]
#: lines of the real 840B file whose token holds spaces
SPACED = [". . .", "at name@domain.com", "- - -"]


def _texts(rng: np.random.Generator, count: int, length: tuple[int, int], html: bool) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for _ in range(count):
        label = int(rng.integers(2))
        polar = POSITIVE if label else NEGATIVE
        words = list(rng.choice(NEUTRAL + UNSEEN, size=int(rng.integers(*length))))
        for position in rng.choice(len(words), size=max(1, len(words) // 5), replace=False):
            words[position] = str(rng.choice(polar))
        text = " ".join(words)
        if html and rng.random() < 0.5:
            text = text.replace(" . ", " .<br /><br />", 1)
        texts.append(text)
        labels.append(label)
    return texts, labels


def write_imdb(root: Path, seed: int = 0, sizes: dict[str, int] | None = None) -> Path:
    """The IMDB layout; returns the folder to pass as ``data.sources.imdb``."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 64, "test": 32, "unsupervised": 8}
    folder = root / "plain_text"
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in sizes.items():
        texts, labels = _texts(rng, count, (20, 60), html=True)
        if split == "unsupervised":
            labels = [-1] * count
        frame = pd.DataFrame({"text": texts, "label": np.asarray(labels, dtype=np.int64)})
        frame.to_parquet(folder / f"{split}-00000-of-00001.parquet", index=False)
    return root


def write_sst2(root: Path, seed: int = 1, sizes: dict[str, int] | None = None) -> Path:
    """The GLUE SST-2 layout; returns the folder to pass as ``data.sources.sst2``."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 64, "validation": 32, "test": 16}
    folder = root / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in sizes.items():
        texts, labels = _texts(rng, count, (5, 15), html=False)
        if split == "test":
            labels = [-1] * count
        frame = pd.DataFrame({"idx": np.arange(count, dtype=np.int32), "sentence": [t.lower() + " " for t in texts],
                              "label": np.asarray(labels, dtype=np.int64)})
        frame.to_parquet(folder / f"{split}-00000-of-00001.parquet", index=False)
    return root


def write_glove_840b(path: Path, seed: int = 2, dim: int = 300) -> Path:
    """A ``glove.840B.300d.zip`` covering the fixture vocabulary (less :data:`UNSEEN`)."""
    rng = np.random.default_rng(seed)
    known = {word: 0.3 for word in POSITIVE} | {word: -0.3 for word in NEGATIVE} | {word: 0.0 for word in NEUTRAL}
    known |= {word.lower(): value for word, value in known.items()}
    lines = []
    for word, value in known.items():
        vector = rng.normal(0.0, 0.3, dim)
        vector[0] += 4 * value  # one direction carries the sentiment
        lines.append(word + " " + " ".join(f"{x:.5f}" for x in vector))
    for word in SPACED:
        lines.append(word + " " + " ".join(f"{x:.5f}" for x in rng.normal(0.0, 0.3, dim)))
    lines.append("broken " + " ".join("0.1" for _ in range(dim - 7)))  # a short line, as in the real file
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("glove.840B.300d.txt", "\n".join(lines) + "\n")
    return path


def write_paper_sources(root: Path) -> dict[str, str]:
    """All three sources under ``root``; returns ``data.sources`` for the configuration."""
    return {
        "imdb": str(write_imdb(root / "imdb")),
        "sst2": str(write_sst2(root / "sst2")),
        "glove": str(write_glove_840b(root / "glove" / "glove.840B.300d.zip")),
    }
