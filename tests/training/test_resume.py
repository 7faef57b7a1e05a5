"""Kill a real training process with SIGKILL (alone, and under Snakemake), rerun it, and get what
an uninterrupted run gets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import workflow_checkout
from safetensors.torch import load_file

from p2o.cli import main

pytestmark = pytest.mark.filterwarnings("ignore")

SMALL = {
    "data": {"n_train": 48, "n_eval": 8},
    "model": {"name_or_path": "tiny", "tiny": {"n_layer": 1, "n_head": 2, "n_embd": 32, "vocab_size": 512,
                                               "n_positions": 96}},
    "tokenize": {"max_length": 64, "max_prompt_length": 32},
    "sft": {"lr": 3.0e-3, "epochs": 1, "batch_size": 8},
    "train": {"lr": 1.0e-3, "epochs": 2, "batch_size": 4, "eval_every": 0, "checkpoint_every": 4},
    "methods": {"p2o": {"inner_steps": 2}},
    "seeds": [0],
}


# MKL's conditional numerical reproducibility: without it the last bit of a CPU matmul can depend on
# the memory layout a process happens to have, and a resumed process then differed from the
# uninterrupted one about one run in five (the training code is the same in both)
BITWISE = {**os.environ, "MKL_CBWR": "COMPATIBLE"}


def train_cmd(cfg, workdir):
    return [sys.executable, "-m", "p2o", "train", "-c", "config/config.yaml", "-c", str(cfg), "--workdir",
            str(workdir), "--device", "cpu", "--method", "p2o", "--seed", "0"]


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_to_the_same_result(tmp_path):
    raw = tmp_path / "raw"
    main(["demo-data", "--out", str(raw), "--n-prompts", "80"])
    cfg = tmp_path / "small.yaml"
    cfg.write_text(yaml.safe_dump({**SMALL, "data": {**SMALL["data"], "datasets": {
        "hh": {"source": str(raw / "hh.jsonl"), "data_dir": None}, "shp": {"source": str(raw / "shp.jsonl")},
        "uf": {"source": str(raw / "ultrafeedback.jsonl")}}}}))
    base = tmp_path / "base"
    for step in ("prepare", "init", "sft", "reference"):
        main([step, "-c", "config/config.yaml", "-c", str(cfg), "--workdir", str(base), "--device", "cpu"])
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    shutil.copytree(base, killed)
    shutil.copytree(base, whole)

    subprocess.run(train_cmd(cfg, whole), check=True, capture_output=True, env=BITWISE)

    run_dir = killed / "train" / "p2o" / "seed0"
    proc = subprocess.Popen(train_cmd(cfg, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=BITWISE)
    deadline = time.time() + 300
    while not (run_dir / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()  # it really died mid-run
    ckpt_steps = __import__("torch").load(run_dir / "checkpoint.pt", weights_only=False)["steps"]
    assert 0 < ckpt_steps < 144  # 3 datasets x 12 batches x 2 epochs x K = 2

    rerun = subprocess.run(train_cmd(cfg, killed), check=True, capture_output=True, text=True, env=BITWISE)
    assert f"resumed from {run_dir / 'checkpoint.pt'} at optimizer step {ckpt_steps}" in rerun.stderr
    assert not (run_dir / "checkpoint.pt").exists()  # removed when the job finished

    a = load_file(run_dir / "model" / "model.safetensors")
    b = load_file(whole / "train" / "p2o" / "seed0" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # bit for bit

    def losses(d):
        return [(r["step"], r["loss"]) for r in map(json.loads, open(d / "train" / "p2o" / "seed0" / "log.jsonl"))]
    assert losses(killed) == losses(whole) and len(losses(whole)) == 144
    for d in (killed, whole):
        main(["evaluate", "-c", "config/config.yaml", "-c", str(cfg), "--workdir", str(d), "--device", "cpu",
              "--method", "p2o"])
    ra, rb = (json.load(open(d / "evaluate" / "p2o" / "seed0" / "hh.json")) for d in (killed, whole))
    assert {k: v for k, v in ra.items() if k.startswith("eval_")} == {k: v for k, v in rb.items()
                                                                       if k.startswith("eval_")}


KILLABLE = {  # a demo workflow cut down to one method, trained long enough to be killed mid-run
    "data": {"n_train": 24, "n_eval": 8},
    "model": {"tiny": {"n_layer": 1, "n_head": 2, "n_embd": 32, "vocab_size": 512, "n_positions": 96}},
    "tokenize": {"max_length": 64, "max_prompt_length": 32},
    "sft": {"epochs": 1},
    "train": {"epochs": 2, "batch_size": 4, "eval_every": 8, "checkpoint_every": 4},
    "method_order": ["p2o"],
    "methods": {"p2o": {"inner_steps": 2}},
    "compute_matched": {"methods": []},
    "seeds": [0],
}
TARGET = "results/train/p2o/seed0/summary.json"


def snakemake_cmd(*args):
    # targets first: --configfile takes every word after it
    return [sys.executable, "-m", "snakemake", *args, "--cores", "1", "--resources", "gpu=1", "--configfile",
            "config/demo.yaml", "killable.yaml"]


@pytest.mark.slow
def test_snakemake_job_killed_then_rerun_resumes_to_the_same_result(tmp_path):
    """SIGKILL the whole Snakemake process group mid-training; ``--unlock`` and
    ``--rerun-incomplete`` then resume the train job from its checkpoint, and it ends with the
    weights, log and final metrics of an uninterrupted run."""
    base = workflow_checkout(tmp_path / "base")
    (base / "killable.yaml").write_text(yaml.safe_dump(KILLABLE))
    refs = [f"results/reference/{d}_{p}.pt" for d in ("hh", "shp", "uf") for p in ("train", "eval")]
    subprocess.run(snakemake_cmd(*refs), cwd=base, check=True, capture_output=True)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    shutil.copytree(base, whole)
    shutil.copytree(base, killed)

    subprocess.run(snakemake_cmd(TARGET), cwd=whole, check=True, capture_output=True)

    run_dir = killed / "results" / "train" / "p2o" / "seed0"
    proc = subprocess.Popen(snakemake_cmd(TARGET), cwd=killed, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not (run_dir / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the job's script process alike
    proc.wait()
    assert not (run_dir / "summary.json").exists() and not (run_dir / "log.jsonl").exists()
    ckpt_steps = __import__("torch").load(run_dir / "checkpoint.pt", weights_only=False)["steps"]
    assert 0 < ckpt_steps < 72  # 3 datasets x 6 batches x 2 epochs x K = 2

    plain = subprocess.run(snakemake_cmd(TARGET), cwd=killed, capture_output=True, text=True)
    assert plain.returncode != 0  # Snakemake refuses to go on silently: locked or incomplete
    subprocess.run(snakemake_cmd("--unlock"), cwd=killed, check=True, capture_output=True)
    subprocess.run(snakemake_cmd(TARGET, "--rerun-incomplete"), cwd=killed, check=True, capture_output=True)
    job_log = (killed / "logs" / "train" / "p2o" / "seed0.log").read_text()
    assert f"at optimizer step {ckpt_steps}" in job_log and "resumed from" in job_log
    assert not (run_dir / "checkpoint.pt").exists()

    a = load_file(run_dir / "model" / "model.safetensors")
    b = load_file(whole / "results" / "train" / "p2o" / "seed0" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # bit for bit

    def records(d):
        rows = map(json.loads, open(d / "results" / "train" / "p2o" / "seed0" / "log.jsonl"))
        return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in rows]  # timings
    assert records(killed) == records(whole) and len(records(whole)) > 72  # train and held-out records
    sa, sb = (json.load(open(d / TARGET)) for d in (killed, whole))
    assert sa["final"] == sb["final"]
