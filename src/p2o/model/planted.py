"""The demo's planted preference as a gold judge, without torch (``p2o.model.judge`` has the reward-model
judge and re-exports this one): a judging job with the planted rule starts in a second, not in the
seconds importing torch takes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from p2o.config.sections import PLANTED_JUDGE as PLANTED
from p2o.data.demo_text import planted_score


class PlantedJudge:
    """The demo's planted rule as a judge: ``planted_score(prompt, completion)``."""

    name = PLANTED

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        check_lengths(prompts, completions)
        return np.array([planted_score(p, c) for p, c in zip(prompts, completions)], dtype=np.float64)


def check_lengths(prompts: Sequence[str], completions: Sequence[str]) -> None:
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
