"""Held-out evaluation of any saved policy against the reference, one split at a time.

With h(y) = β·(log π(y|x) − log π_ref(y|x)) (β = ``evaluate.beta``, the same for every method so
that margins are comparable) the metrics are, over the N pairs of the split:

- ``eval_rewards/accuracies``: fraction of pairs with h(y⁺) > h(y⁻) strictly (a tie is a miss);
- ``eval_rewards/margins``, ``eval_rewards/chosen``, ``eval_rewards/rejected``: means of h;
- ``eval_kl/token_mean``: KL(π ‖ π_ref) computed exactly over the vocabulary at every response
  token, averaged over all response tokens of the chosen and rejected responses;
- ``eval_logratio/sequence_mean``: the original p2o code's figure, the mean over the 2N responses
  of the sequence log-ratio log π(y|x) − log π_ref(y|x) (not a KL: it can be negative);
- ``eval_logps/chosen``, ``eval_logps/rejected``, ``eval_logps/accuracies`` (log π(y⁺) > log π(y⁻)).

With ``per_pair=True`` the record also holds ``pairs``: each pair's id and margin h(y⁺) − h(y⁻), for
the paired bootstrap of ``p2o.report.significance``.

Reference log-probs for the rewards are the shared precomputed ones; the reference model is run
as well because the exact KL needs its full distribution, and the two are checked to agree.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from p2o.model.logps import response_logits, token_kl, token_logps
from p2o.model.reference import ReferenceLogps
from p2o.model.tokenize import TokenizedSplit, batch_indices, collate_pairs

# Largest tolerated gap between stored and recomputed reference log-probs (per sequence, nats).
REFERENCE_TOLERANCE = 1e-2


@torch.inference_mode()
def evaluate_split(policy, reference_model, split: TokenizedSplit, reference: ReferenceLogps, beta: float,
                   pad_id: int, batch_size: int = 16, device: str = "cpu", progress: bool = True,
                   per_pair: bool = False) -> dict:
    policy.eval()
    reference_model.eval()
    n = len(split)
    logps = torch.zeros(2 * n)  # policy sequence log-probs: chosen rows 0..n-1, rejected rows n..2n-1
    ref_recomputed = torch.zeros(2 * n)
    kl_sum, kl_tokens = 0.0, 0
    batches = batch_indices(split, batch_size, group_by_length=False)
    for index in tqdm(batches, desc=f"evaluate {split.dataset}", unit="batch", leave=False, disable=not progress):
        batch = collate_pairs(split, index, pad_id).to(device)
        p_logits, labels, rows = response_logits(policy, batch.pairs)  # (M, V), (M,), (M,)
        r_logits, _, _ = response_logits(reference_model, batch.pairs)
        where = torch.tensor(index + [i + n for i in index])  # batch row -> slot in logps
        slot = where[rows.cpu()]
        logps.index_add_(0, slot, token_logps(p_logits, labels).cpu())
        ref_recomputed.index_add_(0, slot, token_logps(r_logits, labels).cpu())
        kl = token_kl(p_logits, r_logits)
        kl_sum += kl.sum().item()
        kl_tokens += kl.numel()
    stored = torch.cat([reference.chosen, reference.rejected])
    gap = (stored - ref_recomputed).abs().max().item()
    if gap > REFERENCE_TOLERANCE:
        raise ValueError(f"split {split.dataset!r}: the reference model's log-probs differ from the stored "
                         f"reference log-probs by up to {gap:.3g} nats; was the reference recomputed with "
                         f"another model or tokenisation?")
    logratio = logps - stored
    h_chosen, h_rejected = beta * logratio[:n], beta * logratio[n:]
    metrics = {
        "n_pairs": n,
        "eval_rewards/accuracies": (h_chosen > h_rejected).float().mean().item(),
        "eval_rewards/margins": (h_chosen - h_rejected).mean().item(),
        "eval_rewards/chosen": h_chosen.mean().item(),
        "eval_rewards/rejected": h_rejected.mean().item(),
        "eval_kl/token_mean": kl_sum / max(kl_tokens, 1),
        "eval_logratio/sequence_mean": logratio.mean().item(),
        "eval_logps/chosen": logps[:n].mean().item(),
        "eval_logps/rejected": logps[n:].mean().item(),
        "eval_logps/accuracies": (logps[:n] > logps[n:]).float().mean().item(),
        "eval_reference/max_abs_gap": gap,
    }
    if per_pair:
        metrics["pairs"] = {"id": list(split.ids), "margin": (h_chosen - h_rejected).tolist()}
    return metrics
