"""p2o.data.write_demo_data: raw-schema demo files that the real parsers accept, and prepare_dataset."""

from __future__ import annotations

import hashlib
import json

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
from p2o.data.demo import FLIP_SHARE
from p2o.data.demo_text import planted_score
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
    pairs = len(read_jsonl(demo["shp"])) - 1 if key == "shp" else 300  # SHP: 3 or 6 pairs a post
    assert report == {
        "rows": pairs + sum(DELIBERATE_DROPS[key].values()),
        "pairs": pairs,
        "dropped": expected,
    }
    assert df["prompt"].nunique() == 300 and df["id"].is_unique
    assert all(p.startswith("\n\nHuman: ") and p.endswith("\n\nAssistant:") for p in df["prompt"])
    # similar lengths: the preference signal is one concrete detail, not length
    ratio = df["chosen"].str.len().mean() / df["rejected"].str.len().mean()
    assert 0.9 < ratio < 1.1
    assert all(len(c) < 400 and len(r) < 400 for c, r in zip(df["chosen"], df["rejected"], strict=True))


def _planted_margins(path_by_key, key):
    """planted_score(chosen) - planted_score(rejected) of every parsed pair of one demo file."""
    df, _ = load_pairs(key, demo_config(key, path_by_key[key]))
    return [
        planted_score(p, c) - planted_score(p, r)
        for p, c, r in zip(df["prompt"], df["chosen"], df["rejected"], strict=True)
    ]


@pytest.mark.parametrize("key", ["hh", "shp", "uf"])
def test_demo_labels_follow_the_planted_score_but_for_the_flips(demo, key):
    margins = _planted_margins(demo, key)
    assert 0 not in margins  # every pair differs in the planted feature
    flipped = sum(m < 0 for m in margins) / len(margins)
    assert abs(flipped - FLIP_SHARE) < 0.02, flipped
    if key != "shp":  # one detail apart; SHP's comments of a post are 1 to 3 apart
        assert set(margins) == {-1.0, 1.0}


@pytest.mark.parametrize("share", [0.0, 0.1, 0.5])
def test_demo_flip_share(tmp_path, share):
    paths = write_demo_data(tmp_path, n_prompts=120, seed=3, flip_share=share)
    for key in paths:
        margins = _planted_margins(paths, key)
        flipped = sum(m < 0 for m in margins) / len(margins)
        assert 0 not in margins and abs(flipped - share) < 0.02, (key, flipped)


def test_demo_flips_only_swap_labels(tmp_path):
    """Data with noise is the data without it with the flipped pairs swapped: on the unflipped pairs
    the labels are the planted score's, exactly."""
    clean = write_demo_data(tmp_path / "clean", n_prompts=120, seed=3, flip_share=0.0)
    noisy = write_demo_data(tmp_path / "noisy", n_prompts=120, seed=3)
    for key in ("hh", "uf"):
        a = load_pairs(key, demo_config(key, clean[key]))[0].set_index("prompt")
        b = load_pairs(key, demo_config(key, noisy[key]))[0].set_index("prompt").loc[a.index]
        kept = (a["chosen"] == b["chosen"]) & (a["rejected"] == b["rejected"])
        swapped = (a["chosen"] == b["rejected"]) & (a["rejected"] == b["chosen"])
        assert (kept | swapped).all() and swapped.sum() == round(FLIP_SHARE * 120)
        assert all(
            planted_score(p, c) > planted_score(p, r)
            for p, c, r in zip(a.index, a["chosen"], a["rejected"], strict=True)
        )
    assert all(m > 0 for m in _planted_margins(clean, "shp"))


def test_planted_score():
    prompt = "\n\nHuman: How do I start running in 2 weeks?\n\nAssistant:"
    assert planted_score(prompt, " Run 10 minutes a day, 3 days a week.") == 2.0
    assert (
        planted_score(prompt, " Run 10 minutes, then 10 more, for 2 weeks.") == 1.0
    )  # repeats and the prompt's
    assert planted_score(prompt, " Just run a little every day.") == 0.0


def test_demo_shp_posts_have_many_pairs(demo):
    rows = read_jsonl(demo["shp"])
    posts = {}
    for row in rows:
        posts.setdefault(row["post_id"], []).append(row)
    sizes = [len(p) for p in posts.values()]
    assert set(sizes) == {1, 3, 6} and sizes.count(1) == 1  # 1: the spare low-ratio post
    for pairs in posts.values():
        assert len({(r["history"], r["domain"], r["upvote_ratio"]) for r in pairs}) == 1
        # each comment id names one text, score and time across the pairs of its post
        comments = {}
        for r in pairs:
            for side in "AB":
                comment = (r[f"human_ref_{side}"], r[f"score_{side}"], r[f"created_at_utc_{side}"])
                assert comments.setdefault(r[f"c_root_id_{side}"], comment) == comment
        n = len(comments)
        assert len(pairs) == n * (n - 1) // 2
    # after a cap of 5 pairs a post there are far more than the demo's n_train + n_eval (96 + 32)
    assert sum(min(s, 5) for s in sizes) > 4 * 128


def test_demo_raw_schemas(demo):
    shp = read_jsonl(demo["shp"])
    for row in shp:
        assert row["score_ratio"] >= 2 or row["score_ratio"] == 1.5  # 1.5: the deliberate drop
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
        "max_pairs_per_prompt", "split_salt", "rows", "pairs", "dropped", "splits", "resolved",
    ]  # fmt: skip
    assert (
        manifest["dataset"] == "shp"
        and manifest["format"] == "shp"
        and manifest["source"] == str(demo["shp"])
    )
    assert manifest["split_salt"] == "p2o-v1" and manifest["min_score_ratio"] == ds.min_score_ratio
    pairs = len(read_jsonl(demo["shp"])) - 1
    assert manifest["rows"] == pairs + 1 and manifest["pairs"] == pairs
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
