"""GPU slots with fake device ids (``P2O_FAKE_GPU_IDS``): concurrent processes get distinct slots, a
SIGKILLed holder frees its slot, and a process finding none waits, then stops after its timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from p2o import gpu_slots

# A job: claim a device, print the CUDA_VISIBLE_DEVICES it set, and hold the slot until stdin closes.
JOB = ("import os, sys; from p2o.gpu_slots import claim_device; d = claim_device(); "
       "print(os.environ['CUDA_VISIBLE_DEVICES'], d, flush=True); sys.stdin.read()")


def start(tmp_path, ids: str, timeout: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env.update({gpu_slots.FAKE_IDS_ENV: ids, gpu_slots.LOCK_DIR_ENV: str(tmp_path / "slots")})
    if timeout is not None:
        env[gpu_slots.TIMEOUT_ENV] = timeout
    return subprocess.Popen([sys.executable, "-c", JOB], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def slot_of(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline().split()
    assert line, proc.stderr.read()
    return line[0]


def stop(*procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_concurrent_jobs_get_distinct_slots_and_a_killed_job_frees_its_own(tmp_path):
    procs = [start(tmp_path, "3,5,7") for _ in range(3)]
    try:
        slots = [slot_of(p) for p in procs]
        assert sorted(slots) == ["3", "5", "7"]
        victim = slots.index("5")
        os.kill(procs[victim].pid, signal.SIGKILL)  # a crash: no cleanup code runs
        procs[victim].wait()
        procs.append(start(tmp_path, "3,5,7"))
        assert slot_of(procs[-1]) == "5"
    finally:
        stop(*procs)


def test_a_job_without_a_free_slot_waits_for_one(tmp_path):
    first, second = start(tmp_path, "0,1"), start(tmp_path, "0,1")
    try:
        freed = slot_of(first)
        assert {freed, slot_of(second)} == {"0", "1"}
        third = start(tmp_path, "0,1")
        time.sleep(1.5)
        assert third.poll() is None  # still waiting
        first.stdin.close()  # the first job ends cleanly
        first.wait()
        assert slot_of(third) == freed
        assert "waiting for a free GPU slot" in third.stderr.readline()
    finally:
        stop(first, second, third)


def test_a_job_without_a_free_slot_stops_after_its_timeout(tmp_path):
    holders = [start(tmp_path, "0,1") for _ in range(2)]
    try:
        for p in holders:
            slot_of(p)
        late = start(tmp_path, "0,1", timeout="1")
        assert late.wait(timeout=30) != 0
        assert "no free GPU slot among ['0', '1']" in late.stderr.read()
    finally:
        stop(*holders)


def test_one_visible_device_and_none_take_no_lock(tmp_path, monkeypatch):
    monkeypatch.setenv(gpu_slots.LOCK_DIR_ENV, str(tmp_path / "slots"))
    monkeypatch.setenv(gpu_slots.FAKE_IDS_ENV, "")
    assert gpu_slots.claim_device() == "cpu"
    monkeypatch.setenv(gpu_slots.FAKE_IDS_ENV, "4")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_slots.claim_device() == "cpu"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and not (tmp_path / "slots").exists()


def test_visible_ids_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv(gpu_slots.FAKE_IDS_ENV, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, GPU-abc ,")
    assert gpu_slots.visible_ids() == ["2", "GPU-abc"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_slots.visible_ids() == []


def test_claim_slot_refuses_an_empty_list(tmp_path):
    with pytest.raises(ValueError, match="no device ids"):
        gpu_slots.claim_slot([], tmp_path)
