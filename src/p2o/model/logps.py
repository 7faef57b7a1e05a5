"""Per-sequence log-probs of response tokens: one forward for chosen and rejected together.

Position t of the transformer predicts token t+1, so the positions that matter are those whose
*next* token is a response token. We run the decoder once over the (2B, T) batch, keep only
those hidden states (M of them) and apply the LM head to them alone: prompt and padding
positions never reach the (vocabulary-sized) head. Log-probs are taken in fp32 as
``logit[label] − logsumexp(logits)`` without materialising a log-softmax, and summed per row
with one ``index_add`` (no Python loop over samples).

One precision path for every log-prob. Every log-prob of the package (the policy's in a training
step, the snapshot, KTO's mismatched rows, the in-step and precomputed reference, evaluation) comes
from ``response_logits``, run under ``precision(autocast, device)`` with the one ``train.autocast``
setting. Under ``bf16`` the transformer body runs in bf16, but the LM head runs outside autocast on
the hidden states upcast to fp32 with the fp32 head weight, so the logits and everything after them
(logsumexp, log-softmax, KL) are fp32; the price is one fp32 (M, d) × (d, V) matmul per forward,
at the M response positions only. The body's bf16 rounding is the remaining difference from an
fp32 run, and it is why the reference and evaluation run at the training's setting, not in fp32: the
same weights on the same batch then give the same log-probs, and only bf16 rounding that depends on a
batch's padded length remains. Measured on the demo's SFT model, against the reference log-probs a
step-0 policy's sequence log-probs moved by up to 0.12 nats with a bf16 head and an fp32 reference,
0.03 with the fp32 head and an fp32 reference, and 0.004 (mean 1e-4) with both at bf16 and the
training's batches. With ``none`` nothing changes: the fp32 path is bit-identical to what it was.
Model types outside ``HEAD_ONLY_MODEL_TYPES`` run their own head, in the autocast dtype, and only the
result is upcast; the same path still serves policy and reference alike. ``auto`` is ``bf16`` on a
CUDA device with bf16 (Ampere and later) and ``none`` elsewhere (``resolve_autocast``). On CUDA the
body's fp32 matmuls may use TF32 (``p2o.model.loading.load_model``); the head's never do
(``ieee_fp32``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from p2o.model.tokenize import PairBatch, SequenceBatch


@dataclass(frozen=True)
class PairLogps:
    """Per-sequence log-probs of a batch of pairs under one model; every field is ``(B,)``.

    ``chosen``/``rejected`` are sums over the response tokens, ``*_mean`` the token means
    (kept as their own tensors so that a ratio built on means and a margin built on sums have
    separate gradient paths), ``*_tokens`` the response lengths.
    """

    chosen: Tensor
    rejected: Tensor
    chosen_mean: Tensor
    rejected_mean: Tensor
    chosen_tokens: Tensor
    rejected_tokens: Tensor

    @classmethod
    def from_sums(cls, chosen: Tensor, rejected: Tensor, chosen_tokens: Tensor, rejected_tokens: Tensor):
        return cls(
            chosen, rejected,
            chosen / chosen_tokens.clamp(min=1), rejected / rejected_tokens.clamp(min=1),
            chosen_tokens, rejected_tokens,
        )

    def detach(self) -> PairLogps:
        return PairLogps(*(t.detach() for t in self._tensors()))

    def to(self, device) -> PairLogps:
        return PairLogps(*(t.to(device) for t in self._tensors()))

    def _tensors(self) -> tuple[Tensor, ...]:
        return (self.chosen, self.rejected, self.chosen_mean, self.rejected_mean,
                self.chosen_tokens, self.rejected_tokens)


# Model types whose logits are exactly lm_head(final hidden state); other models fall back to
# the full forward. Each listed type is checked against model(...).logits in the tests.
HEAD_ONLY_MODEL_TYPES = {"gpt2", "llama"}


AUTOCAST = ("none", "bf16", "auto")  # the values of train.autocast


def resolve_autocast(autocast: str, device: str | torch.device) -> str:
    """``auto`` as ``bf16`` on a CUDA device that supports bf16 (Ampere and later), else ``none`` (fp32:
    on the CPU bf16 is emulated and slow); ``none`` and ``bf16`` as they are. Jobs record and compare the
    resolved value, so reference log-probs computed under ``auto`` on a GPU are bf16 ones."""
    if autocast not in AUTOCAST:
        raise ValueError(f"autocast {autocast!r}: expected one of {AUTOCAST}")
    if autocast != "auto":
        return autocast
    cuda = torch.device(device).type == "cuda" and torch.cuda.is_available()
    return "bf16" if cuda and torch.cuda.is_bf16_supported(including_emulation=False) else "none"


def precision(autocast: str, device: str | torch.device):
    """The context every forward of policy and reference runs in: ``none`` (fp32, no context), ``bf16``
    (``torch.autocast`` to bfloat16 on ``device``'s type; the LM head stays fp32, see above) or ``auto``
    (``resolve_autocast``)."""
    if resolve_autocast(autocast, device) == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fp32_head(head: torch.nn.Linear, hidden: Tensor) -> Tensor:
    """``head(hidden)`` in fp32 whatever autocast is active: (M, d) -> (M, V). In fp32 without
    autocast this is the same ``linear`` call on the same tensors as ``head(hidden)``."""
    bias = None if head.bias is None else head.bias.float()
    with torch.autocast(device_type=hidden.device.type, enabled=False), ieee_fp32(hidden.device):
        return F.linear(hidden.float(), head.weight.float(), bias)


@contextlib.contextmanager
def ieee_fp32(device: torch.device):
    """Full fp32 matmuls inside the block on CUDA, where ``p2o.model.loading`` allows TF32 elsewhere (TF32
    keeps 10 mantissa bits): the head's logits stay true fp32. Nothing changes on the CPU."""
    if device.type != "cuda":
        yield
        return
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def response_logits(model, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
    """Logits at the positions that predict response tokens.

    Returns ``logits`` (M, V) in fp32 (computed in fp32 by the head, under autocast too),
    ``labels`` (M,) the predicted response tokens and ``rows`` (M,) the batch row of each.
    """
    predicts_response = batch.response_mask[:, 1:]  # (N, T-1): position t predicts token t+1
    labels = batch.input_ids[:, 1:][predicts_response]
    rows = predicts_response.nonzero()[:, 0]
    kwargs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                  position_ids=batch.position_ids, use_cache=False)
    if model.config.model_type in HEAD_ONLY_MODEL_TYPES:
        hidden = model.base_model(**kwargs).last_hidden_state  # (N, T, d)
        logits = fp32_head(model.get_output_embeddings(), hidden[:, :-1][predicts_response])  # (M, V)
    else:
        logits = model(**kwargs).logits[:, :-1][predicts_response]
    return logits.float(), labels, rows


def token_logps(logits: Tensor, labels: Tensor) -> Tensor:
    """log softmax(logits)[label] for each row of (M, V) logits."""
    return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


def sequence_logps(model, batch: SequenceBatch) -> tuple[Tensor, Tensor]:
    """Sum of response-token log-probs per row (N,) and response token counts (N,)."""
    logits, labels, rows = response_logits(model, batch)
    lp = token_logps(logits, labels)
    sums = lp.new_zeros(batch.input_ids.shape[0]).index_add(0, rows, lp)
    return sums, batch.response_mask.sum(-1).to(sums.dtype)


def pair_logps(model, batch: PairBatch) -> PairLogps:
    """PairLogps of a batch from one forward over its 2B rows (chosen rows first)."""
    sums, counts = sequence_logps(model, batch.pairs)
    b = batch.index.shape[0]
    return PairLogps.from_sums(sums[:b], sums[b:], counts[:b], counts[b:])


def token_kl(policy_logits: Tensor, reference_logits: Tensor) -> Tensor:
    """Exact KL(π ‖ π_ref) over the vocabulary at each position: (M, V), (M, V) → (M,)."""
    logp = policy_logits.log_softmax(-1)
    logq = reference_logits.log_softmax(-1)
    return (logp.exp() * (logp - logq)).sum(-1)


@dataclass(frozen=True)
class ReferenceDistribution:
    """The reference model's next-token distributions at a batch's M response-predicting positions
    (no gradient): ``logits`` (M, V) fp32, their ``logsumexp`` (M,), ``probs`` = softmax (M, V), and
    ``pair_logps``, the reference's PairLogps of the batch from the same forward."""

    logits: Tensor
    logsumexp: Tensor
    probs: Tensor
    pair_logps: PairLogps


@torch.no_grad()
def reference_distribution(reference_model, batch: PairBatch) -> ReferenceDistribution:
    """One forward of the (frozen) reference model over the batch's 2B rows; see ``ReferenceDistribution``."""
    logits, labels, rows = response_logits(reference_model, batch.pairs)
    lse = logits.logsumexp(-1)
    lp = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - lse
    return ReferenceDistribution(logits, lse, (logits - lse.unsqueeze(-1)).exp(), _pair_sums(lp, rows, batch))


def _pair_sums(per_token: Tensor, rows: Tensor, batch: PairBatch) -> PairLogps:
    sums = per_token.new_zeros(batch.pairs.input_ids.shape[0]).index_add(0, rows, per_token)
    counts = batch.pairs.response_mask.sum(-1).to(sums.dtype)
    b = batch.index.shape[0]
    return PairLogps.from_sums(sums[:b], sums[b:], counts[:b], counts[b:])


@dataclass(frozen=True)
class PolicyForward:
    """One forward of the policy at a batch's M response-predicting positions, kept so that every
    quantity of a training step reads the same logits: ``logits`` (M, V) fp32, ``labels`` (M,),
    ``rows`` (M,) and ``logsumexp`` (M,)."""

    logits: Tensor
    labels: Tensor
    rows: Tensor
    logsumexp: Tensor

    @classmethod
    def of(cls, model, batch: PairBatch) -> PolicyForward:
        logits, labels, rows = response_logits(model, batch.pairs)
        return cls(logits, labels, rows, logits.logsumexp(-1))

    def pair_logps(self, batch: PairBatch) -> PairLogps:
        """The policy's PairLogps of the batch (the same numbers as ``pair_logps``)."""
        token = self.logits.gather(-1, self.labels.unsqueeze(-1)).squeeze(-1) - self.logsumexp
        return _pair_sums(token, self.rows, batch)

    def seq_kl(self, reference: ReferenceDistribution, batch: PairBatch) -> tuple[Tensor, Tensor]:
        """D_SeqKL(x, y; π_ref ‖ π) = Σ_t KL(π_ref(·|x, y_<t) ‖ π(·|x, y_<t)) of each response, as
        ``(chosen, rejected)`` (B,) tensors with the policy's gradient.

        Per position, with z, z_r the policy and reference logits and q = softmax(z_r):
        KL(q ‖ softmax(z)) = Σ_v q_v (z_r,v − z_v) + logsumexp(z) − logsumexp(z_r), which reuses the
        policy's logsumexp and takes the difference of the logits before weighting, so identical logits
        give exactly 0.
        """
        kl = (reference.probs * (reference.logits - self.logits)).sum(-1) + self.logsumexp - reference.logsumexp
        seq_kl = _pair_sums(kl, self.rows, batch)
        return seq_kl.chosen, seq_kl.rejected


def pair_logps_with_seq_kl(model, reference, batch: PairBatch) -> tuple[PairLogps, tuple[Tensor, Tensor],
                                                                        ReferenceDistribution]:
    """TDPO's inputs from one policy forward: the policy's PairLogps and ``PolicyForward.seq_kl``.

    ``reference`` is the reference model, run here under ``no_grad`` on the same (2B, T) batch, or the
    ``ReferenceDistribution`` of this batch from an earlier call (K inner steps on one batch need the
    reference forward once); it is returned as the third value. Both heads are applied at the M
    response-predicting positions only (``response_logits``), the policy's once. Extra memory over
    ``pair_logps``: the reference's (M, V) logits and q.
    """
    if not isinstance(reference, ReferenceDistribution):
        reference = reference_distribution(reference, batch)
    forward = PolicyForward.of(model, batch)
    return forward.pair_logps(batch), forward.seq_kl(reference, batch), reference
