"""Win rates, the length-controlled win rate and the Monte-Carlo KL estimators (``p2o.report.winrate``)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from p2o.report.winrate import (
    compare_to_baseline,
    fit_length_glm,
    generation_summary,
    kl_estimates,
    length_controlled_win_rate,
    length_feature,
    outcome,
    pair_outcomes,
    win_rate,
)


def table(scores, lengths, n_samples=1, eos=None):
    n = len(scores)
    return pd.DataFrame({"prompt_id": [f"p{i // n_samples}" for i in range(n)],
                         "sample": [i % n_samples for i in range(n)], "score": scores, "n_tokens": lengths,
                         "eos": eos if eos is not None else [True] * n})


def test_outcome_counts_a_tie_half():
    assert list(outcome([3, 1, 2], [1, 3, 2])) == [1.0, 0.0, 0.5]
    assert win_rate(outcome([3, 1, 2, 2], [1, 3, 2, 2])) == 0.5


def test_length_controlled_equals_raw_when_lengths_are_equal():
    rng = np.random.default_rng(0)
    wins = rng.choice([0.0, 0.5, 1.0], size=300, p=[0.3, 0.1, 0.6])
    assert length_controlled_win_rate(wins, np.zeros(300)) == pytest.approx(win_rate(wins), abs=1e-12)
    pairs = pair_outcomes(table(rng.normal(size=40), [7] * 40), table(rng.normal(size=40), [7] * 40))
    result = compare_to_baseline(table(rng.normal(size=40), [7] * 40), table(rng.normal(size=40), [7] * 40))
    assert result["lc_win_rate"] == pytest.approx(result["win_rate"], abs=1e-12)
    assert (pairs["length_diff"] == 0).all()


def test_length_controlled_removes_a_length_bias():
    """A judge that prefers the longer text and nothing else: the longer policy wins often, but at equal
    length it would win half the time."""
    rng = np.random.default_rng(1)
    diff = rng.normal(loc=8.0, scale=10.0, size=4000)
    wins = (rng.random(4000) < 1 / (1 + np.exp(-2.0 * length_feature(diff)))).astype(float)
    assert win_rate(wins) > 0.65
    assert length_controlled_win_rate(wins, diff) == pytest.approx(0.5, abs=0.03)


def test_length_glm_is_at_its_optimum():
    rng = np.random.default_rng(2)
    diff = rng.normal(size=200)
    wins = rng.choice([0.0, 0.5, 1.0], size=200)
    theta, phi = fit_length_glm(wins, diff, ridge=0.0)
    x = np.column_stack([np.ones(200), length_feature(diff)])
    p = 1 / (1 + np.exp(-(x @ [theta, phi])))
    assert np.abs(x.T @ (wins - p)).max() < 1e-8  # the score equations of the likelihood


def test_length_controlled_stays_finite_under_separation_and_at_the_extremes():
    diff = np.array([-3.0, -1.0, 2.0, 5.0])
    lc = length_controlled_win_rate(np.array([0.0, 0.0, 1.0, 1.0]), diff)  # length decides every pair
    assert 0.0 < lc < 1.0 and np.isfinite(lc)
    assert length_controlled_win_rate(np.ones(4), diff) == 1.0
    assert length_controlled_win_rate(np.zeros(4), diff) == 0.0


def test_kl_estimators():
    assert kl_estimates(np.array([-3.0, -5.0]), np.array([-3.0, -5.0])) == {"kl_k1": 0.0, "kl_k2": 0.0,
                                                                              "kl_k3": 0.0}
    log_r = np.array([0.1, -0.2])
    got = kl_estimates(np.zeros(2), log_r)
    assert got["kl_k1"] == pytest.approx(0.05)
    assert got["kl_k2"] == pytest.approx(0.5 * (0.01 + 0.04) / 2)
    assert got["kl_k3"] == pytest.approx(np.mean(np.exp(log_r) - 1 - log_r))


def test_kl_estimators_are_unbiased_for_the_exact_kl():
    rng = np.random.default_rng(3)
    pi, ref = np.array([0.5, 0.2, 0.15, 0.1, 0.05]), np.array([0.2, 0.2, 0.2, 0.2, 0.2])
    exact = float(np.sum(pi * np.log(pi / ref)))
    y = rng.choice(5, size=200_000, p=pi)  # y ~ π
    got = kl_estimates(np.log(pi[y]), np.log(ref[y]))
    assert got["kl_k1"] == pytest.approx(exact, abs=0.01)
    assert got["kl_k3"] == pytest.approx(exact, abs=0.01)
    assert np.all(np.expm1(np.log(ref[y] / pi[y])) - np.log(ref[y] / pi[y]) >= 0)  # k3 ≥ 0 on every draw


def test_pairing_by_sample_and_across_samples():
    samples = table([1, 2, 3, 4], [5, 6, 7, 8], n_samples=2)
    baseline = table([2, 2, 0, 9], [5, 5, 5, 5], n_samples=2)
    by_sample = pair_outcomes(samples, baseline)
    assert list(by_sample["win"]) == [0.0, 0.5, 1.0, 0.0]
    assert list(by_sample["length_diff"]) == [0.0, 1.0, 2.0, 3.0]
    cross = pair_outcomes(samples, baseline, how="cross")
    assert len(cross) == 8 and list(cross["win"]) == [0, 0, 0.5, 0.5, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="no baseline"):
        pair_outcomes(samples, baseline[baseline["prompt_id"] == "p0"])
    with pytest.raises(ValueError, match="same index"):
        pair_outcomes(samples, baseline[baseline["sample"] == 0])


def test_generation_summary():
    samples = table([1, 2, 3, 4], [4, 6, 8, 10], eos=[True, False, True, True])
    samples["logprob"], samples["ref_logprob"] = [-1.0, -2.0, -3.0, -4.0], [-1.0, -2.0, -3.0, -4.0]
    summary = generation_summary(samples)
    assert summary == {"n_samples": 4, "mean_length": 7.0, "eos_rate": 0.75, "mean_score": 2.5,
                       "kl_k1": 0.0, "kl_k2": 0.0, "kl_k3": 0.0}


def test_the_module_needs_no_torch():
    code = "import sys, p2o.report.winrate; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
