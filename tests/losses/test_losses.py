"""The losses against TRL (values and gradients to 1e-6) and their limit cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from trl_oracle import trl_dpo, trl_kto

from p2o.config import ConfigError, config_from_dict
from p2o.losses import LOSSES, PairLogps, dpo, get_loss, ipo, kto, method_spec, p2o, pkto

B, T = 6, 12
DT = torch.float64  # the oracle comparison is about arithmetic, not rounding
pytestmark = pytest.mark.filterwarnings("ignore")


def random_tokens(seed: int, rows: int = 2 * B):
    """Per-token log-probs (rows, T-1) zero off the completion, and the completion mask (rows, T)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(rows, T, dtype=torch.long)
    for r in range(rows):
        start = int(torch.randint(2, 5, (1,), generator=g))
        end = int(torch.randint(start + 1, T + 1, (1,), generator=g))
        mask[r, start:end] = 1
    per_token = -3 * torch.rand(rows, T - 1, generator=g, dtype=DT) * mask[:, 1:]
    return per_token.requires_grad_(), mask


def pair_logps(per_token: torch.Tensor, mask: torch.Tensor) -> PairLogps:
    sums, counts = per_token.sum(-1), mask[:, 1:].sum(-1).to(per_token.dtype)
    return PairLogps.from_sums(sums[:B], sums[B:], counts[:B], counts[B:])


def reference(seed: int) -> PairLogps:
    g = torch.Generator().manual_seed(seed)
    s = -20 * torch.rand(2 * B, generator=g, dtype=DT)
    n = torch.randint(1, T, (2 * B,), generator=g).to(s.dtype)
    return PairLogps.from_sums(s[:B], s[B:], n[:B], n[B:])


def grad_of(loss, x):
    (g,) = torch.autograd.grad(loss, x, retain_graph=True)
    return g


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_matches_trl(seed, beta):
    per_token, mask = random_tokens(seed)
    ref = reference(seed + 100)
    ours, metrics = dpo(pair_logps(per_token, mask), ref, beta=beta)
    theirs, trl_metrics = trl_dpo(per_token, mask, ref.chosen, ref.rejected, beta, "sigmoid")
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    assert torch.allclose(grad_of(ours, per_token), grad_of(theirs, per_token), atol=1e-6, rtol=0)
    for k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
              "logps/rejected"):
        assert metrics[k].item() == pytest.approx(trl_metrics[k], abs=1e-6), k


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_ipo_matches_trl(seed, tau):
    """IPO with per-token-averaged log-ratios (Azar et al. eq. 17; TRL's ``ipo``, β there = τ)."""
    per_token, mask = random_tokens(seed)
    ref = reference(seed + 100)
    ours, _ = ipo(pair_logps(per_token, mask), ref, tau=tau)
    # TRL averages (policy − reference) sums over the completion mask, so give it the reference
    # with our per-token means: ref_mean · n on the same mask.
    n = mask[:, 1:].sum(-1).to(per_token.dtype)
    ref_c, ref_r = ref.chosen_mean * n[:B], ref.rejected_mean * n[B:]
    ours_same_ref, _ = ipo(pair_logps(per_token, mask), PairLogps.from_sums(ref_c, ref_r, n[:B], n[B:]), tau=tau)
    theirs, _ = trl_dpo(per_token, mask, ref_c, ref_r, tau, "ipo")
    assert torch.allclose(ours_same_ref, theirs, atol=1e-6, rtol=0)
    assert torch.allclose(grad_of(ours_same_ref, per_token), grad_of(theirs, per_token), atol=1e-6, rtol=0)
    assert torch.isfinite(ours)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.0, 1.33)])
