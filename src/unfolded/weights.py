"""Checkpoint weights without the data: a text model's frozen pretrained word vectors (GloVe) are data, so
saved weights leave them out and keep their SHA-256; loading takes them back from the run's prepared data
and checks the digest. Computing code (no pandas, no presentation): training, the recipes and the archive
use it alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["VECTORS_KEY", "restore_frozen_vectors", "tensor_sha256", "without_frozen_vectors"]

#: the state-dict entry of a text model's word vectors
VECTORS_KEY = "embedding.weight"


def tensor_sha256(tensor) -> str:
    """SHA-256 of a tensor's float32 values (C order), the digest a checkpoint keeps of the vectors it left out."""
    return hashlib.sha256(tensor.detach().float().contiguous().cpu().numpy().tobytes()).hexdigest()


def without_frozen_vectors(state: dict, hyper: dict) -> tuple[dict, dict]:
    """``state`` without the word vectors of a text model whose embedding is frozen, and what to record instead
    (their SHA-256 and shape): frozen pretrained vectors (GloVe) are data, not weights, so checkpoints leave them
    out and :func:`restore_frozen_vectors` puts them back from the prepared data. Other states come back as they are."""
    if hyper.get("kind") != "tokens" or hyper.get("embedding", "frozen") != "frozen" or VECTORS_KEY not in state:
        return state, {}
    vectors = state[VECTORS_KEY]
    return ({key: value for key, value in state.items() if key != VECTORS_KEY},
            {"vectors_sha256": tensor_sha256(vectors), "vectors_shape": list(vectors.shape)})


def restore_frozen_vectors(record: dict, data, path: Path) -> dict:
    """The state dict of checkpoint ``record`` with its word vectors: kept in it, or left out by
    :func:`without_frozen_vectors` and taken from ``data`` (the run's :class:`unfolded.data.PreparedData`), which
    must hold the very vectors it trained with (same SHA-256)."""
    from .errors import UserError

    state = record["state_dict"]
    if record["hyper_parameters"].get("kind") != "tokens" or VECTORS_KEY in state:
        return state
    if data is None or data.vectors is None:
        raise UserError(f"{path}: the checkpoint leaves its frozen word vectors out (they are data); load it with the "
                        "run's prepared data (unfolded.data.prepare(dataset, config, seed=seed))")
    digest = tensor_sha256(data.vectors)
    if digest != record["vectors_sha256"]:
        raise UserError(f"{path}: the prepared data's word vectors differ from the ones it trained with (SHA-256 "
                        f"{digest[:12]} against {record['vectors_sha256'][:12]}); prepare it with "
                        "the archive's configuration, its data source and GloVe vectors, and the run's seed")
    return {**state, VECTORS_KEY: data.vectors.float()}
