"""Per-token rewards of online RLHF: KL estimators, the reward-model score at the last action token,
the KL penalty, the no-EOS penalty and RTO's dense DPO reward.

Shapes: per-token tensors ``(B, T)`` with an action mask ``(B, T)`` of 0/1 over response tokens; a
reward-model score is ``(B,)``. Every result is 0 off the mask. ``compute_reward`` builds the reward
that GAE consumes; RTO's dense term enters there and nowhere else. Sources: OpenRLHF's
``compute_approx_kl`` and ``compute_reward`` (openrlhf/models/utils.py); TRL's PPOTrainer and
RLOOTrainer (``missing_eos_penalty``); Schulman, "Approximating KL Divergence" (2020,
http://joschu.net/blog/kl-approx.html) for k1/k2/k3; Zhong et al. 2024, "DPO Meets PPO: Reinforced
Token Optimization for RLHF" (https://arxiv.org/abs/2404.18922) for the dense reward and the defaults
β₁ = 0.05, c = 0.05, kl_coef = 0.01, reward clamp ±10.
"""

from __future__ import annotations

import torch
from torch import Tensor

from p2o.losses.masked import at_least_float32, last_action_index

KL_ESTIMATORS = ("k1", "k2", "k3")
KL_COEF = 0.01       # kl_coef of the per-token KL penalty (RTO's script; OpenRLHF's init_kl_coef 0.01)
REWARD_CLIP = 10.0   # the reward-model score is clamped to [−10, 10] (RTO; OpenRLHF's reward_clip_range)
DENSE_BETA = 0.05    # β₁ of RTO's dense reward β₁·(log π_dpo − log π_ref)
DENSE_CLIP = 0.05    # c: RTO's dense reward is clamped to [−c, c]


def approx_kl(logps: Tensor, ref_logps: Tensor, action_mask: Tensor | None = None,
              estimator: str = "k1") -> Tensor:
    """Per-token estimates of KL(π ‖ π_ref) from samples a_t ~ π, with log r = log π(a_t) − log π_ref(a_t):

        k1 = log r                   (unbiased, can be negative)
        k2 = ½(log r)²               (biased, ≥ 0)
        k3 = e^{−log r} − 1 + log r  (unbiased, ≥ 0)

    Schulman (2020) and OpenRLHF's ``compute_approx_kl`` (``kl_estimator``); each is 0 when π = π_ref.
    Computed in float32 or wider; 0 off the mask.
    """
    log_ratio = at_least_float32(logps) - at_least_float32(ref_logps)
    if estimator == "k1":
        kl = log_ratio
    elif estimator == "k2":
        kl = 0.5 * log_ratio**2
    elif estimator == "k3":
        kl = torch.expm1(-log_ratio) + log_ratio
    else:
        raise ValueError(f"unknown KL estimator {estimator!r}; valid: {KL_ESTIMATORS}")
    return kl if action_mask is None else kl * action_mask


def at_last_action(scores: Tensor, action_mask: Tensor) -> Tensor:
    """``(B, T)``: each row's score placed at its last action token, 0 elsewhere (OpenRLHF's
    ``compute_reward``: ``zeros.scatter_(1, eos_indices, r)``)."""
    out = torch.zeros(action_mask.shape, dtype=scores.dtype, device=scores.device)
    return out.scatter(1, last_action_index(action_mask).unsqueeze(1), scores.unsqueeze(1))


def no_eos_penalty(scores: Tensor, ended: Tensor, penalty: float) -> Tensor:
    """r − penalty·1[no EOS]: a response cut off at the length limit loses ``penalty`` of its score.

    TRL's ``missing_eos_penalty`` (PPOTrainer, RLOOTrainer: ``scores[~contain_eos_token] -= penalty``),
    applied to the raw score before ``compute_reward`` clamps it. ``ended``: ``(B,)`` bool, the
    response reached EOS.
    """
    if penalty < 0:
        raise ValueError(f"the no-EOS penalty must be >= 0, got {penalty}")
    return scores - penalty * (~ended.bool()).to(scores.dtype)


def dense_dpo_reward(dpo_logps: Tensor, ref_logps: Tensor, action_mask: Tensor, beta: float = DENSE_BETA,
                     clip: float = DENSE_CLIP) -> Tensor:
    """RTO's dense token reward d_t = clamp(β₁·(log π_dpo(a_t|s_t) − log π_ref(a_t|s_t)), −c, c), 0 off the mask.

    Zhong et al. 2024, their practical implementation: π_dpo is a DPO policy trained from the same SFT
    model π_ref, so β₁·log(π_dpo/π_ref) is DPO's implicit token reward; defaults β₁ = 0.05, c = 0.05
    (their script).
    """
    if clip < 0:
        raise ValueError(f"the dense reward clip c must be >= 0, got {clip}")
    d = (beta * (at_least_float32(dpo_logps) - at_least_float32(ref_logps))).clamp(-clip, clip)
    return d * action_mask


def compute_reward(scores: Tensor, logps: Tensor, ref_logps: Tensor, action_mask: Tensor,
                   kl_coef: float = KL_COEF, kl_estimator: str = "k1", reward_clip: float | None = REWARD_CLIP,
                   dense: Tensor | None = None) -> Tensor:
    """The per-token reward ``(B, T)`` that GAE consumes:

        r_t = −kl_coef·KL_t + 1[t = last]·clamp(r_RM(x, y), −clip, clip) + d_t,

    KL_t = ``approx_kl(logps, ref_logps, estimator)`` with ``logps`` the rollout policy's (so k1 gives
    the penalty kl_coef·(log π_θ − log π_ref)(a_t|s_t)); ``scores`` ``(B,)`` the reward model's (after
    ``no_eos_penalty``); ``dense`` RTO's ``dense_dpo_reward`` or ``None`` (PPO). OpenRLHF's
    ``compute_reward`` plus RTO's d_t (Zhong et al. 2024, the reward of their practical implementation). ``reward_clip=None``
    leaves the score unclamped. Detached: rewards are targets.
    """
    kl = approx_kl(logps.detach(), ref_logps.detach(), action_mask, kl_estimator)
    mask = action_mask.to(kl.dtype)
    scores = at_least_float32(scores.detach()).to(kl.dtype)
    if reward_clip is not None:
        scores = scores.clamp(-reward_clip, reward_clip)
    reward = -kl_coef * kl + at_last_action(scores, mask) * mask
    if dense is not None:
        reward = reward + dense.detach().to(kl.dtype) * mask
    return reward
