"""Preference losses as pure functions of per-sequence log-prob tensors, found by name.

Each loss takes ``PairLogps`` for the policy and the reference (and, for the trust-region
methods, the per-batch policy snapshot) and returns ``(loss, metrics)``. Shapes are ``(B,)``
per pair. Notation: for a response y, ``log π(y)`` is the sum of its token log-probs given the
prompt, ``n(y)`` its token count, and ``h(y) = β·(log π(y) − log π_ref(y))`` the implicit reward
of Rafailov et al. (2023).

===========  ==========================================================  =========================
name         loss                                                        TRL loss_type
===========  ==========================================================  =========================
dpo          −log σ(Δh),  Δh = h(y⁺) − h(y⁻)                              sigmoid
cdpo         −(1−ε) log σ(Δh) − ε log σ(−Δh)                              sigmoid + label_smoothing
                                                                         (TRL < 1.0; CPOTrainer)
robust_dpo   [−(1−ε) log σ(Δh) + ε log σ(−Δh)] / (1 − 2ε)                 robust
hinge        max(0, 1 − Δh)                                              hinge
rdpo         −log σ(Δh + α(n(y⁺) − n(y⁻)))                                —
ipo          (Δ̄ − 1/(2τ))², Δ̄ per-token-mean log-ratio margin            ipo
simpo        −log σ(β(m(y⁺) − m(y⁻)) − γ), m = log π / n, no π_ref       simpo (CPOTrainer)
orpo         NLL(y⁺) − λ log σ(log odds(y⁺) − log odds(y⁻)), no π_ref     ORPOTrainer
kto          λ_D(1 − σ(h⁺ − z₀)) ∪ λ_U(1 − σ(z₀ − h⁻))                    kto (KTOTrainer)
p2o          −log σ(min(ρΔh, clip(ρ, 1±ε)Δh)) + λ·KL                      —
pkto         −log σ(min(ρΔU, clip(ρ, 1±ε)ΔU)) + λ·KL, ΔU KTO utilities    —
slpo         −Σ_{y⁺, y⁻, ȳ} target·log π, targets from π_ref(y⁺), π_ref(y⁻)  —
tdpo1        −log σ(Δh − β(D(y⁻) − D(y⁺))), D sequential KL(π_ref ‖ π)   —
tdpo2        −log σ(Δh − αβ(D(y⁻) − sg D(y⁺)))                            —
===========  ==========================================================  =========================

ε is ``label_smoothing`` (the label-flip probability) in cdpo and robust_dpo, ``eps_clip`` in p2o
and pkto. Every hyper-parameter, its default and the paper's value are in the function's docstring.

Metrics follow TRL's names (``rewards/chosen``, ``rewards/margins``, ``rewards/accuracies``,
``logps/chosen``, ``kl``); our own quantities are prefixed ``trust/``, ``slpo/``, ``tdpo/``. All
metrics are detached. ``tdpo1``/``tdpo2`` also take ``seq_kl`` (their ``LossSpec`` has
``needs_reference_model``): the training loop then runs the reference model inside the step.
The reference-free losses (``simpo``, ``orpo``) take ``reference`` like every other loss (the
registry calls them all the same way) and ignore it; like TRL's CPOTrainer and ORPOTrainer they log
``rewards/*`` as β·m(y) (β the loss's own scale, λ for ORPO) and ``logps/*`` as the token means m(y),
not the sums that the other losses log.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

Metrics = dict[str, Tensor]


@dataclass(frozen=True)
class PairLogps:
    """Per-sequence log-probs of a batch of pairs under one model; every field is ``(B,)``.

    ``chosen``/``rejected`` are sums over the response tokens, ``*_mean`` the token means
    (kept as their own tensors so that a ratio built on means and a margin built on sums have
    separate gradient paths), ``*_tokens`` the response lengths.
    """

    chosen: Tensor
    rejected: Tensor
    chosen_mean: Tensor
    rejected_mean: Tensor
    chosen_tokens: Tensor
    rejected_tokens: Tensor

    @classmethod
    def from_sums(cls, chosen: Tensor, rejected: Tensor, chosen_tokens: Tensor, rejected_tokens: Tensor):
        return cls(
            chosen, rejected,
            chosen / chosen_tokens.clamp(min=1), rejected / rejected_tokens.clamp(min=1),
            chosen_tokens, rejected_tokens,
        )

    def detach(self) -> PairLogps:
        return PairLogps(*(t.detach() for t in self._tensors()))

    def to(self, device) -> PairLogps:
        return PairLogps(*(t.to(device) for t in self._tensors()))

    def _tensors(self) -> tuple[Tensor, ...]:
        return (self.chosen, self.rejected, self.chosen_mean, self.rejected_mean,
                self.chosen_tokens, self.rejected_tokens)


# --------------------------------------------------------------------------- shared pieces


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


def kto_reference_point(
    policy: PairLogps,
    reference: PairLogps,
    ref_point: str,
    policy_kl: Tensor | None,
    reference_kl: Tensor | None,
) -> Tensor:
    """KTO's reference point z₀ in log-ratio units (a detached scalar; the loss scales it by β).

    - ``mismatched`` (KTO paper §4.1 and TRL): z₀ = max(0, mean_i[log π(y'_i|x_i) − log π_ref(y'_i|x_i)])
      over mismatched pairs (x_i, y'_i), y'_i the chosen response of another pair; no gradient.
    - ``chosen_token_mean`` (the original p2o code's estimate): the batch mean of the token-mean
      log-ratio of the chosen responses, with the same clamp and no gradient.
    - ``zero``: z₀ = 0.
    """
    if ref_point == "mismatched":
        if policy_kl is None or reference_kl is None:
            raise ValueError("ref_point='mismatched' needs policy_kl and reference_kl log-probs")
        z = (policy_kl - reference_kl).mean()
    elif ref_point == "chosen_token_mean":
        z = (policy.chosen_mean - reference.chosen_mean).mean()
    elif ref_point == "zero":
        return policy.chosen.new_zeros(())
    else:
        raise ValueError(f"unknown ref_point {ref_point!r}; valid: {REF_POINTS}")
    return z.detach().clamp(min=0)


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


REF_POINTS = ("mismatched", "chosen_token_mean", "zero")
RATIOS = ("pair", "per_side")
KL_ESTIMATORS = ("k3", "logratio")


def trust_ratios(policy: PairLogps, snapshot: PairLogps, ratio: str) -> tuple[Tensor, Tensor]:
    """Mean-token ratios ρ = exp(mean_t [log π − log π_snap]) for the chosen and rejected side.

    ``pair``: one ρ per pair, the mean taken over the tokens of both responses (so ρ⁺ = ρ⁻).
    ``per_side``: ρ⁺ over the chosen tokens, ρ⁻ over the rejected tokens.
    Built from the ``*_mean`` tensors; the snapshot carries no gradient.
    """
    d_chosen = policy.chosen_mean - snapshot.chosen_mean.detach()
    d_rejected = policy.rejected_mean - snapshot.rejected_mean.detach()
    if ratio == "pair":
        n_c, n_r = policy.chosen_tokens, policy.rejected_tokens
        rho = torch.exp((n_c * d_chosen + n_r * d_rejected) / (n_c + n_r).clamp(min=1))
        return rho, rho
    if ratio == "per_side":
        return torch.exp(d_chosen), torch.exp(d_rejected)
    raise ValueError(f"unknown ratio {ratio!r}; valid: {RATIOS}")


def clipped_surrogate(
    u_pos: Tensor, u_neg: Tensor, rho_pos: Tensor, rho_neg: Tensor, eps_clip: float
) -> tuple[Tensor, Tensor]:
    """PPO's pessimistic surrogate for a margin made of two weighted utilities.

    s = min(ρ⁺u⁺ + ρ⁻u⁻, clip(ρ⁺, 1±ε)u⁺ + clip(ρ⁻, 1±ε)u⁻)  (Schulman et al. 2017, eq. 7).
    With ρ⁺ = ρ⁻ = ρ and u⁺ + u⁻ = Δh this is min(ρΔh, clip(ρ, 1±ε)Δh). Returns (s, clipped),
    ``clipped`` marking the pairs whose clipped branch is the active one.
    """
    lo, hi = 1.0 - eps_clip, 1.0 + eps_clip
    unclipped = rho_pos * u_pos + rho_neg * u_neg
    clipped = rho_pos.clamp(lo, hi) * u_pos + rho_neg.clamp(lo, hi) * u_neg
    surrogate = torch.minimum(unclipped, clipped)
    return surrogate, (clipped < unclipped).detach()


def kl_penalty(policy: PairLogps, reference: PairLogps, kl_estimator: str) -> Tensor:
    """Sequence-level estimate of KL(π ‖ π_ref) on the pair's response tokens (mean over pairs).

    m = token-mean log-ratio over both responses. ``k3``: e^{−m} − 1 + m (Schulman's k3 applied
    to m; non-negative, zero with zero gradient at π = π_ref). ``logratio``: m itself, the plain
    Monte-Carlo estimate, unbiased only for responses sampled from π (ours come from the data).
    Evaluation reports the exact token-level KL instead (p2o.model.evaluate).
    """
    n_c, n_r = policy.chosen_tokens, policy.rejected_tokens
    m = (n_c * (policy.chosen_mean - reference.chosen_mean)
         + n_r * (policy.rejected_mean - reference.rejected_mean)) / (n_c + n_r).clamp(min=1)
    if kl_estimator == "k3":
        return (torch.exp(-m) - 1 + m).mean()
    if kl_estimator == "logratio":
        return m.mean()
    raise ValueError(f"unknown kl_estimator {kl_estimator!r}; valid: {KL_ESTIMATORS}")


def trust_region_loss(policy: PairLogps, reference: PairLogps, snapshot: PairLogps, u_pos: Tensor, u_neg: Tensor,
                      beta: float, eps_clip: float, kl_coef: float, ratio: str,
                      kl_estimator: str) -> tuple[Tensor, Metrics]:
    """−log σ(clipped surrogate of u⁺, u⁻) + λ·KL, with DPO's reward metrics and ``trust/*``."""
    rho_pos, rho_neg = trust_ratios(policy, snapshot, ratio)
    surrogate, clipped = clipped_surrogate(u_pos, u_neg, rho_pos, rho_neg, eps_clip)
    kl = kl_penalty(policy, reference, kl_estimator)
    loss = -F.logsigmoid(surrogate).mean() + kl_coef * kl
    metrics = reward_metrics(beta * (policy.chosen - reference.chosen),
                             beta * (policy.rejected - reference.rejected), policy)
    metrics.update({
        "trust/ratio_chosen": rho_pos.detach().mean(),
        "trust/ratio_rejected": rho_neg.detach().mean(),
        "trust/clip_frac": clipped.float().mean(),
        "trust/surrogate": surrogate.detach().mean(),
        "trust/kl_penalty": kl.detach(),
    })
    return loss, metrics


# --------------------------------------------------------------------------- the losses


def dpo_margin(policy: PairLogps, reference: PairLogps, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """DPO's implicit rewards h(y⁺), h(y⁻) and margin Δh = h(y⁺) − h(y⁻), β included."""
    h_chosen = beta * (policy.chosen - reference.chosen)
    h_rejected = beta * (policy.rejected - reference.rejected)
    return h_chosen, h_rejected, h_chosen - h_rejected


def dpo(policy: PairLogps, reference: PairLogps, *, beta: float = 0.5) -> tuple[Tensor, Metrics]:
    """DPO: L = −log σ(β[(log π(y⁺) − log π_ref(y⁺)) − (log π(y⁻) − log π_ref(y⁻))]).

    Rafailov et al. 2023, "Direct Preference Optimization", eq. 7, https://arxiv.org/abs/2305.18290.
    TRL ``loss_type="sigmoid"`` (without label smoothing). Sequence log-probs are token sums.
    """
    h_chosen, h_rejected, margin = dpo_margin(policy, reference, beta)
    return -F.logsigmoid(margin).mean(), reward_metrics(h_chosen, h_rejected, policy)


def ipo(policy: PairLogps, reference: PairLogps, *, tau: float = 0.1) -> tuple[Tensor, Metrics]:
    """IPO: L = (Δ̄ − 1/(2τ))², Δ̄ = mean_t log-ratio(y⁺) − mean_t log-ratio(y⁻).

    Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences", eq. 17, https://arxiv.org/abs/2310.12036. TRL ``loss_type="ipo"``, whose β
    is our τ; like TRL (confirmed with the IPO authors) the log-ratios are per-token averages.
    Rewards are logged as τ·(sum log-ratio), as TRL does.
    """
    delta = (policy.chosen_mean - reference.chosen_mean) - (policy.rejected_mean - reference.rejected_mean)
    loss = ((delta - 1 / (2 * tau)) ** 2).mean()
    return loss, reward_metrics(tau * (policy.chosen - reference.chosen),
                                tau * (policy.rejected - reference.rejected), policy)


def cdpo(policy: PairLogps, reference: PairLogps, *, beta: float = 0.5,
         label_smoothing: float = 0.1) -> tuple[Tensor, Metrics]:
    """Conservative DPO: L = −(1 − ε) log σ(Δh) − ε log σ(−Δh), Δh DPO's margin (β included).

    DPO's loss with the labels smoothed towards ½: each preference is trusted with probability 1 − ε.
    Mitchell 2023, "A note on DPO with noisy preferences & relationship to IPO" (a note, not on arXiv;
    its cDPO loss), https://ericmitchell.ai/cdpo.pdf. TRL: ``loss_type="sigmoid"`` with
    ``label_smoothing=ε`` in TRL 0.x (e.g. v0.19's ``dpo_loss``); TRL 1.16's DPOTrainer dropped label
    smoothing from ``sigmoid`` (its ``label_smoothing`` now serves ``robust``, ``exo_pair`` and ``aot``),
    and the same expression survives in CPOTrainer's ``sigmoid``, which the tests call on log-ratios.
    Since −log σ(−x) = −log σ(x) + x, L = −log σ(Δh) + εΔh: the gradient vanishes at the finite
    margin Δh = log((1 − ε)/ε) instead of only as Δh → ∞. ε = 0 is DPO. Rewards are DPO's.
    """
    h_chosen, h_rejected, margin = dpo_margin(policy, reference, beta)
    losses = -(1 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)
    return losses.mean(), reward_metrics(h_chosen, h_rejected, policy)


def robust_dpo(policy: PairLogps, reference: PairLogps, *, beta: float = 0.5,
               label_smoothing: float = 0.1) -> tuple[Tensor, Metrics]:
    """Robust DPO: L = [(1 − ε)ℓ(Δh) − εℓ(−Δh)] / (1 − 2ε), ℓ(x) = −log σ(x), Δh DPO's margin.

    Chowdhury, Kini & Natarajan 2024, "Provably Robust DPO: Aligning Language Models with Noisy
    Feedback" (ICML), its de-biased loss (rDPO), https://arxiv.org/abs/2403.00409. ε is the
    probability that a label was flipped; for ε < ½ the expectation of L over the flips is DPO's loss
    on the clean labels. TRL ``loss_type="robust"`` with ``label_smoothing=ε`` (TRL also requires
    ε ∈ [0, ½); its help text gives 0.1 as the paper's typical value). Unlike cDPO, L is not bounded
    below: L = ℓ(Δh) − εΔh/(1 − 2ε), so ∂L/∂Δh → −ε/(1 − 2ε) as Δh → ∞ and the margin is pushed
    forever. ε = 0 is DPO. Rewards are DPO's.
    """
    h_chosen, h_rejected, margin = dpo_margin(policy, reference, beta)
    losses = ((1 - label_smoothing) * -F.logsigmoid(margin)
              - label_smoothing * -F.logsigmoid(-margin)) / (1 - 2 * label_smoothing)
    return losses.mean(), reward_metrics(h_chosen, h_rejected, policy)


def hinge(policy: PairLogps, reference: PairLogps, *, beta: float = 0.5) -> tuple[Tensor, Metrics]:
    """Hinge (SLiC) loss on DPO's margin: L = max(0, 1 − Δh) = β·max(0, 1/β − Δ), Δ = Δh/β.

    SLiC-HF (Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback",
    https://arxiv.org/abs/2305.10425) calibrates with max(0, δ − log π(y⁺) + log π(y⁻)) on the raw
    sequence log-probs, plus a λ-weighted NLL term. What TRL implements as ``loss_type="hinge"``, and
    we with it, is the hinge on the reference-normalised log-ratios of Liu et al. 2023, "Statistical
    Rejection Sampling Improves Preference Optimization" (RSO, ICLR 2024),
    https://arxiv.org/abs/2309.06657: margin δ = 1/β in log-ratio units, no NLL term. The gradient is
    exactly zero for pairs with Δh ≥ 1. Rewards are DPO's.
    """
    h_chosen, h_rejected, margin = dpo_margin(policy, reference, beta)
    return torch.relu(1 - margin).mean(), reward_metrics(h_chosen, h_rejected, policy)


def rdpo(policy: PairLogps, reference: PairLogps, *, beta: float = 0.5,
         alpha: float = 0.01) -> tuple[Tensor, Metrics]:
    """R-DPO (length-regularised DPO): L = −log σ(Δh + α(n(y⁺) − n(y⁻))), n in tokens.

    Park, Rafailov, Ermon & Finn 2024, "Disentangling Length from Quality in Direct Preference
    Optimization" (Findings of ACL 2024), its length-regularised DPO objective,
    https://arxiv.org/abs/2403.19159. Not in TRL.

    The sign is the paper's: plus. The paper adds a length penalty to the RL objective,
    max_π E[r(x, y) − α|y|] − β·KL(π ‖ π_ref), whose optimum π* ∝ π_ref·exp((r − α|y|)/β) gives
    r = β log(π*/π_ref) + α|y| + const; in the Bradley–Terry likelihood that is
    σ(Δh + α|y⁺| − α|y⁻|). ``test_rdpo_sign_follows_from_the_length_penalised_optimum`` checks the
    derivation numerically. The same sign appears in SimPO's table of objectives (Meng et al. 2024,
    Table 3, arXiv 2405.14734) as quoted by a public TRL-based implementation
    (``-logsigmoid(beta * logits + alpha * (len_w - len_l))``), and in summaries of the paper ("a
    per-example learning rate that up-weights gradients for pairs where the chosen answer is
    shorter"). We found one public implementation with a minus, and in it the lengths are batch
    sizes, so the term is always zero.
    The plus does not make a longer y⁺ raise the loss. At fixed log-probs a longer y⁺ lowers the loss
    and shrinks the pair's gradient weight σ(−Δh − αΔn), and a shorter y⁺ raises both. This keeps the
    data's length preference out of the implicit reward. A minus would ask for a larger log-ratio
    margin exactly when y⁺ is longer, which favours length. α = 0 is DPO. α is per token, so its scale
    depends on the tokenizer (reported values run from 0.005 to 0.5). Rewards are DPO's β·log-ratios,
    without the length term.
    """
    h_chosen, h_rejected, margin = dpo_margin(policy, reference, beta)
    length_margin = alpha * (policy.chosen_tokens - policy.rejected_tokens)
    loss = -F.logsigmoid(margin + length_margin).mean()
    return loss, reward_metrics(h_chosen, h_rejected, policy)


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


def kto(
    policy: PairLogps,
    reference: PairLogps,
    *,
    beta: float = 0.5,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    ref_point: str = "mismatched",
    policy_kl: Tensor | None = None,
    reference_kl: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """KTO on paired data: each chosen response is desirable, each rejected one undesirable.

    L = mean over the 2B responses of λ_D(1 − σ(β(r⁺ − z₀))) and λ_U(1 − σ(β(z₀ − r⁻))),
    r = log π − log π_ref, z₀ the reference point (``kto_reference_point``).
    Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization", eq. 7,
    https://arxiv.org/abs/2402.01306. TRL ``KTOTrainer`` with ``loss_type="kto"``.
    """
    z0 = kto_reference_point(policy, reference, ref_point, policy_kl, reference_kl)
    chosen_lr = policy.chosen - reference.chosen
    rejected_lr = policy.rejected - reference.rejected
    losses = torch.cat((
        desirable_weight * (1 - torch.sigmoid(beta * (chosen_lr - z0))),
        undesirable_weight * (1 - torch.sigmoid(beta * (z0 - rejected_lr))),
    ))
    metrics = reward_metrics(beta * chosen_lr, beta * rejected_lr, policy)
    metrics["kl"] = z0
    return losses.mean(), metrics


def p2o(
    policy: PairLogps,
    reference: PairLogps,
    snapshot: PairLogps,
    *,
    beta: float = 0.5,
    eps_clip: float = 0.15,
    kl_coef: float = 0.08,
    ratio: str = "pair",
    kl_estimator: str = "k3",
) -> tuple[Tensor, Metrics]:
    """P²O: L = −log σ(min(ρ·Δh, clip(ρ, 1−ε, 1+ε)·Δh)) + λ·KL.

    Δh = h(y⁺) − h(y⁻) is DPO's margin; ρ = exp(mean_t [log π − log π_snap]) is the mean-token
    ratio against the policy snapshot taken at the start of each batch's K inner steps
    (``trust_ratios``); KL is ``kl_penalty``. The surrogate is PPO's clipped objective
    (Schulman et al. 2017, https://arxiv.org/abs/1707.06347) with Δh in place of the advantage.
    With ε → ∞, λ = 0 and ρ = 1 the loss is DPO's and its gradient through the margin is DPO's.
    ``ratio="per_side"`` gives each response its own ρ: min(ρ⁺h⁺ − ρ⁻h⁻, clip(ρ⁺)h⁺ − clip(ρ⁻)h⁻).
    """
    h_chosen = beta * (policy.chosen - reference.chosen)
    h_rejected = beta * (policy.rejected - reference.rejected)
    return trust_region_loss(policy, reference, snapshot, h_chosen, -h_rejected, beta, eps_clip, kl_coef, ratio,
                             kl_estimator)


def pkto(
    policy: PairLogps,
    reference: PairLogps,
    snapshot: PairLogps,
    *,
    beta: float = 0.5,
    eps_clip: float = 0.15,
    kl_coef: float = 0.08,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    ref_point: str = "mismatched",
    ratio: str = "per_side",
    kl_estimator: str = "k3",
    policy_kl: Tensor | None = None,
    reference_kl: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """PKTO: KTO's utilities inside P²O's clipped surrogate.

    u⁺ = h(y⁺) − z, u⁻ = z − h(y⁻), z = β·z₀ (``kto_reference_point``),
    ΔU = λ_D·ρ⁺·u⁺ + λ_U·ρ⁻·u⁻, L = −log σ(min(ΔU, ΔU with clipped ρ)) + λ·KL.
    Fix of the original: it used ΔU = λ_D ρ⁺u⁺ − λ_U ρ⁻u⁻, which with u⁻ = z − h⁻ rewards a
    *larger* rejected log-ratio. With the + sign, z = 0 and λ_D = λ_U = 1, PKTO is exactly P²O
    (same ``ratio``). Like the original, each response has its own ratio by default
    (``ratio="per_side"``): with one ratio per pair and λ_D = λ_U, z cancels from ΔU and PKTO
    would coincide with P²O for every z.
    """
    z0 = kto_reference_point(policy, reference, ref_point, policy_kl, reference_kl)
    z = beta * z0
    h_chosen = beta * (policy.chosen - reference.chosen)
    h_rejected = beta * (policy.rejected - reference.rejected)
    loss, metrics = trust_region_loss(policy, reference, snapshot, desirable_weight * (h_chosen - z),
                                      undesirable_weight * (z - h_rejected), beta, eps_clip, kl_coef, ratio,
                                      kl_estimator)
    metrics["kl"] = z0
    return loss, metrics


def log_everything_else(chosen: Tensor, rejected: Tensor) -> Tensor:
    """log π(ȳ) = log(1 − π(y⁺) − π(y⁻)) from the sequence log-probs a = log π(y⁺), b = log π(y⁻).

    ȳ is every response other than y⁺ and y⁻. Computed as log1mexp(logaddexp(a, b)): logaddexp gives
    log(π(y⁺) + π(y⁻)) without forming the probabilities (e^a underflows to 0 in float32 below
    a ≈ −104), and ``log1mexp`` takes log(1 − eˢ) without cancellation: ≈ −eˢ for a long response,
    ≈ log|s| when the pair holds almost all the mass. s is clamped to at most −eps of the dtype
    (1.2e−7 in float32, 2.2e−16 in float64), so a pair that (by rounding, or because y⁺ = y⁻) holds
    all the mass gives log π(ȳ) = log(eps), finite, with a finite gradient. The same forward that gives
    a and b gives log π(ȳ): by telescoping, Σ_t π(y_<t)·(1 − π(y_t | y_<t)) = 1 − π(y), so the
    "tree walk" over first deviations in the SLPO paper's §Implementation is the same number.
    """
    return log1mexp(log_pair_mass(chosen, rejected))


def log_pair_mass(chosen: Tensor, rejected: Tensor) -> Tensor:
    """log(π(y⁺) + π(y⁻)) = logaddexp(a, b), clamped to at most −eps of the dtype
    (see ``log_everything_else``)."""
    return torch.logaddexp(chosen, rejected).clamp(max=-torch.finfo(chosen.dtype).eps)


def slpo(policy: PairLogps, reference: PairLogps, *, rejected_share: float = 0.0, temperature: float = 1.0,
         temper_by: str = "length") -> tuple[Tensor, Metrics]:
    """SLPO: cross-entropy between three-outcome targets made from π_ref and the policy's (y⁺, y⁻, ȳ).

    Ho 2025, "Supervised Learning Preference Optimization: Rethinking RLHF and DPO as Supervised
    Learning", TechRxiv preprint linked from the repository's README,
    https://www.techrxiv.org/users/888076/articles/1267902-supervised-learning-preference-optimization-rethinking-rlhf-and-dpo-as-supervised-learning;
    we read its LaTeX source, ``paper/slpo.tex`` in https://github.com/yaoshiang/slpo (commit 016f19a),
    not the PDF. Its eq. (label ``eq:slpo``):

        L = −E[ w⁺·log π(y⁺) + w⁻·log π(y⁻) + (1 − w⁺ − w⁻)·log π(ȳ) ],  ȳ = every other response,

    hard version w⁺ = π_ref(y⁺) + π_ref(y⁻), w⁻ = 0 (the loser's reference mass moves to the winner,
    every other response keeps its reference mass, which the paper calls SLPO's counterpart of RLHF's
    KL regularisation); its "softer version" w⁺ = α(π_ref(y⁺) + π_ref(y⁻)),
    w⁻ = (1 − α)(π_ref(y⁺) + π_ref(y⁻)), ½ < α ≤ 1. Our ``rejected_share`` is 1 − α ∈ [0, ½); 0 (default)
    is the hard version. The targets sum to 1 and carry no gradient; log π(ȳ) is ``log_everything_else``
    of the policy's own a, b.

    Tempering, and why the default is not the bare equation. At t = 1 the gradient on log π(y⁺) is
    −w⁺ + (1 − w⁺ − w⁻)π(y⁺)/π(ȳ), which at π = π_ref is −π_ref(y⁻) (hard version): for a response of a
    hundred tokens (log π ≈ −150) that is ~1e−65, exactly zero in float32 and far below AdamW's ε, so the
    bare equation leaves a language model where it is (``tests/test_cli.py`` sees zero KL after training).
    The repository's code tempers (``src/slpo/slpo.py``, ``apply_t`` and ``calc_targets``, read at commit
    1347641, flagged there "TODO: Validate if the temp adjustment is correct"; its tests call it with
    t = S, the sequence length). We read that for the three outcomes: model and target log-probs are both
    divided by t and renormalised, log q_i = ℓ_i/t − logsumexp_j(ℓ_j/t), and L = −Σ_i target_i·log q_i.
    ``temper_by="length"`` (default) takes t = ``temperature``·(n(y⁺) + n(y⁻))/2 per pair, so ℓ/t is of
    the order of a token log-prob and the outcome probabilities are O(1); ``temper_by="none"`` takes
    t = ``temperature``, and with ``temperature=1`` is exactly the paper's equation.

    Where the repository's code differs and we follow the paper: the code trains two binary problems,
    (y⁺ vs not-y⁺) and (y⁻ vs not-y⁻), with KL losses averaged (the paper's §Implementation split), and
    its α is the share of the *rejected* mass moved to y⁺ (target y⁺ = π_ref(y⁺) + απ_ref(y⁻)), not
    the paper's soft α; for α = 1 (ours: ``rejected_share=0``) the targets coincide. Its later commits
    move to other objectives ("SLPO-diff", a Huber loss on logit margins); we implement the paper's.
    Not in TRL.

    Metrics: ``rewards/*`` are the plain log-ratios log π − log π_ref (SLPO has no β; β = 1), ``logps/*``
    the sums; ``slpo/kl`` = KL(target ‖ model) over the three tempered outcomes (the loss minus the
    targets' entropy: zero exactly when the model matches the targets), ``slpo/logp_other`` = log π(ȳ)
    and ``slpo/log_target_chosen`` = log w⁺ (both untempered).
    """
    if temper_by == "length":
        t = temperature * (policy.chosen_tokens + policy.rejected_tokens).clamp(min=1) / 2
    elif temper_by == "none":
        t = temperature
    else:
        raise ValueError(f"unknown temper_by {temper_by!r}; valid: {TEMPER_BY}")
    log_model = slpo_log_outcomes(policy.chosen, policy.rejected, t)
    log_target = slpo_log_targets(reference.chosen, reference.rejected, rejected_share, t)
    target = log_target.exp()
    cross_entropy = -(target * log_model).sum(-1)
    entropy = -torch.where(target > 0, target * log_target, torch.zeros_like(target)).sum(-1)
    metrics = reward_metrics(policy.chosen - reference.chosen, policy.rejected - reference.rejected, policy)
    untempered_target = slpo_log_targets(reference.chosen, reference.rejected, rejected_share)
    metrics.update({
        "slpo/kl": (cross_entropy - entropy).detach().mean(),
        "slpo/logp_other": log_everything_else(policy.chosen, policy.rejected).detach().mean(),
        "slpo/log_target_chosen": untempered_target[:, 0].mean(),
    })
    return cross_entropy.mean(), metrics


TEMPER_BY = ("length", "none")


def temper(log_probs: Tensor, temperature: float | Tensor) -> Tensor:
    """log of p_i^{1/t} / Σ_j p_j^{1/t} over the last dimension; t a number or one per row (B,);
    the identity at t = 1 (the number)."""
    if isinstance(temperature, Tensor):
        return (log_probs / temperature.unsqueeze(-1)).log_softmax(-1)
    return log_probs if temperature == 1.0 else (log_probs / temperature).log_softmax(-1)


def slpo_log_outcomes(chosen: Tensor, rejected: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
    """(B, 3) log-probs of the outcomes (y⁺, y⁻, ȳ) from the sequence log-probs, tempered."""
    return temper(torch.stack((chosen, rejected, log_everything_else(chosen, rejected)), -1), temperature)


def slpo_log_targets(ref_chosen: Tensor, ref_rejected: Tensor, rejected_share: float,
                     temperature: float | Tensor = 1.0) -> Tensor:
    """(B, 3) log of SLPO's targets (w⁺, w⁻, 1 − w⁺ − w⁻), detached, tempered like the model's outcomes.

    w⁺ = (1 − s)(π_ref(y⁺) + π_ref(y⁻)), w⁻ = s(π_ref(y⁺) + π_ref(y⁻)), s = ``rejected_share``; log w⁻ = −inf
    for s = 0. The pooled mass is clamped as in ``log_everything_else``, so the targets sum to 1.
    """
    pooled = log_pair_mass(ref_chosen.detach(), ref_rejected.detach())
    log_share = pooled.new_tensor([1 - rejected_share, rejected_share]).log()
    log_target = torch.cat((pooled.unsqueeze(-1) + log_share, log1mexp(pooled).unsqueeze(-1)), -1)
    return temper(log_target, temperature)


def tdpo_loss(policy: PairLogps, reference: PairLogps, seq_kl: tuple[Tensor, Tensor] | None, beta: float,
              alpha: float, stop_chosen_kl: bool) -> tuple[Tensor, Metrics]:
    """−log σ(u − α(β·D(y⁻) − g(β·D(y⁺)))), u = h(y⁺) − h(y⁻); g = stop-gradient or identity."""
    if seq_kl is None:
        raise ValueError("TDPO needs seq_kl = (D_SeqKL(y⁺), D_SeqKL(y⁻)), the summed token-level "
                         "KL(π_ref ‖ π) of each response (p2o.model.logps.pair_logps_with_seq_kl)")
    kl_chosen, kl_rejected = seq_kl
    h_chosen, h_rejected, u = dpo_margin(policy, reference, beta)
    kl_chosen_term = kl_chosen.detach() if stop_chosen_kl else kl_chosen
    logits = u - alpha * beta * (kl_rejected - kl_chosen_term)
    metrics = reward_metrics(h_chosen, h_rejected, policy)
    metrics.update({
        "tdpo/seq_kl_chosen": kl_chosen.detach().mean(),
        "tdpo/seq_kl_rejected": kl_rejected.detach().mean(),
        "tdpo/seq_kl_margin": (kl_rejected - kl_chosen).detach().mean(),
        "tdpo/logits": logits.detach().mean(),
    })
    return -F.logsigmoid(logits).mean(), metrics


def tdpo1(policy: PairLogps, reference: PairLogps, *, beta: float = 0.1,
          seq_kl: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Metrics]:
    """TDPO₁: L = −log σ(u − δ), u = h(y⁺) − h(y⁻) (DPO's margin, β included),
    δ = β·D_SeqKL(x, y⁻; π_ref ‖ π) − β·D_SeqKL(x, y⁺; π_ref ‖ π).

    Zeng, Liu, Ma, Yang, Zhang & Wang 2024, "Token-level Direct Preference Optimization" (ICML 2024),
    §4 (the TDPO₁ objective), https://arxiv.org/abs/2404.11999; checked against the authors' code,
    https://github.com/Vance0124/Token-level-Direct-Preference-Optimization, ``trainers.py``
    (``tdpo_loss`` with ``if_tdpo2=False``: ``-logsigmoid(beta * (margin + kl_w - kl_l))``). Equation
    numbers were not checked. D_SeqKL(x, y; π_ref ‖ π) = Σ_t KL(π_ref(·|x, y_<t) ‖ π(·|x, y_<t)) over the
    full vocabulary at every response position (``seq_kl``, from ``p2o.model.logps.pair_logps_with_seq_kl``,
    which runs the reference model inside the step); it carries the policy's gradient. The log-ratios in
    u use the shared precomputed reference log-probs, like DPO (the authors' code takes them from the
    same in-step reference forward: the same numbers up to padding and rounding). Paper/code default
    β = 0.1. At π = π_ref, D = 0 and the loss is DPO's. Not in TRL. Rewards are DPO's β·log-ratios (the
    authors' code logs β·(log-ratio + D)); ``tdpo/*`` adds the mean D of each side, their difference
    D(y⁻) − D(y⁺) (the paper's Fig. margin), and the mean sigmoid argument.
    """
    return tdpo_loss(policy, reference, seq_kl, beta, 1.0, stop_chosen_kl=False)


def tdpo2(policy: PairLogps, reference: PairLogps, *, beta: float = 0.1, alpha: float = 0.5,
          seq_kl: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Metrics]:
    """TDPO₂: L = −log σ(u − α·δ₂), δ₂ = β·D_SeqKL(x, y⁻; π_ref ‖ π) − sg(β·D_SeqKL(x, y⁺; π_ref ‖ π)).

    Same paper and code as ``tdpo1`` (``tdpo_loss`` with ``if_tdpo2=True``, the code's default:
    ``-logsigmoid(beta * (margin + alpha * (kl_w.detach() - kl_l)))``): the chosen response's sequential
    KL enters the value but no gradient flows through it (sg = stop-gradient), and α scales the KL term
    (α = 1 with the gradient restored is TDPO₁; α = 0 is DPO). Defaults are the authors' (config
    ``loss/tdpo.yaml`` and README): α = 0.5, β = 0.1. The README recommends TDPO₂ for higher learning
    rates and TDPO₁ for low ones. Metrics as ``tdpo1``.
    """
    return tdpo_loss(policy, reference, seq_kl, beta, alpha, stop_chosen_kl=True)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: the function, whether it trains against a per-batch snapshot, and whether it
    needs the reference model itself inside the step (TDPO's ``seq_kl``: the reference's full next-token
    distribution at every response position), beyond the precomputed reference log-probs."""

    fn: Callable[..., tuple[Tensor, Metrics]]
    uses_snapshot: bool = False
    needs_reference_model: bool = False

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Keyword-only hyper-parameters and their defaults (the tensors excluded)."""
        return {
            name: p.default
            for name, p in inspect.signature(self.fn).parameters.items()
            if p.kind is p.KEYWORD_ONLY and name not in ("policy_kl", "reference_kl", "seq_kl")
        }


LOSSES: dict[str, LossSpec] = {
    "dpo": LossSpec(dpo),
    "cdpo": LossSpec(cdpo),
    "robust_dpo": LossSpec(robust_dpo),
    "hinge": LossSpec(hinge),
    "rdpo": LossSpec(rdpo),
    "ipo": LossSpec(ipo),
    "simpo": LossSpec(simpo),
    "orpo": LossSpec(orpo),
    "kto": LossSpec(kto),
    "p2o": LossSpec(p2o, uses_snapshot=True),
    "pkto": LossSpec(pkto, uses_snapshot=True),
    "slpo": LossSpec(slpo),
    "tdpo1": LossSpec(tdpo1, needs_reference_model=True),
    "tdpo2": LossSpec(tdpo2, needs_reference_model=True),
}

# (low, high, low_inclusive) for numeric hyper-parameters; allowed values for string ones.
BOUNDS: dict[str, tuple[float, float, bool]] = {
    "beta": (0.0, math.inf, False),
    "tau": (0.0, math.inf, False),
    "eps_clip": (0.0, 1.0, False),
    "kl_coef": (0.0, math.inf, True),
    "desirable_weight": (0.0, math.inf, False),
    "undesirable_weight": (0.0, math.inf, False),
    "label_smoothing": (0.0, 0.5, True),  # cdpo, robust_dpo: flip probability ε ∈ [0, ½)
    "alpha": (0.0, math.inf, True),  # rdpo: length penalty per token; tdpo2: weight of the KL term
    "gamma": (0.0, math.inf, True),  # simpo: target reward margin
    "lambda_or": (0.0, math.inf, False),  # orpo: weight of the odds-ratio term
    "rejected_share": (0.0, 0.5, True),  # slpo: 1 − α of the paper's soft version, α ∈ (½, 1]
    "temperature": (0.0, math.inf, False),  # slpo: tempering of the three outcomes (see temper_by)
}
CHOICES: dict[str, tuple[str, ...]] = {"ref_point": REF_POINTS, "ratio": RATIOS, "kl_estimator": KL_ESTIMATORS,
                                       "temper_by": TEMPER_BY}


def get_loss(name: str) -> LossSpec:
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid losses: {sorted(LOSSES)}") from None


@dataclass(frozen=True)
class MethodSpec:
    """A configured method: which loss, its hyper-parameters and optimizer steps per batch."""

    name: str
    loss: str
    hparams: dict[str, Any] = field(default_factory=dict)
    inner_steps: int = 1

    @property
    def spec(self) -> LossSpec:
        return get_loss(self.loss)

    @property
    def uses_snapshot(self) -> bool:
        return self.spec.uses_snapshot

    @property
    def needs_reference_model(self) -> bool:
        return self.spec.needs_reference_model

    @property
    def needs_kl_rows(self) -> bool:
        """Whether the loss reads log-probs of mismatched (prompt, completion) pairs."""
        return self.hparams.get("ref_point") == "mismatched"

    def __call__(self, policy, reference, snapshot=None, policy_kl=None, reference_kl=None, seq_kl=None):
        kwargs = dict(self.hparams)
        if self.needs_kl_rows:
            kwargs.update(policy_kl=policy_kl, reference_kl=reference_kl)
        if self.needs_reference_model:
            kwargs.update(seq_kl=seq_kl)
        if self.uses_snapshot:
            return self.spec.fn(policy, reference, snapshot, **kwargs)
        return self.spec.fn(policy, reference, **kwargs)


def method_spec(cfg, name: str) -> MethodSpec:
    """Resolve ``cfg.methods[name]`` into a MethodSpec, checking every key and bound.

    A method entry is ``{loss: <registry name, default: the method name>, inner_steps: K,
    <hyper-parameter>: value, ...}``; omitted hyper-parameters take the loss's defaults.
    """
    from p2o.config import ConfigError

    if name not in cfg.methods:
        raise ConfigError(f"config key 'methods.{name}' is missing; configured methods: {sorted(cfg.methods)}")
    entry = dict(cfg.methods[name] or {})
    key = f"methods.{name}"
    loss = entry.pop("loss", name)
    if loss not in LOSSES:
        raise ConfigError(f"config key '{key}.loss': unknown loss {loss!r}; valid losses: {sorted(LOSSES)}")
    spec = LOSSES[loss]
    inner_steps = entry.pop("inner_steps", 1)
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 1:
        raise ConfigError(f"config key '{key}.inner_steps' must be an integer >= 1, got {inner_steps!r}")
    defaults = spec.hyperparameters
    hparams = dict(defaults)
    for k, v in entry.items():
        if k not in defaults:
            raise ConfigError(
                f"config key '{key}.{k}' is unknown for loss {loss!r}; valid keys: "
                f"{sorted(defaults) + ['inner_steps', 'loss']}"
            )
        hparams[k] = _check_hparam(f"{key}.{k}", k, v)
    return MethodSpec(name=name, loss=loss, hparams=hparams, inner_steps=inner_steps)


def _check_hparam(key: str, name: str, value: Any) -> Any:
    from p2o.config import ConfigError

    if name in CHOICES:
        if value not in CHOICES[name]:
            raise ConfigError(f"config key '{key}': {value!r} is not one of {CHOICES[name]}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
    lo, hi, lo_inclusive = BOUNDS.get(name, (-math.inf, math.inf, True))
    ok = (value >= lo if lo_inclusive else value > lo) and value < hi
    if not ok:
        left = "[" if lo_inclusive else "("
        raise ConfigError(f"config key '{key}' must be in {left}{lo}, {hi}), got {value}")
    return float(value)
