import pytest
import torch

from unfolded.claims import CLAIMS, run_all
from unfolded.energy import attention_energy, ffn_energy, pairwise_energy
from unfolded.steps import attention_step, ffn_step
from unfolded.synthetic import apollonius_circle

ONE = torch.ones(1, 1, dtype=torch.float64)


def test_every_claim_cites_existing_theory_sections_and_every_theorem_has_a_claim():
    """Claims cite docs/theory.md by section; each cited section exists, and each section that states a
    theorem or a checkable fact (energies, steps, multi-head, step sizes, alternating steps, the authors'
    code) is cited by at least one claim."""
    import re
    from pathlib import Path

    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\. ?", Path("docs/theory.md").read_text(), re.M))
    headings |= {h.rstrip(".") for h in re.findall(r"^### (\d+\.\d+) ", Path("docs/theory.md").read_text(), re.M)}
    cited = {ref for claim in CLAIMS.values() for ref in re.findall(r"§(\d+(?:\.\d+)?)", claim.section)}
    assert len(CLAIMS) >= 20 and cited, "no claim cites docs/theory.md"
    assert cited <= headings, sorted(cited - headings)
    theorems = {"1.1", "1.4", "2.1", "2.2", "2.3", "2.4", "2.6", "2.7", "3.1", "3.2", "3.3", "4.2", "5"}
    assert theorems <= cited, sorted(theorems - cited)


@pytest.mark.parametrize("claim_id", sorted(CLAIMS))
def test_each_claim_behaves_as_its_kind_predicts(claim_id):
    result = CLAIMS[claim_id].check(trials=25, seed=7)
    assert result.trials >= 25
    assert 0 <= result.violations <= result.trials
    if result.kind in ("identity", "theorem"):
        assert result.violations == 0, result
        assert result.max_increase == 0.0
    elif result.kind == "counterexample":
        assert result.violations > 0 and result.max_increase > 0, result
    assert result.as_expected in (True, None)


def test_check_is_deterministic_and_seed_dependent():
    a = CLAIMS["attention_authors_variant"].check(40, seed=3)
    b = CLAIMS["attention_authors_variant"].check(40, seed=3)
    assert a == b
    rows = {CLAIMS["attention_authors_variant"].check(40, seed=s).violations for s in range(6)}
    assert len(rows) > 1  # the seed really draws new instances


def test_paper_counterexample_values():
    """The numbers quoted in docs/theory.md §2.1-4.2 come out of our functions."""
    Y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    assert pairwise_energy(Y, ONE).item() == pytest.approx(-0.6065, abs=1e-4)
    assert pairwise_energy(attention_step(Y, ONE, alpha=1.0), ONE).item() == pytest.approx(-0.9705, abs=1e-4)
    assert pairwise_energy(attention_step(Y, ONE, alpha=3.0), ONE).item() == pytest.approx(-0.4491, abs=1e-4)

    Y = torch.tensor([[0.298], [0.174], [5.855], [-0.554]], dtype=torch.float64)
    assert pairwise_energy(Y, ONE).item() == pytest.approx(-2.455, abs=1e-3)
    assert pairwise_energy(attention_step(Y, ONE, variant="no_bias"), ONE).item() == pytest.approx(-0.746, abs=1e-3)
    assert pairwise_energy(attention_step(Y, ONE), ONE).item() == pytest.approx(-2.988, abs=1e-3)

    Y = torch.tensor([[-8.02], [-8.15], [5.82], [-5.74]], dtype=torch.float64)
    assert attention_energy(Y, ONE).item() == pytest.approx(97.661, abs=1e-3)
    assert attention_energy(attention_step(Y, ONE), ONE).item() == pytest.approx(97.893, abs=1e-3)

    Wf, B = torch.diag(torch.tensor([1.5, 0.0], dtype=torch.float64)), torch.zeros(2, dtype=torch.float64)
    Y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert ffn_energy(Y, Wf, B).item() == pytest.approx(1.25)
    assert ffn_energy(ffn_step(Y, Wf, B, 1.0), Wf, B).item() == pytest.approx(2.8125)


def test_apollonius_circle_shapes():
    y_f, y_h = torch.tensor([0.0, 0.0]), torch.tensor([2.0, 0.0])
    centre, radius = apollonius_circle(y_f, y_h, 0.5)  # C < 1: a disk around y_f
    assert (y_f - centre).norm() < radius and (y_h - centre).norm() > radius
    centre, radius = apollonius_circle(y_f, y_h, 2.0)  # C > 1: the complement of a disk around y_h
    assert (y_h - centre).norm() < radius and (y_f - centre).norm() > radius
    with pytest.raises(ValueError, match="C: expected"):
        apollonius_circle(y_f, y_h, 1.0)


def test_run_all_selects_and_rejects_ids():
    results = run_all(5, 0, ids=["ffn_descent", "pairwise_gradient"])
    assert [r.claim for r in results] == ["pairwise_gradient", "ffn_descent"]
    # a claim's result does not depend on which other claims run
    full = {r.claim: r for r in run_all(5, 0)}
    assert full["ffn_descent"] == results[1]
    with pytest.raises(KeyError, match="unknown claim"):
        run_all(5, 0, ids=["nope"])


def test_readme_claims_table_lists_every_claim():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    table = readme.split("<!-- claims:start -->", 1)[1].split("<!-- claims:end -->", 1)[0]
    rows = [line.split("|")[1].strip() for line in table.strip().splitlines()[2:]]
    assert rows == list(CLAIMS), "docs/results.md claims table is stale: rerun make readme"


