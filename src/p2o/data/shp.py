"""Parser for stanfordnlp/SHP raw rows (Ethayarajh et al. 2022, Stanford Human Preferences).

Raw row (hub schema): ``post_id`` str, ``domain`` str (e.g. ``"askculinary_train"``),
``upvote_ratio`` float, ``history`` str (the post), ``c_root_id_A`` / ``c_root_id_B`` str,
``created_at_utc_A`` / ``created_at_utc_B`` int, ``score_A`` / ``score_B`` int,
``human_ref_A`` / ``human_ref_B`` str (the two top-level comments), ``labels`` int (1: A is
preferred, 0: B is preferred), ``seconds_difference`` float, ``score_ratio`` float (preferred score /
dispreferred score, >= 1).

Only ``history``, ``human_ref_A``, ``human_ref_B``, ``labels`` and ``score_ratio`` are required and
type-checked; the other fields may be absent. As in the DPO reference implementation
(eric-mitchell/direct-preference-optimization, ``get_shp``): prompt =
``"\\n\\nHuman: " + history + "\\n\\nAssistant:"``, responses ``" " + human_ref_X``, and the optional
``min_score_ratio`` filter (the SHP authors and the reference use 2) keeps rows with
``score_ratio >= min_score_ratio``.

Drop reasons, checked in this order: ``score_ratio_below_min``, ``empty_response``,
``identical_responses``. ``labels`` outside {0, 1} raises ``DataFormatError``.
"""

from __future__ import annotations

from p2o.config import DatasetConfig
from p2o.data.errors import RowRef, get_int, get_number, get_str, show
from p2o.data.pairs import (
    EMPTY_RESPONSE,
    IDENTICAL_RESPONSES,
    Parsed,
    response_drop,
    response_text,
    single_turn_prompt,
)

SCORE_RATIO_BELOW_MIN = "score_ratio_below_min"
REASONS = (SCORE_RATIO_BELOW_MIN, EMPTY_RESPONSE, IDENTICAL_RESPONSES)


def parse_shp(row: dict, ref: RowRef, ds: DatasetConfig) -> Parsed:
    """One SHP row -> ``(prompt, chosen response, rejected response)`` or a drop reason."""
    history = get_str(row, "history", ref)
    ref_a = get_str(row, "human_ref_A", ref)
    ref_b = get_str(row, "human_ref_B", ref)
    labels = row.get("labels")
    if isinstance(labels, bool) or not isinstance(labels, int) or labels not in (0, 1):
        if "labels" not in row:
            get_int(row, "labels", ref)  # raises: missing
        raise ref.error("labels", f"expected 0 or 1, got {show(labels)}")
    score_ratio = get_number(row, "score_ratio", ref)
    if ds.min_score_ratio is not None and score_ratio < ds.min_score_ratio:
        return SCORE_RATIO_BELOW_MIN
    chosen, rejected = (ref_a, ref_b) if labels == 1 else (ref_b, ref_a)
    return response_drop(chosen, rejected) or (
        single_turn_prompt(history),
        response_text(chosen),
        response_text(rejected),
    )
