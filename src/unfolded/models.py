"""Encoders on embedded sequences: the unfolded (energy-descent) Transformer and a standard one.

Both take ``Y (b, n, d)`` and ``mask (b, n)`` (True = real token) and return an
:class:`EncoderOutput` with ``.hidden (b, n, d)`` and ``.energies (b, num_layers + 1)``: the energy
before the first layer and after each layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .bounds import ATTENTION_STEP_BOUND, ffn_step_bound
from .energy import attention_energy, ffn_energy, layernorm_projection, relu_indicator, total_energy
from .steps import ATTENTION_VARIANTS, attention_step, ffn_step, relu_step

__all__ = [
    "SUBSTEP_ENERGIES",
    "EncoderOutput",
    "LayerTrace",
    "StandardTransformer",
    "SymmetricSpectralClamp",
    "UnfoldedLayer",
    "UnfoldedTransformer",
    "authors_ffn_normalisation",
]


@dataclass
class EncoderOutput:
    hidden: Tensor  # (b, n, d)
    energies: Tensor | None  # (b, num_layers + 1), float32 or float64


@dataclass
class LayerTrace:
    """Per-layer diagnostics of one forward pass (all float32/float64, ``L = num_layers``).

    ``energies (b, L + 1)``: the plotted curve, the energy after ``t`` layers under the parameters
    of the layer that produced it (layer 1 for ``t = 0``). ``before``, ``middle``, ``after``
    ``(b, L)``: the energy of layer ``t``'s own function at its input, after its attention
    sub-step, and at its output; ``after - before`` is the step's change on one function, and
    ``middle - before`` the attention sub-step's share of it (NaN where a layer has no energy
    split). ``spread (b, L + 1)``: :func:`unfolded.diagnostics.token_spread` of each state;
    ``update (b, L)``: ``|Y_t - Y_{t-1}| / |Y_{t-1}|`` over real tokens. ``substeps``: for each key of
    :data:`SUBSTEP_ENERGIES`, the pair ``(before, after)`` of ``(b, L)`` energies around the step that
    energy is about (empty for models without an energy, such as the standard Transformer).
    """

    energies: Tensor
    before: Tensor
    middle: Tensor
    after: Tensor
    spread: Tensor
    update: Tensor
    substeps: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)


#: The energies measured around each layer step of an unfolded model, keyed by the column stem of
#: :func:`unfolded.columns.trace_rows`: (name, what guarantees that the step does not raise it, tag).
#: The three sub-step energies are the theorems' (docs/theory.md §2), each checked on the sub-step
#: it is about; the two totals are checked on the whole layer, where no theorem covers alternating
#: sub-steps (§3.3; the paper's Figures 2-3 show such a sum can rise).
SUBSTEP_ENERGIES = {
    "pairwise": ("pairwise term, attention sub-step", "theorem (MM step, §2.1)"),
    "ffn_quadratic": ("feed-forward quadratic, gradient sub-step", "theorem (gradient step, §2.2)"),
    "ffn_relu": ("feed-forward + ReLU indicator, feed-forward sub-step", "theorem (proximal gradient step, §2.3)"),
    "total": ("total without the regulariser, layer", "no theorem (alternating steps, §3.3)"),
    "total_regularised": ("total with the regulariser, layer", "no theorem; the authors' energy (regularise_energy: true)"),
}


def substep_energies(layer, Y: Tensor, attended: Tensor, out: Tensor, mask: Tensor | None,
                     alpha_ffn: float | Tensor | None, anchor: Tensor | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    """Each energy of :data:`SUBSTEP_ENERGIES` before and after the step it is about, for one layer step
    ``Y -> attended -> out`` of ``layer`` (evaluated in float32 or float64), ``(b,)`` each. A layer with recall
    measures the anchored energies (the feed-forward term and the totals hold the anchor to ``anchor``)."""
    Y, attended, out = _energy_precision(Y), _energy_precision(attended), _energy_precision(out)
    dtype = Y.dtype
    recall = getattr(layer, "recall", 0.0)
    anchor = None if anchor is None or not recall else _energy_precision(anchor).to(dtype)
    with torch.autocast(Y.device.type, enabled=False):
        W, Wf, B = layer.W.to(dtype), layer.ffn_weight().to(dtype), layer.B.to(dtype)
        kept = {"anchor": anchor, "recall": recall}
        gradient = ffn_step(attended, Wf, B, layer.alpha_ffn if alpha_ffn is None else alpha_ffn, **kept)
        if layer.relu:
            ffn_relu = lambda Z: ffn_energy(Z, Wf, B, mask, **kept) + relu_indicator(Z, mask)  # noqa: E731
        else:  # no proximal step to check
            ffn_relu = lambda Z: torch.full(Z.shape[:1], math.nan, dtype=dtype, device=Z.device)  # noqa: E731
        return {
            "pairwise": (attention_energy(Y, W, mask, regularise=False), attention_energy(attended, W, mask, regularise=False)),
            "ffn_quadratic": (ffn_energy(attended, Wf, B, mask, **kept), ffn_energy(gradient, Wf, B, mask, **kept)),
            "ffn_relu": (ffn_relu(attended), ffn_relu(out)),
            "total": (total_energy(Y, W, Wf, B, mask, regularise=False, **kept),
                      total_energy(out, W, Wf, B, mask, regularise=False, **kept)),
            "total_regularised": (total_energy(Y, W, Wf, B, mask, regularise=True, **kept),
                                  total_energy(out, W, Wf, B, mask, regularise=True, **kept)),
        }


def _relative_update(previous: Tensor, current: Tensor, mask: Tensor | None) -> Tensor:
    weights = 1.0 if mask is None else mask.unsqueeze(-1).to(previous.dtype)
    change = ((current - previous) * weights).flatten(1).norm(dim=-1)
    return change / (previous * weights).flatten(1).norm(dim=-1).clamp_min(torch.finfo(previous.dtype).tiny)


def _energy_precision(Y: Tensor) -> Tensor:
    """Energies are always evaluated in float32 or float64, also under mixed precision."""
    return Y.float() if Y.dtype in (torch.float16, torch.bfloat16) else Y


class SymmetricSpectralClamp(nn.Module):
    """Parametrisation ``A -> U clamp(Lambda, lower, upper) U^T`` with ``U Lambda U^T = (A + A^T) / 2``.

    Keeps the feed-forward weight symmetric with its spectrum inside ``[lower, upper]`` at every
    forward pass, in training and evaluation alike (docs/theory.md §5, item 5). With ``upper < 1`` and
    ``lower > -1`` the feed-forward step with ``alpha = 1`` provably descends its energy.
    """

    def __init__(self, lower: float, upper: float):
        super().__init__()
        if not lower <= upper:
            raise ValueError(f"spectral bounds: expected lower <= upper, got {lower} > {upper}")
        self.lower, self.upper = lower, upper

    def forward(self, A: Tensor) -> Tensor:
        eigenvalues, eigenvectors = torch.linalg.eigh(0.5 * (A + A.transpose(-1, -2)))
        clamped = eigenvalues.clamp(self.lower, self.upper)
        return (eigenvectors * clamped.unsqueeze(-2)) @ eigenvectors.transpose(-1, -2)


def authors_ffn_normalisation(A: Tensor, bound: float = 0.95) -> Tensor:
    """The authors' ``normalize_weight``: eigen-clip of ``A A^T`` to ``[-bound, bound]`` (docs/theory.md §5, 5).

    Because ``A A^T`` is PSD the result has its spectrum in ``[0, bound]``.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(A @ A.transpose(-1, -2))
    return (eigenvectors * eigenvalues.clamp(-bound, bound).unsqueeze(-2)) @ eigenvectors.transpose(
        -1, -2
    )


