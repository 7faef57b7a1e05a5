"""p2o.data: raw sources, the four parsers, drop accounting and schema errors (small inputs)."""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURES

from p2o.config import DatasetConfig
from p2o.data import PAIR_COLUMNS, DataFormatError, load_pairs, parse_rows, read_raw_rows


def write_rows(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def load(fmt: str, path: Path, name: str = "t", **kw) -> tuple[pd.DataFrame, dict]:
    return load_pairs(name, DatasetConfig(format=fmt, source=str(path), **kw))


def reasons(fmt: str, path: Path, **kw) -> list[str]:
    """The drop reason of each raw row, or 'kept'."""
    ds = DatasetConfig(format=fmt, source=str(path), **kw)
    return [p if isinstance(p, str) else "kept" for _, _, p in parse_rows("t", ds)]


def hh_row(prompt: str, chosen: str, rejected: str) -> dict:
    return {"chosen": prompt + chosen, "rejected": prompt + rejected}


P1 = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How do I bake bread?\n\nAssistant:"


# --------------------------------------------------------------------------- hh-rlhf


def test_hh_parses_and_drops_each_reason(tmp_path):
    rows = [
        hh_row(P1, " Knead it well.", " No idea."),
        {"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: hi\n\nAssistant: yo"},  # no_assistant_turn
        {"chosen": P1 + " A", "rejected": "\n\nHuman: other\n\nAssistant: B"},  # prompt_mismatch
        hh_row(P1, "  \n", " No idea."),  # empty_response
        hh_row(P1, " Same.", " Same."),  # identical_responses
        hh_row(P1, " Knead it well.", " No idea."),  # duplicate of row 0
        hh_row(P1, " Knead it well.", " Buy some."),
    ]
    path = write_rows(tmp_path / "hh.jsonl", rows)
    df, report = load("hh-rlhf", path, name="hh")
    assert list(df.columns) == list(PAIR_COLUMNS)
    assert report == {
        "rows": 7,
        "pairs": 2,
        "dropped": {
            "no_assistant_turn": 1,
            "prompt_mismatch": 1,
            "empty_response": 1,
            "identical_responses": 1,
            "duplicate": 1,
        },
    }
    first = df.iloc[0]
    assert first["prompt"] == P1 and first["chosen"] == " Knead it well." and first["rejected"] == " No idea."
    assert first["dataset"] == "hh"
    digest = hashlib.sha256((P1 + "\x00 Knead it well.\x00 No idea.").encode()).hexdigest()
    assert first["id"] == "hh-" + digest[:12]
    assert list(df["rejected"]) == [" No idea.", " Buy some."]  # source order


def test_hh_prompt_is_cut_at_the_last_assistant_marker(tmp_path):
    chosen = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d"
    path = write_rows(tmp_path / "hh.jsonl", [{"chosen": chosen, "rejected": chosen[:-1] + "e"}])
    df, _ = load("hh-rlhf", path)
    assert df["prompt"][0] == "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:"
    assert (df["chosen"][0], df["rejected"][0]) == (" d", " e")


# --------------------------------------------------------------------------- SHP


def test_shp_fixture_label_direction_and_prompt(fixtures_dir):
    path = fixtures_dir / "shp_sample.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(raw) == 13 and all(len(r) == 15 for r in raw)
    assert {r["labels"] for r in raw} == {0, 1}
    df, report = load("shp", path, name="shp")
    assert report["rows"] == 13 and report["pairs"] == 11
    assert report["dropped"] == {
        "score_ratio_below_min": 0,
        "empty_response": 1,
        "identical_responses": 1,
        "duplicate": 0,
    }
    by_prompt = {p: (c, r) for p, c, r in zip(df["prompt"], df["chosen"], df["rejected"], strict=True)}
    n_label0 = 0
    for r in raw:
        prompt = "\n\nHuman: " + r["history"] + "\n\nAssistant:"
        if prompt not in by_prompt:
            continue
        chosen, rejected = by_prompt[prompt]
        preferred, other = ("A", "B") if r["labels"] == 1 else ("B", "A")
        assert chosen == " " + r[f"human_ref_{preferred}"]
        assert rejected == " " + r[f"human_ref_{other}"]
        assert r[f"score_{preferred}"] > r[f"score_{other}"]  # the fixture is consistent with SHP
        n_label0 += r["labels"] == 0
    assert n_label0 >= 4
    # labels == 0 means B is chosen: the known "moon illusion" row
    moon = df[df["prompt"].str.contains("Moon look bigger")].iloc[0]
    assert moon["chosen"].startswith(" It is mostly the Moon illusion")
    assert moon["rejected"] == " Because the atmosphere magnifies it."


def test_shp_min_score_ratio(fixtures_dir):
    path = fixtures_dir / "shp_sample.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    got = reasons("shp", path, min_score_ratio=2.0)
    assert got.count("score_ratio_below_min") == 3
    for r, reason in zip(raw, got, strict=True):
        assert (reason == "score_ratio_below_min") == (r["score_ratio"] < 2.0)
    _, report = load("shp", path, min_score_ratio=2.0)
    assert report["pairs"] == 8 and report["dropped"]["score_ratio_below_min"] == 3
    # 2.0 exactly is kept (>=)
    assert any(r["score_ratio"] == 2.0 for r, g in zip(raw, got, strict=True) if g == "kept")


# --------------------------------------------------------------------------- UltraFeedback (openbmb raw)


def test_ultrafeedback_fixture(fixtures_dir):
    path = fixtures_dir / "ultrafeedback_sample.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert reasons("ultrafeedback", path) == [
        "kept",
        "kept",
        "tie",
        "fewer_than_two_completions",
        "kept",
        "kept",
    ]
    df, report = load("ultrafeedback", path, name="uf")
    assert report == {
        "rows": 6,
        "pairs": 4,
        "dropped": {
            "fewer_than_two_completions": 1,
            "tie": 1,
            "empty_response": 0,
            "identical_responses": 0,
            "duplicate": 0,
        },
    }
    assert df["prompt"][0] == "\n\nHuman: " + raw[0]["instruction"] + "\n\nAssistant:"
    assert df["chosen"][0] == " " + raw[0]["completions"][2]["response"]  # score 9.0
    assert df["rejected"][0] == " " + raw[0]["completions"][1]["response"]  # score 3.0
    # shared best (8.0, 8.0) and shared worst (2.0, 2.0): the first in list order wins
    assert df["chosen"][1] == " " + raw[1]["completions"][0]["response"]
    assert df["rejected"][1] == " " + raw[1]["completions"][2]["response"]


