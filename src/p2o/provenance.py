"""What produced a result: the config and its hash, package versions, the git commit of the
code, the device.

Every SFT and training summary and every evaluation record carries ``provenance()`` next to its
seed and the sha256 of the data splits it read; the paper's setup table is built from these.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from collections.abc import Mapping
from pathlib import Path

PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "numpy")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the repository holding this code, with ``-dirty`` for uncommitted changes; None outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for name in ("p2o", *PACKAGES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_name() -> str | None:
    """The CPU model (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def config_sha256(config: Mapping) -> str:
    """sha256 of the config's canonical JSON (keys sorted): equal configs, equal hashes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def provenance(device: str, config: Mapping | None = None) -> dict:
    """Code, software, hardware and (when given) the whole resolved config with its hash."""
    import torch

    name = torch.cuda.get_device_name() if device.startswith("cuda") and torch.cuda.is_available() else cpu_name()
    out = {"git_commit": git_commit(), "versions": versions(), "device": device, "device_name": name,
           "threads": torch.get_num_threads()}
    if config is not None:
        out.update(config_sha256=config_sha256(config), config=dict(config))
    return out
