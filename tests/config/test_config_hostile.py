"""Every invalid config we can enumerate fails at validation, naming the key.

The cases are generated, not hand-picked: the test walks the config dataclasses (each field's
``Param``: bounds, choices, and its structural rules) and the loss registry (the ``Param`` of each
loss's hyper-parameters) and, for every key, tries values of the wrong type, values just outside
its declared range, NaN and infinity, values outside its choices, empty or repeated lists, badly
named entries, and an unknown key beside it. Each case must raise ``ConfigError`` from
``p2o.config`` with the key in the message, and (where JSON Schema can say it) be rejected by the
workflow schema too. The schema is generated from the same declarations (``python -m p2o.docs``;
``tests/config/test_docs_generated.py`` fails when it is stale), so the two checks cannot drift apart.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import typing

import pytest
import yaml

from conftest import REPO
from p2o.config import (
    Config,
    ConfigError,
    DatasetConfig,
    config_from_dict,
    deep_merge,
)
from p2o.config.fields import BOUND_CHECKS, param_of
from p2o.config.methods import METHOD_KEYS
from p2o.losses import LOSSES

SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
BASE = deep_merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()),
                  yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))

WRONG = {  # values of the wrong type for each declared type (None is added for non-optional fields)
    int: ["8", 1.5, True, [1], {"a": 1}],
    float: ["fast", True, [1.0], {"a": 1}],
    str: [3, 1.5, True, ["a"], {"a": "b"}],
    bool: ["yes", 1, 0.0, ["x"]],
}
BAD_NAME = "Bad-Name"  # matches no key pattern


def _schema_node(path: tuple) -> dict | None:
    node = SCHEMA
    for key in path:
        node = node.get("properties", {}).get(key) or node.get("additionalProperties")
        if not isinstance(node, dict):
            return None
        if "$ref" in node:
            node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _outside(bounds: dict[str, float], is_int: bool) -> list:
    """Values just outside each declared bound."""
    step = 1 if is_int else 1e-9
    out = []
    for word, b in bounds.items():
        if word == "minimum":
            out.append(b - step)
        elif word == "exclusiveMinimum":
            out += [b, b - step]
        elif word == "maximum":
            out.append(b + step)
        elif word == "exclusiveMaximum":
            out += [b, b + step]
    return [int(v) if is_int else v for v in out]


def _base_value(path: tuple):
    node = BASE
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _field_cases(f: dataclasses.Field, tp, path: tuple) -> list[tuple[tuple, object, str]]:
    """(path, bad value, why) for one config field of type ``tp``, from what the field declares."""
    p, md = param_of(f), f.metadata
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional:
        (tp,) = [a for a in args if a is not type(None)]
    origin = typing.get_origin(tp)
    cases = []
    if dataclasses.is_dataclass(tp):
        cases += [(path, v, "not a mapping") for v in ("x", [1], 3)]
        cases += _dataclass_cases(tp, path)
    elif origin is dict:
        cases += [(path, v, "not a mapping") for v in ("x", [1])]
        if md["nonempty"]:
            cases.append((path, {}, "empty"))
        if md["key_pattern"]:
            good = _base_value(path) or {}
            cases.append((path, {BAD_NAME: next(iter(good.values()), {})}, "badly named entry"))
    elif origin is list:
        cases += [(path, v, "not a list") for v in ("x", {"a": 1}, 3)]
        (item,) = typing.get_args(tp)
        cases += [(path, [v], f"list item of the wrong type {v!r}") for v in WRONG[item][:2]]
        cases += [(path, [v], "list item out of range") for v in _outside(p.bound_dict, item is int)]
        if md["nonempty"]:
            cases.append((path, [], "empty"))
        if md["unique"]:
            good = _base_value(path) or [p.default[0] if p.default else "x"]
            cases.append((path, [good[0], good[0]], "repeated item"))
    else:
        cases += [(path, v, f"wrong type {type(v).__name__}") for v in WRONG[tp]]
        if tp is float:
            cases += [(path, v, "not finite") for v in (math.nan, math.inf, -math.inf)]
        cases += [(path, v, "out of range") for v in _outside(p.bound_dict, tp is int)]
        if p.choices:
            cases += [(path, v, "not a choice") for v in ("nope", p.choices[0].upper())]
        if md["nonempty"]:
            cases.append((path, "", "empty"))
    if not optional and not dataclasses.is_dataclass(tp):
        cases.append((path, None, "null"))
    return cases


def _dataclass_cases(cls, path: tuple) -> list:
    hints = typing.get_type_hints(cls)
    cases = [(path + ("no_such_key",), 1, "unknown key")]
    for f in dataclasses.fields(cls):
        cases += _field_cases(f, hints[f.name], path + (f.name,))
    return cases


def config_cases() -> list[tuple[tuple, object, str]]:
    cases = [(("no_such_section",), {}, "unknown section")]
    cases += _dataclass_cases(Config, ())[1:]  # the unknown top-level key is the section above
    for name in BASE["data"]["datasets"]:  # dict[str, DatasetConfig] entries
        cases += _dataclass_cases(DatasetConfig, ("data", "datasets", name))
    return cases


def method_cases() -> list[tuple[tuple, object, str]]:
    """For every registered loss: bad hyper-parameters (from each one's Param), bad inner_steps and lr_scale, an
    unknown key."""
    cases = []
    for loss, spec in LOSSES.items():
        path = ("methods", f"m_{loss}")
        cases.append(((*path, "loss"), "no_such_loss", "unknown loss"))
        cases += [((*path, "inner_steps"), v, "bad inner_steps") for v in (0, -1, 1.5, True, "3")]
        cases += [((*path, "inner_steps"), v, "inner_steps out of range")
                  for v in _outside(METHOD_KEYS["inner_steps"].bound_dict, True)]
        cases += [((*path, "lr_scale"), v, "bad lr_scale") for v in (0, -1.0, math.nan, math.inf, True, "2")]
        cases.append(((*path, "no_such_hparam"), 1.0, "unknown hyper-parameter"))
        for hp, param in spec.hparams.items():
            if param.choices:
                cases += [((*path, hp), v, "not a choice") for v in ("nope", 1, param.choices[0].upper())]
                continue
            cases += [((*path, hp), v, "wrong type") for v in ("x", True, [1.0])]
            cases += [((*path, hp), v, "not finite") for v in (math.nan, math.inf)]
            cases += [((*path, hp), v, "out of range") for v in _outside(param.bound_dict, False)]
    return cases


def apply(path: tuple, value) -> dict:
    cfg = copy.deepcopy(BASE)
    if path[0] == "methods" and len(path) > 2:  # a fresh method entry using the loss under test
        cfg["methods"] = {path[1]: {"loss": path[1].removeprefix("m_")}}
        cfg["method_order"] = None
    node = cfg
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node.get(key), dict) or key not in node else node[key]
    node[path[-1]] = value
    return cfg


def key_of(path: tuple) -> str:
    return ".".join(path)


CONFIG_CASES = config_cases()
METHOD_CASES = method_cases()


def test_base_config_is_valid():
    config_from_dict(copy.deepcopy(BASE))


def test_enumerated_invalid_configs_fail_naming_the_key():
    failures = []
    for path, value, why in CONFIG_CASES + METHOD_CASES:
        try:
            config_from_dict(apply(path, value))
        except ConfigError as e:
            # the key, or for a list item the list's key, appears in the message
            if key_of(path) not in str(e):
                failures.append(f"{key_of(path)} = {value!r} ({why}): error does not name the key: {e}")
        except Exception as e:  # noqa: BLE001 - any other exception is the failure we look for
            failures.append(f"{key_of(path)} = {value!r} ({why}): {type(e).__name__}: {e}")
        else:
            failures.append(f"{key_of(path)} = {value!r} ({why}): accepted")
    n = len(CONFIG_CASES) + len(METHOD_CASES)
    print(f"{n} invalid configs tried ({len(CONFIG_CASES)} over config keys, {len(METHOD_CASES)} over "
          f"{len(LOSSES)} losses' hyper-parameters)")
    assert len(CONFIG_CASES) > 500 and len(METHOD_CASES) > 280
    assert not failures, f"{len(failures)} of {n} cases:\n" + "\n".join(failures)


def test_the_workflow_schema_rejects_them_too():
    """What JSON Schema can state (types, ranges, choices, unknown keys, empty or repeated lists, entry
    names) it rejects before p2o is asked. Not expressible there: NaN and infinity (YAML's .nan/.inf
    are not JSON; NaN passes every comparison and +inf every lower bound). A method entry's
    hyper-parameters are bounded where every loss declaring the name agrees; p2o.config checks each
    entry against its own loss."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    accepted, tried = [], 0
    for path, value, why in CONFIG_CASES + METHOD_CASES:
        if isinstance(value, float) and not math.isfinite(value):
            continue
        node = _schema_node(path) or {}
        if path[0] == "methods" and why == "out of range" and not set(node) & set(BOUND_CHECKS):
            continue  # losses declare this name with different bounds
        tried += 1
        try:
            validate(apply(path, value), str(SCHEMA_PATH), set_default=False)
        except WorkflowError:
            continue
        accepted.append(f"{key_of(path)} = {value!r} ({why})")
    assert tried > 650
    assert not accepted, "the schema accepts:\n" + "\n".join(accepted)


@pytest.mark.parametrize("override, key", [
    ({"model": {"tiny": {"n_embd": 30, "n_head": 4}}}, "model.tiny.n_embd"),
    ({"model": {"tiny": {"n_positions": 64}}, "tokenize": {"max_length": 128}}, "model.tiny.n_positions"),
    ({"tokenize": {"max_length": 32, "max_prompt_length": 32}}, "tokenize.max_length"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"seeds": []}, "seeds"),
    ({"method_order": ["dpo", "dpo"]}, "method_order"),
    ({"method_order": ["nope"]}, "method_order"),
    ({"data": {"order": []}}, "data.order"),
    ({"data": {"order": ["hh", "hh"]}}, "data.order"),
    ({"data": {"datasets": {}}}, "data.datasets"),
    ({"data": {"datasets": {"hh": {"format": "csv"}}}}, "data.datasets.hh.format"),
    ({"data": {"datasets": {"hh": {"min_score_ratio": 2.0}}}}, "data.datasets.hh.min_score_ratio"),
    ({"train": {"autocast": "fp16"}}, "train.autocast"),
    ({"compute_matched": {"methods": ["nope"]}}, "compute_matched.methods"),
    ({"compute_matched": {"methods": ["dpo"]}, "methods": {"dpo_k3": {"loss": "dpo"}}}, "compute_matched.methods"),
])
def test_cross_key_rules_name_the_key(override, key):
    cfg = copy.deepcopy(BASE)
    for section, value in override.items():
        if section == "data" and "datasets" in value and value["datasets"] == {}:
            cfg["data"]["datasets"] = {}
            continue
        cfg[section] = deep_merge(cfg[section], value) if isinstance(value, dict) and cfg.get(section) else value
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict(cfg)
