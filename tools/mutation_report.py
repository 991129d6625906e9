"""Write the mutation-testing section of docs/testing.md from mutmut's records under mutants/.

    python tools/mutation_report.py [--out docs/testing.md]

Reads the per-file ``*.meta`` records that ``make mutation`` leaves, keeps the mutants in the scope of
tools/mutation.py, and writes the score per module and every surviving (and timed-out) mutant with
its one-line diff and a category. Categories are assigned by rules written below, before looking
at any mutant, and every rule is a reason a mutant can survive without a test gap:

* ``equivalent: dtype``: ``dtype=float64`` dropped where every caller already passes float64;
* ``equivalent: boundary``: ``<=``/``<`` or ``>=``/``>`` swapped at a floating-point threshold that
  no real value hits exactly;
* ``message``: the mutation only changes an error message or a ValueError's condition text;
* ``validation``: an input-validation branch (a raise) that the tests do not exercise;
* ``gap``: anything else: a behaviour the tests should pin.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout", 24: "timeout",
          -24: "timeout", 152: "timeout", 255: "timeout", 37: "type check", None: "not checked"}
BEGIN, END = "<!-- mutation:start -->", "<!-- mutation:end -->"


def scope() -> list[str]:
    text = (ROOT / "tools" / "mutation.py").read_text()
    block = text.split("SCOPE = [", 1)[1].split("]", 1)[0]
    return re.findall(r'"([^"]+)"', block)


def records() -> dict[str, str]:
    patterns = scope()
    statuses = {}
    for meta in sorted((ROOT / "mutants" / "src" / "unfolded").glob("*.meta")):
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatch(key, pattern) for pattern in patterns):
                statuses[key] = STATUS.get(code, "suspicious")
    return statuses


def diff(name: str) -> str:
    shown = subprocess.run([sys.executable, str(ROOT / "tools" / "mutation.py"), "show", name], cwd=ROOT,
                           capture_output=True, text=True, timeout=120).stdout
    removed = [line[1:].strip() for line in shown.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in shown.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return f"`{removed[0] if removed else ''}` → `{added[0] if added else ''}`"


#: Survivors read one by one and found equivalent for the code they mutate, with the reason. Mutant
#: names depend on the source version: rerun ``make mutation`` after editing a listed function and
#: review again (a listed name that no longer survives simply drops out of the table).
REVIEWED = {
    "diagnostics.x__share__mutmut_2": "the mean of an empty tensor is already NaN",
    "experiments.x_trace_rows__mutmut_5": "torch.cat promotes the float32 NaN column to float64",
    "experiments.x_trace_rows__mutmut_8": "torch.cat promotes the float32 NaN column to float64",
    "experiments.x__curve_tensors__mutmut_7": "the pivot of float64 columns is a float64 array, which as_tensor keeps",
    "experiments.x__curve_tensors__mutmut_9": "the pivot of float64 columns is a float64 array, which as_tensor keeps",
    "experiments.x_curve_summary__mutmut_6": "pandas reads dropna=None as False: NaN keys stay (dropna=True is killed)",
    "experiments.x_curve_summary__mutmut_8": "sort=True is groupby's default",
    "experiments.x_curve_summary__mutmut_16": "without an attention split the middles are NaN, so the shares are NaN either way",
    "experiments.x_curve_summary__mutmut_23": "a group key has one value per curve key: zip sees equal lengths",
    "experiments.x_curve_summary__mutmut_26": "a group key has one value per curve key: zip sees equal lengths",
    "experiments.x_curve_summary__mutmut_27": "a group key has one value per curve key: zip sees equal lengths",
    "experiments.x_curve_summary__mutmut_48": "curve attributes are constant within a curve: row 1 equals row 0",
    "experiments.x_layer_decomposition__mutmut_7": "pandas reads dropna=None as False: NaN keys stay",
    "experiments.x_layer_decomposition__mutmut_12": "boundary: no relative spread equals the threshold exactly",
    "experiments.x_layer_decomposition__mutmut_15": "layer-0 rows have no middle energy, so the notna filter drops them",
    "experiments.x_layer_decomposition__mutmut_29": "the rows were sorted by curve, sample and layer just before grouping",
    "experiments.x_layer_decomposition__mutmut_30": "pandas reads dropna=None as False: NaN keys stay",
    "experiments.x_layer_decomposition__mutmut_32": "sort=True is groupby's default",
    "experiments.x_layer_decomposition__mutmut_34": "the rows were sorted by curve, sample and layer just before grouping",
}


def category(change: str, name: str = "") -> str:
    if name in REVIEWED:
        return f"equivalent: reviewed ({REVIEWED[name]})"
    before, _, after = change.partition(" → ")
    if "dtype=torch.float64" in before and "dtype=None" in after:
        return "equivalent: dtype"
    swapped = [("<=", "<"), (">=", ">"), ("<", "<="), (">", ">=")]
    if any(before.replace(a, b, 1) == after for a, b in swapped):
        return "equivalent: boundary"
    if "raise" in before or "Error(" in before:
        return "message"
    if re.search(r"\bif\b.*(dim|shape|not in|< 1|<= 0)", before):
        return "validation"
    return "gap"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "testing.md"), help="the Markdown file to update")
    args = parser.parse_args()
    statuses = records()
    if not statuses:
        raise SystemExit("no mutmut records under mutants/: run `make mutation` first")
    per_module: dict[str, Counter] = defaultdict(Counter)
    for key, status in statuses.items():
        per_module[key.split(".")[1]][status] += 1
    lines = ["| module | mutants | killed | timeout | survived | not checked |", "|---|---|---|---|---|---|"]
    total = Counter()
    for module, counts in sorted(per_module.items()):
        total.update(counts)
        lines.append(f"| `{module}.py` | {sum(counts.values())} | {counts['killed']} | {counts['timeout']} | "
                     f"{counts['survived']} | {counts['not checked']} |")
    checked = sum(total.values()) - total["not checked"]
    lines.append(f"| all | {sum(total.values())} | {total['killed']} | {total['timeout']} | {total['survived']} | "
                 f"{total['not checked']} |")
    detected = total["killed"] + total["timeout"]
    lines += ["", f"Score: {detected} of {checked} checked mutants detected ({100 * detected / max(checked, 1):.1f}%; "
              f"{total['killed']} killed by a failing test, {total['timeout']} by a timeout)."]
    survivors = sorted(key for key, status in statuses.items() if status == "survived")
    categories = Counter()
    rows = []
    for key in survivors:
        change = diff(key)
        kind = category(change, key.split(".", 1)[1])
        categories[kind.split(" (", 1)[0]] += 1
        escaped = change.replace("|", "\\|")
        rows.append(f"| `{key.split('.', 1)[1]}` | {kind} | {escaped} |")
    lines += ["", "Survivors by category: " + ", ".join(f"{kind} {count}" for kind, count in sorted(categories.items())),
              "", "| mutant | category | change |", "|---|---|---|", *rows]
    path = Path(args.out)
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n" + "\n".join(lines) + f"\n{END}{tail}")
    print(f"{path}: {len(statuses)} mutants, {len(survivors)} survivors", file=sys.stderr)


if __name__ == "__main__":
    main()
