"""Training with Lightning: the LightningModule (embedding, encoder, masked-mean head), the Trainer,
fitting with resumable checkpoints, and writing a run.

The LightningModule holds the what (model, loss, metrics); :func:`build_trainer` the how
(device, precision, checkpoints, logging); :class:`unfolded.data.SequenceDataModule` the data.
The encoders come from :mod:`unfolded.encoders`.
"""

from __future__ import annotations

import math
import pickle
import shutil
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from .encoders import BagOfEmbeddings, build_encoder, sinusoidal_positions
from .errors import UserError

__all__ = ["HEADS", "POSITIONS", "CheckpointRefused", "DivergenceError", "SequenceClassifier", "build_trainer", "fit",
           "precision_for", "write_run"]

POSITIONS = ("none", "learned", "sinusoidal")
#: Classifiers on the pooled vector: ``layer_norm`` (LayerNorm, then linear) or ``affine`` (linear only).
#: LayerNorm divides by the pooled vector's norm, whose square holds cross-terms between tokens, so only
#: the affine head keeps a model without token mixing interaction-free (docs/theory.md §7).
HEADS = ("layer_norm", "affine")


class CheckpointRefused(UserError, RuntimeError):
    """A checkpoint on disk could not be loaded safely (it would need unpickling arbitrary objects)."""


CODE_KEY_FILE = "code_digest.txt"


def _discard_stale_checkpoints(checkpoint_dir: Path) -> None:
    """Resume only from checkpoints that the same code made: the directory records the digest of the
    training code (:func:`unfolded.codeversion.stage_digest`); on a mismatch, or checkpoints without a
    record, the old checkpoints are removed and training starts afresh."""
    from .artifacts import write_text
    from .codeversion import stage_digest

    digest = stage_digest("train")
    key = checkpoint_dir / CODE_KEY_FILE
    checkpoints = list(checkpoint_dir.glob("*.ckpt"))
    recorded = key.read_text().strip() if key.exists() else None
    if checkpoints and recorded != digest:
        warnings.warn(
            f"{checkpoint_dir}: checkpoints were made by other code (digest {recorded}, now {digest}); "
            "discarding them and training from scratch", stacklevel=3)
        for path in checkpoints:
            path.unlink()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_text(key, digest + "\n")


class DivergenceError(UserError, RuntimeError):
    """Training produced a non-finite loss or energy; diagnostics were saved next to the run."""


