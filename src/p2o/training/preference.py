"""Preference training of one method against the precomputed reference log-probs.

Each batch gets ``method.inner_steps`` optimizer steps (K; P²O and PKTO train K steps against a
snapshot of the policy taken at the batch's first inner step). A step runs one policy forward over each
micro-batch's 2b chosen and rejected rows (b = B with ``train.grad_accum`` 1 on one process), computes
the inputs the method's loss declares (``p2o.training.inputs``), and passes them to the loss by keyword;
the micro-batch's loss counts b / B of the batch's. A loss that reads a statistic of the whole batch
(``batch_stats`` in ``p2o.losses.registry``) is refused when the batch is split. The loop skeleton
(``p2o.training.loop``) does the rest.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from p2o.config import OptimConfig
from p2o.config.methods import MethodSpec
from p2o.io import JsonlLog
from p2o.job_code import entry_of
from p2o.losses import get_loss
from p2o.model.reference import ReferenceLogps
from p2o.model.tokenize import TokenizedSplit, collate_pairs
from p2o.training.fingerprint import Fingerprint
from p2o.training.inputs import StepContext, needs_reference_model, step_inputs
from p2o.training.loop import StepOutput, autocast, train_loop, train_mode
from p2o.training.parallel import micro_batches


def method_inputs(method: MethodSpec) -> tuple[str, ...]:
    """The inputs the method's loss reads under its hyper-parameters."""
    return get_loss(method.loss).inputs_for(method.hparams)


def train_preference(
    model,
    splits: Sequence[TokenizedSplit],
    references: dict[str, ReferenceLogps],
    method: MethodSpec,
    cfg: OptimConfig,
    seed: int,
    pad_id: int,
    log: JsonlLog | None = None,
    device: str = "cpu",
    evaluator: Callable[[object], dict[str, dict]] | None = None,
    checkpoint: str | Path | None = None,
    reference_model=None,
    run: Fingerprint | None = None,
) -> dict:
    """Train ``model`` with ``method`` on ``splits`` against the precomputed reference log-probs.

    ``evaluator(model) -> {split: metrics}``, if given, runs every ``cfg.eval_every`` optimizer
    steps and at the end; its records go to the same log with ``kind = "eval"``.

    ``reference_model`` is read only by methods whose inputs run the reference model inside the step
    (TDPO's ``seq_kl``): the frozen SFT model, the one the precomputed reference log-probs came from; it
    is put in eval mode with gradients off. If it is None such a method uses a copy of ``model`` taken on
    entry, before any checkpoint is restored, which is right because ``model`` enters as the SFT model.
    A LoRA policy's reference is its frozen base, ``p2o.model.lora.FrozenBase``: no second copy.
    Every batch checks the in-step reference against the precomputed log-probs (``reference/logp_gap``,
    logged); the reference runs one forward (no gradient) per batch, whatever ``method.inner_steps``.

    ``run`` holds what the caller read (config sections, input file digests); the method (loss and
    hyper-parameters) and the modules that compute the step are added here: a checkpoint resumes only
    the same run.
    """
    torch.manual_seed(seed)
    loss_fn, needs = get_loss(method.loss).fn, method_inputs(method)
    inputs = step_inputs(needs)
    if needs_reference_model(needs):
        reference_model = copy.deepcopy(model) if reference_model is None else reference_model
        reference_model.eval().requires_grad_(False)
    if (cfg.grad_accum > 1 or cfg.devices > 1) and get_loss(method.loss).batch_level(method.hparams):
        raise ValueError(f"method {method.name!r} (loss {method.loss!r} with {method.hparams}) reads a statistic of "
                         f"the whole batch, so it cannot be split: set train.grad_accum = 1 and train.devices = 1 "
                         f"(they are {cfg.grad_accum} and {cfg.devices}), or choose hyper-parameters without one")
    train_mode(model, cfg)
    with_mismatched = any(s.rows == "mismatched" for s in inputs.values())

    def batch_steps(split: TokenizedSplit, index: list[int]) -> Iterator[Iterator[StepOutput]]:
        # one context per micro-batch, kept over the K inner steps: each holds its rows' snapshot
        contexts = [StepContext(model, reference_model, batch.to(device), references[split.dataset], device)
                    for batch in (collate_pairs(split, part, pad_id, with_mismatched=with_mismatched)
                                  for part in micro_batches(index, cfg.grad_accum))]

        def micro_steps(inner: int) -> Iterator[StepOutput]:
            for ctx in contexts:
                with autocast(cfg, device):
                    policy = ctx.policy()  # (b,) fields; one forward for chosen + rejected
                    values = {name: ctx.get(name) for name in needs}
                loss, metrics = loss_fn(policy, ctx.reference, **values, **method.hparams)
                metrics.update(ctx.metrics)
                mismatched = ctx.batch.mismatched
                extra_rows = mismatched.n_tokens if mismatched is not None and inner == 0 else 0
                # the step's forward is dropped before the optimizer step, as every trainer's loop does: it
                # frees the logits for the update, and a resumed run was seen to differ in the last bit
                # when they outlived it (tests/training/test_resume.py)
                ctx.next_step()
                del policy, values
                yield StepOutput(loss, ctx.batch.pairs.n_tokens + extra_rows, metrics, {"inner_step": inner},
                                 weight=len(ctx.batch.index) / len(index))

        for inner in range(method.inner_steps):
            yield micro_steps(inner)

    evaluate = None
    if evaluator is not None and log is not None:
        def evaluate(step: int) -> None:
            model.eval()
            for split_name, metrics in evaluator(model).items():
                log.write({"kind": "eval", "step": step, "dataset": split_name, **metrics})
            train_mode(model, cfg)

    run = (run or Fingerprint()).extend({"job": "train", "method": asdict(method)},
                                        code=[entry_of(train_preference), entry_of(loss_fn)])
    return train_loop(model, splits, cfg, seed, batch_steps, run=run,
                      desc=f"train {method.name}", steps_per_batch=method.inner_steps, log=log,
                      checkpoint=checkpoint, evaluate=evaluate)
