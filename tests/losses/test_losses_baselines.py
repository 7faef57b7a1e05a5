"""The baseline losses (cDPO, robust DPO, hinge, R-DPO, SimPO, ORPO) against TRL and their limit cases.

TRL-matched (float64, values, gradients and logged metrics to 1e-6): ``robust_dpo`` and ``hinge``
(DPOTrainer), ``simpo`` (CPOTrainer), ``orpo`` (ORPOTrainer), and ``cdpo`` (TRL 1.16's DPOTrainer no
longer smooths ``sigmoid``; CPOTrainer's ``sigmoid`` keeps the expression and is called on the
log-ratios). R-DPO is not in TRL: its sign is checked against the paper's derivation.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_losses import DT, B, _cfg, grad_of, pair_logps, random_tokens, reference
from trl_oracle import trl_cpo, trl_cpo_loss, trl_dpo, trl_orpo

from p2o.config import ConfigError
from p2o.losses import (
    LOSSES,
    PairLogps,
    cdpo,
    dpo,
    hinge,
    log1mexp,
    method_spec,
    orpo,
    rdpo,
    robust_dpo,
    simpo,
)

pytestmark = pytest.mark.filterwarnings("ignore")
REWARD_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
               "logps/rejected")


def assert_metrics_match(ours: dict, theirs: dict, keys=REWARD_KEYS):
    for k in keys:
        assert ours[k].item() == pytest.approx(theirs[k], abs=1e-6), k


def masked_pair_logps(per_token: torch.Tensor, mask: torch.Tensor) -> PairLogps:
    """``pair_logps`` with the off-completion entries multiplied out, as TRL's ``get_batch_logps``
    does (the DPO oracle instead sums them as given, zeros with gradient 1)."""
    return pair_logps(per_token * mask[:, 1:], mask)


def swap(p: PairLogps) -> PairLogps:
    """The same pairs with the labels flipped."""
    return PairLogps(p.rejected, p.chosen, p.rejected_mean, p.chosen_mean, p.rejected_tokens, p.chosen_tokens)


# --------------------------------------------------------------------------- against TRL


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_robust_dpo_matches_trl(seed, eps):
    per_token, mask = random_tokens(seed)
    ref = reference(seed + 100)
    ours, metrics = robust_dpo(pair_logps(per_token, mask), ref, beta=0.5, label_smoothing=eps)
    theirs, trl_metrics = trl_dpo(per_token, mask, ref.chosen, ref.rejected, 0.5, "robust", label_smoothing=eps)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    assert torch.allclose(grad_of(ours, per_token), grad_of(theirs, per_token), atol=1e-6, rtol=0)
    assert_metrics_match(metrics, trl_metrics)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_hinge_matches_trl(seed, beta):
    per_token, mask = random_tokens(seed)
    ref = reference(seed + 100)
    ours, metrics = hinge(pair_logps(per_token, mask), ref, beta=beta)
    theirs, trl_metrics = trl_dpo(per_token, mask, ref.chosen, ref.rejected, beta, "hinge")
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    assert torch.allclose(grad_of(ours, per_token), grad_of(theirs, per_token), atol=1e-6, rtol=0)
    assert_metrics_match(metrics, trl_metrics)
    # both sides of the hinge occur, so the comparison covers the zero-gradient branch too
    policy = pair_logps(per_token.detach(), mask)
    margin = beta * ((policy.chosen - ref.chosen) - (policy.rejected - ref.rejected))
    if beta == 0.5:
        assert (margin < 1).any() and (margin > 1).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_cdpo_matches_trl(seed, eps):
    """TRL's own label-smoothed sigmoid (CPOTrainer.cpo_loss) applied to the log-ratios; at ε = 0 also
    DPOTrainer's ``sigmoid``. Rewards are DPO's, compared with DPOTrainer's."""
    per_token, mask = random_tokens(seed)
    ref = reference(seed + 100)
    policy = pair_logps(per_token, mask)
    ours, metrics = cdpo(policy, ref, beta=0.5, label_smoothing=eps)
    theirs = trl_cpo_loss(policy.chosen - ref.chosen, policy.rejected - ref.rejected, 0.5, "sigmoid", eps)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    assert torch.allclose(grad_of(ours, per_token), grad_of(theirs, per_token), atol=1e-6, rtol=0)
    dpo_trl, trl_metrics = trl_dpo(per_token, mask, ref.chosen, ref.rejected, 0.5, "sigmoid")
    assert_metrics_match(metrics, trl_metrics)
    if eps == 0.0:
        assert torch.allclose(ours, dpo_trl, atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beta, gamma", [(2.0, 1.0), (2.5, 0.0), (0.5, 2.0)])
def test_simpo_matches_trl(seed, beta, gamma):
    """CPOTrainer ``loss_type="simpo"``, ``simpo_gamma=γ``, ``cpo_alpha=0``: token-mean log-probs
    (its ``get_batch_logps(average_log_prob=True)``), rewards β·mean, ``logps/*`` the means."""
    per_token, mask = random_tokens(seed)
    ours, metrics = simpo(masked_pair_logps(per_token, mask), reference(seed + 100), beta=beta, gamma=gamma)
    theirs, trl_metrics = trl_cpo(per_token, mask, beta, "simpo", simpo_gamma=gamma)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    assert torch.allclose(grad_of(ours, per_token), grad_of(theirs, per_token), atol=1e-6, rtol=0)
    assert_metrics_match(metrics, trl_metrics)
    assert trl_metrics["nll_loss"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [0.1, 1.0])
def test_orpo_matches_trl(seed, lam):
    """ORPOTrainer with TRL's NLL restricted to the response tokens (attention mask = completion
    mask; TRL 1.16 would also include the prompt, which ``PairLogps`` does not hold). TRL computes the
    odds term in float32, hence its ~1e-8 rounding, well inside the tolerance."""
    per_token, mask = random_tokens(seed)
    ours, metrics = orpo(masked_pair_logps(per_token, mask), reference(seed + 100), lambda_or=lam)
    theirs, trl_metrics = trl_orpo(per_token, mask, lam)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    assert torch.allclose(grad_of(ours, per_token), grad_of(theirs, per_token), atol=1e-6, rtol=0)
    assert_metrics_match(metrics, trl_metrics, REWARD_KEYS + ("nll_loss", "log_odds_ratio", "log_odds_chosen"))


# --------------------------------------------------------------------------- limit cases and identities


@pytest.mark.parametrize("fn", [cdpo, robust_dpo])
def test_label_smoothing_zero_is_dpo(fn):
    per_token, mask = random_tokens(5)
    policy, ref = pair_logps(per_token, mask), reference(6)
    a, ma = fn(policy, ref, beta=0.5, label_smoothing=0.0)
    b, mb = dpo(policy, ref, beta=0.5)
    assert torch.allclose(a, b, atol=1e-12)
    assert torch.allclose(grad_of(a, per_token), grad_of(b, per_token), atol=1e-12)
    assert all(torch.equal(ma[k], mb[k]) for k in mb)


@pytest.mark.parametrize("eps", [0.05, 0.2, 0.45])
def test_label_smoothing_identities(eps):
    """cDPO = DPO + ε·mean Δh; robust DPO = DPO − ε/(1−2ε)·mean Δh; and robust DPO is unbiased: its
    expectation over a label flip of probability ε is DPO's loss on the clean label."""
    per_token, mask = random_tokens(7)
    policy, ref = pair_logps(per_token, mask), reference(8)
    d, _ = dpo(policy, ref, beta=0.5)
    margin = 0.5 * ((policy.chosen - ref.chosen) - (policy.rejected - ref.rejected))
    c, _ = cdpo(policy, ref, beta=0.5, label_smoothing=eps)
    r, _ = robust_dpo(policy, ref, beta=0.5, label_smoothing=eps)
    assert torch.allclose(c, d + eps * margin.mean(), atol=1e-12)
    assert torch.allclose(r, d - eps / (1 - 2 * eps) * margin.mean(), atol=1e-12)
    r_flipped, _ = robust_dpo(swap(policy), swap(ref), beta=0.5, label_smoothing=eps)
    assert torch.allclose((1 - eps) * r + eps * r_flipped, d, atol=1e-12)


def test_cdpo_gradient_vanishes_at_a_finite_margin():
    """∂L/∂Δh = −(1−ε)σ(−Δh) + εσ(Δh) = 0 at Δh = log((1−ε)/ε); DPO's only as Δh → ∞."""
    eps = 0.1
    star = math.log((1 - eps) / eps)
    chosen = torch.tensor([star / 0.5], dtype=DT, requires_grad=True)  # β = 0.5, reference 0
    zeros, n = torch.zeros(1, dtype=DT), torch.ones(1, dtype=DT)
    loss, _ = cdpo(PairLogps.from_sums(chosen, zeros, n, n), PairLogps.from_sums(zeros, zeros, n, n),
                   beta=0.5, label_smoothing=eps)
    assert abs(grad_of(loss, chosen).item()) < 1e-12


def test_hinge_has_no_gradient_past_the_margin():
    n = torch.ones(2, dtype=DT)
    chosen = torch.tensor([3.0, 1.0], dtype=DT, requires_grad=True)  # Δh = 1.5 (past), 0.5 (inside)
    zeros = torch.zeros(2, dtype=DT)
    loss, _ = hinge(PairLogps.from_sums(chosen, zeros, n, n), PairLogps.from_sums(zeros, zeros, n, n), beta=0.5)
    assert loss.item() == pytest.approx(0.25)  # mean of 0 and 1 − 0.5
    assert grad_of(loss, chosen).tolist() == [0.0, -0.25]


def _lengths(policy: PairLogps, chosen_tokens, rejected_tokens) -> PairLogps:
    c, r = torch.as_tensor(chosen_tokens, dtype=DT), torch.as_tensor(rejected_tokens, dtype=DT)
    return PairLogps(policy.chosen, policy.rejected, policy.chosen_mean, policy.rejected_mean, c, r)


def test_rdpo_at_zero_alpha_is_dpo():
    per_token, mask = random_tokens(9)
    policy, ref = pair_logps(per_token, mask), reference(10)
    a, ma = rdpo(policy, ref, beta=0.5, alpha=0.0)
    b, mb = dpo(policy, ref, beta=0.5)
    assert torch.allclose(a, b, atol=1e-12)
    assert torch.allclose(grad_of(a, per_token), grad_of(b, per_token), atol=1e-12)
    assert all(torch.equal(ma[k], mb[k]) for k in mb)


def test_rdpo_sign_longer_chosen_lowers_the_loss_and_its_weight():
    """The paper's sign, +α(|y⁺| − |y⁻|): at the same log-probs a longer chosen response gives a
    smaller loss and a smaller gradient (weight σ(−Δh − αΔn)); a shorter one, larger. Not the
    other way round: this is what keeps the data's length preference out of the implicit reward."""
    per_token, mask = random_tokens(11)
    base, ref = pair_logps(per_token, mask), reference(12)
    longer = _lengths(base, torch.full((B,), 40.0), torch.full((B,), 10.0))
    shorter = _lengths(base, torch.full((B,), 10.0), torch.full((B,), 40.0))
    equal = _lengths(base, torch.full((B,), 25.0), torch.full((B,), 25.0))
    losses = {k: rdpo(p, ref, beta=0.5, alpha=0.05)[0] for k, p in
              (("longer", longer), ("equal", equal), ("shorter", shorter))}
    assert losses["longer"] < losses["equal"] < losses["shorter"]
    assert torch.allclose(losses["equal"], dpo(base, ref, beta=0.5)[0], atol=1e-12)
    g = {k: grad_of(v, per_token).abs().sum() for k, v in losses.items()}
    assert g["longer"] < g["equal"] < g["shorter"]


def test_rdpo_sign_follows_from_the_length_penalised_optimum():
    """Park et al.'s derivation: the optimum of max E[r − α|y|] − β KL(π‖π_ref) is
    π* = π_ref·exp((r − α|y|)/β)/Z(x). With π = π*, R-DPO's logit Δh + α(n⁺ − n⁻) is exactly the
    Bradley–Terry logit r⁺ − r⁻ (Z cancels within a pair), so R-DPO's loss is the true reward's
    negative log-likelihood; the opposite sign is not."""
    g = torch.Generator().manual_seed(13)
    beta, alpha = 0.5, 0.03
    r = torch.randn(2 * B, generator=g, dtype=DT)
    n = torch.randint(5, 60, (2 * B,), generator=g).to(DT)
    ref_logp = -40 * torch.rand(2 * B, generator=g, dtype=DT)
    log_z = torch.randn(B, generator=g, dtype=DT).repeat(2)  # one partition function per prompt
    logp = ref_logp + (r - alpha * n) / beta - log_z
    policy = PairLogps.from_sums(logp[:B], logp[B:], n[:B], n[B:])
    ref = PairLogps.from_sums(ref_logp[:B], ref_logp[B:], n[:B], n[B:])
    loss, _ = rdpo(policy, ref, beta=beta, alpha=alpha)
    bt_nll = -F.logsigmoid(r[:B] - r[B:]).mean()
    assert torch.allclose(loss, bt_nll, atol=1e-12)
    opposite, _ = rdpo(policy, ref, beta=beta, alpha=-alpha)
    assert not torch.allclose(opposite, bt_nll, atol=1e-3)


def test_simpo_with_zero_margin_and_equal_lengths_is_reference_free_dpo_on_sums_over_length():
    per_token, _ = random_tokens(14)
    n = 7.0
    sums = per_token.sum(-1)
    counts = torch.full((2 * B,), n, dtype=DT)
    policy = PairLogps.from_sums(sums[:B], sums[B:], counts[:B], counts[B:])
    zero = PairLogps.from_sums(*(torch.zeros(B, dtype=DT),) * 2, counts[:B], counts[B:])
    a, _ = simpo(policy, reference(15), beta=2.0, gamma=0.0)
    b, _ = dpo(policy, zero, beta=2.0 / n)
    assert torch.allclose(a, b, atol=1e-12)
    assert torch.allclose(grad_of(a, per_token), grad_of(b, per_token), atol=1e-12)
    c, _ = simpo(policy, reference(15), beta=2.0, gamma=1.0)
    assert c > a  # the target margin raises the loss


@pytest.mark.parametrize("fn, hp", [(simpo, {}), (orpo, {})])
def test_reference_free_losses_ignore_the_reference(fn, hp):
    per_token, mask = random_tokens(16)
    policy = pair_logps(per_token, mask)
    a, ma = fn(policy, reference(17), **hp)
    b, mb = fn(policy, reference(18), **hp)
    assert torch.equal(a, b) and all(torch.equal(ma[k], mb[k]) for k in ma)


def test_log1mexp_is_accurate_across_the_range():
    xs = [-1e-300, -1e-20, -1e-9, -1e-3, -0.5, -math.log(2), -0.7, -2.0, -30.0, -700.0, -1e4]
    got = log1mexp(torch.tensor(xs, dtype=DT))
    for x, y in zip(xs, got.tolist(), strict=True):
        expected = math.log(-math.expm1(x)) if x > -math.log(2) else math.log1p(-math.exp(x))
        assert y == pytest.approx(expected, rel=1e-12, abs=1e-300), x


@pytest.mark.parametrize("mean_logp", [-1e-9, -1e-30, 0.0, -1e-3, -50.0, -1e4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_orpo_odds_term_is_finite_at_the_extremes(mean_logp, dtype):
    """log odds = m − log(1 − eᵐ): finite as m → 0⁻ (≈ −log|m|) and as m → −∞ (≈ m), with finite
    gradients; m = 0 exactly (probability 1) is clamped to −tiny rather than giving ∞ − ∞."""
    n = torch.tensor([4.0, 9.0], dtype=dtype)
    means = torch.tensor([mean_logp, -2.0], dtype=dtype, requires_grad=True)  # one pair, chosen first
    for chosen_mean, rejected_mean in ((means[:1], means[1:]), (means[1:], means[:1]), (means[:1], means[:1])):
        policy = PairLogps(chosen_mean * n[:1], rejected_mean * n[1:], chosen_mean, rejected_mean, n[:1], n[1:])
        loss, metrics = orpo(policy, policy, lambda_or=0.1)
        (g,) = torch.autograd.grad(loss, means)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), (chosen_mean, rejected_mean)
        assert all(torch.isfinite(v) for v in metrics.values())


def test_orpo_nll_is_the_token_level_mean_over_the_batch():
    """Like TRL's mean CrossEntropyLoss: Σ −log π(y⁺) / Σ n(y⁺), so longer chosen responses weigh more."""
    sums, n = torch.tensor([-10.0, -90.0], dtype=DT), torch.tensor([10.0, 30.0], dtype=DT)
    policy = PairLogps.from_sums(sums, sums - 5, n, n)
    _, metrics = orpo(policy, policy, lambda_or=0.1)
    assert metrics["nll_loss"].item() == pytest.approx(100 / 40)  # not (1 + 3) / 2


# --------------------------------------------------------------------------- registry and config


def test_the_baselines_are_registered_with_their_hyperparameters():
    expected = {
        "cdpo": {"beta": 0.5, "label_smoothing": 0.1},
        "robust_dpo": {"beta": 0.5, "label_smoothing": 0.1},
        "hinge": {"beta": 0.5},
        "rdpo": {"beta": 0.5, "alpha": 0.01},
        "simpo": {"beta": 2.0, "gamma": 1.0},
        "orpo": {"lambda_or": 0.1},
    }
    for name, hparams in expected.items():
        assert LOSSES[name].hyperparameters == hparams and not LOSSES[name].inputs
        assert method_spec(_cfg({name: {}}), name).hparams == hparams


@pytest.mark.parametrize("entry, key", [
    ({"cdpo": {"label_smoothing": 0.5}}, "methods.cdpo.label_smoothing"),
    ({"robust_dpo": {"label_smoothing": -0.1}}, "methods.robust_dpo.label_smoothing"),
    ({"rdpo": {"alpha": -0.01}}, "methods.rdpo.alpha"),
    ({"simpo": {"gamma": -1.0}}, "methods.simpo.gamma"),
    ({"orpo": {"lambda_or": 0.0}}, "methods.orpo.lambda_or"),
    ({"orpo": {"beta": 0.1}}, "methods.orpo.beta"),
])
def test_baseline_config_errors_name_the_key(entry, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _cfg(entry)


def test_boundary_values_are_accepted():
    cfg = _cfg({"c": {"loss": "cdpo", "label_smoothing": 0}, "r": {"loss": "rdpo", "alpha": 0},
                "s": {"loss": "simpo", "gamma": 0}, "slic": {"loss": "hinge", "beta": 0.1}})
    assert method_spec(cfg, "c").hparams["label_smoothing"] == 0.0
    assert method_spec(cfg, "r").hparams["alpha"] == 0.0
    assert method_spec(cfg, "s").hparams["gamma"] == 0.0
    assert method_spec(cfg, "slic").loss == "hinge"
