"""DPO and the losses built on its margin Δh = h(y⁺) − h(y⁻): DPO, cDPO, robust DPO, hinge, R-DPO, IPO."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from p2o.losses.common import BETA, Metrics, dpo_margin, reward_metrics
from p2o.losses.registry import hp, register
from p2o.model.logps import PairLogps

LABEL_SMOOTHING = hp("ε, the probability that a preference label was flipped, in [0, ½) (paper: 0.1)",
                     minimum=0, exclusiveMaximum=0.5)


@register("dpo", trl="sigmoid", beta=BETA,
          paper="Rafailov et al. 2023, Direct Preference Optimization, eq. 7, https://arxiv.org/abs/2305.18290")
def dpo(policy: PairLogps, reference: PairLogps, *, beta: float = 0.5) -> tuple[Tensor, Metrics]:
    """DPO: L = −log σ(β[(log π(y⁺) − log π_ref(y⁺)) − (log π(y⁻) − log π_ref(y⁻))]).

    Rafailov et al. 2023, "Direct Preference Optimization", eq. 7, https://arxiv.org/abs/2305.18290.
    TRL ``loss_type="sigmoid"`` (without label smoothing). Sequence log-probs are token sums.
    """
    h_chosen, h_rejected, margin = dpo_margin(policy, reference, beta)
    return -F.logsigmoid(margin).mean(), reward_metrics(h_chosen, h_rejected, policy)


@register("ipo", trl="ipo",
          tau=hp("τ, the regularisation strength; the target margin is 1/(2τ) (TRL's beta; paper: 0.1)",
                 exclusiveMinimum=0),
          paper="Azar et al. 2023, A General Theoretical Paradigm to Understand Learning from Human Preferences, "
                "eq. 17, https://arxiv.org/abs/2310.12036")
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


@register("cdpo", trl="sigmoid + label_smoothing (TRL < 1.0; CPOTrainer)", beta=BETA,
          label_smoothing=LABEL_SMOOTHING,
          paper="Mitchell 2023, A note on DPO with noisy preferences & relationship to IPO, "
                "https://ericmitchell.ai/cdpo.pdf")
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


@register("robust_dpo", trl="robust", beta=BETA, label_smoothing=LABEL_SMOOTHING,
          paper="Chowdhury, Kini & Natarajan 2024, Provably Robust DPO, https://arxiv.org/abs/2403.00409")
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


@register("hinge", trl="hinge", beta=BETA,
          paper="Liu et al. 2023, Statistical Rejection Sampling Improves Preference Optimization (RSO), "
                "https://arxiv.org/abs/2309.06657; after SLiC-HF, https://arxiv.org/abs/2305.10425")
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


@register("rdpo", beta=BETA,
          alpha=hp("α, length penalty per token, added as α(n(y⁺) − n(y⁻)) (reported: 0.005–0.5)", minimum=0),
          paper="Park, Rafailov, Ermon & Finn 2024, Disentangling Length from Quality in Direct Preference "
                "Optimization, https://arxiv.org/abs/2403.19159")
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
