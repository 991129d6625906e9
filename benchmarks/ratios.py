"""The three speed targets, measured side by side in one process with interleaved repeats.

Each repeat runs every case once, in turn, so that slow phases of a noisy machine hit all cases
alike; the reported time of a case is the median over repeats, and a ratio is taken between
medians. The targets:

1. ``attention_step`` (the MM step: SDPA with a key bias) at least 0.9x as fast as plain attention
   with the same projection (``Z = Y W; softmax(Z Z^T) Y``), for n in {256, 512}, d in {64, 300};
2. ``attention_energy`` (Gram matrix) at least 50x as fast as the authors' per-pair index-list
   energy at n = 256, d = 300;
3. one unfolded layer's forward and backward in at most 0.5x the time of one standard layer
   (``nn.TransformerEncoderLayer`` with its feed-forward width 4d) at equal d, n and batch.

    python benchmarks/ratios.py                        # CPU, float32, prints the table
    python benchmarks/ratios.py --out results/benchmarks/ratios.csv --repeats 15

The CSV holds one row per target and shape: time of ours, time of the reference, the ratio
(reference / ours: above 1 means ours is faster), the goal and whether it is met.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from unfolded.encoders import build_encoder
from unfolded.energy import attention_energy
from unfolded.reference import pair_index_lists, pairwise_energy_index_lists, plain_softmax_attention
from unfolded.steps import attention_step

Case = Callable[[], object]


def tokens(*shape: int) -> torch.Tensor:
    """Gaussian tokens of norm about 1: logits of order 1. (At norm sqrt(d) most kernel entries
    underflow, and float32 ``exp`` on CPU runs its slow subnormal path for every case alike.)"""
    return torch.randn(*shape) / shape[-1] ** 0.5


def step_cases(n: int, d: int, batch: int) -> tuple[Case, Case]:
    Y = tokens(batch, n, d)
    W = torch.randn(d, d) / d**0.5

    @torch.no_grad()
    def ours():
        return attention_step(Y, W)

    @torch.no_grad()
    def plain():
        Z = Y @ W
        return plain_softmax_attention(Z, Z, Y)

    return ours, plain


def energy_cases(n: int, d: int) -> tuple[Case, Case]:
    Y = tokens(n, d)
    W = torch.randn(d, d) / d**0.5
    pair_index_lists(n)  # cached once, as in the authors' code

    no_grad = torch.no_grad()
    return no_grad(lambda: attention_energy(Y, W)), no_grad(lambda: pairwise_energy_index_lists(Y, W))


def layer_cases(n: int, d: int, batch: int, heads: int) -> tuple[Case, Case]:
    unfolded = build_encoder("unfolded_tied", d, 1, {"num_heads": heads})
    standard = build_encoder("standard_tied", d, 1, {"num_heads": heads})
    Y = tokens(batch, n, d)
    mask = torch.ones(batch, n, dtype=torch.bool)

    def run(encoder):
        def call():
            encoder.zero_grad(set_to_none=True)
            encoder(Y, mask, return_energies=False).hidden.square().mean().backward()

        return call

    return run(unfolded), run(standard)


def timed(cases: dict[str, Case], repeats: int) -> dict[str, float]:
    """Median seconds per case; the cases run interleaved, once each per repeat, after a warm-up."""
    for call in cases.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, call in cases.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def measure(repeats: int, batch: int, heads: int) -> list[dict]:
    targets = []  # (target, shape, goal, comparison, ours, reference)
    cases: dict[str, Case] = {}
    for n in (256, 512):
        for d in (64, 300):
            ours, plain = step_cases(n, d, batch)
            key = f"step n={n} d={d}"
            cases[f"{key} ours"], cases[f"{key} ref"] = ours, plain
            targets.append(("attention_step vs plain attention", f"n={n}, d={d}, batch={batch}", 0.9, ">=", key))
    ours, slow = energy_cases(256, 300)
    cases["energy ours"], cases["energy ref"] = ours, slow
    targets.append(("attention_energy vs index-list energy", "n=256, d=300", 50.0, ">=", "energy"))
    ours, standard = layer_cases(256, 64, batch, heads)
    cases["layer ours"], cases["layer ref"] = ours, standard
    targets.append(("unfolded layer fwd+bwd / standard layer", f"n=256, d=64, batch={batch}", 0.5, "<=", "layer"))
    medians = timed(cases, repeats)
    rows = []
    for target, shape, goal, comparison, key in targets:
        ours_s, ref_s = medians[f"{key} ours"], medians[f"{key} ref"]
        # speed targets compare reference / ours; the layer target compares time ours / reference
        value = ref_s / ours_s if comparison == ">=" else ours_s / ref_s
        met = value >= goal if comparison == ">=" else value <= goal
        rows.append({"target": target, "shape": shape, "ours_ms": 1e3 * ours_s, "reference_ms": 1e3 * ref_s,
                     "ratio": value, "goal": f"{comparison} {goal:g}", "met": bool(met)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4, help="heads of the standard layer")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the least noisy)")
    parser.add_argument("--out", type=Path, help="also write the rows as CSV (for make readme)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rows = measure(args.repeats, args.batch, args.heads)
    machine = f"{platform.machine()} CPU, {args.threads} thread(s), torch {torch.__version__}, float32"
    print(f"{machine}; median of {args.repeats} interleaved repeats; ratio = reference/ours for speed-ups, "
          "ours/reference for the layer time")
    print(f"{'target':<42}{'shape':<26}{'ours ms':>9}{'ref ms':>9}{'ratio':>8}  {'goal':<7}met")
    for row in rows:
        print(f"{row['target']:<42}{row['shape']:<26}{row['ours_ms']:>9.2f}{row['reference_ms']:>9.2f}"
              f"{row['ratio']:>8.2f}  {row['goal']:<7}{'yes' if row['met'] else 'NO'}")
    if args.out:
        import pandas as pd

        from unfolded.artifacts import write_text

        frame = pd.DataFrame(rows)
        frame["machine"] = machine
        frame["repeats"] = args.repeats
        write_text(args.out, frame.to_csv(index=False))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
