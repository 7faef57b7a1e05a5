"""A baseline written from the original p2o repository's description of its algorithm.

What it does per training step, as described there (and what p2o does instead):

- every sequence is left-padded to ``max_length``, without position ids (p2o: right-padding to the
  batch's longest sequence, explicit position ids);
- chosen and rejected are forwarded separately (p2o: one forward of the 2B rows);
- the reference model is forwarded on both sides every step (p2o: reference log-probs computed
  once per split, before training);
- log-probs are gathered in a Python loop over the samples (p2o: one gather and ``index_add``);
- P²O: at every one of the K inner steps, a snapshot model (a copy of the policy taken at the
  start of the batch) is forwarded on both sides, plus one extra forward of the rejected side
  (p2o: the snapshot's log-probs are the first inner step's own forward, detached).

This is a benchmark baseline, not a library: it reuses p2o's loss functions so that only the
data movement and the forward passes differ.
"""

from __future__ import annotations

import copy

import torch

from p2o.losses import PairLogps, dpo, p2o


def left_padded(prompts, responses, pad_id: int, max_length: int):
    """(B, max_length) left-padded ids, attention mask and response mask."""
    n = len(prompts)
    ids = torch.full((n, max_length), pad_id, dtype=torch.long)
    attn = torch.zeros((n, max_length), dtype=torch.long)
    resp = torch.zeros((n, max_length), dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        seq = (p + r)[-max_length:]
        ids[i, max_length - len(seq):] = torch.tensor(seq)
        attn[i, max_length - len(seq):] = 1
        resp[i, max_length - min(len(r), len(seq)):] = True
    return ids, attn, resp


def sample_loop_logps(model, ids, attn, resp) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence log-prob sums and token counts, one sample at a time (no position ids)."""
    logits = model(input_ids=ids, attention_mask=attn).logits
    sums, counts = [], []
    for i in range(ids.shape[0]):  # the per-sample loop of the original
        logp = logits[i, :-1].log_softmax(-1)
        token = logp.gather(-1, ids[i, 1:].unsqueeze(-1)).squeeze(-1)
        mask = resp[i, 1:]
        sums.append((token * mask).sum())
        counts.append(mask.sum().float())
    return torch.stack(sums), torch.stack(counts)


class OriginalTrainer:
    """One optimizer step (DPO) or one outer step of K inner steps (P²O) the original way."""

    def __init__(self, policy, reference, optimizer, pad_id: int, max_length: int, beta: float,
                 eps_clip: float = 0.15, kl_coef: float = 0.08, inner_steps: int = 3):
        self.policy, self.reference, self.opt = policy, reference, optimizer
        self.pad_id, self.max_length, self.beta = pad_id, max_length, beta
        self.eps_clip, self.kl_coef, self.inner_steps = eps_clip, kl_coef, inner_steps

    def _side(self, model, split, index, side):
        responses = [getattr(split, side)[i] for i in index]
        prompts = [split.prompt[i] for i in index]
        return sample_loop_logps(model, *left_padded(prompts, responses, self.pad_id, self.max_length))

    def _pair(self, model, split, index) -> PairLogps:
        c, nc = self._side(model, split, index, "chosen")
        r, nr = self._side(model, split, index, "rejected")
        return PairLogps.from_sums(c, r, nc, nr)

    def _step(self, loss) -> None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def dpo_step(self, split, index) -> float:
        with torch.no_grad():
            reference = self._pair(self.reference, split, index)  # every step
        loss, _ = dpo(self._pair(self.policy, split, index), reference, beta=self.beta)
        self._step(loss)
        return loss.item()

    def p2o_outer_step(self, split, index) -> float:
        snapshot_model = copy.deepcopy(self.policy)  # per-batch snapshot
        for _ in range(self.inner_steps):
            with torch.no_grad():
                reference = self._pair(self.reference, split, index)
                snapshot = self._pair(snapshot_model, split, index)
            policy = self._pair(self.policy, split, index)
            self._side(self.policy, split, index, "rejected")  # the extra rejected forward
            loss, _ = p2o(policy, reference, snapshot, beta=self.beta, eps_clip=self.eps_clip, kl_coef=self.kl_coef)
            self._step(loss)
        return loss.item()
