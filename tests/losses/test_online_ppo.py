"""PPO's pieces (``p2o.losses.ppo``): GAE against a naive backward loop per response in float64, the
clipped policy and value losses against hand-computed numbers, whitening over the mask."""

from __future__ import annotations

import math

import pytest
import torch

from p2o.losses.masked import last_action_index, masked_mean, reduce_per_token
from p2o.losses.ppo import gae, policy_loss, value_loss, whiten_advantages


def random_masked(B: int = 6, T: int = 9, seed: int = 0):
    """Random values, rewards and a mask whose responses start at a random offset (a prompt before them)
    and have random lengths (padding after), one row with a single token."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    mask = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        start = int(torch.randint(0, 3, (1,), generator=g))
        length = 1 if b == 0 else int(torch.randint(1, T - start + 1, (1,), generator=g))
        mask[b, start:start + length] = 1
    return values, rewards, mask


def naive_gae(values, rewards, mask, gamma, lam):
    """Per response: the list of its action positions, A_t = Σ_l (γλ)^l δ_{t+l} computed backwards."""
    adv, ret = torch.zeros_like(values), torch.zeros_like(values)
    for b in range(values.size(0)):
        positions = [t for t in range(values.size(1)) if mask[b, t] == 1]
        running = 0.0
        for i in reversed(range(len(positions))):
            t = positions[i]
            next_v = values[b, positions[i + 1]].item() if i + 1 < len(positions) else 0.0
            delta = rewards[b, t].item() + gamma * next_v - values[b, t].item()
            running = delta + gamma * lam * running
            adv[b, t] = running
            ret[b, t] = running + values[b, t].item()
    return adv, ret


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (0.99, 0.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_matches_a_naive_backward_loop(gamma, lam, seed):
    values, rewards, mask = random_masked(seed=seed)
    adv, ret = gae(values, rewards, mask, gamma, lam)
    want_adv, want_ret = naive_gae(values, rewards, mask, gamma, lam)
    torch.testing.assert_close(adv, want_adv)
    torch.testing.assert_close(ret, want_ret)
    assert (adv[mask == 0] == 0).all() and (ret[mask == 0] == 0).all()


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    values = torch.tensor([[0.5, 1.0, 2.0, 9.0]])
    rewards = torch.tensor([[1.0, 0.0, 3.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last position is padding: its reward is ignored
    adv, ret = gae(values, rewards, mask, 1.0, 1.0)
    torch.testing.assert_close(ret, torch.tensor([[4.0, 3.0, 3.0, 0.0]]))
    torch.testing.assert_close(adv, torch.tensor([[3.5, 2.0, 1.0, 0.0]]))


def test_gae_carries_no_gradient():
    values = torch.randn(2, 3, requires_grad=True)
    adv, ret = gae(values, torch.randn(2, 3), torch.ones(2, 3))
    assert not adv.requires_grad and not ret.requires_grad


def test_whitening_gives_masked_mean_zero_std_one_and_zero_padding():
    values, _, mask = random_masked(B=5, T=8, seed=3)
    x = 3.0 + 5.0 * values
    white = whiten_advantages(x, mask)
    on = white[mask == 1]
    assert abs(on.mean().item()) < 1e-9
    assert abs(on.std(unbiased=False).item() - 1) < 1e-6
    assert (white[mask == 0] == 0).all()
    # padding values never enter the statistics
    x2 = x.clone()
    x2[mask == 0] = 1e6
    torch.testing.assert_close(whiten_advantages(x2, mask), white)


def test_masked_mean_ignores_padding_and_empty_rows():
    x = torch.tensor([[1.0, 3.0, 100.0], [7.0, 7.0, 7.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(masked_mean(x, m, dim=-1), torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(masked_mean(x, m), torch.tensor(2.0))
    torch.testing.assert_close(last_action_index(torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])),
                               torch.tensor([2, 0, 3]))
    with pytest.raises(ValueError, match="valid"):
        reduce_per_token(x, m, "batch")


def test_policy_loss_by_hand():
    # ratios e^{log ρ}: 1.5 (A=+1: clipped to 1.2), 0.5 (A=+2: unclipped 1.0 < clipped 1.6),
    # 0.5 (A=−1: clipped −0.8·−1 = 0.8 loss), 1.1 (A=−1, inside the region), padding
    ratio = torch.tensor([[1.5, 0.5, 0.5], [1.1, 1.0, 3.0]])
    old = torch.zeros(2, 3)
    adv = torch.tensor([[1.0, 2.0, -1.0], [-1.0, 0.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, metrics = policy_loss(ratio.log(), old, adv, mask, clip_eps=0.2)
    # token losses: row 0: −min(1.5, 1.2) = −1.2; −min(1.0, 1.6) = −1.0; −min(−0.5, −0.8) = 0.8
    #               row 1: −min(−1.1, −1.1) = 1.1
    row0 = (-1.2 - 1.0 + 0.8) / 3
    row1 = 1.1
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    token_loss, _ = policy_loss(ratio.log(), old, adv, mask, clip_eps=0.2, reduction="token")
    assert token_loss.item() == pytest.approx((-1.2 - 1.0 + 0.8 + 1.1) / 4, rel=1e-6)
    assert metrics["policy/clipfrac_avg"].item() == pytest.approx(2 / 4)
    want_kl = 0.5 * (math.log(1.5) ** 2 + 2 * math.log(0.5) ** 2 + math.log(1.1) ** 2) / 4
    assert metrics["policy/approxkl_avg"].item() == pytest.approx(want_kl, rel=1e-5)


def test_policy_loss_gradient_is_zero_where_clipped():
    logps = torch.tensor([[math.log(1.5), math.log(0.9)]], requires_grad=True)
    loss, _ = policy_loss(logps, torch.zeros(1, 2), torch.tensor([[1.0, 1.0]]), torch.ones(1, 2), clip_eps=0.2)
    loss.backward()
    # token 0 is clipped (no gradient); token 1: d/dlogp of −ρ·A/2 = −0.9/2
    torch.testing.assert_close(logps.grad, torch.tensor([[0.0, -0.45]]))


def test_value_loss_by_hand():
    values = torch.tensor([[1.0, 0.0, 2.0], [0.5, 9.0, 9.0]])
    old = torch.tensor([[0.5, 0.0, 1.0], [0.5, 0.0, 0.0]])
    returns = torch.tensor([[2.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, metrics = value_loss(values, old, returns, mask, clip_eps=0.2)
    # row 0: t0 V=1 → clip 0.7: max(1, 1.69) = 1.69; t1 unchanged: 1; t2 V=2 → clip 1.2: max(1, 0.04) = 1
    # row 1: t0 unchanged: 0.25
    row0 = 0.5 * (1.69 + 1.0 + 1.0) / 3
    row1 = 0.5 * 0.25
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    assert metrics["val/clipfrac_avg"].item() == pytest.approx(1 / 4)
    unclipped, _ = value_loss(values, old, returns, mask, clip_eps=None)
    assert unclipped.item() == pytest.approx((0.5 * 3 / 3 + 0.5 * 0.25) / 2, rel=1e-6)
