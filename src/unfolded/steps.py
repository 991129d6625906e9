"""Update rules: one pure function per Transformer sub-layer, each a descent step (docs/theory.md §2).

Shapes follow :mod:`unfolded.energy`: ``Y (b, n, d)``, ``mask (b, n)`` with True for real tokens.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .bounds import ATTENTION_STEP_BOUND, ffn_step_bound
from .energy import head_blocks, merge_heads

__all__ = [
    "ATTENTION_STEP_BOUND",
    "ATTENTION_VARIANTS",
    "attention_step",
    "attention_weights",
    "ffn_step",
    "ffn_step_bound",
    "relu_step",
]

AttentionVariant = Literal["exact", "no_bias", "authors"]
#: ``exact``: softmax with the key bias ``-1/2 |y_j W|^2`` and queries = keys = ``Y W``; the
#: majorization-minimization step on :func:`unfolded.energy.pairwise_energy` (docs/theory.md §2.1).
#: ``no_bias``: the same without the key bias (plain softmax, an MM step only when all
#: ``|y_j W|`` are equal). ``authors``: the authors' forward pass, plain softmax of
#: ``Y W^T W Y^T`` (queries = keys = ``Y W^T``) while their energy uses the metric ``W W^T``
#: (docs/theory.md §5, items 1-2).
ATTENTION_VARIANTS: tuple[str, ...] = ("exact", "no_bias", "authors")


def _queries_keys(Y: Tensor, W: Tensor, variant: str) -> tuple[Tensor, Tensor]:
    """Queries and keys ``(b, n, k)`` whose scaled-by-1 dot products are the attention logits."""
    if variant == "exact":
        Z = Y @ W  # (b, n, k)
        # Fold the key bias into one extra column: queries carry 1, keys carry the bias.
        bias = -0.5 * Z.pow(2).sum(-1, keepdim=True)  # (b, n, 1)
        return torch.cat([Z, torch.ones_like(bias)], -1), torch.cat([Z, bias], -1)
    if variant == "no_bias":
        Z = Y @ W
        return Z, Z
    if variant == "authors":
        Z = Y @ W.transpose(-1, -2)
        return Z, Z
    raise ValueError(f"attention variant: expected one of {ATTENTION_VARIANTS}, got {variant!r}")


def _as_batch(Y: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None, bool]:
    if Y.dim() == 2:
        return Y.unsqueeze(0), None if mask is None else mask.unsqueeze(0), True
    if Y.dim() != 3:
        raise ValueError(f"Y: expected shape (b, n, d) or (n, d), got {tuple(Y.shape)}")
    if mask is not None and mask.shape != Y.shape[:2]:
        raise ValueError(f"mask: expected shape {tuple(Y.shape[:2])}, got {tuple(mask.shape)}")
    return Y, mask, False


def _logits(Y: Tensor, W: Tensor, variant: str) -> Tensor:
    """Attention logits ``(b, n, n)``; the exact variant adds the key bias as a broadcast row."""
    if variant == "exact":
        Z = Y @ W  # (b, n, k)
        bias = -0.5 * Z.pow(2).sum(-1).unsqueeze(-2)  # (b, 1, n): one value per key
        return torch.baddbmm(bias, Z, Z.transpose(-1, -2))  # fused: bias + Z Z^T
    queries, keys = _queries_keys(Y, W, variant)
    return queries @ keys.transpose(-1, -2)


def attention_weights(
    Y: Tensor, W: Tensor, mask: Tensor | None = None, *, variant: str = "exact"
) -> Tensor:
    """Row-stochastic attention matrix ``(b, n, n)``; padded keys get weight 0 (explicit path)."""
    Y, mask, unbatched = _as_batch(Y, mask)
    logits = _logits(Y, W, variant)
    if mask is not None:
        logits = logits.masked_fill(~mask.unsqueeze(-2), float("-inf"))
    weights = torch.softmax(logits, -1)
    return weights.squeeze(0) if unbatched else weights


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def attention_step(
    Y: Tensor,
    W: Tensor,
    mask: Tensor | None = None,
    alpha: float = 1.0,
    *,
    variant: str = "exact",
    use_sdpa: bool | None = None,
) -> Tensor:
    """``(1 - alpha) Y + alpha softmax_j((y_i W)(y_j W)^T - 1/2 |y_j W|^2) Y`` (docs/theory.md §2.1).

    Softmax attention with queries = keys = ``Y W``, values = ``Y``, scale 1 and a per-key
    bias; keys are restricted to real tokens and padded tokens are returned unchanged. It equals
    ``Y - alpha D^{-1} grad E_p(Y) (W W^T)^{-1}``, a preconditioned step on the majorizer of
    :func:`unfolded.energy.pairwise_energy`, and never increases that term for
    ``0 < alpha <= ATTENTION_STEP_BOUND = 2``. ``variant`` selects the authors' versions (:data:`ATTENTION_VARIANTS`).
    With ``use_sdpa`` the product runs through ``scaled_dot_product_attention`` (fused kernels
    on GPU); otherwise through an explicit softmax with the key bias added as a broadcast row.
    The default (``None``) takes SDPA on CUDA and the explicit path elsewhere, where it is the
    faster one (``benchmarks/ratios.py``).
    """
    Y, mask, unbatched = _as_batch(Y, mask)
    if W.dim() == 3:
        out = _multihead_attention_step(Y, W, mask, alpha, variant)
        return out.squeeze(0) if unbatched else out
    if use_sdpa is None:
        use_sdpa = Y.is_cuda
    if use_sdpa:
        queries, keys = _queries_keys(Y, W, variant)
        # Fused kernels want one head dimension for q, k, v, a multiple of 8: pad with zeros,
        # which changes neither the dot products nor the values that are kept.
        width = _round_up(max(queries.shape[-1], Y.shape[-1]), 8)

        def pad(x: Tensor) -> Tensor:
            return F.pad(x, (0, width - x.shape[-1])).unsqueeze(1)  # (b, 1, n, width)

        attn_mask = None if mask is None else mask[:, None, None, :]  # (b, 1, 1, n)
        attended = F.scaled_dot_product_attention(
            pad(queries), pad(keys), pad(Y), attn_mask=attn_mask, scale=1.0
        )[:, 0, :, : Y.shape[-1]]
    else:
        attended = attention_weights(Y, W, mask, variant=variant) @ Y
    out = _relax(Y, attended, alpha)
    if mask is not None:
        out = torch.where(mask.unsqueeze(-1), out, Y)
    return out.squeeze(0) if unbatched else out


def _relax(Y: Tensor, target: Tensor, alpha: float | Tensor) -> Tensor:
    """``(1 - alpha) Y + alpha target`` (``alpha`` a number or a learnable 0-dim tensor)."""
    if isinstance(alpha, Tensor) or alpha != 1.0:
        return Y + alpha * (target - Y)
    return target


def _multihead_attention_step(Y: Tensor, W: Tensor, mask: Tensor | None, alpha, variant: str) -> Tensor:
    """The MM step of the multi-head energy (:func:`unfolded.energy.pairwise_energy` with ``W (H, k, k)``).

    The energy is a sum of terms on disjoint feature blocks, so its majorizer separates and the MM
    step is one attention step per block: head ``h`` attends with queries = keys = ``Y^h W_h`` and
    the key bias, values ``Y^h``; the heads' outputs are concatenated (multi-head attention whose
    value and output maps are the block identity). Each block descends its own term for
    ``0 < alpha <= 2``, hence the sum does (derived)."""
    heads = W.shape[0]
    blocks = head_blocks(Y, heads)  # (b, H, n, k)
    queries, keys = _queries_keys(blocks, W, variant)
    logits = queries @ keys.transpose(-1, -2)  # (b, H, n, n)
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
    attended = merge_heads(torch.softmax(logits, -1) @ blocks)
    out = _relax(Y, attended, alpha)
    return out if mask is None else torch.where(mask.unsqueeze(-1), out, Y)


def ffn_step(Y: Tensor, Wf: Tensor, B: Tensor, alpha: float = 1.0, *, anchor: Tensor | None = None,
             recall: float = 0.0) -> Tensor:
    """``Y - alpha (Y Wf + Y - B)``: a gradient step on :func:`unfolded.energy.ffn_energy` (docs/theory.md §2.2);
    with ``recall > 0``, ``Y - alpha (Y Wf + Y - B + recall (Y - X))`` on the anchored term (§8), ``X = anchor``.

    A linear layer with symmetric weight ``(1 - alpha) I - alpha Wf`` and bias ``alpha B``;
    it descends for every ``Y`` when ``0 < alpha < 2 / lambda_max(I + Wf)`` and ``Wf > -I``; with the anchor,
    when ``0 < alpha < 2 / (1 + recall + lambda_max(Wf))`` (:func:`unfolded.bounds.ffn_step_bound`).
    """
    if not recall:
        return Y - alpha * (Y @ Wf + Y - B)
    if anchor is None:
        raise ValueError("ffn_step: recall > 0 needs the anchor (the encoder's input X)")
    return Y - alpha * (Y @ Wf + Y - B + recall * (Y - anchor))


def relu_step(Y: Tensor) -> Tensor:
    """Proximal step of the indicator of ``Y >= 0``: ``max(Y, 0)`` (docs/theory.md §2.3)."""
    return torch.clamp_min(Y, 0.0)
