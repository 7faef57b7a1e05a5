"""Is a method's gap to the baseline real? A paired bootstrap over held-out pairs and seeds,
Holm–Bonferroni-corrected within each table.

Every method is evaluated on the same held-out pairs, so differences are paired: for pair i and
seed s, d[s, i] = x_method[s, i] − x_baseline[s, i], with x the pair's correctness (1 if h⁺ > h⁻,
½ for a tie, 0 otherwise, so the mean is the reward accuracy of ``p2o.model.evaluate``) or its
reward margin h⁺ − h⁻. One bootstrap replicate draws the seeds with replacement and,
independently, the prompts with replacement, each with all its held-out pairs (the same pairs for
both methods: that is the pairing), and takes the mean of d over the draw. The 95 % interval is the
2.5 and 97.5 percentiles of ``N_BOOT`` replicates (Efron & Tibshirani 1993, ch. 13; for NLP
evaluation, Koehn 2004 and Dror et al. 2018). With one seed, only prompts are resampled.

Resampling prompts rather than pairs is the cluster bootstrap (Davison & Hinkley 1997, §3.8; Field
& Welsh 2007; Cameron, Gelbach & Miller 2008): pairs of one prompt (an SHP post's comments, which
recur across its pairs) are not independent, and resampling them one by one would understate the
variance and give daggers too easily. Where every prompt has one pair (hh-rlhf, UltraFeedback) it is
the pair bootstrap, draw for draw: the same seed gives the same interval. A replicate's mean is the
ratio of the drawn prompts' summed differences to their pair count.

The two-sided p-value of "no gap" is the one that inverts the percentile interval: twice the
smaller share of replicates on either side of 0, counts plus one as for any Monte Carlo p-value
(Davison & Hinkley 1997, ch. 4), so that it is never 0; ``p_value < 0.05`` agrees with the 95 %
interval excluding 0 up to the resampling noise. A table tests every method against its baseline
on two metrics, so the p-values of one table (one dataset and baseline: the ``FAMILY`` columns)
are adjusted together by Holm's step-down method (Holm 1979): with the m p-values sorted,
p₍ₖ₎ becomes max_{j ≤ k} min(1, (m − j + 1)·p₍ⱼ₎), and a gap is ``significant`` (a dagger) when
its adjusted ``p_holm`` is at most ``ALPHA``. This holds the chance of any false dagger in a table
to 5 % whatever the dependence between its tests (as far as the bootstrap p-values are valid).
The interval columns stay the unadjusted 95 % ones. The paper's generated findings read the same
rows (``p2o.report.paper.findings_tex``), so a finding never contradicts a dagger.

KL per token has no per-pair value in the evaluation records and is not tested.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from p2o.io import read_json

N_BOOT = 10_000
ALPHA = 0.05  # family-wise error rate of each table's daggers
TESTED = {"eval_rewards/accuracies": "correct", "eval_rewards/margins": "margin"}
FAMILY = ["dataset", "baseline"]  # the tests one table shows: its dataset, every method against its baseline
COLUMNS = ["method", "baseline", "dataset", "metric", "diff", "ci_low", "ci_high", "p_value", "p_holm", "significant",
           "n_seeds", "n_pairs"]


def paired_bootstrap(diff: np.ndarray, n_boot: int = N_BOOT, seed: int = 0,
                     clusters=None) -> tuple[float, float, float]:
    """Mean of ``diff`` (seeds × pairs) and its 95 % percentile interval."""
    mean, lo, hi, _ = paired_bootstrap_test(diff, n_boot, seed, clusters)
    return mean, lo, hi


def paired_bootstrap_test(diff: np.ndarray, n_boot: int = N_BOOT, seed: int = 0,
                          clusters=None) -> tuple[float, float, float, float]:
    """Mean of ``diff`` (seeds × pairs), its 95 % percentile interval and the two-sided p-value.

    ``clusters`` (one label per pair, e.g. its prompt) are resampled whole; None: each pair is its own.
    """
    diff = np.asarray(diff, dtype=float)
    n_seeds, n_pairs = diff.shape
    if clusters is None:
        clusters = np.arange(n_pairs)
    codes, _ = pd.factorize(np.asarray(clusters))  # cluster k first appears before cluster k + 1
    if len(codes) != n_pairs:
        raise ValueError(f"{len(codes)} cluster labels for {n_pairs} pairs")
    n_clusters = codes.max() + 1 if n_pairs else 0
    sums = np.zeros((n_seeds, n_clusters))  # (n_seeds, n_clusters): each seed's sum of d over a cluster
    np.add.at(sums, (slice(None), codes), diff)
    counts = np.bincount(codes, minlength=n_clusters).astype(float)  # (n_clusters,)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds)) if n_seeds > 1 else np.zeros((n_boot, 1), int)
    drawn = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    per_seed_mean = sums[:, drawn].sum(axis=2) / counts[drawn].sum(axis=1)  # (n_seeds, n_boot)
    replicates = np.take_along_axis(per_seed_mean.T, seeds, axis=1).mean(axis=1)  # (n_boot,)
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    tail = min((replicates <= 0).sum(), (replicates >= 0).sum())
    p = min(1.0, 2 * (tail + 1) / (n_boot + 1))
    return float(diff.mean()), float(lo), float(hi), float(p)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input's order: sorted ascending, the k-th of m
    is multiplied by m − k + 1, then made non-decreasing (a running maximum) and cut at 1. A
    hypothesis is rejected at level α when its adjusted p-value is at most α."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def collect_pairs(eval_files: Iterable[str | Path]) -> pd.DataFrame:
    """Per-pair margins and correctness (method, seed, dataset, id, prompt, margin, correct) from the
    evaluation records' ``pairs`` field; ``prompt`` is the pair's cluster."""
    frames = []
    for path in eval_files:
        r = read_json(path)
        if "pairs" not in r:
            raise ValueError(f"{path}: no per-pair results ('pairs'); re-run its evaluation with this version")
        if "prompt" not in r["pairs"]:
            raise ValueError(f"{path}: per-pair results without each pair's prompt ('pairs.prompt'), which the "
                             f"bootstrap resamples; re-run its evaluation with this version")
        margin = np.asarray(r["pairs"]["margin"], dtype=float)
        frames.append(pd.DataFrame({"method": r["method"], "seed": int(r["seed"]), "dataset": r["dataset"],
                                    "id": r["pairs"]["id"], "prompt": r["pairs"]["prompt"], "margin": margin,
                                    "correct": (margin > 0) + 0.5 * (margin == 0)}))  # a tie: half a win
    return pd.concat(frames, ignore_index=True)


def compare(pairs: pd.DataFrame, method: str, baseline: str, datasets: list[str], n_boot: int = N_BOOT) -> list[dict]:
    """Rows (dataset incl. 'all', metric, diff, ci_low, ci_high, p_value) for one method; ``significance``
    adds the adjusted p-values."""
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
        first_seed = wide[method].iloc[:n_pairs]  # every seed holds the same pairs, in the same order
        clusters = [f"{d}\0{p}" for d, p in zip(first_seed.index.get_level_values("dataset"), first_seed["prompt"],
                                                 strict=True)]
        for metric, column in TESTED.items():
            diff = (wide[method][column] - wide[baseline][column]).to_numpy().reshape(len(seeds), n_pairs)
            mean, lo, hi, p = paired_bootstrap_test(diff, n_boot, clusters=clusters)
            rows.append({"method": method, "baseline": baseline, "dataset": dataset, "metric": metric, "diff": mean,
                         "ci_low": lo, "ci_high": hi, "p_value": p, "n_seeds": len(seeds), "n_pairs": n_pairs})
    return rows


def significance(pairs: pd.DataFrame, comparisons: Iterable[tuple[str, str]], datasets: list[str],
                 n_boot: int = N_BOOT) -> pd.DataFrame:
    """``comparisons``: (method, baseline) pairs, e.g. every method vs dpo and every K-step run vs dpo_k3.
    ``p_holm`` adjusts ``p_value`` within each table's family (``FAMILY``); ``significant`` is
    ``p_holm ≤ ALPHA``."""
    unique = dict.fromkeys((m, b) for m, b in comparisons if m != b)  # a repeated comparison is one test
    rows = [row for method, baseline in unique for row in compare(pairs, method, baseline, datasets, n_boot)]
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_holm", "significant")])
    frame["p_holm"] = frame.groupby(FAMILY, sort=False)["p_value"].transform(holm) if len(frame) else []
    frame["significant"] = frame["p_holm"] <= ALPHA
    return frame[COLUMNS]
