"""Parser for raw openbmb/UltraFeedback rows (Cui et al. 2023, "UltraFeedback").

Raw row (hub schema): ``source`` str, ``instruction`` str, ``models`` list of str,
``completions`` list of objects ``{model, principle, custom_system_prompt, response (str),
annotations (dict), critique (str), overall_score (float), fine-grained_score (float)}``,
``correct_answers`` and ``incorrect_answers`` lists.

Only ``instruction``, ``completions`` and each completion's ``response`` and ``overall_score`` are
required and type-checked. Prompt = ``"\\n\\nHuman: " + instruction + "\\n\\nAssistant:"`` (the
Anthropic dialogue format of the DPO reference implementation,
eric-mitchell/direct-preference-optimization); chosen = ``" " + response`` of the completion with the
highest ``overall_score``, rejected = that of the lowest. When several completions share the highest
(or lowest) score, the FIRST of them in list order is taken.

Drop reasons, checked in this order: ``fewer_than_two_completions``, ``tie`` (highest score ==
lowest score), ``empty_response``, ``identical_responses``.
"""

from __future__ import annotations

from p2o.config import DatasetConfig
from p2o.data.errors import RowRef, as_dict, get_list, get_number, get_str
from p2o.data.pairs import (
    EMPTY_RESPONSE,
    IDENTICAL_RESPONSES,
    Parsed,
    response_drop,
    response_text,
    single_turn_prompt,
)

FEWER_THAN_TWO_COMPLETIONS = "fewer_than_two_completions"
TIE = "tie"
REASONS = (FEWER_THAN_TWO_COMPLETIONS, TIE, EMPTY_RESPONSE, IDENTICAL_RESPONSES)


def parse_ultrafeedback(row: dict, ref: RowRef, ds: DatasetConfig) -> Parsed:
    """One openbmb/UltraFeedback row -> ``(prompt, chosen response, rejected response)`` or a drop reason."""
    instruction = get_str(row, "instruction", ref)
    completions = get_list(row, "completions", ref)
    scored: list[tuple[float, str]] = []
    for i, item in enumerate(completions):
        item = as_dict(item, ref, f"completions[{i}]")
        response = get_str(item, "response", ref, f"completions[{i}].response")
        score = get_number(item, "overall_score", ref, f"completions[{i}].overall_score")
        scored.append((score, response))
    if len(scored) < 2:
        return FEWER_THAN_TWO_COMPLETIONS
    scores = [s for s, _ in scored]
    best, worst = max(scores), min(scores)
    if best == worst:
        return TIE
    chosen = scored[scores.index(best)][1]  # list.index: the first completion with that score
    rejected = scored[scores.index(worst)][1]
    return response_drop(chosen, rejected) or (
        single_turn_prompt(instruction),
        response_text(chosen),
        response_text(rejected),
    )
