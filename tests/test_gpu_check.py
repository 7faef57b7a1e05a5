"""The CPU-side pieces of ``benchmarks/gpu_check.py``: its arguments, the MFU arithmetic, the bf16
peak look-up, its refusal to run without CUDA, and its p2o runner's plumbing on a tiny model (on the
CPU, where the GPU check itself never runs)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402


def test_arguments():
    args = gpu_check.parse_args([])
    assert (args.batch, args.max_length, args.steps, args.sizes) == (16, 512, 20, ["gpt2", "smollm2-135m"])
    args = gpu_check.parse_args(["--sizes", "gpt2", "--batch", "4", "--no-trl", "--no-workflow"])
    assert args.sizes == ["gpt2"] and args.batch == 4 and args.no_trl and args.no_workflow
    for bad in (["--max-length", "64", "--max-prompt-length", "64"], ["--batch", "0"], ["--sizes", "gpt3"]):
        with pytest.raises(SystemExit):
            gpu_check.parse_args(bad)


def test_mfu_arithmetic():
    # 124M parameters at 100k tokens/s: 6 * 124e6 * 1e5 = 7.44e13 FLOP/s, 7.52 % of an H200's 989 TFLOP/s
    assert gpu_check.mfu(124_000_000, 100_000, 989e12) == pytest.approx(7.44e13 / 989e12)
    assert gpu_check.mfu(124_000_000, 100_000, 989e12) == pytest.approx(0.07523, abs=1e-5)


def test_bf16_peak_lookup():
    assert gpu_check.bf16_peak("NVIDIA H200") == 989e12
    assert gpu_check.bf16_peak("NVIDIA H100 PCIe") == 756e12  # the longest matching name wins
    assert gpu_check.bf16_peak("NVIDIA L40S") == 362e12 and gpu_check.bf16_peak("NVIDIA L4") == 121e12
    assert gpu_check.bf16_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu_check.bf16_peak("Some Future GPU") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_without_cuda_it_stops_at_once_saying_why():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "needs a CUDA GPU" in proc.stderr


def test_p2o_runner_on_a_tiny_model_on_the_cpu(shared_data, monkeypatch):
    if not (shared_data / "hh-rlhf" / "helpful-base.test.jsonl.gz").exists():
        pytest.skip(f"no hh-rlhf rows under {shared_data}")
    monkeypatch.setitem(gpu_check.SIZES, "tiny", ("gpt2", dict(n_layer=1, n_head=2, n_embd=32, vocab_size=512,
                                                               n_positions=128)))
    args = gpu_check.parse_args(["--data", str(shared_data), "--batch", "2", "--steps", "2", "--warmup", "1",
                                 "--max-length", "96", "--max-prompt-length", "48"])
    df = gpu_check.rows(shared_data, 6)
    from p2o.model.loading import train_bpe_tokenizer

    tok = train_bpe_tokenizer((df["prompt"] + df["chosen"]).tolist() + df["rejected"].tolist(), 512)
    r = gpu_check.run_p2o(gpu_check.build("tiny", tok), tok, df, args, device="cpu")
    assert r["steps"] == 2 and r["seconds"] > 0 and r["tokens"] > 0 and r["peak_memory_gb"] is None
