"""P²O's and PKTO's trust region: where the min is taken (``clip``), what ``trust/*`` measure, and the
KL penalty, on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from p2o.losses import PairLogps, clipped_surrogate, p2o, pkto

B = 6
DT = torch.float64
EPS = 0.15


def logps(chosen, rejected, chosen_mean, rejected_mean, chosen_tokens, rejected_tokens) -> PairLogps:
    return PairLogps(*(torch.as_tensor(t, dtype=DT) for t in (chosen, rejected, chosen_mean, rejected_mean,
                                                               chosen_tokens, rejected_tokens)))


def random_triple(seed: int, spread: float):
    """A policy whose sums and means are separate leaves, a reference, and a snapshot whose
    token-mean log-probs differ from the policy's by ``spread``·N(0, 1) per side."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(1, 20, (2 * B,), generator=g).to(DT)
    sums = (-30 * torch.rand(2 * B, generator=g, dtype=DT)).requires_grad_()
    means = (-3 * torch.rand(2 * B, generator=g, dtype=DT)).requires_grad_()
    policy = PairLogps(sums[:B], sums[B:], means[:B], means[B:], n[:B], n[B:])
    ref_sums = -30 * torch.rand(2 * B, generator=g, dtype=DT)
    reference = PairLogps.from_sums(ref_sums[:B], ref_sums[B:], n[:B], n[B:])
    shift = spread * torch.randn(2 * B, generator=g, dtype=DT)
    snapshot = PairLogps(sums.detach()[:B], sums.detach()[B:], means.detach()[:B] - shift[:B],
                         means.detach()[B:] - shift[B:], n[:B], n[B:])
    return policy, reference, snapshot, (sums, means)


# --------------------------------------------------------------------------- per_term against sum


@pytest.mark.parametrize("clip", ["per_term", "sum"])
def test_per_term_clip_stops_the_push_on_an_escaped_ratio_that_sum_lets_through(clip):
    """The issue's example: u⁺ = u⁻ = 1, ρ⁺ = 1.5, ρ⁻ = 0.4, ε = 0.15. The sum's min is the unclipped
    1.9 < 2.0, so −log σ(s) still pushes ρ⁺ further out and no term counts as clipped; per term,
    ρ⁺'s term is held at 1.15 (no gradient to log ρ⁺) and one of the two terms is clipped."""
    log_rho = torch.tensor([math.log(1.5), math.log(0.4)], dtype=DT, requires_grad=True)
    u = torch.ones(1, dtype=DT)
    s, clipped = clipped_surrogate(u, u, log_rho[:1].exp(), log_rho[1:].exp(), EPS, clip)
    g_pos, g_neg = torch.autograd.grad(-F.logsigmoid(s).mean(), log_rho)[0]
    if clip == "per_term":
        assert s.item() == pytest.approx(1.15 + 0.4)
        assert g_pos.item() == 0.0 and g_neg.item() < 0  # ρ⁻ < 1 − ε with u⁻ > 0: PPO keeps its gradient
        assert clipped.float().mean().item() == 0.5
    else:
        assert s.item() == pytest.approx(1.9)
        assert g_pos.item() < 0  # descending the loss raises ρ⁺ beyond 1 + ε
        assert clipped.float().mean().item() == 0.0

    # the same through PKTO (z = 0, λ_D = λ_U = 1: u⁺ = h⁺, u⁻ = −h⁻), β = 0.5, λ = 0
    means = torch.tensor([math.log(1.5), math.log(0.4)], dtype=DT, requires_grad=True)
    policy = logps([2.0], [-2.0], means[:1], means[1:], [4.0], [4.0])
    reference = logps([0.0], [0.0], [0.0], [0.0], [4.0], [4.0])
    snapshot = logps([2.0], [-2.0], [0.0], [0.0], [4.0], [4.0])
    loss, metrics = pkto(policy, reference, snapshot, ref_point="zero", kl_coef=0.0, eps_clip=EPS, clip=clip)
    g_pos, _ = torch.autograd.grad(loss, means)[0]
    assert (g_pos.item() == 0.0) == (clip == "per_term")
    assert metrics["trust/clip_frac"].item() == (0.5 if clip == "per_term" else 0.0)
    expected = (abs(math.log(1.5)) + abs(math.log(0.4))) / 2
    assert metrics["trust/abs_log_ratio"].item() == pytest.approx(expected)


