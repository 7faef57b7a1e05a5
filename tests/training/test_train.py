"""The training loop: dataset order, non-finite losses, determinism, schedule."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from p2o.config import OptimConfig
from p2o.io import JsonlLog
import p2o.losses.registry
from p2o.losses import LOSSES, MethodSpec, dpo, register
from p2o.losses.common import BETA
from p2o.training.loop import NonFiniteLossError
from p2o.training.preference import train_preference
from p2o.training.schedule import get_lr


pytestmark = pytest.mark.filterwarnings("ignore")

def run(setup, method, tmp_path, optim=None, seed=0):
    tok, model, splits, refs = setup
    policy = copy.deepcopy(model)
    optim = optim or OptimConfig(lr=1e-2, batch_size=2, epochs=2, warmup_ratio=0.0)
    with JsonlLog(tmp_path / "log.jsonl") as log:
        result = train_preference(policy, splits, refs, method, optim, seed, tok.pad_token_id, log)
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    return policy, result, [r for r in records if r["kind"] == "train"]


def test_datasets_in_order_every_epoch_and_batches_never_mixed(setup, tmp_path):
    _, _, train = run(setup, MethodSpec("dpo", "dpo", {"beta": 0.5}), tmp_path)
    assert [r["dataset"] for r in train] == ["hh", "hh", "shp", "shp"] * 2
    assert [r["epoch"] for r in train] == [0] * 4 + [1] * 4


def test_same_seed_same_weights_and_log(setup, tmp_path):
    method = MethodSpec("p2o", "p2o", {"beta": 0.5, "eps_clip": 0.15, "kl_coef": 0.08, "ratio": "pair",
                                       "kl_estimator": "k3"}, inner_steps=2)
    a, _, log_a = run(setup, method, tmp_path / "a")
    b, _, log_b = run(setup, method, tmp_path / "b")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    strip = [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in log_a]
    assert strip == [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in log_b]
    c, _, _ = run(setup, method, tmp_path / "c", seed=1)  # another seed: another batch order
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def nan_on(calls_to_poison):
    """A DPO loss that returns NaN on the given call numbers."""
    calls = []

    def fn(policy, reference, *, beta=0.5):
        calls.append(1)
        loss, metrics = dpo(policy, reference, beta=beta)
        return (loss * float("nan") if len(calls) in calls_to_poison else loss), metrics

    return fn


def register_nan_dpo(monkeypatch, calls_to_poison: set[int]) -> None:
    monkeypatch.setattr(p2o.losses.registry, "LOSSES", dict(LOSSES))
    register("nan_dpo", paper="a test", beta=BETA)(nan_on(calls_to_poison))


def test_non_finite_steps_are_skipped_counted_and_logged(setup, tmp_path, monkeypatch):
    register_nan_dpo(monkeypatch, {2})
    tok, model, splits, refs = setup
    optim = OptimConfig(lr=1e-2, batch_size=2, epochs=1, warmup_ratio=0.0, max_nonfinite_frac=0.5)
    policy, result, train = run(setup, MethodSpec("nan", "nan_dpo", {"beta": 0.5}), tmp_path, optim)
    assert result["nonfinite_skipped"] == 1
    assert [r["skipped"] for r in train] == [False, True, False, False]
    assert train[1]["loss"] is None and train[1]["grad_norm"] is None  # never a silent NaN
    assert all(p.isfinite().all() for p in policy.parameters())
    text = (tmp_path / "log.jsonl").read_text()
    assert "NaN" not in text


def test_too_many_non_finite_steps_stop_training(setup, tmp_path, monkeypatch):
    register_nan_dpo(monkeypatch, {1, 2})
    optim = OptimConfig(lr=1e-2, batch_size=2, epochs=1, warmup_ratio=0.0, max_nonfinite_frac=0.25)
    with pytest.raises(NonFiniteLossError, match=r"2 of 2 optimizer steps.*train\.max_nonfinite_frac = 0\.25"):
        run(setup, MethodSpec("nan", "nan_dpo", {"beta": 0.5}), tmp_path, optim)


def test_learning_rate_schedule():
    lrs = [get_lr(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warm-up
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1, abs=1e-3)  # cosine to 10 %
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
