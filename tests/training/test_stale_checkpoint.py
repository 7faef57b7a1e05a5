"""A checkpoint resumes only the run that wrote it (same parameters, input files and code); one of
another run, or one that cannot be read, is set aside and the job starts afresh.

A job is "killed" here by an exception raised right after the loop wrote a checkpoint: the file on
disk is the one a SIGKILL would leave (``tests/training/test_resume.py`` kills real processes).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch

from p2o.config import OptimConfig, TokenizeConfig
from p2o.io import JsonlLog, read_json
from p2o.losses import MethodSpec
from p2o.stages import jobs
from p2o.training import fingerprint
from p2o.training.fingerprint import Fingerprint, input_digests
from p2o.training.loop import Checkpoint
from p2o.training.preference import train_preference

pytestmark = pytest.mark.filterwarnings("ignore")

OPTIM = OptimConfig(lr=1e-2, batch_size=2, epochs=2, warmup_ratio=0.0, checkpoint_every=2)  # 8 steps


class Killed(Exception):
    pass


def kill_after_checkpoint(monkeypatch, at_step: int) -> None:
    """Make the loop die once it has written a checkpoint at ``at_step`` or later."""
    original = Checkpoint.after_batch

    def after_batch(self, batches_done):
        original(self, batches_done)
        if self.path is not None and self.path.exists() and self.opt.steps >= at_step:
            raise Killed

    monkeypatch.setattr(Checkpoint, "after_batch", after_batch)


def dpo(beta: float) -> MethodSpec:
    return MethodSpec("dpo", "dpo", {"beta": beta})


def train(setup, out, method, refs=None, optim=OPTIM):
    """(policy, train records) of a DPO run writing its checkpoint and log to ``out``."""
    tok, model, splits, fixture_refs = setup
    policy = copy.deepcopy(model)
    with JsonlLog(out / "log.jsonl") as log:
        train_preference(policy, splits, refs or fixture_refs, method, optim, 0, tok.pad_token_id, log,
                         checkpoint=out / "checkpoint.pt")
    return policy, [r for r in map(json.loads, open(out / "log.jsonl")) if r["kind"] == "train"]


def killed(setup, out, method, monkeypatch, at_step=4):
    with pytest.raises(Killed):
        train(setup, out, method)
    monkeypatch.undo()
    assert torch.load(out / "checkpoint.pt", weights_only=False)["steps"] == at_step


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def strip(records):
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in records]


def test_stale_checkpoint_of_another_beta_is_set_aside_and_the_run_starts_fresh(setup, tmp_path, monkeypatch, capsys):
    kill_after_checkpoint(monkeypatch, 4)
    killed(setup, tmp_path / "run", dpo(0.5), monkeypatch)
    capsys.readouterr()
    policy, records = train(setup, tmp_path / "run", dpo(5.0))
    err = capsys.readouterr().err
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert f"checkpoint {ckpt} is from another run (params changed: method.hparams.beta 0.5 → 5.0)" in err
    assert f"set aside as {ckpt}.stale, starting fresh" in err and "resumed" not in err
    assert (tmp_path / "run" / "checkpoint.pt.stale").exists() and not ckpt.exists()
    assert [r["step"] for r in records] == list(range(1, 9))  # a fresh log: nothing of the β = 0.5 steps

    whole, whole_records = train(setup, tmp_path / "whole", dpo(5.0))
    assert same_weights(policy, whole)
    assert strip(records) == strip(whole_records)


def test_stale_checkpoint_check_resumes_the_same_run_bit_for_bit(setup, tmp_path, monkeypatch, capsys):
    kill_after_checkpoint(monkeypatch, 4)
    killed(setup, tmp_path / "run", dpo(0.5), monkeypatch)
    capsys.readouterr()
    policy, records = train(setup, tmp_path / "run", dpo(0.5))
    assert f"resumed from {tmp_path / 'run' / 'checkpoint.pt'} at optimizer step 4" in capsys.readouterr().err
    assert not list((tmp_path / "run").glob("checkpoint.pt*"))

    whole, whole_records = train(setup, tmp_path / "whole", dpo(0.5))
    assert same_weights(policy, whole)
    assert strip(records) == strip(whole_records)


def test_stale_checkpoint_check_ignores_how_often_the_run_logs_and_checkpoints(setup, tmp_path, monkeypatch, capsys):
    kill_after_checkpoint(monkeypatch, 4)
    killed(setup, tmp_path / "run", dpo(0.5), monkeypatch)
    capsys.readouterr()
    policy, _ = train(setup, tmp_path / "run", dpo(0.5), optim=replace(OPTIM, checkpoint_every=4, log_every=2))
    assert "resumed from" in capsys.readouterr().err
    whole, _ = train(setup, tmp_path / "whole", dpo(0.5))
    assert same_weights(policy, whole)


def test_stale_checkpoint_of_an_edited_loss_function_starts_fresh(setup, tmp_path, monkeypatch, capsys):
    kill_after_checkpoint(monkeypatch, 4)
    killed(setup, tmp_path / "run", dpo(0.5), monkeypatch)
    real = fingerprint.code_digests

    def edited(entries):  # the digests after an edit of DPO's loss function, and of nothing else
        return {k: ("0" * 16 if k == "p2o.losses.dpo_family:dpo" else v) for k, v in real(entries).items()}

    monkeypatch.setattr(fingerprint, "code_digests", edited)
    capsys.readouterr()
    _, records = train(setup, tmp_path / "run", dpo(0.5))
    err = capsys.readouterr().err
    assert "is from another run (code changed: p2o.losses.dpo_family:dpo)" in err and "resumed" not in err
    assert [r["step"] for r in records] == list(range(1, 9))


def test_stale_checkpoint_truncated_file_is_set_aside_without_a_crash(setup, tmp_path, monkeypatch, capsys):
    kill_after_checkpoint(monkeypatch, 4)
    killed(setup, tmp_path / "run", dpo(0.5), monkeypatch)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    capsys.readouterr()
    policy, records = train(setup, tmp_path / "run", dpo(0.5))
    err = capsys.readouterr().err
    assert f"checkpoint {ckpt} is unreadable (" in err and f"set aside as {ckpt}.unreadable" in err
    assert (tmp_path / "run" / "checkpoint.pt.unreadable").exists()
    assert [r["step"] for r in records] == list(range(1, 9))
    whole, _ = train(setup, tmp_path / "whole", dpo(0.5))
    assert same_weights(policy, whole)


def test_stale_checkpoint_set_aside_replaces_an_older_one(setup, tmp_path, monkeypatch):
    kill_after_checkpoint(monkeypatch, 4)
    killed(setup, tmp_path / "run", dpo(0.5), monkeypatch)
    kill_after_checkpoint(monkeypatch, 4)
    killed(setup, tmp_path / "run", dpo(1.0), monkeypatch)  # sets the β = 0.5 one aside
    train(setup, tmp_path / "run", dpo(2.0))  # sets the β = 1.0 one aside, over it
    stale = torch.load(tmp_path / "run" / "checkpoint.pt.stale", weights_only=False)
    assert stale["fingerprint"]["params"]["method"]["hparams"] == {"beta": 1.0}


def test_stale_checkpoint_changed_code_or_inputs_is_named():
    run = Fingerprint({"train": {"lr": 2e-4}}, {"reference/hh": "a"}, {"p2o.losses.dpo_family": "x"})
    assert run.differences(run.record()) == ""
    old = Fingerprint({"train": {"lr": 1e-3}}, {"reference/hh": "b"}, {"p2o.losses.dpo_family": "y"}).record()
    assert run.differences(old) == ("params changed: train.lr 0.001 → 0.0002; inputs changed: reference/hh; "
                                    "code changed: p2o.losses.dpo_family")
    assert run.differences(None) == "written without a run fingerprint"  # a checkpoint of an older p2o


# ---------------------------------------------------------------- the train job, on files




def train_job(workdir, out):
    names = ("hh", "shp")
    return jobs.train(workdir / "sft", {n: workdir / "data" / f"{n}.jsonl" for n in names},
                      {n: workdir / "reference" / f"{n}.pt" for n in names}, dpo(0.5), OPTIM, TokenizeConfig(64, 32),
                      0, out)


def test_stale_checkpoint_after_a_reference_file_changed(workdir, monkeypatch, capsys):
    kill_after_checkpoint(monkeypatch, 4)
    with pytest.raises(Killed):
        train_job(workdir, workdir / "run")
    monkeypatch.undo()
    ref_path = workdir / "reference" / "hh.pt"
    ref = torch.load(ref_path, weights_only=True)
    ref["chosen"] = ref["chosen"] + 1e-3  # other reference log-probs, same pairs
    torch.save(ref, ref_path)
    capsys.readouterr()
    summary = train_job(workdir, workdir / "run")
    err = capsys.readouterr().err
    assert "is from another run (inputs changed: reference/hh)" in err and "resumed" not in err
    assert (workdir / "run" / "checkpoint.pt.stale").exists()
    steps = [r["step"] for r in map(json.loads, open(workdir / "run" / "log.jsonl")) if r["kind"] == "train"]
    assert steps == list(range(1, 9))

    whole = train_job(workdir, workdir / "whole")
    assert summary["final"] == whole["final"]
    assert summary["fingerprint"] == whole["fingerprint"] == read_json(workdir / "run" / "summary.json")["fingerprint"]
    assert summary["fingerprint"]["inputs"]["reference/hh"] == input_digests({"r": ref_path})["r"]
    assert {"p2o.stages.jobs:train", "p2o.training.loop:train_loop", "p2o.training.preference:train_preference",
            "p2o.losses.dpo_family:dpo", "p2o.model.logps:PairLogps"} <= summary["fingerprint"]["code"].keys()


def test_stale_checkpoint_inputs_reference_files_have_the_same_bytes_wherever_written(tmp_path):
    """A reference file's bytes depend only on its content (not on its path or the temporary name it was
    written under), so the same inputs give the same fingerprint in another working folder (the Slurm
    test compares a local run's summaries with a Slurm run's)."""
    from p2o.model.reference import ReferenceLogps

    ref = ReferenceLogps(ids=["a", "b"], chosen=torch.tensor([-1.0, -2.0]), rejected=torch.tensor([-3.0, -4.0]),
                         chosen_tokens=torch.tensor([1.0, 2.0]), rejected_tokens=torch.tensor([1.0, 2.0]),
                         mismatched=torch.tensor([-5.0, -6.0]), tokenize={})
    ref.save(tmp_path / "one" / "hh_train.pt")
    ref.save(tmp_path / "two.pt")
    digests = input_digests({"ref": tmp_path / "one" / "hh_train.pt"}), input_digests({"ref": tmp_path / "two.pt"})
    assert digests[0] == digests[1]
