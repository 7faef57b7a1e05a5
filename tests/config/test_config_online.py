"""The online section: defaults from the sources, unknown methods and cross-key errors name their keys."""

from __future__ import annotations

import pytest

from conftest import REPO
from p2o.config import ConfigError, load_config

BASE = (REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml")


def test_defaults_are_the_sources():
    cfg = load_config(*BASE)
    on = cfg.online
    assert on.methods == [] and on.temperature == 1.0 and on.top_p == 1.0 and on.lr is None
    assert (on.ppo.clip, on.ppo.value_clip, on.ppo.gamma, on.ppo.lam, on.ppo.whiten) == (0.2, 0.2, 1.0, 0.95, True)
    assert (on.rto.beta1, on.rto.dense_clip, on.rto.kl_coef, on.rto.dpo_method) == (0.05, 0.05, 0.01, "dpo")
    assert on.rloo.k == 2 and on.online_dpo.iterations == 2 and on.online_dpo.reference == "sft"
    assert on.lr_of(cfg.train.lr) == cfg.train.lr
    proxy = on.proxy_optim(cfg.train)
    assert (proxy.epochs, proxy.lr, proxy.batch_size) == (2, cfg.train.lr, cfg.train.batch_size)
    tuned = load_config(*BASE, overrides={"online": {"proxy": {"lr": 1e-4, "epochs": 3}}}).online.proxy_optim(cfg.train)
    assert (tuned.epochs, tuned.lr) == (3, 1e-4)


def test_online_methods_load():
    cfg = load_config(*BASE, overrides={"online": {"methods": ["ppo", "rto", "rloo"], "ppo": {"kl_estimator": "k3"}}})
    assert cfg.online.methods == ["ppo", "rto", "rloo"] and cfg.online.ppo.kl_estimator == "k3"


@pytest.mark.parametrize("online, match", [
    ({"methods": ["ppo", "sac"]}, r"online\.methods\[1\].*'sac'"),
    ({"methods": ["ppo", "ppo"]}, r"online\.methods.*once"),
    ({"ppo": {"kl_estimator": "k2"}}, r"online\.ppo\.kl_estimator"),
    ({"ppo": {"clipp": 0.2}}, r"online\.ppo\.clipp.*unknown"),
    ({"rloo": {"k": 1}}, r"online\.rloo\.k"),
    ({"online_dpo": {"reference": "base"}}, r"online\.online_dpo\.reference"),
    ({"rto": {"dpo_method": "nope"}}, r"online\.rto\.dpo_method.*'nope'"),
    ({"online_dpo": {"method": "nope"}}, r"online\.online_dpo\.method.*'nope'"),
    ({"methods": ["ppo"], "max_new_tokens": 10_000}, r"online\.max_new_tokens.*n_positions"),
])
def test_bad_online_values_name_their_key(online, match):
    with pytest.raises(ConfigError, match=match):
        load_config(*BASE, overrides={"online": online})


def test_an_online_method_that_is_also_offline_is_refused():
    with pytest.raises(ConfigError, match=r"online\.methods\[0\].*'ppo'.*offline"):
        load_config(*BASE, overrides={"online": {"methods": ["ppo"]}, "methods": {"ppo": {"loss": "dpo"}}})
