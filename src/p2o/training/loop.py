"""One loop skeleton for every trainer: optimizer, schedule, checkpoint, step log, non-finite steps.

``train_loop`` visits the datasets in config order within every epoch (HH → SHP → UF in the paper),
never mixing datasets in a batch, in a seeded order (``p2o.training.schedule``). A trainer gives it one
function, ``batch_steps(split, index)``, a generator that yields one step per optimizer step on that
batch (once for SFT and the reward model, K times for a method with K inner steps); a step is an
iterable of ``StepOutput`` (loss, metrics, tokens, weight), one per micro-batch of this process's share
of the batch (``p2o.training.parallel``: ``train.grad_accum`` micro-batches, ``train.devices``
processes). The loop backpropagates each micro-batch's weighted loss as it comes (one micro-batch's
activations in memory at a time), sums the gradients over processes and logs whole-batch values.
It does everything else: AdamW with linear warm-up then cosine decay to 10 % of the
peak, gradient clipping, skipping (and counting) non-finite steps, a resumable checkpoint every
``checkpoint_every`` optimizer steps at batch ends, held-out evaluation every ``eval_every`` steps, and
a tqdm bar plus, every ``log_every`` steps, one JSONL record: loss, metrics, grad norm, learning rate,
tokens/s.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from p2o.config import OptimConfig
from p2o.io import JsonlLog, atomic_path
from p2o.job_code import entry_of
from p2o.model.logps import precision
from p2o.model.tokenize import TokenizedSplit
from p2o.training import parallel
from p2o.training.fingerprint import Fingerprint
from p2o.training.schedule import epoch_batches, get_lr, n_batches


def autocast(cfg: OptimConfig, device: str):
    """The precision context of a training forward: ``p2o.model.logps.precision``, which the reference
    log-probs and evaluation use too, with ``cfg.autocast``."""
    return precision(cfg.autocast, device)


def train_mode(model, cfg: OptimConfig, section: str = "train") -> None:
    """``model.train(cfg.dropout)``, with HF gradient checkpointing when ``cfg.gradient_checkpointing``.

    HF checkpoints a layer only while the layer itself is in training mode; with dropout off the model
    stays in eval mode, so only the checkpointed layers (the transformer blocks) are marked training,
    their children (dropouts, attention) left in eval mode: still no dropout.
    """
    model.train(cfg.dropout)
    if not cfg.gradient_checkpointing:
        return
    hf = model if hasattr(model, "gradient_checkpointing_enable") else getattr(model, "backbone", None)  # reward model
    if hf is None:
        raise ValueError(f"{section}.gradient_checkpointing: a {type(model).__name__} has no "
                         f"gradient_checkpointing_enable (only Hugging Face models do)")
    if not hf.is_gradient_checkpointing:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for module in model.modules():
        if getattr(module, "gradient_checkpointing", False) and module is not model:
            module.training = True


class NonFiniteLossError(RuntimeError):
    """Too many steps had a NaN/Inf loss or gradient."""


class Optimizer:
    """AdamW + schedule + clipping: ``backward(loss, weight)`` per micro-batch, then ``step()`` does the
    all-reduce over processes (``p2o.training.parallel``), clip, step, zero_grad.

    A step whose loss or gradient norm is not finite changes no weight: it is skipped and counted
    (the schedule still advances, so it stays aligned with the data). Once more than
    ``cfg.max_nonfinite_frac`` of the planned steps were skipped, training stops with
    ``NonFiniteLossError``.
    """

    def __init__(self, model, cfg: OptimConfig, total_steps: int, section: str = "train"):
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
        self.model, self.cfg, self.total_steps, self.section = model, cfg, total_steps, section
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.warmup_steps = int(cfg.warmup_ratio * total_steps)
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.steps = self.skipped = 0
        self.finite = True  # every loss of the current step so far

    def backward(self, loss: torch.Tensor, weight: float = 1.0) -> None:
        """Accumulate the gradient of ``weight · loss``, one micro-batch's share of the batch loss."""
        if not torch.isfinite(loss):
            self.finite = False
        elif self.finite:  # a step with a non-finite loss is skipped: its other backward passes are moot
            (loss if weight == 1 else loss * weight).backward()

    def step(self) -> tuple[float, float, bool]:
        """(grad norm, learning rate, skipped) of one optimizer step on the accumulated gradient."""
        lr = get_lr(self.steps, self.total_steps, self.warmup_steps, self.cfg.lr)
        for group in self.opt.param_groups:
            group["lr"] = lr
        parallel.all_reduce_grads(self.params, self.finite)  # a non-finite loss anywhere makes it NaN
        grad_norm = torch.tensor(float("nan"))
        if self.finite or parallel.world_size() > 1:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        skipped = not torch.isfinite(grad_norm)
        if not skipped:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.steps, self.finite = self.steps + 1, True
        if skipped:
            self.skipped += 1
            if self.skipped > self.cfg.max_nonfinite_frac * self.total_steps:
                raise NonFiniteLossError(
                    f"{self.skipped} of {self.steps} optimizer steps had a non-finite loss or gradient, more than "
                    f"{self.section}.max_nonfinite_frac = {self.cfg.max_nonfinite_frac} of the {self.total_steps} "
                    f"planned; lower the learning rate or check the data")
        return float(grad_norm), lr, skipped


