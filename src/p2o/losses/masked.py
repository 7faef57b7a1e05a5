"""Reductions of per-token tensors ``(B, T)`` under an action mask ``(B, T)`` of 0/1 over response tokens.

Padding (mask 0) never enters a mean, a variance or a sum. A row with no action token has mean 0 (its
count is clamped to 1), never NaN. The online losses (``p2o.losses.ppo``, ``token_rewards``, ``rloo``)
share these; OpenRLHF's ``masked_mean`` (openrlhf/models/utils.py) and TRL's ``masked_mean`` /
``masked_whiten`` (trl/trainer/utils.py) are the sources.
"""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ("sequence", "token")


def at_least_float32(x: Tensor) -> Tensor:
    """x in float32, or in its own dtype when that is wider (float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ x·m over ``dim`` (all elements when ``None``)."""
    x = x * mask
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ x·m / max(Σ m, 1) over ``dim`` (all elements when ``None``)."""
    mask = mask.to(x.dtype)
    count = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1)


def masked_var(x: Tensor, mask: Tensor) -> Tensor:
    """Population variance of x over the masked elements: mean((x − mean x)²), no Bessel correction.

    TRL's ``masked_var`` applies Bessel's correction n/(n − 1) by default; OpenRLHF's advantage
    whitening (experience_maker.py) does not. We follow OpenRLHF, so whitened values have population
    std 1 over the mask.
    """
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(x − μ)·rsqrt(σ² + eps) over the masked elements of the whole batch; padding is set to 0.

    μ, σ² are ``masked_mean`` and ``masked_var`` over every masked element (the batch-wide whitening of
    advantages in OpenRLHF's ``make_experience_list`` and TRL's ``masked_whiten``). With
    ``shift_mean=False`` the mean is added back (TRL's option, used for rewards).
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    white = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        white = white + mean
    return white * mask


def reduce_per_token(loss: Tensor, mask: Tensor, reduction: str = "sequence") -> Tensor:
    """A per-token loss ``(B, T)`` to a scalar.

    ``sequence``: the mean over each response's tokens, then over the batch (OpenRLHF's ``PolicyLoss``
    with ``token_level_loss=False``, TRL's PPO); every response weighs the same.
    ``token``: one mean over every action token of the batch (OpenRLHF's ``token_level_loss=True``,
    DAPO); long responses weigh more.
    """
    if reduction == "sequence":
        return masked_mean(loss, mask, dim=-1).mean()
    if reduction == "token":
        return masked_mean(loss, mask)
    raise ValueError(f"unknown reduction {reduction!r}; valid: {REDUCTIONS}")


def last_action_index(mask: Tensor) -> Tensor:
    """``(B,)`` index of the last action token of each row: T − 1 − argmax(fliplr(m)).

    OpenRLHF's ``compute_reward`` (``eos_indices``). ``argmax`` returns the first maximum, so in the
    flipped mask it finds the last 1 of the row. A row with no action token gets T − 1.
    """
    T = mask.size(-1)
    return T - 1 - mask.long().fliplr().argmax(dim=-1)
