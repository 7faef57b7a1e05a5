"""Parser for stanfordnlp/SHP raw rows (Ethayarajh et al. 2022, Stanford Human Preferences).

Raw row (hub schema): ``post_id`` str, ``domain`` str (e.g. ``"askculinary_train"``),
``upvote_ratio`` float, ``history`` str (the post), ``c_root_id_A`` / ``c_root_id_B`` str,
``created_at_utc_A`` / ``created_at_utc_B`` int, ``score_A`` / ``score_B`` int,
``human_ref_A`` / ``human_ref_B`` str (the two top-level comments), ``labels`` int (1: A is
preferred, 0: B is preferred), ``seconds_difference`` float, ``score_ratio`` float (preferred score /
dispreferred score, >= 1).

Only ``history``, ``human_ref_A``, ``human_ref_B``, ``labels`` and ``score_ratio`` are required and
type-checked; the other fields may be absent (or null). ``score_A`` and ``score_B``, when present and
not null, must be integers and must agree with ``labels``: in SHP the preferred comment is the one
with the higher score, so ``labels == 1`` requires ``score_A > score_B`` and ``labels == 0``
requires ``score_B > score_A``; a row that contradicts itself raises ``DataFormatError`` on
``labels`` rather than becoming a pair of unknown direction. As in the DPO reference implementation
(eric-mitchell/direct-preference-optimization, ``get_shp``): prompt =
``"\\n\\nHuman: " + history + "\\n\\nAssistant:"``, responses ``" " + human_ref_X``, and the optional
``min_score_ratio`` filter (the SHP authors and the reference use 2) keeps rows with
``score_ratio >= min_score_ratio``.

Drop reasons, checked in this order: ``score_ratio_below_min``, ``empty_response``,
``identical_responses``. ``labels`` outside {0, 1} (``True``, ``1.0`` and ``"1"`` included) raises
``DataFormatError``.
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
    scores = _optional_int(row, "score_A", ref), _optional_int(row, "score_B", ref)
    if None not in scores:
        preferred, other = ("A", "B") if labels == 1 else ("B", "A")
        by_side = dict(zip("AB", scores, strict=True))
        if by_side[preferred] <= by_side[other]:
            raise ref.error(
                "labels",
                f"labels={labels} says human_ref_{preferred} is preferred, but score_{preferred}="
                f"{by_side[preferred]} is not above score_{other}={by_side[other]}",
            )
    if ds.min_score_ratio is not None and score_ratio < ds.min_score_ratio:
        return SCORE_RATIO_BELOW_MIN
    chosen, rejected = (ref_a, ref_b) if labels == 1 else (ref_b, ref_a)
    return response_drop(chosen, rejected) or (
        single_turn_prompt(history),
        response_text(chosen),
        response_text(rejected),
    )


def _optional_int(row: dict, key: str, ref: RowRef) -> int | None:
    """``row[key]`` if present and not null (then it must be an integer), else None."""
    if row.get(key) is None:
        return None
    return get_int(row, key, ref)
