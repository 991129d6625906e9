"""The generated blocks of the README and the docs pages.

Each block sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in one document. Rule
``documents`` renders every block of :data:`RUN_BLOCKS` from the default run's tables and the study
archive into ``results/documents/NAME.md``; rule ``benchmark_documents`` renders
:data:`BENCHMARK_BLOCKS` from the benchmark scripts' outputs. ``make readme`` runs both and splices
the rendered files into the documents (:func:`splice`), so no number in a block is typed by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BENCHMARK_BLOCKS", "BLOCKS", "RUN_BLOCKS", "Sources", "render", "replace_block", "splice"]


@dataclass(frozen=True)
class Sources:
    """Everything a block is rendered from: the default run's tables and data, the benchmark files of its
    jobs, its energy-curve tables, the study archive, and the settings the prose quotes."""

    tables: Path
    data: Path
    archive: Path
    study_id: str
    study_grid_jobs: int
    kappas: tuple[float, ...]
    claims_tolerance: float
    superseded: tuple[str, ...] = ()
    recall_id: str = "recall-2026-12"
    realdata_id: str = "sst2-real-2026-12"
    energies_id: str = "energies-2026-12"
    benchmarks: tuple[Path, ...] = ()
    benchmarks_root: Path = Path("results/benchmarks")
    energy_curves: tuple[Path, ...] = ()
    plugin_curves: tuple[Path, ...] = ()
    ratios: Path | None = None
    paper_estimate: Path | None = None

    def claims(self):
        import pandas as pd

        return pd.read_csv(self.tables / "claims.csv")

    def claims_provenance(self) -> dict:
        return json.loads((self.tables / "claims.provenance.json").read_text())

    def energy_summary(self, every_energy: bool = False):
        """energy_summary.csv: one row per curve (its plotted energy), or with ``every_energy`` one per (curve, energy)."""
        import pandas as pd

        from ..summaries import plotted_rows

        summary = pd.read_csv(self.tables / "energy_summary.csv")
        return summary if every_energy else plotted_rows(summary)

    def curve_settings(self) -> dict:
        """The energy_curves section shared by every energy-curve table (an error if they differ)."""
        from ..artifacts import read_provenance

        every = [read_provenance(path)["config"]["energy_curves"] for path in self.energy_curves]
        if not every or any(other != every[0] for other in every):
            raise ValueError(f"energy headline: expected energy curves with one shared setting, got {self.energy_curves}")
        return every[0]

    def plugin_table(self):
        """The plug-in energies' curves, all datasets in one table, and the energies' names in registry order."""
        import pandas as pd

        table = pd.concat([pd.read_parquet(path) for path in self.plugin_curves], ignore_index=True)
        return table, list(dict.fromkeys(table["variant"]))

    def study(self, study_id: str | None = None):
        from ..archive import load_archive, load_checks, load_extras
        from .study import ArchivedStudy

        study_id = study_id or self.study_id
        runs, summary, depth, provenance = load_archive(self.archive / study_id)
        checks = tuple(load_checks(self.archive, study_id))
        return ArchivedStudy(study_id, runs, summary, depth, provenance, checks=checks,
                             full_grid_jobs=self.study_grid_jobs, extras=load_extras(self.archive / study_id),
                             check_extras=tuple(load_extras(self.archive / check[3]["study_id"]) for check in checks))

    def recall(self):
        from .recall import RecallArchive

        return RecallArchive.load(self.archive / self.recall_id)

    def realdata(self):
        from .realdata import RealData

        return RealData(self.archive / self.realdata_id)

    def energies_trial(self):
        from .energies_trial import EnergiesTrial

        return EnergiesTrial.load(self.archive / self.energies_id)

    def timings(self):

        from .runtime import job_timings

        return job_timings(list(self.benchmarks), self.benchmarks_root)


def _claims_prose(s: Sources) -> str:
    from .claims import claims_prose

    return claims_prose(s.claims())


def _claims_table(s: Sources) -> str:
    from .claims import claims_markdown

    return claims_markdown(s.claims())


def _claims_headline(s: Sources) -> str:
    from .claims import claims_headline

    return claims_headline(s.claims(), s.claims_provenance()["config"], s.claims_tolerance)


def _energies(s: Sources) -> str:
    from .energies import energies_block

    curves, names = s.plugin_table()
    return energies_block(s.claims(), s.energy_summary(), curves, names)


def _energies_headline(s: Sources) -> str:
    from .energies import energies_headline

    _, names = s.plugin_table()
    return energies_headline(s.claims(), s.energy_summary(), names)


def _energy(s: Sources) -> str:
    from .energy import energy_block

    return energy_block(s.energy_summary())


def _energy_headline(s: Sources) -> str:
    from .figure6 import figure6_headline

    return figure6_headline(s.energy_summary(every_energy=True), s.curve_settings())


def _trained_curves(s: Sources) -> str:
    from .figure6 import figure6_block

    return figure6_block(s.energy_summary(every_energy=True))


def _regime(s: Sources) -> str:
    import pandas as pd

    from .energy import regime_block

    meta = json.loads((s.tables / "regime_search.provenance.json").read_text())
    return regime_block(pd.read_csv(s.tables / "regime_search.csv"), meta)


def _accuracy(s: Sources) -> str:
    import pandas as pd

    from .accuracy import accuracy_markdown

    return accuracy_markdown(pd.read_csv(s.tables / "accuracy_summary.csv")).strip()


def _study(s: Sources) -> str:
    from .study import study_block

    return study_block(s.study())


def _study_superseded(s: Sources) -> str:
    from .study import study_block

    return "\n\n".join(f"#### Study `{study_id}`\n\n" + study_block(s.study(study_id), superseded_by=s.study_id)
                       for study_id in s.superseded if study_id != s.study_id)


def _study_headline(s: Sources) -> str:
    from .study import study_headline

    return study_headline(s.study())


def _recall(s: Sources) -> str:
    from .recall import recall_block

    return recall_block(s.recall())


def _recall_headline(s: Sources) -> str:
    from .recall import recall_headline

    return recall_headline(s.recall())


def _realdata(s: Sources) -> str:
    from .realdata import realdata_block

    return realdata_block(s.realdata())


def _realdata_headline(s: Sources) -> str:
    from .realdata import realdata_headline

    return realdata_headline(s.realdata())


def _energies_trained(s: Sources) -> str:
    from .energies_trial import energies_trial_block

    return energies_trial_block(s.energies_trial())


def _energies_trained_headline(s: Sources) -> str:
    from .energies_trial import energies_trial_headline

    return energies_trial_headline(s.energies_trial())


def _figures(s: Sources) -> str:
    from .synthetic import figures_block

    return figures_block(s.data, list(s.kappas))


def _runtime(s: Sources) -> str:
    from .runtime import runtime_block

    return runtime_block(s.timings())


def _runtime_headline(s: Sources) -> str:
    from .runtime import runtime_headline

    return runtime_headline(s.timings(), s.claims_provenance().get("device", "?"))


def _provenance(s: Sources) -> str:
    from .runtime import provenance_block

    return provenance_block(s.claims_provenance())


def _performance(s: Sources) -> str:
    import pandas as pd

    from .runtime import performance_block

    return performance_block(pd.read_csv(s.ratios))


def _performance_headline(s: Sources) -> str:
    import pandas as pd

    from .runtime import performance_headline

    return performance_headline(pd.read_csv(s.ratios))


def _paper_estimate(s: Sources) -> str:
    return Path(s.paper_estimate).read_text().strip()


#: Blocks rendered from the default run's results and the study archive (rule documents).
RUN_BLOCKS: dict[str, Callable[[Sources], str]] = {
    "claims": _claims_table,
    "claims-prose": _claims_prose,
    "claims-headline": _claims_headline,
    "energy": _energy,
    "energy-headline": _energy_headline,
    "trained-curves": _trained_curves,
    "energies": _energies,
    "energies-headline": _energies_headline,
    "regime": _regime,
    "accuracy": _accuracy,
    "study": _study,
    "study-headline": _study_headline,
    "study-superseded": _study_superseded,
    "recall": _recall,
    "recall-headline": _recall_headline,
    "realdata": _realdata,
    "realdata-headline": _realdata_headline,
    "energies-trained": _energies_trained,
    "energies-trained-headline": _energies_trained_headline,
    "figures": _figures,
    "runtime": _runtime,
    "runtime-headline": _runtime_headline,
    "provenance": _provenance,
}
#: Blocks rendered from the benchmark scripts' outputs (rule benchmark_documents).
BENCHMARK_BLOCKS: dict[str, Callable[[Sources], str]] = {
    "performance": _performance,
    "performance-headline": _performance_headline,
    "paper-estimate": _paper_estimate,
}
BLOCKS = {**RUN_BLOCKS, **BENCHMARK_BLOCKS}


def render(names: list[str] | tuple[str, ...], sources: Sources) -> dict[str, str]:
    """The body of each named block."""
    unknown = sorted(set(names) - set(BLOCKS))
    if unknown:
        raise KeyError(f"unknown generated block(s) {unknown}; known: {sorted(BLOCKS)}")
    return {name: BLOCKS[name](sources) for name in names}


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the body between the markers of block ``name`` replaced by ``body``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        from ..errors import UserError

        raise UserError(f"block {name}: the markers {start} and {end} must both be there")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def splice(documents: list[Path], rendered: Path) -> tuple[list[str], list[str]]:
    """Replace every block of ``documents`` whose rendered body ``rendered/NAME.md`` exists; returns the
    names of the blocks replaced and of those left as they were (no rendered file)."""
    from ..artifacts import write_text

    replaced, kept = set(), set()
    for document in documents:
        text = Path(document).read_text()
        for name in BLOCKS:
            if f"<!-- {name}:start -->" not in text:
                continue
            body = Path(rendered) / f"{name}.md"
            if body.is_file():
                text = replace_block(text, name, body.read_text().rstrip("\n"))
                replaced.add(name)
            else:
                kept.add(name)
        write_text(document, text)
    return sorted(replaced), sorted(kept)