# --------------------------------------------------------------------------- ultrafeedback_binarized


def msgs(*turns: tuple[str, str]) -> list[dict]:
    return [{"role": r, "content": c} for r, c in turns]


def test_ultrafeedback_binarized_rendering_and_drops(tmp_path):
    ctx = (("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."), ("user", "Name a fruit."))
    q = ("user", "q")
    rows = [
        {
            "chosen": msgs(*ctx, ("assistant", "Apple.")),
            "rejected": msgs(*ctx, ("assistant", "No.")),
            "prompt": "ignored",
            "score_chosen": 8.0,
        },
        {"chosen": msgs(q, ("assistant", "a")), "rejected": msgs(q)},
        {"chosen": msgs(q, ("assistant", "a")), "rejected": msgs(("user", "Q"), ("assistant", "b"))},
        {"chosen": msgs(q, ("assistant", "")), "rejected": msgs(q, ("assistant", "b"))},
        {"chosen": msgs(q, ("assistant", "a")), "rejected": msgs(q, ("assistant", "a"))},
        {"chosen": [], "rejected": []},
    ]
    path = write_rows(tmp_path / "ufb.jsonl", rows)
    assert reasons("ultrafeedback-binarized", path) == [
        "kept",
        "last_turn_not_assistant",
        "prompt_mismatch",
        "empty_response",
        "identical_responses",
        "last_turn_not_assistant",
    ]
    df, _ = load("ultrafeedback-binarized", path)
    assert (
        df["prompt"][0] == "Be brief.\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Name a fruit.\n\nAssistant:"
    )
    assert (df["chosen"][0], df["rejected"][0]) == (" Apple.", " No.")


