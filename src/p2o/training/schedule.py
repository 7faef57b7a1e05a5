"""The training schedule: learning rate per optimizer step and the seeded order of batches.

Both are pure functions of the config and the seed, so the FLOP accounting (``p2o.training.compute``)
can replay a run's batches without a model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from p2o.model.tokenize import TokenizedSplit, batch_indices


def get_lr(step: int, total_steps: int, warmup_steps: int, peak_lr: float, min_ratio: float = 0.1) -> float:
    """Linear warm-up to ``peak_lr``, then cosine decay to ``min_ratio · peak_lr``."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def epoch_batches(splits: Sequence[TokenizedSplit], batch_size: int, epochs: int,
                  seed: int) -> Iterator[tuple[int, TokenizedSplit, list[int]]]:
    """(epoch, split, row indices) in training order: datasets in sequence, batches shuffled."""
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        for split in splits:
            for index in batch_indices(split, batch_size, generator):
                yield epoch, split, index


def n_batches(splits: Sequence[TokenizedSplit], batch_size: int) -> int:
    return sum(math.ceil(len(s) / batch_size) for s in splits)
