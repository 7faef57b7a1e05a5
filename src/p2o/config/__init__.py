"""Typed configuration: one dataclass per YAML section, fields named exactly as the YAML keys.

``load_config(*paths)`` deep-merges YAML files in order (an override file such as
``config/demo.yaml`` lists only what differs from ``config/config.yaml``) and builds a
``Config``. Unknown keys, wrong types and out-of-range values raise ``ConfigError`` naming the
key, e.g. ``config key 'train.lr': expected a number, got 'fast'``.

Every key is declared once (``fields.setting``: default, help, bounds or choices) in
``sections``; ``methods`` resolves method entries against the loss catalogue. The workflow schema
and the key tables of config/README.md are generated from these by ``python -m p2o.docs``.
Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from p2o.config.fields import BOUND_CHECKS, REQUIRED, ConfigError, Param, build, check_bounds, hparam, setting
from p2o.config.methods import MethodSpec, catalogue, method_spec
from p2o.config.sections import (
    ComputeMatchedConfig,
    Config,
    DataConfig,
    DatasetConfig,
    EvalConfig,
    GenerateConfig,
    JudgeConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    RewardExperimentConfig,
    TinyModelConfig,
    TokenizeConfig,
)

__all__ = [
    "BOUND_CHECKS", "REQUIRED", "ComputeMatchedConfig", "Config", "ConfigError", "DataConfig", "DatasetConfig",
    "EvalConfig", "GenerateConfig", "JudgeConfig", "LoraConfig", "MethodSpec", "ModelConfig", "OptimConfig", "Param", "RewardExperimentConfig",
    "TinyModelConfig", "TokenizeConfig", "build", "catalogue", "check_bounds", "config_from_dict", "deep_merge",
    "hparam", "load_config", "method_spec", "setting",
]


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
