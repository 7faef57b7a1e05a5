"""TDPO₁ and TDPO₂ (Zeng et al. 2024): the sequential KL against a naive per-position loop in float64,
the losses against their formulas and the authors' expression, TDPO₂'s stop-gradient, the DPO limit at
π = π_ref, and training steps on a tiny model with the reference model run inside the step.

TDPO is not in TRL; the oracle for the sequential KL is a Python loop over rows and response positions
of full-softmax KL(π_ref ‖ π) in float64.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from tiny_models import split_of
from test_losses import DT, B, _cfg, grad_of, pair_logps, random_tokens, reference

from p2o.config import OptimConfig
from p2o.io import JsonlLog
from p2o.model.logps import pair_logps as model_pair_logps
from p2o.model.logps import pair_logps_with_seq_kl
from p2o.losses import LOSSES, MethodSpec, dpo, method_spec, tdpo1, tdpo2
from p2o.model.tokenize import collate_pairs
from p2o.training.inputs import needs_reference_model
from p2o.training.preference import train_preference

pytestmark = pytest.mark.filterwarnings("ignore")


def perturbed(m, scale: float = 0.05, seed: int = 1):
    """A copy of ``m`` with every weight moved by Gaussian noise: a policy that has left the reference."""
    other = copy.deepcopy(m)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return other


def naive_seq_kl(policy_model, reference_model, batch) -> torch.Tensor:
    """Σ over response positions of Σ_v π_ref(v) (log π_ref(v) − log π(v)), float64, one row at a time."""
    rows = batch.pairs
    out = []
    for r in range(rows.input_ids.shape[0]):
        kw = {"input_ids": rows.input_ids[r:r + 1], "attention_mask": rows.attention_mask[r:r + 1],
              "position_ids": rows.position_ids[r:r + 1]}
        with torch.no_grad():
            logp = policy_model(**kw).logits[0].double().log_softmax(-1)
            logq = reference_model(**kw).logits[0].double().log_softmax(-1)
        total = torch.zeros((), dtype=torch.float64)
        for t in range(rows.input_ids.shape[1] - 1):
            if rows.response_mask[r, t + 1]:  # position t predicts response token t + 1
                for v in range(logq.shape[-1]):
                    total = total + logq[t, v].exp() * (logq[t, v] - logp[t, v])
        out.append(total)
    return torch.stack(out)


# --------------------------------------------------------------------------- the sequential KL


def test_sequential_kl_matches_a_naive_per_position_loop(tokenizer, model):
    policy_model = perturbed(model)
    batch = collate_pairs(split_of(tokenizer), [0, 1, 2], tokenizer.pad_token_id)
    policy, (kl_c, kl_r), dist = pair_logps_with_seq_kl(policy_model, model, batch)
    in_step = dist.pair_logps
    expected = naive_seq_kl(policy_model, model, batch)
    ours = torch.cat((kl_c, kl_r)).double()
    assert torch.all(expected > 1e-3)  # the policy really has moved
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-5), (ours, expected)
    # the log-probs are the ones pair_logps gives, the in-step reference's too
    with torch.no_grad():
        alone, ref_alone = model_pair_logps(policy_model, batch), model_pair_logps(model, batch)
    for a, b in ((policy, alone), (in_step, ref_alone)):
        assert torch.allclose(a.chosen, b.chosen, atol=1e-5)
        assert torch.allclose(a.rejected, b.rejected, atol=1e-5)
        assert torch.equal(a.chosen_tokens, b.chosen_tokens)
    assert kl_c.requires_grad and not in_step.chosen.requires_grad
    # a second call on the same batch reuses the reference's distribution: the same numbers
    again, (kl_c2, kl_r2), dist2 = pair_logps_with_seq_kl(policy_model, dist, batch)
    assert dist2 is dist and torch.equal(kl_c2, kl_c) and torch.equal(kl_r2, kl_r)
    assert torch.equal(again.chosen, policy.chosen)


def test_one_policy_forward_and_one_reference_forward(tokenizer, model):
    policy_model = perturbed(model)
    calls = []
    hooks = [policy_model.base_model.register_forward_hook(lambda *_: calls.append("policy")),
             model.base_model.register_forward_hook(lambda *_: calls.append("reference"))]
    try:
        batch = collate_pairs(split_of(tokenizer), [0, 1], tokenizer.pad_token_id)
        pair_logps_with_seq_kl(policy_model, model, batch)
    finally:
        for h in hooks:
            h.remove()
    assert sorted(calls) == ["policy", "reference"]


def test_at_the_reference_the_kl_is_zero_and_tdpo_is_dpo(tokenizer, model):
    """π = π_ref: D = 0 exactly (identical logits), TDPO₁ and TDPO₂ have DPO's loss, and, since the KL is
    at its minimum (∂KL/∂z = softmax(z) − q = 0), DPO's parameter gradient too."""
    policy_model = copy.deepcopy(model)
    batch = collate_pairs(split_of(tokenizer), [0, 1, 2, 3], tokenizer.pad_token_id)
    with torch.no_grad():
        ref = model_pair_logps(model, batch)

    def grads(loss_fn):
        policy_model.zero_grad()
        policy, seq_kl, _ = pair_logps_with_seq_kl(policy_model, model, batch)
        loss, metrics = loss_fn(policy, seq_kl)
        loss.backward()
        return loss.detach(), seq_kl, [p.grad.clone() for p in policy_model.parameters()]

    l_dpo, _, g_dpo = grads(lambda pol, kl: dpo(pol, ref, beta=0.1))
    for fn in (tdpo1, tdpo2):
        loss, (kl_c, kl_r), g = grads(lambda pol, kl: fn(pol, ref, beta=0.1, seq_kl=kl))
        assert torch.all(kl_c == 0) and torch.all(kl_r == 0)
        assert torch.allclose(loss, l_dpo, atol=1e-7)
        assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(g, g_dpo))
    assert any(a.abs().sum() > 0 for a in g_dpo)