def test_kto_matches_trl(seed, weights):
    per_token, mask = random_tokens(seed)
    kl_per_token, kl_mask = random_tokens(seed + 7, rows=B)
    ref = reference(seed + 100)
    ref_kl = -10 * torch.rand(B, generator=torch.Generator().manual_seed(seed), dtype=DT) - 40
    policy = pair_logps(per_token, mask)
    policy_mismatched = kl_per_token.sum(-1)
    ours, metrics = kto(policy, ref, beta=0.5, desirable_weight=weights[0], undesirable_weight=weights[1],
                        ref_point="mismatched", policy_mismatched=policy_mismatched, reference_mismatched=ref_kl)
    theirs, trl_metrics = trl_kto(per_token, mask, torch.cat([ref.chosen, ref.rejected]), kl_per_token, kl_mask,
                                  ref_kl, 0.5, *weights)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    assert torch.allclose(grad_of(ours, per_token), grad_of(theirs, per_token), atol=1e-6, rtol=0)
    assert metrics["kl"].item() == pytest.approx(trl_metrics["kl"], abs=1e-6)
    assert metrics["kl"].item() > 0  # the mismatched log-ratios are positive here: z0 is not clamped


def test_kto_reference_point_is_clamped_and_carries_no_gradient():
    per_token, mask = random_tokens(3)
    policy, ref = pair_logps(per_token, mask), reference(5)
    policy_mismatched = torch.full((B,), -50.0, requires_grad=True)  # far below the reference: estimate < 0
    loss, metrics = kto(policy, ref, policy_mismatched=policy_mismatched, reference_mismatched=torch.full((B,), -10.0))
    assert metrics["kl"].item() == 0.0
    loss.backward()
    assert policy_mismatched.grad is None
    # the original code's option: batch mean of the chosen token-mean log-ratio, clamped, detached
    _, m = kto(policy, ref, ref_point="chosen_token_mean")
    expected = (policy.chosen_mean - ref.chosen_mean).mean().clamp(min=0)
    assert m["kl"].item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="policy_mismatched"):
        kto(policy, ref, ref_point="mismatched")


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def one_pair(chosen_lr: float, rejected_lr: float, n_chosen: float = 4.0, n_rejected: float = 4.0):
    """A one-pair policy with the given sequence log-ratios against a reference of zeros."""
    c, r, n_c, n_r = (torch.tensor([v], dtype=DT) for v in (chosen_lr, rejected_lr, n_chosen, n_rejected))
    return PairLogps.from_sums(c, r, n_c, n_r), PairLogps.from_sums(torch.zeros_like(c), torch.zeros_like(r), n_c, n_r)


def test_kto_subtracts_z0_from_r_inside_beta_as_the_paper_and_trl_not_from_beta_r():
    """Ours is β·(r − z₀) (KTO paper eq. 7, TRL); the original code's β·r − z₀ is not what we compute.
    r⁺ = 2, r⁻ = −1, z₀ = 1, β = 0.5. PKTO uses the same units: u⁺ = β(r⁺ − z₀), u⁻ = β(z₀ − r⁻)."""
    policy, ref = one_pair(2.0, -1.0)
    z = {"policy_mismatched": torch.tensor([1.0], dtype=DT), "reference_mismatched": torch.tensor([0.0], dtype=DT)}
    loss, metrics = kto(policy, ref, beta=0.5, **z)
    assert metrics["kl"].item() == 1.0
    ours = ((1 - sig(0.5 * (2 - 1))) + (1 - sig(0.5 * (1 - -1)))) / 2
    original = ((1 - sig(0.5 * 2 - 1)) + (1 - sig(1 - 0.5 * -1))) / 2
    assert loss.item() == pytest.approx(ours, abs=1e-12)
    assert loss.item() != pytest.approx(original, abs=1e-3)
    # PKTO at ρ = 1, λ = 0, λ_U = 2 (so that z does not cancel): s = 0.5·(2 − 1) + 2·0.5·(1 + 1) = 2.5
    p_loss, _ = pkto(policy, ref, policy.detach(), beta=0.5, kl_coef=0.0, undesirable_weight=2.0, **z)
    assert p_loss.item() == pytest.approx(-math.log(sig(2.5)), abs=1e-12)


