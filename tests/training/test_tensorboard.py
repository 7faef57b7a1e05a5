"""``train.tensorboard``: a short tiny-model run writes an event file beside log.jsonl whose scalars,
read back with TensorBoard's ``EventAccumulator``, are the log's numbers under the log's names; the
switch changes nothing the run computes."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from p2o.config import OptimConfig
from p2o.io import TENSORBOARD_DIR, JsonlLog, TensorBoardMirror
from p2o.losses import MethodSpec
from p2o.training.preference import train_preference

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")

TIMING = ("tokens_per_s", "elapsed_s")  # wall-clock, differs between any two runs


def run(setup, out, tensorboard: bool) -> tuple[list[dict], torch.nn.Module]:
    tok, model, splits, refs = setup
    policy = copy.deepcopy(model)
    cfg = OptimConfig(lr=1e-3, batch_size=2, epochs=1, warmup_ratio=0.0, eval_every=0, tensorboard=tensorboard)
    with JsonlLog(out / "log.jsonl", cfg.tensorboard) as log:
        log.write({"kind": "eval", "step": 0, "dataset": "hh", "eval_rewards/accuracies": 0.5})
        train_preference(policy, splits, refs, MethodSpec("dpo", "dpo", {"beta": 0.1}), cfg, 0, tok.pad_token_id, log)
    return [json.loads(line) for line in open(out / "log.jsonl")], policy


def test_event_file_scalars_match_the_jsonl_log_and_nothing_computed_changes(setup, tmp_path):
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    records, policy = run(setup, tmp_path / "on", True)
    plain, plain_policy = run(setup, tmp_path / "off", False)
    assert not (tmp_path / "off" / TENSORBOARD_DIR).exists()
    events = list((tmp_path / "on" / TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    assert len(events) == 1

    acc = EventAccumulator(str(events[0].parent), size_guidance={"scalars": 0})
    acc.Reload()
    expected: dict[str, list[tuple[int, float]]] = {}
    for r in records:  # independent of TensorBoardMirror.scalars: the rule spelled out
        for k, v in r.items():
            if k in ("step", "kind", "dataset") or isinstance(v, bool) or v is None:
                continue
            tag = f"{k}/{r['dataset']}" if r["kind"] == "eval" else k
            expected.setdefault(tag, []).append((r["step"], v))
    train_steps = [r for r in records if r["kind"] == "train"]
    assert len(train_steps) == 4 and "loss" in expected and "rewards/margins" in expected
    assert "eval_rewards/accuracies/hh" in expected
    assert sorted(acc.Tags()["scalars"]) == sorted(expected)
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in points], tag
        assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6, abs=1e-30), tag  # float32

    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in records]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING} for r in plain]
    for a, b in zip(policy.parameters(), plain_policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_rerun_leaves_one_event_file(tmp_path):
    for _ in range(2):
        with JsonlLog(tmp_path / "log.jsonl", tensorboard=True) as log:
            log.write({"kind": "train", "step": 1, "loss": 0.5, "dataset": "hh", "skipped": False, "grad_norm": None})
    assert len(list((tmp_path / TENSORBOARD_DIR).iterdir())) == 1
    assert TensorBoardMirror.scalars({"kind": "train", "step": 1, "loss": 0.5, "dataset": "hh", "skipped": False,
                                      "grad_norm": None, "epoch": 0}) == {"loss": 0.5, "epoch": 0.0}
