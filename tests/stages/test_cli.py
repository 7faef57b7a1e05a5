"""End to end through the command line: prepare → init → sft → reference → train → evaluate."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from conftest import REPO, require_shared
from p2o.cli import main
from p2o.io import read_json
from p2o.losses import LOSSES
from p2o.provenance import config_sha256
from p2o.model.reference import ReferenceLogps

pytestmark = pytest.mark.filterwarnings("ignore")

SMALL = {
    "data": {"n_train": 24, "n_eval": 8},
    "model": {"name_or_path": "tiny", "tiny": {"n_layer": 1, "n_head": 2, "n_embd": 32, "vocab_size": 512,
                                               "n_positions": 96}},
    "tokenize": {"max_length": 64, "max_prompt_length": 32},
    "sft": {"lr": 3.0e-3, "epochs": 2, "batch_size": 8},
    "train": {"lr": 1.0e-3, "epochs": 1, "batch_size": 8, "eval_every": 4},
    "evaluate": {"batch_size": 8},
    "seeds": [0],
}


def write_config(path, overrides):
    path.write_text(yaml.safe_dump(overrides))
    return str(path)


def run(*argv):
    main([str(a) for a in argv])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo data through every stage, every registered method once."""
    root = tmp_path_factory.mktemp("demo")
    raw = root / "raw"
    run("demo-data", "--out", raw, "--n-prompts", 60)
    cfg = write_config(root / "small.yaml", {
        **SMALL,
        "data": {**SMALL["data"], "datasets": {"hh": {"source": str(raw / "hh.jsonl"), "data_dir": None},
                                               "shp": {"source": str(raw / "shp.jsonl")},
                                               "uf": {"source": str(raw / "ultrafeedback.jsonl")}}},
        "methods": {name: ({"inner_steps": 2} if "snapshot" in LOSSES[name].inputs else {})
                    | ({"lr_scale": 2.0} if name == "pkto" else {}) for name in LOSSES},
        "generate": {"n_prompts": 4, "max_new_tokens": 8},
        "judge": {"name": "planted"},  # the demo data: the planted rule is their gold judge
    })
    common = ["-c", "config/config.yaml", "-c", cfg, "--workdir", root / "results", "--device", "cpu"]
    for step in ("prepare", "init", "sft", "reference"):
        run(step, *common)
    for method in LOSSES:
        run("train", *common, "--method", method, "--seed", 0)
        run("evaluate", *common, "--method", method, "--seed", 0)
    return root / "results", common


def test_generate_and_judge_any_saved_model(demo_run, tmp_path):
    """p2o generate (the SFT model with --method sft, a method, any --policy folder) and p2o judge
    (against the SFT model's samples, or a --baseline folder)."""
    from p2o.io import read_jsonl

    results, common = demo_run
    run("generate", *common, "--method", "sft")
    run("generate", *common, "--method", "dpo", "--seed", 0)
    for name in ("hh", "shp", "uf"):
        rows = read_jsonl(results / "generate" / "dpo" / "seed0" / f"{name}.jsonl")
        # the first 4 distinct held-out prompts (SHP's 8 held-out pairs share fewer posts)
        assert 1 <= len(rows) <= 4 and all(r["n_tokens"] <= 8 and r["dataset"] == name for r in rows)
        assert len(read_jsonl(results / "generate" / "sft" / f"{name}.jsonl")) == len(rows)
    assert read_json(results / "generate" / "sft" / "generation.json")["sampling"]["n_prompts"] == 4
    run("judge", *common, "--method", "dpo", "--seed", 0)
    r = read_json(results / "judge" / "dpo" / "seed0" / "uf.json")
    assert r["judge"]["name"] == "planted" and r["n"] == 4 and 0 <= r["win_rate"] <= 1 and r["kl_k3"] >= 0
    assert r["provenance"]["config"]["judge"]["name"] == "planted"

    policy = results / "train" / "ipo" / "seed0" / "model"
    run("generate", *common, "--policy", policy, "--dataset", "hh", "--out", tmp_path / "mine")
    run("judge", *common, "--samples", tmp_path / "mine", "--dataset", "hh", "--out", tmp_path / "judged")
    mine = read_json(tmp_path / "judged" / "hh.json")
    assert mine["method"] == "policy" and mine["policy"] == str(policy) and mine["n_pairs"] == 4
    with pytest.raises(SystemExit):
        run("judge", *common)  # neither --method nor --samples


def test_every_method_has_metrics_for_every_split(demo_run):
    results, _ = demo_run
    for method in LOSSES:
        for split in ("hh", "shp", "uf"):
            r = read_json(results / "evaluate" / method / "seed0" / f"{split}.json")
            assert r["n_pairs"] == 8 and r["dataset"] == split and r["method"] == method
            for key in ("eval_rewards/accuracies", "eval_rewards/margins", "eval_kl/token_mean",
                        "eval_logratio/sequence_mean"):
                assert math.isfinite(r[key]), (method, split, key)
            assert 0 <= r["eval_rewards/accuracies"] <= 1 and r["eval_kl/token_mean"] > 0
            assert len(r["split_sha256"]) == 64
            assert len(r["pairs"]["prompt"]) == 8 and all(len(k) == 16 for k in r["pairs"]["prompt"])
            assert r["provenance"]["versions"]["torch"] and r["provenance"]["device"] == "cpu"
            assert r["provenance"]["config_sha256"] == config_sha256(r["provenance"]["config"])
            assert r["provenance"]["config"]["data"]["n_eval"] == 8 and r["seed"] == 0


