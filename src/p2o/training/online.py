"""Online RLHF on the shared loop: PPO, RTO, RLOO and regression RL against a proxy reward model.

A "batch" of the loop (``p2o.training.loop.train_loop``) is ``online.prompts_per_step`` pairs of a
prepared training split, in the loop's seeded order; their prompts are the rollout's. Prompts are not
deduplicated: a prompt with several pairs (SHP) is sampled once per pair, so prompts weigh as they do
in offline training and every rollout has the same size. Per batch, the three stages of OpenRLHF's
PPO trainer (openrlhf/trainer/ppo_utils/experience_maker.py) in order:

1. rollout: sample n responses per prompt from the current policy (``p2o.model.generate``, seeded per
   rollout, prompt and sample; n = 1 for ppo and rto, ``rloo.k`` for rloo, 2 for regression_rl), then,
   without gradient, the per-token log-probs of the policy, of the reference (the frozen SFT model) and,
   for RTO, of π_dpo, the critic's values (ppo, rto) and the proxy reward model's score of prompt +
   response (read at the response's last token, as it was trained);
2. ``p2o.training.experience.make_experience``: rewards (``compute_reward``: the clamped score at the
   last token, the KL penalty, RTO's dense term clamp(β₁·log(π_dpo/π_ref), −c, c)), then GAE (ppo,
   rto) or the leave-one-out baseline (rloo);
3. updates: ``ppo.ppo_epochs`` optimizer steps on the whole rollout (ppo, rto: PPO's clipped policy
   loss + vf_coef × the clipped value loss; Schulman et al. 2017, TRL's PPOTrainer), ``rloo.ppo_epochs``
   of RLOO's loss (Ahmadian et al. 2024, TRL's RLOOTrainer), or one step of regression RL (Shi et al.
   2025: β·(log-ratio margin) regressed onto the proxy's margin of the prompt's two samples).

Actor and critic are one ``ActorCritic`` module (``p2o.training.actor_critic``), so the loop's one
optimizer, checkpoint and fingerprint cover both. Sampling uses its own per-sample generators, seeded
by (seed, rollout number, prompt id, sample): the rollout number is a buffer of the module, so a run
resumed from a checkpoint samples what the uninterrupted run did. Metrics carry TRL's names
(``objective/kl``, ``objective/scores``, ``objective/rlhf_reward``, ``objective/non_score_reward``,
``objective/entropy``, ``policy/clipfrac_avg``, ``loss/value_avg``, ``val/num_eos_tokens``, ...).
Online DPO is not trained here: its iterations are the workflow's generate → label → train chains.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch
from torch import Tensor

from p2o.config import OptimConfig
from p2o.config.online import OnlineConfig
from p2o.io import JsonlLog
from p2o.job_code import entry_of
from p2o.losses.masked import masked_sum
from p2o.losses.ppo import policy_loss, value_loss
from p2o.losses.rloo import regression_rl, rloo_loss
from p2o.losses.token_rewards import approx_kl, dense_dpo_reward
from p2o.model.generate import EncodedPrompts, SamplingParams, generate, model_max_positions
from p2o.model.logps import precision
from p2o.model.tokenize import SequenceBatch, TokenizedSplit, pad_sequences
from p2o.training.actor_critic import ActorCritic, action_mask_of, per_token_logps
from p2o.training.compute import Compute
from p2o.training.experience import Experience, ExperienceSettings, make_experience
from p2o.training.fingerprint import Fingerprint
from p2o.training.loop import StepOutput, train_loop

TRAINED_HERE = ("ppo", "rto", "rloo", "regression_rl")  # online_dpo: the workflow's iterations
WITH_CRITIC = ("ppo", "rto")


def method_plan(method: str, online: OnlineConfig) -> tuple[ExperienceSettings, int, int]:
    """(how rewards and advantages are built, responses per prompt, optimizer steps per rollout)."""
    ppo = online.ppo
    if method in WITH_CRITIC:
        settings = ExperienceSettings("gae", ppo.kl_coef, ppo.kl_estimator, missing_eos_penalty=ppo.missing_eos_penalty,
                                      gamma=ppo.gamma, lam=ppo.lam, whiten=ppo.whiten)
        if method == "rto":
            settings = replace(settings, kl_coef=online.rto.kl_coef, dense_beta=online.rto.beta1,
                               dense_clip=online.rto.dense_clip)
        return settings, 1, ppo.ppo_epochs
    if method == "rloo":
        r = online.rloo
        return (ExperienceSettings("rloo", r.kl_coef, "k1", whiten=r.normalize_advantage, samples_per_prompt=r.k),
                r.k, r.ppo_epochs)
    if method == "regression_rl":  # rewards only for the logged objective: the loss reads the raw scores
        return ExperienceSettings("rloo", 0.0, "k1", whiten=False, samples_per_prompt=2), 2, 1
    raise ValueError(f"online method {method!r} is not trained by p2o.training.online (one of {TRAINED_HERE}); "
                     f"online_dpo runs as the workflow's sample-label-train iterations")


def online_optim(optim: OptimConfig, online: OnlineConfig) -> OptimConfig:
    """The loop's optimiser settings: ``optim`` (train) with the online batch, epochs and learning rate."""
    return replace(optim, batch_size=online.prompts_per_step, epochs=online.epochs, lr=online.lr_of(optim.lr))


