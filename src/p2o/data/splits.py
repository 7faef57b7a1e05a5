"""Deterministic, prompt-disjoint train/eval splits of a pair table, and a content hash of a split.

Membership is decided by a salted hash of the prompt, never by row position or a random generator:
``u(prompt) = sha256(salt + "\\0" + dataset + "\\0" + prompt)``. Prompts are sorted by ``u`` and
walked in that order; whole prompts go to eval until eval holds at least ``n_eval`` pairs, every
later prompt goes to train. Eval is the first ``n_eval`` eval-prompt pairs in ``(u, id)`` order.
Train is drawn across prompts, round-robin: the first pair (smallest id) of every train prompt in
``u`` order, then the second pair of every prompt that has one, and so on; train is the first
``n_train`` pairs of that sequence. Where a prompt has many pairs (SHP: many comment pairs per post)
the training pairs thus come from as many prompts as possible; where every prompt has one pair
(hh-rlhf, UltraFeedback) the sequence is plain ``u`` order. Pairs of the last eval prompt beyond
``n_eval`` are left out of both splits, so no prompt is ever in both.

Properties: the same pairs and salt give the same splits whatever the row order; eval for a smaller
``n_eval`` is a prefix (so a subset) of eval for a larger one; with ``n_eval`` fixed, train for a
smaller ``n_train`` is a prefix of train for a larger one (the reward-model experiment's nested
subsets rely on it).

``hold_out_tail`` runs first when a gold judge is trained on the data (``judge.name: trained``): it
takes whole prompts from the *end* of the same ``u`` order, the first ``n`` pairs in (reverse ``u``,
id) order, as that judge's pool, and the splits are cut from the rest. Eval and train come from the
start of the order, so they are the same as without a pool unless the data run short; the pool is
disjoint from them, and from every larger training pool cut the same way (the reward-model
experiment's).

``cap_pairs_per_prompt`` runs before the split when a dataset sets ``max_pairs_per_prompt``: it
keeps the pairs of each prompt with the smallest ids, a choice that depends on neither the row order
nor the salt. ``mismatched_partners`` pairs a prompt with the response of the next pair (cyclically)
whose prompt differs, for KTO's mismatched completion (``p2o.model.tokenize``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Sequence

import pandas as pd

from p2o.data.pairs import PAIR_COLUMNS


def prompt_hash(salt: str, dataset: str, prompt: str) -> str:
    """``u(prompt)``: hex sha256 of ``salt \\0 dataset \\0 prompt``."""
    return hashlib.sha256(f"{salt}\x00{dataset}\x00{prompt}".encode()).hexdigest()


def hold_out_tail(pairs: pd.DataFrame, n: int, salt: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(pool, rest)``: the first ``n`` pairs in (reverse ``u``, id) order, taking whole prompts (pairs
    of the last prompt beyond ``n`` are in neither), and the pairs of every other prompt, in their
    original order. ``n`` 0 gives an empty pool. Raises ``ValueError`` naming ``judge.n_pairs`` when
    there are fewer than ``n`` pairs."""
    frame = pairs.reset_index(drop=True)
    if n == 0:
        return frame.iloc[:0], frame
    u = [prompt_hash(salt, d, p) for d, p in zip(frame["dataset"], frame["prompt"], strict=True)]
    ids = list(frame["id"])
    order = sorted(range(len(frame)), key=lambda i: (u[i], ids[i]))
    tail = sorted(set(u), reverse=True)
    taken, pool = set(), []
    by_prompt: dict[str, list[int]] = {}
    for i in order:
        by_prompt.setdefault(u[i], []).append(i)
    for key in tail:
        if len(pool) >= n:
            break
        taken.add(key)
        pool.extend(by_prompt[key])
    if len(pool) < n:
        name = ", ".join(sorted(set(frame["dataset"]))) or "(empty)"
        raise ValueError(f"dataset '{name}': config key 'judge.n_pairs' = {n} asks for a larger gold-judge pool "
                         f"than the data hold ({len(frame)} pairs over {len(tail)} prompts)")
    rest = [i for i in range(len(frame)) if u[i] not in taken]
    cols = list(PAIR_COLUMNS)
    return frame.loc[pool[:n], cols].reset_index(drop=True), frame.loc[rest].reset_index(drop=True)


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
    train_prompts: list[list[int]] = []  # rows of each train prompt in id order, prompts in u order
    to_eval = True
    previous = None
    for i in order:
        if u[i] != previous:  # a new prompt: rows of one prompt are contiguous in (u, id) order
            previous = u[i]
            to_eval = len(eval_rows) < n_eval
            if not to_eval:
                train_prompts.append([])
        if to_eval:
            eval_rows.append(i)
        else:
            train_prompts[-1].append(i)
    train_rows = [rows[k] for k in range(max(map(len, train_prompts), default=0))
                  for rows in train_prompts if k < len(rows)]  # round-robin across prompts

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


def cap_pairs_per_prompt(pairs: pd.DataFrame, k: int | None) -> tuple[pd.DataFrame, int]:
    """``(kept, n_dropped)``: at most ``k`` pairs of each (dataset, prompt), those with the smallest
    ids, in their original row order; ``k`` None keeps every pair."""
    frame = pairs.reset_index(drop=True)
    if k is None:
        return frame, 0
    rank = frame.groupby(["dataset", "prompt"], sort=False)["id"].rank(method="first")
    kept = frame[rank <= k].reset_index(drop=True)
    return kept, len(frame) - len(kept)


def mismatched_partners(prompts: Sequence[Hashable]) -> list[int]:
    """For every ``i``, the first index after ``i`` (cyclically) whose prompt differs from ``prompts[i]``,
    in O(n); -1 everywhere when every prompt is the same (or there are none)."""
    n = len(prompts)
    if n == 0 or all(p == prompts[0] for p in prompts):
        return [-1] * n
    nxt = [0] * (2 * n)  # over two laps: nxt[t] is the first t' > t whose prompt differs from t's
    nxt[-1] = 2 * n  # never read: lap two's last row is no one's partner
    for t in range(2 * n - 2, -1, -1):
        nxt[t] = t + 1 if prompts[(t + 1) % n] != prompts[t % n] else nxt[t + 1]
    return [nxt[i] % n for i in range(n)]


def prompt_key(prompt: str) -> str:
    """A short hash of a prompt's text: the cluster of a pair in ``p2o.report.significance``."""
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


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
