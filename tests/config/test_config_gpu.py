"""config/gpu.yaml merges on top of config/config.yaml into a valid config with the GPU settings the
README's "GPU" section names, and the GPU profile gives every model rule fewer threads than --cores."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

from p2o.config import load_config


def test_gpu_config_merges_on_the_paper_config():
    paper = load_config(REPO / "config" / "config.yaml")
    gpu = load_config(REPO / "config" / "config.yaml", REPO / "config" / "gpu.yaml")
    assert gpu.train.autocast == gpu.sft.autocast == "auto"
    assert gpu.model.inference_dtype == "bfloat16" and paper.model.inference_dtype == "float32"
    assert gpu.model.name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert gpu.train.batch_size == 4 * paper.train.batch_size
    assert gpu.method_order == paper.method_order and gpu.seeds == paper.seeds  # the same experiment


def test_gpu_profile_sizes_every_model_rule_the_cpu_profile_sizes():
    gpu = yaml.safe_load((REPO / "workflow" / "profiles" / "gpu" / "config.yaml").read_text())
    cpu = yaml.safe_load((REPO / "workflow" / "profiles" / "cpu" / "config.yaml").read_text())
    assert set(gpu["set-threads"]) == set(cpu["set-threads"])
    assert "set-resources" not in gpu  # every model rule keeps its gpu=1 claim


def test_a_split_batch_refuses_losses_with_batch_statistics_when_the_config_is_read(tmp_path):
    """KTO's mismatched reference point and ORPO's token mean read the whole batch: with train.devices or
    train.grad_accum above 1 the config names the method at once, not a job hours into the run."""
    from conftest import REPO
    from p2o.config import ConfigError, load_config

    ddp = load_config(REPO / "config" / "config.yaml", REPO / "config" / "gpu.yaml", REPO / "config" / "gpu-ddp.yaml")
    assert ddp.train.devices == ddp.sft.devices == 4 and not {"kto", "pkto", "orpo"} & set(ddp.all_method_names)
    override = tmp_path / "accum.yaml"
    override.write_text("train: {grad_accum: 2}\n")
    with pytest.raises(ConfigError, match=r"methods\.kto.*'kto'.*whole batch.*grad_accum = 2"):
        load_config(REPO / "config" / "config.yaml", override)
    override.write_text("train: {grad_accum: 2}\nmethods: {kto: {ref_point: zero}}\nmethod_order: [dpo, kto]\n"
                        "compute_matched: {methods: [dpo]}\n")
    assert load_config(REPO / "config" / "config.yaml", override).train.grad_accum == 2  # z0 = 0: no batch mean
