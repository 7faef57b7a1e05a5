"""SLPO (Ho 2025): its targets, its three-outcome cross-entropy against a naive float64 oracle, its
gradients' signs and sizes, and its numerics over sequence log-probs from −1e−6 to −1e4.

SLPO is not in TRL. The oracle is the paper's equation written with probabilities, in float64 (and
mpmath for log π(ȳ) where float64 probabilities underflow or cancel).
"""

from __future__ import annotations

import itertools
import math

import mpmath
import pytest
import torch
from test_losses import DT, B, _cfg, grad_of, pair_logps, random_tokens, reference

from p2o.config import ConfigError
from p2o.losses import (
    LOSSES,
    TEMPER_BY,
    PairLogps,
    log_everything_else,
    method_spec,
    slpo,
    slpo_log_outcomes,
    slpo_log_targets,
)

pytestmark = pytest.mark.filterwarnings("ignore")


def sums(chosen, rejected, dtype=DT, requires_grad=False, tokens=None) -> PairLogps:
    """PairLogps with the given sequence log-probs and response lengths ``tokens`` = (n⁺, n⁻), default 1
    (SLPO reads the sums, and the lengths only with ``temper_by="length"``)."""
    c = torch.as_tensor(chosen, dtype=dtype).clone().requires_grad_(requires_grad)
    r = torch.as_tensor(rejected, dtype=dtype).clone().requires_grad_(requires_grad)
    if tokens is None:
        tokens = (torch.ones_like(c.detach()),) * 2
    n_c, n_r = (torch.as_tensor(n, dtype=dtype) for n in tokens)
    return PairLogps.from_sums(c, r, n_c, n_r)


def naive_loss(policy: PairLogps, ref: PairLogps, share: float, temperature: float, temper_by: str) -> float:
    """The paper's eq. with plain probabilities in float64, tempered by t per pair (t = temperature, times
    the mean response length with ``temper_by="length"``), mean over pairs (nothing may underflow)."""
    total = 0.0
    lengths = ((policy.chosen_tokens + policy.rejected_tokens) / 2).tolist()
    for a, b, ra, rb, n in zip(policy.chosen.tolist(), policy.rejected.tolist(), ref.chosen.tolist(),
                               ref.rejected.tolist(), lengths):
        t = temperature * (n if temper_by == "length" else 1)
        p = [math.exp(a), math.exp(b)]
        p.append(1 - p[0] - p[1])
        pooled = math.exp(ra) + math.exp(rb)
        w = [(1 - share) * pooled, share * pooled, 1 - pooled]
        q = [x ** (1 / t) for x in p]
        v = [x ** (1 / t) for x in w]
        q, v = [x / sum(q) for x in q], [x / sum(v) for x in v]
        total -= sum(vi * math.log(qi) for vi, qi in zip(v, q))
    return total / len(policy.chosen)


def small_pairs(seed: int, n: int = B) -> tuple[PairLogps, PairLogps]:
    """Policy and reference log-probs in [−4, −0.8]: π(y⁺) + π(y⁻) ≤ 0.9, nothing underflows; lengths
    1–5 tokens."""
    g = torch.Generator().manual_seed(seed)
    x = -0.8 - 3.2 * torch.rand(4, n, generator=g, dtype=DT)
    tokens = torch.randint(1, 6, (2, n), generator=g)
    return sums(x[0], x[1], requires_grad=True, tokens=tokens), sums(x[2], x[3], tokens=tokens)


# --------------------------------------------------------------------------- targets and log π(ȳ)


