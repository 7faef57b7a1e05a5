"""The inputs a loss can declare, and how a training step computes them.

A loss reads the policy's and the reference's ``PairLogps`` of the batch, plus the inputs it declares by
name (``p2o.losses.registry``). Each name is a ``StepInput`` here: how to compute it from the step's
``StepContext``, whether it is computed once per batch (at the first of K inner steps) or at every
inner step, which extra rows the batch must carry, and which extra forwards (no gradient) it costs per
batch, from which ``p2o.training.compute`` counts FLOPs. A new input is one ``register_input`` call:
the training loop does not change.

    snapshot              the policy's PairLogps at the batch's first inner step, detached (P²O, PKTO)
    policy_mismatched     the policy's log-probs of the mismatched rows, no gradient (KTO's z₀)
    reference_mismatched  the reference's log-probs of the same rows, precomputed (``ReferenceLogps``)
    seq_kl                each response's sequential KL(π_ref ‖ π), from the policy's own forward and
                          one reference-model forward per batch (TDPO)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from p2o.model.logps import PairLogps, PolicyForward, ReferenceDistribution, reference_distribution, sequence_logps
from p2o.model.reference import ReferenceLogps
from p2o.model.tokenize import PairBatch

MODELS = ("policy", "reference")
ROWS = ("pairs", "mismatched")  # the batch's 2B chosen and rejected rows; its B mismatched rows


@dataclass(frozen=True)
class StepInput:
    """How a training step computes one declared input.

    ``compute(ctx)`` gives its value; with ``per_batch`` it is computed at the first inner step and
    reused. ``rows`` names extra rows the batch must carry. ``forwards`` lists the extra forwards it
    costs per batch, each as (model, rows) with model in ``MODELS`` and rows in ``ROWS``.
    """

    compute: Callable[[StepContext], Any]
    per_batch: bool = False
    rows: str | None = None
    forwards: tuple[tuple[str, str], ...] = ()


INPUTS: dict[str, StepInput] = {}


def register_input(name: str, step_input: StepInput) -> None:
    for model, rows in step_input.forwards:
        if model not in MODELS or rows not in ROWS:
            raise ValueError(f"input {name!r}: forward ({model!r}, {rows!r}) must name a model of {MODELS} "
                             f"and rows of {ROWS}")
    INPUTS[name] = step_input


def step_inputs(names: Iterable[str]) -> dict[str, StepInput]:
    """The ``StepInput`` of each name, in order; an unknown name lists the registered ones."""
    unknown = [n for n in names if n not in INPUTS]
    if unknown:
        raise KeyError(f"unknown step input(s) {unknown}; registered: {sorted(INPUTS)}")
    return {n: INPUTS[n] for n in names}


def needs_reference_model(names: Iterable[str]) -> bool:
    """Whether any of the inputs runs the reference model inside the step."""
    return any(model == "reference" for s in step_inputs(names).values() for model, _ in s.forwards)


REFERENCE_GAP_MAX = 0.5  # nats per token: far above bf16 rounding, far below SFT-vs-base differences


def reference_gap(in_step: PairLogps, precomputed: PairLogps) -> torch.Tensor:
    """Mean |log π_ref(y) − precomputed log π_ref(y)| per response token over the batch's 2B responses.

    Raises if it exceeds ``REFERENCE_GAP_MAX``: the reference model is not the one the precomputed
    log-probs came from (say, the base model instead of the SFT model).
    """
    diff = torch.cat((in_step.chosen - precomputed.chosen, in_step.rejected - precomputed.rejected)).abs()
    tokens = torch.cat((in_step.chosen_tokens, in_step.rejected_tokens))
    gap = (diff.sum() / tokens.sum().clamp(min=1)).detach()
    if not gap <= REFERENCE_GAP_MAX:
        raise ValueError(f"the reference model's log-probs differ from the precomputed reference log-probs "
                         f"by {gap.item():.3g} nats per token (> {REFERENCE_GAP_MAX}): pass the SFT model "
                         f"that `p2o reference` used as reference_model")
    return gap


class StepContext:
    """One batch of preference training: the batch, its precomputed reference log-probs and the models.

    Values are computed on first request and cached: per batch for ``per_batch`` inputs, per inner step
    for the rest (``next_step`` starts a new one). ``policy()`` is the inner step's one policy forward over
    the 2B rows; every input of that step reads the same forward. ``metrics`` collects what inputs log
    beside the loss's metrics (``reference/logp_gap`` when the reference model runs in the step).
    """

    def __init__(self, model, reference_model, batch: PairBatch, reference: ReferenceLogps, device: str):
        self.model, self.reference_model, self.batch, self.device = model, reference_model, batch, device
        self.reference_file = reference
        self.reference = reference.pairs(batch.index).to(device)  # (B,) fields, precomputed
        self.metrics: dict[str, torch.Tensor] = {}
        self._batch: dict[str, Any] = {}
        self._step: dict[str, Any] = {}

    def next_step(self) -> None:
        self._step.clear()

    def _cached(self, cache: dict, key: str, compute: Callable[[], Any]) -> Any:
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def policy_forward(self) -> PolicyForward:
        return self._cached(self._step, "_policy_forward", lambda: PolicyForward.of(self.model, self.batch))

    def policy(self) -> PairLogps:
        """The policy's PairLogps of the batch, with gradient: one forward for chosen + rejected."""
        return self._cached(self._step, "_policy", lambda: self.policy_forward().pair_logps(self.batch))

    def reference_distribution(self) -> ReferenceDistribution:
        """The reference model's next-token distributions on the batch, once per batch, checked against
        the precomputed reference log-probs."""

        def compute() -> ReferenceDistribution:
            dist = reference_distribution(self.reference_model, self.batch)
            self.metrics["reference/logp_gap"] = reference_gap(dist.pair_logps, self.reference)
            return dist

        return self._cached(self._batch, "_reference_distribution", compute)

    def get(self, name: str) -> Any:
        spec = INPUTS[name]
        return self._cached(self._batch if spec.per_batch else self._step, name, lambda: spec.compute(self))


def _policy_mismatched(ctx: StepContext) -> torch.Tensor:
    with torch.no_grad():  # KTO's z0 carries no gradient
        return sequence_logps(ctx.model, ctx.batch.mismatched)[0]


register_input("snapshot", StepInput(lambda ctx: ctx.policy().detach(), per_batch=True))
register_input("policy_mismatched", StepInput(_policy_mismatched, per_batch=True, rows="mismatched",
                                              forwards=(("policy", "mismatched"),)))
register_input("reference_mismatched", StepInput(
    lambda ctx: ctx.reference_file.mismatched[ctx.batch.index].to(ctx.device), per_batch=True))
register_input("seq_kl", StepInput(lambda ctx: ctx.policy_forward().seq_kl(ctx.reference_distribution(), ctx.batch),
                                   forwards=(("reference", "pairs"),)))
