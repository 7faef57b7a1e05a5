"""What generated text is worth: gold judges of (prompt, completion) texts, and the log-probs of given
completions under a model.

A judge maps prompts and completions (texts, the prompts as the prepared splits store them) to one
score per completion, higher is better; ``p2o.report.winrate`` turns the scores of a policy's samples
and a baseline's on the same prompts into win rates. Two judges:

- ``PlantedJudge``: the demo's planted preference, ``p2o.data.demo_text.planted_score`` (the number of
  concrete details, numbers in digits, that the completion adds to the prompt). It is the rule the demo
  data were labelled by (before their 25 % label noise), so on the demo it is the gold judge.
- ``RewardModelJudge``: a sequence-classification reward model by hub id or local folder, with its own
  tokenizer (``AutoModelForSequenceClassification``, one output: the reward). Its input is built as the
  model expects it (``input_format``): ``"chat"``, the dialogue's turns plus the completion as the last
  assistant turn through the tokenizer's chat template (e.g. Skywork-Reward); ``"pair"``, the prompt
  and the completion as a text pair (e.g. OpenAssistant's DeBERTa reward models; a one-turn prompt
  gives its question alone); ``"concat"``, the prompt text followed by the completion; ``"auto"``,
  ``"chat"`` when the tokenizer has a chat template, else ``"pair"``. Over ``max_length`` tokens the
  start is cut (for a pair, of the prompt only), so the completion is kept. Rows are right-padded, so
  position ids are those of the row alone, and the model pools its own last real token.

``completion_logps`` gives Σ_t log π(y_t | x, y_<t) of given completion token ids under any causal LM
(``p2o.model.logps.sequence_logps``, fp32 logits): with ``sample_logps`` under the policy and the
reference it yields log π(y|x) − log π_ref(y|x) of the policy's samples, for the Monte-Carlo KL of
``p2o.report.winrate``. Scoring token ids (not decoded text) keeps exactly the tokens sampled: decoding
and re-encoding BPE text need not give them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from p2o.model.generate import EncodedPrompts, Sample, dialogue_messages
from p2o.model.logps import precision, sequence_logps
from p2o.model.planted import PLANTED, PlantedJudge
from p2o.model.planted import check_lengths as _check_lengths
from p2o.model.tokenize import pad_sequences

INPUT_FORMATS = ("auto", "chat", "pair", "concat")
__all__ = ["INPUT_FORMATS", "PLANTED", "Judge", "PlantedJudge", "RewardModelJudge", "completion_logps", "make_judge",
           "sample_logps"]


class Judge(Protocol):
    name: str

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        """One score per (prompt, completion), float64 (N,); higher is better."""


class RewardModelJudge:
    """A sequence-classification reward model (``num_labels`` 1, or the output ``label``) as a judge."""

    def __init__(self, name_or_path: str | Path, revision: str | None = None, device: str = "cpu",
                 batch_size: int = 16, max_length: int = 1024, input_format: str = "auto",
                 autocast: str = "none", label: int = 0):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format {input_format!r}: expected one of {INPUT_FORMATS}")
        self.name = str(name_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
        self.model = AutoModelForSequenceClassification.from_pretrained(name_or_path, revision=revision,
                                                                        dtype=torch.float32).to(device).eval()
        if self.tokenizer.pad_token_id is None:  # padding is masked out and right of the pooled token
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "left"
        if input_format == "auto":
            input_format = "chat" if getattr(self.tokenizer, "chat_template", None) else "pair"
        if not 0 <= label < self.model.config.num_labels:
            raise ValueError(f"label {label}: the model has {self.model.config.num_labels} outputs")
        self.input_format, self.label = input_format, label
        self.device, self.batch_size, self.max_length, self.autocast = device, batch_size, max_length, autocast

    def encode(self, prompt: str, completion: str) -> dict[str, list[int]]:
        """The tokenised input of one (prompt, completion): what the model reads."""
        tok, limit = self.tokenizer, dict(truncation=True, max_length=self.max_length)
        if self.input_format == "chat":
            messages = dialogue_messages(prompt) + [{"role": "assistant", "content": completion.strip()}]
            text = tok.apply_chat_template(messages, tokenize=False)
            return dict(tok(text, add_special_tokens=False, **limit))
        if self.input_format == "pair":
            messages = dialogue_messages(prompt)
            question = messages[0]["content"] if len(messages) == 1 else prompt.strip()
            return dict(tok(question, completion.strip(), **{**limit, "truncation": "only_first"}))
        return dict(tok(prompt + completion, **limit))

    @torch.inference_mode()
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        _check_lengths(prompts, completions)
        rows = [self.encode(p, c) for p, c in zip(prompts, completions)]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))  # little padding
        scores = np.zeros(len(rows), dtype=np.float64)
        for start in range(0, len(order), self.batch_size):
            index = order[start: start + self.batch_size]
            batch = self.tokenizer.pad([rows[i] for i in index], return_tensors="pt").to(self.device)
            with precision(self.autocast, self.device):
                logits = self.model(**batch).logits  # (b, num_labels)
            scores[index] = logits[:, self.label].double().cpu().numpy()
        return scores


def make_judge(name: str, **kwargs) -> Judge:
    """``"planted"`` → ``PlantedJudge``; anything else is a reward model's hub id or folder, with
    ``kwargs`` for ``RewardModelJudge``."""
    return PlantedJudge() if name == PLANTED else RewardModelJudge(name, **kwargs)


# --------------------------------------------------------------------------- log-probs of given completions


@torch.inference_mode()
def completion_logps(model, prompt_ids: Sequence[list[int]], completion_ids: Sequence[list[int]], pad_id: int,
                     batch_size: int = 16, device: str = "cpu", autocast: str = "none") -> np.ndarray:
    """Σ log π(y_t | x, y_<t) over each completion's tokens under ``model``: float64 (N,). Rows are
    batched by length, right-padded with explicit position ids (``p2o.model.tokenize.pad_sequences``)."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    model.eval()
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]) + len(completion_ids[i]))
    out = np.zeros(len(prompt_ids), dtype=np.float64)
    for start in range(0, len(order), batch_size):
        index = order[start: start + batch_size]
        batch = pad_sequences([list(prompt_ids[i]) for i in index], [list(completion_ids[i]) for i in index],
                              pad_id).to(device)
        with precision(autocast, device):
            sums, _ = sequence_logps(model, batch)
        out[index] = sums.double().cpu().numpy()
    return out


def sample_logps(model, prompts: EncodedPrompts, samples: Sequence[Sample], pad_id: int, batch_size: int = 16,
                 device: str = "cpu", autocast: str = "none") -> np.ndarray:
    """``completion_logps`` of generated samples, each after the prompt tokens it was generated from."""
    where = {pid: i for i, pid in enumerate(prompts.ids)}
    return completion_logps(model, [prompts.token_ids[where[s.prompt_id]] for s in samples],
                            [s.token_ids for s in samples], pad_id, batch_size, device, autocast)