# --------------------------------------------------------------------------- schema errors


GOOD_SHP = json.loads((FIXTURES / "shp_sample.jsonl").read_text().splitlines()[0])
GOOD_UF = json.loads(
    (FIXTURES / "ultrafeedback_sample.jsonl").read_text().splitlines()[0]
)
GOOD_HH = hh_row(P1, " yes", " no")
GOOD_UFB = {
    "chosen": msgs(("user", "q"), ("assistant", "a")),
    "rejected": msgs(("user", "q"), ("assistant", "b")),
}


def _with(row: dict, **changes) -> dict:
    row = json.loads(json.dumps(row))
    for key, value in changes.items():
        if value is ...:
            del row[key]
        else:
            row[key] = value
    return row


def _uf_bad_score() -> dict:
    row = json.loads(json.dumps(GOOD_UF))
    row["completions"][1]["overall_score"] = "7"
    return row


def _ufb_bad_role() -> dict:
    row = json.loads(json.dumps(GOOD_UFB))
    row["rejected"][1]["role"] = "bot"
    return row


BAD_ROWS = [
    ("hh-rlhf", GOOD_HH, _with(GOOD_HH, rejected=...), "rejected", "missing"),
    ("hh-rlhf", GOOD_HH, _with(GOOD_HH, chosen=3), "chosen", "expected a string, got 3 (int)"),
    ("shp", GOOD_SHP, _with(GOOD_SHP, labels=2), "labels", "expected 0 or 1, got 2"),
    ("shp", GOOD_SHP, _with(GOOD_SHP, labels="1"), "labels", "expected 0 or 1, got '1' (str)"),
    ("shp", GOOD_SHP, _with(GOOD_SHP, labels=True), "labels", "expected 0 or 1"),
    ("shp", GOOD_SHP, _with(GOOD_SHP, labels=...), "labels", "missing"),
    ("shp", GOOD_SHP, _with(GOOD_SHP, score_ratio=...), "score_ratio", "missing"),
    ("shp", GOOD_SHP, _with(GOOD_SHP, history=None), "history", "expected a string"),
    ("ultrafeedback", GOOD_UF, _with(GOOD_UF, completions="x"), "completions", "expected a list"),
    ("ultrafeedback", GOOD_UF, _with(GOOD_UF, completions=[1, 2]), "completions[0]", "expected an object"),
    ("ultrafeedback", GOOD_UF, _uf_bad_score(), "completions[1].overall_score", "expected a finite number"),
    ("ultrafeedback", GOOD_UF, _with(GOOD_UF, instruction=...), "instruction", "missing"),
    ("ultrafeedback-binarized", GOOD_UFB, _ufb_bad_role(), "rejected[1].role", "expected one of"),
    ("ultrafeedback-binarized", GOOD_UFB, _with(GOOD_UFB, chosen="q"), "chosen", "expected a list"),
]


@pytest.mark.parametrize("fmt, good, bad, field, problem", BAD_ROWS, ids=[f"{b[0]}-{b[3]}" for b in BAD_ROWS])
def test_schema_error_names_file_row_and_field(tmp_path, fmt, good, bad, field, problem):
    path = write_rows(tmp_path / "data" / "raw.jsonl", [good, good, bad, good])
    with pytest.raises(DataFormatError) as info:
        load(fmt, path)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.path, err.row, err.field) == (str(path), 2, field)
    message = str(err)
    assert message.startswith(f"{path}, row 2 (0-based), field '{field}': ")
    assert problem in message


