"""Per-token rewards (``p2o.losses.token_rewards``): the KL estimators against their formulas and their
signs, the score at the last action token, the no-EOS penalty, and RTO's token reward against its
formula on hand-made tensors with both clamps exercised."""

from __future__ import annotations

import math

import pytest
import torch

from p2o.losses.token_rewards import (
    approx_kl, at_last_action, compute_reward, dense_dpo_reward, no_eos_penalty,
)

MASK = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0],   # prompt token, 3 actions, padding
                     [1.0, 1.0, 0.0, 0.0, 0.0]])


def test_kl_estimators_by_formula():
    logps = torch.tensor([[-1.0, -2.0, -0.5]])
    ref = torch.tensor([[-1.5, -1.0, -0.5]])
    lr = logps - ref  # 0.5, −1, 0
    torch.testing.assert_close(approx_kl(logps, ref, estimator="k1"), lr)
    torch.testing.assert_close(approx_kl(logps, ref, estimator="k2"), 0.5 * lr**2)
    want_k3 = torch.tensor([[math.exp(-0.5) - 1 + 0.5, math.exp(1.0) - 1 - 1.0, 0.0]])
    torch.testing.assert_close(approx_kl(logps, ref, estimator="k3"), want_k3)
    with pytest.raises(ValueError, match="k3"):
        approx_kl(logps, ref, estimator="k4")


def test_k3_is_nonnegative_and_every_estimator_is_zero_against_itself():
    g = torch.Generator().manual_seed(0)
    logps, ref = -torch.rand(4, 7, generator=g) * 5, -torch.rand(4, 7, generator=g) * 5
    assert (approx_kl(logps, ref, estimator="k3") >= 0).all()
    assert (approx_kl(logps, ref, estimator="k2") >= 0).all()
    assert (approx_kl(logps, ref, estimator="k1") < 0).any()  # k1 can be negative per token
    for est in ("k1", "k2", "k3"):
        assert (approx_kl(logps, logps.clone(), estimator=est) == 0).all()


def test_k1_and_k3_estimate_the_exact_kl_of_a_categorical():
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(6, generator=g, dtype=torch.float64), 0)
    q = torch.softmax(torch.randn(6, generator=g, dtype=torch.float64), 0)
    exact = (p * (p / q).log()).sum()
    # the expectation under p, computed exactly over the support: both unbiased
    for est in ("k1", "k3"):
        per = approx_kl(p.log().unsqueeze(0), q.log().unsqueeze(0), estimator=est).double()
        assert (p * per[0]).sum().item() == pytest.approx(exact.item(), rel=1e-6)


def test_kl_is_masked():
    logps, ref = torch.full((2, 5), -1.0), torch.full((2, 5), -2.0)
    torch.testing.assert_close(approx_kl(logps, ref, MASK), MASK)


def test_score_is_placed_at_the_last_action_token():
    out = at_last_action(torch.tensor([3.0, -2.0]), MASK)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 0.0, 3.0, 0.0], [0.0, -2.0, 0.0, 0.0, 0.0]]))


def test_no_eos_penalty():
    scores = torch.tensor([1.0, 1.0, -2.0])
    ended = torch.tensor([True, False, False])
    torch.testing.assert_close(no_eos_penalty(scores, ended, 1.5), torch.tensor([1.0, -0.5, -3.5]))
    with pytest.raises(ValueError, match="penalty"):
        no_eos_penalty(scores, ended, -1.0)


def test_rto_token_reward_matches_the_formula():
    """r_t = d_t − kl_coef·(log π − log π_ref) + 1[t = last]·clamp(r_RM, −10, 10),
    d_t = clamp(β₁(log π_dpo − log π_ref), −c, c), with β₁ = c = 0.05, kl_coef = 0.01."""
    ref = torch.tensor([[-9.0, -1.0, -2.0, -3.0, -9.0], [-1.0, -1.0, -9.0, -9.0, -9.0]])
    logps = torch.tensor([[-5.0, -1.5, -1.0, -3.0, -5.0], [-2.0, -0.5, -5.0, -5.0, -5.0]])
    dpo = torch.tensor([[0.0, -0.5, -3.0, -2.8, 0.0], [-1.0, 0.0, 0.0, 0.0, 0.0]])
    scores = torch.tensor([25.0, -0.5])  # the first is clamped to 10
    # dense: row 0: 0.05·(0.5, −1, 0.2) → (0.025, −0.05, 0.01); row 1: 0.05·(0, 1) → (0, 0.05),
    # two values exactly at the bound ±c (strict clamping is exercised just below)
    dense = dense_dpo_reward(dpo, ref, MASK)
    want_dense = torch.tensor([[0.0, 0.025, -0.05, 0.01, 0.0], [0.0, 0.05, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(dense, want_dense)
    big = dense_dpo_reward(dpo * 10, ref, MASK)  # exercise the clamp strictly: |β₁Δ| > c
    assert big.abs().max().item() == pytest.approx(0.05) and (big.abs() <= 0.05 + 1e-7).all()
    reward = compute_reward(scores, logps, ref, MASK, kl_coef=0.01, reward_clip=10.0, dense=dense)
    kl = (logps - ref) * MASK  # row 0: (−0.5, 1, 0), row 1: (−1, 0.5)
    want = want_dense - 0.01 * kl
    want[0, 3] += 10.0
    want[1, 1] += -0.5
    torch.testing.assert_close(reward, want)
    assert (reward[MASK == 0] == 0).all()


def test_dense_reward_hand_clamped_values():
    ref = torch.zeros(1, 4)
    dpo = torch.tensor([[4.0, -4.0, 0.4, -0.4]])  # β₁Δ = 0.2, −0.2, 0.02, −0.02
    d = dense_dpo_reward(dpo, ref, torch.ones(1, 4), beta=0.05, clip=0.05)
    torch.testing.assert_close(d, torch.tensor([[0.05, -0.05, 0.02, -0.02]]))


def test_ppo_reward_without_dense_term_and_with_k3():
    logps = torch.tensor([[-1.0, -2.0, -1.0]])
    ref = torch.tensor([[-1.0, -1.0, -3.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    r = compute_reward(torch.tensor([-20.0]), logps, ref, mask, kl_coef=0.1, kl_estimator="k3")
    k3 = math.exp(1.0) - 1 - 1.0  # log r = −1 at t = 1
    torch.testing.assert_close(r, torch.tensor([[0.0, -0.1 * k3 - 10.0, 0.0]]))
    unclamped = compute_reward(torch.tensor([-20.0]), logps, ref, mask, kl_coef=0.0, reward_clip=None)
    torch.testing.assert_close(unclamped, torch.tensor([[0.0, -20.0, 0.0]]))
