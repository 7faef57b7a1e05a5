"""Adding a loss of any kind touches its module, the registry and a config entry, nothing in the loop.

A throwaway loss that reads two inputs no registered loss reads (one computed from the batch, one that
costs an extra forward of the policy) is registered, configured through ``p2o.config``, trained a few
steps by the unchanged training loop, and counted by the unchanged FLOP accounting.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json

import pytest
import torch
import torch.nn.functional as F

import p2o.config.methods
import p2o.losses.registry
import p2o.training.inputs
import p2o.training.loop
import p2o.training.preference
from p2o.config import OptimConfig, config_from_dict
from p2o.io import JsonlLog
from p2o.losses import LOSSES, dpo_margin, register, reward_metrics
from p2o.losses.common import BETA
from p2o.losses.registry import hp
from p2o.model.logps import pair_logps
from p2o.training.compute import training_compute
from p2o.training.inputs import INPUTS, StepInput, register_input
from p2o.training.preference import train_preference

NEW_INPUTS = ("length_gap", "anchor")


@pytest.fixture
def throwaway(monkeypatch):
    """Register the inputs, the loss and its catalogue entry; the registries are restored afterwards."""
    monkeypatch.setattr(p2o.training.inputs, "INPUTS", dict(INPUTS))  # register_input writes a fresh dict
    monkeypatch.setattr(p2o.losses.registry, "LOSSES", dict(LOSSES))
    calls = {name: 0 for name in NEW_INPUTS}

    def length_gap(ctx):  # (B,) n(y⁺) − n(y⁻), from the batch alone
        calls["length_gap"] += 1
        return ctx.policy().chosen_tokens - ctx.policy().rejected_tokens

    def anchor(ctx):  # the policy's log-probs from its own forward without gradient, once per batch
        calls["anchor"] += 1
        with torch.no_grad():
            return pair_logps(ctx.model, ctx.batch)

    p2o.training.inputs.register_input("length_gap", StepInput(length_gap, per_batch=True))
    p2o.training.inputs.register_input("anchor", StepInput(anchor, per_batch=True, forwards=(("policy", "pairs"),)))

    @p2o.losses.registry.register("throwaway", inputs={"length_gap": {}, "anchor": {}}, paper="a test", beta=BETA,
                                  gamma=hp("weight of the anchor term", minimum=0))
    def throwaway_loss(policy, reference, *, length_gap, anchor, beta: float = 0.5, gamma: float = 0.1):
        """−log σ(Δh − 0.01·Δn) + γ·mean((log π(y⁺) − anchor(y⁺))²)."""
        h_chosen, h_rejected, margin = dpo_margin(policy, reference, beta)
        drift = ((policy.chosen - anchor.chosen) ** 2).mean()
        metrics = reward_metrics(h_chosen, h_rejected, policy)
        metrics["throwaway/drift"] = drift.detach()
        return -F.logsigmoid(margin - 0.01 * length_gap).mean() + gamma * drift, metrics

    real_catalogue = p2o.config.methods.catalogue  # a registered loss is its own catalogue entry
    monkeypatch.setattr(p2o.config.methods, "catalogue",
                        lambda: {**real_catalogue(), "throwaway": p2o.losses.registry.LOSSES["throwaway"]})
    return calls


def test_a_throwaway_loss_with_new_inputs_trains_without_touching_the_loop(setup, throwaway, tmp_path):
    tok, model, splits, refs = setup
    cfg = config_from_dict({"data": {"datasets": {"hh": {"format": "hh-rlhf", "source": "x.jsonl"}}},
                            "methods": {"mine": {"loss": "throwaway", "gamma": 0.5, "inner_steps": 2}}})
    method = cfg.method("mine")
    assert method.hparams == {"beta": 0.5, "gamma": 0.5} and method.inputs == NEW_INPUTS

    optim = OptimConfig(lr=1e-2, batch_size=2, epochs=1, warmup_ratio=0.0)
    with JsonlLog(tmp_path / "log.jsonl") as log:
        result = train_preference(copy.deepcopy(model), splits, refs, method, optim, 0, tok.pad_token_id, log)
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    n_batches = sum(-(-len(s) // optim.batch_size) for s in splits)
    assert result["steps"] == 2 * n_batches and result["nonfinite_skipped"] == 0
    assert all(r["loss"] is not None and "throwaway/drift" in r for r in records)
    assert [r["throwaway/drift"] for r in records][0] == 0.0  # the anchor is the batch's first policy
    assert throwaway == {"length_gap": n_batches, "anchor": n_batches}  # per batch, whatever K

    compute = training_compute(splits, optim.batch_size, optim.epochs, 0, method)
    assert compute.forward_passes == 2 * n_batches + n_batches  # K policy passes + the anchor's forward
    assert compute.backward_passes == 2 * n_batches

    for module in (p2o.training.loop, p2o.training.preference):  # the loop's code names no input
        assert not code_words(module) & {*NEW_INPUTS, "snapshot", "seq_kl", "policy_mismatched"}


def code_words(module) -> set[str]:
    """Every identifier, attribute and string constant in a module's code (docstrings left out)."""
    tree = ast.parse(inspect.getsource(module))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    words = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.add(node.value)
    return words


def test_every_declared_input_has_a_step_input():
    for name, spec in LOSSES.items():
        assert set(spec.inputs) <= set(INPUTS), f"{name} declares {sorted(spec.inputs)}"


def test_register_checks_the_signature_against_the_declaration(monkeypatch):
    monkeypatch.setattr(p2o.losses.registry, "LOSSES", dict(LOSSES))
    with pytest.raises(TypeError, match="differ from the declared"):
        @register("bad", paper="-", beta=BETA)
        def bad(policy, reference, *, beta=0.5, gamma=1.0):
            return policy.chosen.sum(), {}
    with pytest.raises(ValueError, match="must name a model"):
        register_input("bad", StepInput(lambda ctx: None, forwards=(("critic", "pairs"),)))
