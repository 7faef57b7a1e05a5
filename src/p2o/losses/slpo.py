"""SLPO: supervised-learning preference optimisation over three outcomes (y⁺, y⁻, everything else)."""

from __future__ import annotations

import torch
from torch import Tensor

from p2o.losses.common import Metrics, log1mexp, reward_metrics
from p2o.losses.registry import hp, register
from p2o.model.logps import PairLogps

TEMPER_BY = ("length", "none")


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


@register("slpo",
          rejected_share=hp("1 − α of the paper's soft version: share of the pooled reference mass kept by y⁻, "
                            "in [0, ½) (0: the hard version)", minimum=0, exclusiveMaximum=0.5),
          temperature=hp("t, tempering of the three outcomes (scaled by the mean response length with "
                         "temper_by=length)", exclusiveMinimum=0),
          temper_by=hp("'length': t = temperature·(n(y⁺) + n(y⁻))/2 per pair; 'none': t = temperature",
                       choices=TEMPER_BY),
          paper="Ho 2025, Supervised Learning Preference Optimization: Rethinking RLHF and DPO as Supervised "
                "Learning, https://github.com/yaoshiang/slpo")
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
    bare equation leaves a language model where it is (``tests/stages/test_cli.py`` sees zero KL after training).
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
