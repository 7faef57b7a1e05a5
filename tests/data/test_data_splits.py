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
