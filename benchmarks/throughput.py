"""Training-step throughput of the unfolded vs the standard Transformer, side by side in one run.

Both encoders get the same width d, depth, sequence length n and batch size; a step is forward,
cross-entropy on a mean-pooled linear head, backward and an AdamW update. FLOPs of one step are
counted with ``torch.utils.flop_counter``; on a GPU the model FLOP utilisation (MFU) is reported
against the device's peak (``--peak-tflops``, default: H100/H200 dense bf16, 989).

    python benchmarks/throughput.py                       # CPU defaults: d=64, n=64, batch=32
    python benchmarks/throughput.py --d 512 --n 512 --batch 64 --layers 12   # GPU
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from unfolded.encoders import build_encoder


def make_step(encoder: torch.nn.Module, d: int, device: str, dtype: torch.dtype):
    head = torch.nn.Linear(d, 2).to(device)
    parameters = [*encoder.parameters(), *head.parameters()]
    optimiser = torch.optim.AdamW(parameters, lr=1e-4)

    def step(Y: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> None:
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
            hidden = encoder(Y, mask, return_energies=False).hidden
            logits = head(hidden.mean(1))
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return step


def measure(model: str, args, device: str, dtype: torch.dtype) -> dict:
    torch.manual_seed(0)
    encoder = build_encoder(model, args.d, args.layers, {"num_heads": args.heads}).to(device)
    step = make_step(encoder, args.d, device, dtype)
    Y = torch.randn(args.batch, args.n, args.d, device=device) / args.d**0.5
    mask = torch.ones(args.batch, args.n, dtype=torch.bool, device=device)
    labels = torch.randint(0, 2, (args.batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        step(Y, mask, labels)
    flops = counter.get_total_flops()
    for _ in range(args.warmup):
        step(Y, mask, labels)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step(Y, mask, labels)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    return {
        "model": model,
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "ms_per_step": 1e3 * seconds,
        "samples_per_s": args.batch / seconds,
        "gflop_per_step": flops / 1e9,
        "mfu": flops / seconds / (args.peak_tflops * 1e12) if device == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    print(f"{name}, {dtype}, d={args.d}, n={args.n}, batch={args.batch}, layers={args.layers}, "
          f"heads={args.heads} (standard), {args.steps} timed steps")
    rows = [measure(model, args, args.device, dtype)
            for model in ("unfolded_tied", "unfolded_untied", "standard_tied", "standard_untied")]
    print(f"{'model':<17}{'params':>10}{'ms/step':>10}{'samples/s':>12}{'GFLOP/step':>12}{'MFU':>8}")
    for row in rows:
        mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "-"
        print(f"{row['model']:<17}{row['parameters']:>10}{row['ms_per_step']:>10.2f}{row['samples_per_s']:>12.0f}"
              f"{row['gflop_per_step']:>12.3f}{mfu:>8}")
    reference = {r["model"]: r["samples_per_s"] for r in rows}
    print(f"throughput ratio unfolded/standard: tied {reference['unfolded_tied'] / reference['standard_tied']:.2f}x, "
          f"untied {reference['unfolded_untied'] / reference['standard_untied']:.2f}x")


if __name__ == "__main__":
    main()
