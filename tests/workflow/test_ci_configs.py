"""The SLURM test's reduced demo (.ci/slurm/reduced.yaml) is the reduced demo of tests/workflow/test_workflow.py
(its ``REDUCED``) except for the differences the YAML file states and marks "Slurm:"."""

from __future__ import annotations

import copy

import yaml
from conftest import REPO
from test_workflow import REDUCED

# what the Slurm run sets differently, and why (the header of .ci/slurm/reduced.yaml says the same)
SLURM_ONLY = {
    "sft": {"checkpoint_every": 2},  # SFT writes and removes checkpoints under Slurm too
    "train": {"checkpoint_every": 2},  # so does training
    "compute_matched": {"methods": []},  # no compute-matched reruns: fewer jobs
    "rm_experiment": {"sizes": [8], "seeds": [41]},  # one size, one seed: fewer jobs
}


def merged(base: dict, override: dict) -> dict:
    """``override`` merged into ``base`` key by key, as Snakemake merges config files."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_slurm_reduced_config_is_the_workflow_tests_but_for_the_stated_differences():
    slurm = yaml.safe_load((REPO / ".ci" / "slurm" / "reduced.yaml").read_text())
    assert slurm == merged(REDUCED, SLURM_ONLY)


def test_every_stated_difference_is_marked_in_the_yaml_file():
    lines = (REPO / ".ci" / "slurm" / "reduced.yaml").read_text().splitlines()
    marked = {line.split(":")[0] for line in lines if "# Slurm:" in line}
    assert marked == set(SLURM_ONLY)


def test_slurm_test_profile_fits_every_rule_the_user_profile_sizes_to_the_test_node():
    """Every rule the user's Slurm profile gives threads or resources (sized for a GPU node) is sized
    down in the test's profile; one left out asks the 2-CPU test node for more than it has and waits
    in the queue for ever (Slurm's reason: PartitionConfig)."""
    user = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    test = yaml.safe_load((REPO / ".ci" / "slurm" / "profile" / "config.yaml").read_text())
    assert set(user["set-threads"]) - set(test["set-threads"]) == set()
    sized = {rule for rule, res in user["set-resources"].items() if "mem_mb" in (res or {})}
    assert sized - set(test["set-resources"]) == set()
