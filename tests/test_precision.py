"""bf16-mixed code paths exercised on CPU (the GPU default), and the same checks on CUDA where present."""

import pytest
import torch

from unfolded.config import load_config
from unfolded.data import collate, prepare
from unfolded.models import StandardTransformer, UnfoldedTransformer
from unfolded.steps import attention_step
from unfolded.training import SequenceClassifier, fit

SMOKE = load_config("config/smoke.yaml")
#: bf16 keeps 8 bits of mantissa: one rounding is 2^-8 = 0.4% relative
BF16_TOLERANCE = 3e-2


@pytest.mark.parametrize("model", ["unfolded_tied", "standard_tied"])
def test_a_short_bf16_mixed_fit_on_cpu(model, tmp_path):
    config = load_config({**SMOKE, "train": {**SMOKE["train"], "max_epochs": 1}})
    data = prepare("polarity", config)
    torch.manual_seed(0)
    module = SequenceClassifier(kind="tokens", input_dim=data.input_dim, num_classes=2, model=model, width=16,
                                num_layers=2, vectors=data.vectors, embedding="learned", lr=1e-2, positions="learned",
                                max_tokens=64, diagnostics_dir=str(tmp_path))
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    summary = fit(module, data, tmp_path / "ckpt", seed=0, batch_size=16, max_epochs=1, accelerator="cpu",
                  precision="bf16-mixed", progress=False)
    assert summary["steps"] > 0 and 0.0 <= summary["test_accuracy"] <= 1.0
    changed = [name for name, p in module.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert changed and all(p.dtype == torch.float32 for p in module.parameters())  # master weights stay fp32


@pytest.mark.parametrize("family", ["unfolded", "standard"])
def test_energies_stay_float32_under_bf16_autocast(family):
    torch.manual_seed(0)
    encoder = UnfoldedTransformer(16, 3) if family == "unfolded" else StandardTransformer(16, 3, num_heads=2)
    Y, mask = torch.randn(2, 7, 16), torch.ones(2, 7, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder(Y, mask)
    assert out.energies.dtype == torch.float32 and torch.isfinite(out.energies).all()
    reference = encoder(Y, mask).energies
    assert (out.energies - reference).abs().max() <= BF16_TOLERANCE * reference.abs().max()


@pytest.mark.parametrize("heads", [1, 4])
def test_sdpa_and_explicit_attention_agree_under_bf16(heads):
    generator = torch.Generator().manual_seed(0)
    Y = torch.randn(3, 12, 16, generator=generator)
    W = torch.randn(16, 16, generator=generator) / 4 if heads == 1 else torch.randn(heads, 4, 4, generator=generator) / 2
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 8:] = False
    exact = attention_step(Y.double(), W.double(), mask, use_sdpa=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = attention_step(Y, W, mask, use_sdpa=True).float()
        explicit = attention_step(Y, W, mask, use_sdpa=False).float()
    scale = exact.abs().max().item()
    assert (fused.double() - exact).abs().max() <= BF16_TOLERANCE * scale
    assert (explicit.double() - exact).abs().max() <= BF16_TOLERANCE * scale


@pytest.mark.cuda
@pytest.mark.parametrize("model", ["unfolded_tied", "standard_tied"])
def test_cuda_bf16_forward_matches_fp32(model):
    data = prepare("polarity", SMOKE)
    torch.manual_seed(0)
    module = SequenceClassifier(kind="tokens", input_dim=data.input_dim, num_classes=2, model=model, width=16,
                                num_layers=2, vectors=data.vectors, positions="learned", max_tokens=64).cuda().eval()
    batch = {k: v.cuda() for k, v in collate(list(zip(*data.splits["test"], strict=True))[:32]).items()}
    with torch.no_grad():
        logits32, energies32 = module(batch, return_energies=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits16, energies16 = module(batch, return_energies=True)
    assert energies16.dtype == torch.float32
    assert (logits16.float() - logits32).abs().max() <= BF16_TOLERANCE * (1 + logits32.abs().max())
    assert (energies16 - energies32).abs().max() <= BF16_TOLERANCE * energies32.abs().max()


@pytest.mark.cli
def test_gpu_check_script_runs_at_toy_sizes_on_cpu():
    """benchmarks/gpu_check.py --dry-run: every part of the GPU script, on the CPU, and one summary table."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run"], capture_output=True, text=True,
                            timeout=300, env={**__import__("os").environ, "PYTHONPATH": "src"})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# GPU check on CPU (dry run)")
    assert sum(line.endswith(" ok") for line in lines) == 5 and not any("FAIL" in line for line in lines)
    assert any(line.startswith("throughput ratio unfolded/standard (tied)") for line in lines)
    assert any(line.startswith("paper scale") and "unfolded_tied" in line for line in lines)
