"""Methods: a registered loss with its hyper-parameters and optimizer steps per batch, resolved
from a config's ``methods`` entry and checked against the loss catalogue.

The catalogue, ``losses.json`` beside this file, is what ``p2o.losses.LOSSES`` declares (each loss's
hyper-parameters with default, help and bounds or choices; the inputs it reads beyond the policy's
and the reference's log-probs; its paper and TRL name), written by ``python -m p2o.docs`` so that
parsing a config never imports the tensor code. A test fails when it is stale.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from p2o.config.fields import ConfigError, Param

CATALOGUE = "losses.json"

# the keys of a method entry that are not hyper-parameters of its loss
METHOD_KEYS: dict[str, Param] = {
    "loss": Param(None, "a registered loss; default: the method name"),
    "inner_steps": Param(1, "optimizer steps per batch (P²O/PKTO: K steps against the batch's snapshot, paper: 3)",
                         (("minimum", 1),)),
    "lr_scale": Param(1.0, "this method's peak learning rate as a multiple of train.lr (a scale rather than a "
                           "value, so that a variant keeps its ratio under an override file that changes train.lr)",
                      (("exclusiveMinimum", 0),)),
}


@dataclass(frozen=True)
class LossEntry:
    """A loss as the catalogue describes it (no function: that lives in ``p2o.losses``)."""

    name: str
    hparams: dict[str, Param]
    inputs: dict[str, dict[str, Any]]
    paper: str
    trl: str
    batch_stats: tuple[dict[str, Any], ...]  # hyper-parameter values under which it reads a batch statistic

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Hyper-parameter defaults, in declaration order."""
        return {k: p.default for k, p in self.hparams.items()}

    def batch_level(self, hparams: dict[str, Any]) -> bool:
        """Whether the loss reads a statistic of the whole batch under ``hparams`` (``p2o.losses.register``'s
        ``batch_stats``): then no batch may be split over micro-batches or processes."""
        values = {**self.hyperparameters, **hparams}
        return any(all(values.get(k) == v for k, v in when.items()) for when in self.batch_stats)

    def inputs_for(self, hparams: dict[str, Any]) -> tuple[str, ...]:
        """The inputs the loss reads under ``hparams`` (missing keys take their defaults)."""
        values = {**self.hyperparameters, **hparams}
        return tuple(name for name, when in self.inputs.items() if all(values.get(k) == v for k, v in when.items()))


def catalogue_json(losses: dict[str, Any]) -> dict[str, dict]:
    """The catalogue's JSON form of a loss registry (``p2o.losses.LOSSES`` or the catalogue itself)."""
    return {
        name: {
            "hparams": {k: {"default": p.default, "help": p.help, "bounds": dict(p.bounds), "choices": list(p.choices)}
                        for k, p in spec.hparams.items()},
            "inputs": {k: dict(when) for k, when in spec.inputs.items()},
            "paper": spec.paper,
            "trl": spec.trl,
            "batch_stats": [dict(when) for when in spec.batch_stats],
        }
        for name, spec in losses.items()
    }


@functools.cache
def catalogue() -> dict[str, LossEntry]:
    """Every registered loss, read from ``losses.json``."""
    raw = json.loads(resources.files("p2o.config").joinpath(CATALOGUE).read_text(encoding="utf-8"))
    return {
        name: LossEntry(
            name,
            {k: Param(h["default"], h["help"], tuple(h["bounds"].items()), tuple(h["choices"]))
             for k, h in entry["hparams"].items()},
            entry["inputs"], entry["paper"], entry["trl"], tuple(entry.get("batch_stats", ())),
        )
        for name, entry in raw.items()
    }


def is_registered_loss(name: str) -> bool:
    return name in catalogue()


def loss_entry(name: str) -> LossEntry:
    try:
        return catalogue()[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid losses: {sorted(catalogue())}") from None


@dataclass(frozen=True)
class MethodSpec:
    """A configured method: which loss, its hyper-parameters, optimizer steps per batch and its
    learning rate as a multiple of the shared one."""

    name: str
    loss: str
    hparams: dict[str, Any] = field(default_factory=dict)
    inner_steps: int = 1
    lr_scale: float = 1.0

    @property
    def inputs(self) -> tuple[str, ...]:
        """What the loss reads beyond the policy's and reference's log-probs, under these hyper-parameters
        (e.g. ``snapshot``, ``policy_mismatched``, ``seq_kl``)."""
        return loss_entry(self.loss).inputs_for(self.hparams)

    def needs(self, name: str) -> bool:
        """Whether the loss reads the input ``name`` under these hyper-parameters."""
        return name in self.inputs

    @property
    def trust_region(self) -> bool:
        """Whether the loss is a trust-region loss: one that reads the batch's policy snapshot and
        clips the ratio to it (P²O, PKTO), so that its steps log ``trust/*``."""
        return self.needs("snapshot")


def default_method(loss: str) -> MethodSpec:
    """A registered loss as a method of the same name, with its default hyper-parameters."""
    return MethodSpec(name=loss, loss=loss, hparams=loss_entry(loss).hyperparameters)


def method_spec(cfg, name: str) -> MethodSpec:
    """Resolve ``cfg.methods[name]`` into a MethodSpec, checking every key and bound.

    A method entry is ``{loss: <registry name, default: the method name>, inner_steps: K,
    lr_scale: s, <hyper-parameter>: value, ...}``; omitted hyper-parameters take the loss's defaults.
    """
    if name not in cfg.methods:
        raise ConfigError(f"config key 'methods.{name}' is missing; configured methods: {sorted(cfg.methods)}")
    entry = dict(cfg.methods[name] or {})
    key = f"methods.{name}"
    losses = catalogue()
    loss = entry.pop("loss", name)
    if loss not in losses:
        raise ConfigError(f"config key '{key}.loss': unknown loss {loss!r}; valid losses: {sorted(losses)}")
    inner_steps = entry.pop("inner_steps", METHOD_KEYS["inner_steps"].default)
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int):
        raise ConfigError(f"config key '{key}.inner_steps' must be an integer >= 1, got {inner_steps!r}")
    METHOD_KEYS["inner_steps"].check_bounds(inner_steps, f"{key}.inner_steps")
    lr_scale = METHOD_KEYS["lr_scale"].check_hparam(entry.pop("lr_scale", METHOD_KEYS["lr_scale"].default),
                                                    f"{key}.lr_scale")
    declared = losses[loss].hparams
    hparams = losses[loss].hyperparameters
    for k, v in entry.items():
        if k not in declared:
            raise ConfigError(f"config key '{key}.{k}' is unknown for loss {loss!r}; valid keys: "
                              f"{sorted(declared) + sorted(METHOD_KEYS)}")
        hparams[k] = declared[k].check_hparam(v, f"{key}.{k}")
    return MethodSpec(name=name, loss=loss, hparams=hparams, inner_steps=inner_steps, lr_scale=lr_scale)
