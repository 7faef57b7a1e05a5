"""Judging models by what they generate: win rates against a baseline's samples, length-controlled
win rates, Monte-Carlo KL to the reference, lengths and EOS rates. numpy and pandas only.

Inputs are tidy sample tables, one row per generated completion (``p2o.model.generate.Sample.record``
plus a judge's ``score``): ``prompt_id``, ``sample``, ``score``, a length column (``n_tokens`` by
default), ``eos``, and for the KL ``logprob`` (log π(y|x)) and ``ref_logprob`` (log π_ref(y|x)).

Win rate. ``pair_outcomes`` pairs each of the policy's samples with the baseline's on the same prompt,
either sample k with sample k (``how="sample"``) or every sample with every baseline sample of the
prompt (``how="cross"``). A pair's outcome is 1 when the policy's score is higher, ½ on a tie, 0
otherwise; the win rate is their mean (so two equal policies score 0.5, as held-out accuracy does in
``p2o.model.evaluate``).

Length-controlled win rate (Dubois, Galambosi, Liang & Hashimoto 2024, "Length-Controlled AlpacaEval:
A Simple Way to Debias Automatic Evaluators", arXiv:2404.04475). A judge that prefers longer text
rewards a policy for length alone; the length-controlled win rate asks what the win rate would be if
the two completions had the same length. Fit a logistic regression of the outcome on the standardised
length difference, P(win) = σ(θ + φ·tanh(Δ / sd(Δ))) with Δ = len(policy) − len(baseline) per pair
(AlpacaEval 2's ``length_controlled_v1`` length term; its other terms, the instruction difficulty and
the per-model contrasts across a leaderboard, do not apply to one pairwise comparison), and report the
predicted win probability at Δ = 0, σ(θ̂). The fit is maximum likelihood by Newton's method (IRLS)
with ties as outcome ½ (a fractional, quasi-binomial response, concave all the same) and a small ridge
on φ alone (``LC_RIDGE``; AlpacaEval also fits an L2-regularised regression), which keeps φ finite when
the length difference separates wins from losses. When every Δ is 0 the length term is 0 and σ(θ̂) is
the raw win rate exactly; at a raw win rate of 0 or 1, θ̂ is infinite and the raw rate is returned.

Monte-Carlo KL (Schulman 2020, "Approximating KL Divergence", joschu.net/blog/kl-approx.html). With
y ~ π(·|x) and log r = log π_ref(y|x) − log π(y|x): k1 = mean(−log r), unbiased for KL(π ‖ π_ref)
but of high variance and negative on some draws; k2 = mean(½(log r)²), biased, low variance; k3 =
mean((r − 1) − log r), unbiased and ≥ 0 on every draw. They estimate the KL only when the samples are
drawn from π itself (temperature 1, top_p 1); at other settings they are log-ratio statistics of
the samples. The values are per sequence (nats per completion), not per token.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LC_RIDGE = 1e-3  # L2 penalty on the length coefficient φ (the intercept is not penalised)
LENGTH = "n_tokens"


def outcome(score: np.ndarray, baseline_score: np.ndarray) -> np.ndarray:
    """1 where ``score`` is higher, ½ on a tie, 0 where lower (element-wise)."""
    score, baseline_score = np.asarray(score, dtype=float), np.asarray(baseline_score, dtype=float)
    return (score > baseline_score) + 0.5 * (score == baseline_score)


def pair_outcomes(samples: pd.DataFrame, baseline: pd.DataFrame, how: str = "sample",
                  length: str = LENGTH) -> pd.DataFrame:
    """One row per (policy sample, baseline sample) pair on a shared prompt: ``prompt_id``, ``sample``,
    ``baseline_sample``, ``win`` (1, ½, 0) and ``length_diff`` (policy − baseline). ``how="sample"``
    pairs equal sample indices, ``"cross"`` every sample with every baseline sample of its prompt.
    A policy sample without its baseline counterpart (prompt, or sample index for ``"sample"``) is an
    error; baseline prompts the policy lacks are ignored."""
    cols = ["prompt_id", "sample", "score", length]
    left, right = samples[cols], baseline[cols].rename(columns={"sample": "baseline_sample"})
    if how == "sample":
        pairs = left.merge(right, left_on=["prompt_id", "sample"], right_on=["prompt_id", "baseline_sample"],
                           suffixes=("", "_baseline"), validate="one_to_one")
    elif how == "cross":
        pairs = left.merge(right, on="prompt_id", suffixes=("", "_baseline"))
    else:
        raise ValueError(f"how={how!r}: expected 'sample' or 'cross'")
    missing = sorted(set(samples["prompt_id"]) - set(baseline["prompt_id"]))
    if missing:
        raise ValueError(f"{len(missing)} prompts have no baseline sample (e.g. {missing[:3]})")
    if how == "sample" and len(pairs) < len(samples):
        raise ValueError(f"{len(samples) - len(pairs)} samples have no baseline sample of the same index")
    return pd.DataFrame({
        "prompt_id": pairs["prompt_id"], "sample": pairs["sample"], "baseline_sample": pairs["baseline_sample"],
        "win": outcome(pairs["score"].to_numpy(), pairs["score_baseline"].to_numpy()),
        "length_diff": pairs[length].to_numpy(float) - pairs[f"{length}_baseline"].to_numpy(float),
    }).reset_index(drop=True)


def win_rate(wins: np.ndarray) -> float:
    """Mean outcome: the share of pairs won, a tie counting half."""
    wins = np.asarray(wins, dtype=float)
    if wins.size == 0:
        raise ValueError("no pairs")
    return float(wins.mean())


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for any z


def length_feature(length_diff: np.ndarray) -> np.ndarray:
    """tanh(Δ / sd(Δ)) (sample standard deviation); all zeros when sd(Δ) is 0."""
    d = np.asarray(length_diff, dtype=float)
    sd = d.std(ddof=1) if d.size > 1 else 0.0
    return np.tanh(d / sd) if sd > 0 else np.zeros_like(d)


def fit_length_glm(wins: np.ndarray, length_diff: np.ndarray, ridge: float = LC_RIDGE,
                   max_iter: int = 100, tol: float = 1e-12) -> tuple[float, float]:
    """(θ̂, φ̂) of P(win) = σ(θ + φ·tanh(Δ/sd(Δ))), maximum (ridge-on-φ) likelihood by Newton's method
    with step halving. Requires a raw win rate strictly between 0 and 1."""
    y = np.asarray(wins, dtype=float)
    x = np.column_stack([np.ones_like(y), length_feature(length_diff)])  # (N, 2)
    penalty = np.diag([0.0, ridge])

    def objective(beta):  # penalised log-likelihood, to be maximised
        z = x @ beta
        return float(np.sum(y * z - np.logaddexp(0.0, z)) - 0.5 * beta @ penalty @ beta)

    mean = y.mean()
    beta = np.array([np.log(mean / (1 - mean)), 0.0])  # the intercept-only optimum
    value = objective(beta)
    for _ in range(max_iter):
        p = _sigmoid(x @ beta)
        grad = x.T @ (y - p) - penalty @ beta
        hess = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while objective(beta + t * step) < value - 1e-15 and t > 1e-8:
            t /= 2
        beta, previous = beta + t * step, value
        value = objective(beta)
        if np.max(np.abs(t * step)) < tol or abs(value - previous) < tol:
            break
    return float(beta[0]), float(beta[1])


def length_controlled_win_rate(wins: np.ndarray, length_diff: np.ndarray, ridge: float = LC_RIDGE) -> float:
    """σ(θ̂): the win probability the length GLM predicts at zero length difference (see the module doc)."""
    raw = win_rate(wins)
    if raw in (0.0, 1.0):
        return raw
    theta, _ = fit_length_glm(wins, length_diff, ridge)
    return float(_sigmoid(np.array(theta)))


def kl_estimates(logprob: np.ndarray, ref_logprob: np.ndarray) -> dict[str, float]:
    """Monte-Carlo estimates of KL(π ‖ π_ref) from samples y ~ π: ``kl_k1``, ``kl_k2``, ``kl_k3`` (nats per
    sequence; Schulman's k1, k2, k3 of the module doc)."""
    log_r = np.asarray(ref_logprob, dtype=float) - np.asarray(logprob, dtype=float)
    if log_r.size == 0:
        raise ValueError("no samples")
    return {"kl_k1": float(np.mean(-log_r)), "kl_k2": float(np.mean(0.5 * log_r**2)),
            "kl_k3": float(np.mean(np.expm1(log_r) - log_r))}


def generation_summary(samples: pd.DataFrame, length: str = LENGTH) -> dict[str, float]:
    """``n_samples``, ``mean_length`` (of ``length``), ``eos_rate`` (share that stopped at EOS) and, when the
    table has them, ``mean_score`` and the KL estimates of ``logprob`` against ``ref_logprob``."""
    out = {"n_samples": int(len(samples)), "mean_length": float(samples[length].mean()),
           "eos_rate": float(samples["eos"].astype(float).mean())}
    if "score" in samples:
        out["mean_score"] = float(samples["score"].mean())
    if {"logprob", "ref_logprob"} <= set(samples.columns):
        out.update(kl_estimates(samples["logprob"].to_numpy(), samples["ref_logprob"].to_numpy()))
    return out


def compare_to_baseline(samples: pd.DataFrame, baseline: pd.DataFrame, how: str = "sample",
                        length: str = LENGTH) -> dict[str, float]:
    """``win_rate``, ``lc_win_rate``, ``tie_rate``, ``n_pairs`` and ``mean_length_diff`` of ``samples``
    against ``baseline`` (``pair_outcomes``), plus ``generation_summary`` of ``samples``."""
    pairs = pair_outcomes(samples, baseline, how, length)
    wins, diff = pairs["win"].to_numpy(), pairs["length_diff"].to_numpy()
    return {"n_pairs": int(len(pairs)), "win_rate": win_rate(wins),
            "lc_win_rate": length_controlled_win_rate(wins, diff), "tie_rate": float(np.mean(wins == 0.5)),
            "mean_length_diff": float(diff.mean()), **generation_summary(samples, length)}
