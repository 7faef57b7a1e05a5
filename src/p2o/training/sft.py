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
from p2o.training.loop import StepOutput, autocast, train_loop, train_mode
from p2o.training.parallel import micro_batches


def sft(model, splits: Sequence[TokenizedSplit], cfg: OptimConfig, seed: int, pad_id: int,
        log: JsonlLog | None = None, device: str = "cpu", checkpoint: str | Path | None = None,
        run: Fingerprint | None = None) -> dict:
    """SFT on the chosen responses: L = −(Σ log π(y⁺ | x)) / (Σ |y⁺|) per batch.

    As in Rafailov et al. 2023 (§6), the SFT model is the reference π_ref of every method. ``run`` holds
    what the caller read (config sections, input file digests): a checkpoint resumes only the same run.
    """
    torch.manual_seed(seed)
    train_mode(model, cfg, "sft")

    def batch_steps(split: TokenizedSplit, index: list[int]) -> Iterator[Iterator[StepOutput]]:
        batch_tokens = sum(len(split.chosen[i]) for i in index)  # the denominator of the whole batch

        def micro_steps() -> Iterator[StepOutput]:
            for part in micro_batches(index, cfg.grad_accum):
                batch = pad_sequences([split.prompt[i] for i in part], [split.chosen[i] for i in part],
                                      pad_id).to(device)
                with autocast(cfg, device):
                    sums, counts = sequence_logps(model, batch)
                # a micro-batch's token mean, weighted by its share of the batch's response tokens
                yield StepOutput(-sums.sum() / counts.sum(), batch.n_tokens,
                                 weight=1.0 if part == index else counts.sum().item() / batch_tokens)

        yield micro_steps()

    run = (run or Fingerprint()).extend({"job": "sft"}, code=[entry_of(sft)])
    return train_loop(model, splits, cfg, seed, batch_steps, run=run, desc="sft", section="sft", log=log,
                      checkpoint=checkpoint)