# --------------------------------------------------------------------------- the losses


def tdpo_inputs(seed: int):
    per_token, mask = random_tokens(seed)
    g = torch.Generator().manual_seed(seed + 50)
    kl = (3 * torch.rand(2 * B, generator=g, dtype=DT)).requires_grad_()
    return per_token, pair_logps(per_token, mask), reference(seed + 100), kl


def authors_tdpo(policy, ref, kl_c, kl_r, beta, alpha, if_tdpo2):
    """The expression of ``tdpo_loss`` in the authors' ``trainers.py`` (margins and KLs as inputs)."""
    chosen_margin, rejected_margin = policy.chosen - ref.chosen, policy.rejected - ref.rejected
    margin = chosen_margin - rejected_margin
    if if_tdpo2:
        logits = margin + alpha * (kl_c.detach() - kl_r)
    else:
        logits = margin + kl_c - kl_r
    return -F.logsigmoid(beta * logits).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_tdpo1_value_and_gradient_are_the_formula(seed, beta):
    per_token, policy, ref, kl = tdpo_inputs(seed)
    loss, metrics = tdpo1(policy, ref, beta=beta, seq_kl=(kl[:B], kl[B:]))
    u = beta * (policy.chosen - ref.chosen) - beta * (policy.rejected - ref.rejected)
    delta = beta * kl[B:] - beta * kl[:B]
    formula = -F.logsigmoid(u - delta).mean()
    assert torch.allclose(loss, formula, atol=1e-12)
    assert torch.allclose(loss, authors_tdpo(policy, ref, kl[:B], kl[B:], beta, 0.5, False), atol=1e-12)
    for x in (per_token, kl):
        assert torch.allclose(grad_of(loss, x), grad_of(formula, x), atol=1e-12)
    # analytically: ∂L/∂D(y⁺) = −β σ(−(u − δ)) / B, ∂L/∂D(y⁻) = +β σ(−(u − δ)) / B
    s = torch.sigmoid(-(u - delta)).detach()
    g = grad_of(loss, kl)
    assert torch.allclose(g[:B], -beta * s / B, atol=1e-12)
    assert torch.allclose(g[B:], beta * s / B, atol=1e-12)
    assert metrics["tdpo/seq_kl_chosen"].item() == pytest.approx(kl[:B].mean().item())
    assert metrics["tdpo/seq_kl_margin"].item() == pytest.approx((kl[B:] - kl[:B]).mean().item())
    reward = beta * (policy.chosen - ref.chosen).mean().item()  # TRL's: β·log-ratio
    assert metrics["rewards/chosen"].item() == pytest.approx(reward)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 0.0])
def test_tdpo2_stops_the_gradient_of_the_chosen_kl(seed, alpha):
    """L = −log σ(u − α(βD(y⁻) − sg(βD(y⁺)))): no gradient reaches D(y⁺); D(y⁻) gets αβσ(·)/B; the value is
    the formula's (and at α = 1 TDPO₁'s), the gradient through the log-probs is the formula's."""
    per_token, policy, ref, kl = tdpo_inputs(seed)
    beta = 0.1
    loss, _ = tdpo2(policy, ref, beta=beta, alpha=alpha, seq_kl=(kl[:B], kl[B:]))
    u = beta * (policy.chosen - ref.chosen) - beta * (policy.rejected - ref.rejected)
    z = u - alpha * (beta * kl[B:] - beta * kl[:B].detach())
    formula = -F.logsigmoid(z).mean()
    assert torch.allclose(loss, formula, atol=1e-12)
    assert torch.allclose(loss, authors_tdpo(policy, ref, kl[:B], kl[B:], beta, alpha, True), atol=1e-12)
    g = grad_of(loss, kl)
    assert torch.all(g[:B] == 0)
    assert torch.allclose(g[B:], alpha * beta * torch.sigmoid(-z).detach() / B, atol=1e-12)
    assert torch.allclose(grad_of(loss, per_token), grad_of(formula, per_token), atol=1e-12)
    if alpha == 1.0:
        assert torch.allclose(loss, tdpo1(policy, ref, beta=beta, seq_kl=(kl[:B], kl[B:]))[0], atol=1e-12)
    if alpha == 0.0:
        assert torch.allclose(loss, dpo(policy, ref, beta=beta)[0], atol=1e-12)


