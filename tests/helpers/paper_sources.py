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


# ----------------------------------------------------------------------------------------------
# The layouts users keep on disk: GLUE's SST-2 folder, Stanford's aclImdb (folder and tarball),
# Stanford's glove.6B.zip with several dimensions
# ----------------------------------------------------------------------------------------------


def write_glue_sst2(root: Path, seed: int = 3, sizes: dict[str, int] | None = None, swap_columns: bool = False) -> Path:
    """GLUE's ``SST-2/`` folder: ``train.tsv`` and ``dev.tsv`` with a header row (``sentence<TAB>label``, or the
    other order with ``swap_columns``), lowercased phrases with quotes left as they are, and an unlabelled
    ``test.tsv`` (``index<TAB>sentence``) that readers must ignore. Returns the folder."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 40, "dev": 12}
    folder = root / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in sizes.items():
        texts, labels = _texts(rng, count, (4, 12), html=False)
        texts = [t.lower().replace(" it ", ' " it " ', 1) for t in texts]  # a stray quote, as GLUE's phrases have
        header, rows = ("label\tsentence", [f"{label}\t{text} " for text, label in zip(texts, labels, strict=True)]) \
            if swap_columns else ("sentence\tlabel", [f"{text} \t{label}" for text, label in zip(texts, labels, strict=True)])
        (folder / f"{split}.tsv").write_text(header + "\n" + "\n".join(rows) + "\n")
    (folder / "test.tsv").write_text("index\tsentence\n0\tno label here\n1\tnor here\n")
    return folder


def _aclimdb_reviews(seed: int, sizes: dict[str, int]):
    """(split, label, filename, text) of Stanford's layout: ``<id>_<rating>.txt``, pos ratings 7-10, neg 1-4."""
    rng = np.random.default_rng(seed)
    reviews = []
    for split, count in sizes.items():
        texts, labels = _texts(rng, count, (20, 40), html=True)
        for index, (text, label) in enumerate(zip(texts, labels, strict=True)):
            rating = int(rng.integers(7, 11)) if label else int(rng.integers(1, 5))
            reviews.append((split, "pos" if label else "neg", f"{index}_{rating}.txt", text))
    return reviews


def write_aclimdb_folder(root: Path, seed: int = 4, sizes: dict[str, int] | None = None) -> Path:
    """The unpacked ``aclImdb/`` folder, with ``unsup/`` and the vocabulary files the readers must skip;
    returns the folder that holds ``aclImdb``."""
    sizes = sizes or {"train": 24, "test": 16}
    base = root / "aclImdb"
    for split, label, name, text in _aclimdb_reviews(seed, sizes):
        (base / split / label).mkdir(parents=True, exist_ok=True)
        (base / split / label / name).write_text(text, encoding="utf-8")
    (base / "train" / "unsup").mkdir(parents=True, exist_ok=True)
    (base / "train" / "unsup" / "0_0.txt").write_text("an unlabelled review", encoding="utf-8")
    (base / "imdb.vocab").write_text("the\nmovie\n")
    (base / "train" / "labeledBow.feat").write_text("0 0:1\n")
    return root


def write_aclimdb_tar(path: Path, seed: int = 4, sizes: dict[str, int] | None = None) -> Path:
    """``aclImdb_v1.tar.gz`` with the same members as :func:`write_aclimdb_folder` writes."""
    import io
    import tarfile

    sizes = sizes or {"train": 24, "test": 16}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        def add(name: str, text: str) -> None:
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        for split, label, name, text in _aclimdb_reviews(seed, sizes):
            add(f"aclImdb/{split}/{label}/{name}", text)
        add("aclImdb/train/unsup/0_0.txt", "an unlabelled review")
        add("aclImdb/imdb.vocab", "the\nmovie\n")
    return path


def write_glove_6b(path: Path, dims: tuple[int, ...] = (50, 100), seed: int = 5, numeric_first: bool = True) -> Path:
    """A ``glove.6B.zip`` holding ``glove.6B.<d>d.txt`` for each of ``dims`` (lowercase words, as 6B has); with
    ``numeric_first`` a word that is itself a number comes early, as in the real files."""
    rng = np.random.default_rng(seed)
    known = {word.lower(): 0.3 for word in POSITIVE} | {word.lower(): -0.3 for word in NEGATIVE} \
        | {word.lower(): 0.0 for word in NEUTRAL}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for dim in dims:
            lines = []
            for index, (word, value) in enumerate(known.items()):
                vector = rng.normal(0.0, 0.3, dim)
                vector[0] += 4 * value
                lines.append(word + " " + " ".join(f"{x:.5f}" for x in vector))
                if numeric_first and index == 1:
                    lines.append("1999 " + " ".join(f"{x:.5f}" for x in rng.normal(0.0, 0.3, dim)))
            bundle.writestr(f"glove.6B.{dim}d.txt", "\n".join(lines) + "\n")
    return path
