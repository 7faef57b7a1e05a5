"""GPU slots: each model job claims one visible GPU for its lifetime, so ``--resources gpu=N`` runs N
jobs on N different cards instead of N jobs on card 0.

A slot is a file lock (``fcntl.flock``, exclusive) on ``<lock dir>/<host>/<id>.lock``, one per visible
device, taken without blocking on the first free id in order and held by an open file until the
process exits: the OS drops the lock when the process dies, SIGKILL included, so a crashed job never
leaves a slot taken. The job then sets ``CUDA_VISIBLE_DEVICES`` to its id before torch initialises
CUDA, and runs on ``cuda`` (its only visible device).

The visible ids are, in order of precedence: ``P2O_FAKE_GPU_IDS`` (comma-separated; for tests on
machines without a GPU: the lock is taken and ``CUDA_VISIBLE_DEVICES`` set, and the job runs on
``cpu``), ``CUDA_VISIBLE_DEVICES`` (its entries, indices or UUIDs, as given), else
``0 .. torch.cuda.device_count() - 1`` (NVML-based: it does not initialise CUDA). No device: ``cpu``
and no lock. One device: no lock either (every job uses it, as without slots; Snakemake's ``gpu``
resource decides how many share it). Under Slurm (``SLURM_JOB_ID``) Slurm has chosen the devices
already and nothing is locked.

When every slot is taken (more jobs than GPUs: another run holds cards, or ``--resources gpu`` is set
above the card count), the job waits, saying so once on stderr, and polls every
``POLL_SECONDS``; ``P2O_GPU_SLOT_TIMEOUT`` (seconds) bounds the wait, after which it stops with a
``RuntimeError`` naming the lock folder. The locks live under ``.snakemake/gpu-slots`` of the
working directory (``P2O_GPU_SLOTS_DIR`` to move them), one folder per host, so that two nodes sharing a
file system never contend for each other's cards.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import sys
import time
from pathlib import Path

FAKE_IDS_ENV = "P2O_FAKE_GPU_IDS"
LOCK_DIR_ENV = "P2O_GPU_SLOTS_DIR"
TIMEOUT_ENV = "P2O_GPU_SLOT_TIMEOUT"
DEFAULT_LOCK_DIR = ".snakemake/gpu-slots"
POLL_SECONDS = 0.5

_held: dict[str, object] = {}  # id -> the open lock file, kept open for the process's lifetime


def visible_ids() -> list[str]:
    """The ids a job may claim (see the module docstring for the order of precedence)."""
    for env in (FAKE_IDS_ENV, "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(env)
        if value is not None:
            return [i.strip() for i in value.split(",") if i.strip() and i.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV, DEFAULT_LOCK_DIR)) / re.sub(r"[^\w.-]", "_", socket.gethostname())


def _try_lock(path: Path):
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def claim_slot(ids: list[str], directory: str | os.PathLike | None = None, timeout: float | None = None) -> str:
    """Lock the first free id of ``ids`` for the rest of this process's life and return it; wait while
    all are taken, up to ``timeout`` seconds (None: ``P2O_GPU_SLOT_TIMEOUT`` if set, else for ever)."""
    if not ids:
        raise ValueError("no device ids to claim")
    held = next((i for i in ids if i in _held), None)
    if held is not None:  # a second call in the same process keeps its slot
        return held
    directory = Path(directory) if directory is not None else lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    if timeout is None and os.environ.get(TIMEOUT_ENV):
        timeout = float(os.environ[TIMEOUT_ENV])
    start, said = time.monotonic(), False
    while True:
        for i in ids:
            f = _try_lock(directory / (re.sub(r"[^\w.-]", "_", i) + ".lock"))
            if f is not None:
                _held[i] = f
                return i
        waited = time.monotonic() - start
        if timeout is not None and waited >= timeout:
            raise RuntimeError(f"no free GPU slot among {ids} after {waited:.0f} s (locks in {directory}; "
                               f"{TIMEOUT_ENV} sets how long to wait): another job holds each of them")
        if not said:
            print(f"waiting for a free GPU slot among {ids} (locks in {directory})", file=sys.stderr, flush=True)
            said = True
        time.sleep(POLL_SECONDS)


def claim_device() -> str:
    """The device string a model job runs on: a claimed slot's GPU as ``cuda``, else ``cpu``. Call it
    before anything initialises CUDA (it sets ``CUDA_VISIBLE_DEVICES``)."""
    ids = visible_ids()
    if not ids:
        return "cpu"
    if len(ids) > 1 and "SLURM_JOB_ID" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = claim_slot(ids)
    if FAKE_IDS_ENV in os.environ:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
