"""Run TRL's own loss code (the pinned trl==1.16.0) on given per-token log-probs.

TRL 1.16 has no standalone loss function: ``DPOTrainer._compute_loss`` and
``KTOTrainer._compute_loss`` call the model and then compute the loss. We call those methods
unbound, with a stand-in ``self`` holding the trainer attributes they read and a stand-in model
that returns the given per-token log-probs (zero off the completion), so the arithmetic that
produces the loss is TRL's, line for line.

The reference-free trainers (``CPOTrainer`` for SimPO, ``ORPOTrainer``; ``trl.experimental`` in
TRL 1.x) read logits, not log-probs: their ``get_batch_loss_metrics`` runs TRL's own
``concatenated_inputs``, ``get_batch_logps``, NLL and loss on a stand-in model whose two-token
logits [x, log(1 − eˣ)] have log-softmax x at the label token, x being the given log-prob.
"""

from __future__ import annotations

import collections
import types
import warnings

import torch

trl = __import__("pytest").importorskip("trl", reason="the TRL oracle needs the test extra: pip install -e '.[test]'")
from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402 - after the skip
from trl.trainer.kto_trainer import KTOTrainer  # noqa: E402

with warnings.catch_warnings():  # "You are importing from 'trl.experimental'"
    warnings.simplefilter("ignore")
    from trl.experimental.cpo.cpo_trainer import CPOTrainer
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer


class _Accelerator:
    device = torch.device("cpu")

    def gather(self, x):
        return x

    def gather_for_metrics(self, x):
        return x


def _model(outputs_by_input: dict[int, torch.Tensor]):
    def model(**kw):
        log_probs = outputs_by_input[id(kw["input_ids"])]
        zeros = torch.zeros_like(log_probs.detach())
        return types.SimpleNamespace(log_probs=log_probs, entropy=zeros, mean_logits=zeros,
                                     is_top1=torch.zeros_like(zeros, dtype=torch.bool))

    model.training = True
    return model


def _self(model, **attrs):
    base = {"model": model, "accelerator": _Accelerator(), "precompute_ref_logps": True, "aux_loss_enabled": False,
            "_metrics": {"train": collections.defaultdict(list)}, "_total_train_tokens": 0, "_tp_size": 1}
    return types.SimpleNamespace(**base, **attrs)


def trl_dpo(per_token: torch.Tensor, completion_mask: torch.Tensor, ref_chosen: torch.Tensor,
            ref_rejected: torch.Tensor, beta: float, loss_type: str,
            label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    """``per_token``: (2B, T-1) log-probs of tokens 1..T-1, chosen rows first; mask: (2B, T)."""
    input_ids = torch.zeros_like(completion_mask)
    model = _model({id(input_ids): per_token})
    self = _self(model, ld_alpha=None, f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0],
                 beta=beta, use_weighting=False, label_smoothing=label_smoothing)
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(completion_mask),
              "completion_mask": completion_mask, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    loss = DPOTrainer._compute_loss(self, model, inputs, False)
    return loss, {k: v[-1] for k, v in self._metrics["train"].items()}


