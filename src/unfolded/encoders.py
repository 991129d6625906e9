"""The encoders the project trains and draws: the registry's models built at a width and depth
(:func:`build_encoder`), the bag-of-embeddings baseline, the encoders of Figures 5-6
(:func:`paper_encoder`), and the sinusoidal position code."""

from __future__ import annotations

import math
from functools import cache

import torch
from torch import nn

from .models import EncoderOutput, StandardTransformer, UnfoldedTransformer, authors_ffn_normalisation
from .registry import CURVE_MODELS, VARIANTS, energy_encoder, split_model

__all__ = ["BagOfEmbeddings", "authors_normalise_", "build_encoder", "encoder_settings", "paper_encoder",
           "sinusoidal_positions"]


class BagOfEmbeddings(nn.Module):
    """No token mixing: the encoder returns its input (the classifier pools and applies an MLP)."""

    num_layers = 0

    def forward(self, Y: torch.Tensor, mask: torch.Tensor | None = None, *, return_energies: bool = False,
                num_layers: int | None = None) -> EncoderOutput:
        return EncoderOutput(Y, None)


@cache
def _train_defaults() -> dict:
    from .config import validate_config

    return validate_config({})["train"]


def encoder_settings(model: str, cfg: dict) -> dict:
    """The settings of config section ``train`` that build ``model``: the schema's defaults, then ``cfg``,
    then the variant's overrides (:data:`unfolded.registry.VARIANTS`)."""
    _, variant = split_model(model)
    return {**_train_defaults(), **cfg, **VARIANTS.get(variant, {})}


def build_encoder(model: str, d: int, num_layers: int, cfg: dict) -> nn.Module:
    """``unfolded_{tied,untied}[-variant]``, ``standard_{tied,untied}``, ``bag_of_embeddings`` or a plug-in
    encoder ``<name>_tied[-no_attention]`` (:mod:`unfolded.energy_encoders`) at width ``d`` and depth
    ``num_layers``, with the settings of :func:`encoder_settings`."""
    name, _ = split_model(model)
    if name == "bag_of_embeddings":
        return BagOfEmbeddings()
    if energy_encoder(name) is not None:
        from .energy_encoders import PluginEncoder

        options = encoder_settings(model, cfg)
        return PluginEncoder(name.removesuffix("_tied"), d, num_layers, attention=options.get("attention", True))
    family, tying = name.split("_")
    options = encoder_settings(model, cfg)
    if family == "unfolded":
        # recall: the anchor weight train.recall; the feed-forward step scaled by 1 / (1 + recall) stays below
        # the anchored bound 2 / (1 + s + recall) whenever the unscaled one is below 2 / (1 + s)
        recall = float(options["recall"]) if options.get("anchored") else 0.0
        return UnfoldedTransformer(
            d, num_layers, tied=tying == "tied",
            attention_variant=options["attention_variant"],
            alpha_attention=options["alpha_attention"],
            alpha_ffn=options["alpha_ffn"] / (1.0 + recall),
            recall=recall,
            relu=options["relu"],
            layer_norm=options["layer_norm"],
            spectral_bound=options["spectral_bound"],
            regularise_energy=options["regularise_energy"],
            learned_step_sizes=options.get("learned_step_sizes", False),
            energy_heads=options.get("energy_heads", 1),
            attention=options.get("attention", True),
        )
    heads = options["num_heads"]
    while d % heads:
        heads -= 1  # the largest head count <= num_heads that divides d
    return StandardTransformer(d, num_layers, num_heads=heads, tied=tying == "tied",
                               attention=options.get("attention", True))


#: The anchor weight of ``exact_recall`` when none is given (``energy_curves.recall`` sets it in the pipeline).
EXACT_RECALL = 1.0


def paper_encoder(d: int, num_layers: int, relu: bool, variant: str, *, alpha_attention: float = 1.0,
                  w_scale: float = 1.0, recall: float | None = None) -> UnfoldedTransformer:
    """The encoders of Figures 5-6 (docs/theory.md §4.4, 8b), one per :data:`unfolded.registry.CURVE_MODELS`.

    ``authors``: the authors' model: tied layers, their bias-free ``W^T W`` attention, no residual,
    their energy (with the regulariser), feed-forward weight normalised once by their
    ``normalize_weight`` and unconstrained during training. ``exact``: tied layers, attention with
    the key bias, the pairwise energy without the regulariser, and ``Wf`` kept symmetric with its
    spectrum in [-0.95, 0.95] by a parametrisation throughout training. ``exact_active``: the exact
    model with the attention step size ``alpha_attention`` and W initialised ``w_scale`` times the
    Xavier scale: a regime in which the attention step keeps acting over the layers instead of
    collapsing every sequence to one point (chosen by ``python -m unfolded regime-search``).
    ``exact_recall``: the exact model whose energy is anchored to its input, ``E_X(Y) = E(Y) + recall/2
    sum_i |y_i - x_i|^2`` (docs/theory.md §8; ``recall`` defaults to :data:`EXACT_RECALL`), with the
    feed-forward step size ``1 / (1 + recall)``: the step ``(B + recall X - Y Wf) / (1 + recall)`` is the exact
    model's ``B - Y Wf`` with the input mixed in, and it descends (below ``2 / (1 + 0.95 + recall)``).
    """
    if variant == "authors":
        encoder = UnfoldedTransformer(d, num_layers, tied=True, attention_variant="authors", relu=relu,
                                      spectral_bound=None, regularise_energy=True)
        authors_normalise_(encoder)
        return encoder
    if variant in ("exact", "exact_active", "exact_recall"):
        if variant != "exact_active":
            alpha_attention, w_scale = 1.0, 1.0
        recall = (EXACT_RECALL if recall is None else float(recall)) if variant == "exact_recall" else 0.0
        return UnfoldedTransformer(d, num_layers, tied=True, attention_variant="exact", relu=relu,
                                   spectral_bound=0.95, regularise_energy=False, alpha_attention=alpha_attention,
                                   w_scale=w_scale, recall=recall, alpha_ffn=1.0 / (1.0 + recall))
    raise ValueError(f"energy-curve model: expected one of {CURVE_MODELS}, got {variant!r}")


@torch.no_grad()
def authors_normalise_(encoder: UnfoldedTransformer) -> None:
    """Apply the authors' ``normalize_weight`` to every unconstrained ``Wf`` (docs/theory.md §5, item 5)."""
    for layer in encoder.layers:
        layer.Wf.copy_(authors_ffn_normalisation(layer.Wf))


def sinusoidal_positions(length: int, d: int) -> torch.Tensor:
    """The fixed sine/cosine position code of Vaswani et al., ``(length, d)``, entries in [-1, 1]."""
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    code = torch.zeros(length, d, dtype=torch.float64)
    code[:, 0::2] = torch.sin(position * frequency)
    code[:, 1::2] = torch.cos(position * frequency)[:, : d // 2]
    return code.float()
