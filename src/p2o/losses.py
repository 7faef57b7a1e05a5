"""Preference losses as pure functions of per-sequence log-prob tensors, found by name.

Each loss takes ``PairLogps`` for the policy and the reference (and, for the trust-region
methods, the per-batch policy snapshot) and returns ``(loss, metrics)``. Shapes are ``(B,)``
per pair. Notation: for a response y, ``log π(y)`` is the sum of its token log-probs given the
prompt, ``n(y)`` its token count, and ``h(y) = β·(log π(y) − log π_ref(y))`` the implicit reward
of Rafailov et al. (2023).

===========  ==========================================================  ==============
name         loss                                                        TRL loss_type
===========  ==========================================================  ==============
dpo          −log σ(Δh),  Δh = h(y⁺) − h(y⁻)                              sigmoid
ipo          (Δ̄ − 1/(2τ))², Δ̄ per-token-mean log-ratio margin            ipo
kto          λ_D(1 − σ(h⁺ − z₀)) ∪ λ_U(1 − σ(z₀ − h⁻))                    kto (KTOTrainer)
p2o          −log σ(min(ρΔh, clip(ρ, 1±ε)Δh)) + λ·KL                      —
pkto         −log σ(min(ρΔU, clip(ρ, 1±ε)ΔU)) + λ·KL, ΔU KTO utilities    —
===========  ==========================================================  ==============

Metrics follow TRL's names (``rewards/chosen``, ``rewards/margins``, ``rewards/accuracies``,
``logps/chosen``, ``kl``); our own quantities are prefixed ``trust/``. All metrics are detached.
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


def reward_metrics(chosen_rewards: Tensor, rejected_rewards: Tensor, policy: PairLogps) -> Metrics:
    """TRL's logged metrics; a reward is β·(log π − log π_ref), detached."""
    chosen_rewards, rejected_rewards = chosen_rewards.detach(), rejected_rewards.detach()
    return {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
        "logps/chosen": policy.chosen.detach().mean(),
        "logps/rejected": policy.rejected.detach().mean(),
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
    Evaluation reports the exact token-level KL instead (p2o.evaluate).
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


def dpo(policy: PairLogps, reference: PairLogps, *, beta: float = 0.5) -> tuple[Tensor, Metrics]:
    """DPO: L = −log σ(β[(log π(y⁺) − log π_ref(y⁺)) − (log π(y⁻) − log π_ref(y⁻))]).

    Rafailov et al. 2023, "Direct Preference Optimization", eq. 7, https://arxiv.org/abs/2305.18290.
    TRL ``loss_type="sigmoid"`` (without label smoothing). Sequence log-probs are token sums.
    """
    chosen_lr = policy.chosen - reference.chosen
    rejected_lr = policy.rejected - reference.rejected
    loss = -F.logsigmoid(beta * (chosen_lr - rejected_lr)).mean()
    return loss, reward_metrics(beta * chosen_lr, beta * rejected_lr, policy)


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


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: the function, and whether it trains against a per-batch snapshot."""

    fn: Callable[..., tuple[Tensor, Metrics]]
    uses_snapshot: bool = False

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Keyword-only hyper-parameters and their defaults (the tensors excluded)."""
        return {
            name: p.default
            for name, p in inspect.signature(self.fn).parameters.items()
            if p.kind is p.KEYWORD_ONLY and name not in ("policy_kl", "reference_kl")
        }


LOSSES: dict[str, LossSpec] = {
    "dpo": LossSpec(dpo),
    "ipo": LossSpec(ipo),
    "kto": LossSpec(kto),
    "p2o": LossSpec(p2o, uses_snapshot=True),
    "pkto": LossSpec(pkto, uses_snapshot=True),
}

# (low, high, low_inclusive) for numeric hyper-parameters; allowed values for string ones.
BOUNDS: dict[str, tuple[float, float, bool]] = {
    "beta": (0.0, math.inf, False),
    "tau": (0.0, math.inf, False),
    "eps_clip": (0.0, 1.0, False),
    "kl_coef": (0.0, math.inf, True),
    "desirable_weight": (0.0, math.inf, False),
    "undesirable_weight": (0.0, math.inf, False),
}
CHOICES: dict[str, tuple[str, ...]] = {"ref_point": REF_POINTS, "ratio": RATIOS, "kl_estimator": KL_ESTIMATORS}


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
    def needs_kl_rows(self) -> bool:
        """Whether the loss reads log-probs of mismatched (prompt, completion) pairs."""
        return self.hparams.get("ref_point") == "mismatched"

    def __call__(self, policy, reference, snapshot=None, policy_kl=None, reference_kl=None):
        kwargs = dict(self.hparams)
        if self.needs_kl_rows:
            kwargs.update(policy_kl=policy_kl, reference_kl=reference_kl)
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
