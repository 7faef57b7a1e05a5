"""How one batch is split: across the processes of a data-parallel job, then into micro-batches.

Every process walks the same global batch order (``p2o.training.schedule``) and takes a contiguous
slice of each batch of B pairs; it cuts its slice into ``grad_accum`` micro-batches and backpropagates
each with its share of the batch loss (a loss that is a mean over pairs: n_micro / B), so the summed
gradient over micro-batches and processes is the gradient of the whole batch's loss. ``all_reduce``
then sums the gradients (and the logged loss and metrics) over the processes before the one optimizer
step, which every process takes with the same gradient: the weights stay equal without a broadcast.
This is what ``torch.nn.parallel.DistributedDataParallel`` does with ``no_sync`` during accumulation, with
the averaging left to the loss weights (each process's share of a batch need not be equal).

With one process nothing here touches ``torch.distributed``. A job of several processes is launched by
``torchrun --nproc_per_node N`` (which sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``); ``init``
joins the group (nccl on GPUs, gloo on CPUs) and binds each process to its GPU.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def launched_size() -> int:
    """The number of processes ``torchrun`` started (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init(devices: int, section: str = "train") -> str | None:
    """Join the process group of a ``torchrun`` launch of ``devices`` processes; return the backend.

    Does nothing (returns None) for one device. On GPUs each process is bound to ``cuda:LOCAL_RANK``,
    so ``"cuda"`` means its own GPU.
    """
    launched = launched_size()
    if launched != devices:
        raise ValueError(f"{section}.devices = {devices}, but this job runs {launched} process(es): launch it as "
                         f"`torchrun --nproc_per_node {devices} ...` (or set {section}.devices to {launched})")
    if devices == 1 or dist.is_initialized():
        return None
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # rank 0 evaluates alone while the others wait at the next all-reduce: allow a long evaluation
    dist.init_process_group(backend, timeout=datetime.timedelta(hours=2))
    return backend


def chunks(index: list[int], n: int) -> list[list[int]]:
    """``index`` cut into ``n`` contiguous parts whose sizes differ by at most one (the first ones larger)."""
    size, extra = divmod(len(index), n)
    bounds = [0]
    for k in range(n):
        bounds.append(bounds[-1] + size + (k < extra))
    return [index[a:b] for a, b in zip(bounds, bounds[1:])]


def micro_batches(index: list[int], grad_accum: int) -> list[list[int]]:
    """This process's micro-batches of the global batch ``index`` (empty ones left out)."""
    mine = chunks(index, world_size())[rank()]
    return [part for part in chunks(mine, grad_accum) if part]


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the processes, in place (nothing with one process)."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_grads(params: list[torch.nn.Parameter], finite: bool) -> None:
    """Sum the gradients over the processes as one flat buffer. A process whose loss was not finite
    sends NaN, so that every process skips the step together."""
    if world_size() == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    if not finite:
        flat.fill_(float("nan"))
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset: offset + g.numel()].view_as(p).clone()
        offset += g.numel()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every process (a picklable object, e.g. the names of the logged metrics)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def in_rank_order(fn):
    """``fn()`` on rank 0, then on the others (e.g. restoring a checkpoint that rank 0 may set aside)."""
    if world_size() == 1:
        return fn()
    result = fn() if rank() == 0 else None
    dist.barrier()
    return fn() if rank() != 0 else result
