"""Raw rows -> a table of preference pairs, with a report of every dropped row.

``load_pairs(name, ds)`` reads ``ds.source`` (``p2o.data.sources``), parses each row with the
parser of ``ds.format`` and returns the pairs in source order plus
``{"rows": n_raw, "pairs": n_kept, "dropped": {reason: count}}`` where
``n_raw == n_kept + sum(dropped.values())``: nothing is lost silently. ``dropped`` lists every
reason the format can produce (zero counts included) and ``duplicate`` (a pair whose id, a hash of
prompt, chosen and rejected, was already seen).

Formats: ``hh-rlhf`` (Anthropic/hh-rlhf), ``shp`` (stanfordnlp/SHP), ``ultrafeedback``
(openbmb/UltraFeedback), ``ultrafeedback-binarized`` (HuggingFaceH4/ultrafeedback_binarized).
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from p2o.config import DatasetConfig
from p2o.data import hh, shp, ultrafeedback, ultrafeedback_binarized
from p2o.data.errors import RowRef
from p2o.data.pairs import DUPLICATE, PAIR_COLUMNS, Parser, make_pair
from p2o.data.sources import read_raw_rows

PARSERS: dict[str, tuple[Parser, tuple[str, ...]]] = {
    "hh-rlhf": (hh.parse_hh, hh.REASONS),
    "shp": (shp.parse_shp, shp.REASONS),
    "ultrafeedback": (ultrafeedback.parse_ultrafeedback, ultrafeedback.REASONS),
    "ultrafeedback-binarized": (
        ultrafeedback_binarized.parse_ultrafeedback_binarized,
        ultrafeedback_binarized.REASONS,
    ),
}


def drop_reasons(fmt: str) -> tuple[str, ...]:
    """Every drop reason ``load_pairs`` can report for a format, in check order."""
    return _parser(fmt, "format")[1] + (DUPLICATE,)


def parse_rows(name: str, ds: DatasetConfig) -> Iterator[tuple[str, int, dict | str]]:
    """Yield ``(origin, row_index, pair or drop reason)`` for every raw row of dataset ``name``."""
    parse, _ = _parser(ds.format, f"data.datasets.{name}.format")
    try:
        rows = read_raw_rows(ds)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"config key 'data.datasets.{name}.source': {e}") from e
    return _parse(name, ds, parse, rows)


def _parse(name: str, ds: DatasetConfig, parse: Parser, rows) -> Iterator[tuple[str, int, dict | str]]:
    seen: set[str] = set()
    for origin, index, row in rows:
        parsed = parse(row, RowRef(origin, index), ds)
        if isinstance(parsed, str):
            yield origin, index, parsed
            continue
        pair = make_pair(name, *parsed)
        if pair["id"] in seen:
            yield origin, index, DUPLICATE
            continue
        seen.add(pair["id"])
        yield origin, index, pair


def load_pairs(name: str, ds: DatasetConfig) -> tuple[pd.DataFrame, dict]:
    """The pairs of dataset ``name`` (columns ``PAIR_COLUMNS``, source order) and the drop report."""
    _, reasons = _parser(ds.format, f"data.datasets.{name}.format")
    dropped = dict.fromkeys(reasons + (DUPLICATE,), 0)
    pairs: list[dict] = []
    n_raw = 0
    for _, _, parsed in parse_rows(name, ds):
        n_raw += 1
        if isinstance(parsed, str):
            dropped[parsed] = dropped.get(parsed, 0) + 1
        else:
            pairs.append(parsed)
    frame = pd.DataFrame(pairs, columns=list(PAIR_COLUMNS))
    assert n_raw == len(frame) + sum(dropped.values())
    return frame, {"rows": n_raw, "pairs": len(frame), "dropped": dropped}


def _parser(fmt: str, key: str) -> tuple[Parser, tuple[str, ...]]:
    if fmt not in PARSERS:
        raise ValueError(f"config key '{key}': unknown format {fmt!r}; known: {sorted(PARSERS)}")
    return PARSERS[fmt]
