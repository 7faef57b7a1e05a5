"""The paired bootstrap: intervals, the role of seeds, its false-positive rate, and the tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from p2o.report.significance import collect_pairs, compare, paired_bootstrap, significance


def test_a_constant_gap_has_a_zero_width_interval():
    mean, lo, hi = paired_bootstrap(np.full((3, 50), 0.1), n_boot=500)
    assert mean == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)


def test_seeds_that_disagree_widen_the_interval():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, size=(1, 200))
    agree = np.concatenate([0.3 + noise, 0.3 + noise, 0.3 + noise])
    disagree = np.concatenate([0.9 + noise, -0.3 + noise, 0.3 + noise])  # same mean, seeds differ
    _, lo_a, hi_a = paired_bootstrap(agree, n_boot=2000)
    _, lo_d, hi_d = paired_bootstrap(disagree, n_boot=2000)
    assert lo_a > 0.28 and hi_a < 0.32
    assert lo_d < 0 < hi_d  # resampling seeds exposes the spread a pairs-only bootstrap would hide
    _, lo_one, hi_one = paired_bootstrap(disagree[:1], n_boot=2000)  # one seed: pairs only
    assert lo_one > 0.85


def test_false_positive_rate_is_near_five_percent():
    rng = np.random.default_rng(1)
    hits = 0
    trials = 300
    for _ in range(trials):
        _, lo, hi = paired_bootstrap(rng.normal(0, 1, size=(1, 100)), n_boot=1000, seed=int(rng.integers(1e9)))
        hits += lo > 0 or hi < 0
    assert 0.01 <= hits / trials <= 0.11, hits / trials


def pairs_frame(values: dict) -> pd.DataFrame:
    """{(method, seed, dataset): [margins]} -> the per-pair frame collect_pairs makes."""
    rows = [{"method": m, "seed": s, "dataset": d, "id": f"{d}{i}", "margin": v, "correct": float(v > 0)}
            for (m, s, d), margins in values.items() for i, v in enumerate(margins)]
    return pd.DataFrame(rows)


def test_compare_pairs_by_id_and_marks_clear_gaps():
    n = 40
    base = {("dpo", s, d): [-1.0] * (n // 2) + [1.0] * (n // 2) for s in (0, 1) for d in ("hh", "uf")}
    better = {("p2o", s, d): [1.0] * n for s in (0, 1) for d in ("hh", "uf")}
    same = {("ipo", s, d): [-1.0] * (n // 2) + [1.0] * (n // 2) for s in (0, 1) for d in ("hh", "uf")}
    pairs = pairs_frame({**base, **better, **same}).sample(frac=1.0, random_state=0)  # order must not matter
    table = significance(pairs, [("p2o", "dpo"), ("ipo", "dpo"), ("dpo", "dpo")], ["hh", "uf"], n_boot=500)
    acc = table[table["metric"] == "eval_rewards/accuracies"].set_index(["method", "dataset"])
    assert acc.loc[("p2o", "all"), "diff"] == pytest.approx(0.5) and acc.loc[("p2o", "all"), "significant"]
    assert acc.loc[("ipo", "hh"), "diff"] == 0 and not acc.loc[("ipo", "hh"), "significant"]
    assert set(table["method"]) == {"p2o", "ipo"} and (acc["n_seeds"] == 2).all()
    assert acc.loc[("p2o", "all"), "n_pairs"] == 2 * n


def test_different_pairs_are_an_error():
    pairs = pairs_frame({("dpo", 0, "hh"): [1.0, -1.0], ("p2o", 0, "hh"): [1.0, 1.0]})
    pairs.loc[pairs["method"] == "p2o", "id"] = ["x", "y"]
    with pytest.raises(ValueError, match="same pairs"):
        compare(pairs, "p2o", "dpo", ["hh"], n_boot=10)


def test_collect_pairs_reads_evaluation_records(tmp_path):
    path = tmp_path / "hh.json"
    path.write_text(json.dumps({"method": "p2o", "seed": 0, "dataset": "hh",
                                "pairs": {"id": ["a", "b", "c"], "margin": [0.5, 0.0, -1.0]}}))
    frame = collect_pairs([path])
    assert frame["correct"].tolist() == [1.0, 0.0, 0.0]  # a tie is a miss, as in eval_rewards/accuracies
    (tmp_path / "old.json").write_text(json.dumps({"method": "p2o", "seed": 0, "dataset": "hh"}))
    with pytest.raises(ValueError, match="old.json"):
        collect_pairs([tmp_path / "old.json"])
