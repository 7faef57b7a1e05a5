"""Sequence-level online objectives without a critic: RLOO and the "simple RL" regression of Shi et al.

RLOO (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
Human Feedback in LLMs", eq. 6, https://arxiv.org/abs/2402.14740; TRL's RLOOTrainer,
trl/trainer/rloo_trainer.py): k responses per prompt, each response one action, the baseline of a
response the mean reward of the other k − 1. ``regression_rl``: Shi et al. 2025, "Understanding the
Performance Gap in Preference Learning: A Dichotomy of RLHF and DPO" (https://arxiv.org/abs/2505.19770).

Rewards are grouped ``(P, k)``: row p holds the k responses to prompt p. TRL lays a flat batch out
sample-major (``rlhf_reward.reshape(k, -1)``, prompt p's samples at p, p + P, ...); reshape a flat
batch accordingly before calling.
"""

from __future__ import annotations

import torch
from torch import Tensor

from p2o.losses.masked import at_least_float32, masked_sum
from p2o.losses.token_rewards import KL_COEF, approx_kl

Metrics = dict[str, Tensor]
CLIP_EPS = 0.2   # TRL RLOOConfig.cliprange (a single epoch over one batch leaves ρ = 1: plain REINFORCE)


def rloo_baseline(rewards: Tensor) -> Tensor:
    """b_i = (Σ_j r_j − r_i)/(k − 1), over the k responses of each prompt; ``rewards`` ``(P, k)``, k ≥ 2."""
    k = rewards.size(-1)
    if k < 2:
        raise ValueError(f"RLOO needs k >= 2 responses per prompt, got k = {k}")
    return (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)


def rloo_advantages(rewards: Tensor) -> Tensor:
    """A_i = r_i − (1/(k − 1))·Σ_{j≠i} r_j  (Ahmadian et al. 2024, eq. 6; TRL's ``advantages``), ``(P, k)``.

    Detached. Equal to k/(k − 1)·(r_i − mean_j r_j), so the advantages of a prompt sum to 0.
    """
    rewards = rewards.detach()
    return rewards - rloo_baseline(rewards)


def sequence_reward(scores: Tensor, logps: Tensor, ref_logps: Tensor, action_mask: Tensor,
                    kl_coef: float = KL_COEF, kl_estimator: str = "k1") -> Tensor:
    """R(x, y) = r_RM(x, y) − kl_coef·Σ_t KL_t, ``(B,)``: TRL RLOO's ``rlhf_reward`` (score minus the
    summed per-token KL of ``p2o.losses.token_rewards.approx_kl``). Detached."""
    kl = approx_kl(logps.detach(), ref_logps.detach(), action_mask, kl_estimator)
    return at_least_float32(scores.detach()) - kl_coef * masked_sum(kl, action_mask, dim=-1)


def rloo_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, action_mask: Tensor,
              clip_eps: float | None = CLIP_EPS) -> tuple[Tensor, Metrics]:
    """REINFORCE with the leave-one-out advantage, the response as one action, PPO-clipped as TRL:

        ρ = exp(Σ_t log π_θ(a_t) − Σ_t log π_old(a_t)),   ℓ = mean_i max(−A_i·ρ_i, −A_i·clip(ρ_i, 1 ± ε)).

    ``logps``, ``old_logps``: per-token ``(B, T)``; ``advantages``: ``(B,)`` (``rloo_advantages``
    flattened in the same order). With ``old_logps = logps.detach()`` ρ = 1 and the gradient is
    REINFORCE's −mean_i A_i·∇log π_θ(y_i). ``clip_eps=None``: no clip.
    """
    advantages = advantages.detach()
    seq_logps = masked_sum(logps, action_mask, dim=-1)
    log_ratio = seq_logps - masked_sum(old_logps.detach(), action_mask, dim=-1)
    ratio = torch.exp(log_ratio)
    per_seq = -advantages * ratio
    clipfrac = torch.zeros((), device=logps.device)
    if clip_eps is not None:
        clipped = -advantages * ratio.clamp(1 - clip_eps, 1 + clip_eps)
        clipfrac = (clipped > per_seq).float().mean().detach()
        per_seq = torch.maximum(per_seq, clipped)
    loss = per_seq.mean()
    return loss, {"loss/policy_avg": loss.detach(), "policy/clipfrac_avg": clipfrac,
                  "policy/approxkl_avg": (0.5 * log_ratio.detach() ** 2).mean()}


def regression_rl(logps_1: Tensor, logps_2: Tensor, ref_logps_1: Tensor, ref_logps_2: Tensor,
                  rewards_1: Tensor, rewards_2: Tensor, beta: float = 0.1) -> tuple[Tensor, Metrics]:
    """The "simple RL" objective of Shi et al. 2025: regress the policy's implicit reward margin onto
    the reward model's margin, for two responses y₁, y₂ sampled from the current policy:

        ℓ = mean ( β·[(log π(y₁) − log π_ref(y₁)) − (log π(y₂) − log π_ref(y₂))] − (r(y₁) − r(y₂)) )².

    ``logps_*``: sequence log-probs ``(B,)`` (sums over the response tokens); ``rewards_*`` the reward
    model's scores ``(B,)``. Its minimiser is π ∝ π_ref·exp(r/β), the KL-regularised RLHF optimum, as
    for DPO's population loss. We take the plain square (no ½: a constant factor only rescales the
    learning rate). β: the KL scale.
    """
    implicit = beta * ((logps_1 - ref_logps_1.detach()) - (logps_2 - ref_logps_2.detach()))
    target = (rewards_1 - rewards_2).detach().to(implicit.dtype)
    residual = implicit - target
    loss = (residual**2).mean()
    return loss, {"loss/regression_avg": loss.detach(),
                  "rewards/margins": implicit.detach().mean(),
                  "regression/target_margin": target.mean(),
                  "regression/abs_residual": residual.detach().abs().mean()}
