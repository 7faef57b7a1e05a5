"""Gradient accumulation and gradient checkpointing give the update of the whole batch.

One batch of 8 pairs trained with ``train.grad_accum`` 1, 2 and 4 (micro-batches of 8, 4 and 2) must end
at the same weights, and log the same loss, metrics and gradient norm (the norm before clipping: it
would catch a gradient scaled by the number of micro-batches, which AdamW's first step does not see).
The pairs' responses have different lengths, so a micro-batch weighting by pairs where SFT's token mean
needs tokens would show.
"""

from __future__ import annotations

import copy
import tempfile

import pytest
import torch

from p2o.config import OptimConfig, TokenizeConfig
from p2o.io import JsonlLog
from p2o.losses import MethodSpec
from p2o.model.reference import compute_reference_logps
from p2o.model.logps import sequence_logps
from p2o.model.tokenize import pad_sequences, tokenize_pairs
import p2o.training.loop as loop
from p2o.training.parallel import chunks
from p2o.training.preference import train_preference
from p2o.training.reward_model import RewardModel, train_reward_model
from p2o.training.sft import sft

pytestmark = pytest.mark.filterwarnings("ignore")

WORDS = ["tea", "bread", "rain", "maps", "bees", "jazz", "kites", "moss"]
DPO = MethodSpec("dpo", "dpo", {"beta": 0.5})
P2O = MethodSpec("p2o", "p2o", {"beta": 0.5, "eps_clip": 0.15, "kl_coef": 0.08, "ratio": "pair",
                                "kl_estimator": "k3"}, inner_steps=2)
TDPO = MethodSpec("tdpo1", "tdpo1", {})


@pytest.fixture(scope="module")
def eight(setup):
    """The tiny model of ``setup`` and one split of 8 pairs whose chosen responses run 1 to 8 sentences."""
    tok, model, _, _ = setup
    prompts = [f"\n\nHuman: Tell me about {w}.\n\nAssistant:" for w in WORDS]
    chosen = [" " + " ".join([f"{w.capitalize()} is lovely."] * (k + 1)) for k, w in enumerate(WORDS)]
    rejected = [" No." if k % 2 else f" I do not know {w}." for k, w in enumerate(WORDS)]
    split = tokenize_pairs(tok, "hh", [f"hh{i}" for i in range(8)], prompts, chosen, rejected, TokenizeConfig(64, 24))
    model = copy.deepcopy(model).float()
    ref = compute_reference_logps(model, split, TokenizeConfig(64, 24), tok.pad_token_id)
    return tok, model, split, ref


LR = 1e-2


def optim(**kw) -> OptimConfig:
    return OptimConfig(**{"lr": LR, "batch_size": 8, "epochs": 1, "warmup_ratio": 0.0, "max_grad_norm": 1e3,
                          **kw})


def train(eight, tmp_path, method, **kw):
    """The trained model, its train records and the gradient of every optimizer step (as summed)."""
    tok, model, split, ref = eight
    policy, grads, step = copy.deepcopy(model), [], loop.Optimizer.step

    def recording_step(self):
        grads.append([p.grad.clone() for p in self.params])
        return step(self)

    loop.Optimizer.step = recording_step
    try:
        with JsonlLog(tmp_path / "log.jsonl") as log:
            if method == "sft":
                sft(policy, [split], optim(**kw), 0, tok.pad_token_id, log)
            else:
                train_preference(policy, [split], {"hh": ref}, method, optim(**kw), 0, tok.pad_token_id, log)
    finally:
        loop.Optimizer.step = step
    return policy, [r for r in log.records if r["kind"] == "train"], grads


def assert_same_run(a, b):
    """Same gradients (to fp32 rounding, 1e-5), same records, same weights. AdamW moves a weight by about
    lr · m/(√v + ε), so a gradient component near zero (of the order of its rounding) moves it by its
    rounding's sign: weights are compared to 1e-6 relative or a hundredth of a step (1e-2 · lr); seen
    up to 1.7e-3 · lr for P²O's second step, on 4 of the 96 entries of a bias vector."""
    (model_a, log_a, grads_a), (model_b, log_b, grads_b) = a, b
    assert len(grads_a) == len(grads_b) > 0
    for step_a, step_b in zip(grads_a, grads_b):
        scale = max(g.abs().max().item() for g in step_a)
        for x, y in zip(step_a, step_b):
            torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6 * scale)
    for x, y in zip(model_a.state_dict().values(), model_b.state_dict().values()):
        torch.testing.assert_close(y, x, rtol=1e-6, atol=1e-2 * LR)
    assert len(log_a) == len(log_b)
    for ra, rb in zip(log_a, log_b):
        for key in ra.keys() - {"tokens_per_s", "elapsed_s"}:
            if isinstance(ra[key], float):
                assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=1e-7), key
            else:
                assert rb[key] == ra[key], key


