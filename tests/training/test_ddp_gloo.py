"""One training job on two processes (``train.devices: 2``, gloo on CPU) matches one process at the
same global batch: each process takes half of every batch, gradients are summed, rank 0 alone logs.

The two processes are started with ``torch.multiprocessing.spawn`` on a free port, join the group as
``torchrun`` would have them (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``), and train
DPO (4 optimizer steps, with and without gradient accumulation) and SFT, whose token-mean loss
weighs each process's share by its response tokens.
"""

from __future__ import annotations

import copy
import os
import socket
from dataclasses import replace

import pytest
import torch
import torch.multiprocessing as mp

from p2o.config import OptimConfig, TokenizeConfig
from p2o.io import JsonlLog
from p2o.losses import MethodSpec
from p2o.model.reference import compute_reference_logps
from p2o.model.tokenize import tokenize_pairs
from p2o.training import parallel
from p2o.training.preference import train_preference
from p2o.training.sft import sft

pytestmark = pytest.mark.filterwarnings("ignore")

WORDS = ["tea", "bread", "rain", "maps", "bees", "jazz", "kites", "moss"]
LR = 1e-2
OPTIM = OptimConfig(lr=LR, batch_size=4, epochs=2, warmup_ratio=0.0, max_grad_norm=1e3)
DPO = MethodSpec("dpo", "dpo", {"beta": 0.5})
# batches of 7 then 1 pair: rank 1 gets no row of the second batch, and takes part with a zero gradient
RUNS = {"dpo": {}, "dpo_accum2": {"grad_accum": 2}, "sft": {}, "dpo_batch7": {"batch_size": 7}}
SAME_AS = {"dpo_accum2": "dpo"}  # the one-process run a run must match


def run_all(out: str, tok, model, split, ref, **optim) -> None:
    """Every run of ``RUNS`` from ``model``: final weights and train records to ``out/<run>.pt``."""
    for name, extra in RUNS.items():
        policy, cfg = copy.deepcopy(model), replace(OPTIM, **optim, **extra)
        with JsonlLog(os.path.join(out, f"{name}.jsonl")) as log:
            if name == "sft":
                sft(policy, [split], cfg, 0, tok.pad_token_id, log)
            else:
                train_preference(policy, [split], {"hh": ref}, DPO, cfg, 0, tok.pad_token_id, log)
        torch.save({"weights": policy.state_dict(), "records": [r for r in log.records if r["kind"] == "train"]},
                   os.path.join(out, f"{name}.pt"))


def worker(rank: int, port: int, out: str, tok, model, split, ref) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    assert parallel.init(2) == "gloo"
    os.makedirs(os.path.join(out, str(rank)), exist_ok=True)
    run_all(os.path.join(out, str(rank)), tok, model, split, ref, devices=2)
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def eight(setup):
    """The tiny model of ``setup`` and one split of 8 pairs of unequal lengths."""
    tok, model, _, _ = setup
    prompts = [f"\n\nHuman: Tell me about {w}.\n\nAssistant:" for w in WORDS]
    chosen = [" " + " ".join([f"{w.capitalize()} is lovely."] * (k + 1)) for k, w in enumerate(WORDS)]
    rejected = [" No." if k % 2 else f" I do not know {w}." for k, w in enumerate(WORDS)]
    split = tokenize_pairs(tok, "hh", [f"hh{i}" for i in range(8)], prompts, chosen, rejected, TokenizeConfig(64, 24))
    model = copy.deepcopy(model).float()
    return tok, model, split, compute_reference_logps(model, split, TokenizeConfig(64, 24), tok.pad_token_id)


@pytest.fixture(scope="module")
def runs(eight, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    os.makedirs(out / "single")
    run_all(str(out / "single"), *eight)
    mp.spawn(worker, args=(free_port(), str(out), *eight), nprocs=2, join=True)
    return {where: {name: torch.load(out / where / f"{name}.pt", weights_only=False) for name in RUNS}
            for where in ("single", "0", "1")}


@pytest.mark.parametrize("name", list(RUNS))
def test_two_processes_match_one_at_the_same_global_batch(runs, eight, name):
    single, ddp, other = runs["single"][name], runs["0"][name], runs["1"][name]
    reference = runs["single"][SAME_AS.get(name, name)]  # one process, no accumulation
    assert len(single["records"]) == len(ddp["records"]) == 4
    for ra, rb in zip(reference["records"], ddp["records"]):
        for key in ra.keys() - {"tokens_per_s", "elapsed_s"}:
            if isinstance(ra[key], float):
                # summed in another order: fp32 rounding, seen up to 1.1e-5 relative on a gradient norm
                assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-7), key
            else:
                assert rb[key] == ra[key], key
    for key, x in reference["weights"].items():
        # AdamW moves a weight by ~lr·m/(√v + ε): a near-zero gradient component moves by its rounding
        torch.testing.assert_close(ddp["weights"][key], x, rtol=1e-6, atol=1e-2 * LR)
        assert torch.equal(other["weights"][key], ddp["weights"][key]), key  # the processes stay in step
    assert not other["records"], "rank 1 logged: only rank 0 writes"
    initial = eight[1].state_dict()
    assert not all(torch.equal(initial[k], x) for k, x in reference["weights"].items())  # training moved them


def test_devices_without_a_launch_of_that_many_processes_is_refused(eight):
    tok, model, split, ref = eight
    with pytest.raises(ValueError, match=r"train\.devices = 2.*torchrun --nproc_per_node 2"):
        train_preference(copy.deepcopy(model), [split], {"hh": ref}, DPO, replace(OPTIM, devices=2), 0,
                         tok.pad_token_id)
    with pytest.raises(ValueError, match=r"train\.devices = 2.*torchrun --nproc_per_node 2"):
        parallel.init(2)


# ---------------------------------------------------------------- the train job, launched by torchrun




def test_a_train_job_on_two_processes_writes_what_one_process_writes(workdir):
    from p2o.io import read_json
    from p2o.model.loading import load_model
    from p2o.stages import jobs
    from p2o.stages.launch import on_devices

    names, cfg = ("hh", "shp"), replace(OPTIM, batch_size=2, epochs=1, checkpoint_every=2)  # rank 0 writes them
    args = (workdir / "sft", {n: workdir / "data" / f"{n}.jsonl" for n in names},
            {n: workdir / "reference" / f"{n}.pt" for n in names}, DPO)
    jobs.train(*args, cfg, TokenizeConfig(64, 32), 0, workdir / "one")
    on_devices(2, jobs.train, *args, replace(cfg, devices=2), TokenizeConfig(64, 32), 0, workdir / "two")
    one, two = read_json(workdir / "one" / "summary.json"), read_json(workdir / "two" / "summary.json")
    assert two["train"]["devices"] == 2 and two["final"]["steps"] == one["final"]["steps"] == 4
    assert two["final"]["loss"] == pytest.approx(one["final"]["loss"], rel=1e-5)
    assert two["compute"] == one["compute"]  # the FLOP accounting does not depend on the split
    a, b = load_model(workdir / "one" / "model").state_dict(), load_model(workdir / "two" / "model").state_dict()
    for key, x in a.items():
        torch.testing.assert_close(b[key], x, rtol=1e-6, atol=1e-2 * LR)
    logs = [line for line in open(workdir / "two" / "log.jsonl")]
    assert len(logs) == len(open(workdir / "one" / "log.jsonl").readlines())  # written once, by rank 0
    assert not (workdir / "two" / "checkpoint.pt").exists()  # removed at the end
