"""Schema violations in raw preference rows: ``DataFormatError`` and the field checks that raise it.

A raw row that does not match its dataset's schema (a missing required key, a value of the wrong
type, a string holding a lone surrogate, an SHP ``labels`` value other than 0 or 1, a line that is
not valid UTF-8 or not a JSON object) is an error, not a drop: the message names the file (or hub
split), the 0-based row index and the field, e.g.
``data/shp.jsonl, row 12 (0-based), field 'labels': expected 0 or 1, got 3``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple


class DataFormatError(ValueError):
    """A raw row does not match its schema. Attributes: ``path``, ``row`` (0-based or None), ``field``."""

    def __init__(self, path: str, row: int | None, field: str | None, problem: str):
        self.path = str(path)
        self.row = row
        self.field = field
        self.problem = problem
        where = self.path
        if row is not None:
            where += f", row {row} (0-based)"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # keep the exception picklable (multiprocessing, pytest-xdist)
        return (type(self), (self.path, self.row, self.field, self.problem))


class RowRef(NamedTuple):
    """Where a raw row came from: ``origin`` (file path or hub split) and its 0-based ``index``."""

    origin: str
    index: int

    def error(self, field: str | None, problem: str) -> DataFormatError:
        return DataFormatError(self.origin, self.index, field, problem)


def show(value: Any, limit: int = 60) -> str:
    """A short ``repr`` of a value with its type, for error messages (never raises)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int beyond the str-conversion limit, a deeply nested list
        text = f"<{type(value).__name__} too large to show>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({type(value).__name__})"


def _get(obj: dict, key: str, ref: RowRef, field: str) -> Any:
    if key not in obj:
        raise ref.error(field, f"required key is missing (keys present: {sorted(obj)[:20]})")
    return obj[key]


def get_str(obj: dict, key: str, ref: RowRef, field: str | None = None) -> str:
    """``obj[key]``, which must be a string of valid Unicode (a lone surrogate, e.g. from a JSON
    ``"\\ud800"`` escape, cannot be encoded as UTF-8 and is rejected)."""
    value = _get(obj, key, ref, field or key)
    if not isinstance(value, str):
        raise ref.error(field or key, f"expected a string, got {show(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ref.error(
            field or key,
            f"not valid Unicode: lone surrogate {value[e.start]!r} at character {e.start}",
        ) from None
    return value


def get_int(obj: dict, key: str, ref: RowRef, field: str | None = None) -> int:
    """``obj[key]``, which must be an integer (``bool`` and ``float`` are rejected)."""
    value = _get(obj, key, ref, field or key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ref.error(field or key, f"expected an integer, got {show(value)}")
    return value


def get_number(obj: dict, key: str, ref: RowRef, field: str | None = None) -> float:
    """``obj[key]``, which must be a finite int or float (``bool`` is rejected)."""
    value = _get(obj, key, ref, field or key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ref.error(field or key, f"expected a finite number, got {show(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise ref.error(field or key, f"expected a finite number, got {show(value)}")
    return number


def get_list(obj: dict, key: str, ref: RowRef, field: str | None = None) -> list:
    """``obj[key]``, which must be a list."""
    value = _get(obj, key, ref, field or key)
    if not isinstance(value, list):
        raise ref.error(field or key, f"expected a list, got {show(value)}")
    return value


def as_dict(value: Any, ref: RowRef, field: str) -> dict:
    """``value`` (an element of a list field), which must be a JSON object."""
    if not isinstance(value, dict):
        raise ref.error(field, f"expected an object, got {show(value)}")
    return value