def trained_state(model) -> dict:
    """What a checkpoint keeps of ``model``: its state dict, less the frozen weights (a LoRA run's base,
    part of the run's fingerprint as an input file) when some are frozen."""
    state = model.state_dict()
    frozen = {name for name, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}
    return {k: v for k, v in state.items() if k not in frozen} if frozen else state


def load_trained_state(model, state: dict) -> None:
    """``trained_state`` back into ``model``: every key must be the model's, every missing one frozen."""
    frozen = {name for name, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}
    missing, unexpected = model.load_state_dict(state, strict=not frozen)
    if unexpected or set(missing) - frozen:
        raise KeyError(f"checkpoint does not fit the model: unexpected {unexpected[:3]}, "
                       f"missing trained weights {sorted(set(missing) - frozen)[:3]}")


class Checkpoint:
    """Resumable training state, saved every ``every`` optimizer steps at the end of a batch.

    One file holds the model's trained weights (``trained_state``), the optimizer (AdamW moments), the
    step and skip counters, the number of batches done (the batch order is a function of the seed, so
    this is the position in the data), the torch RNG state, the log records so far and the run's fingerprint
    (``p2o.training.fingerprint``). Only the newest is kept (it is overwritten atomically); it is
    removed when training ends. Checkpoints fall between batches, so no P²O snapshot is ever pending
    in one.

    A checkpoint resumes only the run that wrote it: same parameters, input files and code. One of
    another run, or one that cannot be read (truncated, corrupt), is set aside as
    ``checkpoint.pt.stale`` or ``checkpoint.pt.unreadable`` (replacing an older one) with one line on
    stderr, and the job starts afresh: its weights, optimizer state and log would belong to another run.
    """

    def __init__(self, path: str | Path | None, every: int, model, opt: Optimizer, log: JsonlLog | None,
                 run: Fingerprint, writes: bool = True):
        self.path = Path(path) if path and every else None
        self.every, self.model, self.opt, self.log, self.run = every, model, opt, log, run
        self.writes = writes  # rank 0 of a job of several processes; the others only restore
        self.next = every

    def set_aside(self, suffix: str, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.{suffix}")
        os.replace(self.path, aside)
        print(f"checkpoint {self.path} {why} — set aside as {aside}, starting fresh", file=sys.stderr)

    def restore(self) -> int:
        """Load the checkpoint if there is one of this run; return the number of batches already done."""
        if self.path is None or not self.path.exists():
            return 0
        try:
            state = torch.load(self.path, weights_only=False)
            if not isinstance(state, dict):
                raise TypeError(f"a {type(state).__name__}, not a checkpoint")
        except Exception as e:  # noqa: BLE001 - whatever torch.load raises, the file is no checkpoint to resume
            reason = f"{type(e).__name__}: {e}".splitlines()[0]
            reason = reason if len(reason) <= 120 else reason[:119] + "…"
            self.set_aside("unreadable", f"is unreadable ({reason})")
            return 0
        if changed := self.run.differences(state.get("fingerprint")):
            self.set_aside("stale", f"is from another run ({changed})")
            return 0
        load_trained_state(self.model, state["model"])
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
        if not self.writes:
            self.next = (self.opt.steps // self.every + 1) * self.every
            return
        state = {"fingerprint": self.record, "model": trained_state(self.model),
                 "optimizer": self.opt.opt.state_dict(), "steps": self.opt.steps, "skipped": self.opt.skipped,
                 "batches_done": batches_done, "torch_rng": torch.get_rng_state(),
                 "records": self.log.records if self.log else []}
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)
        self.next = (self.opt.steps // self.every + 1) * self.every

    @functools.cached_property
    def record(self) -> dict:
        return self.run.record()

    def finish(self) -> None:
        if self.path is not None and self.writes:
            self.path.unlink(missing_ok=True)


def finite(record: dict) -> dict:
    """The record with every non-finite number replaced by None: JSON has no NaN, and a missing
    value must show as missing, never as a silent NaN."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


class StepLog:
    """tqdm bar plus a JSONL record every ``every`` steps, with tokens/s over the interval."""

    def __init__(self, log: JsonlLog | None, total: int, desc: str, every: int, main: bool = True):
        self.log, self.every = log, max(1, every)
        self.bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, disable=not main)

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


@dataclass
class StepOutput:
    """What one micro-batch of an optimizer step computed: its loss, its detached metrics, the real
    tokens it read, ``tags`` recorded before the loss (e.g. the inner step), and ``weight``, its share
    of the batch loss (n_micro / B for a mean over pairs; 1 for a whole batch): the batch's loss and
    metrics are Σ weight · loss and Σ weight · metric over micro-batches and processes."""

    loss: torch.Tensor
    tokens: int
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    weight: float = 1.0


BatchSteps = Callable[[TokenizedSplit, list[int]], Iterator[Iterable[StepOutput]]]


def accumulate(opt: Optimizer, micro: Iterable[StepOutput]) -> tuple[dict, float, dict, int]:
    """Backpropagate each micro-batch of one step; return its tags and the whole batch's loss, metrics
    and tokens, summed over the processes."""
    tags, loss, metrics, tokens = {}, 0.0, {}, 0
    for out in micro:  # each forward is dropped after its backward: one micro-batch's activations at a time
        opt.backward(out.loss, out.weight)
        tags = tags or out.tags
        loss += out.weight * out.loss.item()
        for k, v in out.metrics.items():
            metrics[k] = metrics.get(k, 0.0) + out.weight * v.item()
        tokens += out.tokens
    if parallel.world_size() > 1:  # rank 0 holds rows of every batch: its names are the step's
        tags, names = parallel.broadcast_object((tags, list(metrics)))
        total = parallel.all_reduce(torch.tensor([loss, tokens, *(metrics.get(k, 0.0) for k in names)],
                                                 dtype=torch.float64))
        loss, tokens, metrics = total[0].item(), int(total[1]), dict(zip(names, total[2:].tolist()))
    return tags, loss, metrics, tokens


def train_loop(model, splits: Sequence[TokenizedSplit], cfg: OptimConfig, seed: int, batch_steps: BatchSteps, *,
               run: Fingerprint, desc: str, steps_per_batch: int = 1, section: str = "train", log: JsonlLog | None = None,
               checkpoint: str | Path | None = None, evaluate: Callable[[int], None] | None = None) -> dict:
    """Train ``model`` on ``splits``: ``batch_steps(split, index)`` yields ``steps_per_batch`` steps per
    batch, each an iterable of this process's micro-batches (``p2o.training.parallel.micro_batches``), and
    one optimizer step follows each (so the next yield sees the updated weights).

    ``run`` identifies the job (what the trainer and its caller read), to which the loop adds its own
    parameters (the ``section``, seed, dataset order, step count) and modules; a checkpoint resumes only
    a run with the same fingerprint. ``evaluate(step)``, if given, runs at step 0 (unless resumed), every
    ``cfg.eval_every`` optimizer steps and at the end. Returns the step and skip counts, the last step's
    record and the run's ``fingerprint`` (its digests, for the summary). In a job of several processes
    only rank 0 logs, evaluates and checkpoints.
    """
    if parallel.world_size() != cfg.devices:
        raise ValueError(f"{section}.devices = {cfg.devices}, but {parallel.world_size()} process(es) train: "
                         f"launch with `torchrun --nproc_per_node {cfg.devices}` (p2o.training.parallel.init)")
    total = cfg.epochs * n_batches(splits, cfg.batch_size) * steps_per_batch
    # how often the run logs and checkpoints changes nothing it computes: a rerun may do either more or less often
    optim = {k: v for k, v in asdict(cfg).items() if k not in cfg.RUN_ONLY}
    run = run.extend({section: optim, "seed": seed, "datasets": [s.dataset for s in splits],
                      "steps_per_batch": steps_per_batch, "total_steps": total}, code=[entry_of(train_loop)])
    main = parallel.rank() == 0
    log, evaluate = (log, evaluate) if main else (None, None)
    opt, steps = Optimizer(model, cfg, total, section), StepLog(log, total, desc, cfg.log_every, main)
    ckpt = Checkpoint(checkpoint, cfg.checkpoint_every, model, opt, log, run, main)
    done = parallel.in_rank_order(ckpt.restore)  # rank 0 first: it alone sets aside a stale checkpoint
    steps.resume_at(opt.steps)
    if evaluate is not None and not done:
        evaluate(opt.steps)  # step 0: before any update
    record: dict = {}
    batches = epoch_batches(splits, cfg.batch_size, cfg.epochs, seed)
    for n, (epoch, split, index) in enumerate(itertools.islice(batches, done, None), start=done + 1):
        for micro in batch_steps(split, index):
            tags, loss, metrics, tokens = accumulate(opt, micro)
            grad_norm, lr, skipped = opt.step()
            record = finite({"epoch": epoch, "dataset": split.dataset, **tags, "loss": loss, **metrics,
                             "grad_norm": grad_norm, "lr": lr, "skipped": skipped})
            steps.step(opt.steps, tokens, dict(record))
            if evaluate is not None and cfg.eval_every and opt.steps % cfg.eval_every == 0 and opt.steps < total:
                evaluate(opt.steps)
        ckpt.after_batch(n)
    steps.close()
    if evaluate is not None:
        evaluate(opt.steps)
    ckpt.finish()
    return {"steps": opt.steps, "nonfinite_skipped": opt.skipped, **record,
            "fingerprint": run.record(with_params=False)}