class UnfoldedLayer(nn.Module):
    """One unfolded layer: attention step, feed-forward step, optional ReLU and layer-norm projection.

    Parameters are those of the energy (docs/theory.md §1.5): ``W (d, d)`` for the token interaction,
    a symmetric ``Wf (d, d)`` and ``B (d,)`` for the feed-forward term. Initialisation follows the
    authors' code (Xavier normal).
    """

    def __init__(
        self,
        d: int,
        *,
        attention_variant: str = "exact",
        alpha_attention: float = 1.0,
        alpha_ffn: float = 1.0,
        relu: bool = True,
        layer_norm: bool = False,
        spectral_bound: float | None = 0.95,
        regularise_energy: bool = True,
        layer_norm_eps: float = 1e-6,
        use_sdpa: bool | None = None,
        w_scale: float = 1.0,
        energy_heads: int = 1,
        attention: bool = True,
        recall: float = 0.0,
    ):
        super().__init__()
        if recall < 0:
            raise ValueError(f"recall: expected a non-negative anchor weight, got {recall}")
        # recall > 0: the feed-forward term holds the anchor recall/2 |Y - X|^2 to the encoder's input X (§8)
        self.recall = float(recall)
        if attention_variant not in ATTENTION_VARIANTS:
            raise ValueError(
                f"attention_variant: expected one of {ATTENTION_VARIANTS}, got {attention_variant!r}"
            )
        self.attention_variant = attention_variant
        self.alpha_attention, self.alpha_ffn = alpha_attention, alpha_ffn
        self.relu, self.layer_norm, self.layer_norm_eps = relu, layer_norm, layer_norm_eps
        self.regularise_energy, self.use_sdpa = regularise_energy, use_sdpa
        # attention=False: the ablation without the attention step (no token mixing; W is unused)
        self.attention = attention
        # w_scale multiplies the Xavier-normal init of W: a larger scale sharpens the kernel
        # exp(-1/2 |(y_i - y_j) W|^2), so tokens attract only near neighbours.
        # energy_heads > 1: the multi-head energy, one W_h (k, k) per block of k = d / H features
        if energy_heads < 1 or d % energy_heads:
            raise ValueError(f"energy_heads: expected a positive divisor of d = {d}, got {energy_heads}")
        self.energy_heads = energy_heads
        if energy_heads == 1:
            self.W = nn.Parameter(nn.init.xavier_normal_(torch.empty(d, d)) * w_scale)
        else:
            k = d // energy_heads
            self.W = nn.Parameter(torch.stack([nn.init.xavier_normal_(torch.empty(k, k)) for _ in range(energy_heads)])
                                  * w_scale)
        self.Wf = nn.Parameter(nn.init.xavier_normal_(torch.empty(d, d)))
        self.B = nn.Parameter(torch.randn(d) * math.sqrt(2.0 / (d + 1)))
        if spectral_bound is not None:
            parametrize.register_parametrization(
                self, "Wf", SymmetricSpectralClamp(-spectral_bound, spectral_bound)
            )

    def ffn_weight(self) -> Tensor:
        """The symmetric feed-forward weight actually used (symmetrised when unconstrained)."""
        Wf = self.Wf
        return Wf if parametrize.is_parametrized(self, "Wf") else 0.5 * (Wf + Wf.T)

    def attend(self, Y: Tensor, mask: Tensor | None = None, alpha: float | Tensor | None = None) -> Tensor:
        """The attention sub-step (the MM step on the pairwise term); ``alpha`` overrides the step size.
        Without attention (the ablation) the state passes unchanged."""
        if not self.attention:
            return Y
        return attention_step(
            Y, self.W, mask, self.alpha_attention if alpha is None else alpha, variant=self.attention_variant,
            use_sdpa=self.use_sdpa,
        )

    def feed_forward(self, Y: Tensor, alpha: float | Tensor | None = None, anchor: Tensor | None = None) -> Tensor:
        """The feed-forward gradient step (on the anchored term with recall: ``anchor`` is the encoder's input),
        then the ReLU prox and the layer-norm projection if enabled."""
        Y = ffn_step(Y, self.ffn_weight(), self.B, self.alpha_ffn if alpha is None else alpha, anchor=anchor,
                     recall=self.recall)
        if self.relu:
            Y = relu_step(Y)
        if self.layer_norm:
            Y = layernorm_projection(Y, self.layer_norm_eps)
        return Y

    def forward(self, Y: Tensor, mask: Tensor | None = None, alphas: tuple | None = None,
                anchor: Tensor | None = None) -> Tensor:
        alpha_attention, alpha_ffn = alphas if alphas is not None else (None, None)
        out = self.feed_forward(self.attend(Y, mask, alpha_attention), alpha_ffn, anchor)
        # padded tokens stay as they came in
        return out if mask is None else torch.where(mask.unsqueeze(-1), out, Y)

    def energy(self, Y: Tensor, mask: Tensor | None = None, anchor: Tensor | None = None) -> Tensor:
        """Total energy (docs/theory.md §1.5) of ``Y`` under this layer's parameters, ``(b,)``; with recall, the
        anchored energy ``E_X`` (§8) with ``X = anchor``."""
        Y = _energy_precision(Y)
        dtype = Y.dtype
        with torch.autocast(Y.device.type, enabled=False):
            return total_energy(
                Y,
                self.W.to(dtype),
                self.ffn_weight().to(dtype),
                self.B.to(dtype),
                mask,
                regularise=self.regularise_energy,
                anchor=None if anchor is None or not self.recall else _energy_precision(anchor).to(dtype),
                recall=self.recall,
            )