class SequenceClassifier(L.LightningModule):
    """Embedding -> encoder -> masked mean over tokens -> linear classifier.

    ``kind="tokens"``: ids looked up in ``vectors``, frozen (the paper) or ``learned`` from them
    (the encoder width is their width);
    ``kind="features"``: patch vectors projected linearly to ``width``.
    """

    def __init__(
        self,
        *,
        kind: str,
        input_dim: int,
        num_classes: int,
        model: str,
        width: int,
        num_layers: int,
        encoder_options: dict | None = None,
        optimizer: str = "adamw",
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        vectors: torch.Tensor | None = None,
        embedding: str = "frozen",
        encoder: nn.Module | None = None,
        max_tokens: int = 1024,
        diagnostics_dir: str | None = None,
        positions: str = "none",
        head: str = "layer_norm",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["vectors", "encoder"])
        if kind == "tokens":
            if vectors is None:
                raise ValueError("kind='tokens' needs the embedding vectors")
            if embedding not in ("frozen", "learned"):
                raise ValueError(f"embedding: expected 'frozen' or 'learned', got {embedding!r}")
            self.embedding = nn.Embedding.from_pretrained(vectors.float(), freeze=embedding == "frozen", padding_idx=0)
            d = vectors.shape[1]
            if positions not in POSITIONS:
                raise ValueError(f"positions: expected one of {POSITIONS}, got {positions!r}")
            if positions == "learned":  # same scale as the seeded token vectors
                self.positions = nn.Parameter(torch.randn(max_tokens, d) / math.sqrt(d))
            elif positions == "sinusoidal":
                self.register_buffer("positions", sinusoidal_positions(max_tokens, d) / math.sqrt(d))
        elif kind == "features":
            # patches have a fixed grid: a linear patch projection plus learned positions
            self.embedding = nn.Linear(input_dim, width)
            self.positions = nn.Parameter(torch.zeros(max_tokens, width))
            d = width
        else:
            raise ValueError(f"kind: expected 'tokens' or 'features', got {kind!r}")
        self.encoder = encoder if encoder is not None else build_encoder(model, d, num_layers, encoder_options or {})
        # LayerNorm makes the head blind to the scale of the pooled state (energy descent shrinks it); the
        # affine head keeps models without token mixing interaction-free (HEADS).
        if head not in HEADS:
            raise ValueError(f"head: expected one of {HEADS}, got {head!r}")
        norm = [nn.LayerNorm(d)] if head == "layer_norm" else []
        if isinstance(self.encoder, BagOfEmbeddings):  # the baseline's capacity sits in an MLP head
            self.classifier = nn.Sequential(*norm, nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, num_classes))
        else:
            self.classifier = nn.Sequential(*norm, nn.Linear(d, num_classes))

    def embed(self, batch: dict) -> torch.Tensor:
        Y = self.embedding(batch["inputs"])  # (b, n, d)
        if hasattr(self, "positions"):
            if Y.shape[1] > self.positions.shape[0]:
                raise ValueError(f"sequence of {Y.shape[1]} tokens, but positions were built for {self.positions.shape[0]}")
            Y = Y + self.positions[: Y.shape[1]].to(Y.dtype)
        return Y

    def forward(self, batch: dict, return_energies: bool = False, num_layers: int | None = None):
        """Logits and (optionally) energies; ``num_layers`` runs a tied encoder at another depth."""
        mask = batch["mask"]
        out = self.encoder(self.embed(batch), mask, return_energies=return_energies, num_layers=num_layers)
        return self.head(out.hidden, mask), out.energies

    def head(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits from hidden states: the masked mean over tokens, then the classifier."""
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (b, d)
        return self.classifier(pooled)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        logits, _ = self(batch)
        loss = F.cross_entropy(logits.float(), batch["labels"])
        correct = (logits.argmax(-1) == batch["labels"]).sum()
        size = len(batch["labels"])
        self.log(f"{stage}_loss", loss, prog_bar=stage != "test", batch_size=size)
        self.log(f"{stage}_accuracy", correct.float() / size, prog_bar=True, batch_size=size)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        if not torch.isfinite(loss):
            self._diverged(batch, loss)
        return loss

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        # A step can leave non-finite weights behind a finite loss; stop before the next forward.
        if not all(torch.isfinite(p).all() for p in self.parameters()):
            self._diverged(batch, outputs["loss"] if isinstance(outputs, dict) else torch.tensor(float("nan")),
                           "non-finite parameters after the optimiser step")

    def _diverged(self, batch: dict, loss: torch.Tensor, what: str = "non-finite loss") -> None:
        where = Path(self.hparams.diagnostics_dir or ".") / "divergence.pt"
        where.parent.mkdir(parents=True, exist_ok=True)
        norms = {name: p.detach().float().norm().item() for name, p in self.named_parameters()}
        torch.save({"step": self.global_step, "loss": loss.item(), "reason": what, "batch": batch,
                    "parameter_norms": norms, "state_dict": self.state_dict()}, where)
        raise DivergenceError(
            f"training diverged at step {self.global_step} ({what}): loss = {loss.item()}; parameters, the batch and "
            f"their norms are saved in {where}. Lower the learning rate, enable relu, or clip gradients."
        )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    @torch.no_grad()
    def predict_split(self, data, split: str = "test", batch_size: int = 256) -> torch.Tensor:
        """The predicted class of every item of ``split``, in the split's order (eval mode, float32, CPU)."""
        from .data import collate

        self.eval().float().cpu()
        sequences, labels = data.splits[split]
        predictions = []
        for begin in range(0, len(labels), batch_size):
            batch = collate([(sequences[i], labels[i]) for i in range(begin, min(begin + batch_size, len(labels)))])
            if batch["inputs"].is_floating_point():
                batch["inputs"] = batch["inputs"].float()
            predictions.append(self(batch)[0].argmax(-1))
        return torch.cat(predictions)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        parameters = [p for p in self.parameters() if p.requires_grad]
        if self.hparams.optimizer == "sgd":
            optimiser = torch.optim.SGD(parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        else:
            optimiser = torch.optim.AdamW(parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.scheduler == "cosine":
            total = max(1, int(self.trainer.estimated_stepping_batches))
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total)
            return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        return optimiser


def precision_for(accelerator: str) -> str:
    """One precision policy: bf16-mixed on GPU, 32-bit on CPU."""
    on_gpu = accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu else "32-true"


def build_trainer(
    checkpoint_dir: Path,
    *,
    max_epochs: int = 1,
    max_steps: int = -1,
    accelerator: str = "auto",
    gradient_clip: float | None = None,
    validate: bool = True,
    progress: bool = True,
    callbacks: tuple = (),
    patience: int | None = None,
    precision: str | None = None,
) -> L.Trainer:
    """A Lightning Trainer; ``precision`` overrides :func:`precision_for` (e.g. ``"bf16-mixed"`` on CPU)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    on_gpu = accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())
    if validate:
        # keep the epoch with the best validation accuracy (the one tested); last.ckpt beside it for resuming
        checkpoint = ModelCheckpoint(dirpath=str(checkpoint_dir), filename="best", monitor="val_accuracy", mode="max",
                                     save_last=True, save_top_k=1)
    else:
        # save_top_k=1 without a monitor keeps the newest epoch checkpoint; last.ckpt is written beside it
        checkpoint = ModelCheckpoint(dirpath=str(checkpoint_dir), save_last=True, save_top_k=1, every_n_epochs=1,
                                     save_on_train_epoch_end=True)
    if patience is not None and validate:
        callbacks = (EarlyStopping(monitor="val_accuracy", mode="max", patience=patience), *callbacks)
    return L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision or precision_for(accelerator),
        max_epochs=max_epochs,
        max_steps=max_steps,
        deterministic=not on_gpu,  # bitwise reproducible tables on CPU
        gradient_clip_val=gradient_clip,
        callbacks=[checkpoint, *callbacks],
        logger=CSVLogger(str(checkpoint_dir), name="logs"),
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if validate else 0,
        log_every_n_steps=10,
    )


def fit(
    module: SequenceClassifier,
    data,
    checkpoint_dir: Path,
    *,
    seed: int,
    batch_size: int,
    max_epochs: int = 1,
    max_steps: int = -1,
    accelerator: str = "auto",
    gradient_clip: float | None = None,
    num_workers: int = 0,
    validate: bool = True,
    progress: bool = True,
    callbacks: tuple = (),
    patience: int | None = None,
    precision: str | None = None,
) -> dict:
    """Train (resuming from ``checkpoint_dir/last.ckpt`` when present) and test; returns a summary.

    With validation, the epoch with the best validation accuracy is restored and tested, and
    ``patience`` stops training after that many epochs without a better one (early stopping)."""
    checkpoint_dir = Path(checkpoint_dir)
    resume = checkpoint_dir / "last.ckpt"
    _discard_stale_checkpoints(checkpoint_dir)
    trainer = build_trainer(checkpoint_dir, max_epochs=max_epochs, max_steps=max_steps, accelerator=accelerator,
                            gradient_clip=gradient_clip, validate=validate, progress=progress, callbacks=callbacks,
                            patience=patience, precision=precision)
    resumed = resume.exists()
    start = time.perf_counter()
    from .data import SequenceDataModule

    datamodule = SequenceDataModule(data, batch_size, num_workers=num_workers, seed=seed)
    try:
        # weights_only: a checkpoint is data, never code (hyperparameters are plain types)
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resumed else None, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointRefused(
            f"checkpoint {resume} holds objects other than plain tensors and containers, so it was not loaded "
            f"(torch.load with weights_only=True: {str(error).splitlines()[0]}). Delete it to train from scratch."
        ) from None
    train_seconds = time.perf_counter() - start
    best = Path(trainer.checkpoint_callback.best_model_path or "") if validate else None
    if best is not None and best.is_file():
        tested = trainer.test(module, datamodule=datamodule, verbose=False, ckpt_path=str(best), weights_only=True)[0]
        best_val = float(trainer.checkpoint_callback.best_model_score)
    else:
        tested, best = trainer.test(module, datamodule=datamodule, verbose=False)[0], checkpoint_dir / "last.ckpt"
        best_val = math.nan
    samples = trainer.global_step * batch_size
    return {
        "val_accuracy": best_val,
        "checkpoint": str(best),
        "test_accuracy": float(tested["test_accuracy"]),
        "test_loss": float(tested["test_loss"]),
        "steps": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "resumed": resumed,
        "train_seconds": train_seconds,
        "samples_per_second": samples / train_seconds if train_seconds > 0 else math.nan,
        "parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "metrics_csv": str(Path(trainer.logger.log_dir) / "metrics.csv"),
    }


def write_run(run_dir: Path, summary: dict, module: SequenceClassifier, checkpoint_dir: Path, meta: dict) -> None:
    """Copy the run's metrics and final checkpoint into ``run_dir`` and write its summary, atomically."""
    from .artifacts import atomic_path, write_json

    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = Path(summary.pop("metrics_csv"))
    with atomic_path(run_dir / "metrics.csv") as temporary:
        shutil.copyfile(metrics, temporary)
    with atomic_path(run_dir / "model.ckpt") as temporary:
        shutil.copyfile(summary.pop("checkpoint"), temporary)
    write_json(run_dir / "provenance.json", {**meta, "summary": summary})
