"""Shi et al. 2025's mis-specification settings: a proxy reward model learns from fewer and noisier pairs
(``p2o.data.splits.misspecified``), and a policy trains with its embeddings and lower blocks frozen
(``train.freeze_layers``, ``p2o.model.loading.freeze_lower``)."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch

from p2o.config import ModelConfig, OptimConfig, TinyModelConfig
from p2o.config.methods import MethodSpec
from p2o.data import PAIR_COLUMNS
from p2o.data.splits import misspecified
from p2o.model.loading import build_tiny_model, freeze_lower
from p2o.training.preference import train_preference
from tiny_models import setup  # noqa: F401  (fixture)


def pairs(n: int) -> pd.DataFrame:
    return pd.DataFrame([{"id": f"hh-{i:03d}", "dataset": "hh", "prompt": f"q{i}", "chosen": f"good {i}",
                          "rejected": f"bad {i}"} for i in range(n)], columns=list(PAIR_COLUMNS))


def test_misspecified_keeps_the_first_pairs_and_swaps_an_exact_seeded_fraction():
    frame, flipped = misspecified(pairs(40), 20, 0.25, "salt")
    assert len(frame) == 20 and flipped == 5 and list(frame["id"]) == [f"hh-{i:03d}" for i in range(20)]
    swapped = frame["chosen"].str.startswith("bad")
    assert swapped.sum() == 5 and (frame.loc[swapped, "rejected"].str.startswith("good")).all()
    again, _ = misspecified(pairs(40), 20, 0.25, "salt")
    pd.testing.assert_frame_equal(again, frame)
    other, _ = misspecified(pairs(40), 20, 0.25, "other salt")
    assert not other["chosen"].equals(frame["chosen"])  # the salt chooses which
    clean, none = misspecified(pairs(40), None, 0.0, "salt")
    assert none == 0 and len(clean) == 40 and clean["chosen"].str.startswith("good").all()


def test_frozen_lower_layers_do_not_move_and_the_rest_trains(setup):  # noqa: F811
    tok, model, splits, refs = setup
    policy = build_tiny_model(ModelConfig(tiny=TinyModelConfig(n_layer=2, n_head=2, n_embd=32, n_positions=64)),
                              tok, seed=0)
    before = copy.deepcopy(policy.state_dict())
    n = freeze_lower(policy, 1)
    frozen = {name for name, p in policy.named_parameters() if not p.requires_grad}
    assert frozen == {"transformer.wte.weight", "transformer.wpe.weight",
                      *(f"transformer.h.0.{k}" for k, _ in policy.transformer.h[0].named_parameters())}
    assert n == sum(p.numel() for p in policy.parameters() if not p.requires_grad)
    refs1 = {s.dataset: refs[s.dataset] for s in splits}
    train_preference(policy, splits, refs1, MethodSpec("dpo", "dpo", {"beta": 0.5}),
                     OptimConfig(lr=1e-2, batch_size=2, epochs=1), 0, tok.pad_token_id)
    after = policy.state_dict()
    for name in before:
        moved = not torch.equal(before[name], after[name])
        tied = "transformer.wte.weight" if name == "lm_head.weight" else name  # GPT-2's head is the embedding
        assert moved == (tied not in frozen and not name.endswith(".attn.bias")), name
    assert freeze_lower(policy, 0) == 0
    with pytest.raises(ValueError, match="freeze_layers = 3.*2 transformer blocks"):
        freeze_lower(build_tiny_model(ModelConfig(tiny=TinyModelConfig(n_layer=2, n_head=2, n_embd=32)), tok, 0), 3)