def test_training_logs_and_trust_region_bookkeeping(demo_run):
    results, _ = demo_run
    log = [json.loads(line) for line in open(results / "train" / "p2o" / "seed0" / "log.jsonl")]
    train = [r for r in log if r["kind"] == "train"]
    # 3 datasets × 24/8 batches × K = 2 inner steps, datasets visited in order, never mixed
    assert len(train) == 18 and [r["dataset"] for r in train] == ["hh"] * 6 + ["shp"] * 6 + ["uf"] * 6
    assert [r["inner_step"] for r in train] == [0, 1] * 9
    for r in train:
        assert {"loss", "grad_norm", "lr", "tokens_per_s", "rewards/margins", "trust/clip_frac"} <= set(r)
        if r["inner_step"] == 0:  # the snapshot is this step's own forward: ρ = 1 exactly
            assert r["trust/ratio_chosen"] == 1.0
    evals = [r for r in log if r["kind"] == "eval"]
    assert {r["step"] for r in evals} == {0, 4, 8, 12, 16, 18}
    step0 = [r for r in evals if r["step"] == 0]  # before training the policy is the reference
    assert all(r["eval_kl/token_mean"] < 1e-6 and r["eval_rewards/accuracies"] == 0.5  # every pair a tie: ½ each
               and r["eval_rewards/ties"] == 1.0 for r in step0)
    summary = read_json(results / "train" / "p2o" / "seed0" / "summary.json")
    assert summary["inner_steps"] == 2 and summary["final"]["steps"] == 18
    assert summary["final"]["nonfinite_skipped"] == 0 and not any(r["skipped"] for r in train)
    assert set(summary["split_sha256"]) == {"hh", "shp", "uf"} and "git_commit" in summary["provenance"]
    config = summary["provenance"]["config"]  # the whole resolved config, defaults included
    assert config["methods"]["p2o"]["inner_steps"] == 2 and config["train"]["max_nonfinite_frac"] == 0.01
    assert summary["provenance"]["config_sha256"] == config_sha256(config)
    assert (results / "train" / "p2o" / "seed0" / "model" / "config.json").exists()
    scaled = read_json(results / "train" / "pkto" / "seed0" / "summary.json")  # lr_scale: 2.0
    assert scaled["lr_scale"] == 2.0 and summary["lr_scale"] == 1.0
    assert scaled["train"]["lr"] == 2 * summary["train"]["lr"] == 2 * config["train"]["lr"]
    scaled_log = [json.loads(line) for line in open(results / "train" / "pkto" / "seed0" / "log.jsonl")]
    assert max(r["lr"] for r in scaled_log if r["kind"] == "train") == pytest.approx(
        2 * max(r["lr"] for r in train))


def test_reference_log_probs_are_shared_and_checked(demo_run):
    results, common = demo_run
    ref = ReferenceLogps.load(results / "reference" / "hh_train.pt")
    train_ids = [json.loads(line)["id"] for line in open(results / "data" / "hh" / "train.jsonl")]
    assert ref.ids == train_ids and ref.chosen.shape == (24,) and (ref.chosen < 0).all()
    # evaluating the reference model itself: zero KL, all ties (a tie counts half: accuracy 0.5)
    run("evaluate", *common, "--policy", results / "sft" / "model", "--out", results / "self")
    r = read_json(results / "self" / "hh.json")
    assert r["eval_kl/token_mean"] < 1e-6 and r["eval_rewards/accuracies"] == 0.5 and r["eval_rewards/ties"] == 1.0
    assert r["eval_reference/max_abs_gap"] < 1e-3


@pytest.mark.parametrize("override, key", [
    ({"methods": {"p2o": {"eps_clip": 1.5}}}, "methods.p2o.eps_clip"),
    ({"data": {"n_train": 0}}, "data.n_train"),
    ({"data": {"n_eval": -3}}, "data.n_eval"),
])
def test_config_errors_name_the_key_and_exit_2(tmp_path, capsys, override, key):
    bad = write_config(tmp_path / "bad.yaml", override)
    with pytest.raises(SystemExit) as e:
        run("prepare", "-c", "config/config.yaml", "-c", bad, "--workdir", tmp_path)
    assert e.value.code == 2
    assert key in capsys.readouterr().err


