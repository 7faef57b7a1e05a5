"""Run a stage function on ``devices`` processes: one data-parallel job (``p2o.training.parallel``).

``on_devices(n, jobs.train, ...)`` calls ``jobs.train(...)`` here when ``n`` is 1 (or when this process
already is one of a ``torchrun`` launch), and otherwise pickles the call to a temporary file and runs
``python -m torch.distributed.run --standalone --nproc_per_node n -m p2o.stages.launch <file>``: every
process unpickles the call and makes it; the stage joins the process group, and its rank 0 alone
writes. A workflow rule script stays one call; the job's stderr goes where the script's goes.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable


def on_devices(devices: int, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` on ``devices`` processes; its return value with one (None with several)."""
    if devices == 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return fn(*args, **kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        call = os.path.join(tmp, "call.pkl")
        with open(call, "wb") as f:
            pickle.dump((fn.__module__, fn.__qualname__, args, kwargs), f)
        try:
            err = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # a stderr without a file (captured): inherit fd 2
            err = None
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}",
                        "-m", "p2o.stages.launch", call], check=True, stdout=err, stderr=err)
    return None


def main(call: str) -> None:
    with open(call, "rb") as f:
        module, name, args, kwargs = pickle.load(f)
    getattr(importlib.import_module(module), name)(*args, **kwargs)


if __name__ == "__main__":
    main(sys.argv[1])
