"""Text data: the paper's IMDB and SST-2 (Hugging Face ``datasets``), GloVe vectors, and an offline
generated polarity task. Everything ends as token ids plus a frozen embedding matrix.

Tokenisation follows the authors' pipeline as far as docs/theory.md §4.4 says: HTML line breaks removed,
case kept (GloVe 840B is cased), words and punctuation split apart (an approximation of spaCy's
English tokenizer). The vocabulary is the training split's words with at least ``min_freq``
occurrences; a vocabulary word without a GloVe vector gets a random vector with the GloVe
vectors' scale (as fastNLP did for the authors); words outside the vocabulary map to ``<unk>``.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import torch

from .cache import DataUnavailable, cached, check_online, load_tensors

__all__ = ["GLOVE", "HF_DATASETS", "fetch_glove", "fetch_hf_dataset", "glove_vectors", "tokenize"]

PAD, UNK = "<pad>", "<unk>"

#: name -> (hub id, split used for training, split used as test, text column)
HF_DATASETS = {
    "imdb": ("stanfordnlp/imdb", "train", "test", "text"),
    # GLUE SST-2's test split has no labels (all -1), so its validation split serves as test.
    "sst2": ("stanfordnlp/sst2", "train", "validation", "sentence"),
}

#: variant -> (hub repository, archive, member inside the archive); ``6B`` is ``6B-300d``
GLOVE = {
    "840B": ("stanfordnlp/glove", "glove.840B.300d.zip", "glove.840B.300d.txt"),
    **{f"6B-{d}d": ("stanfordnlp/glove", "glove.6B.zip", f"glove.6B.{d}d.txt") for d in (50, 100, 200, 300)},
    "6B": ("stanfordnlp/glove", "glove.6B.zip", "glove.6B.300d.txt"),
}

_TOKEN = re.compile(r"\w+(?:'\w+)?|n't|[^\w\s]")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def tokenize(text: str) -> list[str]:
    """Remove HTML line breaks, keep case, split words from punctuation."""
    return _TOKEN.findall(_BREAK.sub(" ", text))


def fetch_hf_dataset(name: str, cache: Path, source: str | None = None) -> Path:
    """Download ``name`` once and store its train/test splits as parquet under ``cache/raw/name``.

    ``source`` may name a local copy instead of the hub id, in any layout of :mod:`unfolded.data.sources`
    (GLUE's SST-2 folder, Stanford's aclImdb folder or tarball, or parquet files in the hub's layout); the
    SHA-256 of the files read go to ``source.json`` beside the splits.
    """
    hub_id, train_split, test_split, text_column = HF_DATASETS[name]
    destination = raw_location(name, cache, source)

    def build(temporary: Path) -> None:
        import json

        import datasets

        from .sources import detect_layout, file_digests, read_text_source

        if source is None:
            check_online("huggingface.co", f"dataset {name!r} ({hub_id})", destination, f"python -m unfolded data fetch {name}")
        elif detect_layout(name, source) != "hub":
            splits, files = read_text_source(name, source)
            temporary.mkdir(parents=True)
            for split, frame in splits.items():
                frame.to_parquet(temporary / f"{split}.parquet", index=False)
            (temporary / "source.json").write_text(json.dumps(
                {"source": str(source), "resolved": str(Path(source).resolve()), "layout": detect_layout(name, source),
                 "sha256": file_digests(files)}, indent=2, sort_keys=True) + "\n")
            return
        temporary.mkdir(parents=True)
        if source is not None:  # a copy in the hub's layout: say which, beside the splits
            files = sorted(Path(source).rglob("*.parquet"))
            (temporary / "source.json").write_text(json.dumps(
                {"source": str(source), "resolved": str(Path(source).resolve()), "layout": "hub",
                 "sha256": file_digests(files)}, indent=2, sort_keys=True) + "\n")
        for split, out in ((train_split, "train"), (test_split, "test")):
            data = datasets.load_dataset(source or hub_id, split=split)
            data = data.rename_column(text_column, "text") if text_column != "text" else data
            data.select_columns(["text", "label"]).to_parquet(str(temporary / f"{out}.parquet"))

    return cached(destination, build)


def raw_location(name: str, cache: Path, source: str | None = None) -> Path:
    """Where the splits of ``name`` sit in the cache: ``raw/<name>`` for the hub's download and for a local copy
    in the hub's layout, ``raw/<name>-<digest of the copy's path>`` for one in GLUE's or Stanford's layout (so
    that two local copies never share an entry)."""
    import hashlib

    if source is None:
        return cache / "raw" / name
    from ..errors import UserError
    from .cache import entry_ok
    from .sources import detect_layout

    own = cache / "raw" / f"{name}-{hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:12]}"
    shared = cache / "raw" / name
    try:
        layout = detect_layout(name, source)
    except UserError:
        # the copy is gone or changed shape: what the cache holds from this very copy still serves, never an
        # entry another source made (the hub's download shares raw/<name> with copies in the hub's layout)
        if entry_ok(own):
            return own
        if entry_ok(shared) and _entry_source(shared) == str(Path(source).resolve()):
            return shared
        raise
    return shared if layout == "hub" else own


def _entry_source(entry: Path) -> str | None:
    """The local copy a cache entry was read from (its ``source.json``), None for a download."""
    import json

    record = entry / "source.json"
    return json.loads(record.read_text()).get("resolved") if record.exists() else None


def load_raw_text(name: str, cache: Path, source: str | None = None):
    """The cached splits as pandas frames; a clear error (and the fetch command) when absent."""
    import pandas as pd

    from .cache import entry_ok

    destination = raw_location(name, cache, source)
    if not entry_ok(destination):
        raise DataUnavailable(
            f"dataset {name!r} is not in the cache ({destination}). "
            f"Fetch it on a machine with internet: `python -m unfolded data fetch {name}` "
            f"(cache: data.cache_dir or $UNFOLDED_CACHE)."
        )
    return {split: pd.read_parquet(destination / f"{split}.parquet") for split in ("train", "test")}


def fetch_glove(variant: str, cache: Path, source: str | None = None) -> Path:
    """Download the GloVe archive once into ``cache/glove`` (``source``: a local archive instead, or a folder
    holding it)."""
    repo, archive, _ = GLOVE[variant]
    destination = cache / "glove" / archive

    def build(temporary: Path) -> None:
        if source is not None:
            local = Path(source) / archive if Path(source).is_dir() else Path(source)
            if not zipfile.is_zipfile(local):
                from ..errors import UserError

                raise UserError(f"data.sources.glove = {source}: expected the archive {archive} (a zip file)")
            shutil.copyfile(local, temporary)
            return
        check_online("huggingface.co", f"GloVe {variant} vectors ({repo}/{archive})", destination,
                     f"python -m unfolded data fetch glove-{variant}")
        from huggingface_hub import hf_hub_download

        downloaded = hf_hub_download(repo, archive, local_dir=str(temporary.parent / f".{archive}.download"))
        shutil.move(downloaded, temporary)

    # The archive is large: verify its size only; the vocabulary-restricted tensors get full hashes.
    return cached(destination, build, full_hash=False)


def glove_vectors(words: list[str], variant: str, cache: Path, key: str, seed: int, source: str | None = None):
    """``(len(words), dimension)`` vectors for ``words``, restricted once per vocabulary and cached; the dimension
    is read from the vectors (:func:`unfolded.data.sources.read_glove`), never assumed.

    Returns the tensor and the number of words that had no GloVe vector (random vectors).
    """
    import hashlib

    from .sources import GLOVE_MEMBERS, canonical_glove, read_glove, resolve_glove

    variant = canonical_glove(variant)
    _, member = GLOVE_MEMBERS[variant]
    digest = hashlib.sha256("\n".join(words).encode()).hexdigest()[:16]
    destination = cache / "vectors" / f"glove-{variant}-{key}-{digest}.pt"
    from .cache import entry_ok

    if not entry_ok(destination):
        resolve_glove(variant, source, cache)  # a clear error, before any work, when the vectors are nowhere

    def build(temporary: Path) -> None:
        kind, location = resolve_glove(variant, source, cache)
        found, dimension = read_glove(kind, location, member, set(words))
        generator = torch.Generator().manual_seed(seed)
        known = torch.tensor(list(found.values()), dtype=torch.float32) if found else torch.zeros(0, dimension)
        scale = known.std().item() if len(found) > 1 else 0.4
        vectors = torch.randn(len(words), dimension, generator=generator) * scale
        for index, word in enumerate(words):
            if word in found:
                vectors[index] = torch.tensor(found[word])
        vectors[0] = 0.0  # <pad>
        torch.save({"vectors": vectors, "missing": len(words) - len(found)}, temporary)

    record = load_tensors(cached(destination, build))
    return record["vectors"], int(record["missing"])


def build_vocabulary(texts: list[list[str]], min_freq: int) -> list[str]:
    counts = Counter(token for tokens in texts for token in tokens)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return [PAD, UNK, *words]


def encode(tokens: list[str], index: dict[str, int], max_length: int | None) -> torch.Tensor:
    ids = [index.get(token, 1) for token in tokens] or [1]
    return torch.tensor(ids[:max_length] if max_length else ids, dtype=torch.long)


# ----------------------------------------------------------------------------------------------
# Offline generated task
# ----------------------------------------------------------------------------------------------


def polarity_task(
    n_train: int, n_test: int, vocab_size: int, min_length: int, max_length: int, d: int, seed: int,
    test_seed: int | None = None,
) -> dict:
    """A text-like task with negations (kept as it is: Figures 5-6 use it).

    Its Bayes bag-of-words accuracy is about 0.85 (:func:`unfolded.data.ceilings.polarity_bag_of_words`),
    so a model must beat that before it shows any use of word order. The vocabulary has positive
    words (+1), negative words (-1), negation words and neutral words.
    A negation flips the polarity of the next polar word. The label is 1 when the flipped sum of
    polarities is positive, 0 when negative (sequences with sum 0 are redrawn). Each word has a
    fixed seeded Gaussian embedding (frozen), so the model must combine tokens to see negations.

    ``test_seed``: the test split is drawn afresh from its own generator (same distribution, same vectors);
    None keeps the split drawn from ``seed`` after the train split.
    """
    generator = torch.Generator().manual_seed(seed)
    polar = max(2, vocab_size // 5)
    negations = max(1, vocab_size // 20)
    # ids: 0 pad, 1 unk, then positive, negative, negation, neutral words
    positive = range(2, 2 + polar)
    negative = range(2 + polar, 2 + 2 * polar)
    negation = range(2 + 2 * polar, 2 + 2 * polar + negations)
    total = vocab_size + 2
    polarity = torch.zeros(total, dtype=torch.long)
    polarity[list(positive)] = 1
    polarity[list(negative)] = -1
    is_negation = torch.zeros(total, dtype=torch.bool)
    is_negation[list(negation)] = True

    def draw(count: int):
        sequences, labels = [], []
        while len(sequences) < count:
            length = int(torch.randint(min_length, max_length + 1, (), generator=generator))
            ids = torch.randint(2, total, (length,), generator=generator)
            score, flip = 0, False
            for token in ids.tolist():
                if is_negation[token]:
                    flip = True
                elif polarity[token] != 0:
                    score += -int(polarity[token]) if flip else int(polarity[token])
                    flip = False
            if score == 0:
                continue
            sequences.append(ids)
            labels.append(int(score > 0))
        return sequences, torch.tensor(labels)

    train, test = draw(n_train), draw(n_test)
    vectors = torch.randn(total, d, generator=generator) / d**0.5
    vectors[0] = 0.0
    if test_seed is not None:
        generator = torch.Generator().manual_seed(test_seed)  # draw() reads this name when called
        test = draw(n_test)
    return {"train": train, "test": test, "vectors": vectors}


def order_task(
    n_train: int, n_test: int, vocab_size: int, min_length: int, max_length: int, d: int, seed: int,
    test_seed: int | None = None,
) -> dict:
    """A token task whose label needs word order: is marker ``A`` before marker ``B``?

    Every sequence holds exactly one ``A`` and one ``B`` at two distinct positions drawn uniformly,
    the other positions neutral words drawn uniformly. Swapping the two markers maps a sequence of
    label 1 to one of label 0 with the same probability and the same multiset of tokens, so the
    bag of words carries no information about the label: every bag-of-words classifier has expected
    accuracy ``max(p, 1 - p)`` with ``p`` the share of label 1 (1/2 here), while the label is a
    function of the sequence, so the oracle is right every time (:func:`order_ceilings`). Labels
    are balanced exactly in each split.
    """
    if min_length < 2:
        raise ValueError(f"order task: min_length must be >= 2 (two markers), got {min_length}")
    generator = torch.Generator().manual_seed(seed)
    total = vocab_size + 2
    marker_a, marker_b = 2, 3  # ids: 0 pad, 1 unk, 2 A, 3 B, then neutral words

    def item(label: int, generator: torch.Generator) -> torch.Tensor:
        length = int(torch.randint(min_length, max_length + 1, (), generator=generator))
        ids = torch.randint(4, total, (length,), generator=generator)
        first, second = sorted(torch.randperm(length, generator=generator)[:2].tolist())
        ids[first], ids[second] = (marker_a, marker_b) if label else (marker_b, marker_a)
        return ids

    return _balanced_splits(item, n_train, n_test, total, d, generator, test_seed)


def _balanced_splits(item, n_train: int, n_test: int, total: int, d: int, generator: torch.Generator,
                     test_seed: int | None = None) -> dict:
    """Train and test splits of ``item(label, generator)`` sequences with exactly balanced labels (the i-th item
    has label ``i % 2``), each split shuffled, then seeded frozen vectors for ``total`` ids (``<pad>`` zero).
    With ``test_seed``, the test split is drawn afresh from a generator of its own (same distribution)."""
    def draw(count: int, generator: torch.Generator):
        sequences = [item(index % 2, generator) for index in range(count)]
        order = torch.randperm(count, generator=generator).tolist()
        return [sequences[i] for i in order], torch.tensor([index % 2 for index in range(count)])[order]

    train, test = draw(n_train, generator), draw(n_test, generator)
    vectors = torch.randn(total, d, generator=generator) / d**0.5
    vectors[0] = 0.0
    if test_seed is not None:
        test = draw(n_test, torch.Generator().manual_seed(test_seed))
    return {"train": train, "test": test, "vectors": vectors}


def order_ceilings(labels: torch.Tensor) -> dict[str, float]:
    """Accuracy ceilings of :func:`order_task` on a split with ``labels``: the best bag-of-words
    classifier cannot beat the majority class (the bag is independent of the label), the oracle
    (the rule itself) is always right."""
    share = float(labels.double().mean())
    # a per-token map of (token, position) scores +1 for A and -1 for B by position: no interaction needed
    return {"bag_of_words_ceiling": max(share, 1.0 - share), "no_interaction_ceiling": 1.0, "oracle_ceiling": 1.0}


def equality_task(
    n_train: int, n_test: int, symbols: int, min_length: int, max_length: int, d: int, seed: int,
    test_seed: int | None = None,
) -> dict:
    """A token task that needs token interactions: are the tokens in the two slots equal?

    The slots are the first two positions. With probability 1/2 (exactly half of each split) they hold
    one symbol ``a = b`` drawn uniformly from ``symbols``; otherwise ``(a, b)`` is drawn uniformly from
    the ``K (K - 1)`` ordered pairs of different symbols. The other tokens are fillers drawn uniformly
    from the same symbols (so a duplicate in the bag of words is weak evidence), and the length is
    uniform in ``[min_length, max_length]``, both independent of ``(a, b)``. No model without token
    interactions (a per-token map of token and position, sum or mean pooling, an affine head) can beat
    3/4; the oracle is always right (docs/theory.md §7, :mod:`unfolded.data.ceilings`).
    """
    if min_length < 2 or max_length < min_length:
        raise ValueError(f"equality task: need 2 <= min_length <= max_length, got {min_length}, {max_length}")
    if symbols < 2:
        raise ValueError(f"equality task: symbols must be >= 2, got {symbols}")
    generator = torch.Generator().manual_seed(seed)
    total = symbols + 2  # ids: 0 pad, 1 unk, then the symbols

    def item(label: int, generator: torch.Generator) -> torch.Tensor:
        a = int(torch.randint(symbols, (), generator=generator))
        b = a if label else int(torch.randint(symbols - 1, (), generator=generator))
        b = b + 1 if not label and b >= a else b
        length = int(torch.randint(min_length, max_length + 1, (), generator=generator))
        fillers = torch.randint(2, total, (length - 2,), generator=generator)
        return torch.cat([torch.tensor([a + 2, b + 2]), fillers])

    return _balanced_splits(item, n_train, n_test, total, d, generator, test_seed)
