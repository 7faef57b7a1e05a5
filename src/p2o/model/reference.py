"""Reference log-probs: computed once per split with the frozen SFT model, read by every method.

For each pair the file holds the summed log-probs and token counts of the chosen and rejected
responses and of KTO's mismatched completion (``TokenizedSplit.mismatched_response``), in split order,
together with the pair ids and the tokenisation settings, which are checked when it is read. The
mismatched row of pair i uses the chosen response of pair ``mismatched_partner[i]``, the next pair
whose prompt differs; the file records those indices unless they are simply i+1 (mod n), as where
every prompt has one pair, so that such files read as before. When every pair of a split has one
prompt there is no mismatched completion: the rows are NaN and the partners -1.

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
    mismatched: Tensor  # log-probs of each prompt with another prompt's chosen response (KTO's z₀)
    tokenize: dict
    autocast: str = "none"  # the precision they were computed at (p2o.model.logps.precision)
    mismatched_partner: Tensor | None = None  # (n,) long: whose chosen response; None: i+1 (mod n)

    def pairs(self, index: Tensor) -> PairLogps:
        return PairLogps.from_sums(self.chosen[index], self.rejected[index],
                                   self.chosen_tokens[index], self.rejected_tokens[index])

    def prefix(self, n: int) -> ReferenceLogps:
        """The reference log-probs of the first ``n`` pairs, as for a nested training subset.

        A pair's mismatched row is kept exactly when a fresh computation on the subset would give it:
        when its partner lies inside the subset. (A partner that wrapped round to an earlier pair is
        also the subset's, as no later pair of the subset has another prompt.) The others, those whose
        partner is pair n or later, are NaN with partner -1; methods that read mismatched rows (KTO's
        ``ref_point: mismatched``) are refused on subsets by the config check.
        """
        if n > len(self.ids):
            raise ValueError(f"asked for the first {n} pairs of reference log-probs over {len(self.ids)}")
        partner = self.partners()[:n].clone()
        outside = partner >= n  # computed against a pair of the pool beyond the subset
        partner[outside] = -1
        mismatched = self.mismatched[:n].clone()
        mismatched[outside] = torch.nan
        return ReferenceLogps(ids=list(self.ids[:n]), chosen=self.chosen[:n].clone(),
                              rejected=self.rejected[:n].clone(), chosen_tokens=self.chosen_tokens[:n].clone(),
                              rejected_tokens=self.rejected_tokens[:n].clone(), mismatched=mismatched,
                              tokenize=dict(self.tokenize), autocast=self.autocast, mismatched_partner=partner)

    def partners(self) -> Tensor:
        """``mismatched_partner``, or i+1 (mod n) where the file does not record it."""
        if self.mismatched_partner is not None:
            return self.mismatched_partner
        return _next_pair(len(self.ids))

    def save(self, path: str | Path) -> None:
        state = asdict(self)
        if self.autocast == "none":  # fp32 files stay as they were before precisions were recorded
            del state["autocast"]
        if self.mismatched_partner is None or torch.equal(self.mismatched_partner, _next_pair(len(self.ids))):
            del state["mismatched_partner"]  # as are files whose partners are pair i+1
        # through a file handle: torch names the archive inside after a path it is given, and the
        # temporary name would make the bytes (and a run fingerprint over them) differ between runs
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)

    @classmethod
    def load(cls, path: str | Path, split: TokenizedSplit | None = None,
             tokenize: TokenizeConfig | None = None, autocast: str | None = None) -> ReferenceLogps:
        """Read a file, checking (when given) its pairs against ``split``, its tokenisation against
        ``tokenize`` and its precision against ``autocast``, the run's ``train.autocast``."""
        ref = cls(**torch.load(path, weights_only=True))
        if split is not None and ref.ids != split.ids:
            raise ValueError(f"{path}: reference log-probs were computed for other pairs than split "
                             f"{split.dataset!r} holds now; rerun `p2o reference`")
        known = ref.partners() >= 0  # -1: a row voided by ``prefix`` (NaN), whatever the split pairs it with
        if split is not None and not torch.equal(ref.partners()[known], split_partners(split)[known]):
            raise ValueError(f"{path}: KTO's mismatched rows were computed with other partner pairs than split "
                             f"{split.dataset!r} gives now (each pair's next pair with another prompt); "
                             f"rerun `p2o reference`")
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
    partner = split_partners(split)
    with_mismatched = bool((partner >= 0).all())  # else one prompt throughout: no mismatched rows
    out: dict[str, list[Tensor]] = {k: [] for k in ("chosen", "rejected", "chosen_tokens", "rejected_tokens", "mismatched")}
    for index in tqdm(batch_indices(split, batch_size, group_by_length=False),
                      desc=f"reference {split.dataset}", unit="batch", leave=False):
        batch = collate_pairs(split, index, pad_id, with_mismatched=with_mismatched).to(device)
        with precision(autocast, device):
            lp = pair_logps(model, batch)
            mismatched_sums = (sequence_logps(model, batch.mismatched)[0] if with_mismatched
                               else torch.full_like(lp.chosen, torch.nan))
        for k, v in (("chosen", lp.chosen), ("rejected", lp.rejected), ("chosen_tokens", lp.chosen_tokens),
                     ("rejected_tokens", lp.rejected_tokens), ("mismatched", mismatched_sums)):
            out[k].append(v.float().cpu())
    return ReferenceLogps(ids=list(split.ids), tokenize=asdict(tokenize), autocast=autocast,
                          mismatched_partner=partner, **{k: torch.cat(v) for k, v in out.items()})


def split_partners(split: TokenizedSplit) -> Tensor:
    """(n,) long: the pair whose chosen response each pair's mismatched row uses, -1 for none."""
    return torch.tensor(split.mismatched_partners, dtype=torch.long)


def _next_pair(n: int) -> Tensor:
    return (torch.arange(n) + 1) % n
