"""Held-out evaluation: a tie counts as half a win, and the tie rate is reported."""

from __future__ import annotations

import copy

import pytest
import torch

from p2o.config import TokenizeConfig
from p2o.model.evaluate import evaluate_split, pair_accuracy, tie_rate
from p2o.model.reference import compute_reference_logps

from tiny_models import split_of

TOK = TokenizeConfig(max_length=128, max_prompt_length=64)


def test_hand_made_margins_count_a_tie_as_half():
    margins = torch.tensor([1.0, 0.0, -1.0, 0.0])
    assert pair_accuracy(margins).item() == 0.5  # (1 + ½ + 0 + ½) / 4
    assert tie_rate(margins).item() == 0.5
    assert pair_accuracy(torch.tensor([2.0, -0.5, 0.0])).item() == pytest.approx(0.5)
    assert pair_accuracy(torch.tensor([1e-30, -1e-30])).item() == 0.5 and tie_rate(torch.tensor([1e-30])) == 0


@pytest.mark.parametrize("batch_size", [16, 2])
def test_a_policy_equal_to_the_reference_scores_chance_not_zero(tokenizer, model, batch_size):
    """As at step 0: every margin is exactly 0, so accuracy 0.5 and tie rate 1 (not accuracy 0)."""
    split = split_of(tokenizer, TOK)
    reference = compute_reference_logps(model, split, TOK, tokenizer.pad_token_id, batch_size=batch_size)
    policy = copy.deepcopy(model)
    metrics = evaluate_split(policy, model, split, reference, beta=0.5, pad_id=tokenizer.pad_token_id,
                             batch_size=batch_size, progress=False, per_pair=True)
    assert metrics["pairs"]["margin"] == [0.0] * len(split)
    assert metrics["eval_rewards/accuracies"] == 0.5 and metrics["eval_rewards/ties"] == 1.0
    assert metrics["eval_rewards/margins"] == 0.0 and metrics["eval_kl/token_mean"] == pytest.approx(0, abs=1e-7)


def test_a_changed_policy_breaks_the_ties(tokenizer, model):
    split = split_of(tokenizer, TOK)
    reference = compute_reference_logps(model, split, TOK, tokenizer.pad_token_id)
    policy = copy.deepcopy(model)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    metrics = evaluate_split(policy, model, split, reference, beta=0.5, pad_id=tokenizer.pad_token_id,
                             progress=False, per_pair=True)
    margins = torch.tensor(metrics["pairs"]["margin"])
    assert metrics["eval_rewards/ties"] == 0.0
    assert metrics["eval_rewards/accuracies"] == pytest.approx((margins > 0).float().mean().item())