def trl_kto(per_token: torch.Tensor, completion_mask: torch.Tensor, ref_logps: torch.Tensor,
            kl_per_token: torch.Tensor, kl_mask: torch.Tensor, ref_kl_logps: torch.Tensor, beta: float,
            desirable_weight: float, undesirable_weight: float) -> tuple[torch.Tensor, dict]:
    """KTO on 2B unpaired rows: the first B desirable, the last B undesirable."""
    n = per_token.shape[0]
    input_ids, kl_ids = torch.zeros_like(completion_mask), torch.zeros_like(kl_mask)
    model = _model({id(input_ids): per_token, id(kl_ids): kl_per_token})
    self = _self(model, calculate_KL=True, loss_type="kto", beta=beta, desirable_weight=desirable_weight,
                 undesirable_weight=undesirable_weight)
    self._compute_kl_logps = types.MethodType(KTOTrainer._compute_kl_logps, self)
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(completion_mask),
              "completion_mask": completion_mask, "label": torch.tensor([True] * (n // 2) + [False] * (n // 2)),
              "KL_input_ids": kl_ids, "KL_attention_mask": torch.ones_like(kl_mask), "KL_completion_mask": kl_mask,
              "ref_logps": ref_logps, "ref_KL_logps": ref_kl_logps}
    loss = KTOTrainer._compute_loss(self, model, inputs, False)
    return loss, {k: v[-1] for k, v in self._metrics["train"].items()}


# --------------------------------------------------------------------------- reference-free trainers


def _logits_model(per_token: torch.Tensor, completion_mask: torch.Tensor):
    """A model returning (rows, T, 2) logits whose log-softmax at token 0 is ``per_token`` on the completion.

    Position t predicts token t + 1, as in TRL's shift; off the completion x = −1 (masked out by
    TRL, and finite so that no NaN reaches the gradient); the last position predicts nothing.
    """
    x = torch.where(completion_mask[:, 1:].bool(), per_token, torch.full_like(per_token.detach(), -1.0))
    x = torch.cat([x, torch.full_like(x[:, :1].detach(), -1.0)], dim=1)
    logits = torch.stack([x, torch.log(-torch.expm1(x))], dim=-1)

    def model(*args, **kwargs):
        return types.SimpleNamespace(logits=logits)

    return model


def _pair_batch(completion_mask: torch.Tensor) -> dict:
    """TRL's tokenized pair batch: token 0 everywhere, labels −100 off the completion. The attention
    mask is the completion mask, so that ORPO's NLL (over attended tokens) covers the response only."""
    n = completion_mask.shape[0] // 2
    ids = torch.zeros_like(completion_mask)
    labels = torch.where(completion_mask.bool(), ids, torch.full_like(ids, -100))
    batch = {}
    for side, rows in (("chosen", slice(0, n)), ("rejected", slice(n, None))):
        batch.update({f"{side}_input_ids": ids[rows], f"{side}_attention_mask": completion_mask[rows],
                      f"{side}_labels": labels[rows]})
    return batch


def _reference_free_self(trainer, **attrs):
    self = types.SimpleNamespace(is_encoder_decoder=False, aux_loss_enabled=False, accelerator=_Accelerator(),
                                 pad_token_id=0, padding_value=0, **attrs)
    self.concatenated_inputs = trainer.concatenated_inputs  # static methods
    self.get_batch_logps = trainer.get_batch_logps
    self.concatenated_forward = types.MethodType(trainer.concatenated_forward, self)
    return self


def trl_cpo(per_token: torch.Tensor, completion_mask: torch.Tensor, beta: float, loss_type: str,
            simpo_gamma: float = 0.5, label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    """``CPOTrainer.get_batch_loss_metrics`` with ``cpo_alpha=0`` (no NLL term) and AlphaPO off."""
    self = _reference_free_self(CPOTrainer, cpo_alpha=0.0, alpha=0.0, loss_type=loss_type, beta=beta,
                                label_smoothing=label_smoothing, simpo_gamma=simpo_gamma)
    self.cpo_loss = types.MethodType(CPOTrainer.cpo_loss, self)
    return CPOTrainer.get_batch_loss_metrics(self, _logits_model(per_token, completion_mask),
                                             _pair_batch(completion_mask))


def trl_cpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, beta: float, loss_type: str,
                 label_smoothing: float = 0.0) -> torch.Tensor:
    """``CPOTrainer.cpo_loss`` alone, on whatever per-pair scores it is given (mean over pairs)."""
    self = types.SimpleNamespace(alpha=0.0, accelerator=_Accelerator(), loss_type=loss_type, beta=beta,
                                 label_smoothing=label_smoothing)
    losses, _, _ = CPOTrainer.cpo_loss(self, chosen, rejected)
    return losses.mean()


def trl_orpo(per_token: torch.Tensor, completion_mask: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict]:
    """``ORPOTrainer.get_batch_loss_metrics``; ``beta`` is ORPO's λ."""
    self = _reference_free_self(ORPOTrainer, beta=beta)
    self.odds_ratio_loss = types.MethodType(ORPOTrainer.odds_ratio_loss, self)
    return ORPOTrainer.get_batch_loss_metrics(self, _logits_model(per_token, completion_mask),
                                              _pair_batch(completion_mask))
