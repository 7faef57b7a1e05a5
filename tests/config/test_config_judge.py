"""The generate and judge sections: the planted judge only on the demo data, 'sft' reserved."""

from __future__ import annotations

import pytest

from conftest import REPO
from p2o.config import ConfigError, load_config
from p2o.config.sections import JudgeConfig


def test_paper_names_a_reward_model_and_the_demo_the_planted_rule():
    paper = load_config(REPO / "config" / "config.yaml")
    assert paper.judge.neural and "/" in paper.judge.name
    assert paper.generate.temperature == 1.0 and paper.generate.top_p == 1.0 and paper.generate.prompt_style == "dataset"
    demo = load_config(REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml")
    assert demo.judge.name == "planted" and not demo.judge.neural
    # the demo's prompt and new tokens fit the tiny model's positions
    assert demo.tokenize.max_prompt_length + demo.generate.max_new_tokens <= demo.model.tiny.n_positions


def test_planted_judge_on_hub_data_fails_naming_the_key(tmp_path):
    override = tmp_path / "planted.yaml"
    override.write_text("judge: {name: planted}\n")
    with pytest.raises(ConfigError, match=r"judge\.name.*only the demo data.*'hh'"):
        load_config(REPO / "config" / "config.yaml", override)


def test_a_method_named_sft_is_refused(tmp_path):
    override = tmp_path / "sft.yaml"
    override.write_text("methods: {sft: {loss: dpo}}\n")
    with pytest.raises(ConfigError, match="'sft'"):
        load_config(REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml", override)


@pytest.mark.parametrize("key, value", [("temperature", -1), ("top_p", 0), ("top_p", 1.5), ("n_prompts", 0),
                                        ("prompt_style", "auto"), ("max_new_tokens", 0)])
def test_bad_generate_values_name_their_key(tmp_path, key, value):
    override = tmp_path / "bad.yaml"
    override.write_text(f"generate: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError, match=f"generate.{key}"):
        load_config(REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml", override)


def test_batch_sizes_are_run_only():
    assert JudgeConfig.RUN_ONLY == ("batch_size",)


def test_a_trained_judge_learns_from_more_pairs_than_any_policy(tmp_path):
    override = tmp_path / "trained.yaml"
    override.write_text("judge: {name: trained, n_pairs: 96}\n")  # the demo's data.n_train: 96
    with pytest.raises(ConfigError, match=r"judge\.n_pairs.*96.*data\.n_train = 96"):
        load_config(REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml", override)
    override.write_text("judge: {name: trained, n_pairs: 97, epochs: 3}\n")
    cfg = load_config(REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml", override)
    assert cfg.judge.trained and cfg.judge.neural
    assert (cfg.judge_optim.epochs, cfg.judge_optim.lr, cfg.judge_optim.eval_every) == (3, cfg.train.lr, 0)


@pytest.mark.parametrize("name", ["hh-local.yaml", "smollm2-hh.yaml"])
def test_the_offline_real_data_configs_train_their_judge(name):
    cfg = load_config(REPO / "config" / "config.yaml", REPO / "config" / name)
    assert cfg.judge.trained and cfg.judge.n_pairs > cfg.data.n_train
