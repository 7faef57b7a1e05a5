"""One online rollout as an ``Experience``: every per-token tensor an update needs, built once, detached.

The online loop's first two stages (OpenRLHF's ``make_experience`` and
``compute_advantages_and_returns``, openrlhf/trainer/ppo_utils/experience_maker.py): after generation,
scoring and one forward of the rollout policy, the reference (and RTO's DPO policy) and the critic,
``make_experience`` turns those tensors into rewards (``p2o.losses.token_rewards.compute_reward``, the
only place RTO's dense term enters), then advantages and returns (GAE with a critic; RLOO's
leave-one-out baseline without one). The update epochs then recompute only the new log-probs and
values. Pure functions of tensors; nothing here runs a model.

Shapes: ``sequences``/``attention_mask`` ``(B, S)`` (prompt and response tokens); every per-token
tensor ``(B, T)`` aligned with ``action_mask`` (0/1 over the response tokens; how T maps onto S is the
caller's, e.g. the response slice of the shifted log-probs); scores ``(B,)``. For RLOO the k samples of a
prompt are consecutive rows (prompt-major: rows p·k … p·k + k − 1).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from p2o.losses.masked import masked_mean
from p2o.losses.ppo import GAMMA, LAMBDA, gae, whiten_advantages
from p2o.losses.rloo import rloo_advantages
from p2o.losses.token_rewards import (
    DENSE_BETA, DENSE_CLIP, KL_COEF, KL_ESTIMATORS, REWARD_CLIP, compute_reward, dense_dpo_reward, no_eos_penalty,
)

ESTIMATORS = ("gae", "rloo")


@dataclass(frozen=True)
class ExperienceSettings:
    """How rewards and advantages are built; defaults are RTO's script (Zhong et al. 2024)."""

    advantage_estimator: str = "gae"        # "gae" (PPO, RTO: needs values) or "rloo" (no critic)
    kl_coef: float = KL_COEF                # weight of the per-token KL penalty in the reward
    kl_estimator: str = "k1"                # k1, k2 or k3 (p2o.losses.token_rewards.approx_kl)
    reward_clip: float | None = REWARD_CLIP  # the reward-model score is clamped to ±reward_clip
    missing_eos_penalty: float = 0.0        # subtracted from the score of a response without EOS (TRL)
    dense_beta: float = DENSE_BETA          # RTO's β₁ (used only when DPO log-probs are given)
    dense_clip: float = DENSE_CLIP          # RTO's c
    gamma: float = GAMMA                    # GAE discount
    lam: float = LAMBDA                     # GAE λ
    whiten: bool = True                     # whiten advantages over the batch's action tokens (PPO, OpenRLHF;
                                            # TRL's RLOO normalize_advantage defaults to False)
    samples_per_prompt: int = 1             # k of RLOO (≥ 2 for "rloo")

    def __post_init__(self):
        if self.advantage_estimator not in ESTIMATORS:
            raise ValueError(f"advantage_estimator {self.advantage_estimator!r}; valid: {ESTIMATORS}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator {self.kl_estimator!r}; valid: {KL_ESTIMATORS}")
        if self.advantage_estimator == "rloo" and self.samples_per_prompt < 2:
            raise ValueError(f"samples_per_prompt must be >= 2 for RLOO, got {self.samples_per_prompt}")


