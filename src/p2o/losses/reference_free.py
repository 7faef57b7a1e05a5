"""Losses without a reference model: SimPO and ORPO (the registry passes ``reference`` to them too)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from p2o.losses.common import Metrics, log1mexp, reward_metrics
from p2o.losses.registry import hp, register
from p2o.model.logps import PairLogps


@register("simpo", trl="simpo (CPOTrainer)",
          beta=hp("β, scale of the length-normalised reward β·log π(y)/n(y) (paper: 2.0–2.5)", exclusiveMinimum=0),
          gamma=hp("γ, target reward margin in reward units (paper: γ/β ≈ 0.5)", minimum=0),
          paper="Meng, Xia & Chen 2024, SimPO: Simple Preference Optimization with a Reference-Free Reward, eq. 6, "
                "https://arxiv.org/abs/2405.14734")
def simpo(policy: PairLogps, reference: PairLogps, *, beta: float = 2.0,
          gamma: float = 1.0) -> tuple[Tensor, Metrics]:
    """SimPO: L = −log σ(β·m(y⁺) − β·m(y⁻) − γ), m(y) = log π(y)/n(y) the token-mean log-prob.

    Meng, Xia & Chen 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward",
    eq. 6, https://arxiv.org/abs/2405.14734. Reference-free: ``reference`` is accepted, as for every
    loss, and ignored. γ is the paper's target reward margin, in reward units (β already applied).
    TRL: CPOTrainer (``trl.experimental.cpo`` in TRL 1.x) with ``loss_type="simpo"``, whose
    ``simpo_gamma`` is this γ (it subtracts γ/β from the log-prob margin, then scales by β: the same
    number), and ``cpo_alpha=0``: SimPO has no NLL term. The SimPO repository's ``gamma_beta_ratio``
    is γ/β; its configs use β = 2.0–2.5 (up to 10 for some instruct models) and γ/β around 0.5,
    hence the defaults β = 2, γ = 1. Logged like TRL: rewards β·m(y), ``logps/*`` the means m(y).
    """
    chosen_rewards, rejected_rewards = beta * policy.chosen_mean, beta * policy.rejected_mean
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma).mean()
    return loss, reward_metrics(chosen_rewards, rejected_rewards, policy, token_mean_logps=True)


@register("orpo", trl="ORPOTrainer", batch_stats=({},),  # the NLL is a token mean over the batch
          lambda_or=hp("λ, weight of the odds-ratio term beside the NLL (TRL's beta; paper: 0.1)", exclusiveMinimum=0),
          paper="Hong, Lee & Thorne 2024, ORPO: Monolithic Preference Optimization without Reference Model, "
                "eqs. 6–7, https://arxiv.org/abs/2403.07691")
def orpo(policy: PairLogps, reference: PairLogps, *, lambda_or: float = 0.1) -> tuple[Tensor, Metrics]:
    """ORPO: L = NLL(y⁺) + λ·(−log σ(log odds(y⁺) − log odds(y⁻))), odds(y) = P(y)/(1 − P(y)).

    Hong, Lee & Thorne 2024, "ORPO: Monolithic Preference Optimization without Reference Model",
    eqs. 6–7, https://arxiv.org/abs/2403.07691. log P(y) is the token-mean log-prob m(y), so
    log odds(y) = m(y) − log(1 − e^{m(y)}), computed with ``log1mexp``; m is clamped to at most
    −(smallest normal number) so that a response of probability 1 gives a large finite log-odds, not
    ∞ − ∞. Reference-free: ``reference`` is accepted, as for every loss, and ignored.
    TRL: ORPOTrainer (``trl.experimental.orpo`` in TRL 1.x), whose ``beta`` is our λ (paper λ = 0.1).
    NLL, like TRL's (a mean ``CrossEntropyLoss`` over the chosen rows), is the token-level mean over
    the batch, Σ_i −log π(y⁺_i) / Σ_i n(y⁺_i), not the mean of per-sequence means: long chosen
    responses weigh more. One difference from TRL 1.16: its NLL also covers the prompt tokens ("orpo
    chosen nll loss is computed over the full prompt and response"); ours covers the response tokens
    only, which is the paper's L_SFT on y_w and all that ``PairLogps`` holds. Logged like TRL:
    rewards λ·m(y), ``logps/*`` the means m(y), and ``nll_loss``, ``log_odds_ratio`` (mean of
    log σ(log-odds difference)), ``log_odds_chosen`` (mean log-odds difference).
    """
    tiny = torch.finfo(policy.chosen_mean.dtype).tiny
    m_chosen, m_rejected = policy.chosen_mean.clamp(max=-tiny), policy.rejected_mean.clamp(max=-tiny)
    log_odds = (m_chosen - m_rejected) - (log1mexp(m_chosen) - log1mexp(m_rejected))
    ratio = F.logsigmoid(log_odds)
    nll = -policy.chosen.sum() / policy.chosen_tokens.sum().clamp(min=1)
    loss = nll - lambda_or * ratio.mean()
    metrics = reward_metrics(lambda_or * policy.chosen_mean, lambda_or * policy.rejected_mean, policy,
                             token_mean_logps=True)
    metrics.update({"nll_loss": nll.detach(), "log_odds_ratio": ratio.detach().mean(),
                    "log_odds_chosen": log_odds.detach().mean()})
    return loss, metrics
