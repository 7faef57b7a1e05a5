"""RLOO and the regression objective (``p2o.losses.rloo``) against naive loops and hand computations,
and online DPO's pair selection (``p2o.losses.pair_selection``): best/worst, ties, K = 2."""

from __future__ import annotations

import pytest
import torch

from p2o.losses.pair_selection import gather_responses, select_pairs
from p2o.losses.rloo import regression_rl, rloo_advantages, rloo_baseline, rloo_loss, sequence_reward


def test_rloo_baseline_matches_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(5, 4, generator=g, dtype=torch.float64)
    want = torch.zeros_like(rewards)
    for p in range(5):
        for i in range(4):
            others = [rewards[p, j].item() for j in range(4) if j != i]
            want[p, i] = sum(others) / len(others)
    torch.testing.assert_close(rloo_baseline(rewards), want)
    adv = rloo_advantages(rewards)
    torch.testing.assert_close(adv, rewards - want)
    torch.testing.assert_close(adv.sum(1), torch.zeros(5, dtype=torch.float64))


def test_rloo_with_two_samples_and_k_one_refused():
    adv = rloo_advantages(torch.tensor([[1.0, 3.0]]))
    torch.testing.assert_close(adv, torch.tensor([[-2.0, 2.0]]))
    with pytest.raises(ValueError, match="k >= 2"):
        rloo_baseline(torch.ones(3, 1))


def test_sequence_reward_subtracts_the_summed_kl():
    logps = torch.tensor([[-1.0, -2.0, -4.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-2.0, -1.5, 0.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    r = sequence_reward(torch.tensor([2.0, 0.5]), logps, ref, mask, kl_coef=0.1)
    torch.testing.assert_close(r, torch.tensor([2.0 - 0.1 * (1.0 - 0.5), 0.5]))


def test_rloo_loss_is_reinforce_at_ratio_one():
    logps = torch.tensor([[-1.0, -2.0, -7.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, metrics = rloo_loss(logps, logps.detach(), adv, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(-(2.0 - 1.0) / 2)
    loss.backward()
    # d/dlogp_t of −mean_i A_i·Σ_t m_t logp_t = −A_i·m_t / B
    torch.testing.assert_close(logps.grad, torch.tensor([[-1.0, -1.0, 0.0], [0.5, 0.5, 0.5]]))
    assert metrics["policy/clipfrac_avg"].item() == 0


def test_rloo_loss_clips_the_sequence_ratio():
    mask = torch.ones(2, 2)
    old = torch.zeros(2, 2)
    logps = torch.tensor([[0.5, 0.5], [-0.1, 0.0]])  # ρ = e ≈ 2.718 (clipped to 1.2), e^{−0.1} ≈ 0.905
    adv = torch.tensor([1.0, 1.0])
    loss, metrics = rloo_loss(logps, old, adv, mask, clip_eps=0.2)
    want = (-1.2 + -torch.exp(torch.tensor(-0.1)).item()) / 2
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert metrics["policy/clipfrac_avg"].item() == pytest.approx(0.5)
    unclipped, _ = rloo_loss(logps, old, adv, mask, clip_eps=None)
    assert unclipped.item() == pytest.approx((-torch.e - torch.exp(torch.tensor(-0.1)).item()) / 2, rel=1e-6)


def test_regression_rl_by_hand():
    # pair 0: log-ratios 1.0 and −1.0, β = 0.5 → implicit margin 1.0; RM margin 3 − 1 = 2 → residual −1
    # pair 1: log-ratios 0.0 and 0.4 → implicit −0.2; RM margin 0 → residual −0.2
    logps_1, ref_1 = torch.tensor([-1.0, -2.0], requires_grad=True), torch.tensor([-2.0, -2.0])
    logps_2, ref_2 = torch.tensor([-3.0, -1.6]), torch.tensor([-2.0, -2.0])
    r1, r2 = torch.tensor([3.0, 0.5]), torch.tensor([1.0, 0.5])
    loss, metrics = regression_rl(logps_1, logps_2, ref_1, ref_2, r1, r2, beta=0.5)
    assert loss.item() == pytest.approx((1.0 + 0.04) / 2, rel=1e-6)
    assert metrics["rewards/margins"].item() == pytest.approx((1.0 - 0.2) / 2, rel=1e-6)
    loss.backward()
    # dℓ/dlogp_1 = 2·residual·β / B
    torch.testing.assert_close(logps_1.grad, torch.tensor([2 * -1.0 * 0.5 / 2, 2 * -0.2 * 0.5 / 2]))


def test_regression_rl_is_zero_at_the_rlhf_optimum():
    # π ∝ π_ref·exp(r/β) makes β·log-ratio = r − const for every response
    beta, r = 0.2, torch.tensor([1.0, -0.3, 2.5, 0.0])
    ref = torch.tensor([-3.0, -1.0, -2.0, -4.0])
    logps = ref + r / beta - 7.0
    loss, _ = regression_rl(logps[:2], logps[2:], ref[:2], ref[2:], r[:2], r[2:], beta=beta)
    assert loss.item() == pytest.approx(0.0, abs=1e-8)


def test_pair_selection_best_and_worst():
    rewards = torch.tensor([[0.1, 0.9, -0.5, 0.3], [2.0, 1.0, 3.0, 0.0]])
    pairs = select_pairs(rewards)
    assert pairs.chosen.tolist() == [1, 2] and pairs.rejected.tolist() == [2, 3]
    torch.testing.assert_close(pairs.chosen_reward, torch.tensor([0.9, 3.0]))
    torch.testing.assert_close(pairs.rejected_reward, torch.tensor([-0.5, 0.0]))
    assert pairs.valid.tolist() == [True, True]
    responses = torch.arange(8).reshape(2, 4, 1).expand(2, 4, 3)  # (P, K, T)
    torch.testing.assert_close(gather_responses(responses, pairs.chosen), torch.tensor([[1] * 3, [6] * 3]))


def test_pair_selection_ties_are_deterministic():
    rewards = torch.tensor([[1.0, 2.0, 2.0, 0.0, 0.0],   # best: first of the tied maxima; worst: last minimum
                            [5.0, 5.0, 5.0, 5.0, 5.0],   # all equal: no preference
                            [3.0, -1.0, 3.0, -1.0, 0.0]])
    pairs = select_pairs(rewards)
    assert pairs.chosen.tolist() == [1, 0, 0]
    assert pairs.rejected.tolist() == [4, 4, 3]
    assert pairs.valid.tolist() == [True, False, True]
    again = select_pairs(rewards.clone())
    assert again.chosen.tolist() == pairs.chosen.tolist() and again.rejected.tolist() == pairs.rejected.tolist()


def test_pair_selection_k_two_and_errors():
    pairs = select_pairs(torch.tensor([[0.2, 0.7], [0.7, 0.2], [0.4, 0.4]]))
    assert pairs.chosen.tolist() == [1, 0, 0] and pairs.rejected.tolist() == [0, 1, 1]
    assert pairs.valid.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="K >= 2"):
        select_pairs(torch.ones(3, 1))
    with pytest.raises(ValueError, match="finite"):
        select_pairs(torch.tensor([[0.0, float("nan")]]))