def test_tdpo_without_the_sequential_kl_is_an_error():
    _, policy, ref, _ = tdpo_inputs(0)
    for fn in (tdpo1, tdpo2):
        with pytest.raises(ValueError, match="seq_kl"):
            fn(policy, ref)


def test_tdpo_is_registered_and_configured():
    assert LOSSES["tdpo1"].hyperparameters == {"beta": 0.1}
    assert LOSSES["tdpo2"].hyperparameters == {"beta": 0.1, "alpha": 0.5}
    assert LOSSES["tdpo1"].inputs == LOSSES["tdpo2"].inputs == {"seq_kl": {}}
    assert not any(needs_reference_model(spec.inputs_for({})) for name, spec in LOSSES.items()
                   if not name.startswith("tdpo"))
    spec = method_spec(_cfg({"t2": {"loss": "tdpo2", "alpha": 0.2, "beta": 0.5}}), "t2")
    assert spec.inputs == ("seq_kl",) and spec.hparams == {"beta": 0.5, "alpha": 0.2}
    _, policy, ref, kl = tdpo_inputs(3)
    loss, _ = LOSSES[spec.loss].fn(policy, ref, seq_kl=(kl[:B], kl[B:]), **spec.hparams)
    assert torch.allclose(loss, tdpo2(policy, ref, beta=0.5, alpha=0.2, seq_kl=(kl[:B], kl[B:]))[0])


# --------------------------------------------------------------------------- training


def train(setup, method, tmp_path, reference_model=None, optim=None):
    tok, sft_model, splits, refs = setup
    policy = copy.deepcopy(sft_model)
    optim = optim or OptimConfig(lr=1e-2, batch_size=2, epochs=1, warmup_ratio=0.0)
    with JsonlLog(tmp_path / "log.jsonl") as log:
        train_preference(policy, splits, refs, method, optim, 0, tok.pad_token_id, log,
                         reference_model=reference_model)
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    return policy, [r for r in records if r["kind"] == "train"]


@pytest.mark.parametrize("loss, hparams", [("tdpo1", {"beta": 0.1}), ("tdpo2", {"beta": 0.1, "alpha": 0.5})])
def test_tdpo_trains_a_tiny_model(setup, tmp_path, loss, hparams):
    """Four steps; the first is at π = π_ref (loss log 2, zero KL); later steps see a non-zero KL; the
    in-step reference agrees with the precomputed log-probs; the reference model never changes."""
    _, sft_model, _, _ = setup
    reference_model = copy.deepcopy(sft_model)
    before = [p.clone() for p in reference_model.parameters()]
    policy, records = train(setup, MethodSpec(loss, loss, hparams), tmp_path, reference_model)
    assert len(records) == 4 and all(r["loss"] is not None and not r["skipped"] for r in records)
    assert records[0]["loss"] == pytest.approx(0.693147, abs=1e-5)
    assert records[0]["tdpo/seq_kl_chosen"] == pytest.approx(0.0, abs=1e-6)
    assert any(r["tdpo/seq_kl_chosen"] > 1e-4 for r in records[1:])
    assert all(r["reference/logp_gap"] < 1e-4 for r in records)
    assert all(torch.equal(a, b) for a, b in zip(before, reference_model.parameters()))
    assert not any(torch.equal(a, b) for a, b in zip(policy.parameters(), sft_model.parameters()))


def test_k_inner_steps_run_the_reference_once_per_batch(setup, tmp_path):
    _, sft_model, _, _ = setup
    reference_model, calls = copy.deepcopy(sft_model), []
    reference_model.base_model.register_forward_hook(lambda *_: calls.append(1))
    method = MethodSpec("tdpo2", "tdpo2", {"beta": 0.1, "alpha": 0.5}, inner_steps=3)
    _, records = train(setup, method, tmp_path, reference_model)
    assert len(records) == 12 and len(calls) == 4  # 4 batches × 3 optimizer steps, 4 reference forwards
    assert [r["inner_step"] for r in records[:3]] == [0, 1, 2]
    assert records[1]["tdpo/seq_kl_chosen"] > 0  # the policy moved within the batch, the reference did not


def test_without_a_reference_model_the_entry_weights_are_copied(setup, tmp_path):
    """``reference_model=None``: the policy as it enters is the reference, the same run bit for bit."""
    method = MethodSpec("tdpo2", "tdpo2", {"beta": 0.1, "alpha": 0.5})
    _, sft_model, _, _ = setup
    a, log_a = train(setup, method, tmp_path / "a", copy.deepcopy(sft_model))
    b, log_b = train(setup, method, tmp_path / "b", None)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    strip = [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in log_a]
    assert strip == [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in log_b]


def test_a_reference_model_other_than_the_precomputed_one_is_refused(setup, tmp_path):
    _, sft_model, _, _ = setup
    with pytest.raises(ValueError, match="precomputed reference log-probs"):
        train(setup, MethodSpec("tdpo1", "tdpo1", {"beta": 0.1}), tmp_path, perturbed(sft_model, scale=0.5))
