"""The paired bootstrap: intervals, the role of seeds, its false-positive rate, p-values, the Holm
correction within each table, and the tables' daggers agreeing with the generated findings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from p2o.report.aggregate import summarise
from p2o.report.paper import findings_tex
from p2o.report.significance import (ALPHA, COLUMNS, collect_pairs, compare, holm, paired_bootstrap,
                                     paired_bootstrap_test, significance)
from p2o.report.tables import dagger_note, method_table, significant_cells


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
    rows = [{"method": m, "seed": s, "dataset": d, "id": f"{d}{i}", "prompt": f"q{i}", "margin": v,
             "correct": float(v > 0)}
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
    assert list(table.columns) == COLUMNS
    assert acc.loc[("p2o", "all"), "p_value"] == pytest.approx(2 / 501)  # no replicate at or below 0
    assert acc.loc[("ipo", "hh"), "p_value"] == 1.0 and acc.loc[("ipo", "hh"), "p_holm"] == 1.0
    # the family of (hh, dpo) is p2o's and ipo's accuracy and margin: four tests
    hh = table[table["dataset"] == "hh"]
    np.testing.assert_allclose(hh["p_holm"], holm(hh["p_value"]))
    assert len(hh) == 4 and (table["p_holm"] >= table["p_value"]).all()
    repeated = significance(pairs, [("p2o", "dpo"), ("p2o", "dpo"), ("ipo", "dpo")], ["hh", "uf"], n_boot=500)
    pd.testing.assert_frame_equal(repeated, table)  # a comparison listed twice is still one test


def test_different_pairs_are_an_error():
    pairs = pairs_frame({("dpo", 0, "hh"): [1.0, -1.0], ("p2o", 0, "hh"): [1.0, 1.0]})
    pairs.loc[pairs["method"] == "p2o", "id"] = ["x", "y"]
    with pytest.raises(ValueError, match="same pairs"):
        compare(pairs, "p2o", "dpo", ["hh"], n_boot=10)


def test_collect_pairs_reads_evaluation_records(tmp_path):
    path = tmp_path / "hh.json"
    path.write_text(json.dumps({"method": "p2o", "seed": 0, "dataset": "hh",
                                "pairs": {"id": ["a", "b", "c"], "prompt": ["x", "x", "y"],
                                          "margin": [0.5, 0.0, -1.0]}}))
    frame = collect_pairs([path])
    assert frame["correct"].tolist() == [1.0, 0.5, 0.0]  # a tie is half a win, as in eval_rewards/accuracies
    assert frame["prompt"].tolist() == ["x", "x", "y"]
    (tmp_path / "old.json").write_text(json.dumps({"method": "p2o", "seed": 0, "dataset": "hh"}))
    with pytest.raises(ValueError, match="old.json"):
        collect_pairs([tmp_path / "old.json"])
    (tmp_path / "unclustered.json").write_text(json.dumps({"method": "p2o", "seed": 0, "dataset": "hh",
                                                           "pairs": {"id": ["a"], "margin": [0.5]}}))
    with pytest.raises(ValueError, match=r"unclustered\.json.*pairs\.prompt.*re-run"):
        collect_pairs([tmp_path / "unclustered.json"])


# ---------------------------------------------------------------- p-values and the Holm correction


def test_holm_on_a_hand_computed_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> running max 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert (adjusted <= 0.05).tolist() == [True, False, False, True]  # uncorrected, all four would pass
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # cut at 1
    assert holm([0.03]).tolist() == [0.03] and holm([]).tolist() == []


def test_holm_adjusted_p_values_keep_the_order_and_never_fall_below_the_raw_ones():
    rng = np.random.default_rng(3)
    for m in (2, 7, 26):
        p = rng.uniform(0, 0.2, m) ** 2
        p[rng.integers(m)] = p[0]  # a tie among the raw p-values
        adjusted = holm(p)
        order = np.argsort(p, kind="stable")
        assert (np.diff(adjusted[order]) >= 0).all()  # monotone in the raw p-values
        assert (adjusted >= p).all() and (adjusted <= 1).all()
        assert adjusted.min() == pytest.approx(min(1, m * p.min()))  # the smallest: Bonferroni
        assert (adjusted <= np.minimum(1, m * p) + 1e-15).all()  # never stricter than Bonferroni


def test_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(4)
    for shift in (0.0, 0.1, 0.25, 0.5):
        diff = rng.normal(shift, 1, size=(2, 150))
        _, lo, hi, p = paired_bootstrap_test(diff, n_boot=4000)
        assert paired_bootstrap(diff, n_boot=4000)[1:] == (lo, hi)  # the same replicates
        if abs(p - 0.05) > 0.01:  # away from the boundary the two agree
            assert (p < 0.05) == (lo > 0 or hi < 0), (shift, p, lo, hi)


def synthetic_pairs(n: int = 60, seed: int = 7) -> pd.DataFrame:
    """Per-pair margins of four methods on three datasets and 3 seeds: P²O clearly ahead on HH, a little
    on SHP (uncorrected p < 0.05 in accuracy, not after Holm), level on UF."""
    shift = {"hh": 0.8, "shp": 0.18, "uf": 0.0}
    rng = np.random.default_rng(seed)
    rows = []
    for d, ahead in shift.items():
        pair = rng.normal(0.2, 1.0, n)  # what the methods share on a pair: the pairing
        for s in range(3):
            for m in ("dpo", "p2o", "ipo", "kto"):
                margin = pair + (ahead if m == "p2o" else 0.0) + rng.normal(0, 0.5, n)
                rows += [{"method": m, "seed": s, "dataset": d, "id": f"{d}{i}", "prompt": f"q{i}", "margin": v,
                          "correct": float(v > 0)} for i, v in enumerate(margin)]
    return pd.DataFrame(rows)


def test_findings_and_daggers_agree():
    pairs = synthetic_pairs()
    methods, datasets = ["dpo", "p2o", "ipo", "kto"], ["hh", "shp", "uf"]
    sig = significance(pairs, [(m, "dpo") for m in methods], datasets, n_boot=2000)
    per_seed = pairs.groupby(["method", "seed", "dataset"], sort=False).agg(
        **{"eval_rewards/accuracies": ("correct", "mean"), "eval_rewards/margins": ("margin", "mean")})
    per_seed["eval_kl/token_mean"] = 0.1
    metrics = per_seed.reset_index().melt(["method", "seed", "dataset"], var_name="metric")
    per_dataset_seed = metrics.groupby(["method", "seed", "metric"], sort=False)["value"].mean().reset_index()
    summary = pd.concat([summarise(metrics), summarise(per_dataset_seed.assign(dataset="all"))], ignore_index=True)
    findings = findings_tex(summary, methods, datasets, sig)
    acc = sig[(sig["method"] == "p2o") & (sig["metric"] == "eval_rewards/accuracies")].set_index("dataset")
    assert acc.loc["hh", "significant"] and not acc.loc["uf", "significant"]
    assert acc.loc["shp", "p_value"] < ALPHA < acc.loc["shp", "p_holm"]  # the correction changes a verdict
    for d in [*datasets, "all"]:
        table = method_table(summary, d, methods, dagger_note(sig, d, "dpo"), f"tab:{d}", significant_cells(sig, d, "dpo"))
        p2o_row = next(line for line in table.splitlines() if line.startswith("P$^2$O"))
        dagger = "$^\\dagger$" in p2o_row.split("&")[1]  # the accuracy cell
        sentence = next(line for line in findings.splitlines()
                        if line.startswith("Averaged" if d == "all" else f"On {d.upper()}"))
        said = "(significant;" in sentence
        assert said == dagger == bool(acc.loc[d, "significant"]), (d, sentence)
        assert ("(not significant;" in sentence) == (not dagger)
        assert f"$p = {acc.loc[d, 'p_holm']:.3g}$" in sentence and "Holm-adjusted over the table's 6 tests" in sentence
        assert "Holm--Bonferroni-adjusted $p \\le 0.05$ over the table's 6 tests" in table
