"""Pairs → token ids, and token ids → padded batches whose padding changes no log-prob.

Prompt and response are tokenised separately (no special tokens) and the tokenizer's EOS is
appended to each response, as TRL does. Truncation keeps the *end* of the prompt (at most
``max_prompt_length`` tokens) and the *start* of the response (at most ``max_length`` minus the
prompt). Prompt tokens never enter a loss: ``response_mask`` marks only response tokens.

Batches are right-padded with explicit ``position_ids`` (0, 1, 2, … on the real tokens), so a
sequence's log-probs do not depend on what else is in its batch. (The original p2o left-pads
GPT-2 without position ids, which shifts every position; we do not copy that.)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from p2o.config import TokenizeConfig


@dataclass
class TokenizedSplit:
    """One split of one dataset as token ids; row i is pair i of the split file."""

    dataset: str
    ids: list[str]
    prompt: list[list[int]]
    chosen: list[list[int]]
    rejected: list[list[int]]
    max_length: int

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def mismatched_partners(self) -> list[int]:
        """Each pair's partner for ``mismatched_response``, computed once for the split
        (``p2o.data.splits.mismatched_partners``; -1 everywhere when every pair has one prompt)."""
        from p2o.data.splits import mismatched_partners

        return mismatched_partners(self.prompt)

    def mismatched_response(self, i: int) -> list[int]:
        """Mismatched completion for KTO's reference point: pair i's prompt with the chosen
        response of the next pair (cyclically) whose prompt differs (``p2o.data.splits.mismatched_partners``,
        comparing prompt token ids), cut to pair i's response budget. Pair i+1 is usually that pair,
        but not where one prompt has several pairs (SHP): an answer to the same post is no mismatch.

        Fixing the pairing at split level (TRL rotates within each batch) lets the reference
        log-probs of these rows be computed once, with the others. Raises ``ValueError`` when every
        pair of the split has the same prompt.
        """
        j = self.mismatched_partners[i]
        if j < 0:
            raise ValueError(f"split {self.dataset!r}: all {len(self)} pairs share one prompt, so none can be "
                             f"paired with another prompt's response (KTO's mismatched completion, "
                             f"ref_point: mismatched)")
        return self.chosen[j][: self.max_length - len(self.prompt[i])]

    def n_tokens(self, i: int) -> int:
        """Real tokens of pair i (both sequences)."""
        return 2 * len(self.prompt[i]) + len(self.chosen[i]) + len(self.rejected[i])

    def padded_length(self, i: int) -> int:
        """Tokens of pair i's longer sequence: the length ``collate_pairs`` pads both of its rows to
        when pair i is the longest of its batch."""
        return len(self.prompt[i]) + max(len(self.chosen[i]), len(self.rejected[i]))


def tokenize_pairs(tokenizer, dataset: str, ids: Sequence[str], prompts: Sequence[str],
                   chosen: Sequence[str], rejected: Sequence[str], cfg: TokenizeConfig) -> TokenizedSplit:
    """Tokenise a split (batched through the fast tokenizer) and apply the truncation rules."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []

    def encode(texts: Sequence[str]) -> list[list[int]]:
        return tokenizer(list(texts), add_special_tokens=False)["input_ids"] if len(texts) else []

    prompt_ids = [p[-cfg.max_prompt_length:] for p in encode(prompts)]
    for i, p in enumerate(prompt_ids):
        if not p:
            raise ValueError(f"{dataset}: pair {ids[i]} has a prompt that tokenises to nothing")

    def responses(texts: Sequence[str]) -> list[list[int]]:
        return [(r + eos)[: cfg.max_length - len(p)] for r, p in zip(encode(texts), prompt_ids)]

    return TokenizedSplit(dataset, list(ids), prompt_ids, responses(chosen), responses(rejected),
                          cfg.max_length)


