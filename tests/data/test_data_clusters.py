"""Many pairs per prompt (stanfordnlp/SHP): the per-prompt cap, training pairs drawn across prompts,
KTO's mismatched completion from another prompt, and the bootstrap that resamples prompts.

The raw rows come from ``tests/shp_posts.py``: posts with 3 to 12 comment pairs each, in the hub schema.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
import torch
from shp_posts import SHP_FIELDS, shp_rows, write_shp_rows

from p2o.config import DatasetConfig
from p2o.data import PAIR_COLUMNS, cap_pairs_per_prompt, load_pairs, pair_id, prepare_dataset, split_hash, split_pairs
from p2o.data.splits import mismatched_partners
from p2o.model.reference import ReferenceLogps, split_partners
from p2o.model.tokenize import TokenizedSplit
from p2o.report.significance import paired_bootstrap, paired_bootstrap_test

N_TRAIN, N_EVAL = 400, 100


@pytest.fixture(scope="module")
def shp_pairs(tmp_path_factory):
    """200 SHP-like posts (about 1500 pairs) as raw rows on disk and as loaded pairs."""
    path = write_shp_rows(tmp_path_factory.mktemp("shp") / "shp.jsonl", shp_rows(200, seed=1))
    ds = DatasetConfig(format="shp", source=str(path))
    return path, load_pairs("shp", ds)[0]


def first_in_hash_order(pairs: pd.DataFrame, n_train: int, n_eval: int, salt: str) -> pd.DataFrame:
    """The training split as drawn before the round-robin: the first n_train train-prompt pairs in (u, id) order."""
    _, evals = split_pairs(pairs, 1, n_eval, salt)
    rest = pairs[~pairs["prompt"].isin(set(evals["prompt"]))]  # every prompt not in eval is a train prompt
    u = [hashlib.sha256(f"{salt}\x00{d}\x00{p}".encode()).hexdigest() for d, p in zip(rest["dataset"], rest["prompt"])]
    return rest.assign(u=u).sort_values(["u", "id"]).head(n_train)[list(PAIR_COLUMNS)]


def test_the_generator_writes_the_hub_schema_with_many_pairs_per_post():
    rows = shp_rows(30, seed=2)
    assert all(list(r) == list(SHP_FIELDS) for r in rows)
    assert all(type(r[k]) is t for r in rows for k, t in SHP_FIELDS.items())
    per_post = pd.Series([r["post_id"] for r in rows]).value_counts()
    assert per_post.between(3, 12).all() and per_post.max() > 5
    for r in rows:
        preferred = "A" if r["labels"] == 1 else "B"
        other = "B" if preferred == "A" else "A"
        assert r[f"score_{preferred}"] > r[f"score_{other}"] and r["score_ratio"] >= 1
        assert r["seconds_difference"] == r[f"created_at_utc_{preferred}"] - r[f"created_at_utc_{other}"] >= 0
    comments = pd.Series([c for r in rows for c in (r["c_root_id_A"], r["c_root_id_B"])]).value_counts()
    assert comments.max() > 1  # a post's comments recur across its pairs


# ---------------------------------------------------------------- the cap


def test_cap_keeps_the_smallest_ids_of_each_prompt_whatever_the_row_order(shp_pairs):
    _, pairs = shp_pairs
    kept, dropped = cap_pairs_per_prompt(pairs, 5)
    assert kept.groupby("prompt").size().max() == 5
    assert dropped == len(pairs) - len(kept) == (pairs.groupby("prompt").size() - 5).clip(lower=0).sum()
    smallest = pairs.groupby("prompt")["id"].apply(lambda ids: set(sorted(ids)[:5]))
    assert all(i in smallest[p] for p, i in zip(kept["prompt"], kept["id"], strict=True))
    shuffled, _ = cap_pairs_per_prompt(pairs.sample(frac=1.0, random_state=0), 5)
    assert set(shuffled["id"]) == set(kept["id"])
    assert cap_pairs_per_prompt(pairs, None)[0].equals(pairs) and cap_pairs_per_prompt(pairs, None)[1] == 0


def test_prepare_caps_each_prompt_and_reports_the_drop(shp_pairs, tmp_path):
    path, pairs = shp_pairs
    ds = DatasetConfig(format="shp", source=str(path), max_pairs_per_prompt=5)
    manifest = prepare_dataset("shp", ds, N_TRAIN, N_EVAL, "p2o-v1", tmp_path)
    over = int((pairs.groupby("prompt").size() - 5).clip(lower=0).sum())
    assert over > 0 and manifest["dropped"]["over_max_pairs_per_prompt"] == over
    assert manifest["max_pairs_per_prompt"] == 5
    assert manifest["rows"] == manifest["pairs"] + sum(manifest["dropped"].values())
    train = pd.read_json(tmp_path / "train.jsonl", lines=True)
    evals = pd.read_json(tmp_path / "eval.jsonl", lines=True)
    assert pd.concat([train, evals]).groupby("prompt").size().max() <= 5
    assert not set(train["prompt"]) & set(evals["prompt"])  # still prompt-disjoint
    uncapped = prepare_dataset("shp", DatasetConfig(format="shp", source=str(path)), N_TRAIN, N_EVAL, "p2o-v1",
                               tmp_path / "all")
    assert uncapped["dropped"]["over_max_pairs_per_prompt"] == 0 and uncapped["max_pairs_per_prompt"] is None


# ---------------------------------------------------------------- training pairs across prompts


@pytest.mark.parametrize("cap", [None, 5])
def test_training_pairs_come_from_as_many_prompts_as_possible(shp_pairs, cap):
    pairs, _ = cap_pairs_per_prompt(shp_pairs[1], cap)
    train, evals = split_pairs(pairs, N_TRAIN, N_EVAL, "p2o-v1")
    assert not set(train["prompt"]) & set(evals["prompt"])
    n_prompts = pairs["prompt"].nunique() - evals["prompt"].nunique()  # the train prompts
    assert train["prompt"].nunique() == min(N_TRAIN, n_prompts)  # the most a 400-pair subset can cover
    counts = train.groupby("prompt").size()
    assert counts.max() - counts.min() <= 1  # round-robin: no prompt is two pairs ahead of another
    before = first_in_hash_order(pairs, N_TRAIN, N_EVAL, "p2o-v1")
    assert before["prompt"].nunique() < n_prompts / 2  # the previous rule: a few dozen posts
    print(f"cap {cap}: {len(pairs)} pairs, {n_prompts} train prompts; 400 training pairs cover "
          f"{before['prompt'].nunique()} prompts before, {train['prompt'].nunique()} now")


def test_round_robin_keeps_the_nested_and_order_properties(shp_pairs):
    pairs = shp_pairs[1]
    big, evals = split_pairs(pairs, N_TRAIN, N_EVAL, "p2o-v1")
    for n in (1, 37, 150, 399):
        small, small_eval = split_pairs(pairs, n, N_EVAL, "p2o-v1")
        assert list(small["id"]) == list(big["id"][:n]) and small_eval.equals(evals)
    shuffled = split_pairs(pairs.sample(frac=1.0, random_state=4), N_TRAIN, N_EVAL, "p2o-v1")
    assert split_hash(shuffled[0]) == split_hash(big) and split_hash(shuffled[1]) == split_hash(evals)
    _, eval_small = split_pairs(pairs, N_TRAIN, 30, "p2o-v1")
    assert set(eval_small["id"]) <= set(evals["id"])


def test_one_pair_per_prompt_splits_are_unchanged():
    """With one pair per prompt the round-robin is plain hash order: the split hashes the previous rule
    gave (pinned) and the previous rule itself."""
    rows = []
    for k in range(150):
        prompt, chosen, rejected = f"\n\nHuman: question {k}?\n\nAssistant:", f" good answer {k}", f" bad answer {k}"
        rows.append({"id": pair_id("toy", prompt, chosen, rejected), "dataset": "toy", "prompt": prompt,
                     "chosen": chosen, "rejected": rejected})
    pairs = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    train, evals = split_pairs(pairs, 100, 30, "p2o-v1")
    assert split_hash(train) == "e4f3cd35020bf85028e6296a317e682f07a90e37499051747b23ec089724a435"
    assert split_hash(evals) == "0e5c293b490b12a8e2114659f0216913e161ffdf4d4479f2e4492a3f8097a189"
    assert split_hash(train) == split_hash(first_in_hash_order(pairs, 100, 30, "p2o-v1").reset_index(drop=True))


# ---------------------------------------------------------------- KTO's mismatched completion


def as_tokens(frame: pd.DataFrame, max_length: int = 10_000) -> TokenizedSplit:
    """A split as 'token ids' (the UTF-8 bytes), enough for the pairing rules."""
    def enc(texts):
        return [list(t.encode()) for t in texts]
    return TokenizedSplit("shp", list(frame["id"]), enc(frame["prompt"]), enc(frame["chosen"]), enc(frame["rejected"]),
                          max_length)


def mismatched_partner(prompts, i: int) -> int:
    """The rule one pair at a time, by brute force: the oracle of the O(n) ``mismatched_partners``."""
    n = len(prompts)
    return next((i + step) % n for step in range(1, n) if prompts[(i + step) % n] != prompts[i])


def test_mismatched_partner_always_has_another_prompt(shp_pairs):
    pairs = shp_pairs[1]
    train, evals = split_pairs(pairs, N_TRAIN, N_EVAL, "p2o-v1")
    for frame in (train, evals):  # eval holds whole prompts one after another: pair i+1 is often the same post
        split = as_tokens(frame)
        partners = mismatched_partners(split.prompt)
        n = len(split)
        for i, j in enumerate(partners):
            assert split.prompt[j] != split.prompt[i]
            between = [(i + s) % n for s in range(1, (j - i) % n)]
            assert all(split.prompt[k] == split.prompt[i] for k in between)  # the first one after i
            assert j == mismatched_partner(split.prompt, i)
            assert split.mismatched_response(i) == split.chosen[j]
    assert any(j != (i + 1) % len(evals) for i, j in enumerate(mismatched_partners(as_tokens(evals).prompt)))
    one_prompt = as_tokens(evals[evals["prompt"] == evals["prompt"].iloc[0]])
    assert mismatched_partners(one_prompt.prompt) == [-1] * len(one_prompt)
    with pytest.raises(ValueError, match="'shp'.*share one prompt"):
        one_prompt.mismatched_response(0)


def fake_reference(split: TokenizedSplit, partner: torch.Tensor | None) -> ReferenceLogps:
    """Reference log-probs whose mismatched row i encodes its partner: -(1000 i + partner)."""
    n = len(split)
    steps = torch.arange(n, dtype=torch.float)
    values = partner if partner is not None else (torch.arange(n) + 1) % n
    return ReferenceLogps(ids=list(split.ids), chosen=-steps, rejected=-2 * steps, chosen_tokens=steps + 1,
                          rejected_tokens=steps + 1, mismatched=-(1000 * steps + values.float()), tokenize={},
                          mismatched_partner=partner)


def test_reference_prefix_voids_exactly_the_rows_a_subset_would_pair_otherwise(shp_pairs):
    _, evals = split_pairs(shp_pairs[1], N_TRAIN, N_EVAL, "p2o-v1")
    split = as_tokens(evals)
    ref = fake_reference(split, split_partners(split))
    n_voided = 0
    for n in range(1, len(split) + 1):
        sub = ref.prefix(n)
        fresh = mismatched_partners(split.prompt[:n])
        for i in range(n):
            if fresh[i] == int(ref.mismatched_partner[i]):
                assert sub.mismatched[i] == ref.mismatched[i] and int(sub.mismatched_partner[i]) == fresh[i]
            else:
                assert math.isnan(sub.mismatched[i]) and int(sub.mismatched_partner[i]) == -1
                n_voided += 1
    assert n_voided > len(split)  # more than one row per prefix, as pair i+1's rule would void


def test_a_saved_prefix_loads_against_the_subset_split(shp_pairs, tmp_path):
    """The reward-model experiment saves prefixes and trains on the subset: the voided rows (partner
    -1) do not count as stale partners."""
    _, evals = split_pairs(shp_pairs[1], N_TRAIN, N_EVAL, "p2o-v1")
    ref = fake_reference(as_tokens(evals), split_partners(as_tokens(evals)))
    for n in (3, len(evals) // 2):
        ref.prefix(n).save(tmp_path / f"n{n}.pt")
        loaded = ReferenceLogps.load(tmp_path / f"n{n}.pt", as_tokens(evals.iloc[:n].reset_index(drop=True)))
        assert (loaded.mismatched_partner == -1).any() and len(loaded.ids) == n


def test_reference_files_record_other_partners_and_reject_stale_ones(shp_pairs, tmp_path):
    _, evals = split_pairs(shp_pairs[1], N_TRAIN, N_EVAL, "p2o-v1")
    split = as_tokens(evals)
    ref = fake_reference(split, split_partners(split))
    ref.save(tmp_path / "ref.pt")
    assert torch.equal(ReferenceLogps.load(tmp_path / "ref.pt", split).mismatched_partner, ref.mismatched_partner)
    fake_reference(split, None).save(tmp_path / "old.pt")  # pairs with i+1, as before
    with pytest.raises(ValueError, match="other partner pairs.*rerun"):
        ReferenceLogps.load(tmp_path / "old.pt", split)
    # one pair per prompt: partners are i+1 and the file is written without them, as before
    singles = as_tokens(evals.drop_duplicates("prompt"))
    fake_reference(singles, split_partners(singles)).save(tmp_path / "singles.pt")
    assert "mismatched_partner" not in torch.load(tmp_path / "singles.pt", weights_only=True)
    assert ReferenceLogps.load(tmp_path / "singles.pt", singles).mismatched_partner is None


# ---------------------------------------------------------------- the cluster bootstrap


def pair_bootstrap_before(diff, n_boot, seed):
    """The pair bootstrap as it was before clusters: the reference for singleton clusters."""
    n_seeds, n_pairs = diff.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds)) if n_seeds > 1 else np.zeros((n_boot, 1), int)
    pairs = rng.integers(0, n_pairs, size=(n_boot, n_pairs))
    replicates = np.take_along_axis(diff[:, pairs].mean(axis=2).T, seeds, axis=1).mean(axis=1)
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    tail = min((replicates <= 0).sum(), (replicates >= 0).sum())
    return float(diff.mean()), float(lo), float(hi), float(min(1.0, 2 * (tail + 1) / (n_boot + 1)))


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_singleton_clusters_are_the_pair_bootstrap_draw_for_draw(n_seeds):
    diff = np.random.default_rng(5).normal(0.1, 1.0, size=(n_seeds, 80))
    expected = pair_bootstrap_before(diff, 2000, 11)
    assert paired_bootstrap_test(diff, 2000, 11) == expected
    assert paired_bootstrap_test(diff, 2000, 11, clusters=[f"prompt {i}" for i in range(80)]) == expected


def clustered_diffs(rng, n_clusters=20, size=10, effect=0.0):
    """Differences that share most of their value within a cluster (intra-cluster correlation ~0.99)."""
    per_cluster = rng.normal(effect, 1.0, n_clusters)
    diff = np.repeat(per_cluster, size) + rng.normal(0, 0.1, n_clusters * size)
    return diff[None, :], np.repeat(np.arange(n_clusters), size)


def test_cluster_interval_is_wider_on_clustered_differences():
    diff, clusters = clustered_diffs(np.random.default_rng(0))
    _, lo_pair, hi_pair = paired_bootstrap(diff, n_boot=4000)
    _, lo_cluster, hi_cluster = paired_bootstrap(diff, n_boot=4000, clusters=clusters)
    # 20 clusters of 10 nearly equal differences carry the information of about 20 pairs, not 200
    assert (hi_cluster - lo_cluster) > 2.5 * (hi_pair - lo_pair)


def test_cluster_bootstrap_keeps_its_level_where_the_pair_bootstrap_does_not():
    rng = np.random.default_rng(8)
    trials, false_pair, false_cluster = 200, 0, 0
    for _ in range(trials):
        diff, clusters = clustered_diffs(rng, n_clusters=30)
        _, lo, hi = paired_bootstrap(diff, n_boot=500, seed=int(rng.integers(1e9)))
        false_pair += lo > 0 or hi < 0
        _, lo, hi = paired_bootstrap(diff, n_boot=500, seed=int(rng.integers(1e9)), clusters=clusters)
        false_cluster += lo > 0 or hi < 0
    assert false_cluster / trials <= 0.12 and false_pair / trials >= 0.4, (false_cluster, false_pair)
