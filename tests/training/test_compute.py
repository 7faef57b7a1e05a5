"""Compute accounting: the replayed counts equal what the training loop really ran."""

from __future__ import annotations

import copy

import pytest

import p2o.training.inputs
from p2o.model.logps import PolicyForward
from p2o.training.preference import train_preference
from p2o.training.compute import Compute, model_size, training_compute
from p2o.config import OptimConfig
from p2o.losses import MethodSpec

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("method", [
    MethodSpec("dpo", "dpo", {"beta": 0.5}),
    MethodSpec("dpo_k3", "dpo", {"beta": 0.5}, inner_steps=3),
    MethodSpec("p2o", "p2o", {"beta": 0.5, "eps_clip": 0.2, "kl_coef": 0.1, "ratio": "pair", "kl_estimator": "k3"},
               inner_steps=2),
    MethodSpec("kto", "kto", {"beta": 0.5, "desirable_weight": 1.0, "undesirable_weight": 1.0,
                              "ref_point": "mismatched"}),
    MethodSpec("tdpo2", "tdpo2", {"beta": 0.1, "alpha": 0.5}, inner_steps=2),
])
def test_replayed_counts_equal_the_loop(setup, monkeypatch, method):
    tok, model, splits, refs = setup
    seen = Compute()
    real_policy_forward, real_sequence_logps = PolicyForward.of.__func__, p2o.training.inputs.sequence_logps
    real_reference_distribution = p2o.training.inputs.reference_distribution

    def counting_policy_forward(cls, m, batch):
        seen.forward_passes += 1
        seen.backward_passes += 1
        seen.forward_tokens += batch.pairs.n_tokens
        seen.forward_head_tokens += int(batch.pairs.response_mask.sum())
        return real_policy_forward(cls, m, batch)

    def counting_sequence_logps(m, rows):
        seen.forward_passes += 1
        seen.forward_tokens += rows.n_tokens
        seen.forward_head_tokens += int(rows.response_mask.sum())
        return real_sequence_logps(m, rows)

    def counting_reference_distribution(m, batch):
        seen.forward_passes += 1
        seen.forward_tokens += batch.pairs.n_tokens
        seen.forward_head_tokens += int(batch.pairs.response_mask.sum())
        return real_reference_distribution(m, batch)

    monkeypatch.setattr(PolicyForward, "of", classmethod(counting_policy_forward))
    monkeypatch.setattr(p2o.training.inputs, "sequence_logps", counting_sequence_logps)
    monkeypatch.setattr(p2o.training.inputs, "reference_distribution", counting_reference_distribution)
    optim = OptimConfig(lr=1e-3, batch_size=3, epochs=2, warmup_ratio=0.0)
    result = train_preference(copy.deepcopy(model), splits, refs, method, optim, 7, tok.pad_token_id)

    replay = training_compute(splits, optim.batch_size, optim.epochs, 7, method)
    assert replay.optimizer_steps == result["steps"]
    assert replay.forward_passes == seen.forward_passes
    assert replay.backward_passes == seen.backward_passes == result["steps"]
    assert replay.forward_tokens == seen.forward_tokens
    assert replay.forward_head_tokens == seen.forward_head_tokens


def test_flops_follow_kaplan(setup):
    _, model, _, _ = setup
    body, d, vocab = model_size(model)
    everything = sum(p.numel() for p in model.parameters())
    assert 0 < body < everything and d == model.config.n_embd and vocab == model.config.vocab_size
    c = Compute(forward_tokens=10, forward_head_tokens=4, backward_tokens=10, backward_head_tokens=4)
    assert c.flops(body, d, vocab) == 3 * (2 * body * 10 + 2 * d * vocab * 4)  # backward = 2 x forward
    k3 = Compute(forward_tokens=30, forward_head_tokens=12, backward_tokens=30, backward_head_tokens=12)
    assert k3.flops(body, d, vocab) == 3 * c.flops(body, d, vocab)
