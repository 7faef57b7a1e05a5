"""SFT (which makes the reference model) and preference training, in loops you can read at once.

Both loops visit the datasets in config order within every epoch (HH → SHP → UF in the paper)
and never mix datasets in a batch. AdamW with linear warm-up then cosine decay to 10 % of the
peak, gradient clipping, seeded batch order. The trust-region methods (P²O, PKTO) take K
optimizer steps on each batch against a snapshot of the policy taken at the batch's first inner
step; the snapshot's log-probs are that step's own forward, detached, so it costs no extra
forward. TDPO (``needs_reference_model``) also runs the frozen reference model once per batch, for
its full next-token distributions at the response positions; every other method reads only the
precomputed reference log-probs. Every optimizer step shows on a tqdm bar and, every
``log_every`` steps, as one JSONL record: loss, metrics, grad norm, learning rate, tokens/s.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from p2o.config import OptimConfig
from p2o.io import JsonlLog, atomic_path
from p2o.model.logps import pair_logps, pair_logps_with_seq_kl, reference_distribution, sequence_logps
from p2o.losses import MethodSpec
from p2o.model.reference import ReferenceLogps
from p2o.model.tokenize import TokenizedSplit, batch_indices, collate_pairs, pad_sequences


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


def autocast(cfg: OptimConfig, device: str):
    if cfg.autocast == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class NonFiniteLossError(RuntimeError):
    """Too many steps had a NaN/Inf loss or gradient."""


class Optimizer:
    """AdamW + schedule + clipping: ``step(loss)`` does backward, clip, step, zero_grad.

    A step whose loss or gradient norm is not finite changes no weight: it is skipped and counted
    (the schedule still advances, so it stays aligned with the data). Once more than
    ``cfg.max_nonfinite_frac`` of the planned steps were skipped, training stops with
    ``NonFiniteLossError``.
    """

    def __init__(self, model, cfg: OptimConfig, total_steps: int, section: str = "train"):
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
        self.model, self.cfg, self.total_steps, self.section = model, cfg, total_steps, section
        self.warmup_steps = int(cfg.warmup_ratio * total_steps)
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.steps = self.skipped = 0

    def step(self, loss: torch.Tensor) -> tuple[float, float, bool]:
        """(grad norm, learning rate, skipped) of one optimizer step on ``loss``."""
        lr = get_lr(self.steps, self.total_steps, self.warmup_steps, self.cfg.lr)
        for group in self.opt.param_groups:
            group["lr"] = lr
        grad_norm = torch.tensor(float("nan"))
        if torch.isfinite(loss):
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        skipped = not torch.isfinite(grad_norm)
        if not skipped:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.steps += 1
        if skipped:
            self.skipped += 1
            if self.skipped > self.cfg.max_nonfinite_frac * self.total_steps:
                raise NonFiniteLossError(
                    f"{self.skipped} of {self.steps} optimizer steps had a non-finite loss or gradient, more than "
                    f"{self.section}.max_nonfinite_frac = {self.cfg.max_nonfinite_frac} of the {self.total_steps} "
                    f"planned; lower the learning rate or check the data")
        return float(grad_norm), lr, skipped


class Checkpoint:
    """Resumable training state, saved every ``every`` optimizer steps at the end of a batch.

    One file holds the model, the optimizer (AdamW moments), the step and skip counters, the
    number of batches done (the batch order is a function of the seed, so this is the position in
    the data), the torch RNG state and the log records so far. Only the newest is kept (it is
    overwritten atomically); it is removed when training ends. Checkpoints fall between batches,
    so no P²O snapshot is ever pending in one. ``run`` identifies the job: a checkpoint of another
    run is an error, not something to resume from.
    """

    def __init__(self, path: str | Path | None, every: int, model, opt: Optimizer, log: JsonlLog | None,
                 run: dict):
        self.path = Path(path) if path and every else None
        self.every, self.model, self.opt, self.log, self.run = every, model, opt, log, run
        self.next = every

    def restore(self) -> int:
        """Load the checkpoint if there is one; return the number of batches already done."""
        if self.path is None or not self.path.exists():
            return 0
        state = torch.load(self.path, weights_only=False)
        if state["run"] != self.run:
            raise ValueError(f"{self.path} is a checkpoint of another run ({state['run']}, not {self.run}); "
                             f"delete it to start afresh")
        self.model.load_state_dict(state["model"])
        self.opt.opt.load_state_dict(state["optimizer"])
        self.opt.steps, self.opt.skipped = state["steps"], state["skipped"]
        torch.set_rng_state(state["torch_rng"])
        if self.log is not None:
            for record in state["records"]:
                self.log.write(record)
        self.next = (self.opt.steps // self.every + 1) * self.every
        print(f"resumed from {self.path} at optimizer step {self.opt.steps}", file=sys.stderr)
        return state["batches_done"]

    def after_batch(self, batches_done: int) -> None:
        if self.path is None or self.opt.steps < self.next:
            return
        state = {"run": self.run, "model": self.model.state_dict(), "optimizer": self.opt.opt.state_dict(),
                 "steps": self.opt.steps, "skipped": self.opt.skipped, "batches_done": batches_done,
                 "torch_rng": torch.get_rng_state(), "records": self.log.records if self.log else []}
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)
        self.next = (self.opt.steps // self.every + 1) * self.every

    def finish(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def finite(record: dict) -> dict:
    """The record with every non-finite number replaced by None: JSON has no NaN, and a missing
    value must show as missing, never as a silent NaN."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


