"""Reward model versus DPO over training-set sizes (after Shi et al. 2025, "A Dichotomy of RLHF
and DPO"): the training subsets, and the tidy table and summary of the results.

For each dataset and size N both models train on the same N pairs: the first N pairs of a
training pool in the order of ``p2o.data.splits`` (sorted by the salted prompt hash, so the order
is a fixed shuffle that no seed changes). Subsets are nested: the pairs of a smaller N are among
those of every larger one. The pool is the main experiment's training split when that holds
max(N) pairs, else a larger split prepared with the same salt and held-out size; either way the
held-out split is the main one, and the main training split is a prefix of the pool.

Reference log-probs of a subset are the pool's, cut to the same prefix (``ReferenceLogps.prefix``;
none is recomputed).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from p2o.report.aggregate import summarise
from p2o.io import read_json

COLUMNS = ["dataset", "size", "seed", "model", "accuracy", "margin", "n_eval"]


def collect(eval_files: Iterable[str | Path]) -> pd.DataFrame:
    """Tidy (dataset, size, seed, model, accuracy, margin, n_eval) from the evaluation JSONs.

    ``margin`` is in each model's own units (reward-model reward, or β-scaled log-ratio), so it
    compares across sizes and seeds of one model, not between models.
    """
    rows = []
    for path in eval_files:
        r = read_json(path)
        rows.append({"dataset": r["dataset"], "size": int(r["size"]), "seed": int(r["seed"]),
                     "model": r["model"], "accuracy": float(r["eval_rewards/accuracies"]),
                     "margin": float(r["eval_rewards/margins"]), "n_eval": int(r["n_pairs"])})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["dataset", "model", "size", "seed"], kind="stable", ignore_index=True)


def summary(tidy: pd.DataFrame) -> pd.DataFrame:
    """Accuracy mean, 95 % CI half-width (Student's t over seeds) and seed count per
    (dataset, size, model), sizes ascending."""
    frame = tidy.rename(columns={"accuracy": "value"})
    out = summarise(frame, by=["dataset", "model", "size"])
    out["size"] = out["size"].astype(int)
    out["n_seeds"] = out["n_seeds"].astype(int)
    return out.sort_values(["dataset", "model", "size"], kind="stable", ignore_index=True)
