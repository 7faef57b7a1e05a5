"""Preference data: raw hub rows -> a table of pairs -> deterministic train/eval splits.

Formats (``DatasetConfig.format``) and their hub datasets:

* ``hh-rlhf``: Anthropic/hh-rlhf (``p2o.data.hh``)
* ``shp``: stanfordnlp/SHP (``p2o.data.shp``)
* ``ultrafeedback``: raw openbmb/UltraFeedback (``p2o.data.ultrafeedback``)
* ``ultrafeedback-binarized``: HuggingFaceH4/ultrafeedback_binarized (``p2o.data.ultrafeedback_binarized``)

Every format yields pairs ``{id, dataset, prompt, chosen, rejected}`` with the prompt in the
Anthropic dialogue format of the DPO reference implementation
(eric-mitchell/direct-preference-optimization, ``preference_datasets.py``); ``chosen`` and
``rejected`` hold the responses only. Public API:

* ``read_raw_rows(ds)``: ``(origin, row_index, row)`` from local files or the hub
* ``load_pairs(name, ds)``: ``(DataFrame, {"rows", "pairs", "dropped"})``
* ``cap_pairs_per_prompt(pairs, k)``: at most k pairs of each prompt (``max_pairs_per_prompt``)
* ``split_pairs(pairs, n_train, n_eval, salt)`` / ``split_hash(df)``: prompt-disjoint splits;
  ``hold_out_tail(pairs, n, salt)``: a trained gold judge's pool, disjoint from them
* ``prepare_dataset(name, ds, n_train, n_eval, salt, out_dir)`` / ``read_split(path)``
* ``write_demo_data(out_dir, n_prompts, seed)``: offline demo files in the raw hub schemas
* ``DataFormatError``: a raw row does not match its schema (names file, row and field)
"""

from __future__ import annotations

from p2o.data.demo import DELIBERATE_DROPS, write_demo_data
from p2o.data.errors import DataFormatError
from p2o.data.load import PARSERS, drop_reasons, load_pairs, parse_rows
from p2o.data.pairs import PAIR_COLUMNS, pair_id
from p2o.data.prepare import prepare_dataset, read_split
from p2o.data.sources import read_raw_rows
from p2o.data.splits import cap_pairs_per_prompt, hold_out_tail, split_hash, split_pairs

__all__ = [
    "DELIBERATE_DROPS",
    "PAIR_COLUMNS",
    "PARSERS",
    "DataFormatError",
    "cap_pairs_per_prompt",
    "drop_reasons",
    "load_pairs",
    "pair_id",
    "parse_rows",
    "prepare_dataset",
    "read_raw_rows",
    "read_split",
    "split_hash",
    "hold_out_tail",
    "split_pairs",
    "write_demo_data",
]