class StepLog:
    """tqdm bar plus a JSONL record every ``every`` steps, with tokens/s over the interval."""

    def __init__(self, log: JsonlLog | None, total: int, desc: str, every: int):
        self.log, self.every = log, max(1, every)
        self.bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)

    def resume_at(self, step: int) -> None:
        self.bar.update(step)
        self.t0 = self.start = time.perf_counter()
        self.tokens = 0

    def step(self, step: int, tokens: int, record: dict) -> None:
        self.tokens += tokens
        self.bar.update(1)
        self.bar.set_postfix(loss="nan" if record["loss"] is None else f"{record['loss']:.4f}", refresh=False)
        if self.log is not None and step % self.every == 0:
            now = time.perf_counter()
            record.update(tokens_per_s=self.tokens / max(now - self.t0, 1e-9), elapsed_s=now - self.start)
            self.log.write({"kind": "train", "step": step, **record})
            self.t0, self.tokens = now, 0

    def close(self) -> None:
        self.bar.close()


def sft(model, splits: Sequence[TokenizedSplit], cfg: OptimConfig, seed: int, pad_id: int,
        log: JsonlLog | None = None, device: str = "cpu", checkpoint: str | Path | None = None) -> dict:
    """Supervised fine-tuning on the chosen responses: L = −(Σ log π(y⁺ | x)) / (Σ |y⁺|) per batch.

    As in Rafailov et al. 2023 (§6), the SFT model is the reference π_ref of every method.
    """
    torch.manual_seed(seed)
    model.train(cfg.dropout)
    total = cfg.epochs * n_batches(splits, cfg.batch_size)
    opt, steps = Optimizer(model, cfg, total, "sft"), StepLog(log, total, "sft", cfg.log_every)
    ckpt = Checkpoint(checkpoint, cfg.checkpoint_every, model, opt, log, {"job": "sft", "seed": seed, "total": total})
    done = ckpt.restore()
    steps.resume_at(opt.steps)
    record = {}
    batches = epoch_batches(splits, cfg.batch_size, cfg.epochs, seed)
    for n, (epoch, split, index) in enumerate(itertools.islice(batches, done, None), start=done + 1):
        batch = pad_sequences([split.prompt[i] for i in index], [split.chosen[i] for i in index], pad_id).to(device)
        with autocast(cfg, device):
            sums, counts = sequence_logps(model, batch)
        loss = -sums.sum() / counts.sum()
        grad_norm, lr, skipped = opt.step(loss)
        record = finite({"epoch": epoch, "dataset": split.dataset, "loss": loss.item(), "grad_norm": grad_norm,
                         "lr": lr, "skipped": skipped})
        steps.step(opt.steps, batch.n_tokens, dict(record))
        ckpt.after_batch(n)
    steps.close()
    ckpt.finish()
    return {"steps": opt.steps, "nonfinite_skipped": opt.skipped, **record}


REFERENCE_GAP_MAX = 0.5  # nats per token: far above bf16 rounding, far below SFT-vs-base differences


