"""The claims table and its prose: the stage's Markdown, the docs' full table and sentences, the
README's headline. Every claim is named by its id in :data:`unfolded.claims.CLAIMS`; a test renders
these from a table that holds exactly the registry's claims, so a renamed claim fails it."""

from __future__ import annotations

import pandas as pd

from .format import compact_table

__all__ = ["claims_headline", "claims_markdown", "claims_page", "claims_prose"]


def _row(claims: pd.DataFrame, claim: str) -> pd.Series:
    rows = claims[claims["claim"] == claim]
    if rows.empty:
        raise KeyError(f"claims table has no row {claim!r}")
    return rows.iloc[0]


def _of(row: pd.Series, what: str = "violations", total: str = "trials") -> str:
    return f"{int(row[what]):,} of {int(row[total]):,}"


def claims_markdown(frame: pd.DataFrame) -> str:
    """The claims table as Markdown (the README block and results/tables/claims.md)."""
    columns = ["claim", "kind", "source", "conditions", "trials", "violations", "max_increase", "verdict"]
    table = frame[columns].copy()
    table["max_increase"] = table["max_increase"].map(lambda v: f"{v:.3g}")
    table["conditions"] = table["conditions"].str.replace("|", r"\|", regex=False)
    return table.to_markdown(index=False)


def claims_prose(c: pd.DataFrame) -> str:
    """One sentence per topic, each quoting the claims table ``c`` and tagged with its source."""
    r = lambda claim: _row(c, claim)  # noqa: E731
    theorems = c[c["kind"].isin(["identity", "theorem"])]
    failing = theorems[theorems["violations"] > 0]["claim"].tolist()
    counter = c[c["kind"] == "counterexample"]
    explicit_ok = counter[counter["explicit_violations"] == counter["explicit_trials"]]["claim"].tolist()
    lines = [
        f"- Identities and theorems: {len(theorems) - len(failing)} of {len(theorems)} show no violation"
        + (f"; failing: {', '.join(failing)}." if failing else ".")
        + f" Every counter-example's explicit instance raises its energy in {len(explicit_ok)} of {len(counter)} rows.",
        f"- `derived` The attention step with the key bias never raised the pairwise energy: "
        f"{_of(r('attention_descent'))} steps rose, for step sizes up to 2 (half of them at exactly 2), and the "
        f"kernel bound behind that range failed in {_of(r('attention_kernel_bound'))} sequences. Without the key bias "
        f"(`attention_without_key_bias`) the random search over tokens of unequal norm found rises in "
        f"{_of(r('attention_without_key_bias'), 'search_violations', 'search_trials')}; above the bound "
        f"(`attention_large_step`) in {_of(r('attention_large_step'), 'search_violations', 'search_trials')}.",
        f"- `code` The authors' forward pass (`W^T W` in the softmax, `W W^T` in the energy, no key bias) raised "
        f"their attention energy in {_of(r('attention_authors_variant'))} random instances; our step on the "
        f"authors' regularised energy rose in {_of(r('attention_with_regulariser'))}.",
        f"- `derived` Feed-forward, ReLU-proximal and layer-norm-projection steps descended in every trial under "
        f"their step-size conditions ({_of(r('ffn_descent'))}, {_of(r('relu_prox_descent'))}, "
        f"{_of(r('layernorm_descent'))} rose). Outside them, the random searches found rises in "
        f"{_of(r('ffn_large_step'), 'search_violations', 'search_trials')} (feed-forward step above 2/L), "
        f"{_of(r('relu_infeasible_start'), 'search_violations', 'search_trials')} (ReLU from a start with "
        f"negative entries) and {_of(r('layernorm_large_step'), 'search_violations', 'search_trials')} "
        f"(layer norm with 1/L < alpha < 2/L).",
        f"- `derived` Alternating steps on two quadratics (Figures 2-3) each descend their own term "
        f"({_of(r('alternating_component_descent'))} rose) but not the sum ({_of(r('alternating_total_energy'))} rose).",
    ]
    exact, exact_real = r("full_layer_exact"), r("full_layer_exact_realistic")
    authors, authors_real = r("full_layer_authors"), r("full_layer_authors_realistic")
    lines.append(
        f"- `hypothesis` The consistent full layer (key bias, feed-forward step with |Wf| <= 0.95, ReLU, energy without "
        f"the regulariser) rose in {_of(exact)} (sample, layer) steps from non-negative inputs, "
        f"{int(exact['active_trials']):,} of which start from a non-collapsed state, and in {_of(exact_real)} from "
        f"Gaussian inputs with negative entries ({int(exact_real['active_trials']):,} active). `code` The authors' "
        f"layer rose in {_of(authors)} ({int(authors['active_violations'])} of {int(authors['active_trials'])} active "
        f"steps) and in {_of(authors_real)} from Gaussian inputs.")
    return "\n".join(lines)


