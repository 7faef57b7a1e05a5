"""GPU-side precision settings tested on the CPU: ``train.autocast: auto`` resolves to fp32 without a
bf16 GPU, ``model.inference_dtype: bfloat16`` loads bf16 weights whose log-probs stay fp32 tensors and
stay close to the fp32 model's, and loading in float32 (SDPA attention) leaves log-probs bit-identical.

Tolerance of bf16 weights. Rounding each weight to bf16 (8 mantissa bits, relative error ≤ 2⁻⁹) and
running the body in bf16 moved a response's summed log-prob by at most 0.003 nats on the tiny 2-layer
model (measured); ``BF16_WEIGHTS_TOL`` = 0.02 nats per sequence bounds it with room for other BLAS
builds and is far below the spread between sequences (several nats). The fp32 reference log-probs of
a real model move more (deeper bodies round more): that is the cost ``model.inference_dtype``'s help
states.
"""

from __future__ import annotations

import pytest
import torch

from p2o.config import ConfigError, ModelConfig, OptimConfig, build
from p2o.model import logps
from p2o.model.loading import load_model
from p2o.model.logps import precision, resolve_autocast, sequence_logps
from p2o.model.tokenize import collate_pairs

from tiny_models import split_of

BF16_WEIGHTS_TOL = 0.02

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def saved(tokenizer, model, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    return path


def batch_of(tokenizer):
    return collate_pairs(split_of(tokenizer), [0, 1, 2, 3], tokenizer.pad_token_id).pairs


def test_bf16_weights_give_fp32_logps_close_to_fp32(tokenizer, model, saved):
    bf16 = load_model(saved, "cpu", "bfloat16")
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    batch = batch_of(tokenizer)
    with torch.no_grad():
        ours, _ = sequence_logps(bf16, batch)
        exact, _ = sequence_logps(model, batch)
    assert ours.dtype == torch.float32
    gap = (ours - exact).abs().max().item()
    print(f"bf16 weights: max |Δ log p| = {gap:.4f} nats")
    assert 0 < gap <= BF16_WEIGHTS_TOL
    assert exact.max() - exact.min() > 20 * BF16_WEIGHTS_TOL  # the tolerance is small against the signal


def test_float32_loading_keeps_the_fp32_path_bit_identical(tokenizer, model, saved):
    loaded = load_model(saved, "cpu")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert loaded.config._attn_implementation == "sdpa"
    batch = batch_of(tokenizer)
    with torch.no_grad():
        assert torch.equal(sequence_logps(loaded.eval(), batch)[0], sequence_logps(model, batch)[0])
    with pytest.raises(ValueError, match="model.inference_dtype 'float16'"):
        load_model(saved, "cpu", "float16")


def test_auto_is_fp32_on_the_cpu_and_bf16_on_a_bf16_gpu(monkeypatch):
    assert resolve_autocast("auto", "cpu") == "none"
    assert not isinstance(precision("auto", "cpu"), torch.autocast)
    assert resolve_autocast("bf16", "cpu") == "bf16" and resolve_autocast("none", "cuda") == "none"
    monkeypatch.setattr(logps.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(logps.torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_autocast("auto", "cuda") == "bf16"
    monkeypatch.setattr(logps.torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert resolve_autocast("auto", "cuda:0") == "none"  # a GPU before Ampere: fp32
    with pytest.raises(ValueError, match="autocast 'fp16'"):
        resolve_autocast("fp16", "cpu")


def test_config_keys():
    assert build(OptimConfig, {"autocast": "auto"}, "train").autocast == "auto"
    assert build(ModelConfig, {"inference_dtype": "bfloat16"}, "model").inference_dtype == "bfloat16"
    assert ModelConfig().inference_dtype == "float32"
    with pytest.raises(ConfigError, match="model.inference_dtype"):
        build(ModelConfig, {"inference_dtype": "float16"}, "model")


def test_the_head_runs_in_full_fp32_on_cuda_only():
    """``ieee_fp32`` turns TF32 off around the head on CUDA and restores the setting; on the CPU it
    touches nothing."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        with logps.ieee_fp32(torch.device("cuda")):
            assert torch.get_float32_matmul_precision() == "highest"
            assert not torch.backends.cuda.matmul.allow_tf32  # the flag cuBLAS reads, legacy API
        assert torch.get_float32_matmul_precision() == "high"
        with logps.ieee_fp32(torch.device("cpu")):
            assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_bf16_reference_side_scores_the_reference_as_itself(tokenizer, saved):
    """Reference log-probs from bf16 weights, evaluated with the bf16 reference model as the policy:
    margins 0 and KL 0, as in fp32 (every frozen model loads in ``model.inference_dtype``)."""
    from p2o.config import TokenizeConfig
    from p2o.model.evaluate import evaluate_split
    from p2o.model.reference import compute_reference_logps

    split = split_of(tokenizer)
    bf16 = load_model(saved, "cpu", "bfloat16")
    ref = compute_reference_logps(bf16, split, TokenizeConfig(max_length=128, max_prompt_length=64),
                                  tokenizer.pad_token_id)
    assert ref.chosen.dtype == torch.float32
    metrics = evaluate_split(load_model(saved, "cpu", "bfloat16"), bf16, split, ref, beta=0.5,
                             pad_id=tokenizer.pad_token_id, progress=False, per_pair=True)
    assert max(abs(m) for m in metrics["pairs"]["margin"]) <= 1e-5
    assert metrics["eval_kl/token_mean"] == 0.0