@pytest.mark.parametrize("n", [1.0, 10.0])
def test_chosen_token_mean_reference_point_is_per_token_while_r_is_per_sequence(n):
    """``ref_point: chosen_token_mean`` (the original's) subtracts a per-token z₀ from a sequence-sum r:
    every chosen token at log-ratio 0.3 gives z₀ = 0.3 whatever the length, while r⁺ = 0.3·n. Pinned as
    is: at n = 1 z₀ cancels r⁺ exactly, at n = 10 it removes a tenth of it."""
    policy, ref = one_pair(0.3 * n, -0.1 * n, n_chosen=n, n_rejected=n)
    loss, metrics = kto(policy, ref, beta=0.5, ref_point="chosen_token_mean")
    assert metrics["kl"].item() == pytest.approx(0.3, abs=1e-12)
    expected = ((1 - sig(0.5 * (0.3 * n - 0.3))) + (1 - sig(0.5 * (0.3 + 0.1 * n)))) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def snapshot_like(policy: PairLogps, seed: int | None) -> PairLogps:
    """The policy itself (ρ = 1) or a perturbed copy (ρ ≠ 1), detached."""
    snap = policy.detach()
    if seed is None:
        return snap
    g = torch.Generator().manual_seed(seed)
    dc, dr = 0.3 * torch.randn(B, generator=g, dtype=DT), 0.3 * torch.randn(B, generator=g, dtype=DT)
    return PairLogps(snap.chosen + dc * snap.chosen_tokens, snap.rejected + dr * snap.rejected_tokens,
                     snap.chosen_mean + dc, snap.rejected_mean + dr, snap.chosen_tokens, snap.rejected_tokens)


@pytest.mark.parametrize("ratio", ["pair", "per_side"])
def test_p2o_limit_is_dpo(ratio):
    """ε → ∞, λ = 0, ρ = 1: P²O's loss is DPO's, and so is its gradient through the margin Δh.

    The ratio adds one more gradient path, through the token-mean log-probs (DPO does not use
    them), checked here analytically: ∂L/∂mean⁺ = −σ(−Δh)·Δh·n⁺/(n⁺ + n⁻) / B with one ratio per
    pair, −σ(−Δh)·h⁺ / B with one ratio per side.
    """
    torch.manual_seed(0)
    sums = (-30 * torch.rand(2 * B, dtype=DT)).requires_grad_()
    means = (-3 * torch.rand(2 * B, dtype=DT)).requires_grad_()
    n = torch.randint(1, 20, (2 * B,)).to(sums.dtype)
    policy = PairLogps(sums[:B], sums[B:], means[:B], means[B:], n[:B], n[B:])
    ref = reference(1)
    loss, metrics = p2o(policy, ref, snapshot_like(policy, None), beta=0.5, eps_clip=1e9, kl_coef=0.0, ratio=ratio)
    dpo_loss, _ = dpo(policy, ref, beta=0.5)
    assert torch.allclose(loss, dpo_loss, atol=1e-12)
    g_sums, g_means = torch.autograd.grad(loss, (sums, means))
    d_sums, = torch.autograd.grad(dpo_loss, sums)
    assert torch.allclose(g_sums, d_sums, atol=1e-12)
    h_chosen = 0.5 * (policy.chosen - ref.chosen).detach()
    margin = h_chosen - 0.5 * (policy.rejected - ref.rejected).detach()
    advantage = margin * n[:B] / (n[:B] + n[B:]) if ratio == "pair" else h_chosen
    expected = -torch.sigmoid(-margin) * advantage / B
    assert torch.allclose(g_means[:B], expected, atol=1e-12)
    assert metrics["trust/clip_frac"].item() == 0.0


def test_p2o_clipping_cuts_the_ratio_gradient():
    """With Δh > 0 and ρ > 1 + ε the clipped branch is active: no gradient reaches ρ."""
    sums = torch.tensor([-10.0, -30.0], requires_grad=True)  # chosen, rejected: Δh > 0
    means = torch.tensor([-1.0, -3.0], requires_grad=True)
    n = torch.tensor([10.0, 10.0])
    policy = PairLogps(sums[:1], sums[1:], means[:1], means[1:], n[:1], n[1:])
    ref = PairLogps.from_sums(torch.tensor([-12.0]), torch.tensor([-28.0]), n[:1], n[1:])
    snap = PairLogps(*(t.detach() for t in (sums[:1], sums[1:], means[:1] - 0.5, means[1:] - 0.5, n[:1], n[1:])))
    loss, metrics = p2o(policy, ref, snap, eps_clip=0.15, kl_coef=0.0)
    g_sums, g_means = torch.autograd.grad(loss, (sums, means))
    assert metrics["trust/clip_frac"].item() == 1.0
    assert torch.all(g_means == 0)
    assert g_sums[0] < 0 < g_sums[1]  # the margin is still pushed, scaled by 1 + ε


