"""Length-grouped batches at the paper's sizes (400 pairs, batch 8, max_length 128): a seed changes
which pairs share a batch, not only the batch order, at no more padding than the old scheme."""

import itertools

import pytest
import torch

from p2o.model.tokenize import TokenizedSplit, batch_indices, collate_pairs

N_PAIRS, BATCH, MAX_LENGTH, MAX_PROMPT = 400, 8, 128, 64


def lengths(profile: str, lo: int, hi: int, n: int, g: torch.Generator) -> list[int]:
    if profile == "uniform":
        return torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    # heavy-tailed: log-normal, median about 20 tokens, a few rows cut at the budget
    return torch.exp(3.0 + 0.9 * torch.randn(n, generator=g)).round().clamp(lo, hi).long().tolist()


def split_of(profile: str) -> TokenizedSplit:
    """400 pairs with the truncation of ``tokenize_pairs``: prompt ≤ 64 tokens, prompt + response ≤ 128."""
    g = torch.Generator().manual_seed(7)
    prompt = lengths(profile, 2, MAX_PROMPT, N_PAIRS, g)
    chosen, rejected = ([min(r, MAX_LENGTH - p) for r, p in zip(lengths(profile, 1, MAX_LENGTH, N_PAIRS, g), prompt)]
                        for _ in range(2))
    return TokenizedSplit("d", [str(i) for i in range(N_PAIRS)], [[5] * p for p in prompt],
                          [[6] * c for c in chosen], [[7] * r for r in rejected], MAX_LENGTH)


def fifty_batch_windows_reference(split: TokenizedSplit, batch_size: int, g: torch.Generator) -> list[list[int]]:
    """The scheme batch_indices replaced, as the padding reference: shuffle, windows of 50
    batches sorted by real tokens, batch, shuffle the batches."""
    n = len(split)
    order = torch.randperm(n, generator=g).tolist()
    window = 50 * batch_size
    order = [i for s in range(0, n, window) for i in sorted(order[s: s + window], key=split.n_tokens, reverse=True)]
    batches = [order[s: s + batch_size] for s in range(0, n, batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def padding(split: TokenizedSplit, batches: list[list[int]]) -> int:
    """Pad tokens of an epoch as collate_pairs builds it: 2B rows padded to the longest."""
    total = 0
    for index in batches:
        pairs = collate_pairs(split, index, pad_id=0).pairs
        total += pairs.input_ids.numel() - pairs.n_tokens
    return total


def shared_fraction(a: list[list[int]], b: list[list[int]]) -> float:
    """Fraction of b's batches that are also batches of a (as sets of rows)."""
    in_a = {frozenset(x) for x in a}
    return sum(frozenset(x) in in_a for x in b) / len(b)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module", params=["uniform", "heavy_tailed"])
def split(request) -> TokenizedSplit:
    return split_of(request.param)


def test_every_row_once_per_epoch_and_deterministic(split):
    for seed in (0, 1):
        batches = batch_indices(split, BATCH, seeded(seed))
        assert sorted(i for b in batches for i in b) == list(range(N_PAIRS))
        assert all(len(b) == BATCH for b in batches)
        assert batch_indices(split, BATCH, seeded(seed)) == batches


def test_seeds_share_under_a_tenth_of_their_batches(split):
    epochs = {seed: batch_indices(split, BATCH, seeded(seed)) for seed in range(4)}
    for a, b in itertools.combinations(epochs.values(), 2):
        assert shared_fraction(a, b) < 0.10


def test_padding_within_15_percent_of_fifty_batch_windows(split):
    for seed in (0, 1):
        new = padding(split, batch_indices(split, BATCH, seeded(seed)))
        old = padding(split, fifty_batch_windows_reference(split, BATCH, seeded(seed)))
        assert new <= 1.15 * old


def test_unshuffled_batches_keep_the_split_order(split):
    """Reference log-probs and evaluation read the rows in order, ungrouped."""
    batches = batch_indices(split, BATCH, group_by_length=False)
    assert batches == [list(range(s, min(s + BATCH, N_PAIRS))) for s in range(0, N_PAIRS, BATCH)]
