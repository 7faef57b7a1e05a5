"""Pieces every loss shares: TRL's logged reward metrics, DPO's implicit rewards, log(1 − eˣ)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from p2o.losses.registry import hp
from p2o.model.logps import PairLogps

Metrics = dict[str, Tensor]
BETA = hp("β, scale of the implicit reward h = β·(log π − log π_ref) (paper: 0.1–0.5)", exclusiveMinimum=0)


def reward_metrics(chosen_rewards: Tensor, rejected_rewards: Tensor, policy: PairLogps,
                   token_mean_logps: bool = False) -> Metrics:
    """TRL's logged metrics; a reward is β·(log π − log π_ref), detached.

    ``logps/*`` are the sequence log-probs (sums), or their token means with ``token_mean_logps``
    (the reference-free losses, as TRL's CPOTrainer and ORPOTrainer log them).
    """
    chosen_rewards, rejected_rewards = chosen_rewards.detach(), rejected_rewards.detach()
    logp_chosen, logp_rejected = ((policy.chosen_mean, policy.rejected_mean) if token_mean_logps
                                  else (policy.chosen, policy.rejected))
    return {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
        "logps/chosen": logp_chosen.detach().mean(),
        "logps/rejected": logp_rejected.detach().mean(),
    }


def dpo_margin(policy: PairLogps, reference: PairLogps, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """DPO's implicit rewards h(y⁺), h(y⁻) and margin Δh = h(y⁺) − h(y⁻), β included."""
    h_chosen = beta * (policy.chosen - reference.chosen)
    h_rejected = beta * (policy.rejected - reference.rejected)
    return h_chosen, h_rejected, h_chosen - h_rejected


def log1mexp(x: Tensor) -> Tensor:
    """log(1 − eˣ) for x < 0, without cancellation: log1p(−eˣ) below −log 2, log(−expm1(x)) above.

    Mächler 2012, "Accurately Computing log(1 − exp(−|a|))"; TRL's ORPOTrainer uses the same branch.
    ≈ log|x| as x → 0⁻, ≈ −eˣ as x → −∞. Each branch is evaluated only on its own side of −log 2
    (the other side gets −log 2): ``torch.where`` multiplies the unused branch's gradient by zero, and
    log1p(−eˣ) at x = −1e−9 in float32 is log1p(−1) = −∞ with an infinite gradient, so 0·∞ would
    put a NaN into the gradient (TRL's version does this).
    """
    cut = -math.log(2)
    low = x < cut
    return torch.where(low, torch.log1p(-torch.exp(torch.where(low, x, cut))),
                       torch.log(-torch.expm1(torch.where(low, cut, x))))