def claims_headline(c: pd.DataFrame, settings: dict, tolerance: float) -> str:
    """How the claims were checked (``settings``: trials and seed; ``tolerance``: the relative tolerance of
    a violation), then one row per kind of the paper's claims (the plug-in energies' claims, whose section
    is docs/energies.md, have their own headline): how many, and what the checks found."""
    c = c[~c["section"].astype(str).str.startswith("docs/energies.md")]
    intro = (f"{settings['trials']} random float64 instances per claim (seed {settings['seed']}), tolerance "
             f"{tolerance:g} relative (`results/tables/claims.csv`):\n\n")
    rows = []
    for kind, meaning in (("identity", "two expressions agree"), ("theorem", "an energy never rises"),
                          ("counterexample", "outside a theorem's conditions the energy can rise"),
                          ("report", "not a theorem: how often the energy rises")):
        group = c[c["kind"] == kind]
        if group.empty:
            continue
        if kind in ("identity", "theorem"):
            failing = group[group["violations"] > 0]["claim"].tolist()
            found = (f"{len(group) - len(failing)} hold, 0 violations in {int(group['trials'].sum()):,} trials"
                     if not failing else f"{len(failing)} violated: {', '.join(failing)}")
        elif kind == "counterexample":
            shown = int((group["explicit_violations"] == group["explicit_trials"]).sum())
            found = f"explicit instance raises the energy in {shown} of {len(group)}"
        else:
            rising = group[group["violations"] > 0]
            found = (f"{len(rising)} of {len(group)} see rises, in {int(rising['violations'].sum()):,} of "
                     f"{int(rising['trials'].sum()):,} of their trials (each in docs/results.md)")
        rows.append({"kind": kind, "meaning": meaning, "claims": len(group), "found": found})
    return intro + compact_table(pd.DataFrame(rows))


def claims_page(frame: pd.DataFrame, meta: dict) -> str:
    """The claims stage's page (results/tables/claims.md): the table, then what was run (``meta``: the
    table's provenance) and which claims failed."""
    failed = _failed(frame)
    settings = meta["config"]
    return (claims_markdown(frame) + f"\n\n{len(frame)} claims, {settings['trials']} trials each, seed {settings['seed']}; "
            f"failed (a theorem or identity violated, or an explicit counter-example without its increase): "
            f"{failed or 'none'}. Config hash {meta['config_hash']}, commit {meta['git_commit'][:12]}.\n")


def _failed(frame: pd.DataFrame) -> list[str]:
    """The claims whose check failed, as :attr:`unfolded.claims.ClaimResult.failed` decides it from a row."""
    theorems = frame["kind"].isin(["identity", "theorem"]) & (frame["violations"] > 0)
    counter = (frame["kind"] == "counterexample") & (frame["explicit_trials"] > 0) \
        & (frame["explicit_violations"] < frame["explicit_trials"])
    return frame.loc[theorems | counter, "claim"].tolist()