@pytest.mark.parametrize("clip", ["per_term", "sum"])
@pytest.mark.parametrize("ratio", ["pair", "per_side"])
@pytest.mark.parametrize("snap_seed", [None, 11, 12])
def test_pkto_at_zero_reference_point_equals_p2o(ratio, clip, snap_seed):
    per_token, mask = random_tokens(4)
    policy, ref = pair_logps(per_token, mask), reference(9)
    snap = snapshot_like(policy, snap_seed)
    hp = {"beta": 0.5, "eps_clip": 0.15, "kl_coef": 0.08, "ratio": ratio, "clip": clip}
    a, ma = p2o(policy, ref, snap, **hp)
    b, _ = pkto(policy, ref, snap, ref_point="zero", desirable_weight=1.0, undesirable_weight=1.0, **hp)
    assert torch.allclose(a, b, atol=1e-12)
    assert torch.allclose(grad_of(a, per_token), grad_of(b, per_token), atol=1e-12)
    if snap_seed is not None:
        assert ma["trust/ratio_chosen"].item() != pytest.approx(1.0)


def test_pkto_pushes_the_rejected_log_ratio_down():
    """The original's ΔU = λ_D ρ⁺u⁺ − λ_U ρ⁻u⁻ with u⁻ = z − h⁻ rewarded a larger rejected
    log-ratio; ours penalises it: through the margin, ∂L/∂log π(y⁻) > 0 and ∂L/∂log π(y⁺) < 0."""
    torch.manual_seed(1)
    sums = (-30 * torch.rand(2 * B, dtype=DT)).requires_grad_()
    means = sums.detach() / 10
    n = torch.full((2 * B,), 10.0, dtype=DT)
    policy = PairLogps(sums[:B], sums[B:], means[:B], means[B:], n[:B], n[B:])
    ref = reference(6)
    loss, metrics = pkto(policy, ref, policy.detach(), ref_point="chosen_token_mean", kl_coef=0.0)
    g = grad_of(loss, sums)
    assert torch.all(g[B:] > 0) and torch.all(g[:B] < 0)

    # the original sign, written out: the rejected gradient flips
    z = 0.5 * metrics["kl"]
    h_c, h_r = 0.5 * (policy.chosen - ref.chosen), 0.5 * (policy.rejected - ref.rejected)
    original = -F.logsigmoid((h_c - z) - (z - h_r)).mean()
    assert torch.all(grad_of(original, sums)[B:] < 0)


def test_kl_penalty_is_zero_with_zero_gradient_at_the_reference():
    per_token, mask = random_tokens(8)
    policy = pair_logps(per_token, mask)
    ref = policy.detach()
    loss_kl, m = p2o(policy, ref, policy.detach(), kl_coef=1.0)
    loss_0, _ = p2o(policy, ref, policy.detach(), kl_coef=0.0)
    assert m["trust/kl_penalty"].item() == 0.0
    assert torch.allclose(grad_of(loss_kl, per_token), grad_of(loss_0, per_token), atol=1e-12)


# --------------------------------------------------------------------------- registry and config


def _cfg(methods):
    return config_from_dict({"data": {"datasets": {"hh": {"format": "hh-rlhf", "source": "x.jsonl"}}},
                             "methods": methods})


def test_registry_lists_valid_names_on_unknown_loss():
    with pytest.raises(KeyError, match="valid losses: .*dpo.*p2o"):
        get_loss("dpo2")
    assert set(LOSSES) >= {"dpo", "ipo", "kto", "p2o", "pkto"}