@pytest.mark.parametrize("ratio", ["pair", "per_side"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_term_inside_the_trust_region_equals_the_unclipped_objective(ratio, seed):
    """With every ρ in [1 − ε, 1 + ε] the per-term surrogate is ρ⁺U⁺ + ρ⁻U⁻ in value and gradient,
    and nothing counts as clipped."""
    policy, reference, snapshot, leaves = random_triple(seed, spread=0.02)
    hp = {"beta": 0.5, "eps_clip": EPS, "kl_coef": 0.08, "ratio": ratio, "clip": "per_term", "ref_point": "zero",
          "desirable_weight": 1.0, "undesirable_weight": 1.5}
    loss, metrics = pkto(policy, reference, snapshot, **hp)
    rho_pos = torch.exp(policy.chosen_mean - snapshot.chosen_mean)
    rho_neg = torch.exp(policy.rejected_mean - snapshot.rejected_mean)
    if ratio == "pair":
        n_c, n_r = policy.chosen_tokens, policy.rejected_tokens
        rho_pos = rho_neg = torch.exp((n_c * (policy.chosen_mean - snapshot.chosen_mean)
                                       + n_r * (policy.rejected_mean - snapshot.rejected_mean)) / (n_c + n_r))
    assert ((rho_pos - 1).abs() < EPS).all() and ((rho_neg - 1).abs() < EPS).all()
    h_c, h_r = 0.5 * (policy.chosen - reference.chosen), 0.5 * (policy.rejected - reference.rejected)
    plain = -F.logsigmoid(rho_pos * h_c + rho_neg * 1.5 * (-h_r)).mean()
    assert torch.allclose(loss, plain + 0.08 * metrics["trust/kl_penalty"], atol=1e-12)
    assert metrics["trust/clip_frac"].item() == 0.0
    # gradients, without the KL penalty (same in both): the surrogate's against the unclipped objective's
    no_kl, _ = pkto(policy, reference, snapshot, **{**hp, "kl_coef": 0.0})
    for a, b in zip(torch.autograd.grad(no_kl, leaves, retain_graph=True), torch.autograd.grad(plain, leaves)):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("ratio", ["pair", "per_side"])
@pytest.mark.parametrize("seed", [7, 9, 11])
def test_p2o_default_is_the_pre_change_formula_bit_for_bit(ratio, seed):
    """P²O at its defaults (``clip="sum"``) computes exactly what it did before ``clip`` existed:
    loss, gradients and ``trust/clip_frac``, written out here op for op, are bit-identical."""
    policy, reference, snapshot, leaves = random_triple(seed, spread=0.3)
    loss, metrics = p2o(policy, reference, snapshot, ratio=ratio)

    beta, eps, kl_coef = 0.5, 0.15, 0.08
    d_chosen = policy.chosen_mean - snapshot.chosen_mean.detach()
    d_rejected = policy.rejected_mean - snapshot.rejected_mean.detach()
    n_c, n_r = policy.chosen_tokens, policy.rejected_tokens
    if ratio == "pair":
        rho_pos = rho_neg = torch.exp((n_c * d_chosen + n_r * d_rejected) / (n_c + n_r).clamp(min=1))
    else:
        rho_pos, rho_neg = torch.exp(d_chosen), torch.exp(d_rejected)
    u_pos = beta * (policy.chosen - reference.chosen)
    u_neg = -(beta * (policy.rejected - reference.rejected))
    unclipped = rho_pos * u_pos + rho_neg * u_neg
    clipped = rho_pos.clamp(1 - eps, 1 + eps) * u_pos + rho_neg.clamp(1 - eps, 1 + eps) * u_neg
    surrogate = torch.minimum(unclipped, clipped)
    m = (n_c * (policy.chosen_mean - reference.chosen_mean)
         + n_r * (policy.rejected_mean - reference.rejected_mean)) / (n_c + n_r).clamp(min=1)
    old = -F.logsigmoid(surrogate).mean() + kl_coef * (torch.exp(-m) - 1 + m).mean()

    assert torch.equal(loss, old)
    for a, b in zip(torch.autograd.grad(loss, leaves, retain_graph=True), torch.autograd.grad(old, leaves)):
        assert torch.equal(a, b)
    if ratio == "pair":  # one ratio per pair: a clipped pair holds both its terms, as the old per-pair count
        assert metrics["trust/clip_frac"].item() == (clipped < unclipped).float().mean().item()
    assert 0 < metrics["trust/clip_frac"].item() < 1  # the check covers both branches
    assert not torch.equal(loss, p2o(policy, reference, snapshot, ratio=ratio, clip="per_term")[0])  # and sees clip


def test_p2o_per_term_with_one_ratio_per_pair_is_not_the_papers_min():
    """Why P²O keeps ``clip="sum"``: with ρ⁺ = ρ⁻ = ρ per term gives min(ρh⁺, clip(ρ)h⁺) +
    min(−ρh⁻, −clip(ρ)h⁻), not the paper's min(ρΔh, clip(ρ)Δh), once h⁺ and h⁻ share a sign
    outside the region: h⁺ = 1, h⁻ = 0.5, ρ = 1.5, ε = 0.15 gives 0.4 against 0.575."""
    rho, h_pos, h_neg = torch.tensor([1.5], dtype=DT), torch.tensor([1.0], dtype=DT), torch.tensor([0.5], dtype=DT)
    per_term, _ = clipped_surrogate(h_pos, -h_neg, rho, rho, EPS, "per_term")
    summed, _ = clipped_surrogate(h_pos, -h_neg, rho, rho, EPS, "sum")
    paper = torch.minimum(rho * (h_pos - h_neg), rho.clamp(1 - EPS, 1 + EPS) * (h_pos - h_neg))
    assert summed.item() == pytest.approx(paper.item()) == pytest.approx(0.575)
    assert per_term.item() == pytest.approx(0.4)
    # with opposite signs (h⁺ > 0 > h⁻) the two agree
    agree, _ = clipped_surrogate(h_pos, h_neg, rho, rho, EPS, "per_term")
    assert agree.item() == pytest.approx(torch.minimum(rho * 1.5, rho.clamp(1 - EPS, 1 + EPS) * 1.5).item())


@pytest.mark.parametrize("clip, expected", [("sum", [True, False]), ("per_term", [True, False])])
def test_clip_frac_counts_the_ratio_terms_held_at_their_clipped_ratio(clip, expected):
    """One definition for both modes: a term counts when the selected branch evaluates it at
    clip(ρ) ≠ ρ. ρ⁺ = 1.5 escaped and ρ⁻ = 1 inside: in ``sum`` the clipped branch is selected
    (2.15 < 2.5) but only ρ⁺'s term is held; ``per_term`` counts the same term."""
    u = torch.ones(1, dtype=DT)
    _, clipped = clipped_surrogate(u, u, torch.tensor([1.5], dtype=DT), torch.tensor([1.0], dtype=DT), EPS, clip)
    assert clipped.squeeze(1).tolist() == expected
    with pytest.raises(ValueError, match="per_term"):
        clipped_surrogate(u, u, u, u, EPS, "median")


# --------------------------------------------------------------------------- the KL penalty


def two_pairs(chosen_mean_lr, rejected_mean_lr, chosen_tokens=(2.0, 4.0), rejected_tokens=(3.0, 4.0)):
    """Policy and reference whose token-mean log-ratios are the given numbers (reference means 0)."""
    means = torch.tensor([*chosen_mean_lr, *rejected_mean_lr], dtype=DT, requires_grad=True)
    n_c, n_r = torch.tensor(chosen_tokens, dtype=DT), torch.tensor(rejected_tokens, dtype=DT)
    policy = PairLogps(means[:2] * n_c, means[2:] * n_r, means[:2], means[2:], n_c, n_r)
    reference = PairLogps.from_sums(torch.zeros(2, dtype=DT), torch.zeros(2, dtype=DT), n_c, n_r)
    return policy, reference, means


def test_p2o_kl_penalty_is_k3_of_the_token_mean_log_ratio_over_both_responses():
    """Ours (``kl_estimator: k3``): m = token-mean log-ratio over both responses of a pair,
    penalty = mean over pairs of e^{−m} − 1 + m. Pair 1: (2·0.5 + 3·(−0.25)) / 5 = 0.05; pair 2:
    (4·0.2 + 4·0.6) / 8 = 0.4."""
    policy, reference, _ = two_pairs((0.5, 0.2), (-0.25, 0.6))
    k3 = [math.exp(-m) - 1 + m for m in (0.05, 0.4)]
    with_kl, metrics = p2o(policy, reference, policy.detach(), kl_coef=1.0)
    without, _ = p2o(policy, reference, policy.detach(), kl_coef=0.0)
    assert metrics["trust/kl_penalty"].item() == pytest.approx(sum(k3) / 2, abs=1e-15)
    assert (with_kl - without).item() == pytest.approx(sum(k3) / 2, abs=1e-12)
    # the rejected responses count: moving them moves the penalty
    policy2, reference2, _ = two_pairs((0.5, 0.2), (0.0, 0.0))
    assert p2o(policy2, reference2, policy2.detach())[1]["trust/kl_penalty"].item() != pytest.approx(sum(k3) / 2)


def test_kl_estimator_original_is_the_clamped_batch_mean_of_the_chosen_token_mean_log_ratio():
    """The original code's term: max(0, mean_i[token-mean log-ratio of y⁺_i]), chosen side only,
    with a gradient of 1/B on each chosen token mean where positive (so not zero at π = π_ref)."""
    policy, reference, means = two_pairs((0.5, 0.2), (-0.25, 0.6))
    _, metrics = p2o(policy, reference, policy.detach(), kl_estimator="original")
    assert metrics["trust/kl_penalty"].item() == pytest.approx(0.35, abs=1e-15)
    policy2, reference2, _ = two_pairs((0.5, 0.2), (3.0, -3.0))  # the rejected side is ignored
    assert p2o(policy2, reference2, policy2.detach(), kl_estimator="original")[1]["trust/kl_penalty"].item() \
        == pytest.approx(0.35, abs=1e-15)
    below, _, _ = two_pairs((-0.5, 0.2), (0.0, 0.0))
    assert p2o(below, reference, below.detach(), kl_estimator="original")[1]["trust/kl_penalty"].item() == 0.0
    with_kl, _ = p2o(policy, reference, policy.detach(), kl_estimator="original", kl_coef=1.0)
    without, _ = p2o(policy, reference, policy.detach(), kl_estimator="original", kl_coef=0.0)
    g = torch.autograd.grad(with_kl - without, means)[0]
    assert torch.allclose(g, torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=DT), atol=1e-12)
    # at π = π_ref it still pushes the chosen log-probs down (k3's gradient there is zero)
    for estimator, expected in (("original", [0.5, 0.5, 0.0, 0.0]), ("k3", [0.0] * 4)):
        at_ref, reference0, means0 = two_pairs((0.0, 0.0), (0.0, 0.0))
        kl = (p2o(at_ref, reference0, at_ref.detach(), kl_estimator=estimator, kl_coef=1.0)[0]
              - p2o(at_ref, reference0, at_ref.detach(), kl_estimator=estimator, kl_coef=0.0)[0])
        g = torch.autograd.grad(kl, means0)[0]
        assert torch.allclose(g, torch.tensor(expected, dtype=DT), atol=1e-12), estimator
