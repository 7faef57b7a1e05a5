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