@dataclass
class SequenceBatch:
    """Right-padded sequences; ``response_mask`` is True on response tokens."""

    input_ids: Tensor  # (N, T)
    attention_mask: Tensor  # (N, T)
    position_ids: Tensor  # (N, T)
    response_mask: Tensor  # (N, T) bool

    def to(self, device) -> SequenceBatch:
        return SequenceBatch(*(t.to(device, non_blocking=True) for t in
                               (self.input_ids, self.attention_mask, self.position_ids, self.response_mask)))

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


def pad_sequences(prompts: Sequence[list[int]], responses: Sequence[list[int]], pad_id: int) -> SequenceBatch:
    """Concatenate prompt + response per row and right-pad to the longest row (dynamic padding)."""
    rows = [torch.tensor(p + r, dtype=torch.long) for p, r in zip(prompts, responses)]
    input_ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad_id)
    prompt_len = torch.tensor([len(p) for p in prompts]).unsqueeze(1)  # (N, 1)
    total_len = torch.tensor([len(r) for r in rows]).unsqueeze(1)
    pos = torch.arange(input_ids.shape[1]).unsqueeze(0)  # (1, T)
    attention_mask = (pos < total_len).long()
    response_mask = (pos >= prompt_len) & (pos < total_len)
    position_ids = pos.expand_as(input_ids) * attention_mask
    return SequenceBatch(input_ids, attention_mask, position_ids, response_mask)


@dataclass
class PairBatch:
    """A batch of B pairs: ``pairs`` holds the B chosen rows then the B rejected rows (2B, T),
    so one forward serves both; ``mismatched`` holds the B mismatched rows (each prompt with another
    pair's chosen response) when the loss needs them."""

    index: Tensor  # (B,) row numbers in the split, to look up reference log-probs
    pairs: SequenceBatch
    mismatched: SequenceBatch | None = None

    def to(self, device) -> PairBatch:
        return PairBatch(self.index, self.pairs.to(device), self.mismatched.to(device) if self.mismatched else None)

    @property
    def n_tokens(self) -> int:
        return self.pairs.n_tokens + (self.mismatched.n_tokens if self.mismatched else 0)


def collate_pairs(split: TokenizedSplit, index: Sequence[int], pad_id: int,
                  with_mismatched: bool = False) -> PairBatch:
    prompts = [split.prompt[i] for i in index]
    pairs = pad_sequences(prompts + prompts, [split.chosen[i] for i in index] +
                          [split.rejected[i] for i in index], pad_id)
    mismatched = (pad_sequences(prompts, [split.mismatched_response(i) for i in index], pad_id)
                  if with_mismatched else None)
    return PairBatch(torch.tensor(list(index), dtype=torch.long), pairs, mismatched)


BUCKET_BATCHES = 4  # batches per length bucket of batch_indices


def batch_indices(split: TokenizedSplit, batch_size: int, generator: torch.Generator | None = None,
                  group_by_length: bool = True) -> list[list[int]]:
    """Split the rows into batches: shuffled when a generator is given, else in order.

    With ``group_by_length``, rows are shuffled, cut into buckets of ``BUCKET_BATCHES`` batches,
    sorted by ``padded_length`` inside each bucket and batched, and the batch order is shuffled
    again: batches of similar length need less padding while the order stays random. Buckets
    this small make the batches themselves depend on the seed, not only their order: on 400 pairs
    in batches of 8, two seeds share no batch, where buckets of 50 batches let them share a sixth
    to two fifths of their batches; sorting by the length a pair is padded to keeps the padding
    below that of the 50-batch buckets sorted by real tokens (tests/model/test_batching.py).
    """
    n = len(split)
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    if group_by_length:
        bucket = BUCKET_BATCHES * batch_size
        order = [i for s in range(0, n, bucket)
                 for i in sorted(order[s: s + bucket], key=split.padded_length, reverse=True)]
    batches = [order[s: s + batch_size] for s in range(0, n, batch_size)]
    if generator is not None and group_by_length:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
