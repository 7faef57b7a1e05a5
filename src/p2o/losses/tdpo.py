"""TDPO₁ and TDPO₂: DPO's margin corrected by the sequential token-level KL(π_ref ‖ π) of each response."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from p2o.losses.common import Metrics, dpo_margin, reward_metrics
from p2o.losses.registry import hp, register
from p2o.model.logps import PairLogps

TDPO_BETA = hp("β, scale of the implicit reward and of the sequential KL (paper: 0.1)", exclusiveMinimum=0)


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


@register("tdpo1", inputs={"seq_kl": {}}, beta=TDPO_BETA,
          paper="Zeng et al. 2024, Token-level Direct Preference Optimization (TDPO₁), "
                "https://arxiv.org/abs/2404.11999")
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


@register("tdpo2", inputs={"seq_kl": {}}, beta=TDPO_BETA,
          alpha=hp("α, weight of the sequential-KL term (paper: 0.5)", minimum=0),
          paper="Zeng et al. 2024, Token-level Direct Preference Optimization (TDPO₂), "
                "https://arxiv.org/abs/2404.11999")
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