def test_non_json_and_non_object_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD_HH) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl, row 1 \(0-based\): not valid JSON") as info:
        load("hh-rlhf", path)
    assert info.value.row == 1 and info.value.field is None
    path.write_text(json.dumps(GOOD_HH) + "\n\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"row 2 \(0-based\): expected a JSON object, got \[1, 2\]"):
        load("hh-rlhf", path)
    json_file = tmp_path / "bad.json"
    json_file.write_text(json.dumps({"rows": []}))
    with pytest.raises(DataFormatError, match="must hold a list of rows"):
        list(read_raw_rows(DatasetConfig(format="hh-rlhf", source=str(json_file))))


def test_data_format_error_pickles():
    import pickle

    err = pickle.loads(
        pickle.dumps(DataFormatError("data/shp.jsonl", 12, "labels", "expected 0 or 1, got 3"))
    )
    assert str(err) == "data/shp.jsonl, row 12 (0-based), field 'labels': expected 0 or 1, got 3"
    assert (err.path, err.row, err.field) == ("data/shp.jsonl", 12, "labels")


# --------------------------------------------------------------------------- sources


def test_local_files_and_folders(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "raw"
    write_rows(root / "b.jsonl", [GOOD_HH, {"chosen": P1 + " b", "rejected": P1 + " c"}])
    (root / "a").mkdir()
    (root / "a" / "c.json").write_text(json.dumps([{"chosen": P1 + " d", "rejected": P1 + " e"}]))
    pq.write_table(pa.Table.from_pylist([{"chosen": P1 + " f", "rejected": P1 + " g"}]), root / "d.parquet")
    (root / "sub").mkdir()
    with gzip.open(root / "sub" / "x.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n" + json.dumps({"chosen": P1 + " h", "rejected": P1 + " i"}) + "\n")
    (root / "README.md").write_text("not data")
    (root / ".hidden.jsonl").write_text("{broken")

    got = list(read_raw_rows(DatasetConfig(format="hh-rlhf", source=str(root))))
    assert [(Path(o).relative_to(root).as_posix(), i) for o, i, _ in got] == [
        ("a/c.json", 0),
        ("b.jsonl", 0),
        ("b.jsonl", 1),
        ("d.parquet", 0),
        ("sub/x.jsonl.gz", 1),  # the row index is the 0-based line; the blank line 0 is skipped
    ]
    df, report = load("hh-rlhf", root)
    assert report["rows"] == 5 and report["pairs"] == 5
    assert list(df["chosen"]) == [" d", " yes", " b", " f", " h"]


@pytest.mark.parametrize("source", ["./nope/x.jsonl", "nope.jsonl.gz", "/definitely/not/here", "~/nope-p2o"])
def test_missing_local_source_never_tries_the_hub(monkeypatch, source):
    from p2o.data import sources

    def no_hub(ds):
        raise AssertionError("the hub must not be queried for a local-looking source")

    monkeypatch.setattr(sources, "_read_hub", no_hub)
    with pytest.raises(FileNotFoundError, match=r"data source '" + source.replace(".", r"\.") + "'"):
        read_raw_rows(DatasetConfig(format="hh-rlhf", source=source))
    with pytest.raises(FileNotFoundError, match=r"config key 'data\.datasets\.hh\.source'"):
        load_pairs("hh", DatasetConfig(format="hh-rlhf", source=source))


def test_hub_source_calls_load_dataset_with_the_config(monkeypatch):
    calls = []

    def load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return [GOOD_HH, GOOD_HH]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    ds = DatasetConfig(format="hh-rlhf", source="Anthropic/hh-rlhf", split="test", data_dir="helpful-base",
                       revision="abc123")  # fmt: skip
    rows = list(read_raw_rows(ds))
    assert calls == [
        ("Anthropic/hh-rlhf", {"data_dir": "helpful-base", "split": "test", "revision": "abc123"})
    ]
    assert [i for _, i, _ in rows] == [0, 1]
    assert "Anthropic/hh-rlhf" in rows[0][0]
    _, report = load_pairs("hh", ds)
    assert report["dropped"]["duplicate"] == 1


def test_unknown_format_names_the_key(tmp_path):
    path = write_rows(tmp_path / "x.jsonl", [GOOD_HH])
    ds = DatasetConfig(format="hh-rlhf", source=str(path))
    ds.format = "nope"
    with pytest.raises(ValueError, match=r"data\.datasets\.x\.format"):
        load_pairs("x", ds)


def test_empty_source_gives_empty_table(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    df, report = load("hh-rlhf", path)
    assert list(df.columns) == list(PAIR_COLUMNS) and len(df) == 0
    assert report["rows"] == 0 and report["pairs"] == 0
