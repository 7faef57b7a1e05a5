"""The online methods in the DAG (workflow/rules/online.smk), from dry runs of the paper config: one proxy
reward model, one train_online job per PPO-style method and seed (RTO reading the seed's DPO policy),
online DPO as one sample -> label -> train chain per iteration, and every online policy generated and judged."""

from __future__ import annotations

from conftest import workflow_checkout
from test_workflow import planned_files, snakemake, write

ONLINE = ["ppo", "rto", "rloo", "regression_rl", "online_dpo"]


def plan(wd, tmp_path, **online):
    override = write(tmp_path / "online.yaml", {"online": {"methods": ONLINE, **online}})
    return planned_files(snakemake(wd, "-n", "--configfile", "config/config.yaml", override).stdout)


def test_online_methods_are_planned_per_seed_with_their_inputs(tmp_path):
    wd = workflow_checkout(tmp_path / "repo")
    jobs = plan(wd, tmp_path)
    seeds = {"0", "1", "2"}
    assert sum(r == "train_proxy" for r, *_ in jobs) == 1
    online = {(w["method"], w["seed"]): inputs for r, w, inputs, _ in jobs if r == "train_online"}
    assert set(online) == {(m, s) for m in ONLINE[:4] for s in seeds}
    for (method, seed), inputs in online.items():
        assert "results/proxy_rm/model" in inputs and "results/sft/model" in inputs
        assert ("results/train/dpo/seed%s/model" % seed in inputs) == (method == "rto")  # π_dpo: the seed's own DPO
    chain = {(r, w["seed"], w["iter"]): (inputs, outputs) for r, w, inputs, outputs in jobs if r.startswith("online_dpo")}
    assert set(chain) == {(r, s, i) for r in ("online_dpo_sample", "online_dpo_label", "online_dpo_train")
                          for s in seeds for i in ("1", "2")}
    for seed in seeds:
        assert "results/sft/model" in chain["online_dpo_sample", seed, "1"][0]  # iteration 1 samples the SFT model
        previous = f"results/online_dpo/seed{seed}/iter1/model"
        assert previous in chain["online_dpo_sample", seed, "2"][0] and previous in chain["online_dpo_train", seed, "2"][0]
        assert "results/sft/model" in chain["online_dpo_label", seed, "2"][0]  # reference: sft (Shi et al.)
        assert previous not in chain["online_dpo_label", seed, "2"][0]
    generated = {(w["method"], w["seed"]): inputs for r, w, inputs, _ in jobs if r == "generate"}
    judged = {(w["method"], w["seed"]) for r, w, *_ in jobs if r == "judge"}
    assert {(m, s) for m in ONLINE for s in seeds} <= set(generated) & judged
    assert "results/online_dpo/seed0/iter2/model" in generated["online_dpo", "0"]  # the last iteration's policy
    assert not any(w.get("method") in ONLINE for r, w, *_ in jobs if r in ("train", "evaluate"))


def test_online_dpo_reference_previous_reads_the_last_iterations_policy(tmp_path):
    wd = workflow_checkout(tmp_path / "repo")
    jobs = plan(wd, tmp_path, online_dpo={"reference": "previous", "iterations": 3})
    label = {(w["seed"], w["iter"]): inputs for r, w, inputs, _ in jobs if r == "online_dpo_label"}
    assert len(label) == 9
    assert "results/sft/model" in label["1", "1"]
    assert "results/online_dpo/seed1/iter2/model" in label["1", "3"] and "results/sft/model" not in label["1", "3"]