@dataclass(frozen=True)
class Experience:
    """One rollout batch: what the update epochs read, nothing recomputed but the new log-probs/values.

    ``scores``: the reward model's raw scores ``(B,)`` (for logging); ``rewards``: the per-token
    reward; ``values`` is ``None`` without a critic (RLOO), whose per-token advantage is then its
    response's leave-one-out advantage on every action token.
    """

    sequences: Tensor        # (B, S) token ids, prompt and response
    attention_mask: Tensor   # (B, S)
    action_mask: Tensor      # (B, T) 0/1 over response tokens
    old_logps: Tensor        # (B, T) log π_old(a_t|s_t) of the rollout policy
    ref_logps: Tensor        # (B, T) log π_ref(a_t|s_t)
    values: Tensor | None    # (B, T) the critic's V(s_t), or None
    scores: Tensor           # (B,) reward-model scores, before the no-EOS penalty and the clamp
    rewards: Tensor          # (B, T) compute_reward's r_t
    advantages: Tensor       # (B, T)
    returns: Tensor          # (B, T)

    def __len__(self) -> int:
        return self.sequences.size(0)

    def select(self, index: Tensor) -> Experience:
        """The rows ``index`` of every tensor (a minibatch of the update)."""
        return replace(self, **{f.name: (None if (t := getattr(self, f.name)) is None else t[index])
                                for f in fields(self)})

    def to(self, device: torch.device | str) -> Experience:
        return replace(self, **{f.name: (None if (t := getattr(self, f.name)) is None else t.to(device))
                                for f in fields(self)})

    def sequence_advantages(self) -> Tensor:
        """``(B,)``: each response's mean advantage over its action tokens (RLOO's A_i)."""
        return masked_mean(self.advantages, self.action_mask, dim=-1)


def make_experience(sequences: Tensor, attention_mask: Tensor, action_mask: Tensor, old_logps: Tensor,
                    ref_logps: Tensor, scores: Tensor, settings: ExperienceSettings = ExperienceSettings(),
                    values: Tensor | None = None, ended: Tensor | None = None,
                    dpo_logps: Tensor | None = None) -> Experience:
    """Rewards, advantages and returns of a rollout.

    1. score ← score − missing_eos_penalty·1[no EOS] (``ended`` ``(B,)`` bool, when given);
    2. r_t ← compute_reward(score, log π_old, log π_ref, kl_coef, kl_estimator, reward_clip, d_t), with
       d_t = dense_dpo_reward(log π_dpo, log π_ref, β₁, c) when ``dpo_logps`` is given (RTO), else none;
    3. ``gae``: A, R ← GAE(V, r; γ, λ); ``rloo``: A_i ← R_i − mean_{j≠i} R_j over the k samples of a
       prompt, R_i = Σ_t r_t (= clamp(score) − kl_coef·Σ_t KL_t, TRL's ``rlhf_reward``), on every
       action token, returns = A (OpenRLHF's ``rloo`` estimator with γ = 1);
    4. A ← whiten(A) over the batch's action tokens when ``whiten`` (returns keep the raw scale).
    """
    s, raw_scores = settings, scores.detach()
    action_mask = action_mask.to(old_logps.dtype)
    old_logps, ref_logps = old_logps.detach(), ref_logps.detach()
    if ended is not None and s.missing_eos_penalty > 0:
        scores = no_eos_penalty(scores, ended, s.missing_eos_penalty)
    dense = None if dpo_logps is None else dense_dpo_reward(dpo_logps.detach(), ref_logps, action_mask,
                                                            s.dense_beta, s.dense_clip)
    rewards = compute_reward(scores, old_logps, ref_logps, action_mask, s.kl_coef, s.kl_estimator, s.reward_clip,
                             dense)
    if s.advantage_estimator == "gae":
        if values is None:
            raise ValueError("advantage_estimator 'gae' needs the critic's values; use 'rloo' without a critic")
        values = values.detach()
        advantages, returns = gae(values, rewards, action_mask, s.gamma, s.lam)
    else:
        B, k = rewards.size(0), s.samples_per_prompt
        if B % k:
            raise ValueError(f"a batch of {B} responses is not a whole number of prompts × samples_per_prompt={k}")
        per_response = (rewards * action_mask).sum(-1)
        advantages = rloo_advantages(per_response.view(B // k, k)).reshape(B, 1) * action_mask
        returns = advantages
    if s.whiten:
        advantages = whiten_advantages(advantages, action_mask)
    return Experience(sequences, attention_mask, action_mask, old_logps, ref_logps, values, raw_scores,
                      rewards, advantages, returns)
