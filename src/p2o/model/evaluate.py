"""Held-out evaluation of any saved policy against the reference, one split at a time.

With h(y) = β·(log π(y|x) − log π_ref(y|x)) (β = ``evaluate.beta``, the same for every method so
that margins are comparable) the metrics are, over the N pairs of the split:

- ``eval_rewards/accuracies``: fraction of pairs won, a tie counting half,
  mean_i(1[m_i > 0] + ½·1[m_i = 0]) with m_i = h(y⁺_i) − h(y⁻_i) (``pair_accuracy``), so that a
  policy equal to the reference (every margin exactly 0, as at step 0) scores 0.5, chance, not 0;
- ``eval_rewards/ties``: fraction of pairs with m_i exactly 0 (``tie_rate``);
- ``eval_rewards/margins``, ``eval_rewards/chosen``, ``eval_rewards/rejected``: means of h;
- ``eval_kl/token_mean``: KL(π ‖ π_ref) computed exactly over the vocabulary at every response
  token, averaged over all response tokens of the chosen and rejected responses;
- ``eval_logratio/sequence_mean``: the original p2o code's figure, the mean over the 2N responses
  of the sequence log-ratio log π(y|x) − log π_ref(y|x) (not a KL: it can be negative);
- ``eval_logps/chosen``, ``eval_logps/rejected``, ``eval_logps/accuracies`` (log π(y⁺) > log π(y⁻),
  a tie counting half as above).

A tie is exact equality. The stored reference log-probs and the recomputed ones agree exactly when
both are computed with the same batching; another batch size pads rows differently and can leave
margins of about 1e-7 at step 0, which then count as wins or misses.

The training metric ``rewards/accuracies`` (``p2o.losses.common.reward_metrics``) keeps TRL's
strict definition, h(y⁺) > h(y⁻) (a tie is a miss): at the first training step it reads 0 where
``eval_rewards/accuracies`` reads 0.5. The reward model's held-out accuracy
(``p2o.training.reward_model.evaluate_reward_model``) counts ties as here, so the two compare.

With ``per_pair=True`` the record also holds ``pairs``: each pair's id and margin h(y⁺) − h(y⁻), for
the paired bootstrap of ``p2o.report.significance``; the evaluation stage (``p2o.stages.jobs.evaluate``)
adds each pair's ``prompt`` (``p2o.data.splits.prompt_key``), the cluster that bootstrap resamples.

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


def pair_accuracy(margin: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs won, a tie counting half: mean(1[m > 0] + ½·1[m = 0]) over margins (N,)."""
    margin = margin.detach()
    return ((margin > 0).float() + 0.5 * (margin == 0).float()).mean()


def tie_rate(margin: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs whose margin is exactly 0."""
    return (margin.detach() == 0).float().mean()


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
    margin = h_chosen - h_rejected
    metrics = {
        "n_pairs": n,
        "eval_rewards/accuracies": pair_accuracy(margin).item(),
        "eval_rewards/ties": tie_rate(margin).item(),
        "eval_rewards/margins": margin.mean().item(),
        "eval_rewards/chosen": h_chosen.mean().item(),
        "eval_rewards/rejected": h_rejected.mean().item(),
        "eval_kl/token_mean": kl_sum / max(kl_tokens, 1),
        "eval_logratio/sequence_mean": logratio.mean().item(),
        "eval_logps/chosen": logps[:n].mean().item(),
        "eval_logps/rejected": logps[n:].mean().item(),
        "eval_logps/accuracies": pair_accuracy(logps[:n] - logps[n:]).item(),
        "eval_reference/max_abs_gap": gap,
    }
    if per_pair:
        metrics["pairs"] = {"id": list(split.ids), "margin": margin.tolist()}
    return metrics
