"""unfolded: Transformer layers as descent steps on an energy (Yang, Huang, Wipf, NeurIPS 2022).

Importing the package is cheap: submodules (``energy``, ``steps``, ``models``, ``claims``, ...)
are imported on first attribute access, so no dataset or plotting library loads at import.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["claims", "energy", "models", "steps"]


def __getattr__(name: str):
    if name in {"archive", "artifacts", "claims", "cli", "config", "curves", "data", "encoders", "energy", "figures",
                "grid", "models", "reference", "registry", "report", "runs", "stats", "steps", "summaries", "synthetic",
                "traces", "training"}:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
