"""Deterministic, prompt-disjoint train/eval splits of a pair table, and a content hash of a split.

Membership is decided by a salted hash of the prompt, never by row position or a random generator:
``u(prompt) = sha256(salt + "\\0" + dataset + "\\0" + prompt)``. Prompts are sorted by ``u`` and
walked in that order; whole prompts go to eval until eval holds at least ``n_eval`` pairs, every
later prompt goes to train. Eval is then the first ``n_eval`` eval-prompt pairs and train the first
``n_train`` train-prompt pairs, both in ``(u, id)`` order. Pairs of the last eval prompt beyond
``n_eval`` are left out of both splits, so no prompt is ever in both.

Properties: the same pairs and salt give the same splits whatever the row order; eval for a smaller
``n_eval`` is a prefix (so a subset) of eval for a larger one; with ``n_eval`` fixed, train for a
smaller ``n_train`` is a prefix of train for a larger one.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from p2o.data.pairs import PAIR_COLUMNS


def prompt_hash(salt: str, dataset: str, prompt: str) -> str:
    """``u(prompt)``: hex sha256 of ``salt \\0 dataset \\0 prompt``."""
    return hashlib.sha256(f"{salt}\x00{dataset}\x00{prompt}".encode()).hexdigest()


def split_pairs(
    pairs: pd.DataFrame, n_train: int, n_eval: int, salt: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, eval)`` with exactly ``n_train`` and ``n_eval`` pairs (see the module docstring).

    Raises ``ValueError`` naming the dataset, the config key (``data.n_eval`` / ``data.n_train``)
    and the counts available when there are not enough pairs.
    """
    frame = pairs.reset_index(drop=True)
    u = [prompt_hash(salt, d, p) for d, p in zip(frame["dataset"], frame["prompt"], strict=True)]
    ids = list(frame["id"])
    order = sorted(range(len(frame)), key=lambda i: (u[i], ids[i]))
    eval_rows: list[int] = []
    train_rows: list[int] = []
    to_eval = True
    previous = None
    for i in order:
        if u[i] != previous:  # a new prompt: rows of one prompt are contiguous in (u, id) order
            previous = u[i]
            to_eval = len(eval_rows) < n_eval
        (eval_rows if to_eval else train_rows).append(i)

    name = ", ".join(sorted(set(frame["dataset"]))) or "(empty)"
    n_prompts = len(set(u))
    if len(eval_rows) < n_eval:
        raise ValueError(
            f"dataset '{name}': config key 'data.n_eval' = {n_eval} asks for more eval pairs than exist "
            f"({len(frame)} pairs over {n_prompts} prompts)"
        )
    if len(train_rows) < n_train:
        raise ValueError(
            f"dataset '{name}': config key 'data.n_train' = {n_train} asks for more training pairs than "
            f"remain: {len(train_rows)} available after holding out prompts for data.n_eval = {n_eval} "
            f"({len(frame)} pairs over {n_prompts} prompts)"
        )
    cols = list(PAIR_COLUMNS)
    train = frame.loc[train_rows[:n_train], cols].reset_index(drop=True)
    evals = frame.loc[eval_rows[:n_eval], cols].reset_index(drop=True)
    return train, evals


def canonical_lines(df: pd.DataFrame) -> list[str]:
    """One canonical JSON line per row: keys ``PAIR_COLUMNS`` sorted, ``ensure_ascii=False``."""
    records = df[list(PAIR_COLUMNS)].to_dict("records")
    return [json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records]


def split_hash(df: pd.DataFrame) -> str:
    """Hex sha256 of the canonical JSONL bytes of ``df`` (rows in order; see ``canonical_lines``)."""
    h = hashlib.sha256()
    for line in canonical_lines(df):
        h.update(line.encode("utf-8"))
    return h.hexdigest()