def reference_gap(in_step, precomputed) -> torch.Tensor:
    """Mean |log π_ref(y) − precomputed log π_ref(y)| per response token over the batch's 2B responses.

    Raises if it exceeds ``REFERENCE_GAP_MAX``: the reference model is not the one the precomputed
    log-probs came from (say, the base model instead of the SFT model).
    """
    diff = torch.cat((in_step.chosen - precomputed.chosen, in_step.rejected - precomputed.rejected)).abs()
    tokens = torch.cat((in_step.chosen_tokens, in_step.rejected_tokens))
    gap = (diff.sum() / tokens.sum().clamp(min=1)).detach()
    if not gap <= REFERENCE_GAP_MAX:
        raise ValueError(f"the reference model's log-probs differ from the precomputed reference log-probs "
                         f"by {gap.item():.3g} nats per token (> {REFERENCE_GAP_MAX}): pass the SFT model "
                         f"that `p2o reference` used as reference_model")
    return gap


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
) -> dict:
    """Train ``model`` with ``method`` on ``splits`` against the precomputed reference log-probs.

    ``evaluator(model) -> {split: metrics}``, if given, runs every ``cfg.eval_every`` optimizer
    steps and at the end; its records go to the same log with ``kind = "eval"``.

    ``reference_model`` is read only by methods whose loss ``needs_reference_model`` (TDPO): the
    frozen SFT model, the one the precomputed reference log-probs came from; it is put in eval mode
    with gradients off. If it is None such a method uses a copy of ``model`` taken on entry, before
    any checkpoint is restored, which is right because ``model`` enters as the SFT model. Every batch
    checks the in-step reference against the precomputed log-probs (``reference/logp_gap``, mean
    absolute difference per response token, logged) and stops above ``REFERENCE_GAP_MAX``. The
    reference runs one forward (no gradient) per batch, whatever ``method.inner_steps``.
    """
    torch.manual_seed(seed)
    if method.needs_reference_model:
        reference_model = copy.deepcopy(model) if reference_model is None else reference_model
        reference_model.eval().requires_grad_(False)
    model.train(cfg.dropout)
    total = cfg.epochs * n_batches(splits, cfg.batch_size) * method.inner_steps
    opt, steps = Optimizer(model, cfg, total), StepLog(log, total, f"train {method.name}", cfg.log_every)
    record: dict = {}

    def run_eval() -> None:
        if evaluator is None or log is None:
            return
        model.eval()
        for split_name, metrics in evaluator(model).items():
            log.write({"kind": "eval", "step": opt.steps, "dataset": split_name, **metrics})
        model.train(cfg.dropout)

    ckpt = Checkpoint(checkpoint, cfg.checkpoint_every, model, opt, log,
                      {"job": "train", "method": method.name, "seed": seed, "total": total})
    done = ckpt.restore()
    steps.resume_at(opt.steps)
    if not done:
        run_eval()  # step 0: the policy equals the reference
    batches = epoch_batches(splits, cfg.batch_size, cfg.epochs, seed)
    for n, (epoch, split, index) in enumerate(itertools.islice(batches, done, None), start=done + 1):
        batch = collate_pairs(split, index, pad_id, with_kl=method.needs_kl_rows).to(device)
        ref = references[split.dataset]
        reference = ref.pairs(batch.index).to(device)
        reference_kl = ref.kl[batch.index].to(device)
        snapshot = policy_kl = seq_kl = reference_dist = None
        for inner in range(method.inner_steps):
            with autocast(cfg, device):
                if method.needs_reference_model:  # the one policy forward; the reference's once per batch
                    if reference_dist is None:
                        reference_dist = reference_distribution(reference_model, batch)
                        gap = reference_gap(reference_dist.pair_logps, reference)
                    policy, seq_kl, _ = pair_logps_with_seq_kl(model, reference_dist, batch)
                else:
                    policy = pair_logps(model, batch)  # (B,) fields; one forward for chosen + rejected
                if method.uses_snapshot and snapshot is None:
                    snapshot = policy.detach()  # at the first inner step the policy *is* the snapshot
                if method.needs_kl_rows and policy_kl is None:
                    with torch.no_grad():  # KTO's z0 carries no gradient; estimated once per batch
                        policy_kl, _ = sequence_logps(model, batch.kl)
            loss, metrics = method(policy, reference, snapshot, policy_kl, reference_kl, seq_kl)
            if method.needs_reference_model:
                metrics["reference/logp_gap"] = gap
            grad_norm, lr, skipped = opt.step(loss)
            record = finite({"epoch": epoch, "dataset": split.dataset, "inner_step": inner, "loss": loss.item(),
                             **{k: v.item() for k, v in metrics.items()}, "grad_norm": grad_norm, "lr": lr,
                             "skipped": skipped})
            tokens = batch.pairs.n_tokens + (batch.kl.n_tokens if batch.kl is not None and inner == 0 else 0)
            steps.step(opt.steps, tokens, dict(record))
            if cfg.eval_every and opt.steps % cfg.eval_every == 0 and opt.steps < total:
                run_eval()
        ckpt.after_batch(n)
    steps.close()
    run_eval()
    ckpt.finish()
    return {"steps": opt.steps, "nonfinite_skipped": opt.skipped, **record}

