"""Supervised fine-tuning on the chosen responses: the SFT model is the reference π_ref of every method."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from p2o.config import OptimConfig
from p2o.io import JsonlLog
from p2o.job_code import entry_of
from p2o.model.logps import sequence_logps
from p2o.model.tokenize import TokenizedSplit, pad_sequences
from p2o.training.fingerprint import Fingerprint
from p2o.training.loop import StepOutput, autocast, train_loop


def sft(model, splits: Sequence[TokenizedSplit], cfg: OptimConfig, seed: int, pad_id: int,
        log: JsonlLog | None = None, device: str = "cpu", checkpoint: str | Path | None = None,
        run: Fingerprint | None = None) -> dict:
    """SFT on the chosen responses: L = −(Σ log π(y⁺ | x)) / (Σ |y⁺|) per batch.

    As in Rafailov et al. 2023 (§6), the SFT model is the reference π_ref of every method. ``run`` holds
    what the caller read (config sections, input file digests): a checkpoint resumes only the same run.
    """
    torch.manual_seed(seed)
    model.train(cfg.dropout)

    def batch_steps(split: TokenizedSplit, index: list[int]) -> Iterator[StepOutput]:
        batch = pad_sequences([split.prompt[i] for i in index], [split.chosen[i] for i in index], pad_id).to(device)
        with autocast(cfg, device):
            sums, counts = sequence_logps(model, batch)
        yield StepOutput(-sums.sum() / counts.sum(), batch.n_tokens)

    run = (run or Fingerprint()).extend({"job": "sft"}, code=[entry_of(sft)])
    return train_loop(model, splits, cfg, seed, batch_steps, run=run, desc="sft", section="sft", log=log,
                      checkpoint=checkpoint)
