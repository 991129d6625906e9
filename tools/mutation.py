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

from mutmut.__main__ import cli  # noqa: E402

if __name__ == "__main__":
    cli()
