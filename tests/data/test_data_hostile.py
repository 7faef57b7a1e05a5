"""Hostile raw rows for the four loaders: property-based tests with hypothesis.

Each example draws rows in a hub schema, most of them mutated, written to a real file
(``tests/hostile_rows.py`` holds the strategies, the file writer and the oracle), and calls
``load_pairs`` on it, as the pipeline does. The property: ``load_pairs`` either

* returns exactly the pairs and drop counts that the independent oracle derives from the rows
  (plain ``str`` / ``list`` operations over the hub schema, no ``p2o.data`` code), or
* raises ``DataFormatError`` for the first bad row, with the oracle's ``path``, ``row`` (0-based line
  or list index, as ``p2o.data.errors`` counts) and ``field``, all three named in the message.

Any other exception fails the example. Runs are derandomized (reproducible in CI, no example
database); every test counts its examples, and the outcome of every fault case is printed at the end
of the module (``-s`` not needed). ``pytest tests/data/test_data_hostile.py --hypothesis-show-statistics``
shows hypothesis's own counts.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st
from hostile_rows import (
    DROP_REASONS,
    FORMATS,
    ORACLES,
    Drop,
    Err,
    FileSpec,
    Raw,
    file_spec,
    hostile,
    insert_bad_bytes,
    long_row,
    valid_rows,
    write_file,
)

from p2o.config import DatasetConfig
from p2o.data import PAIR_COLUMNS, DataFormatError, load_pairs


# --------------------------------------------------------------------------- bookkeeping

EXAMPLES: Counter[str] = Counter()  # test -> examples run
CASES: dict[str, Counter[str]] = defaultdict(Counter)  # "format: fault case" -> outcome -> count


class CountsSummary:
    """A plugin registered by this module: prints ``EXAMPLES`` and ``CASES`` in the terminal summary."""

    def pytest_terminal_summary(self, terminalreporter):
        if not EXAMPLES:
            return
        write = terminalreporter.write_line
        write("")
        write("hostile-data examples per test: " + ", ".join(f"{k}={v}" for k, v in EXAMPLES.items()))
        write(f"hostile-data fault cases ({len(CASES)}); outcome counts over every row that was reached:")
        for case in sorted(CASES):
            write(f"  {case}: " + ", ".join(f"{o} x{n}" for o, n in CASES[case].most_common()))


@pytest.fixture(scope="module", autouse=True)
def counts_summary(request):
    manager = request.config.pluginmanager
    if not manager.has_plugin("p2o-hostile-counts"):
        manager.register(CountsSummary(), "p2o-hostile-counts")


def field_pattern(field: str | None) -> str:
    return "-" if field is None else "".join("[]" if c.isdigit() else c for c in field).replace("[[]]", "[]")


# --------------------------------------------------------------------------- the property


def check_file(test: str, fmt: str, spec: FileSpec, min_score_ratio: float | None = None) -> str:
    """Write ``spec``, load it, and compare with the oracle; return a one-word outcome."""
    with tempfile.TemporaryDirectory(prefix="p2o-hostile-") as tmp:
        path, kind, indices, read_back = write_file(spec, Path(tmp), fmt)
        ds = DatasetConfig(format=fmt, source=str(path), min_score_ratio=min_score_ratio)
        if read_back is None:  # an unreadable file: one error naming the file, no row
            with pytest.raises(DataFormatError) as info:
                load_pairs("t", ds)
            err = info.value
            assert (err.path, err.row, err.field) == (str(path), None, None)
            assert str(err).startswith(f"{path}: not a readable parquet file"), str(err)
            CASES[f"{fmt}: parquet file pyarrow cannot read back"]["raised (file)"] += 1
            event(f"file kind: {kind}")
            event("outcome: raised")
            EXAMPLES[test] += 1
            return "raised"
        expected = [
            Err(frozenset({None}), item.problem) if isinstance(item, Raw) else ORACLES[fmt](item, ds)
            for item in read_back
        ]
        note(f"file kind {kind}; expected {expected}")
        first_error = next((k for k, e in enumerate(expected) if isinstance(e, Err)), None)
        try:
            frame, report = load_pairs("t", ds)
        except DataFormatError as err:
            outcome = check_error(err, path, indices, expected, first_error)
        else:
            assert first_error is None, f"row {indices[first_error]} should raise: {expected[first_error]}"
            check_pairs(frame, report, fmt, expected)
            outcome = "pairs"
    reached = len(expected) if first_error is None else first_error + 1
    for k in range(reached):
        e = expected[k]
        if isinstance(e, Err):
            result = f"raised ({'/'.join(sorted(field_pattern(f) for f in e.fields))})"
        elif isinstance(e, Drop):
            result = f"dropped {e.reason}"
        else:
            result = "parsed"
        label = spec.labels[k]
        if kind == "parquet" and _canonical(read_back[k]) != _canonical(spec.items[k]):
            label += " [parquet changed it: nulls for missing keys, a column's common type]"
        CASES[f"{fmt}: {label}"][result] += 1
    event(f"file kind: {kind}")
    event(f"outcome: {outcome}")
    EXAMPLES[test] += 1  # counted once the example has passed every check
    return outcome


def _canonical(row: dict) -> str:
    return json.dumps(row, sort_keys=True, default=repr)


def check_error(err: DataFormatError, path: Path, indices: list, expected: list, first_error: int | None) -> str:
    assert first_error is not None, f"unexpected DataFormatError: {err}"
    want = expected[first_error]
    message = str(err)
    assert err.path == str(path) and message.startswith(str(path)), message
    assert err.row == indices[first_error], (message, indices[first_error])
    assert message.startswith(f"{path}, row {err.row} (0-based)"), message
    assert err.field in want.fields, (message, want)
    if err.field is not None:
        assert f"field '{err.field}'" in message, message
    assert want.problem in message, (message, want.problem)
    assert len(message) < 2000, "the message must stay short even for huge values"
    return "raised"


def check_pairs(frame, report: dict, fmt: str, expected: list) -> None:
    assert list(frame.columns) == list(PAIR_COLUMNS)
    want, seen = [], set()
    dropped = dict.fromkeys(DROP_REASONS[fmt] + ["duplicate"], 0)
    for e in expected:
        if isinstance(e, Drop):
            dropped[e.reason] += 1
        elif (e.prompt, e.chosen, e.rejected) in seen:
            dropped["duplicate"] += 1
        else:
            seen.add((e.prompt, e.chosen, e.rejected))
            want.append((e.prompt, e.chosen, e.rejected))
    got = list(zip(frame["prompt"], frame["chosen"], frame["rejected"], strict=True))
    assert got == want
    assert report == {"rows": len(expected), "pairs": len(want), "dropped": dropped}
    assert frame["id"].is_unique and all(i.startswith("t-") for i in frame["id"])
    assert (frame["dataset"] == "t").all()
    for prompt, chosen, rejected in got:
        assert chosen != rejected and chosen.strip() and rejected.strip()  # never an identical/blank pair


@hostile(200)
@given(spec=file_spec("hh-rlhf"))
def test_hh_rlhf_hostile_rows(spec):
    check_file("hh-rlhf", "hh-rlhf", spec)


@hostile(200)
@given(spec=file_spec("shp"), min_score_ratio=st.sampled_from([None, None, 2.0]))
def test_shp_hostile_rows(spec, min_score_ratio):
    check_file("shp", "shp", spec, min_score_ratio)


@hostile(200)
@given(spec=file_spec("ultrafeedback"))
def test_ultrafeedback_hostile_rows(spec):
    check_file("ultrafeedback", "ultrafeedback", spec)


@hostile(200)
@given(spec=file_spec("ultrafeedback-binarized"))
def test_ultrafeedback_binarized_hostile_rows(spec):
    check_file("ultrafeedback-binarized", "ultrafeedback-binarized", spec)


# --------------------------------------------------------------------------- raw bytes and corrupt files


@hostile(150)
@given(
    fmt=st.sampled_from(FORMATS),
    data=st.data(),
    kind=st.sampled_from(["jsonl", "jsonl.gz", "json"]),
    bom=st.booleans(),
)
def test_non_utf8_bytes_name_file_and_line(fmt, data, kind, bom):
    """Raw invalid UTF-8 (``b"\\xff\\xfe"`` and others) inside one row of hub-schema rows."""
    rows = data.draw(valid_rows(fmt))
    bad_row = data.draw(st.integers(0, len(rows) - 1))
    lines = [json.dumps(r, ensure_ascii=data.draw(st.booleans())).encode() for r in rows]
    lines[bad_row] = data.draw(st.builds(lambda d: insert_bad_bytes(d, lines[bad_row]), st.just(data.draw)))
    with tempfile.TemporaryDirectory(prefix="p2o-hostile-") as tmp:
        path = Path(tmp) / f"raw.{kind}"
        if kind == "json":  # "[" on line 1, row k on line k + 2
            body = b"[\n" + b",\n".join(lines) + b"\n]\n"
        else:
            body = b"".join(line + b"\n" for line in lines)
        body = (b"\xef\xbb\xbf" if bom else b"") + body
        path.write_bytes(gzip.compress(body) if kind == "jsonl.gz" else body)
        with pytest.raises(DataFormatError) as info:
            load_pairs("t", DatasetConfig(format=fmt, source=str(path)))
    err, message = info.value, str(info.value)
    assert err.path == str(path) and err.field is None, message
    assert "not valid UTF-8 (byte 0x" in message, message
    if kind == "json":
        assert err.row is None and f"at line {bad_row + 2}, column " in message, message
    else:
        assert err.row == bad_row and message.startswith(f"{path}, row {bad_row} (0-based): not valid UTF-8")
    CASES[f"any format: invalid UTF-8 bytes in a {kind} file"]["raised (-)"] += 1
    event(f"file kind: {kind}")
    EXAMPLES["non-utf8"] += 1


@hostile(100)
@given(
    fmt=st.sampled_from(FORMATS),
    data=st.data(),
    mode=st.sampled_from(["truncate", "flip byte"]),
)
def test_corrupt_gzip_is_a_data_format_error(fmt, data, mode):
    """A ``.jsonl.gz`` cut short or with one byte changed: ``DataFormatError``, or the very same pairs."""
    rows = data.draw(valid_rows(fmt))
    packed = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows), mtime=0)
    at = data.draw(st.integers(0, len(packed) - 1))
    if mode == "truncate":
        broken = packed[:at]
    else:
        broken = packed[:at] + bytes([packed[at] ^ data.draw(st.integers(1, 255))]) + packed[at + 1 :]
    with tempfile.TemporaryDirectory(prefix="p2o-hostile-") as tmp:
        good, bad = Path(tmp) / "good.jsonl.gz", Path(tmp) / "bad.jsonl.gz"
        good.write_bytes(packed)
        bad.write_bytes(broken)
        want = load_pairs("t", DatasetConfig(format=fmt, source=str(good)))
        try:
            got = load_pairs("t", DatasetConfig(format=fmt, source=str(bad)))
        except DataFormatError as err:
            assert err.path == str(bad) and str(err).startswith(str(bad)), str(err)
            outcome = "raised (-)" if err.field is None else "raised (field)"
            if err.field is not None:  # a changed byte inside a value: named like any bad row
                assert err.row is not None and f"field '{err.field}'" in str(err)
        else:
            # an intact stream (a flipped header flag bit the reader ignores), or nothing left (cut at 0)
            assert got[0].equals(want[0]) or (at == 0 and got[1]["rows"] == 0), (got, want)
            outcome = "same pairs" if got[0].equals(want[0]) else "empty"
    CASES[f"any format: gzip stream, {mode}"][outcome] += 1
    event(f"outcome: {outcome}")
    EXAMPLES["corrupt-gzip"] += 1


def test_unreadable_files_name_the_file(tmp_path):
    bad_parquet = tmp_path / "x.parquet"
    bad_parquet.write_bytes(b"PAR1 not really")
    not_gzip = tmp_path / "x.jsonl.gz"
    not_gzip.write_bytes(b'{"chosen": "not compressed"}\n')
    bad_json = tmp_path / "x.json"
    bad_json.write_bytes(b'[\n{"chosen": "\xff"}\n]')
    cases = [
        (bad_parquet, None, "not a readable parquet file"),
        (not_gzip, 0, "corrupt or truncated gzip stream (BadGzipFile"),
        (bad_json, None, "not valid UTF-8 (byte 0xff at line 2, column 13)"),
    ]
    for path, row, problem in cases:
        with pytest.raises(DataFormatError) as info:
            load_pairs("t", DatasetConfig(format="hh-rlhf", source=str(path)))
        assert (info.value.path, info.value.row, info.value.field) == (str(path), row, None)
        assert problem in str(info.value), str(info.value)


def test_nesting_at_the_recursion_limit_never_escapes(tmp_path):
    """A required field holding a list nested just below/above the interpreter's recursion limit:
    the JSON decoder and the error message (``repr``) both recurse; either way a DataFormatError."""
    limit = sys.getrecursionlimit()
    path = tmp_path / "deep.jsonl"
    for depth in [*range(limit - 120, limit + 20, 7), 10 * limit]:
        path.write_text('{"chosen": ' + "[" * depth + "]" * depth + ', "rejected": ""}\n')
        with pytest.raises(DataFormatError) as info:
            load_pairs("t", DatasetConfig(format="hh-rlhf", source=str(path)))
        assert info.value.row == 0 and info.value.field in (None, "chosen"), str(info.value)


def test_nul_inside_texts_never_merges_distinct_pairs(tmp_path):
    """``prompt\\0chosen\\0rejected`` is ambiguous when a text holds a NUL: these two different pairs
    used to share an id, and the second was dropped as a duplicate."""
    prompt = "\n\nHuman: q\n\nAssistant:"
    rows = [
        {"chosen": prompt + " x\x00 y", "rejected": prompt + " z"},
        {"chosen": prompt + " x", "rejected": prompt + " y\x00 z"},
        {"chosen": prompt + " x", "rejected": prompt + " y\x00 z"},  # a true duplicate
    ]
    path = tmp_path / "nul.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame, report = load_pairs("t", DatasetConfig(format="hh-rlhf", source=str(path)))
    assert list(zip(frame["chosen"], frame["rejected"], strict=True)) == [(" x\x00 y", " z"), (" x", " y\x00 z")]
    assert frame["id"].is_unique and report["dropped"]["duplicate"] == 1


# --------------------------------------------------------------------------- very long rows

@hostile(30)
@given(fmt=st.sampled_from(FORMATS), data=st.data())
def test_very_long_rows_load_quickly(fmt, data):
    """Rows with 100k-character strings or thousands of turns are parsed (or rejected as usual) in
    well under a second; tokenisation truncates them later."""
    labels, rows = zip(*data.draw(st.lists(long_row(fmt), min_size=1, max_size=3)), strict=True)
    spec = FileSpec(kind=data.draw(st.sampled_from(["jsonl", "jsonl.gz", "json", "parquet"])), items=list(rows),
                    labels=list(labels), blanks=[0] * len(rows), blank_text="", eol=b"\n", bom=False,
                    ensure_ascii=False)  # fmt: skip
    start = time.perf_counter()
    check_file("long-rows", fmt, spec)
    assert time.perf_counter() - start < 20, "a few long rows must not take long"