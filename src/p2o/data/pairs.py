"""The pair record shared by every format: columns, Anthropic dialogue rendering, ids, common drops.

A pair is ``{id, dataset, prompt, chosen, rejected}``; ``chosen`` and ``rejected`` are the response
texts only. Prompts use the Anthropic dialogue format of hh-rlhf, as in the DPO reference
implementation (eric-mitchell/direct-preference-optimization, ``preference_datasets.py``)::

    "\\n\\nHuman: <text>\\n\\nAssistant:"      responses: " " + <text>

A parser maps one raw row to ``(prompt, chosen, rejected)`` or to a drop reason (a ``str``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TypeAlias

from p2o.config import DatasetConfig
from p2o.data.errors import RowRef

PAIR_COLUMNS = ("id", "dataset", "prompt", "chosen", "rejected")
HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"

# drop reasons shared by every format
EMPTY_RESPONSE = "empty_response"
IDENTICAL_RESPONSES = "identical_responses"
DUPLICATE = "duplicate"

Triple: TypeAlias = tuple[str, str, str]  # prompt, chosen response, rejected response
Parsed: TypeAlias = Triple | str  # a triple, or the reason the row is dropped
Parser: TypeAlias = Callable[[dict, RowRef, DatasetConfig], Parsed]


def single_turn_prompt(text: str) -> str:
    """``"\\n\\nHuman: " + text + "\\n\\nAssistant:"``."""
    return f"{HUMAN} {text}{ASSISTANT}"


def response_text(text: str) -> str:
    """A response as the DPO reference renders SHP answers: ``" " + text``."""
    return " " + text


def response_drop(chosen: str, rejected: str) -> str | None:
    """``empty_response`` if a response is blank, ``identical_responses`` if both are equal, else None."""
    if not chosen.strip() or not rejected.strip():
        return EMPTY_RESPONSE
    if chosen == rejected:
        return IDENTICAL_RESPONSES
    return None


def pair_id(dataset: str, prompt: str, chosen: str, rejected: str) -> str:
    """``f"{dataset}-"`` + the first 12 hex digits of sha256(prompt \\0 chosen \\0 rejected).

    If a text itself holds a NUL, that join is ambiguous (``("a\\0b", "c", "d")`` and
    ``("a", "b\\0c", "d")`` would share an id, and the second pair would be dropped as a duplicate), so
    the JSON list ``[prompt, chosen, rejected]`` is hashed instead; it holds no raw NUL, so the two
    kinds of payload never meet.
    """
    if "\x00" in prompt or "\x00" in chosen or "\x00" in rejected:
        payload = json.dumps([prompt, chosen, rejected])
    else:
        payload = f"{prompt}\x00{chosen}\x00{rejected}"
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return f"{dataset}-{digest[:12]}"


def make_pair(dataset: str, prompt: str, chosen: str, rejected: str) -> dict[str, str]:
    """The pair record, keys in ``PAIR_COLUMNS`` order."""
    return {
        "id": pair_id(dataset, prompt, chosen, rejected),
        "dataset": dataset,
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
    }
