"""The README and the docs pages: size, table of contents, and generated blocks that a renderer owns."""

import re
from pathlib import Path

import pandas as pd
import pytest

from unfolded.report.blocks import BLOCKS

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *(ROOT / "docs" / page for page in ("results.md", "performance.md", "paper-run.md",
                                                                     "energies.md"))]
MARKER = re.compile(r"<!-- ([a-z-]+):start -->")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def test_the_readme_is_short_and_its_contents_link_every_section():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= 12_000, f"README has {len(text)} characters"
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    links = set(re.findall(r"\]\(#([^)]+)\)", contents))
    headings = re.findall(r"^#{2,3} (.+)$", text, re.M)
    sections = {_anchor(h) for h in headings if h != "Contents"}
    assert sections <= links, sorted(sections - links)
    assert links <= sections, sorted(links - sections)


def test_the_readme_keeps_its_order_newcomer_first():
    text = (ROOT / "README.md").read_text()
    order = [text.index(f"\n## {name}") for name in ("Quick start", "Results", "Layout", "Documentation")]
    assert order == sorted(order)


def test_every_generated_block_has_a_renderer_and_every_renderer_a_block():
    found = {}
    for document in DOCUMENTS:
        text = document.read_text()
        for name in MARKER.findall(text):
            assert f"<!-- {name}:end -->" in text, f"{document.name}: {name} is not closed"
            found.setdefault(name, []).append(document.name)
    assert set(found) <= set(BLOCKS), sorted(set(found) - set(BLOCKS))
    assert set(BLOCKS) <= set(found), sorted(set(BLOCKS) - set(found))
    assert all(len(places) == 1 for places in found.values()), found


def test_local_links_in_the_readme_and_docs_resolve():
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", document.read_text()):
            if "://" in target:
                continue
            assert (document.parent / target).exists(), f"{document.name} links to missing {target}"


#: Numbers the README's hand-written prose may carry: citations, versions, names and the paper's own
#: settings. Every result (a count, an accuracy, a time) belongs inside a generated block.
CITED = re.compile(
    r"NeurIPS 2022|arXiv 2205\.13891|Python 3\.11|Figures? [1-6](-[1-6])?|GloVe 840B|12 layers|SST-2|CIFAR-10|"
    r"\b(19|20)\d\d\b|CC BY(-SA)? \d\.\d|Licence 1\.0|#[\w-]+|\(docs/figures/[\w.-]+\.png\)"
)


def test_the_readme_prose_types_no_result_by_hand():
    text = (ROOT / "README.md").read_text()
    prose = re.sub(r"<!-- ([a-z-]+):start -->.*?<!-- \1:end -->", "", text, flags=re.S)
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)
    typed = [line for line in prose.splitlines() if re.search(r"\d", CITED.sub("", line))]
    assert not typed, typed


def _block(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"\n<!-- {name}:end -->", 1)[0]


@pytest.mark.parametrize("name,document", [("study-headline", "README.md"), ("study", "docs/results.md"),
                                           ("study-superseded", "docs/results.md"), ("recall-headline", "README.md"),
                                           ("recall", "docs/results.md"), ("realdata-headline", "README.md"),
                                           ("realdata", "docs/results.md"), ("energies-trained-headline", "README.md"),
                                           ("energies-trained", "docs/energies.md")])
def test_the_committed_study_blocks_are_what_the_renderer_makes_of_the_committed_archive(name, document):
    """The study blocks quote the archive alone: rendered now from results/archive, they equal the
    committed text, so a change of the archive or of the study prose that was not regenerated fails."""
    from unfolded.config import load_config
    from unfolded.grid import run_specs
    from unfolded.report.blocks import Sources, render

    config = load_config(None)
    sources = Sources(tables=ROOT / "results/tables", data=ROOT / "results/data", archive=ROOT / "results/archive",
                      study_id=config["study"]["id"], study_grid_jobs=len(run_specs(load_config("config/study.yaml"))),
                      kappas=tuple(config["synthetic"]["kappa"]["kappas"]), claims_tolerance=0.0,
                      superseded=tuple(config["study"]["superseded"]), recall_id=config["study"]["recall_id"],
                      realdata_id=config["study"]["realdata_id"], energies_id=config["study"]["energies_id"])
    assert render([name], sources)[name] == _block((ROOT / document).read_text(), name)


def test_the_claims_prose_names_only_registered_claims():
    """The prose quotes claims by id: rendered from a table holding exactly the registry's claims (any
    counts), it must not miss one, so renaming or removing a quoted claim fails here."""
    from unfolded.claims import CLAIMS
    from unfolded.report.claims import claims_headline, claims_markdown, claims_prose

    rows = [{"claim": claim_id, "kind": claim.kind, "source": claim.source, "conditions": claim.conditions,
             "section": claim.section,
             "trials": 10, "violations": 0, "explicit_trials": 1, "explicit_violations": 1, "search_trials": 9,
             "search_violations": 0, "active_trials": 5, "active_violations": 0, "max_increase": 0.0,
             "verdict": "holds"} for claim_id, claim in CLAIMS.items()]
    table = pd.DataFrame(rows)
    prose = claims_prose(table)
    assert prose.count("\n") >= 5
    assert claims_markdown(table).count("\n") == len(CLAIMS) + 1
    assert "hold" in claims_headline(table, {"trials": 10, "seed": 0}, 1e-10)
    with pytest.raises(KeyError, match="claims table has no row"):
        claims_prose(table[table["claim"] != "attention_descent"])