def test_micro_batches_cut_the_batch_in_order():
    assert chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert chunks([1, 2], 4) == [[1], [2], [], []]


@pytest.mark.parametrize("method", [DPO, P2O, TDPO, "sft"], ids=["dpo", "p2o", "tdpo1", "sft"])
def test_accumulated_micro_batches_give_the_whole_batch_update(eight, tmp_path, method):
    whole = train(eight, tmp_path / "1", method)
    assert not torch.equal(whole[0].transformer.h[0].mlp.c_fc.weight, eight[1].transformer.h[0].mlp.c_fc.weight)
    for accum in (2, 4):
        assert_same_run(whole, train(eight, tmp_path / str(accum), method, grad_accum=accum))


def test_a_wrongly_weighted_accumulation_would_be_seen(eight, tmp_path, monkeypatch):
    """The check above can fail: micro-batches of SFT weighted by pairs instead of tokens differ."""
    whole = train(eight, tmp_path / "1", "sft")
    backward = loop.Optimizer.backward
    monkeypatch.setattr(loop.Optimizer, "backward", lambda self, loss, weight=1.0: backward(self, loss, 0.5))
    with pytest.raises(AssertionError):
        assert_same_run(whole, train(eight, tmp_path / "2", "sft", grad_accum=2))


@pytest.mark.parametrize("method", [
    MethodSpec("kto", "kto", {"ref_point": "mismatched"}),
    MethodSpec("orpo", "orpo", {}),
    MethodSpec("p2o_original", "p2o", {"kl_estimator": "original"}, inner_steps=2),
], ids=["kto", "orpo", "p2o-original-kl"])
def test_a_loss_with_batch_statistics_refuses_micro_batches(eight, tmp_path, method):
    with pytest.raises(ValueError, match=f"method '{method.name}'.*train\\.grad_accum = 1"):
        train(eight, tmp_path, method, grad_accum=2)
    train(eight, tmp_path, method)  # one micro-batch: as before


def test_kto_with_a_zero_reference_point_accumulates(eight, tmp_path):
    method = MethodSpec("kto", "kto", {"ref_point": "zero"})
    assert_same_run(train(eight, tmp_path / "1", method), train(eight, tmp_path / "2", method, grad_accum=2))


@pytest.mark.parametrize("method", [DPO, "sft"], ids=["dpo", "sft"])
def test_gradient_checkpointing_gives_the_same_update(eight, tmp_path, method):
    plain = train(eight, tmp_path / "plain", method)
    checkpointed = train(eight, tmp_path / "ckpt", method, gradient_checkpointing=True)
    assert checkpointed[0].is_gradient_checkpointing and not plain[0].is_gradient_checkpointing
    assert_same_run(plain, checkpointed)


def test_checkpointing_recomputes_every_block_without_dropout(eight):
    tok, model, split, _ = eight
    policy = copy.deepcopy(model)
    loop.train_mode(policy, optim(gradient_checkpointing=True))
    calls = []
    for block in policy.transformer.h:
        recompute = block._gradient_checkpointing_func
        block._gradient_checkpointing_func = lambda *a, f=recompute, **k: calls.append(1) or f(*a, **k)
    batch = pad_sequences(split.prompt[:2], split.chosen[:2], tok.pad_token_id)
    sequence_logps(policy, batch)[0].sum().backward()
    assert len(calls) == len(policy.transformer.h) > 0
    assert not any(m.training for m in policy.modules() if isinstance(m, torch.nn.Dropout))


def train_rm(eight, **kw):
    tok, model, split, _ = eight
    rm = RewardModel(copy.deepcopy(model.base_model), seed=0)
    with tempfile.TemporaryDirectory() as tmp, JsonlLog(f"{tmp}/log.jsonl") as log:
        train_reward_model(rm, [split], optim(**kw), 0, tok.pad_token_id, log)
    return rm, [r for r in log.records if r["kind"] == "train"]


@pytest.mark.parametrize("how", [{"grad_accum": 4}, {"gradient_checkpointing": True}],
                         ids=["grad_accum", "gradient_checkpointing"])
def test_the_reward_model_too(eight, how):
    (a, log_a), (b, log_b) = train_rm(eight), train_rm(eight, **how)
    assert log_b[0]["grad_norm"] == pytest.approx(log_a[0]["grad_norm"], rel=1e-5)
    assert log_b[0]["loss"] == pytest.approx(log_a[0]["loss"], rel=1e-6)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        if name != "backbone.ln_f.bias":  # adds w·b to both rewards: zero gradient in the margin, AdamW moves
            torch.testing.assert_close(y, x, rtol=1e-6, atol=1e-2 * LR)  # it by the sign of its rounding
