"""Preference losses as pure functions of per-sequence log-prob tensors, found by name; and the maths of
online RLHF as pure functions of per-token tensors (not in the registry).

Each loss takes ``PairLogps`` for the policy and the reference, plus the inputs it declares by name
(``p2o.losses.registry``: the per-batch policy snapshot of the trust-region methods, KTO's mismatched
log-probs, TDPO's sequential KL), and returns ``(loss, metrics)``. Shapes are ``(B,)``
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
metrics are detached. ``tdpo1``/``tdpo2`` declare the input ``seq_kl``: the training step then runs
the reference model inside the step.
The reference-free losses (``simpo``, ``orpo``) take ``reference`` like every other loss (the
registry calls them all the same way) and ignore it; like TRL's CPOTrainer and ORPOTrainer they log
``rewards/*`` as β·m(y) (β the loss's own scale, λ for ORPO) and ``logps/*`` as the token means m(y),
not the sums that the other losses log.

The online half (PPO, RTO, iterative online DPO, RLOO, regression RL) is not registered: its inputs are
per-token tensors ``(B, T)`` with an action mask ``(B, T)`` of 0/1 over response tokens, built from
samples of the policy, and its pieces are separate functions that a rollout loop calls in order:

- ``masked``: masked sums, means, variance and whitening; the index of each response's last token.
- ``token_rewards``: the KL estimators k1/k2/k3 per token, the reward-model score at the last action
  token (clamped), the no-EOS penalty, RTO's dense term clamp(β₁·(log π_dpo − log π_ref), ±c), and
  ``compute_reward``, the one place they are summed into the reward r_t (OpenRLHF's ``compute_reward``).
- ``ppo``: GAE, advantage whitening, the clipped policy loss and the clipped value loss (OpenRLHF's
  ``PolicyLoss``/``ValueLoss``); RTO is PPO on ``compute_reward(..., dense=dense_dpo_reward(...))``.
- ``rloo``: RLOO's leave-one-out baseline over k samples per prompt and its REINFORCE loss (TRL's
  RLOOTrainer); ``regression_rl``, the "simple RL" of Shi et al. 2025.
- ``pair_selection``: online DPO's best/worst of K samples per prompt by a reward, ties broken
  deterministically; the pairs then train any registered offline loss.
"""

# Importing a family module registers its losses, in the order of the table above.
from p2o.losses.registry import LOSSES, LossSpec, get_loss, register  # noqa: E402, I001
from p2o.losses.common import Metrics, dpo_margin, log1mexp, reward_metrics  # noqa: E402
from p2o.losses.dpo_family import cdpo, dpo, hinge, ipo, rdpo, robust_dpo  # noqa: E402
from p2o.losses.reference_free import orpo, simpo  # noqa: E402
from p2o.losses.kto import REF_POINTS, kto, kto_reference_point  # noqa: E402
from p2o.losses.trust_region import (  # noqa: E402
    CLIPS, KL_ESTIMATORS, RATIOS, clipped_surrogate, kl_penalty, p2o, pkto, trust_ratios, trust_region_loss,
)
from p2o.losses.slpo import (  # noqa: E402
    TEMPER_BY, log_everything_else, log_pair_mass, slpo, slpo_log_outcomes, slpo_log_targets, temper,
)
from p2o.losses.tdpo import tdpo1, tdpo2, tdpo_loss  # noqa: E402
from p2o.model.logps import PairLogps  # noqa: E402
from p2o.losses.masked import masked_mean, masked_sum, masked_whiten, reduce_per_token  # noqa: E402
from p2o.losses.token_rewards import (  # noqa: E402
    approx_kl, at_last_action, compute_reward, dense_dpo_reward, no_eos_penalty,
)
from p2o.losses.ppo import gae, policy_loss, value_loss, whiten_advantages  # noqa: E402
from p2o.losses.rloo import regression_rl, rloo_advantages, rloo_baseline, rloo_loss, sequence_reward  # noqa: E402
from p2o.losses.pair_selection import Pairs, gather_responses, select_pairs  # noqa: E402
from p2o.config.methods import MethodSpec, method_spec  # noqa: E402

__all__ = [
    "LOSSES", "LossSpec", "MethodSpec", "method_spec", "get_loss", "register", "Metrics", "PairLogps", "reward_metrics", "dpo_margin", "log1mexp",
    "dpo", "cdpo", "robust_dpo", "hinge", "rdpo", "ipo", "simpo", "orpo", "kto", "kto_reference_point", "p2o",
    "pkto", "trust_ratios", "clipped_surrogate", "kl_penalty", "trust_region_loss", "slpo", "log_everything_else",
    "log_pair_mass", "slpo_log_outcomes", "slpo_log_targets", "temper", "tdpo1", "tdpo2", "tdpo_loss",
    "REF_POINTS", "RATIOS", "CLIPS", "KL_ESTIMATORS", "TEMPER_BY",
    "masked_mean", "masked_sum", "masked_whiten", "reduce_per_token", "approx_kl", "at_last_action",
    "compute_reward", "dense_dpo_reward", "no_eos_penalty", "gae", "policy_loss", "value_loss",
    "whiten_advantages", "regression_rl", "rloo_advantages", "rloo_baseline", "rloo_loss", "sequence_reward",
    "Pairs", "gather_responses", "select_pairs",
]
