"""The trust-region losses P²O and PKTO: PPO's clipped surrogate on a preference margin, plus a KL penalty."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from p2o.losses.common import BETA, Metrics, reward_metrics
from p2o.losses.kto import (DESIRABLE_WEIGHT, MISMATCHED_INPUTS, REF_POINT, UNDESIRABLE_WEIGHT,
                            kto_reference_point)
from p2o.losses.registry import hp, register
from p2o.model.logps import PairLogps

RATIOS = ("pair", "per_side")
KL_ESTIMATORS = ("k3", "logratio")
EPS_CLIP = hp("ε, the trust region: ratios are clipped to [1 − ε, 1 + ε] (paper: 0.15)", exclusiveMinimum=0,
              exclusiveMaximum=1)
KL_COEF = hp("λ, weight of the KL(π ‖ π_ref) penalty (paper: 0.08)", minimum=0)
KL_ESTIMATOR = hp("estimator of the sequence KL penalty: 'k3' (Schulman's) or 'logratio'", choices=KL_ESTIMATORS)


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


@register("p2o", inputs={"snapshot": {}}, beta=BETA, eps_clip=EPS_CLIP, kl_coef=KL_COEF,
          ratio=hp("ρ per pair (both responses' tokens) or per side (ρ⁺, ρ⁻)", choices=RATIOS),
          kl_estimator=KL_ESTIMATOR,
          paper="P²O (this paper): DPO's margin in PPO's clipped surrogate, Schulman et al. 2017, "
                "https://arxiv.org/abs/1707.06347")
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


@register("pkto", inputs={"snapshot": {}, **MISMATCHED_INPUTS}, beta=BETA, eps_clip=EPS_CLIP,
          kl_coef=KL_COEF, desirable_weight=DESIRABLE_WEIGHT, undesirable_weight=UNDESIRABLE_WEIGHT,
          ref_point=REF_POINT,
          ratio=hp("ρ per side (ρ⁺, ρ⁻; the original) or per pair", choices=RATIOS),
          kl_estimator=KL_ESTIMATOR,
          paper="PKTO (this paper): KTO's utilities in P²O's clipped surrogate, https://arxiv.org/abs/2402.01306")
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
    policy_mismatched: Tensor | None = None,
    reference_mismatched: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """PKTO: L = −log σ(min(ΔU, ΔU with clipped ρ)) + λ·KL, ΔU = λ_D·ρ⁺·u⁺ + λ_U·ρ⁻·u⁻,
    u⁺ = h(y⁺) − z, u⁻ = z − h(y⁻), z = β·z₀: KTO's utilities inside P²O's clipped surrogate.

    z₀ is KTO's reference point (``kto_reference_point``).
    Fix of the original: it used ΔU = λ_D ρ⁺u⁺ − λ_U ρ⁻u⁻, which with u⁻ = z − h⁻ rewards a
    *larger* rejected log-ratio. With the + sign, z = 0 and λ_D = λ_U = 1, PKTO is exactly P²O
    (same ``ratio``). Like the original, each response has its own ratio by default
    (``ratio="per_side"``): with one ratio per pair and λ_D = λ_U, z cancels from ΔU and PKTO
    would coincide with P²O for every z.
    """
    z0 = kto_reference_point(policy, reference, ref_point, policy_mismatched, reference_mismatched)
    z = beta * z0
    h_chosen = beta * (policy.chosen - reference.chosen)
    h_rejected = beta * (policy.rejected - reference.rejected)
    loss, metrics = trust_region_loss(policy, reference, snapshot, desirable_weight * (h_chosen - z),
                                      undesirable_weight * (z - h_rejected), beta, eps_clip, kl_coef, ratio,
                                      kl_estimator)
    metrics["kl"] = z0
    return loss, metrics
