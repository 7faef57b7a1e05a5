"""The trained state of an online run as one module: the actor (the policy), the critic and counters.

``ActorCritic`` holds the policy (a causal LM), the critic (PPO and RTO: the proxy reward model's body
with a value head per token; ``None`` for RLOO and regression RL) and two buffers, the number of
rollouts made and the work done so far. Being one ``torch.nn.Module`` it gets the training loop's one
optimizer (actor and critic parameters in one AdamW, as TRL's PPOTrainer's ``PolicyAndValueWrapper``),
one checkpoint (both networks, and the counters, so a resumed run samples and counts as an uninterrupted
one) and one fingerprint. Only the actor is saved as the run's model.

Per-token tensors are ``(B, T − 1)`` over a right-padded batch of prompt + response rows
(``p2o.model.tokenize.pad_sequences``): position t holds what predicts token t + 1, so the action mask
is ``response_mask[:, 1:]`` and V(s_t) is read at the same position (OpenRLHF's critic:
``values[:, :-1]``).
"""

from __future__ import annotations

import copy
from dataclasses import fields

import torch
from torch import Tensor

from p2o.model.logps import response_logits, token_logps
from p2o.model.tokenize import SequenceBatch
from p2o.training.compute import Compute


def action_mask_of(batch: SequenceBatch) -> Tensor:
    """``(B, T − 1)`` float 0/1: the positions whose next token is a response token."""
    return batch.response_mask[:, 1:].float()


def per_token_logps(model, batch: SequenceBatch, temperature: float = 1.0) -> Tensor:
    """log π(a_t|s_t) of every response token, ``(B, T − 1)`` fp32, 0 off the action mask.

    The logits are divided by the sampling temperature first (TRL's PPOTrainer and RLOOTrainer:
    ``logits /= temperature``), so that at temperature ≠ 1 the ratios are those of the distribution
    sampled from; at 1 this is ``p2o.model.logps``'s log-prob, the LM head at the response positions only.
    """
    logits, labels, _ = response_logits(model, batch)  # (M, V), (M,)
    if temperature != 1.0:
        logits = logits / temperature
    out = logits.new_zeros(batch.response_mask[:, 1:].shape)
    out[batch.response_mask[:, 1:]] = token_logps(logits, labels)  # scatter back to (B, T − 1), no loop
    return out


class Critic(torch.nn.Module):
    """V(s_t): a transformer body and a linear value head d → 1 at every position."""

    def __init__(self, backbone, head: torch.nn.Linear):
        super().__init__()
        self.backbone, self.head = backbone, head

    @classmethod
    def from_reward_model(cls, reward_model) -> Critic:
        """A copy of the reward model's body and of its scalar head as the value head: the critic starts
        from the reward model, as RTO's and OpenRLHF's critics do (``critic_pretrain`` = the reward model)."""
        critic = cls(copy.deepcopy(reward_model.backbone), copy.deepcopy(reward_model.head))
        return critic.requires_grad_(True)  # trained, even when the reward model was frozen

    def forward(self, batch: SequenceBatch) -> Tensor:
        """Values ``(B, T − 1)`` fp32, 0 off the action mask."""
        hidden = self.backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids, use_cache=False).last_hidden_state  # (B, T, d)
        values = self.head(hidden[:, :-1].float()).squeeze(-1)  # (B, T − 1)
        return values * action_mask_of(batch)


class ActorCritic(torch.nn.Module):
    """``actor`` (the policy LM), ``critic`` (or ``None``) and the buffers ``rollouts`` (rollouts made)
    and ``work`` (the counters of ``p2o.training.compute.Compute``, in field order)."""

    def __init__(self, actor, critic: Critic | None = None):
        super().__init__()
        self.actor, self.critic = actor, critic
        device = next(actor.parameters()).device
        self.register_buffer("rollouts", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("work", torch.zeros(len(fields(Compute)), dtype=torch.long, device=device))
