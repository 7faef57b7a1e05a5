"""p2o.data.split_pairs / split_hash: deterministic, prompt-disjoint, exact-size, nested splits."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from p2o.data import PAIR_COLUMNS, pair_id, split_hash, split_pairs


def make_pairs(n_prompts: int = 80, dataset: str = "toy") -> pd.DataFrame:
    """``n_prompts`` prompts with 1, 2 or 3 pairs each."""
    rows = []
    for k in range(n_prompts):
        prompt = f"\n\nHuman: question {k}?\n\nAssistant:"
        for j in range(1 + k % 3):
            chosen, rejected = f" good answer {k}.{j}", f" bad answer {k}.{j}"
            rows.append(
                {"id": pair_id(dataset, prompt, chosen, rejected), "dataset": dataset, "prompt": prompt,
                 "chosen": chosen, "rejected": rejected}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))


def test_exact_sizes_disjoint_and_columns():
    pairs = make_pairs()
    train, evals = split_pairs(pairs, 100, 30, "salt")
    assert (len(train), len(evals)) == (100, 30)
    assert list(train.columns) == list(PAIR_COLUMNS) == list(evals.columns)
    assert not set(train["prompt"]) & set(evals["prompt"])
    assert train["id"].is_unique and evals["id"].is_unique
    assert list(train.index) == list(range(100))


def test_deterministic_and_independent_of_row_order():
    pairs = make_pairs()
    train, evals = split_pairs(pairs, 100, 30, "salt")
    shuffled = pairs.sample(frac=1.0, random_state=3)
    train2, evals2 = split_pairs(shuffled, 100, 30, "salt")
    assert list(train["id"]) == list(train2["id"]) and list(evals["id"]) == list(evals2["id"])
    assert split_hash(train) == split_hash(train2)
    _, other_eval = split_pairs(pairs, 100, 30, "another salt")
    assert list(other_eval["id"]) != list(evals["id"])


def test_order_follows_the_prompt_hash():
    pairs = make_pairs()
    train, evals = split_pairs(pairs, 100, 30, "s")

    def u(row):
        return hashlib.sha256(f"s\x00{row['dataset']}\x00{row['prompt']}".encode()).hexdigest()

    keys = [(u(r), r["id"]) for r in evals.to_dict("records")]
    assert keys == sorted(keys)
    # train is round-robin over its prompts: every prompt's k-th pair (in id order) in u order, k = 0, 1, ...
    by_prompt = pairs.groupby("prompt")["id"].apply(sorted)
    rank = [by_prompt[r["prompt"]].index(r["id"]) for r in train.to_dict("records")]
    keys = [(k, u(r)) for k, r in zip(rank, train.to_dict("records"), strict=True)]
    assert keys == sorted(keys) and max(rank) > 0
    # every eval prompt hashes below every train prompt
    assert max(u(r) for r in evals.to_dict("records")) < min(u(r) for r in train.to_dict("records"))


def test_nested_property():
    pairs = make_pairs()
    _, eval_big = split_pairs(pairs, 50, 40, "salt")
    for n_eval in (1, 7, 20, 39):
        train, eval_small = split_pairs(pairs, 50, n_eval, "salt")
        assert list(eval_small["id"]) == list(eval_big["id"][:n_eval])  # a prefix, hence a subset
        assert not set(train["prompt"]) & set(eval_small["prompt"])
    train_small, _ = split_pairs(pairs, 20, 40, "salt")
    train_big, _ = split_pairs(pairs, 50, 40, "salt")
    assert list(train_small["id"]) == list(train_big["id"][:20])


def test_whole_prompts_go_to_eval():
    pairs = make_pairs()
    train, evals = split_pairs(pairs, 10, 5, "salt")
    # pairs of the last eval prompt beyond n_eval are in neither split
    assert not set(train["prompt"]) & set(evals["prompt"])
    eval_prompt_pairs = pairs[pairs["prompt"].isin(set(evals["prompt"]))]
    assert len(eval_prompt_pairs) >= 5


def test_too_few_pairs_names_dataset_key_and_counts():
    pairs = make_pairs(10)  # 1+2+3+... = 19 pairs
    assert len(pairs) == 19
    with pytest.raises(ValueError, match=r"dataset 'toy'.*'data\.n_eval' = 20.*19 pairs over 10 prompts"):
        split_pairs(pairs, 1, 20, "salt")
    with pytest.raises(ValueError, match=r"dataset 'toy'.*'data\.n_train' = 15.*\d+ available") as info:
        split_pairs(pairs, 15, 5, "salt")
    _, evals = split_pairs(pairs, 1, 5, "salt")
    available = len(pairs) - len(pairs[pairs["prompt"].isin(set(evals["prompt"]))])
    assert f"{available} available" in str(info.value)


def test_split_hash_is_the_sha256_of_canonical_jsonl():
    pairs = make_pairs(5)
    text = "".join(
        json.dumps({k: r[k] for k in PAIR_COLUMNS}, ensure_ascii=False, sort_keys=True) + "\n"
        for r in pairs.to_dict("records")
    )
    assert split_hash(pairs) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert split_hash(pairs) == split_hash(pairs.copy())
    changed = pairs.copy()
    changed.loc[2, "chosen"] = changed.loc[2, "chosen"] + "!"
    assert split_hash(changed) != split_hash(pairs)
    assert split_hash(pairs.iloc[::-1]) != split_hash(pairs)  # row order matters
    unicode = pairs.copy()
    unicode.loc[0, "prompt"] = "café ☕"
    assert (
        split_hash(unicode)
        == hashlib.sha256(
            "".join(
                json.dumps({k: r[k] for k in PAIR_COLUMNS}, ensure_ascii=False, sort_keys=True) + "\n"
                for r in unicode.to_dict("records")
            ).encode("utf-8")
        ).hexdigest()
    )


# ---------------------------------------------------------------- the trained gold judge's pool


def test_gold_pool_is_the_tail_of_the_order_disjoint_and_leaves_the_splits_alone():
    from p2o.data import hold_out_tail

    pairs = make_pairs(200)  # 400 pairs: room for everything
    train, evals = split_pairs(pairs, 100, 30, "salt")
    gold, rest = hold_out_tail(pairs, 60, "salt")
    assert len(gold) == 60 and list(gold.columns) == list(PAIR_COLUMNS) and gold["id"].is_unique
    assert len(rest) + len(gold) <= len(pairs) and not set(rest["prompt"]) & set(gold["prompt"])  # whole prompts
    train2, evals2 = split_pairs(rest, 100, 30, "salt")
    assert not set(gold["prompt"]) & (set(train2["prompt"]) | set(evals2["prompt"]))
    pd.testing.assert_frame_equal(train2, train)  # taken from the end of the order: splits unchanged
    pd.testing.assert_frame_equal(evals2, evals)
    # the pool is the last prompts in the hash order, deterministic whatever the row order
    shuffled, _ = hold_out_tail(pairs.sample(frac=1.0, random_state=1), 60, "salt")
    pd.testing.assert_frame_equal(shuffled, gold)
    u = {p: hashlib.sha256(f"salt\x00toy\x00{p}".encode()).hexdigest() for p in pairs["prompt"]}
    assert min(u[p] for p in gold["prompt"]) >= max(u[p] for p in rest["prompt"])
    empty, everything = hold_out_tail(pairs, 0, "salt")
    assert empty.empty and len(everything) == len(pairs)


def test_gold_pool_larger_than_the_data_names_the_key(tmp_path):
    from p2o.config import DatasetConfig
    from p2o.data import hold_out_tail, prepare_dataset

    with pytest.raises(ValueError, match=r"judge\.n_pairs.*1000.*159 pairs"):
        hold_out_tail(make_pairs(80), 1000, "salt")
    path = tmp_path / "raw.jsonl"
    turn = "\n\nHuman: question {}?\n\nAssistant: {} answer {}"
    path.write_text("".join(json.dumps({"chosen": turn.format(k, "good", k), "rejected": turn.format(k, "bad", k)})
                            + "\n" for k in range(50)))
    with pytest.raises(ValueError, match=r"data\.n_train.*judge\.n_pairs = 30"):
        prepare_dataset("toy", DatasetConfig(format="hh-rlhf", source=str(path)), 20, 5, "salt", tmp_path / "out",
                        n_gold=30)
    manifest = prepare_dataset("toy", DatasetConfig(format="hh-rlhf", source=str(path)), 20, 5, "salt",
                               tmp_path / "out", n_gold=25)
    assert {k: v["n"] for k, v in manifest["splits"].items()} == {"train": 20, "eval": 5, "gold": 25}
    gold = [json.loads(line) for line in (tmp_path / "out" / "gold.jsonl").read_text().splitlines()]
    assert hashlib.sha256((tmp_path / "out" / "gold.jsonl").read_bytes()).hexdigest() == manifest["splits"]["gold"]["sha256"]
    train = (tmp_path / "out" / "train.jsonl").read_text()
    assert len(gold) == 25 and not any(g["prompt"] in train for g in gold)