class UnfoldedTransformer(nn.Module):
    """``num_layers`` unfolded layers; weights tied across layers (the authors' code) or untied.

    ``energies[:, t]`` is the total energy of the hidden state after ``t`` layers, evaluated with
    the parameters of the layer that produced it (layer 1 for ``t = 0``); with tied weights it is
    one energy along the whole trajectory.
    """

    def __init__(self, d: int, num_layers: int, *, tied: bool = True, learned_step_sizes: bool = False,
                 **layer_options):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers: expected >= 1, got {num_layers}")
        self.d, self.num_layers, self.tied = d, num_layers, tied
        self.layers = nn.ModuleList(
            UnfoldedLayer(d, **layer_options) for _ in range(1 if tied else num_layers)
        )
        self.learned_step_sizes = learned_step_sizes
        if learned_step_sizes:
            spectral_bound = layer_options.get("spectral_bound", 0.95)
            if spectral_bound is None:
                raise ValueError("learned_step_sizes needs spectral_bound (the feed-forward step's range depends on it)")
            # alpha = bound * sigmoid(logit): every value of the logit is a step size inside the
            # descent range, (0, 2] for attention and (0, 2 / (1 + spectral_bound + recall)) for the feed-forward step
            self.step_bounds = (ATTENTION_STEP_BOUND, ffn_step_bound(spectral_bound, layer_options.get("recall", 0.0)))
            start = [layer_options.get("alpha_attention", 1.0) / self.step_bounds[0],
                     layer_options.get("alpha_ffn", 1.0) / self.step_bounds[1]]
            if not all(0.0 < value < 1.0 for value in start):
                raise ValueError(f"learned_step_sizes: the initial step sizes must lie inside their ranges, got {start}")
            self.step_logits = nn.Parameter(torch.logit(torch.tensor(start)).repeat(num_layers, 1))

    def layer(self, t: int) -> UnfoldedLayer:
        """The module applied as layer ``t`` (0-based)."""
        return self.layers[0 if self.tied else t]

    def step_sizes(self, t: int) -> tuple | None:
        """``(alpha_attention, alpha_ffn)`` of layer ``t`` when they are learned (beyond the trained
        depth, the last layer's), otherwise None (the layer's fixed step sizes)."""
        if not self.learned_step_sizes:
            return None
        fractions = torch.sigmoid(self.step_logits[min(t, self.num_layers - 1)])
        return fractions[0] * self.step_bounds[0], fractions[1] * self.step_bounds[1]

    def _depth(self, num_layers: int | None) -> int:
        depth = self.num_layers if num_layers is None else num_layers
        if not self.tied and depth > self.num_layers:
            raise ValueError(f"num_layers: an untied model has {self.num_layers} layers, got {depth}")
        return depth

    def forward(
        self, Y: Tensor, mask: Tensor | None = None, *, return_energies: bool = True, num_layers: int | None = None
    ) -> EncoderOutput:
        """``num_layers`` overrides the depth (a tied model can run deeper than it was trained)."""
        # cached(): each parametrised weight (the spectral clamp's eigendecomposition) is computed once
        # per pass, not once per layer application, which a tied encoder repeats num_layers times
        with parametrize.cached():
            X = Y  # the anchor of a model with recall: the encoder's own input
            energies = [self.layer(0).energy(Y, mask, X)] if return_energies else []
            for t in range(self._depth(num_layers)):
                layer = self.layer(t)
                Y = layer(Y, mask, self.step_sizes(t), X)
                if return_energies:
                    energies.append(layer.energy(Y, mask, X))
        return EncoderOutput(Y, torch.stack(energies, -1) if return_energies else None)

    @parametrize.cached()
    def states(self, Y: Tensor, mask: Tensor | None = None, *, num_layers: int | None = None) -> list[Tensor]:
        """The hidden state after each of ``num_layers`` layers: element ``t - 1`` is what
        ``forward(..., num_layers=t).hidden`` returns, from one pass."""
        states, X = [], Y
        for t in range(self._depth(num_layers)):
            Y = self.layer(t)(Y, mask, self.step_sizes(t), X)
            states.append(Y)
        return states

    @torch.no_grad()
    @parametrize.cached()
    def trace(self, Y: Tensor, mask: Tensor | None = None, *, num_layers: int | None = None,
              substeps: bool = True) -> LayerTrace:
        """Run ``num_layers`` layers (default: the trained depth; tied models may go deeper) and record
        each step on the function of the layer that takes it (:class:`LayerTrace`), and with ``substeps``
        each energy of :data:`SUBSTEP_ENERGIES` around its step."""
        from .diagnostics import token_spread

        depth = self._depth(num_layers)
        X = Y  # the anchor of a model with recall
        energies, before, middle, after = [self.layer(0).energy(Y, mask, X)], [], [], []
        spread, update = [token_spread(_energy_precision(Y), mask)], []
        recorded = {key: ([], []) for key in SUBSTEP_ENERGIES} if substeps else {}
        for t in range(depth):
            layer = self.layer(t)
            alpha_attention, alpha_ffn = self.step_sizes(t) or (None, None)
            attended = layer.attend(Y, mask, alpha_attention)
            out = layer.feed_forward(attended, alpha_ffn, X)
            if mask is not None:
                out = torch.where(mask.unsqueeze(-1), out, Y)
            before.append(layer.energy(Y, mask, X))
            middle.append(layer.energy(attended, mask, X))
            after.append(layer.energy(out, mask, X))
            energies.append(after[-1])
            spread.append(token_spread(_energy_precision(out), mask))
            update.append(_relative_update(_energy_precision(Y), _energy_precision(out), mask))
            if substeps:
                for key, (start, end) in substep_energies(layer, Y, attended, out, mask, alpha_ffn, X).items():
                    recorded[key][0].append(start)
                    recorded[key][1].append(end)
            Y = out
        stack = lambda values: torch.stack(values, -1)  # noqa: E731
        return LayerTrace(stack(energies), stack(before), stack(middle), stack(after), stack(spread), stack(update),
                          {key: (stack(start), stack(end)) for key, (start, end) in recorded.items()})


