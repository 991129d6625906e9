"""The Lightning data module of every training run (``unfolded.data.SequenceDataModule``).

Kept apart from :mod:`unfolded.data` so that loading and preparing data does not import Lightning.
"""

from __future__ import annotations

import lightning as L
import torch

from . import EpochSeededSampler, PreparedData, _Sequences, collate

__all__ = ["SequenceDataModule"]


class SequenceDataModule(L.LightningDataModule):
    """Padded, masked batches of a :class:`~unfolded.data.PreparedData`; training batches shuffled by an
    :class:`~unfolded.data.EpochSeededSampler` (same seed, same batches, also after a resume).

    Evaluation splits (``val``, ``test``) keep their order and use ``eval_batch_size``."""

    def __init__(self, data: PreparedData, batch_size: int, num_workers: int = 0, seed: int = 0,
                 eval_batch_size: int = 256):
        super().__init__()
        self.data, self.batch_size, self.num_workers, self.seed = data, batch_size, num_workers, seed
        self.eval_batch_size = eval_batch_size

    def _loader(self, split: str, shuffle: bool) -> torch.utils.data.DataLoader:
        dataset = _Sequences(self.data.splits[split])
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            sampler=EpochSeededSampler(len(dataset), self.seed) if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader("test", False)