@pytest.mark.parametrize("share", [0.0, 0.1, 0.4])
@pytest.mark.parametrize("t", [1.0, 0.5, 3.0, 150.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_targets_sum_to_one_and_split_the_pooled_mass(share, t, dtype):
    ra = torch.tensor([-1e-6, -0.7, -3.0, -60.0, -400.0, -1e4], dtype=dtype)
    rb = torch.tensor([-20.0, -0.9, -2.0, -70.0, -300.0, -1e4], dtype=dtype)
    log_w = slpo_log_targets(ra, rb, share, t)
    assert log_w.shape == (6, 3) and not log_w.requires_grad
    assert torch.allclose(log_w.exp().sum(-1), torch.ones(6, dtype=dtype), atol=10 * torch.finfo(dtype).eps)
    if t == 1.0 and dtype == torch.float64:
        pooled = torch.logaddexp(ra, rb)
        assert torch.allclose(log_w[:, 0], pooled + math.log(1 - share))
        if share == 0:
            assert torch.all(log_w[:, 1] == -math.inf)  # the hard version: no mass on y⁻
        else:
            assert torch.allclose(log_w[:, 1], pooled + math.log(share))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_everything_else_matches_exact_arithmetic(dtype):
    """log(1 − e^a − e^b) against mpmath (60 digits) from −1e−6 to −1e4, and against the naive float64
    formula where its probabilities neither underflow nor cancel."""
    values = [-1e-6, -1e-3, -0.1, -0.69, -1.0, -5.0, -30.0, -80.0, -120.0, -800.0, -1e4]
    a, b = zip(*[(x, y) for x, y in itertools.product(values, repeat=2) if math.exp(x) + math.exp(y) < 0.999])
    a, b = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
    ours = log_everything_else(a, b)
    mpmath.mp.dps = 60
    for x, y, o in zip(a.tolist(), b.tolist(), ours.tolist()):  # the dtype-rounded inputs, exactly
        exact = float(mpmath.log1p(-(mpmath.exp(x) + mpmath.exp(y))))
        rel = 1e-5 if dtype == torch.float32 else 1e-12  # below the normal range: absolute, the dtype's tiny
        assert o == pytest.approx(exact, rel=rel, abs=torch.finfo(dtype).tiny), (x, y)
        rest = 1 - math.exp(x) - math.exp(y)
        if dtype == torch.float64 and 1e-3 < rest < 1 - 1e-3:
            assert o == pytest.approx(math.log(rest), rel=1e-12), (x, y)


def test_log_everything_else_stays_finite_when_the_pair_holds_all_the_mass():
    """π(y⁺) + π(y⁻) ≥ 1 (rounding, or y⁺ = y⁻): clamped to log(eps), finite value and gradient."""
    for dtype in (torch.float32, torch.float64):
        a = torch.tensor([-1e-9, 0.0, -0.5], dtype=dtype, requires_grad=True)
        out = log_everything_else(a, a.detach().clone())
        (g,) = torch.autograd.grad(out.sum(), a)
        assert torch.isfinite(out).all() and torch.isfinite(g).all()
        assert out[:2].tolist() == pytest.approx([math.log(torch.finfo(dtype).eps)] * 2, rel=1e-6)


# --------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temper_by", ["none", "length"])
@pytest.mark.parametrize("share, t", [(0.0, 1.0), (0.2, 1.0), (0.0, 4.0), (0.3, 0.7)])
def test_loss_matches_the_naive_cross_entropy(seed, temper_by, share, t):
    """Any policy, and the policy at the reference (π = π_ref), against the float64 oracle; ``none`` with
    t = 1 is the paper's equation itself."""
    policy, ref = small_pairs(seed)
    hp = {"rejected_share": share, "temperature": t, "temper_by": temper_by}
    loss, _ = slpo(policy, ref, **hp)
    assert loss.item() == pytest.approx(naive_loss(policy, ref, share, t, temper_by), rel=1e-12)
    at_ref, _ = slpo(PairLogps(*(x.clone().requires_grad_() if x.is_floating_point() else x
                                 for x in ref._tensors())), ref, **hp)
    assert at_ref.item() == pytest.approx(naive_loss(ref, ref, share, t, temper_by), rel=1e-12)


@pytest.mark.parametrize("share", [0.0, 0.25])
def test_gradient_at_the_reference_moves_mass_from_the_loser_to_the_winner(share):
    """At π = π_ref and t = 1: ∂L/∂log π(y⁺) = −w⁺ + π(y⁺) = −(π_ref(y⁻) − s·pooled) < 0 and
    ∂L/∂log π(y⁻) = −w⁻ + π(y⁻) = π_ref(y⁻) − s·pooled > 0 (per pair, over B), pooled = π_ref(y⁺) + π_ref(y⁻),
    for s < ½ whenever π_ref(y⁻) > s·pooled (true here: the rejected side is the likelier one)."""
    _, ref = small_pairs(5)
    ref = sums(torch.minimum(ref.chosen, ref.rejected), torch.maximum(ref.chosen, ref.rejected))
    policy = sums(ref.chosen, ref.rejected, requires_grad=True)
    loss, _ = slpo(policy, ref, rejected_share=share, temper_by="none")
    g_w, g_l = torch.autograd.grad(loss, (policy.chosen, policy.rejected))
    pooled = ref.chosen.exp() + ref.rejected.exp()
    push = ref.rejected.exp() - share * pooled
    assert torch.allclose(g_w, -push / B, rtol=1e-10, atol=0) and torch.all(g_w < 0)
    assert torch.allclose(g_l, push / B, rtol=1e-10, atol=0) and torch.all(g_l > 0)
    for t, by in itertools.product((0.5, 5.0, 100.0), TEMPER_BY):  # the signs hold tempered too
        tokens = torch.randint(1, 200, (2, B), generator=torch.Generator().manual_seed(1))
        tempered_ref = sums(ref.chosen, ref.rejected, tokens=tokens)
        tempered = sums(ref.chosen, ref.rejected, requires_grad=True, tokens=tokens)
        loss, _ = slpo(tempered, tempered_ref, rejected_share=share, temperature=t, temper_by=by)
        g_w, g_l = torch.autograd.grad(loss, (tempered.chosen, tempered.rejected))
        assert torch.all(g_w < 0) and torch.all(g_l > 0), (t, by)


@pytest.mark.parametrize("t, temper_by", [(1.0, "none"), (2.0, "none"), (1.0, "length")])
def test_loss_is_minimised_where_the_policy_matches_the_targets(t, temper_by):
    """With w⁻ > 0 the minimiser is π(y⁺) = w⁺, π(y⁻) = w⁻: zero gradient, zero ``slpo/kl``, and any step
    away raises the loss (the cross-entropy's "bowl" around the target)."""
    share = 0.3
    _, ref = small_pairs(7)
    log_w = slpo_log_targets(ref.chosen, ref.rejected, share)
    tokens = (ref.chosen_tokens, ref.rejected_tokens)
    policy = sums(log_w[:, 0], log_w[:, 1], requires_grad=True, tokens=tokens)
    loss, metrics = slpo(policy, ref, rejected_share=share, temperature=t, temper_by=temper_by)
    g_w, g_l = torch.autograd.grad(loss, (policy.chosen, policy.rejected))
    assert g_w.abs().max() < 1e-12 and g_l.abs().max() < 1e-12
    assert abs(metrics["slpo/kl"].item()) < 1e-12
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        d = 0.05 * torch.randn(2, B, generator=g, dtype=DT)
        moved_policy = sums(policy.chosen.detach() + d[0], policy.rejected.detach() + d[1], tokens=tokens)
        moved, m = slpo(moved_policy, ref, rejected_share=share, temperature=t, temper_by=temper_by)
        assert moved > loss and m["slpo/kl"] > 0


def test_hard_version_pushes_the_loser_to_zero():
    """``rejected_share = 0``: the loss keeps falling as log π(y⁻) → −∞ (w⁻ = 0), at fixed π(y⁺) = w⁺."""
    _, ref = small_pairs(8)
    log_w = slpo_log_targets(ref.chosen, ref.rejected, 0.0)
    losses = [slpo(sums(log_w[:, 0], torch.full((B,), b, dtype=DT)), ref, temper_by="none")[0].item()
              for b in (-2, -5, -10, -40)]
    assert all(x > y for x, y in zip(losses, losses[1:]))
    entropy = -(log_w.exp()[:, [0, 2]] * log_w[:, [0, 2]]).sum(-1).mean().item()
    assert losses[-1] == pytest.approx(entropy, rel=1e-9)  # the infimum: the targets' entropy


def test_temperature_one_is_the_limit_of_the_tempered_loss():
    """t = 1 skips the renormalisation (the outcomes already sum to 1); t = 1 ± 1e−9 agrees with it."""
    policy, ref = small_pairs(9)
    base = slpo(policy, ref, rejected_share=0.1, temper_by="none")[0].item()
    for t in (1 - 1e-9, 1 + 1e-9):
        tempered = slpo(policy, ref, rejected_share=0.1, temperature=t, temper_by="none")[0].item()
        assert tempered == pytest.approx(base, rel=1e-7)
    outcomes = slpo_log_outcomes(policy.chosen, policy.rejected)
    assert torch.allclose(outcomes.exp().sum(-1), torch.ones(B, dtype=DT))


VALUES = [-1e-6, -1e-3, -1.0, -10.0, -50.0, -104.0, -200.0, -1e3, -1e4]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("temper_by", TEMPER_BY)
@pytest.mark.parametrize("share, t", [(0.0, 1.0), (0.2, 1.0), (0.0, 0.3), (0.1, 200.0)])
def test_finite_loss_and_gradients_from_tiny_to_huge_log_probs(dtype, temper_by, share, t):
    """Every (policy, reference) combination of sequence log-probs in VALUES, both orders, lengths 1 to
    2000 tokens: finite loss, gradients and metrics. Pairs whose probabilities add to more than 1 are in
    the grid on purpose (e.g. both −1e−6: rounding can make that happen) and hit the clamp."""
    grid = list(itertools.product(VALUES, repeat=2))
    a, b = (torch.tensor(v, dtype=dtype) for v in zip(*grid))
    tokens = torch.randint(1, 2000, (2, len(grid)), generator=torch.Generator().manual_seed(0))
    for ra, rb in [(a, b), (b, a), (a.flip(0), b)]:
        policy = sums(a, b, dtype, requires_grad=True, tokens=tokens)
        loss, metrics = slpo(policy, sums(ra, rb, dtype, tokens=tokens), rejected_share=share, temperature=t,
                             temper_by=temper_by)
        g_w, g_l = torch.autograd.grad(loss, (policy.chosen, policy.rejected))
        assert loss.dtype == dtype and torch.isfinite(loss)
        assert torch.isfinite(g_w).all() and torch.isfinite(g_l).all()
        assert all(torch.isfinite(v) for v in metrics.values()), metrics


def test_the_bare_equation_does_not_move_long_responses_and_the_default_does():
    """Why the default tempers: at t = 1 the push is π_ref(y⁻), ~e^−150 for a 100-token response, exactly
    0 in float32; t = the mean length (the default) brings it to O(1e−3) per pair, as does t = 150."""
    tokens = ([100, 110], [95, 120])
    ref = sums([-150.0, -160.0], [-155.0, -170.0], torch.float32, tokens=tokens)
    policy = sums(ref.chosen, ref.rejected, torch.float32, requires_grad=True, tokens=tokens)
    g_w, _ = torch.autograd.grad(slpo(policy, ref, temper_by="none")[0], (policy.chosen, policy.rejected))
    assert torch.all(g_w == 0)
    for hp in ({}, {"temper_by": "none", "temperature": 150.0}):
        g_w, g_l = torch.autograd.grad(slpo(policy, ref, **hp)[0], (policy.chosen, policy.rejected))
        assert torch.all(g_w < -1e-4) and torch.all(g_l > 1e-4), hp


def test_metrics_are_plain_log_ratios_and_slpo_extras():
    policy, ref = small_pairs(11)
    _, m = slpo(policy, ref)
    lr_c, lr_r = (policy.chosen - ref.chosen).detach(), (policy.rejected - ref.rejected).detach()
    assert m["rewards/chosen"].item() == pytest.approx(lr_c.mean().item())  # β = 1: SLPO has no β
    assert m["rewards/margins"].item() == pytest.approx((lr_c - lr_r).mean().item())
    assert m["rewards/accuracies"].item() == pytest.approx((lr_c > lr_r).double().mean().item())
    assert m["logps/chosen"].item() == pytest.approx(policy.chosen.mean().item())
    naive_other = torch.log(1 - policy.chosen.exp() - policy.rejected.exp()).mean()
    assert m["slpo/logp_other"].item() == pytest.approx(naive_other.item(), rel=1e-12)
    pooled = torch.logaddexp(ref.chosen, ref.rejected)
    assert m["slpo/log_target_chosen"].item() == pytest.approx(pooled.mean().item())
    assert m["slpo/kl"].item() > 0
    assert not any(v.requires_grad for v in m.values())


def test_every_token_gets_a_gradient_through_the_sums():
    """On the shared per-token fixture (sums down to ~−30): finite, non-zero token gradients in float64."""
    per_token, mask = random_tokens(3)
    loss, _ = slpo(pair_logps(per_token, mask), reference(4))
    g = grad_of(loss, per_token)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


# --------------------------------------------------------------------------- registry and config


def test_slpo_is_registered_with_its_hyperparameters():
    defaults = {"rejected_share": 0.0, "temperature": 1.0, "temper_by": "length"}
    assert LOSSES["slpo"].hyperparameters == defaults
    assert not LOSSES["slpo"].inputs
    cfg = _cfg({"slpo_paper": {"loss": "slpo", "rejected_share": 0.2, "temperature": 1, "temper_by": "none"}})
    spec = method_spec(cfg, "slpo_paper")
    assert spec.hparams == {"rejected_share": 0.2, "temperature": 1.0, "temper_by": "none"}


@pytest.mark.parametrize("entry, key", [
    ({"slpo": {"rejected_share": 0.5}}, "methods.slpo.rejected_share"),  # α > ½ in the paper
    ({"slpo": {"rejected_share": -0.1}}, "methods.slpo.rejected_share"),
    ({"slpo": {"temperature": 0.0}}, "methods.slpo.temperature"),
    ({"slpo": {"temper_by": "sequence"}}, "methods.slpo.temper_by"),
    ({"slpo": {"beta": 0.1}}, "methods.slpo.beta"),
])
def test_slpo_config_errors_name_the_key(entry, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _cfg(entry)
