"""Shared pytest fixtures.

``shared_data``: the folder of real data files (``shared/data``), from the environment variable
``P2O_SHARED_DATA`` if set, else ``<repo>/../shared/data``. It is never copied into the repository;
tests that need a file from it skip when it is absent (``require_shared``).

``tokenizer``, ``model``, ``setup``: tiny models and splits (``tests/tiny_models.py``), module-scoped; ``workdir``:
``setup`` on disk.

The whole suite runs offline: the Hugging Face hub is switched off here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# the tiny models and splits of tests/tiny_models.py, as fixtures for every test module
from tiny_models import model, setup, tokenizer, workdir  # noqa: E402, F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Subprocesses (python -m p2o, snakemake in a copy of the workflow) import the p2o under test, also
# when PYTHONPATH names it relative to the repository and they run in another folder.
import p2o  # noqa: E402

os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(p2o.__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH")]))

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WORKFLOW_READS = ("workflow", "config", "paper", "requirements")  # what a run reads besides the library


def workflow_checkout(dest: Path, library: bool = False) -> Path:
    """A copy of what the workflow reads, to run it in isolation; with ``library``, also of src/, which
    the workflow then imports p2o from when src/ is put first on PYTHONPATH (to edit it)."""
    import shutil

    for name in WORKFLOW_READS + (("src",) if library else ()):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real data folder (it may not exist: callers skip when a file is missing)."""
    env = os.environ.get("P2O_SHARED_DATA")
    return Path(env).expanduser() if env else (REPO.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Path of tests/fixtures (small schema-exact raw files committed with the tests)."""
    return FIXTURES


def require_shared(shared_data: Path, rel: str) -> Path:
    """``shared_data / rel``, or skip the test with the reason when that file is absent."""
    path = shared_data / rel
    if not path.exists():
        pytest.skip(f"real data not found at {path}; set P2O_SHARED_DATA to the shared/data folder")
    return path
