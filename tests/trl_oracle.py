"""Run TRL's own loss code (the pinned trl==1.16.0) on given per-token log-probs.

TRL 1.16 has no standalone loss function: ``DPOTrainer._compute_loss`` and
``KTOTrainer._compute_loss`` call the model and then compute the loss. We call those methods
unbound, with a stand-in ``self`` holding the trainer attributes they read and a stand-in model
that returns the given per-token log-probs (zero off the completion), so the arithmetic that
produces the loss is TRL's, line for line.
"""

from __future__ import annotations

import collections
import types

import torch

trl = __import__("pytest").importorskip("trl", reason="the TRL oracle needs the test extra: pip install -e '.[test]'")
from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402
from trl.trainer.kto_trainer import KTOTrainer  # noqa: E402


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
    base = dict(model=model, accelerator=_Accelerator(), precompute_ref_logps=True, aux_loss_enabled=False,
                _metrics={"train": collections.defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    return types.SimpleNamespace(**base, **attrs)


def trl_dpo(per_token: torch.Tensor, completion_mask: torch.Tensor, ref_chosen: torch.Tensor,
            ref_rejected: torch.Tensor, beta: float, loss_type: str) -> tuple[torch.Tensor, dict]:
    """``per_token``: (2B, T-1) log-probs of tokens 1..T-1, chosen rows first; mask: (2B, T)."""
    input_ids = torch.zeros_like(completion_mask)
    model = _model({id(input_ids): per_token})
    self = _self(model, ld_alpha=None, f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0],
                 beta=beta, use_weighting=False, label_smoothing=0.0)
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