def test_method_spec_fills_defaults_and_merges_overrides():
    cfg = _cfg({"p2o": {"eps_clip": 0.2, "inner_steps": 3}, "strict": {"loss": "dpo", "beta": 0.1}})
    spec = method_spec(cfg, "p2o")
    assert spec.inner_steps == 3 and spec.inputs == ("snapshot",)
    assert spec.hparams == {"beta": 0.5, "eps_clip": 0.2, "kl_coef": 0.08, "ratio": "pair", "clip": "sum",
                            "kl_estimator": "k3"}
    assert method_spec(cfg, "strict").hparams == {"beta": 0.1}
    assert not method_spec(cfg, "strict").needs("policy_mismatched")
    assert method_spec(_cfg({"kto": {}}), "kto").needs("policy_mismatched")
    assert not method_spec(_cfg({"kto": {"ref_point": "zero"}}), "kto").inputs


@pytest.mark.parametrize("entry, key", [
    ({"p2o": {"eps_clip": 1.5}}, "methods.p2o.eps_clip"),
    ({"p2o": {"eps_clip": 0.0}}, "methods.p2o.eps_clip"),
    ({"dpo": {"beta": 0.0}}, "methods.dpo.beta"),
    ({"dpo": {"beta": -1}}, "methods.dpo.beta"),
    ({"dpo": {"eps_clip": 0.1}}, "methods.dpo.eps_clip"),
    ({"kto": {"ref_point": "median"}}, "methods.kto.ref_point"),
    ({"rso": {}}, "methods.rso.loss"),
    ({"p2o": {"inner_steps": 0}}, "methods.p2o.inner_steps"),
    ({"dpo": {"beta": "high"}}, "methods.dpo.beta"),
])
def test_method_config_errors_name_the_key(entry, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _cfg(entry)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_registered_loss_gives_finite_loss_and_gradients(name):
    per_token, mask = random_tokens(10)
    policy, ref = pair_logps(per_token, mask), reference(11)
    spec = method_spec(_cfg({name: {}}), name)
    kl = torch.randn(B, dtype=DT) - 10
    seq_kl = ((per_token[:B] ** 2).sum(-1), (per_token[B:] ** 2).sum(-1))  # TDPO's; carries a gradient
    available = {"snapshot": policy.detach(), "policy_mismatched": kl, "reference_mismatched": kl - 0.5,
                 "seq_kl": seq_kl}
    loss, metrics = LOSSES[name].fn(policy, ref, **{n: available[n] for n in spec.inputs}, **spec.hparams)
    g = grad_of(loss, per_token)
    assert torch.isfinite(loss) and torch.isfinite(g).all() and g.abs().sum() > 0
    assert all(torch.isfinite(v) for v in metrics.values())
    assert {"rewards/margins", "rewards/accuracies", "logps/chosen"} <= set(metrics)


@pytest.mark.parametrize("ratio, clip, z_matters", [("pair", "sum", False), ("per_side", "sum", True),
                                                     ("per_side", "per_term", True)])
def test_pkto_reference_point_matters_only_through_unequal_ratios(ratio, clip, z_matters):
    """ΔU = λ_D ρ⁺(h⁺ − z) + λ_U ρ⁻(z − h⁻): with λ_D = λ_U and one min over the sum the z terms
    cancel unless ρ⁺ ≠ ρ⁻, which is why PKTO keeps the original's per-side ratios by default."""
    per_token, mask = random_tokens(12)
    policy, ref = pair_logps(per_token, mask), reference(13)
    snap = snapshot_like(policy, 14)
    kl_low, kl_high = torch.full((B,), -10.0, dtype=DT), torch.full((B,), -9.0, dtype=DT)
    a, _ = pkto(policy, ref, snap, ratio=ratio, clip=clip, policy_mismatched=kl_high,
                reference_mismatched=kl_low)  # z0 = 1
    b, _ = pkto(policy, ref, snap, ratio=ratio, clip=clip, ref_point="zero")
    assert (not torch.allclose(a, b, atol=1e-9)) == z_matters