def test_real_hh_rows_end_to_end(shared_data, tmp_path):
    """DPO and P²O on real Anthropic/hh-rlhf rows with the tiny offline model."""
    source = require_shared(shared_data, "hh-rlhf/helpful-base.test.jsonl.gz")
    cfg = write_config(tmp_path / "hh.yaml", {**SMALL, "data": {
        **SMALL["data"], "order": ["hh"], "datasets": {"hh": {"source": str(source), "data_dir": None}}},
        "train": {**SMALL["train"], "eval_every": 0}})
    common = ["-c", "config/config.yaml", "-c", cfg, "--workdir", tmp_path / "results", "--device", "cpu"]
    for step in ("prepare", "init", "sft", "reference"):
        run(step, *common)
    for method in ("dpo", "p2o"):
        run("train", *common, "--method", method)
        run("evaluate", *common, "--method", method)
        r = read_json(tmp_path / "results" / "evaluate" / method / "seed0" / "hh.json")
        assert r["n_pairs"] == 8 and r["eval_kl/token_mean"] > 0
    manifest = read_json(tmp_path / "results" / "data" / "hh" / "manifest.json")
    assert manifest["rows"] == 2354 and manifest["pairs"] == 2339


class _StopAfterDemoData(Exception):
    """Raised in place of ``prepare``: ``p2o demo`` has decided which demo files to write by then."""


def _stop(args, cfg):
    raise _StopAfterDemoData


@pytest.mark.parametrize("configs, written", [
    (["config/config.yaml"], []),  # hub ids (Anthropic/hh-rlhf, stanfordnlp/SHP, ...): no demo data
    (["config/config.yaml", "config/demo.yaml"], ["results/demo/raw/hh.jsonl", "results/demo/raw/shp.jsonl",
                                                  "results/demo/raw/ultrafeedback.jsonl"]),
])
def test_demo_writes_demo_data_only_for_missing_demo_files(tmp_path, monkeypatch, configs, written):
    """``p2o demo`` once wrote the demo files beside any missing source, a hub id included: the paper's
    ``stanfordnlp/SHP`` left a ``stanfordnlp/`` folder of demo rows in the working directory. It writes
    them only where every missing source is a local path named like a demo file."""
    import p2o.cli

    monkeypatch.setattr(p2o.cli, "cmd_prepare", _stop)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(_StopAfterDemoData):
        run("demo", *[a for c in configs for a in ("-c", REPO / c)], "--workdir", "runs", "--device", "cpu",
            "--n-prompts", 20)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == written


def test_seed_scope_pipeline_gives_each_seed_its_own_models(tmp_path, monkeypatch):
    """``p2o demo`` with seed_scope: pipeline makes an initial model, SFT model and reference log-probs
    per seed, and seed s trains and is evaluated against seed s's; with the default it makes one of
    each at the seedless paths (the jobs are recorded, not run)."""
    import p2o.cli

    def record(name):
        return lambda *args, **kwargs: calls.append((name, [str(a) for a in args] + [str(v) for v in kwargs.values()]))

    for name in ("init_model", "sft", "reference", "train", "evaluate"):
        monkeypatch.setattr(p2o.cli.jobs, name, record(name))
    monkeypatch.setattr(p2o.cli, "cmd_prepare", lambda args, cfg: None)
    monkeypatch.setattr(p2o.cli, "cmd_demo_data", lambda args, cfg=None: None)
    monkeypatch.setattr(p2o.cli, "summary_table", lambda *args: "")
    for scope in ("training", "pipeline"):
        calls = []
        cfg = write_config(tmp_path / f"{scope}.yaml", {"seeds": [0, 1], "seed_scope": scope})
        run("demo", "-c", REPO / "config/config.yaml", "-c", REPO / "config/demo.yaml", "-c", cfg, "--workdir", "r",
            "--device", "cpu", "--methods", "dpo")
        out = {name: [args for n, args in calls if n == name] for name in ("init_model", "sft", "reference", "train")}
        if scope == "training":
            assert [a[2] for a in out["init_model"]] == ["r/base"] and [a[5] for a in out["sft"]] == ["r/sft"]
            assert all(a[0] == "r/sft/model" for a in out["train"])
        else:
            assert [a[2] for a in out["init_model"]] == ["r/base/seed0", "r/base/seed1"]
            assert [a[0] for a in out["sft"]] == ["r/base/seed0", "r/base/seed1"]
            assert [a[5] for a in out["sft"]] == ["r/sft/seed0", "r/sft/seed1"]
            assert {a[0] for a in out["reference"]} == {"r/sft/seed0/model", "r/sft/seed1/model"}
            assert all(a[5].startswith(f"r/reference/{a[0].split('/')[2]}/") for a in out["reference"])
            for a in out["train"]:
                seed = a[6]
                assert a[0] == f"r/sft/seed{seed}/model" and f"r/reference/seed{seed}/hh_train.pt" in a[2], a
            evaluated = [args for n, args in calls if n == "evaluate"]
            assert {a[1] for a in evaluated} == {"r/sft/seed0/model", "r/sft/seed1/model"}
            for policy, model, targets, *_ in evaluated:  # one call per run, every split against its seed's files
                seed = model.split("/")[2]
                assert policy.split("/")[3] == seed and targets.count(f"reference='r/reference/{seed}/") == 3, targets
