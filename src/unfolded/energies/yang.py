"""The paper's energies on the plug-in interface (Yang, Huang, Wipf, NeurIPS 2022; docs/theory.md):
an unfolded layer of :mod:`unfolded.models` (attention step, feed-forward step, ReLU) on its total energy.

``yang_exact``: the consistent layer (key bias, ``|Wf| <= 0.95``, the energy without the authors'
regulariser). Each sub-step has a theorem: the attention step never raises the pairwise term
(``0 < alpha <= 2``), the feed-forward step with its ReLU never raises ``E_ff`` from a non-negative
state. The full layer has none: the sum over alternating sub-steps can rise (a rise from Gaussian
inputs has been seen). ``yang_authors``: the authors' forward pass (``W^T W`` in the softmax, no key
bias) on their energy with the regulariser; no guarantee. ``yang_multihead``: the multi-head energy,
one ``W_h`` per block of features, whose MM step is multi-head attention.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..energy import ffn_energy, pairwise_energy
from ..models import UnfoldedLayer, authors_ffn_normalisation
from .base import Energy, Guarantee, SubStep

__all__ = ["YangAuthors", "YangExact", "YangMultihead"]


class YangExact(Energy):
    name = "yang_exact"
    reference = "Yang, Huang, Wipf, Transformers from an Optimization Perspective (NeurIPS 2022), the consistent layer"
    sense = "min"
    guarantee = "none"
    guarantee_conditions = "none for the whole layer; each sub-step descends its own term"
    guarantee_source = "derived"
    relu = True
    options: dict = {"attention_variant": "exact", "regularise_energy": False, "spectral_bound": 0.95}

    def __init__(self, layer: UnfoldedLayer):
        self.layer, self._d = layer, layer.B.shape[0]

    @classmethod
    def random_instance(cls, d: int, generator: torch.Generator) -> Energy:
        seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        with torch.random.fork_rng(devices=[]):  # the layer's init draws from the global RNG: leave it as it was
            torch.manual_seed(seed)
            layer = UnfoldedLayer(d, relu=True, **cls.options).double()
        return cls(layer)

    def energy(self, Y: Tensor, mask: Tensor | None = None, ref: Tensor | None = None) -> Tensor:
        return self.layer.energy(Y, mask).to(Y.dtype)

    @torch.no_grad()
    def step(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.layer.to(Y.dtype)(Y, mask)

    def random_tokens(self, generator: torch.Generator, b: int, n: int) -> tuple[Tensor, Tensor]:
        Y, mask = super().random_tokens(generator, b, n)
        return Y.abs(), mask  # where the ReLU's indicator is finite


def _attend(model: YangExact, Y: Tensor, mask: Tensor | None) -> Tensor:
    with torch.no_grad():
        return model.layer.to(Y.dtype).attend(Y, mask)


def _pairwise(model: YangExact, Y: Tensor, mask: Tensor | None, ref: Tensor | None) -> Tensor:
    return pairwise_energy(Y, model.layer.W.detach().to(Y.dtype), mask)


def _feed_forward(model: YangExact, Y: Tensor, mask: Tensor | None) -> Tensor:
    with torch.no_grad():
        out = model.layer.to(Y.dtype).feed_forward(Y)
    return out if mask is None else torch.where(mask.unsqueeze(-1), out, Y)


def _ffn_energy(model: YangExact, Y: Tensor, mask: Tensor | None, ref: Tensor | None) -> Tensor:
    layer = model.layer
    with torch.no_grad():
        return ffn_energy(Y, layer.ffn_weight().to(Y.dtype), layer.B.to(Y.dtype), mask)


YangExact.substeps = (
    SubStep("attention", _attend, _pairwise, (Guarantee("monotone", "0 < alpha <= 2, any W (MM step)", "paper"),)),
    SubStep("feed_forward_relu", _feed_forward, _ffn_energy,
            (Guarantee("monotone", "alpha < 2 / (1 + s), |Wf| <= s, Y >= 0 (proximal gradient step)", "derived"),)),
)


class YangAuthors(YangExact):
    name = "yang_authors"
    reference = "Yang, Huang, Wipf (NeurIPS 2022), the authors' code: W^T W attention without the key bias"
    guarantee_conditions = "none: the forward pass is not the MM step of the energy it reports"
    guarantee_source = "code"
    options = {"attention_variant": "authors", "regularise_energy": True, "spectral_bound": None}
    substeps = ()

    @classmethod
    def random_instance(cls, d: int, generator: torch.Generator) -> Energy:
        instance = super().random_instance(d, generator)
        with torch.no_grad():
            instance.layer.Wf.copy_(authors_ffn_normalisation(instance.layer.Wf))
        return instance


class YangMultihead(YangExact):
    name = "yang_multihead"
    reference = "Yang, Huang, Wipf (NeurIPS 2022), extended to one W_h per block of features (derived)"
    heads = 2

    @classmethod
    def random_instance(cls, d: int, generator: torch.Generator) -> Energy:
        heads = cls.heads if d % cls.heads == 0 else 1
        seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(UnfoldedLayer(d, relu=True, energy_heads=heads, **cls.options).double())
