"""Step-size bounds of the descent theorems, defined once (no heavy imports: the config validator
uses them before any job runs). The schema, the models, the claims and the learnable step sizes
read these; a test checks that the schema's numbers agree."""

from __future__ import annotations

__all__ = ["ATTENTION_STEP_BOUND", "ffn_step_bound"]

#: Largest attention step size that provably descends the pairwise energy, for every input and W.
#: The Gaussian kernel matrix Gamma is positive semidefinite, so D^-1/2 L D^-1/2 = I - D^-1/2 Gamma
#: D^-1/2 has lambda_max <= 1, and the MM step descends for 0 < alpha <= 2 / lambda_max, hence for
#: every alpha in (0, 2] (derived; docs of the claims ``attention_descent`` and
#: ``attention_kernel_bound``). The config schema, the models and the claims use this constant.
ATTENTION_STEP_BOUND = 2.0


def ffn_step_bound(spectral_bound: float, recall: float = 0.0) -> float:
    """Supremum of feed-forward step sizes that descend ``ffn_energy`` for every ``Wf`` with spectrum in
    ``[-spectral_bound, spectral_bound]``: ``2 / (1 + spectral_bound)`` (the step is strictly below it); with the
    recall anchor of weight ``recall``, ``2 / (1 + spectral_bound + recall)``: the anchor adds ``recall`` to the
    curvature (docs/theory.md §8)."""
    return 2.0 / (1.0 + spectral_bound + recall)
