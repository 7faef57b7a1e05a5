"""p2o.data.write_demo_data: raw-schema demo files that the real parsers accept, and prepare_dataset."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from p2o.config import DatasetConfig
from p2o.data import (
    DELIBERATE_DROPS,
    PAIR_COLUMNS,
    drop_reasons,
    load_pairs,
    prepare_dataset,
    read_split,
    split_pairs,
    write_demo_data,
)
from p2o.io import read_json, read_jsonl

FORMATS = {"hh": "hh-rlhf", "shp": "shp", "uf": "ultrafeedback"}
SHP_TYPES = {
    "post_id": str, "domain": str, "upvote_ratio": float, "history": str, "c_root_id_A": str,
    "c_root_id_B": str, "created_at_utc_A": int, "created_at_utc_B": int, "score_A": int, "score_B": int,
    "human_ref_A": str, "human_ref_B": str, "labels": int, "seconds_difference": float, "score_ratio": float,
}  # fmt: skip
UF_COMPLETION_KEYS = {
    "model", "principle", "custom_system_prompt", "response", "annotations", "critique", "overall_score",
    "fine-grained_score",
}  # fmt: skip


def demo_config(key: str, path) -> DatasetConfig:
    return DatasetConfig(format=FORMATS[key], source=str(path), min_score_ratio=2.0 if key == "shp" else None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return write_demo_data(out, n_prompts=300, seed=0)


@pytest.mark.parametrize("key", ["hh", "shp", "uf"])
def test_demo_parses_to_n_prompts_pairs(demo, key):
    df, report = load_pairs(key, demo_config(key, demo[key]))
    expected = dict.fromkeys(drop_reasons(FORMATS[key]), 0) | DELIBERATE_DROPS[key]
    assert report == {"rows": 300 + sum(DELIBERATE_DROPS[key].values()), "pairs": 300, "dropped": expected}
    assert df["prompt"].nunique() == 300 and df["id"].is_unique
    assert all(p.startswith("\n\nHuman: ") and p.endswith("\n\nAssistant:") for p in df["prompt"])
    # similar lengths: the preference signal is content, not length
    ratio = df["chosen"].str.len().mean() / df["rejected"].str.len().mean()
    assert 0.9 < ratio < 1.1
    assert all(len(c) < 400 and len(r) < 400 for c, r in zip(df["chosen"], df["rejected"], strict=True))


def test_demo_preference_signal(demo):
    polite_words = "happy|glad|hope|thanks|thank|please|great|good|love|certainly|sure|of course|absolutely"
    polite = re.compile(rf"\b({polite_words}|feel free|cheers|enjoy)\b", re.IGNORECASE)
    rude_words = "whatever|cares?|bother|bothered|boring|pointless|refuse|google|reported|downvoted|nope|meh"
    rude = re.compile(rf"\b({rude_words}|ugh|lol|complain|waste|not worth)\b", re.IGNORECASE)
    for key in ("hh", "shp", "uf"):
        df, _ = load_pairs(key, demo_config(key, demo[key]))
        for chosen, rejected in zip(df["chosen"], df["rejected"], strict=True):
            assert polite.search(chosen) and not rude.search(chosen), chosen
            assert rude.search(rejected) and not polite.search(rejected), rejected
        # the chosen response repeats a word of the prompt's topic much more often than the rejected one
        last_question = [p.rsplit("\n\nHuman: ", 1)[1] for p in df["prompt"]]
        overlap_c = sum(_overlap(q, c) for q, c in zip(last_question, df["chosen"], strict=True))
        overlap_r = sum(_overlap(q, r) for q, r in zip(last_question, df["rejected"], strict=True))
        assert overlap_c > 2 * overlap_r, key


def _overlap(a: str, b: str) -> int:
    return len(set(re.findall(r"[a-z]{5,}", a.lower())) & set(re.findall(r"[a-z]{5,}", b.lower())))


def test_demo_raw_schemas(demo):
    shp = read_jsonl(demo["shp"])
    for row in shp:
        assert set(row) == set(SHP_TYPES)
        for key, tp in SHP_TYPES.items():
            assert type(row[key]) is tp, (key, row[key])
        preferred, other = ("A", "B") if row["labels"] == 1 else ("B", "A")
        assert row["score_ratio"] == pytest.approx(row[f"score_{preferred}"] / row[f"score_{other}"])
        assert (
            row["seconds_difference"]
            == row[f"created_at_utc_{preferred}"] - row[f"created_at_utc_{other}"]
            >= 0
        )
        assert row["domain"].endswith("_train")
    assert {r["labels"] for r in shp} == {0, 1}
    assert len({r["domain"] for r in shp}) >= 5

    uf = read_jsonl(demo["uf"])
    assert sum(len(r["completions"]) == 4 for r in uf) == len(uf) - 1
    for row in uf:
        assert set(row) == {
            "source",
            "instruction",
            "models",
            "completions",
            "correct_answers",
            "incorrect_answers",
        }
        assert row["models"] == [c["model"] for c in row["completions"]]
        for c in row["completions"]:
            assert set(c) == UF_COMPLETION_KEYS
            assert isinstance(c["overall_score"], float) and isinstance(c["fine-grained_score"], float)
            assert isinstance(c["annotations"], dict)

    hh = read_jsonl(demo["hh"])
    assert all(set(r) == {"chosen", "rejected"} for r in hh)
    assert sum(r["chosen"].count("\n\nHuman:") > 1 for r in hh) > 50  # multi-turn dialogues


def test_demo_datasets_look_different(demo):
    prompts = {k: set(load_pairs(k, demo_config(k, demo[k]))[0]["prompt"]) for k in demo}
    assert not prompts["hh"] & prompts["shp"] and not prompts["hh"] & prompts["uf"]
    assert not prompts["shp"] & prompts["uf"]


def test_demo_is_deterministic(tmp_path):
    a = write_demo_data(tmp_path / "a", n_prompts=40, seed=7)
    b = write_demo_data(tmp_path / "b", n_prompts=40, seed=7)
    c = write_demo_data(tmp_path / "c", n_prompts=40, seed=8)
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes()
        assert a[key].read_bytes() != c[key].read_bytes()
    assert set(a) == {"hh", "shp", "uf"}
    assert [p.name for p in a.values()] == ["hh.jsonl", "shp.jsonl", "ultrafeedback.jsonl"]
    _, report = load_pairs("uf", demo_config("uf", a["uf"]))
    assert report["pairs"] == 40


def test_demo_too_many_prompts(tmp_path):
    with pytest.raises(ValueError, match="n_prompts=100000 exceeds"):
        write_demo_data(tmp_path, n_prompts=100_000)


def test_prepare_dataset_on_demo(demo, tmp_path, capsys):
    ds = demo_config("shp", demo["shp"])
    manifest = prepare_dataset("shp", ds, 200, 50, "p2o-v1", tmp_path / "shp")
    out = tmp_path / "shp"
    assert sorted(p.name for p in out.iterdir()) == ["eval.jsonl", "manifest.json", "train.jsonl"]
    assert read_json(out / "manifest.json") == manifest
    assert list(manifest) == [
        "dataset", "format", "source", "split", "data_dir", "revision", "min_score_ratio",
        "max_pairs_per_prompt", "split_salt", "rows", "pairs", "dropped", "splits",
    ]  # fmt: skip
    assert (
        manifest["dataset"] == "shp"
        and manifest["format"] == "shp"
        and manifest["source"] == str(demo["shp"])
    )
    assert manifest["split_salt"] == "p2o-v1" and manifest["min_score_ratio"] == ds.min_score_ratio
    assert manifest["rows"] == 301 and manifest["pairs"] == 300
    assert manifest["dropped"]["score_ratio_below_min"] == 1
    assert manifest["splits"]["train"]["n"] == 200 and manifest["splits"]["eval"]["n"] == 50
    for split in ("train", "eval"):
        data = (out / f"{split}.jsonl").read_bytes()
        assert hashlib.sha256(data).hexdigest() == manifest["splits"][split]["sha256"]
        assert len(data.splitlines()) == manifest["splits"][split]["n"]
    train, evals = read_split(out / "train.jsonl"), read_split(out / "eval.jsonl")
    assert list(train.columns) == list(PAIR_COLUMNS)
    ref_train, ref_eval = split_pairs(load_pairs("shp", ds)[0], 200, 50, "p2o-v1")
    assert train.equals(ref_train) and evals.equals(ref_eval)
    assert not set(train["prompt"]) & set(evals["prompt"])
    err = capsys.readouterr().err
    assert "shp" in err and "score_ratio_below_min 1" in err and len(err.strip().splitlines()) == 1
    # rerun: identical bytes
    first = (out / "train.jsonl").read_bytes()
    prepare_dataset("shp", ds, 200, 50, "p2o-v1", out)
    assert (out / "train.jsonl").read_bytes() == first
    assert json.loads((out / "manifest.json").read_text()) == manifest
