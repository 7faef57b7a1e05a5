"""KTO on paired data and its reference point z₀."""

from __future__ import annotations

import torch
from torch import Tensor

from p2o.losses.common import BETA, Metrics, reward_metrics
from p2o.losses.registry import hp, register
from p2o.model.logps import PairLogps

REF_POINTS = ("mismatched", "chosen_token_mean", "zero")
# z₀ is a mean over the batch: no micro-batches (``p2o.losses.registry``)
Z_BATCH_STATS = ({"ref_point": "mismatched"}, {"ref_point": "chosen_token_mean"})
REF_POINT = hp("z₀: 'mismatched' (KTO paper, TRL), 'chosen_token_mean' (the original p2o code) or 'zero'",
               choices=REF_POINTS)
DESIRABLE_WEIGHT = hp("λ_D, weight of the desirable (chosen) responses (paper: 1)", exclusiveMinimum=0)
UNDESIRABLE_WEIGHT = hp("λ_U, weight of the undesirable (rejected) responses (paper: 1)", exclusiveMinimum=0)
# Read only with ref_point = mismatched: the policy's and the reference's log-probs of each pair's prompt
# with another pair's chosen response.
MISMATCHED_INPUTS = {"policy_mismatched": {"ref_point": "mismatched"},
                     "reference_mismatched": {"ref_point": "mismatched"}}


def kto_reference_point(
    policy: PairLogps,
    reference: PairLogps,
    ref_point: str,
    policy_mismatched: Tensor | None,
    reference_mismatched: Tensor | None,
) -> Tensor:
    """KTO's reference point z₀ in log-ratio units (a detached scalar; the loss scales it by β).

    - ``mismatched`` (KTO paper §4.1 and TRL): z₀ = max(0, mean_i[log π(y'_i|x_i) − log π_ref(y'_i|x_i)])
      over mismatched pairs (x_i, y'_i), y'_i the chosen response of another pair; no gradient.
    - ``chosen_token_mean`` (the original p2o code's estimate): the batch mean of the token-mean
      log-ratio of the chosen responses, with the same clamp and no gradient. This z₀ is per token
      while the r it is compared with is a sequence sum: an n-token response whose every token
      has log-ratio a has r = n·a but contributes only a to z₀. We keep the original's units
      rather than rescale by a length (which length?); ``mismatched`` has no such mix.
    - ``zero``: z₀ = 0.
    """
    if ref_point == "mismatched":
        if policy_mismatched is None or reference_mismatched is None:
            raise ValueError("ref_point='mismatched' needs policy_mismatched and reference_mismatched log-probs")
        z = (policy_mismatched - reference_mismatched).mean()
    elif ref_point == "chosen_token_mean":
        z = (policy.chosen_mean - reference.chosen_mean).mean()
    elif ref_point == "zero":
        return policy.chosen.new_zeros(())
    else:
        raise ValueError(f"unknown ref_point {ref_point!r}; valid: {REF_POINTS}")
    return z.detach().clamp(min=0)


@register("kto", trl="kto (KTOTrainer)", inputs=MISMATCHED_INPUTS, batch_stats=Z_BATCH_STATS, beta=BETA,
          desirable_weight=DESIRABLE_WEIGHT, undesirable_weight=UNDESIRABLE_WEIGHT, ref_point=REF_POINT,
          paper="Ethayarajh et al. 2024, KTO: Model Alignment as Prospect Theoretic Optimization, eq. 7, "
                "https://arxiv.org/abs/2402.01306")
def kto(
    policy: PairLogps,
    reference: PairLogps,
    *,
    beta: float = 0.5,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    ref_point: str = "mismatched",
    policy_mismatched: Tensor | None = None,
    reference_mismatched: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """KTO: L = mean over the 2B responses of λ_D(1 − σ(β(r⁺ − z₀))) and λ_U(1 − σ(β(z₀ − r⁻))),
    r = log π − log π_ref, z₀ the reference point.

    On paired data each chosen response is desirable and each rejected one undesirable; z₀ is
    ``kto_reference_point``. z₀ is in log-ratio units and β scales the difference, β·(r − z₀), as
    in the KTO paper (eq. 7: v = λ_D σ(β(r_θ − z₀))) and TRL (``beta * (chosen_logratios - kl)``).
    The original p2o code computed β·r − z₀, i.e. z₀ in reward units: ours with z₀ replaced by z₀/β, so
    at β = 0.5 its reference point weighs twice as much.
    Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization", eq. 7,
    https://arxiv.org/abs/2402.01306. TRL ``KTOTrainer`` with ``loss_type="kto"``.
    """
    z0 = kto_reference_point(policy, reference, ref_point, policy_mismatched, reference_mismatched)
    chosen_lr = policy.chosen - reference.chosen
    rejected_lr = policy.rejected - reference.rejected
    losses = torch.cat((
        desirable_weight * (1 - torch.sigmoid(beta * (chosen_lr - z0))),
        undesirable_weight * (1 - torch.sigmoid(beta * (z0 - rejected_lr))),
    ))
    metrics = reward_metrics(beta * chosen_lr, beta * rejected_lr, policy)
    metrics["kl"] = z0
    return losses.mean(), metrics
