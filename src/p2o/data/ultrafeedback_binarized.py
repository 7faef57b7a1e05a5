"""Parser for HuggingFaceH4/ultrafeedback_binarized rows (Tunstall et al. 2023, "Zephyr").

Raw row: ``chosen`` and ``rejected``, each a conversation: a list of ``{"role": "user" |
"assistant" | "system", "content": str}`` ending with the assistant reply being compared. Other
columns (``prompt``, ``prompt_id``, ``messages``, ``score_chosen``, ``score_rejected``) may be
present or absent and are ignored.

The conversation before the last assistant turn is rendered in the Anthropic dialogue format of the
DPO reference implementation (eric-mitchell/direct-preference-optimization): user turns as
``"\\n\\nHuman: {content}"``, assistant turns as ``"\\n\\nAssistant: {content}"``, then a final
``"\\n\\nAssistant:"``. A system message is plain text (the first turn without a separator, a later
one after ``"\\n\\n"``). Response = ``" " + last assistant content``.

Drop reasons, checked in this order: ``last_turn_not_assistant`` (either side; also an empty
conversation), ``prompt_mismatch`` (the two conversations before their last turn differ),
``empty_response``, ``identical_responses``.
"""

from __future__ import annotations

from p2o.config import DatasetConfig
from p2o.data.errors import RowRef, as_dict, get_list, get_str, show
from p2o.data.pairs import (
    ASSISTANT,
    EMPTY_RESPONSE,
    HUMAN,
    IDENTICAL_RESPONSES,
    Parsed,
    response_drop,
    response_text,
)

LAST_TURN_NOT_ASSISTANT = "last_turn_not_assistant"
PROMPT_MISMATCH = "prompt_mismatch"
REASONS = (LAST_TURN_NOT_ASSISTANT, PROMPT_MISMATCH, EMPTY_RESPONSE, IDENTICAL_RESPONSES)
ROLES = ("user", "assistant", "system")


def read_messages(row: dict, key: str, ref: RowRef) -> list[tuple[str, str]]:
    """``row[key]`` as a list of ``(role, content)``, type-checked."""
    messages = []
    for i, message in enumerate(get_list(row, key, ref)):
        message = as_dict(message, ref, f"{key}[{i}]")
        role = get_str(message, "role", ref, f"{key}[{i}].role")
        if role not in ROLES:
            raise ref.error(f"{key}[{i}].role", f"expected one of {ROLES}, got {show(role)}")
        messages.append((role, get_str(message, "content", ref, f"{key}[{i}].content")))
    return messages


def render_prompt(turns: list[tuple[str, str]]) -> str:
    """Turns before the compared reply -> ``"...\\n\\nHuman: u\\n\\nAssistant: a ... \\n\\nAssistant:"``."""
    parts = []
    for i, (role, content) in enumerate(turns):
        if role == "user":
            parts.append(f"{HUMAN} {content}")
        elif role == "assistant":
            parts.append(f"{ASSISTANT} {content}")
        else:  # system: plain text
            parts.append(content if i == 0 else f"\n\n{content}")
    return "".join(parts) + ASSISTANT


def _ends_with_assistant(turns: list[tuple[str, str]]) -> bool:
    return bool(turns) and turns[-1][0] == "assistant"


def parse_ultrafeedback_binarized(row: dict, ref: RowRef, ds: DatasetConfig) -> Parsed:
    """One ultrafeedback_binarized row -> ``(prompt, chosen, rejected)`` or a drop reason."""
    chosen_turns = read_messages(row, "chosen", ref)
    rejected_turns = read_messages(row, "rejected", ref)
    if not _ends_with_assistant(chosen_turns) or not _ends_with_assistant(rejected_turns):
        return LAST_TURN_NOT_ASSISTANT
    if chosen_turns[:-1] != rejected_turns[:-1]:
        return PROMPT_MISMATCH
    chosen, rejected = chosen_turns[-1][1], rejected_turns[-1][1]
    return response_drop(chosen, rejected) or (
        render_prompt(chosen_turns[:-1]),
        response_text(chosen),
        response_text(rejected),
    )
