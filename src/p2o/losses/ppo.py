"""PPO for language models: GAE, advantage whitening, the clipped policy loss and the clipped value loss.

Pure functions of per-token tensors ``(B, T)`` with an action mask ``(B, T)`` of 0/1 over response tokens
(one action per response token; the tokens of a response are contiguous and padding comes after its
last one). Sources: Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7 and 9
(https://arxiv.org/abs/1707.06347); Schulman et al. 2016, "High-Dimensional Continuous Control Using
Generalized Advantage Estimation", eq. 16 (https://arxiv.org/abs/1506.02438); OpenRLHF's
``PolicyLoss`` / ``ValueLoss`` (openrlhf/models/loss.py) and ``get_advantages_and_returns``
(openrlhf/trainer/ppo_utils/experience_maker.py); TRL's PPOTrainer (trl/trainer/ppo_trainer.py).
Defaults are RTO's (Zhong et al. 2024, "DPO Meets PPO"): γ = 1, λ = 0.95, both clips 0.2.

Metrics use TRL's names (``policy/clipfrac_avg``, ``policy/approxkl_avg``, ``val/clipfrac_avg``,
``loss/policy_avg``, ``loss/value_avg``) and are detached.
"""

from __future__ import annotations

import torch
from torch import Tensor

from p2o.losses.masked import masked_mean, masked_whiten, reduce_per_token

Metrics = dict[str, Tensor]
GAMMA = 1.0        # discount γ (RTO, OpenRLHF and TRL default 1)
LAMBDA = 0.95      # GAE λ (RTO, OpenRLHF and TRL default 0.95)
CLIP_EPS = 0.2     # PPO's policy ratio clip ε (RTO, OpenRLHF and TRL default 0.2)
VALUE_CLIP = 0.2   # the value clip around the rollout's values (RTO, OpenRLHF default 0.2)


@torch.no_grad()
def gae(values: Tensor, rewards: Tensor, action_mask: Tensor, gamma: float = GAMMA,
        lam: float = LAMBDA) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and returns, ``(B, T)`` each, zero off the mask.

        δ_t = r_t + γ·V_{t+1} − V_t,   A_t = δ_t + γλ·A_{t+1},   R_t = A_t + V_t,

    with V and r zeroed off the mask, so V after a response's last token is 0 (the episode ends
    there) and padding carries no advantage back. As OpenRLHF's ``get_advantages_and_returns``: one
    backward loop over the T positions, vectorised over the batch. Detached: advantages and returns
    are targets.
    """
    mask = action_mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.size(1))):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
        next_value = values[:, t]
    advantages = advantages * mask
    return advantages, advantages + values


def whiten_advantages(advantages: Tensor, action_mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(A − μ)/σ over every action token of the batch (population σ), 0 on padding: OpenRLHF's and
    TRL's advantage whitening (``masked_whiten``)."""
    return masked_whiten(advantages, action_mask, shift_mean=True, eps=eps)


def policy_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, action_mask: Tensor,
                clip_eps: float = CLIP_EPS, reduction: str = "sequence") -> tuple[Tensor, Metrics]:
    """PPO's clipped surrogate, per token, as a loss to minimise:

        ρ_t = exp(log π_θ(a_t|s_t) − log π_old(a_t|s_t)),
        ℓ_t = −min(ρ_t·A_t, clip(ρ_t, 1 − ε, 1 + ε)·A_t) = max(−ρ_t·A_t, −clip(ρ_t)·A_t),

    reduced by ``reduce_per_token`` (``sequence``: per-response mean, then batch mean, as OpenRLHF's
    ``PolicyLoss`` and TRL). ``old_logps`` and ``advantages`` are the rollout's (no gradient).
    ``policy/clipfrac_avg``: share of action tokens where the clipped term is the one taken;
    ``policy/approxkl_avg``: mean of ½(log ρ)² (TRL's ``approxkl``).
    """
    old_logps, advantages = old_logps.detach(), advantages.detach()
    log_ratio = logps - old_logps
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_eps, 1 + clip_eps)
    per_token = torch.maximum(unclipped, clipped)
    loss = reduce_per_token(per_token, action_mask, reduction)
    metrics = {
        "loss/policy_avg": loss.detach(),
        "policy/clipfrac_avg": masked_mean((clipped > unclipped).float(), action_mask).detach(),
        "policy/approxkl_avg": masked_mean(0.5 * log_ratio.detach() ** 2, action_mask),
        "val/ratio": masked_mean(ratio.detach(), action_mask),
    }
    return loss, metrics


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, action_mask: Tensor,
               clip_eps: float | None = VALUE_CLIP, reduction: str = "sequence") -> tuple[Tensor, Metrics]:
    """PPO's clipped value loss, per token:

        V^clip_t = V_old,t + clip(V_t − V_old,t, −ε_v, ε_v),
        ℓ_t = ½·max((V_t − R_t)², (V^clip_t − R_t)²),

    reduced as ``policy_loss``; ``clip_eps=None`` gives ½(V_t − R_t)². OpenRLHF's ``ValueLoss`` and
    TRL's ``vf_loss`` (both with the ½). ``old_values`` and ``returns`` are the rollout's.
    ``val/clipfrac_avg``: share of action tokens where the clipped error is the larger.
    """
    old_values, returns = old_values.detach(), returns.detach()
    unclipped = (values - returns) ** 2
    if clip_eps is None:
        per_token, clipped_share = 0.5 * unclipped, torch.zeros((), device=values.device)
    else:
        v_clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        clipped = (v_clipped - returns) ** 2
        per_token = 0.5 * torch.maximum(unclipped, clipped)
        clipped_share = masked_mean((clipped > unclipped).float(), action_mask).detach()
    loss = reduce_per_token(per_token, action_mask, reduction)
    return loss, {"loss/value_avg": loss.detach(), "val/clipfrac_avg": clipped_share}