def test_every_claim_has_a_source_tag_and_counterexamples_split_their_counts():
    from unfolded.claims import SOURCES

    for claim in CLAIMS.values():
        assert claim.source in SOURCES
    for claim_id in ("attention_large_step", "ffn_large_step", "relu_infeasible_start", "apollonius_outside"):
        result = CLAIMS[claim_id].check(20, 0)
        assert result.explicit_trials >= 1 and result.explicit_violations == result.explicit_trials
        assert result.search_trials == result.trials - result.explicit_trials
        row = result.as_row()
        assert row["explicit_violations"] + row["search_violations"] == row["violations"]
    full = CLAIMS["full_layer_exact"].check(20, 0)
    assert full.active_trials is not None and 0 < full.active_trials < full.trials


def _claims_main(tmp_path, *extra):
    from unfolded.cli import main

    return main(["claims", "--config", "config/smoke.yaml", "--csv", str(tmp_path / "c.csv"), *extra])


def test_a_broken_theorem_fails_the_claims_stage(tmp_path, monkeypatch, capsys):
    import unfolded.claims as claims

    real_step = claims.attention_step
    monkeypatch.setattr(claims, "attention_step", lambda Y, W, mask=None, alpha=1.0, **kw: real_step(Y, W, mask, 3 * alpha, **kw))
    with pytest.raises(SystemExit) as exit_info:
        _claims_main(tmp_path)
    assert exit_info.value.code == 1
    assert "attention_descent" in capsys.readouterr().err
    assert (tmp_path / "c.csv").exists()  # the table is still written, for inspection
    assert _claims_main(tmp_path, "--allow-failures") == 0


def test_an_explicit_counterexample_without_its_increase_fails(tmp_path, monkeypatch, capsys):
    import unfolded.claims as claims

    monkeypatch.setattr(claims, "relu_step", lambda Y: Y)  # a prox that does nothing: x = -1 stays, no increase
    with pytest.raises(SystemExit):
        _claims_main(tmp_path)
    assert "relu_infeasible_start" in capsys.readouterr().err


def test_the_claims_tolerance_has_teeth():
    from unfolded.claims import TOLERANCE, Tally

    before = torch.tensor([5.0, -2.0], dtype=torch.float64)
    margin = TOLERANCE * (1 + before.abs())
    tally = Tally()
    tally.descent(before, before + 1.01 * margin)
    assert tally.violations == 2 and tally.max_increase > 0
    tally = Tally()
    tally.descent(before, before + 0.99 * margin)
    assert tally.violations == 0 and tally.max_increase == 0
    tally = Tally()
    tally.identity(torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0 + 2.02 * TOLERANCE], dtype=torch.float64))
    assert tally.violations == 1
    tally = Tally()
    tally.identity(torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0 + 1.98 * TOLERANCE], dtype=torch.float64))
    assert tally.violations == 0


def test_theory_notes_cite_only_existing_claims():
    """docs/theory.md points at claims by id; every id it names must be in the registry."""
    import re
    from pathlib import Path

    text = Path("docs/theory.md").read_text()
    cited = set(re.findall(r"`([a-z][a-z0-9_]+)`", text))
    claim_like = {name for name in cited if any(name.startswith(p) for p in (
        "attention_", "pairwise_", "multihead_", "ffn_", "relu_", "layernorm_", "residual_", "learned_",
        "alternating_", "authors_", "apollonius_", "kappa_", "full_layer_"))}
    assert claim_like and claim_like <= set(CLAIMS), sorted(claim_like - set(CLAIMS))


def test_each_claim_id_is_the_name_of_its_check_and_seeds_follow_the_id():
    import unfolded.claims as claims
    from unfolded.energies import REGISTRY

    for claim_id, entry in CLAIMS.items():
        if entry.section.startswith("docs/energies.md"):  # generated from a plug-in: named after it
            assert any(claim_id.startswith(f"{name}_") and entry.section == f"docs/energies.md ({name})"
                       for name in REGISTRY), claim_id
            continue
        assert entry.run.__name__ == claim_id and getattr(claims, claim_id) is entry.run
    # a claim's result does not depend on which other claims run with it
    alone = run_all(3, 7, ids=["attention_descent"])[0]
    together = [r for r in run_all(3, 7, ids=["ffn_descent", "attention_descent"]) if r.claim == "attention_descent"][0]
    assert alone == together
    offsets = {claims.claim_offset(claim_id) for claim_id in CLAIMS}
    assert len(offsets) == len(CLAIMS)  # distinct seeds


def test_registering_a_claim_twice_or_with_an_unknown_kind_fails():
    import pytest

    from unfolded.claims import claim

    with pytest.raises(ValueError, match="registered twice"):
        claim("theorem", "derived", "s", "c", "§2.1")(CLAIMS["attention_descent"].run)
    with pytest.raises(ValueError, match="claim kind"):
        claim("lemma", "derived", "s", "c", "§2.1")


def test_the_claims_page_lists_exactly_the_failed_claims():
    """The page decides failure from the table's rows as ClaimResult.failed does from a result."""
    import pandas as pd

    from unfolded.report.claims import claims_page

    results = [CLAIMS[claim_id].check(3, 0) for claim_id in ("attention_descent", "ffn_large_step",
                                                             "attention_authors_variant")]
    table = pd.DataFrame([r.as_row() for r in results])
    meta = {"config": {"trials": 3, "seed": 0}, "config_hash": "h", "git_commit": "c" * 40}
    assert "failed (a theorem or identity violated, or an explicit counter-example without its increase): none" \
        in claims_page(table, meta)
    table.loc[0, "violations"] = 1  # a theorem violated
    table.loc[1, "explicit_violations"] = 0  # a counter-example whose explicit instance did not rise
    table.loc[2, "violations"] = 3  # a report may rise: never a failure
    assert "increase): ['attention_descent', 'ffn_large_step']." in claims_page(table, meta)
