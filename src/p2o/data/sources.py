"""Read raw rows of a preference dataset, from local files or the Hugging Face hub.

``read_raw_rows(ds)`` yields ``(origin, row_index, row)`` for every raw row, in source order:

* ``ds.source`` an existing file: ``.jsonl`` / ``.jsonl.gz`` (one JSON object a line; the row index
  is the 0-based line number, blank lines are skipped), ``.json`` (a JSON list of objects; the index
  is the list position) or ``.parquet`` (the index is the table row).
* ``ds.source`` an existing folder: every such file inside, recursively, sorted by relative path.
* anything else is a hub dataset id, read with
  ``datasets.load_dataset(ds.source, data_dir=ds.data_dir, split=ds.split, revision=ds.revision)``.

A source that looks local (starts with ``.``, ``/`` or ``~``, or ends with a known suffix) but does
not exist raises ``FileNotFoundError`` instead of querying the hub. A line that is not valid JSON, or
not a JSON object, raises ``DataFormatError`` naming the file and row.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from p2o.config import DatasetConfig
from p2o.data.errors import DataFormatError, show

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def looks_local(source: str) -> bool:
    """True if ``source`` is a local path: it exists, starts with '.', '/' or '~', or has a data suffix."""
    return (
        Path(source).expanduser().exists()
        or source.startswith((".", "/", "~"))
        or source.lower().endswith(SUFFIXES)
    )


def data_files(root: Path) -> list[Path]:
    """The data files inside a folder, recursively, sorted by relative path (hidden files skipped)."""
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(SUFFIXES)
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def read_raw_rows(ds: DatasetConfig) -> Iterator[tuple[str, int, dict]]:
    """Yield ``(origin, row_index, row)`` for every raw row of ``ds.source`` (see the module docstring).

    A missing local source raises ``FileNotFoundError`` at the call, before iteration starts.
    """
    if looks_local(ds.source):
        return _read_files(local_files(ds.source))
    return _read_hub(ds)


def local_files(source: str) -> list[Path]:
    """The data files of a local source (a file, or a folder searched recursively)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"data source '{source}' looks like a local path but does not exist "
            f"(resolved to {path.resolve()}); the Hugging Face hub was not tried"
        )
    if path.is_dir():
        files = data_files(path)
        if not files:
            raise FileNotFoundError(
                f"data source '{source}' is a folder without data files ({', '.join(SUFFIXES)})"
            )
        return files
    if not path.name.lower().endswith(SUFFIXES):
        raise ValueError(
            f"data source '{source}': unsupported file type (expected one of {', '.join(SUFFIXES)})"
        )
    return [path]


def _read_files(files: list[Path]) -> Iterator[tuple[str, int, dict]]:
    for file in files:
        yield from read_file_rows(file)


def read_file_rows(path: Path) -> Iterator[tuple[str, int, dict]]:
    """Yield ``(str(path), row_index, row)`` for one ``.jsonl[.gz]``, ``.json`` or ``.parquet`` file."""
    name = path.name.lower()
    origin = str(path)
    if name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for index, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataFormatError(
                        origin, index, None, f"not valid JSON ({e.msg} at column {e.colno})"
                    ) from None
                yield origin, index, _check_object(row, origin, index)
    elif name.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            try:
                rows = json.load(f)
            except json.JSONDecodeError as e:
                raise DataFormatError(
                    origin, None, None, f"not valid JSON ({e.msg} at line {e.lineno})"
                ) from None
        if not isinstance(rows, list):
            raise DataFormatError(
                origin, None, None, f"a .json source must hold a list of rows, got {show(rows)}"
            )
        for index, row in enumerate(rows):
            yield origin, index, _check_object(row, origin, index)
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq  # a dependency of `datasets`

        for index, row in enumerate(pq.read_table(path).to_pylist()):
            yield origin, index, row
    else:
        raise ValueError(f"{path}: unsupported file type (expected one of {', '.join(SUFFIXES)})")


def _check_object(row: object, origin: str, index: int) -> dict:
    if not isinstance(row, dict):
        raise DataFormatError(origin, index, None, f"expected a JSON object, got {show(row)}")
    return row


def _read_hub(ds: DatasetConfig) -> Iterator[tuple[str, int, dict]]:
    import datasets  # slow import; only needed for hub sources

    dataset = datasets.load_dataset(ds.source, data_dir=ds.data_dir, split=ds.split, revision=ds.revision)
    origin = f"hub:{ds.source}" + (f"/{ds.data_dir}" if ds.data_dir else "") + f"[{ds.split}]"
    if ds.revision:
        origin += f"@{ds.revision}"
    for index, row in enumerate(dataset):
        yield origin, index, row
