"""Online DPO's pair selection: of K sampled responses per prompt, the best and the worst by a reward.

Iterative online DPO (Xiong et al. 2024, "Iterative Preference Learning from Human Feedback",
https://arxiv.org/abs/2312.11456; Dong et al. 2024, "RLHF Workflow"; Shi et al. 2025 with K = 2)
samples K responses per prompt from the current policy, scores them with the proxy reward model and
trains any offline pair loss on (best, worst). TRL's OnlineDPOTrainer (trl/experimental/online_dpo/)
does the same for K = 2 with ``argmax``/``argmin`` of the scores. Pure function of a ``(P, K)``
reward tensor; the responses themselves are gathered with the indices it returns.

Ties are broken deterministically, never by sampling: the best is the *first* index attaining the
maximum, the worst the *last* index attaining the minimum, so the two differ whenever K ≥ 2. A prompt
whose K rewards are all equal carries no preference: it is marked invalid (``valid`` False) and the
caller drops it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Pairs(NamedTuple):
    """``(P,)`` each: the chosen (best) and rejected (worst) response index per prompt, their rewards,
    and whether the prompt has a strict preference (best reward > worst reward)."""

    chosen: Tensor
    rejected: Tensor
    chosen_reward: Tensor
    rejected_reward: Tensor
    valid: Tensor


def select_pairs(rewards: Tensor) -> Pairs:
    """Best and worst of the K responses of each prompt; ``rewards`` ``(P, K)``, K ≥ 2, finite.

    chosen = min{i : r_i = max_j r_j},  rejected = max{i : r_i = min_j r_j},  valid = max r > min r.
    (``torch.argmax`` returns the first maximal index; the last minimum is the first in the flipped row.)
    """
    if rewards.dim() != 2 or rewards.size(1) < 2:
        raise ValueError(f"pair selection needs rewards of shape (prompts, K) with K >= 2, got {tuple(rewards.shape)}")
    if not torch.isfinite(rewards).all():
        raise ValueError("pair selection needs finite rewards; the reward model returned NaN or inf")
    K = rewards.size(1)
    chosen = rewards.argmax(dim=1)
    rejected = K - 1 - rewards.flip(1).argmin(dim=1)
    chosen_reward = rewards.gather(1, chosen.unsqueeze(1)).squeeze(1)
    rejected_reward = rewards.gather(1, rejected.unsqueeze(1)).squeeze(1)
    return Pairs(chosen, rejected, chosen_reward, rejected_reward, chosen_reward > rejected_reward)


def gather_responses(x: Tensor, index: Tensor) -> Tensor:
    """``x[p, index[p]]`` for a per-response tensor ``x`` of shape ``(P, K, ...)``: ``(P, ...)``."""
    return x[torch.arange(x.size(0), device=x.device), index]
