"""Prepare one dataset for training: load its pairs, split them, write the splits and a manifest.

``prepare_dataset`` writes, atomically (``p2o.io``), into ``out_dir``:

* ``train.jsonl`` and ``eval.jsonl`` (and ``gold.jsonl``, the trained gold judge's pool, when ``n_gold``
  > 0: ``p2o.data.splits.hold_out_tail``): one pair a line, in split order. Each line is the canonical
  form hashed by ``split_hash`` (keys sorted, UTF-8), so ``sha256sum train.jsonl`` equals the
  manifest's ``splits.train.sha256``.
* ``manifest.json`` (written last): ``{dataset, format, source, split, data_dir, revision,
  min_score_ratio, max_pairs_per_prompt, split_salt, rows, pairs, dropped, splits: {train: {n, sha256},
  eval: {n, sha256}}, resolved}``. ``resolved`` is the source record of the original data
  (``p2o.provenance``): a hub commit or a local sha256. The workflow passes the one ``download``
  recorded beside the raw file (whose path is then ``source``); otherwise ``ds`` is resolved here
  (``p2o.data.sources.resolve_source``) and a hub source is read at the resolved commit. ``dropped`` is ``load_pairs``'s report plus ``over_max_pairs_per_prompt``, the
  pairs ``cap_pairs_per_prompt`` left out, so that ``rows == pairs + sum(dropped.values())``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from p2o.config import DatasetConfig
from p2o.data.errors import DataFormatError
from p2o.data.load import load_pairs
from p2o.data.pairs import PAIR_COLUMNS
from p2o.data.sources import resolve_source
from p2o.data.splits import cap_pairs_per_prompt, hold_out_tail, split_hash, split_pairs
from p2o.io import read_jsonl, write_json, write_jsonl

OVER_MAX_PAIRS_PER_PROMPT = "over_max_pairs_per_prompt"  # the drop reason of cap_pairs_per_prompt


def prepare_dataset(
    name: str,
    ds: DatasetConfig,
    n_train: int,
    n_eval: int,
    salt: str,
    out_dir: str | os.PathLike,
    resolved: dict | None = None,
    n_gold: int = 0,
) -> dict:
    """Load, split and write dataset ``name``; return the manifest (see the module docstring)."""
    out_dir = Path(out_dir)
    read = ds
    if resolved is None:
        resolved = resolve_source(ds, f"data.datasets.{name}")
        if resolved["kind"] == "hub":
            read = replace(ds, revision=resolved["commit"])
    pairs, report = load_pairs(name, read)
    pairs, n_over = cap_pairs_per_prompt(pairs, ds.max_pairs_per_prompt)
    report = {**report, "pairs": len(pairs), "dropped": {**report["dropped"], OVER_MAX_PAIRS_PER_PROMPT: n_over}}
    gold, pairs = hold_out_tail(pairs, n_gold, salt)
    try:
        train, evals = split_pairs(pairs, n_train, n_eval, salt)
    except ValueError as e:
        raise ValueError(f"{e}, after the gold judge's pool of judge.n_pairs = {n_gold}" if n_gold else str(e)) from None
    splits = {}
    parts = (("train", train), ("eval", evals)) + ((("gold", gold),) if n_gold else ())
    for split_name, frame in parts:
        write_jsonl(out_dir / f"{split_name}.jsonl", _canonical_records(frame))
        splits[split_name] = {"n": len(frame), "sha256": split_hash(frame)}
    manifest = {
        "dataset": name,
        "format": ds.format,
        "source": ds.source,
        "split": ds.split,
        "data_dir": ds.data_dir,
        "revision": ds.revision,
        "min_score_ratio": ds.min_score_ratio,
        "max_pairs_per_prompt": ds.max_pairs_per_prompt,
        "split_salt": salt,
        "rows": report["rows"],
        "pairs": report["pairs"],
        "dropped": report["dropped"],
        "splits": splits,
        "resolved": resolved,
    }
    write_json(out_dir / "manifest.json", manifest)
    drops = ", ".join(f"{k} {v}" for k, v in report["dropped"].items() if v) or "none"
    print(
        f"[p2o.data] {name}: {report['rows']} rows -> {report['pairs']} pairs (dropped: {drops}); "
        f"train {len(train)}, eval {len(evals)}{f', gold judge pool {len(gold)}' if n_gold else ''} -> {out_dir}",
        file=sys.stderr,
    )
    return manifest


def read_split(path: str | os.PathLike) -> pd.DataFrame:
    """A split written by ``prepare_dataset`` as a DataFrame with columns ``PAIR_COLUMNS``."""
    rows = read_jsonl(path)
    for index, row in enumerate(rows):
        missing = [c for c in PAIR_COLUMNS if c not in row]
        if missing:
            raise DataFormatError(str(path), index, missing[0], "required key is missing")
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))


def _canonical_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with keys in sorted order, so ``write_jsonl`` emits the bytes ``split_hash`` hashes."""
    return [dict(sorted(r.items())) for r in frame[list(PAIR_COLUMNS)].to_dict("records")]
