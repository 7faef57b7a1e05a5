"""Atomic file output and JSON/JSONL helpers.

Every file p2o writes goes to a temporary name in the same folder and is renamed into place,
so an interrupted job never leaves a file that looks complete (at most a hidden
``.<name>.<random>.tmp``). Folders (saved models) are written the same way and renamed when
whole. Logs are written as ``<name>.partial`` and renamed when the job ends cleanly.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder; replace ``path`` with it if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n" for row in rows)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class JsonlLog:
    """JSONL log written as ``<path>.partial`` and renamed to ``path`` when the job ends cleanly,
    so a killed or failed job never leaves a log that looks complete (the partial one stays for
    reading). Flushed after every record.

    ``records`` holds what was written, so that a training checkpoint can carry the log with it.
    With ``tensorboard``, every record is also written as TensorBoard scalars (``TensorBoardMirror``).
    """

    def __init__(self, path: str | os.PathLike, tensorboard: bool = False):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # an older complete log must not outlive this run
        self.tensorboard = TensorBoardMirror(self.path.parent / TENSORBOARD_DIR) if tensorboard else None
        self._f = open(self.partial, "w", encoding="utf-8")
        self.records: list[dict] = []

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, default=_json_default) + "\n")
        self._f.flush()
        self.records.append(record)
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    def close(self, complete: bool = True) -> None:
        self._f.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if complete:
            os.replace(self.partial, self.path)

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)


TENSORBOARD_DIR = "tensorboard"  # beside log.jsonl


class TensorBoardMirror:
    """The numbers of each JSONL record as TensorBoard scalars in ``directory`` (``SummaryWriter``,
    imported only here: ``pip install tensorboard``). A scalar's tag is the record's key (``loss``,
    ``rewards/margins``), its step the record's ``step``; an evaluation record (``kind: eval``) adds
    its dataset, ``eval_rewards/accuracies/hh``. Strings, booleans, None and ``step`` are left out.
    The folder is emptied first, so that a rerun (or a resumed job, which writes its log again from
    the checkpoint) leaves one event file, as it leaves one log."""

    def __init__(self, directory: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(f"train.tensorboard needs the tensorboard package (pip install tensorboard): {e}") from e
        if directory.exists():
            shutil.rmtree(directory)
        self.writer = SummaryWriter(log_dir=str(directory))

    @staticmethod
    def scalars(record: dict) -> dict[str, float]:
        suffix = f"/{record['dataset']}" if record.get("kind") == "eval" and "dataset" in record else ""
        return {f"{k}{suffix}": float(v) for k, v in record.items()
                if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)}

    def write(self, record: dict) -> None:
        if "step" not in record:
            return
        for tag, value in self.scalars(record).items():
            self.writer.add_scalar(tag, value, record["step"])

    def close(self) -> None:
        self.writer.close()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
