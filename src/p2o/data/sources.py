"""Read raw rows of a preference dataset, from local files or the Hugging Face hub.

``read_raw_rows(ds)`` yields ``(origin, row_index, row)`` for every raw row, in source order:

* ``ds.source`` an existing file: ``.jsonl`` / ``.jsonl.gz`` (one JSON object a line; the row index
  is the 0-based line number, blank lines are skipped), ``.json`` (a JSON list of objects; the index
  is the list position) or ``.parquet`` (the index is the table row).
* ``ds.source`` an existing folder: every such file inside, recursively, sorted by relative path.
* anything else is a hub dataset id, read with
  ``datasets.load_dataset(ds.source, data_dir=ds.data_dir, split=ds.split, revision=ds.revision)``.

A source that looks local (starts with ``.``, ``/`` or ``~``, or ends with a known suffix) but does
not exist raises ``FileNotFoundError`` instead of querying the hub. Files are UTF-8 (a leading byte
order mark is skipped). A line that is not valid UTF-8, not valid JSON (including a number too long
to convert or nesting too deep to decode) or not a JSON object raises ``DataFormatError`` naming the
file and row; so do a corrupt or truncated ``.gz`` stream (naming the row being read) and an
unreadable ``.json`` or ``.parquet`` file (naming the file, and for ``.json`` the line in the
message).

``resolve_source(ds, key)`` pins a source (a source record of ``p2o.provenance``): a hub dataset's
configured revision (or its default branch) resolved to a commit sha with
``huggingface_hub.HfApi().dataset_info``, a local source's sha256. ``p2o.stages.jobs.download`` resolves
first and then reads the hub at that commit, so that the rows are the recorded commit's.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from p2o.config import ConfigError, DatasetConfig
from p2o.data.errors import DataFormatError, show
from p2o.provenance import file_sha256, tree_sha256

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


HEX_SHA = re.compile(r"^[0-9a-f]{40}$")


def resolve_source(ds: DatasetConfig, key: str = "data.datasets.<name>") -> dict:
    """The source record of ``ds``: for the hub, the commit its revision resolves to; for local files,
    their sha256 (``tree_sha256`` over a folder's data files, named by relative path). ``key`` is the
    dataset's config key, named in errors: a revision or dataset the hub does not have raises
    ``ConfigError``. Offline (``HF_HUB_OFFLINE``) a revision that is already a full commit sha is
    recorded as it is; any other revision cannot be resolved and raises ``ConfigError``."""
    if looks_local(ds.source):
        files = local_files(ds.source)
        root = Path(ds.source).expanduser()
        if root.is_dir():
            digest = tree_sha256({f.relative_to(root).as_posix(): f for f in files})
        else:
            digest = file_sha256(files[0])
        return {"kind": "local", "source": ds.source, "sha256": digest}
    return {"kind": "hub", "source": ds.source, "revision": ds.revision, "data_dir": ds.data_dir,
            "split": ds.split, "commit": hub_commit("dataset", ds.source, ds.revision, key)}


def hub_commit(repo_type: str, repo_id: str, revision: str | None, key: str) -> str:
    """The commit sha ``revision`` (None: the default branch) of hub repo ``repo_id`` resolves to,
    by ``HfApi().dataset_info`` or ``model_info``. ``key`` is the config section naming the repo (its
    ``revision`` and ``source`` or ``name_or_path`` keys are named in errors)."""
    from huggingface_hub import HfApi
    from huggingface_hub import errors

    repo_key = f"{key}.source" if repo_type == "dataset" else f"{key}.name_or_path"
    info = HfApi().dataset_info if repo_type == "dataset" else HfApi().model_info
    try:
        sha = info(repo_id, revision=revision).sha
    except errors.HFValidationError:
        raise ConfigError(f"config key '{repo_key}': {repo_id!r} is neither a local path that exists nor a hub "
                          f"id (name or namespace/name)") from None
    except errors.RevisionNotFoundError:
        raise ConfigError(f"config key '{key}.revision': the hub {repo_type} '{repo_id}' has no revision "
                          f"{revision!r} (a commit sha, branch or tag)") from None
    except errors.RepositoryNotFoundError:
        raise ConfigError(f"config key '{repo_key}': no hub {repo_type} '{repo_id}' (or it is private "
                          f"and no token was given)") from None
    except errors.OfflineModeIsEnabled:
        if revision and HEX_SHA.match(revision):
            return revision
        raise ConfigError(f"config key '{key}.revision': the hub is offline (HF_HUB_OFFLINE), so "
                          f"{revision or 'the default branch'!r} of '{repo_id}' cannot be resolved to a commit; "
                          f"set it to a full commit sha to read the cached copy") from None
    if not sha:
        raise ConfigError(f"config key '{key}.revision': the hub gave no commit for '{repo_id}' at {revision!r}")
    return sha


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
        yield from _read_jsonl(path, origin, gz=name.endswith(".gz"))
    elif name.endswith(".json"):
        yield from _read_json(path, origin)
    elif name.endswith(".parquet"):
        import pyarrow as pa  # a dependency of `datasets`
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except (pa.ArrowException, OSError) as e:  # pyarrow reports a corrupt file as OSError too
            raise DataFormatError(origin, None, None, f"not a readable parquet file ({e})") from None
        for index, row in enumerate(rows):
            yield origin, index, row
    else:
        raise ValueError(f"{path}: unsupported file type (expected one of {', '.join(SUFFIXES)})")


# Files are decoded with errors="surrogateescape": an invalid byte becomes one of U+DC80..U+DCFF,
# which valid UTF-8 never decodes to, so `_utf8_error` finds it before JSON parsing can bury it in
# a string value. Text mode keeps universal newlines, as before.
ENCODING = {"encoding": "utf-8-sig", "errors": "surrogateescape"}


def _read_jsonl(path: Path, origin: str, gz: bool) -> Iterator[tuple[str, int, dict]]:
    opener = gzip.open if gz else open
    with opener(path, "rt", **ENCODING) as f:
        lines = iter(f)
        index = 0
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except (gzip.BadGzipFile, EOFError, zlib.error) as e:
                problem = f"corrupt or truncated gzip stream ({type(e).__name__}: {e})"
                raise DataFormatError(origin, index, None, problem) from None
            if line.strip():
                bad = _utf8_error(line)
                if bad is not None:
                    raise DataFormatError(origin, index, None, f"not valid UTF-8 ({bad})")
                yield origin, index, _check_object(_loads(line, origin, index), origin, index)
            index += 1


def _read_json(path: Path, origin: str) -> Iterator[tuple[str, int, dict]]:
    with open(path, **ENCODING) as f:
        text = f.read()
    bad = _utf8_error(text)
    if bad is not None:
        raise DataFormatError(origin, None, None, f"not valid UTF-8 ({bad})")
    rows = _loads(text, origin, None)
    if not isinstance(rows, list):
        raise DataFormatError(origin, None, None, f"a .json source must hold a list of rows, got {show(rows)}")
    for index, row in enumerate(rows):
        yield origin, index, _check_object(row, origin, index)


def _utf8_error(text: str) -> str | None:
    """Where the first undecodable byte of ``text`` (decoded with surrogateescape) is, or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        line = text.count("\n", 0, e.start) + 1
        column = e.start - (text.rfind("\n", 0, e.start) + 1) + 1
        byte = ord(text[e.start]) - 0xDC00
        where = f"line {line}, column {column}" if "\n" in text.rstrip("\n") else f"column {column}"
        return f"byte 0x{byte:02x} at {where}"
    return None


def _loads(text: str, origin: str, index: int | None) -> object:
    """``json.loads(text)``; every decoding failure is a ``DataFormatError`` naming file and row."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}" if index is None else f"column {e.colno}"
        raise DataFormatError(origin, index, None, f"not valid JSON ({e.msg} at {where})") from None
    except ValueError as e:  # e.g. an integer literal beyond sys.get_int_max_str_digits()
        raise DataFormatError(origin, index, None, f"not valid JSON ({e})") from None
    except RecursionError:
        raise DataFormatError(origin, index, None, "not valid JSON (nested too deeply to decode)") from None


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
