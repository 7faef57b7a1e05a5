"""The loss registry: every loss is found by name, with the inputs and hyper-parameters it declares.

A loss is a pure function ``fn(policy, reference, *<inputs>, **<hyper-parameters>) -> (loss, metrics)``
of per-sequence log-prob tensors. ``@register`` beside the function states what it needs:

- ``inputs``: tensors beyond the policy's and the reference's ``PairLogps`` of the batch, by name,
  each with the hyper-parameter values under which it is read (``{}``: always), e.g. P²O's
  ``{"snapshot": {}}`` or KTO's ``{"policy_mismatched": {"ref_point": "mismatched"}, ...}``. The
  training step computes exactly the declared inputs (``p2o.training.inputs``) and passes them by
  keyword; FLOP accounting follows from the same names.
- ``hparams``: one ``Param`` per keyword-only hyper-parameter (help, bounds or choices); the default
  is the function's own keyword default, so it is written once.
- ``batch_stats``: the hyper-parameter values under which the loss is not a mean of per-pair terms
  (each a dict of values that must all hold; ``{}``: always), e.g. KTO's reference point z₀, a batch
  mean. Such a loss cannot be split into micro-batches or across processes
  (``train.grad_accum``, ``train.devices``): training refuses it there.

This module imports no tensor library; the config layer validates ``methods.*`` against a catalogue
generated from it (``python -m p2o.docs``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2o.config.fields import Param
from p2o.config.methods import LossEntry


@dataclass(frozen=True)
class LossSpec(LossEntry):
    """A registered loss: the catalogue's entry (hyper-parameters, inputs, paper, TRL name) and its function."""

    fn: Callable[..., Any]
    batch_stats: tuple[dict[str, Any], ...] = ()

    def batch_level(self, hparams: dict[str, Any]) -> bool:
        """Whether the loss reads a statistic of the whole batch under ``hparams`` (see ``register``)."""
        values = {**self.hyperparameters, **hparams}
        return any(all(values.get(k) == v for k, v in when.items()) for when in self.batch_stats)


LOSSES: dict[str, LossSpec] = {}


def hp(help: str, *, choices: tuple[str, ...] = (), **bounds: float) -> Param:
    """A hyper-parameter's declaration for ``register``: help and bounds or choices (the default
    comes from the function's signature)."""
    return Param(None, help, tuple(bounds.items()), tuple(choices))


def register(name: str, *, paper: str, trl: str = "—", inputs: dict[str, dict[str, Any]] | None = None,
             batch_stats: tuple[dict[str, Any], ...] = (), **hparams: Param) -> Callable:
    """Register the decorated loss as ``name``; each hyper-parameter's ``Param`` takes the function's
    keyword default as its default. Signature and declaration must name the same keywords."""

    def add(fn: Callable) -> Callable:
        params = inspect.signature(fn).parameters
        keywords = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n not in (inputs or {})}
        if set(keywords) != set(hparams):
            raise TypeError(f"loss {name!r}: keyword-only parameters {sorted(keywords)} differ from the declared "
                            f"hyper-parameters {sorted(hparams)}")
        missing = set(inputs or {}) - set(params)
        if missing:
            raise TypeError(f"loss {name!r}: declared inputs {sorted(missing)} are not parameters of {fn.__name__}")
        declared = {n: Param(keywords[n], hparams[n].help, hparams[n].bounds, hparams[n].choices) for n in keywords}
        LOSSES[name] = LossSpec(name, declared, dict(inputs or {}), paper, trl, fn, tuple(batch_stats))
        return fn

    return add


def get_loss(name: str) -> LossSpec:
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid losses: {sorted(LOSSES)}") from None
