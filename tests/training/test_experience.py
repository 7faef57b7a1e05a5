"""``make_experience`` on hand-made tensors: the PPO reward and GAE by hand, RTO's dense term entering the
reward only, the no-EOS penalty, RLOO's leave-one-out advantages, whitening, and minibatch selection."""

from __future__ import annotations

import pytest
import torch

from p2o.training.experience import ExperienceSettings, make_experience

MASK = torch.tensor([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
OLD = torch.tensor([[-9.0, -1.0, -2.0, -1.0], [-1.0, -1.0, -5.0, -5.0]])
REF = torch.tensor([[-9.0, -1.5, -2.0, -0.5], [-2.0, -1.0, -5.0, -5.0]])
VALUES = torch.tensor([[7.0, 1.0, 0.5, 1.0], [0.2, -1.0, 3.0, 3.0]])
SCORES = torch.tensor([2.0, -20.0])
SEQ = torch.arange(12).reshape(2, 6)
ATT = torch.ones(2, 6)
PPO = ExperienceSettings(kl_coef=0.1, gamma=1.0, lam=0.5, whiten=False)


def ppo_experience(settings=PPO, **kw):
    return make_experience(SEQ, ATT, MASK, OLD, REF, SCORES, settings, values=VALUES, **kw)


def test_ppo_rewards_advantages_and_returns_by_hand():
    exp = ppo_experience()
    # KL k1 on actions: row 0 (0.5, 0, −0.5), row 1 (1, 0); score 2 at t = 3, −20 clamped to −10 at t = 1
    torch.testing.assert_close(exp.rewards, torch.tensor([[0.0, -0.05, 0.0, 2.05], [-0.1, -10.0, 0.0, 0.0]]))
    # γ = 1, λ = 0.5; row 0: δ3 = 1.05, δ2 = 0.5, δ1 = −0.55 → A = (−0.0375, 1.025, 1.05)
    # row 1: δ1 = −9, δ0 = −1.3 → A = (−5.8, −9)
    torch.testing.assert_close(exp.advantages, torch.tensor([[0.0, -0.0375, 1.025, 1.05], [-5.8, -9.0, 0.0, 0.0]]))
    torch.testing.assert_close(exp.returns, torch.tensor([[0.0, 0.9625, 1.525, 2.05], [-5.6, -10.0, 0.0, 0.0]]))
    torch.testing.assert_close(exp.scores, SCORES)
    assert len(exp) == 2


def test_whitening_changes_advantages_not_returns():
    raw, white = ppo_experience(), ppo_experience(ExperienceSettings(kl_coef=0.1, gamma=1.0, lam=0.5))
    on = white.advantages[MASK == 1]
    assert abs(on.mean().item()) < 1e-5 and on.std(unbiased=False).item() == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(white.returns, raw.returns)


def test_rto_dense_term_enters_the_reward_only():
    dpo = torch.tensor([[0.0, 0.0, -1.0, 0.0], [-2.0, -1.0, -5.0, -5.0]])  # row 1: π_dpo = π_ref
    ppo, rto = ppo_experience(), ppo_experience(dpo_logps=dpo)
    # β₁ = c = 0.05: 0.05·(1.5, 1.0, 0.5) → (0.05 clamped, 0.05, 0.025)
    torch.testing.assert_close(rto.rewards - ppo.rewards, torch.tensor([[0.0, 0.05, 0.05, 0.025], [0.0] * 4]))
    torch.testing.assert_close(rto.old_logps, ppo.old_logps)


def test_missing_eos_penalty_applies_before_the_clamp():
    ended = torch.tensor([False, True])
    exp = ppo_experience(ExperienceSettings(kl_coef=0.1, gamma=1.0, lam=0.5, whiten=False, missing_eos_penalty=1.0),
                         ended=ended)
    assert exp.rewards[0, 3].item() == pytest.approx(1.05)
    assert exp.rewards[1, 1].item() == pytest.approx(-10.0)
    torch.testing.assert_close(exp.scores, SCORES)  # the raw scores are kept


def test_rloo_advantages_by_hand():
    mask = torch.ones(4, 2)
    old = torch.tensor([[-1.0, -1.0], [-1.0, -1.0], [-2.0, -2.0], [-2.0, -2.0]])
    ref = old.clone()
    ref[0, 1] = -2.0  # KL 1 on one token of response 0: R0 = 1 − 0.1
    settings = ExperienceSettings(advantage_estimator="rloo", samples_per_prompt=2, kl_coef=0.1, whiten=False)
    exp = make_experience(torch.zeros(4, 3), torch.ones(4, 3), mask, old, ref, torch.tensor([1.0, 3.0, 0.5, 0.5]),
                          settings)
    torch.testing.assert_close(exp.sequence_advantages(), torch.tensor([-2.1, 2.1, 0.0, 0.0]))
    torch.testing.assert_close(exp.advantages, torch.tensor([[-2.1, -2.1], [2.1, 2.1], [0.0, 0.0], [0.0, 0.0]]))
    assert exp.values is None


def test_select_and_errors():
    exp = ppo_experience()
    sub = exp.select(torch.tensor([1]))
    assert sub.sequences.shape == (1, 6) and torch.equal(sub.advantages, exp.advantages[1:])
    assert exp.to("cpu").rewards is not None
    with pytest.raises(ValueError, match="values"):
        make_experience(SEQ, ATT, MASK, OLD, REF, SCORES, PPO)
    with pytest.raises(ValueError, match="samples_per_prompt"):
        make_experience(SEQ[:1].expand(3, 6), ATT[:1].expand(3, 6), MASK[:1].expand(3, 4), OLD[:1].expand(3, 4),
                        REF[:1].expand(3, 4), SCORES[:1].expand(3),
                        ExperienceSettings(advantage_estimator="rloo", samples_per_prompt=2))
    with pytest.raises(ValueError, match="advantage_estimator"):
        ExperienceSettings(advantage_estimator="grpo")
    with pytest.raises(ValueError, match="samples_per_prompt"):
        ExperienceSettings(advantage_estimator="rloo")
    with pytest.raises(ValueError, match="kl_estimator"):
        ExperienceSettings(kl_estimator="k9")
