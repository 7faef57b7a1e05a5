"""p2o.data on every real row of the shared data (Anthropic/hh-rlhf, HuggingFaceH4/ultrafeedback_binarized).

Each parser's drop reasons are re-derived here row by row with plain string operations, so the
exact counts asserted below are checked against an independent implementation, not copied.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from conftest import require_shared
from p2o.config import DatasetConfig
from p2o.data import load_pairs, parse_rows, prepare_dataset, read_split, split_pairs

HH = "hh-rlhf/helpful-base.test.jsonl.gz"
UFB_TRAIN = "ultrafeedback_binarized/train_prefs.first500.chosen_rejected_only.jsonl.gz"
UFB_TEST = "ultrafeedback_binarized/test_prefs.first500.chosen_rejected_only.jsonl.gz"


def raw_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def reasons_by_row(name: str, ds: DatasetConfig) -> list[str]:
    return [p if isinstance(p, str) else "kept" for _, _, p in parse_rows(name, ds)]


# --------------------------------------------------------------------------- hh-rlhf helpful-base test


def hh_expected(row: dict) -> str:
    """The drop reason of one hh row, derived with str.rpartition (independent of p2o.data.hh)."""
    chosen_head, sep_c, chosen_tail = row["chosen"].rpartition("\n\nAssistant:")
    rejected_head, sep_r, rejected_tail = row["rejected"].rpartition("\n\nAssistant:")
    if not sep_c or not sep_r:
        return "no_assistant_turn"
    if chosen_head != rejected_head:
        return "prompt_mismatch"
    if chosen_tail.strip() == "" or rejected_tail.strip() == "":
        return "empty_response"
    if chosen_tail == rejected_tail:
        return "identical_responses"
    return "kept"


def test_hh_every_real_row(shared_data):
    path = require_shared(shared_data, HH)
    raw = raw_rows(path)
    assert len(raw) == 2354
    ds = DatasetConfig(format="hh-rlhf", source=str(path), split="test", data_dir="helpful-base")
    got = reasons_by_row("hh", ds)
    assert got == [hh_expected(r) for r in raw]

    df, report = load_pairs("hh", ds)
    assert report == {
        "rows": 2354,
        "pairs": 2339,
        "dropped": {
            "no_assistant_turn": 0,
            "prompt_mismatch": 9,
            "empty_response": 4,
            "identical_responses": 2,
            "duplicate": 0,
        },
    }
    assert report["rows"] == report["pairs"] + sum(report["dropped"].values())
    assert df["id"].is_unique
    assert len(
        {(p, c, r) for p, c, r in zip(df["prompt"], df["chosen"], df["rejected"], strict=True)}
    ) == len(df)
    kept = [r for r, g in zip(raw, got, strict=True) if g == "kept"]
    assert len(kept) == len(df)
    for r, p, c, rj in zip(kept, df["prompt"], df["chosen"], df["rejected"], strict=True):
        assert p.endswith("\n\nAssistant:") and p.startswith("\n\nHuman:")
        assert p + c == r["chosen"] and p + rj == r["rejected"]  # exact reconstruction
        assert "\n\nAssistant:" not in c and "\n\nAssistant:" not in rj

    # second view: where the two transcripts first differ (os.path.commonprefix)
    for r, g in zip(raw, got, strict=True):
        shared = len(os.path.commonprefix([r["chosen"], r["rejected"]]))
        cut_c = r["chosen"].rfind("\n\nAssistant:") + len("\n\nAssistant:")
        cut_r = r["rejected"].rfind("\n\nAssistant:") + len("\n\nAssistant:")
        if g == "prompt_mismatch":  # they diverge before one side's final Assistant turn
            assert shared < max(cut_c, cut_r)
        else:  # they agree at least up to the final Assistant marker
            assert shared >= cut_c == cut_r


def test_hh_real_split_400_100(shared_data, tmp_path):
    path = require_shared(shared_data, HH)
    ds = DatasetConfig(format="hh-rlhf", source=str(path), split="test", data_dir="helpful-base")
    df, _ = load_pairs("hh", ds)
    train, evals = split_pairs(df, 400, 100, "p2o-v1")
    assert (len(train), len(evals)) == (400, 100)
    assert not set(train["prompt"]) & set(evals["prompt"])
    assert set(train["id"]) <= set(df["id"]) and set(evals["id"]) <= set(df["id"])

    manifest = prepare_dataset("hh", ds, 400, 100, "p2o-v1", tmp_path)
    assert manifest["rows"] == 2354 and manifest["pairs"] == 2339
    assert read_split(tmp_path / "train.jsonl").equals(train)
    assert read_split(tmp_path / "eval.jsonl").equals(evals)


# --------------------------------------------------------------------------- ultrafeedback_binarized


def ufb_expected(row: dict) -> str:
    """The drop reason of one ultrafeedback_binarized row, from the raw message lists."""
    c, r = row["chosen"], row["rejected"]
    if not c or not r or c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
        return "last_turn_not_assistant"
    if [(m["role"], m["content"]) for m in c[:-1]] != [(m["role"], m["content"]) for m in r[:-1]]:
        return "prompt_mismatch"
    if not c[-1]["content"].strip() or not r[-1]["content"].strip():
        return "empty_response"
    if c[-1]["content"] == r[-1]["content"]:
        return "identical_responses"
    return "kept"


@pytest.mark.parametrize(
    "rel, n_empty, n_identical",
    [(UFB_TRAIN, 2, 1), (UFB_TEST, 2, 11)],
    ids=["train_prefs", "test_prefs"],
)
def test_ultrafeedback_binarized_every_real_row(shared_data, rel, n_empty, n_identical):
    path = require_shared(shared_data, rel)
    raw = raw_rows(path)
    assert len(raw) == 500
    ds = DatasetConfig(format="ultrafeedback-binarized", source=str(path))
    got = reasons_by_row("ufb", ds)
    assert got == [ufb_expected(r) for r in raw]

    df, report = load_pairs("ufb", ds)
    n_kept = 500 - n_empty - n_identical
    assert report == {
        "rows": 500,
        "pairs": n_kept,
        "dropped": {
            "last_turn_not_assistant": 0,
            "prompt_mismatch": 0,
            "empty_response": n_empty,
            "identical_responses": n_identical,
            "duplicate": 0,
        },
    }
    assert df["id"].is_unique
    kept = [r for r, g in zip(raw, got, strict=True) if g == "kept"]
    for r, p, c, rj in zip(kept, df["prompt"], df["chosen"], df["rejected"], strict=True):
        assert p.endswith("\n\nAssistant:")
        # every real row is one user turn then the reply
        assert p == "\n\nHuman: " + r["chosen"][0]["content"] + "\n\nAssistant:"
        assert c == " " + r["chosen"][-1]["content"] and rj == " " + r["rejected"][-1]["content"]
