"""Is a method's gap to the baseline real? A paired bootstrap over held-out pairs and seeds.

Every method is evaluated on the same held-out pairs, so differences are paired: for pair i and
seed s, d[s, i] = x_method[s, i] − x_baseline[s, i], with x the pair's correctness (h⁺ > h⁻, so
the mean is the reward accuracy) or its reward margin h⁺ − h⁻. One bootstrap replicate draws the
seeds with replacement and, independently, the pairs with replacement (the same pairs for both
methods: that is the pairing), and takes the mean of d over the draw. The 95 % interval is the
2.5 and 97.5 percentiles of ``N_BOOT`` replicates (Efron & Tibshirani 1993, ch. 13; for NLP
evaluation, Koehn 2004 and Dror et al. 2018). A gap is called significant when the interval
excludes 0. With one seed, only pairs are resampled.

KL per token has no per-pair value in the evaluation records and is not tested.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from p2o.io import read_json

N_BOOT = 10_000
TESTED = {"eval_rewards/accuracies": "correct", "eval_rewards/margins": "margin"}


def paired_bootstrap(diff: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``diff`` (seeds × pairs) and its 95 % percentile interval."""
    diff = np.asarray(diff, dtype=float)
    n_seeds, n_pairs = diff.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds)) if n_seeds > 1 else np.zeros((n_boot, 1), int)
    pairs = rng.integers(0, n_pairs, size=(n_boot, n_pairs))
    per_seed_pair_mean = diff[:, pairs].mean(axis=2)  # (n_seeds, n_boot): every seed on the drawn pairs
    replicates = np.take_along_axis(per_seed_pair_mean.T, seeds, axis=1).mean(axis=1)  # (n_boot,)
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def collect_pairs(eval_files: Iterable[str | Path]) -> pd.DataFrame:
    """Per-pair margins and correctness (method, seed, dataset, id, margin, correct) from the
    evaluation records' ``pairs`` field."""
    frames = []
    for path in eval_files:
        r = read_json(path)
        if "pairs" not in r:
            raise ValueError(f"{path}: no per-pair results ('pairs'); re-run its evaluation with this version")
        margin = np.asarray(r["pairs"]["margin"], dtype=float)
        frames.append(pd.DataFrame({"method": r["method"], "seed": int(r["seed"]), "dataset": r["dataset"],
                                    "id": r["pairs"]["id"], "margin": margin, "correct": (margin > 0) * 1.0}))
    return pd.concat(frames, ignore_index=True)


def compare(pairs: pd.DataFrame, method: str, baseline: str, datasets: list[str], n_boot: int = N_BOOT) -> list[dict]:
    """Rows (dataset incl. 'all', metric, diff, ci_low, ci_high, significant) for one method."""
    rows = []
    seeds = sorted(set(pairs.loc[pairs["method"] == method, "seed"]) & set(pairs.loc[pairs["method"] == baseline,
                                                                                        "seed"]))
    if not seeds:
        return rows
    for dataset in [*datasets, "all"]:
        where = pairs["dataset"].isin(datasets if dataset == "all" else [dataset]) & pairs["seed"].isin(seeds)
        wide = {m: pairs[where & (pairs["method"] == m)].set_index(["seed", "dataset", "id"]).sort_index()
                for m in (method, baseline)}
        if wide[method].empty or not wide[method].index.equals(wide[baseline].index):
            raise ValueError(f"{method} and {baseline} were not evaluated on the same pairs and seeds ({dataset})")
        n_pairs = len(wide[method]) // len(seeds)
        for metric, column in TESTED.items():
            diff = (wide[method][column] - wide[baseline][column]).to_numpy().reshape(len(seeds), n_pairs)
            mean, lo, hi = paired_bootstrap(diff, n_boot)
            rows.append({"method": method, "baseline": baseline, "dataset": dataset, "metric": metric, "diff": mean,
                         "ci_low": lo, "ci_high": hi, "significant": bool(lo > 0 or hi < 0), "n_seeds": len(seeds),
                         "n_pairs": n_pairs})
    return rows


def significance(pairs: pd.DataFrame, comparisons: Iterable[tuple[str, str]], datasets: list[str],
                 n_boot: int = N_BOOT) -> pd.DataFrame:
    """``comparisons``: (method, baseline) pairs, e.g. every method vs dpo and every K-step run vs dpo_k3."""
    rows = [row for method, baseline in comparisons if method != baseline
            for row in compare(pairs, method, baseline, datasets, n_boot)]
    return pd.DataFrame(rows, columns=["method", "baseline", "dataset", "metric", "diff", "ci_low", "ci_high",
                                       "significant", "n_seeds", "n_pairs"])
