"""Speed and peak memory of the energy core against the authors' style of computation.

Prints, in one run and side by side:

* ``attention_energy`` (Gram matrix, batched) vs a per-pair index-list energy like the authors'
  (one sequence at a time, cached index lists);
* ``attention_step`` (key bias folded into ``scaled_dot_product_attention``) vs a plain
  ``softmax(Q K^T) V`` at equal shapes.

Peak memory is measured for real: each case runs in a fresh subprocess and reports the growth of
its peak resident set size (``ru_maxrss``) over the resident size just before the call.

    python benchmarks/energy.py                 # n in {128, 256, 512, 1024}, d = 300, float32, CPU
    python benchmarks/energy.py --sizes 64 128 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CASES = {
    "energy_gram": "unfolded.energy:attention_energy",
    "energy_index_lists": "unfolded.reference:pairwise_energy_index_lists",
    "step_sdpa": "unfolded.steps:attention_step",
    "step_plain_softmax": "unfolded.reference:plain_softmax_attention",
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        import os

        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_case(case: str, n: int, d: int, repeats: int) -> dict:
    """Time one case (median of ``repeats`` after a warm-up) and measure its peak memory growth."""
    import resource

    import torch

    from unfolded import reference  # noqa: F401  (warm the import before measuring)
    from unfolded.energy import attention_energy
    from unfolded.reference import pair_index_lists, pairwise_energy_index_lists, plain_softmax_attention
    from unfolded.steps import attention_step

    torch.manual_seed(0)
    torch.set_num_threads(1)
    Y = torch.randn(n, d)
    W = torch.randn(d, d) / d**0.5
    if case == "energy_index_lists":
        pair_index_lists(n)  # cached once, as in the authors' code

        def call():
            return pairwise_energy_index_lists(Y, W)
    elif case == "energy_gram":

        def call():
            return attention_energy(Y, W)
    elif case == "step_sdpa":

        def call():
            return attention_step(Y, W)
    else:

        def call():
            Q = Y @ W  # same projection as the step, no key bias
            return plain_softmax_attention(Q, Q, Y)

    with torch.no_grad():
        # One-time costs (kernel dispatch tables, thread pools) are paid on a tiny input first.
        Y_full, Y = Y, Y[:8]
        call()
        Y = Y_full
        before = _rss_bytes()
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        call()
        peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    times.sort()
    return {
        "case": case,
        "n": n,
        "d": d,
        "seconds": times[len(times) // 2],
        "peak_bytes": max(peak_after, peak_before) - before,
    }


def measure(case: str, n: int, d: int, repeats: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--worker", case, str(n), str(d), str(repeats)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--d", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        case, n, d, repeats = args.worker
        print(json.dumps(run_case(case, int(n), int(d), int(repeats))))
        return

    print(f"float32, CPU, 1 thread, d = {args.d}, median of {args.repeats} runs; memory = peak RSS growth")
    header = f"{'n':>6} | {'fast ms':>9} {'slow ms':>9} {'speed-up':>9} | {'fast MiB':>9} {'slow MiB':>9} {'mem ratio':>9}"
    for title, fast, slow in (
        ("attention_energy (Gram) vs per-pair index lists", "energy_gram", "energy_index_lists"),
        ("attention_step (SDPA + key bias) vs plain softmax(QK^T)V", "step_sdpa", "step_plain_softmax"),
    ):
        print(f"\n{title}\n{header}")
        for n in args.sizes:
            a, b = measure(fast, n, args.d, args.repeats), measure(slow, n, args.d, args.repeats)
            mib_a, mib_b = max(a["peak_bytes"], 0) / 2**20, max(b["peak_bytes"], 0) / 2**20
            print(
                f"{n:>6} | {1e3 * a['seconds']:>9.2f} {1e3 * b['seconds']:>9.2f} "
                f"{b['seconds'] / a['seconds']:>8.1f}x | {mib_a:>9.1f} {mib_b:>9.1f} "
                f"{(mib_b / mib_a if mib_a > 0 else float('nan')):>8.1f}x"
            )


if __name__ == "__main__":
    main()
