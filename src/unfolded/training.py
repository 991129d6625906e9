"""Training with Lightning: an embedding, an encoder (unfolded or standard) and a classifier.

The LightningModule holds the what (model, loss, metrics); :func:`build_trainer` the how
(device, precision, checkpoints, logging); :class:`unfolded.data.SequenceDataModule` the data.
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

from .errors import UserError
from .models import StandardTransformer, UnfoldedTransformer, authors_ffn_normalisation

__all__ = [
    "MODELS",
    "VARIANTS",
    "BagOfEmbeddings",
    "family",
    "split_model",
    "sinusoidal_positions",
    "DivergenceError",
    "SequenceClassifier",
    "build_encoder",
    "build_trainer",
    "fit",
    "paper_encoder",
]

#: Encoders trained with Lightning (``bag_of_embeddings``: no token mixing, the pooled-token-identity
#: baseline; the control for the attention step itself is the variant ``no_attention``).
MODELS = ("unfolded_tied", "unfolded_untied", "standard_tied", "standard_untied", "bag_of_embeddings")
#: Unfolded variants that keep a descent theorem, as encoder options (a run's model is
#: ``<model>-<variant>``, e.g. ``unfolded_tied-multihead``). ``residual``: step sizes below 1, a
#: convex combination with the current state; ``learned_steps``: per-layer step sizes learned inside
#: their descent ranges; ``multihead``: the multi-head energy, whose MM step is multi-head attention.
VARIANTS = {
    "residual": {"alpha_attention": 0.5, "alpha_ffn": 0.5},
    "learned_steps": {"learned_step_sizes": True, "alpha_attention": 1.0, "alpha_ffn": 0.5},
    "multihead": {"energy_heads": 4},
    # an ablation, not a descent variant: the same layers without the attention step, so tokens never
    # mix; what unfolded_tied gains over it is what token interactions add
    "no_attention": {"attention": False},
}
POSITIONS = ("none", "learned", "sinusoidal")


def split_model(name: str) -> tuple[str, str]:
    """``"unfolded_tied-multihead"`` -> ``("unfolded_tied", "multihead")``; ``"standard_tied"`` -> ``(.., "base")``."""
    model, _, variant = name.partition("-")
    if model not in MODELS:
        raise ValueError(f"model: expected one of {MODELS} (optionally -<variant>), got {name!r}")
    if variant and (variant not in VARIANTS or not model.startswith("unfolded")):
        raise ValueError(f"model {name!r}: variants {sorted(VARIANTS)} apply to unfolded models only")
    return model, variant or "base"


def family(name: str) -> str:
    """The learning-rate family of a model name: unfolded, standard or bag_of_embeddings."""
    model, _ = split_model(name)
    return model.split("_")[0] if model != "bag_of_embeddings" else model


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


class BagOfEmbeddings(nn.Module):
    """No token mixing: the encoder returns its input (the classifier pools and applies an MLP)."""

    num_layers = 0

    def forward(self, Y: torch.Tensor, mask: torch.Tensor | None = None, *, return_energies: bool = False,
                num_layers: int | None = None):
        from .models import EncoderOutput

        return EncoderOutput(Y, None)


def build_encoder(model: str, d: int, num_layers: int, cfg: dict) -> nn.Module:
    """``unfolded_{tied,untied}[-variant]``, ``standard_{tied,untied}`` or ``bag_of_embeddings`` at width
    ``d`` and depth ``num_layers``; a variant's options (:data:`VARIANTS`) override ``cfg``."""
    name, variant = split_model(model)
    if name == "bag_of_embeddings":
        return BagOfEmbeddings()
    family, tying = name.split("_")
    tied = tying == "tied"
    if family == "unfolded":
        options = {**cfg, **VARIANTS[variant]} if variant != "base" else cfg
        return UnfoldedTransformer(
            d, num_layers, tied=tied,
            attention_variant=options.get("attention_variant", "exact"),
            alpha_attention=options.get("alpha_attention", 1.0),
            alpha_ffn=options.get("alpha_ffn", 1.0),
            relu=options.get("relu", True),
            layer_norm=options.get("layer_norm", False),
            spectral_bound=options.get("spectral_bound", 0.95),
            regularise_energy=options.get("regularise_energy", True),
            learned_step_sizes=options.get("learned_step_sizes", False),
            energy_heads=options.get("energy_heads", 1),
            attention=options.get("attention", True),
        )
    heads = cfg.get("num_heads", 4)
    while d % heads:
        heads -= 1  # the largest head count <= num_heads that divides d
    return StandardTransformer(d, num_layers, num_heads=heads, tied=tied)


ENERGY_CURVE_VARIANTS = ("authors", "exact", "exact_active")