def rollout_seed(seed: int, rollout: int) -> int:
    """The sampling seed of rollout number ``rollout`` (``p2o.model.generate.sample_seed`` mixes in the
    prompt id and sample index)."""
    return seed * 1_000_003 + rollout


class OnlineTrainer:
    """One method's rollouts and updates; ``batch_steps`` is what ``train_loop`` calls."""

    def __init__(self, model: ActorCritic, method: str, online: OnlineConfig, optim: OptimConfig, seed: int,
                 tokenizer, reference, proxy, dpo=None, device: str = "cpu"):
        self.settings, self.samples, self.steps = method_plan(method, online)
        if (method in WITH_CRITIC) != (model.critic is not None):
            raise ValueError(f"{method}: {'needs' if method in WITH_CRITIC else 'takes no'} critic")
        if (method == "rto") != (dpo is not None):
            raise ValueError(f"{method}: π_dpo is {'needed' if method == 'rto' else 'read by rto only'}")
        self.model, self.method, self.online, self.optim, self.seed = model, method, online, optim, seed
        self.tokenizer, self.reference, self.proxy, self.dpo, self.device = tokenizer, reference, proxy, dpo, device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        for frozen in (reference, proxy, dpo):
            if frozen is not None:
                frozen.eval().requires_grad_(False)
        limit = model_max_positions(model.actor)
        self.prompt_budget = None if limit is None else limit - online.max_new_tokens
        if self.prompt_budget is not None and self.prompt_budget < 1:
            raise ValueError(f"online.max_new_tokens = {online.max_new_tokens} leaves no room for a prompt in the "
                             f"model's {limit} positions")

    # ------------------------------------------------------------------ counters kept in the module

    def work(self) -> Compute:
        return Compute(*(int(v) for v in self.model.work.tolist()))

    def _count(self, c: Compute) -> None:
        self.model.work.copy_(torch.tensor([getattr(c, f.name) for f in fields(Compute)]))

    # ------------------------------------------------------------------ 1-2: rollout and experience

    def sample(self, split: TokenizedSplit, index: Sequence[int]) -> tuple[SequenceBatch, Tensor, Compute]:
        """The rollout's sequences (prompt-major: rows p·n … p·n + n − 1 answer prompt p), EOS flags."""
        budget = self.prompt_budget
        prompts = [split.prompt[i] if budget is None else split.prompt[i][-budget:] for i in index]
        encoded = EncodedPrompts([split.ids[i] for i in index], [""] * len(index), prompts, "dataset")
        on = self.online
        params = SamplingParams(on.max_new_tokens, on.temperature, on.top_p, self.samples,
                                rollout_seed(self.seed, int(self.model.rollouts)), len(index) * self.samples)
        samples = generate(self.model.actor, self.tokenizer, encoded, params, self.device, self.optim.autocast)
        self.model.rollouts += 1
        rows = [prompts[j // self.samples] for j in range(len(samples))]
        batch = pad_sequences(rows, [s.token_ids for s in samples], self.pad_id).to(self.device)
        ended = torch.tensor([s.eos for s in samples], device=self.device)
        lengths = batch.response_mask.sum(-1)  # (B,) sampled tokens per row
        generated = int(lengths.sum())
        c = self.work()
        c.forward_passes += int(lengths.max())  # decode steps, each one batch forward
        c.forward_tokens += batch.n_tokens - len(samples)  # the prompt once, every sampled token but the last
        c.forward_head_tokens += generated
        c.generated_tokens += generated
        return batch, ended, c

    @torch.no_grad()
    def experience(self, split: TokenizedSplit, index: Sequence[int]) -> tuple[Experience, SequenceBatch, dict]:
        """Sample, score and compute every per-token tensor once; ``make_experience``; rollout metrics."""
        batch, ended, c = self.sample(split, index)
        mask, temperature, m = action_mask_of(batch), self.online.temperature, self.model
        tokens, actions = batch.n_tokens, int(mask.sum())
        m.eval()  # actor and critic: the rollout's tensors are targets, without dropout
        with precision(self.optim.autocast, self.device):
            old = per_token_logps(m.actor, batch, temperature)
            ref = per_token_logps(self.reference, batch, temperature)
            dpo = None if self.dpo is None else per_token_logps(self.dpo, batch, temperature)
            values = None if m.critic is None else m.critic(batch)
            scores = self.proxy(batch).float()  # (B,) at each row's last real token: the response's last
        c.add(tokens, actions)  # the policy
        c.add(tokens, actions)  # the reference
        if dpo is not None:
            c.add(tokens, actions)
        c.add(tokens)  # the proxy: a body without the LM head
        if values is not None:
            c.add(tokens)  # the critic
        self._count(c)
        s = self.settings
        exp = make_experience(batch.input_ids, batch.attention_mask, mask, old, ref, scores, s, values, ended, dpo)
        kl = approx_kl(old, ref, mask, "k1")
        metrics = {
            "objective/scores": scores.mean(),
            "objective/kl": masked_sum(kl, mask, -1).mean(),
            "objective/entropy": -masked_sum(old, mask, -1).mean(),
            "objective/non_score_reward": (-s.kl_coef * masked_sum(approx_kl(old, ref, mask, s.kl_estimator), mask,
                                                                   -1)).mean(),
            "objective/rlhf_reward": masked_sum(exp.rewards, mask, -1).mean(),
            "val/num_eos_tokens": ended.float().sum(),
            "val/response_length": mask.sum(-1).mean(),
        }
        if dpo is not None:
            dense = dense_dpo_reward(dpo, ref, mask, s.dense_beta, s.dense_clip)
            metrics["rto/dense_reward"] = masked_sum(dense, mask, -1).mean()
        if values is not None:
            metrics["val/values"] = masked_sum(values, mask).div(mask.sum().clamp(min=1))
        return exp, batch, metrics

    # ------------------------------------------------------------------ 3: updates

    def update_loss(self, exp: Experience, batch: SequenceBatch) -> tuple[Tensor, dict]:
        """One update's loss on the rollout, with the actor's (and critic's) gradient."""
        m, mask, on = self.model, exp.action_mask, self.online
        logps = per_token_logps(m.actor, batch, on.temperature)
        c = self.work()
        c.optimizer_steps += 1
        c.add(batch.n_tokens, int(mask.sum()), backward=True)
        if self.method in WITH_CRITIC:
            c.add(batch.n_tokens, backward=True)
            self._count(c)
            p_loss, metrics = policy_loss(logps, exp.old_logps, exp.advantages, mask, on.ppo.clip)
            v_loss, v_metrics = value_loss(m.critic(batch), exp.values, exp.returns, mask, on.ppo.value_clip)
            return p_loss + on.ppo.vf_coef * v_loss, {**metrics, **v_metrics}
        self._count(c)
        if self.method == "rloo":
            return rloo_loss(logps, exp.old_logps, exp.sequence_advantages(), mask, on.rloo.clip)
        seq, ref = masked_sum(logps, mask, -1), masked_sum(exp.ref_logps, mask, -1)  # (2P,) prompt-major
        return regression_rl(seq[0::2], seq[1::2], ref[0::2], ref[1::2], exp.scores[0::2], exp.scores[1::2],
                             on.regression_rl.beta)

    def batch_steps(self, split: TokenizedSplit, index: list[int]) -> Iterator[StepOutput]:
        exp, batch, rollout = self.experience(split, index)
        self.model.train(self.optim.dropout)
        for epoch in range(self.steps):
            with precision(self.optim.autocast, self.device):
                loss, metrics = self.update_loss(exp, batch)
            yield StepOutput(loss, batch.n_tokens, {**rollout, **metrics}, {"update_epoch": epoch})


def train_online(model: ActorCritic, method: str, splits: Sequence[TokenizedSplit], online: OnlineConfig,
                 optim: OptimConfig, seed: int, tokenizer, reference, proxy, dpo=None, log: JsonlLog | None = None,
                 device: str = "cpu", checkpoint: str | Path | None = None, run: Fingerprint | None = None) -> dict:
    """Train ``model`` (actor and, for ppo/rto, critic) online with ``method`` on the prompts of ``splits``.

    ``optim`` is ``train``'s section; the loop runs it with ``online.prompts_per_step`` prompts per batch,
    ``online.epochs`` and ``online.lr`` (``online_optim``), ``steps_per_batch`` optimizer steps per rollout.
    ``reference`` (the SFT model), ``proxy`` (a ``RewardModel``) and ``dpo`` (π_dpo, rto only) stay frozen.
    Returns the loop's result plus ``compute``, the ``Compute`` counts of the whole run (generation,
    every forward and backward, the critic's included), kept in the module so they survive a resume.
    """
    torch.manual_seed(seed)
    trainer = OnlineTrainer(model, method, online, optim, seed, tokenizer, reference, proxy, dpo, device)
    cfg = online_optim(optim, online)
    run = (run or Fingerprint()).extend(
        {"job": "online", "method": method, "online": asdict(online)},
        code=[entry_of(train_online), entry_of(OnlineTrainer), entry_of(make_experience)])
    result = train_loop(model, splits, cfg, seed, trainer.batch_steps, run=run, desc=f"online {method}",
                        steps_per_batch=trainer.steps, log=log, checkpoint=checkpoint)
    return {**result, "compute": trainer.work()}
