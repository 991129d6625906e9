"""Cost estimate of ``config/paper.yaml`` from small measurements on this machine.

Measures, then extrapolates to the paper's sizes (every extrapolated number is an estimate):

* the GloVe reader's rate on a synthetic 300-d file in the 840B format, scaled to the real file's
  2.2 million lines (once per dataset vocabulary);
* seconds per training sample of the 12-layer tied encoders (d = 300, frozen vectors) at the mean
  sequence length of each dataset, scaled to the epochs and samples of the ``train`` jobs and to
  the 2000 batch-1 SGD steps of each Figures 5-6 variant;
* the peak memory of the float64 energy trace (``layer_trace``) of one sequence at the longest
  review's length, and the size of its Gram matrix.

    python benchmarks/paper_estimate.py                  # about 2 minutes on 2 CPU cores
    python benchmarks/paper_estimate.py --out results/benchmarks/paper_estimate.md   # for make readme
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch

#: published sizes of the sources (train / test examples; GloVe 840B lines)
SIZES = {"imdb": (25_000, 25_000), "sst2": (67_349, 872)}
GLOVE_LINES = 2_196_017
#: mean tokens per example (hypothesis: from the datasets' published word counts, about 230 words per IMDB
#: review and 9-10 per SST-2 training phrase, plus the punctuation our tokenizer splits off)
MEAN_TOKENS = {"imdb": 280, "sst2": 11}


def glove_rate(lines: int = 20_000) -> float:
    """Lines per second of :func:`unfolded.data.text._read_glove` on a synthetic archive."""
    from unfolded.data.text import _read_glove

    generator = torch.Generator().manual_seed(0)
    buffer = io.StringIO()
    for index in range(lines):
        values = " ".join(f"{v:.5f}" for v in torch.randn(300, generator=generator).tolist())
        buffer.write(f"w{index} {values}\n")
    path = Path("/tmp/unfolded-glove-estimate.zip")
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("glove.840B.300d.txt", buffer.getvalue())
    vocabulary = {f"w{index}" for index in range(0, lines, 7)}
    start = time.perf_counter()
    _read_glove(path, "glove.840B.300d.txt", vocabulary)
    seconds = time.perf_counter() - start
    path.unlink()
    return lines / seconds


def seconds_per_sample(model: str, n: int, batch: int, steps: int = 3) -> float:
    """Forward, backward and an AdamW step of the 12-layer encoder with a linear head, per sample."""
    from unfolded.encoders import build_encoder

    torch.manual_seed(0)
    encoder = build_encoder(model, 300, 12, {"num_heads": 6})
    head = torch.nn.Linear(300, 2)
    optimiser = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-4)
    Y = torch.randn(batch, n, 300) / 300**0.5
    mask = torch.ones(batch, n, dtype=torch.bool)
    labels = torch.randint(0, 2, (batch,))

    def step():
        logits = head(encoder(Y, mask, return_energies=False).hidden.mean(1))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps / batch


def trace_memory(n: int) -> dict:
    """Peak RSS of a float64 energy trace of one sequence of length n above the resident size just
    before it (a fresh subprocess)."""
    code = f"""
import resource, torch, json
from unfolded.encoders import build_encoder
torch.manual_seed(0)
encoder = build_encoder("unfolded_tied", 300, 12, {{}}).double().eval()
Y = torch.randn(1, {n}, 300, dtype=torch.float64) / 300 ** 0.5
mask = torch.ones(1, {n}, dtype=torch.bool)
import os
with open("/proc/self/statm") as handle:
    before = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20  # resident now, MiB
with torch.no_grad():
    encoder.trace(Y, mask)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
print(json.dumps({{"peak_mib": peak - before}}))
"""
    import json

    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--longest", type=int, default=3000,
                        help="tokens of the longest IMDB review (estimate: about 2,500 words plus punctuation)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="train.max_epochs of config/paper.yaml")
    parser.add_argument("--out", type=Path, help="also write the Markdown block (for make readme)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lines = []
    rate = glove_rate()
    lines.append(f"- GloVe reader: {rate:,.0f} lines/s measured; the 840B file's {GLOVE_LINES:,} lines take about "
                 f"{GLOVE_LINES / rate / 60:.1f} min per dataset vocabulary (estimate).")
    rows = []
    for dataset, (train, _) in SIZES.items():
        n = MEAN_TOKENS[dataset]
        for model in ("unfolded_tied", "standard_tied"):
            per_sample = seconds_per_sample(model, n, batch=8 if n > 100 else 32)
            rows.append({
                "dataset": dataset, "model": model, "mean tokens n (est.)": n, "ms / sample (measured)": 1e3 * per_sample,
                f"one train job, {args.epochs} epochs: CPU h (est.)": per_sample * train * args.epochs / 3600,
                "Figure 6 training, 2000 steps: CPU min (est.)": per_sample * 2000 / 60,
            })
    import pandas as pd

    table = pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f")
    gram_mib = args.longest**2 * 8 / 2**20
    memory = trace_memory(args.longest)
    lines.append(f"- Longest IMDB review, n = {args.longest} tokens (estimate): one float64 Gram matrix takes {gram_mib:.0f} "
                 f"MiB; the 12-layer float64 energy trace of that one sequence peaked at {memory['peak_mib']:.0f} MiB "
                 "(measured). The trace runs on the CPU in chunks of at most 2.5e7 Gram entries.")
    footer = (f"Measured on this machine: {args.threads} CPU thread(s), torch {torch.__version__}, float32 training "
              "steps of the 12-layer tied encoders at d = 300 (forward, backward, AdamW); times exclude data loading "
              "and evaluation. A GPU is much faster; these are CPU-hours, an upper bound.")
    text = "\n".join(lines) + "\n\n" + table + "\n\n" + footer
    print(text)
    if args.out:
        from unfolded.artifacts import write_text

        write_text(args.out, text + "\n")
        print(f"wrote {args.out}")

if __name__ == "__main__":
    main()
