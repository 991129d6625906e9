"""The GPU checks in one run (``benchmarks/gpu_check.sh``, ``make gpu-check``): one summary table.

1. bf16 vs fp32 on the device: logits and energies of both families, energies kept in float32
   under autocast, and the SDPA attention path against the explicit softmax.
2. Throughput at d = 512, n = 512 in bf16 for both families, with MFU (FLOPs counted by
   ``torch.utils.flop_counter``) and the ratio to ``nn.TransformerEncoderLayer`` at equal shapes.
3. A paper-scale training step (d = 300, 12 tied layers, n = 512, synthetic tokens): samples/s.

Needs only torch and the package (``PYTHONPATH=src``): no snakemake, no datasets, no config files.
``--dry-run`` runs every part at toy sizes on the CPU, to check the script before a GPU session.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import measure  # noqa: E402

from unfolded.models import StandardTransformer, UnfoldedTransformer  # noqa: E402
from unfolded.steps import attention_step  # noqa: E402

BF16_TOLERANCE = 3e-2  # relative; bf16 keeps 8 mantissa bits


def agreement(device: str, d: int, n: int, batch: int) -> list[tuple[str, str, str]]:
    """bf16-vs-fp32 checks; each row: (check, value, verdict)."""
    rows = []
    generator = torch.Generator().manual_seed(0)
    Y = (torch.randn(batch, n, d, generator=generator) / d**0.5).to(device)
    mask = torch.ones(batch, n, dtype=torch.bool, device=device)
    mask[0, n // 2 :] = False
    dtype = torch.bfloat16
    for name, encoder in (("unfolded", UnfoldedTransformer(d, 4)), ("standard", StandardTransformer(d, 4, num_heads=4))):
        encoder = encoder.to(device).eval()
        with torch.no_grad():
            reference = encoder(Y, mask)
            with torch.autocast(device_type=device, dtype=dtype):
                low = encoder(Y, mask)
        hidden = ((low.hidden.float() - reference.hidden).abs().max() / reference.hidden.abs().max()).item()
        energy = ((low.energies - reference.energies).abs().max() / reference.energies.abs().max()).item()
        rows.append((f"{name}: hidden state bf16 vs fp32 (relative)", f"{hidden:.2e}",
                     "ok" if hidden <= BF16_TOLERANCE else "FAIL"))
        rows.append((f"{name}: energies bf16 vs fp32 (relative), dtype {str(low.energies.dtype).removeprefix('torch.')}",
                     f"{energy:.2e}", "ok" if energy <= BF16_TOLERANCE and low.energies.dtype == torch.float32 else "FAIL"))
    W = (torch.randn(d, d, generator=generator) / d**0.5).to(device)
    exact = attention_step(Y.double(), W.double(), mask, use_sdpa=False)
    with torch.autocast(device_type=device, dtype=dtype):
        fused = attention_step(Y, W, mask, use_sdpa=True).double()
    error = ((fused - exact).abs().max() / exact.abs().max()).item()
    rows.append(("attention: SDPA path in bf16 vs explicit fp64 (relative)", f"{error:.2e}",
                 "ok" if error <= BF16_TOLERANCE else "FAIL"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (checks the script)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200: 989)")
    args = parser.parse_args()
    if args.dry_run:
        device, sizes = "cpu", {"d": 32, "n": 32, "batch": 4, "steps": 2, "warmup": 1, "paper_d": 24, "paper_layers": 2}
    else:
        if not torch.cuda.is_available():
            print("error: no CUDA device; run with --dry-run to check the script on a CPU", file=sys.stderr)
            return 2
        device, sizes = "cuda", {"d": 512, "n": 512, "batch": 32, "steps": 20, "warmup": 3, "paper_d": 300,
                                 "paper_layers": 12}
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (dry run)"
    print(f"# GPU check on {name}, torch {torch.__version__}")
    start = time.perf_counter()
    rows = agreement(device, sizes["d"], sizes["n"], sizes["batch"])
    dtype = torch.bfloat16

    def run(models, d, layers, heads):
        options = argparse.Namespace(d=d, n=sizes["n"], batch=sizes["batch"], layers=layers, heads=heads,
                                     steps=sizes["steps"], warmup=sizes["warmup"], peak_tflops=args.peak_tflops)
        return {model: measure(model, options, device, dtype) for model in models}

    shapes = run(("unfolded_tied", "unfolded_untied", "standard_tied", "standard_untied"), sizes["d"], 4, 8)
    for model, row in shapes.items():
        mfu = f", MFU {100 * row['mfu']:.1f}%" if row["mfu"] is not None else ""
        rows.append((f"throughput d={sizes['d']} n={sizes['n']} bf16: {model}", f"{row['samples_per_s']:.0f} samples/s",
                     f"{row['gflop_per_step']:.1f} GFLOP/step{mfu}"))
    for tying in ("tied", "untied"):
        ratio = shapes[f"unfolded_{tying}"]["samples_per_s"] / shapes[f"standard_{tying}"]["samples_per_s"]
        rows.append((f"throughput ratio unfolded/standard ({tying})", f"{ratio:.2f}x", "vs nn.TransformerEncoderLayer"))
    paper = run(("unfolded_tied", "standard_tied"), sizes["paper_d"], sizes["paper_layers"], 6)
    for model, row in paper.items():
        rows.append((f"paper scale d={sizes['paper_d']} L={sizes['paper_layers']} n={sizes['n']}: {model}",
                     f"{row['samples_per_s']:.0f} samples/s", f"{row['ms_per_step']:.1f} ms/step"))
    width = max(len(row[0]) for row in rows)
    print(f"{'check':<{width}}  {'value':>20}  note")
    for check, value, note in rows:
        print(f"{check:<{width}}  {value:>20}  {note}")
    print(f"# {time.perf_counter() - start:.0f} s; FLOPs counted by torch.utils.flop_counter; MFU against "
          f"{args.peak_tflops:g} TFLOP/s")
    return 1 if any(note == "FAIL" for _, _, note in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