def paper_encoder(d: int, num_layers: int, relu: bool, variant: str, *, alpha_attention: float = 1.0,
                  w_scale: float = 1.0) -> UnfoldedTransformer:
    """The encoders of Figures 5-6 (docs/theory.md §4.4, 8b).

    ``paper``: the authors' model: tied layers, their bias-free ``W^T W`` attention, no residual,
    their energy (with the regulariser), feed-forward weight normalised once by their
    ``normalize_weight`` and unconstrained during training. ``exact``: tied layers, attention with
    the key bias, the pairwise energy without the regulariser, and ``Wf`` kept symmetric with its
    spectrum in [-0.95, 0.95] by a parametrisation throughout training. ``exact_active``: the exact
    model with the attention step size ``alpha_attention`` and W initialised ``w_scale`` times the
    Xavier scale: a regime in which the attention step keeps acting over the layers instead of
    collapsing every sequence to one point (chosen by ``python -m unfolded regime-search``).
    """
    if variant == "authors":
        encoder = UnfoldedTransformer(d, num_layers, tied=True, attention_variant="authors", relu=relu,
                                      spectral_bound=None, regularise_energy=True)
        authors_normalise_(encoder)
        return encoder
    if variant in ("exact", "exact_active"):
        if variant == "exact":
            alpha_attention, w_scale = 1.0, 1.0
        return UnfoldedTransformer(d, num_layers, tied=True, attention_variant="exact", relu=relu,
                                   spectral_bound=0.95, regularise_energy=False, alpha_attention=alpha_attention,
                                   w_scale=w_scale)
    raise ValueError(f"energy-curve variant: expected one of {ENERGY_CURVE_VARIANTS}, got {variant!r}")


@torch.no_grad()
def authors_normalise_(encoder: UnfoldedTransformer) -> None:
    """Apply the authors' ``normalize_weight`` to every unconstrained ``Wf`` (docs/theory.md §5, item 5)."""
    for layer in encoder.layers:
        layer.Wf.copy_(authors_ffn_normalisation(layer.Wf))


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
        # LayerNorm makes the head blind to the scale of the pooled state (energy descent shrinks it).
        if isinstance(self.encoder, BagOfEmbeddings):  # the baseline's capacity sits in an MLP head
            self.classifier = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, num_classes))
        else:
            self.classifier = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, num_classes))

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
        accuracy = (logits.argmax(-1) == batch["labels"]).float().mean()
        size = len(batch["labels"])
        self.log(f"{stage}_loss", loss, prog_bar=stage != "test", batch_size=size)
        self.log(f"{stage}_accuracy", accuracy, prog_bar=True, batch_size=size)
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


def sinusoidal_positions(length: int, d: int) -> torch.Tensor:
    """The fixed sine/cosine position code of Vaswani et al., ``(length, d)``, entries in [-1, 1]."""
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    code = torch.zeros(length, d, dtype=torch.float64)
    code[:, 0::2] = torch.sin(position * frequency)
    code[:, 1::2] = torch.cos(position * frequency)[:, : d // 2]
    return code.float()


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


def _chunks(sequences, indices: list[int], budget: float = 2.5e7) -> list[list[int]]:
    """Batches of ``indices`` whose ``(b, n, n)`` Gram matrices stay below ``budget`` entries."""
    chunks, chunk, longest = [], [], 0
    for i in indices:
        longest_if_added = max(longest, len(sequences[i]))
        if chunk and (len(chunk) + 1) * longest_if_added**2 > budget:
            chunks.append(chunk)
            chunk, longest_if_added = [], len(sequences[i])
        chunk.append(i)
        longest = longest_if_added
    chunks.append(chunk)
    return chunks


@torch.no_grad()
def layer_trace(module: SequenceClassifier, data, split: str, indices: list[int], num_layers: int | None = None):
    """:class:`unfolded.models.LayerTrace` of the chosen sequences, evaluated in float64 on the CPU."""
    from .data import collate
    from .models import LayerTrace

    module = module.eval().cpu().double()
    sequences, labels = data.splits[split]
    traces = []
    for chunk in _chunks(sequences, indices):
        batch = collate([(sequences[i], labels[i]) for i in chunk])
        if batch["inputs"].is_floating_point():
            batch["inputs"] = batch["inputs"].double()
        traces.append(module.encoder.trace(module.embed(batch), batch["mask"], num_layers=num_layers))
    trace = LayerTrace(*(torch.cat([getattr(t, f) for t in traces]) for f in LayerTrace.__dataclass_fields__))
    for name in ("energies", "before", "after", "spread"):
        values = getattr(trace, name)
        if not torch.isfinite(values).all():
            raise DivergenceError(f"non-finite {name} in {int((~torch.isfinite(values)).sum())} entries")
    return trace


def layer_energies(module: SequenceClassifier, data, split: str, indices: list[int]) -> torch.Tensor:
    """``(len(indices), num_layers + 1)`` energies of the chosen sequences, evaluated in float64."""
    return layer_trace(module, data, split, indices).energies


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
