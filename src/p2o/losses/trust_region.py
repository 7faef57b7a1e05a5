"""The trust-region losses P²O and PKTO: PPO's clipped surrogate on a preference margin, plus a KL penalty."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from p2o.losses.common import BETA, Metrics, reward_metrics
from p2o.losses.kto import (DESIRABLE_WEIGHT, MISMATCHED_INPUTS, REF_POINT, UNDESIRABLE_WEIGHT, Z_BATCH_STATS,
                            kto_reference_point)
from p2o.losses.registry import hp, register
from p2o.model.logps import PairLogps

RATIOS = ("pair", "per_side")
CLIPS = ("per_term", "sum")
KL_ESTIMATORS = ("k3", "logratio", "original")
EPS_CLIP = hp("ε, the trust region: ratios are clipped to [1 − ε, 1 + ε] (paper: 0.15)", exclusiveMinimum=0,
              exclusiveMaximum=1)
KL_COEF = hp("λ, weight of the KL(π ‖ π_ref) penalty (paper: 0.08)", minimum=0)
KL_ESTIMATOR = hp("estimator of the KL penalty: 'k3' (Schulman's, both responses), 'logratio' (both responses) or "
                  "'original' (the original code's max(0, batch mean of the chosen token-mean log-ratio))",
                  choices=KL_ESTIMATORS)
CLIP = hp("where PPO's min is taken: 'per_term' (one min per ratio term, as PPO) or 'sum' (one min over "
          "ρ⁺u⁺ + ρ⁻u⁻, the original code)", choices=CLIPS)


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
    u_pos: Tensor, u_neg: Tensor, rho_pos: Tensor, rho_neg: Tensor, eps_clip: float, clip: str
) -> tuple[Tensor, Tensor]:
    """PPO's pessimistic surrogate for a margin made of two ratio terms ρ⁺u⁺ and ρ⁻u⁻.

    ``per_term``: s = min(ρ⁺u⁺, clip(ρ⁺)u⁺) + min(ρ⁻u⁻, clip(ρ⁻)u⁻), clip(ρ) = clip(ρ, 1−ε, 1+ε).
    ``sum``:      s = min(ρ⁺u⁺ + ρ⁻u⁻, clip(ρ⁺)u⁺ + clip(ρ⁻)u⁻)  (the original code).

    PPO (Schulman et al. 2017, eq. 7, https://arxiv.org/abs/1707.06347) takes the min inside the
    expectation, once per ratio: each action's term is a pessimistic bound, so a ratio's move is
    ignored only where it would improve the objective beyond [1−ε, 1+ε] and kept where it makes it
    worse. ρ⁺ and ρ⁻ are ratios of two different responses, so ``per_term`` is PPO's trust region.
    ``sum`` lets one ratio leave the region whenever the other term keeps the unclipped sum the
    smaller: with u⁺ = u⁻ = 1, ρ⁺ = 1.5, ρ⁻ = 0.4, ε = 0.15 the sum's min is the unclipped
    1.9 < 2.0 and the gradient still pushes ρ⁺ out. per_term ≤ sum always (a sum of mins is at
    most the min of the sums); inside the region both equal ρ⁺u⁺ + ρ⁻u⁻.
    With one ratio per pair (ρ⁺ = ρ⁻ = ρ) ``sum`` is min(ρΔh, clip(ρ)Δh), Δh = u⁺ + u⁻, while
    ``per_term`` equals it only when u⁺ and u⁻ have the same sign or ρ is inside the region.

    Returns (s, clipped): ``clipped`` (2, B) marks the ratio terms (row 0: ρ⁺u⁺, row 1: ρ⁻u⁻)
    that the selected branch evaluates at clip(ρ) ≠ ρ, i.e. that pass no gradient to their ρ
    (the selected branch is the strictly smaller one; ties count as unclipped). ``trust/clip_frac``
    is its mean, one definition for both modes.
    """
    lo, hi = 1.0 - eps_clip, 1.0 + eps_clip
    clip_pos, clip_neg = rho_pos.clamp(lo, hi), rho_neg.clamp(lo, hi)
    if clip == "sum":
        unclipped = rho_pos * u_pos + rho_neg * u_neg
        clipped = clip_pos * u_pos + clip_neg * u_neg
        surrogate = torch.minimum(unclipped, clipped)
        active = clipped < unclipped
        held = torch.stack((active & (clip_pos != rho_pos), active & (clip_neg != rho_neg)))
    elif clip == "per_term":
        term_pos, term_neg = rho_pos * u_pos, rho_neg * u_neg
        clipped_pos, clipped_neg = clip_pos * u_pos, clip_neg * u_neg
        surrogate = torch.minimum(term_pos, clipped_pos) + torch.minimum(term_neg, clipped_neg)
        held = torch.stack((clipped_pos < term_pos, clipped_neg < term_neg))
    else:
        raise ValueError(f"unknown clip {clip!r}; valid: {CLIPS}")
    return surrogate, held.detach()


def kl_penalty(policy: PairLogps, reference: PairLogps, kl_estimator: str) -> Tensor:
    """Sequence-level estimate of KL(π ‖ π_ref) on the pair's response tokens (mean over pairs).

    m = token-mean log-ratio over both responses. ``k3``: e^{−m} − 1 + m (Schulman's k3 applied
    to m; non-negative, zero with zero gradient at π = π_ref). ``logratio``: m itself, the plain
    Monte-Carlo estimate, unbiased only for responses sampled from π (ours come from the data).
    ``original``: the original code's penalty, max(0, mean_i[token-mean log-ratio of y⁺_i]), the
    chosen responses only; it is not zero-gradient at π = π_ref (there its gradient lowers every
    chosen log-prob, against the preference term) and it ignores the rejected responses, which
    is why k3 over both responses is our default.
    Evaluation reports the exact token-level KL instead (p2o.model.evaluate).
    """
    n_c, n_r = policy.chosen_tokens, policy.rejected_tokens
    m = (n_c * (policy.chosen_mean - reference.chosen_mean)
         + n_r * (policy.rejected_mean - reference.rejected_mean)) / (n_c + n_r).clamp(min=1)
    if kl_estimator == "k3":
        return (torch.exp(-m) - 1 + m).mean()
    if kl_estimator == "logratio":
        return m.mean()
    if kl_estimator == "original":
        return (policy.chosen_mean - reference.chosen_mean).mean().clamp(min=0)
    raise ValueError(f"unknown kl_estimator {kl_estimator!r}; valid: {KL_ESTIMATORS}")


def trust_region_loss(policy: PairLogps, reference: PairLogps, snapshot: PairLogps, u_pos: Tensor, u_neg: Tensor,
                      beta: float, eps_clip: float, kl_coef: float, ratio: str, clip: str,
                      kl_estimator: str) -> tuple[Tensor, Metrics]:
    """−log σ(clipped surrogate of u⁺, u⁻) + λ·KL, with DPO's reward metrics and ``trust/*``:
    ``trust/clip_frac`` the fraction of the 2B ratio terms held at their clipped ratio
    (``clipped_surrogate``), ``trust/abs_log_ratio`` the mean |log ρ| over the same terms."""
    rho_pos, rho_neg = trust_ratios(policy, snapshot, ratio)
    surrogate, clipped = clipped_surrogate(u_pos, u_neg, rho_pos, rho_neg, eps_clip, clip)
    kl = kl_penalty(policy, reference, kl_estimator)
    loss = -F.logsigmoid(surrogate).mean() + kl_coef * kl
    metrics = reward_metrics(beta * (policy.chosen - reference.chosen),
                             beta * (policy.rejected - reference.rejected), policy)
    metrics.update({
        "trust/ratio_chosen": rho_pos.detach().mean(),
        "trust/ratio_rejected": rho_neg.detach().mean(),
        "trust/clip_frac": clipped.float().mean(),
        "trust/abs_log_ratio": torch.stack((rho_pos, rho_neg)).detach().log().abs().mean(),
        "trust/surrogate": surrogate.detach().mean(),
        "trust/kl_penalty": kl.detach(),
    })
    return loss, metrics


@register("p2o", inputs={"snapshot": {}}, batch_stats=({"kl_estimator": "original"},), beta=BETA, eps_clip=EPS_CLIP,
          kl_coef=KL_COEF,
          ratio=hp("ρ per pair (both responses' tokens) or per side (ρ⁺, ρ⁻)", choices=RATIOS), clip=CLIP,
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
    clip: str = "sum",
    kl_estimator: str = "k3",
) -> tuple[Tensor, Metrics]:
    """P²O: L = −log σ(min(ρ·Δh, clip(ρ, 1−ε, 1+ε)·Δh)) + λ·KL.

    Δh = h(y⁺) − h(y⁻) is DPO's margin; ρ = exp(mean_t [log π − log π_snap]) is the mean-token
    ratio against the policy snapshot taken at the start of each batch's K inner steps
    (``trust_ratios``); KL is ``kl_penalty``. The surrogate is PPO's clipped objective
    (Schulman et al. 2017, https://arxiv.org/abs/1707.06347) with Δh in place of the advantage.
    With ε → ∞, λ = 0 and ρ = 1 the loss is DPO's and its gradient through the margin is DPO's.
    ``ratio="per_side"`` gives each response its own ρ: min(ρ⁺h⁺ − ρ⁻h⁻, clip(ρ⁺)h⁺ − clip(ρ⁻)h⁻).

    ``clip`` (``clipped_surrogate``) defaults to ``sum``, the formula above, because that is the
    paper's loss: with one ratio per pair, ``per_term`` is min(ρh⁺, clip(ρ)h⁺) + min(−ρh⁻, −clip(ρ)h⁻),
    one min for the chosen and one for the rejected reward, which equals min(ρΔh, clip(ρ)Δh) only
    when ρ is inside [1−ε, 1+ε] or h⁺ and −h⁻ have the same sign; when both rewards move the same
    way outside the region it is smaller (e.g. h⁺ = 1, h⁻ = 0.5, ρ = 1.5, ε = 0.15: 0.4 against
    0.575). With ``ratio="per_side"``, ``clip="per_term"`` is PPO's trust region for each response.
    """
    h_chosen = beta * (policy.chosen - reference.chosen)
    h_rejected = beta * (policy.rejected - reference.rejected)
    return trust_region_loss(policy, reference, snapshot, h_chosen, -h_rejected, beta, eps_clip, kl_coef, ratio,
                             clip, kl_estimator)


@register("pkto", inputs={"snapshot": {}, **MISMATCHED_INPUTS},
          batch_stats=(*Z_BATCH_STATS, {"kl_estimator": "original"}), beta=BETA, eps_clip=EPS_CLIP,
          kl_coef=KL_COEF, desirable_weight=DESIRABLE_WEIGHT, undesirable_weight=UNDESIRABLE_WEIGHT,
          ref_point=REF_POINT,
          ratio=hp("ρ per side (ρ⁺, ρ⁻; the original) or per pair", choices=RATIOS), clip=CLIP,
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
    clip: str = "per_term",
    kl_estimator: str = "k3",
    policy_mismatched: Tensor | None = None,
    reference_mismatched: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """PKTO: L = −log σ(Σ_± min(ρ^±·U^±, clip(ρ^±)·U^±)) + λ·KL, U⁺ = λ_D·u⁺, U⁻ = λ_U·u⁻,
    u⁺ = h(y⁺) − z, u⁻ = z − h(y⁻), z = β·z₀: KTO's utilities inside PPO's clipped surrogate.

    The min is taken per ratio term (``clip="per_term"``, PPO's trust region, ``clipped_surrogate``).
    The original took one min over the sum, min(ΔU, ΔU with clipped ρ), ΔU = λ_D ρ⁺u⁺ + λ_U ρ⁻u⁻
    (``clip="sum"``): with per-side ratios that lets ρ⁺ leave [1−ε, 1+ε] while ρ⁻'s term keeps
    the unclipped sum the smaller, so it is not a trust region.

    z₀ is KTO's reference point (``kto_reference_point``).
    Fix of the original: it used ΔU = λ_D ρ⁺u⁺ − λ_U ρ⁻u⁻, which with u⁻ = z − h⁻ rewards a
    *larger* rejected log-ratio. With the + sign, z = 0 and λ_D = λ_U = 1, PKTO is exactly P²O
    (same ``ratio`` and ``clip``). Like the original, each response has its own ratio by default
    (``ratio="per_side"``): with one ratio per pair, λ_D = λ_U and ``clip="sum"``, z cancels from
    ΔU and PKTO would coincide with P²O for every z.
    z = β·z₀ puts z₀ in log-ratio units, u⁺ = β(r⁺ − z₀) as in the KTO paper and TRL (the original
    code subtracted z₀ from β·r; see ``p2o.losses.kto.kto``).
    """
    z0 = kto_reference_point(policy, reference, ref_point, policy_mismatched, reference_mismatched)
    z = beta * z0
    h_chosen = beta * (policy.chosen - reference.chosen)
    h_rejected = beta * (policy.rejected - reference.rejected)
    loss, metrics = trust_region_loss(policy, reference, snapshot, desirable_weight * (h_chosen - z),
                                      undesirable_weight * (z - h_rejected), beta, eps_clip, kl_coef, ratio,
                                      clip, kl_estimator)
    metrics["kl"] = z0
    return loss, metrics