class StandardTransformer(nn.Module):
    """A conventional encoder: multi-head Q/K/V attention, two-layer MLP, residuals, LayerNorm.

    Built from ``torch.nn.TransformerEncoderLayer`` (pre-LN with ``norm_first=True``, post-LN
    otherwise); ``tied=True`` applies one layer ``num_layers`` times, like the unfolded model.

    Energy: a standard layer descends no known energy, so there is no energy of its own to
    report. To put both models on one axis we evaluate a fixed member of the paper's energy family
    on its hidden states, the *probe energy* ``total_energy(Y, W=I/sqrt(d), Wf=0, B=0)``: token
    attraction measured in ``|y_i - y_j|^2 / d`` plus ``(1 + 1/d)/2 |Y|^2``. It has no trainable
    parameters, so a decrease across layers means tokens move closer together or shrink; it is a
    probe, not a claim about what the standard model optimises.
    """

    def __init__(
        self,
        d: int,
        num_layers: int,
        *,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        norm_first: bool = True,
        tied: bool = False,
        dropout: float = 0.0,
        activation: str = "gelu",
        attention: bool = True,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers: expected >= 1, got {num_layers}")
        if d % num_heads:
            raise ValueError(f"num_heads: must divide d = {d}, got {num_heads}")
        self.d, self.num_layers, self.tied, self.attention = d, num_layers, tied, attention
        self.norm_first = norm_first

        def make_layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(
                d,
                num_heads,
                int(mlp_ratio * d),
                dropout,
                activation,
                batch_first=True,
                norm_first=norm_first,
            )

        self.layers = nn.ModuleList(make_layer() for _ in range(1 if tied else num_layers))
        if not attention:  # the ablation: each layer keeps only its feed-forward sub-layer (no token mixing)
            for layer in self.layers:
                del layer.self_attn, layer.norm1, layer.dropout1
        self.final_norm = nn.LayerNorm(d) if norm_first else nn.Identity()
        self.register_buffer("probe_W", torch.eye(d) / math.sqrt(d), persistent=False)
        self.register_buffer("probe_Wf", torch.zeros(d, d), persistent=False)
        self.register_buffer("probe_B", torch.zeros(d), persistent=False)

    def _layer(self, t: int, Y: Tensor, padding: Tensor | None) -> Tensor:
        """Layer ``t`` applied to ``Y``; without attention, its feed-forward sub-layer with its residual and
        LayerNorm only (``norm2``, ``_ff_block`` of ``nn.TransformerEncoderLayer``)."""
        layer = self.layers[0 if self.tied else t]
        if self.attention:
            return layer(Y, src_key_padding_mask=padding)
        if self.norm_first:
            return Y + layer._ff_block(layer.norm2(Y))
        return layer.norm2(Y + layer._ff_block(Y))

    def probe_energy(self, Y: Tensor, mask: Tensor | None = None) -> Tensor:
        Y = _energy_precision(Y)
        dtype = Y.dtype
        with torch.autocast(Y.device.type, enabled=False):
            return total_energy(
                Y, self.probe_W.to(dtype), self.probe_Wf.to(dtype), self.probe_B.to(dtype), mask
            )

    def forward(
        self, Y: Tensor, mask: Tensor | None = None, *, return_energies: bool = True, num_layers: int | None = None
    ) -> EncoderOutput:
        """``num_layers`` overrides the depth (a tied model can run deeper than it was trained)."""
        padding = None if mask is None else ~mask
        energies = [self.probe_energy(Y, mask)] if return_energies else []
        depth = self.num_layers if num_layers is None else num_layers
        if not self.tied and depth > self.num_layers:
            raise ValueError(f"num_layers: an untied model has {self.num_layers} layers, got {depth}")
        for t in range(depth):
            Y = self._layer(t, Y, padding)
            if return_energies:
                energies.append(self.probe_energy(Y, mask))
        return EncoderOutput(self.final_norm(Y), torch.stack(energies, -1) if return_energies else None)

    def states(self, Y: Tensor, mask: Tensor | None = None, *, num_layers: int | None = None) -> list[Tensor]:
        """The hidden state after each of ``num_layers`` layers: element ``t - 1`` is what
        ``forward(..., num_layers=t).hidden`` returns, from one pass."""
        padding = None if mask is None else ~mask
        depth = self.num_layers if num_layers is None else num_layers
        if not self.tied and depth > self.num_layers:
            raise ValueError(f"num_layers: an untied model has {self.num_layers} layers, got {depth}")
        states = []
        for t in range(depth):
            Y = self._layer(t, Y, padding)
            states.append(self.final_norm(Y))
        return states

    @torch.no_grad()
    def trace(self, Y: Tensor, mask: Tensor | None = None, *, num_layers: int | None = None,
              substeps: bool = True) -> LayerTrace:
        """:class:`LayerTrace` with the probe energy (one fixed function for every layer, so
        ``before``/``after`` are consecutive points of the curve); ``middle`` is NaN. A standard layer has
        no sub-step energies, so ``substeps`` changes nothing."""
        from .diagnostics import token_spread

        depth = self.num_layers if num_layers is None else num_layers
        if not self.tied and depth > self.num_layers:
            raise ValueError(f"num_layers: an untied model has {self.num_layers} layers, got {depth}")
        padding = None if mask is None else ~mask
        energies, spread, update = [self.probe_energy(Y, mask)], [token_spread(_energy_precision(Y), mask)], []
        for t in range(depth):
            out = self._layer(t, Y, padding)
            energies.append(self.probe_energy(out, mask))
            spread.append(token_spread(_energy_precision(out), mask))
            update.append(_relative_update(_energy_precision(Y), _energy_precision(out), mask))
            Y = out
        energies = torch.stack(energies, -1)
        nan = torch.full_like(energies[:, 1:], float("nan"))
        return LayerTrace(energies, energies[:, :-1], nan, energies[:, 1:], torch.stack(spread, -1),
                          torch.stack(update, -1))
