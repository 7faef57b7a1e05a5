"""Reference log-probs: computed once per split with the frozen SFT model, read by every method.

For each pair the file holds the summed log-probs and token counts of the chosen and rejected
responses and of KTO's mismatched completion (``TokenizedSplit.mismatched_response``), in split order,
together with the pair ids and the tokenisation settings, which are checked when it is read.

They are computed at the precision training runs at (``train.autocast``; ``p2o.model.logps``), so that the
policy's log-probs equal them at step 0. A file computed under ``bf16`` records it (``autocast``), and
reading it for a run at another precision is an error; an fp32 file is written as before, without the key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from p2o.config import TokenizeConfig
from p2o.io import atomic_path
from p2o.model.logps import PairLogps, pair_logps, precision, sequence_logps
from p2o.model.tokenize import TokenizedSplit, batch_indices, collate_pairs


@dataclass
class ReferenceLogps:
    """Reference log-probs of one split; ``pairs(index)`` gives the PairLogps of a batch."""

    ids: list[str]
    chosen: Tensor
    rejected: Tensor
    chosen_tokens: Tensor
    rejected_tokens: Tensor
    mismatched: Tensor  # log-probs of each prompt with the next pair's chosen response (KTO's z₀)
    tokenize: dict
    autocast: str = "none"  # the precision they were computed at (p2o.model.logps.precision)

    def pairs(self, index: Tensor) -> PairLogps:
        return PairLogps.from_sums(self.chosen[index], self.rejected[index],
                                   self.chosen_tokens[index], self.rejected_tokens[index])

    def prefix(self, n: int) -> ReferenceLogps:
        """The reference log-probs of the first ``n`` pairs, as for a nested training subset.

        Only the mismatched row of the subset's last pair differs from what a fresh computation would
        give (it wraps to the subset's first pair, the pool's to pair n): it is stored as NaN, and
        methods that read mismatched rows (KTO's ``ref_point: mismatched``) are refused on subsets by
        the config check.
        """
        if n > len(self.ids):
            raise ValueError(f"asked for the first {n} pairs of reference log-probs over {len(self.ids)}")
        mismatched = self.mismatched[:n].clone()
        if n < len(self.ids):
            mismatched[-1] = torch.nan  # computed against pair n of the pool, not pair 0 of the subset
        return ReferenceLogps(ids=list(self.ids[:n]), chosen=self.chosen[:n].clone(),
                              rejected=self.rejected[:n].clone(), chosen_tokens=self.chosen_tokens[:n].clone(),
                              rejected_tokens=self.rejected_tokens[:n].clone(), mismatched=mismatched,
                              tokenize=dict(self.tokenize), autocast=self.autocast)

    def save(self, path: str | Path) -> None:
        state = asdict(self)
        if self.autocast == "none":  # fp32 files stay as they were before precisions were recorded
            del state["autocast"]
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: str | Path, split: TokenizedSplit | None = None,
             tokenize: TokenizeConfig | None = None, autocast: str | None = None) -> ReferenceLogps:
        """Read a file, checking (when given) its pairs against ``split``, its tokenisation against
        ``tokenize`` and its precision against ``autocast``, the run's ``train.autocast``."""
        ref = cls(**torch.load(path, weights_only=True))
        if split is not None and ref.ids != split.ids:
            raise ValueError(f"{path}: reference log-probs were computed for other pairs than split "
                             f"{split.dataset!r} holds now; rerun `p2o reference`")
        if tokenize is not None and ref.tokenize != asdict(tokenize):
            raise ValueError(f"{path}: computed with tokenize={ref.tokenize}, config has {asdict(tokenize)}")
        if autocast is not None and ref.autocast != autocast:
            raise ValueError(f"{path}: reference log-probs computed with autocast {ref.autocast!r}, this run uses "
                             f"{autocast!r}; recompute them at the run's precision (`p2o reference`), or the "
                             f"policy's log-probs differ from them before any update")
        return ref


@torch.inference_mode()
def compute_reference_logps(model, split: TokenizedSplit, tokenize: TokenizeConfig, pad_id: int,
                            batch_size: int = 16, device: str = "cpu", autocast: str = "none") -> ReferenceLogps:
    """Reference log-probs of every pair of ``split`` under ``model``, at precision ``autocast``."""
    model.eval()
    out: dict[str, list[Tensor]] = {k: [] for k in ("chosen", "rejected", "chosen_tokens", "rejected_tokens", "mismatched")}
    for index in tqdm(batch_indices(split, batch_size, group_by_length=False),
                      desc=f"reference {split.dataset}", unit="batch", leave=False):
        batch = collate_pairs(split, index, pad_id, with_mismatched=True).to(device)
        with precision(autocast, device):
            lp = pair_logps(model, batch)
            mismatched_sums, _ = sequence_logps(model, batch.mismatched)
        for k, v in (("chosen", lp.chosen), ("rejected", lp.rejected), ("chosen_tokens", lp.chosen_tokens),
                     ("rejected_tokens", lp.rejected_tokens), ("mismatched", mismatched_sums)):
            out[k].append(v.float().cpu())
    return ReferenceLogps(ids=list(split.ids), tokenize=asdict(tokenize), autocast=autocast,
                          **{k: torch.cat(v) for k, v in out.items()})
