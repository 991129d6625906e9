"""Mutation testing of the maths and the counting code (``make mutation``).

Runs mutmut with string-literal mutations switched off (a statement's or an error message's wording
is not behaviour the tests should pin), over the modules and tests configured in ``[tool.mutmut]``
of ``pyproject.toml``. mutmut copies ``src/`` into ``mutants/src`` and puts that copy first on
``sys.path``, so the mutated package is the one the tests import; the tests it runs are in-process
ones (no subprocess would see the mutant).

    python tools/mutation.py run [--max-children N]   # mutate and test
    python tools/mutation.py results                  # list surviving mutants
    python tools/mutation.py show NAME                 # one mutant's diff
"""

import mutmut.mutation.mutators as mutators

# Remove the string-literal operator in place: mutmut's file mutation holds the same list object.
mutators.mutation_operators[:] = [
    (node, operator) for node, operator in mutators.mutation_operators if operator is not mutators.operator_string
]

import sys  # noqa: E402

from mutmut.__main__ import cli  # noqa: E402

#: The scope: every function of the maths modules (in models.py the energy-descent model, not the
#: standard Transformer built from torch's own layers), and the counting code of claims.py,
#: summaries.py, curves.py and traces.py (the tallies, verdicts and summaries; not the instance
#: generators, the statement strings or the pipeline drivers). mutmut matches these names with fnmatch.
SCOPE = [
    "unfolded.energy.*",
    "unfolded.steps.*",
    "unfolded.models.x_*",
    "unfolded.models.xǁSymmetricSpectralClampǁ*",
    "unfolded.models.xǁUnfoldedLayerǁ*",
    "unfolded.models.xǁUnfoldedTransformerǁ*",
    "unfolded.diagnostics.*",
    "unfolded.claims.xǁTallyǁ*",
    "unfolded.claims.xǁClaimResultǁ*",
    "unfolded.claims.xǁClaimǁ*",
    "unfolded.claims.x_run_all__*",
    "unfolded.summaries.x_curve_summary__*",
    "unfolded.summaries.x__curve_tensors__*",
    "unfolded.summaries.x_layer_decomposition__*",
    "unfolded.curves.x_select_regime__*",
    "unfolded.traces.x_parameter_changes__*",
    "unfolded.traces.x_chance_accuracy__*",
    "unfolded.traces.x_trace_rows__*",
]

if __name__ == "__main__":
    if sys.argv[1:3] == ["run", "--unchecked"]:
        # continue an interrupted run: only the mutants in scope without a result yet
        import fnmatch
        import json
        from pathlib import Path

        del sys.argv[2]
        for meta in sorted(Path("mutants/src/unfolded").glob("*.meta")):
            for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                if code is None and any(fnmatch.fnmatch(key, pattern) for pattern in SCOPE):
                    sys.argv.append(key)
    elif sys.argv[1:2] == ["run"] and not [arg for arg in sys.argv[2:] if not arg.startswith("-") and not arg.isdigit()]:
        sys.argv += SCOPE
    cli()
