"""Parser for Anthropic/hh-rlhf raw rows (Bai et al. 2022, "Training a Helpful and Harmless Assistant").

Raw row: ``{"chosen": str, "rejected": str}``, each a whole transcript of
``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` turns that differ only in the final Assistant turn.
As in the DPO reference implementation (eric-mitchell/direct-preference-optimization,
``extract_anthropic_prompt``), the prompt is the prefix up to and including the LAST
``"\\n\\nAssistant:"``, and the response is the rest (it keeps its leading space), so
``prompt + chosen`` is exactly the raw ``chosen`` transcript. Unlike the reference, which cuts the
rejected side at the chosen side's prompt length, the prompt is taken from each side and a row whose
two prompts differ is dropped.

Drop reasons, checked in this order: ``no_assistant_turn`` (a side has no ``"\\n\\nAssistant:"``),
``prompt_mismatch``, ``empty_response``, ``identical_responses``.
"""

from __future__ import annotations

from p2o.config import DatasetConfig
from p2o.data.errors import RowRef, get_str
from p2o.data.pairs import ASSISTANT, EMPTY_RESPONSE, IDENTICAL_RESPONSES, Parsed, response_drop

NO_ASSISTANT_TURN = "no_assistant_turn"
PROMPT_MISMATCH = "prompt_mismatch"
REASONS = (NO_ASSISTANT_TURN, PROMPT_MISMATCH, EMPTY_RESPONSE, IDENTICAL_RESPONSES)


def split_transcript(text: str) -> tuple[str, str] | None:
    """``(prompt, response)`` split after the last ``"\\n\\nAssistant:"``; None if there is none."""
    cut = text.rfind(ASSISTANT)
    if cut < 0:
        return None
    cut += len(ASSISTANT)
    return text[:cut], text[cut:]


def parse_hh(row: dict, ref: RowRef, ds: DatasetConfig) -> Parsed:
    """One hh-rlhf row -> ``(prompt, chosen response, rejected response)`` or a drop reason."""
    chosen_side = split_transcript(get_str(row, "chosen", ref))
    rejected_side = split_transcript(get_str(row, "rejected", ref))
    if chosen_side is None or rejected_side is None:
        return NO_ASSISTANT_TURN
    (prompt, chosen), (rejected_prompt, rejected) = chosen_side, rejected_side
    if prompt != rejected_prompt:
        return PROMPT_MISMATCH
    return response_drop(chosen, rejected) or (prompt, chosen, rejected)
