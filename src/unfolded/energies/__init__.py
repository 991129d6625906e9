"""Published energies as plug-ins (docs/energies.md): one file each, one entry in :data:`REGISTRY`.

``REGISTRY`` maps a name to its plug-in class (:class:`unfolded.energies.base.Energy`). The claims
(:mod:`unfolded.claims`), the energy curves of the plug-ins (:mod:`unfolded.energy_plugins`) and the
comparison figure read it, so adding an energy needs its file and its entry here, nothing else;
:func:`register` adds one at run time (a test registers a toy energy this way).
"""

from __future__ import annotations

from ..registry import ENERGY_ENCODERS, EnergyEncoder
from .base import GUARANTEES, SENSES, Counterexample, Energy, Guarantee, SubStep
from .crate import CrateISTA, CrateMSSA
from .energy_transformer import EnergyTransformer, EnergyTransformerCode
from .hopfield import Hopfield
from .token_clustering import TokenClustering
from .yang import YangAuthors, YangExact, YangMultihead

__all__ = ["GUARANTEES", "REGISTRY", "Counterexample", "Energy", "Guarantee", "SubStep", "register"]

#: name -> plug-in class, in the order the tables list them
REGISTRY: dict[str, type[Energy]] = {
    "yang_exact": YangExact,
    "yang_authors": YangAuthors,
    "yang_multihead": YangMultihead,
    "hopfield": Hopfield,
    "energy_transformer": EnergyTransformer,
    "energy_transformer_code": EnergyTransformerCode,
    "crate_ista": CrateISTA,
    "crate_mssa": CrateMSSA,
    "token_clustering": TokenClustering,
}


def _check(plugin: type[Energy]) -> None:
    """Check ``plugin``'s declarations and add it to :data:`REGISTRY`."""
    if not plugin.name:
        raise ValueError(f"{plugin.__name__}: a plug-in needs a name")
    if plugin.sense not in SENSES or plugin.guarantee not in GUARANTEES:
        raise ValueError(f"{plugin.name}: sense must be one of {SENSES} and guarantee one of {GUARANTEES}")
    if plugin.guarantee == "continuous-time" and plugin.relative_step_bound is None:
        raise ValueError(f"{plugin.name}: a continuous-time guarantee needs relative_step_bound, relative_step and scaled")
    for substep in plugin.substeps:
        for guarantee in substep.guarantees:
            if guarantee.kind not in ("monotone", "fejer"):
                raise ValueError(f"{plugin.name}: sub-step {substep.name} can only carry monotone or fejer guarantees")
    if REGISTRY.get(plugin.name, plugin) is not plugin:
        raise ValueError(f"an energy named {plugin.name!r} is registered already ({REGISTRY[plugin.name].__name__})")
    REGISTRY[plugin.name] = plugin


def register(plugin: type[Energy]) -> type[Energy]:
    """Add ``plugin`` to :data:`REGISTRY` under its ``name`` (usable as a class decorator, from code outside
    this package: a file inside it is listed in ``REGISTRY`` instead), and its trainable encoder
    ``<name>_tied`` (with ``<name>_tied-no_attention`` when its step mixes tokens) to
    :data:`unfolded.registry.ENERGY_ENCODERS`."""
    _check(plugin)
    if plugin.name not in ENERGY_ENCODERS:
        ENERGY_ENCODERS[plugin.name] = EnergyEncoder((plugin.name,), mixes_tokens=plugin.mixes_tokens)
    return plugin


for _plugin in list(REGISTRY.values()):  # the package's own entries pass the same checks
    _check(_plugin)
