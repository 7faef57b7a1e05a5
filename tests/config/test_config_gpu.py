"""config/gpu.yaml merges on top of config/config.yaml into a valid config with the GPU settings the
README's "GPU" section names, and the GPU profile gives every model rule fewer threads than --cores."""

from __future__ import annotations

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
