"""What produced a result: the config and its hash, package versions, the git commit of the
code, the device; and where the data and the model came from.

Every SFT and training summary and every evaluation record carries ``provenance()`` next to its
seed and the sha256 of the data splits it read; the paper's setup table is built from these.

A *source record* pins an input that came from outside the workflow: ``{"kind": "hub", "source":
<hub id>, "revision": <as configured, or null>, "commit": <the resolved commit sha>}`` for the
Hugging Face hub, ``{"kind": "local", "source": <path>, "sha256": <digest>}`` for local files (the
file's sha256, or for a folder ``tree_sha256`` of its files), ``{"kind": "tiny", ...}`` for the
model built from the config. ``source_label`` says it in a few words for tables.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
import sys
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


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(files: Mapping[str, str | Path]) -> str:
    """One sha256 over several files: of the lines ``<sha256>  <name>`` (``sha256sum``'s format),
    sorted by name, so that renaming, adding or changing any file changes it."""
    lines = sorted(f"{file_sha256(path)}  {name}\n" for name, path in files.items())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def source_label(record: Mapping | None, short: int | None = None) -> str | None:
    """A source record (module docstring) in a few words: ``Anthropic/hh-rlhf@<commit>``,
    ``local sha256 <digest>`` or ``tiny (random init)``; commits and digests cut to ``short``
    characters when given. None for no record."""
    if not record:
        return None
    cut = (lambda h: h[:short]) if short else (lambda h: h)
    kind = record.get("kind")
    if kind == "hub":
        return f"{record['source']}@{cut(record['commit'])}"
    if kind == "local":
        return f"local sha256 {cut(record['sha256'])}"
    if kind == "tiny":
        return "tiny (random init)"
    return str(record.get("source"))


def provenance(device: str, config: Mapping | None = None) -> dict:
    """Code, software, hardware and (when given) the whole resolved config with its hash. A job that never
    imported torch (the planted judge) is not made to: its record has no torch threads."""
    torch = sys.modules.get("torch")
    on_gpu = torch is not None and device.startswith("cuda") and torch.cuda.is_available()
    out = {"git_commit": git_commit(), "versions": versions(), "device": device,
           "device_name": torch.cuda.get_device_name() if on_gpu else cpu_name()}
    if torch is not None:
        out["threads"] = torch.get_num_threads()
    if config is not None:
        out.update(config_sha256=config_sha256(config), config=dict(config))
    return out
