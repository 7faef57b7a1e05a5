"""The online trainer on a tiny model: a planted preference is learnt, RTO's dense reward enters (and is
PPO's reward when π_dpo is the reference), per-token tensors match a naive computation, a crashed run
resumes to the uninterrupted one, and the work is counted."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from transformers import GPT2Model

from p2o.config import ModelConfig, OptimConfig, TinyModelConfig, TokenizeConfig
from p2o.config.online import OnlineConfig, PPOConfig, RTOConfig
from p2o.model.generate import EncodedPrompts, SamplingParams, generate
from p2o.model.loading import build_tiny_model, train_bpe_tokenizer
from p2o.model.tokenize import pad_sequences, tokenize_pairs
from p2o.training.actor_critic import ActorCritic, Critic
from p2o.training.online import OnlineTrainer, method_plan, train_online
from tiny_models import TOPICS

pytestmark = pytest.mark.filterwarnings("ignore")
ONLINE = OnlineConfig(prompts_per_step=4, max_new_tokens=8, epochs=4)
OPTIM = OptimConfig(lr=1e-2, warmup_ratio=0.0)


class EvenTokens(torch.nn.Module):
    """A planted proxy reward: 4 × (share of the response's tokens with an even id) − 2, in [−2, 2]."""

    calls = 0

    def forward(self, batch):
        self.calls += 1
        even = (batch.input_ids % 2 == 0).float() * batch.response_mask
        return 4 * even.sum(-1) / batch.response_mask.sum(-1).clamp(min=1) - 2


class Crash(RuntimeError):
    pass


class CrashingProxy(EvenTokens):
    """Fails at its ``at``-th call, as a killed job stops mid-run."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def forward(self, batch):
        if self.calls + 1 == self.at:
            raise Crash
        return super().forward(batch)


@pytest.fixture(scope="module")
def task():
    prompts = [f"\n\nHuman: Tell me about {t}.\n\nAssistant:" for t in TOPICS]
    chosen = [f" {t.capitalize()} is lovely; here is a clear answer about {t}." for t in TOPICS]
    tok = train_bpe_tokenizer(prompts + chosen + [" No."], vocab_size=300)
    sft = build_tiny_model(ModelConfig(tiny=TinyModelConfig(n_layer=1, n_head=2, n_embd=32, n_positions=64)), tok, 0)
    split = tokenize_pairs(tok, "hh", [f"hh{i}" for i in range(8)], prompts, chosen, [" No."] * 8,
                           TokenizeConfig(64, 32))
    return tok, sft, split


def actor_critic(sft, method: str) -> ActorCritic:
    """A fresh copy of the SFT model, and for ppo/rto a critic: its body and a zero value head."""
    critic = None
    if method in ("ppo", "rto"):
        body = GPT2Model(sft.config)
        body.load_state_dict(sft.transformer.state_dict())
        critic = Critic(body, torch.nn.Linear(sft.config.n_embd, 1, bias=False))
        torch.nn.init.zeros_(critic.head.weight)
    return ActorCritic(copy.deepcopy(sft).requires_grad_(True), critic)  # the fixture's model may have been frozen


def planted_reward(task, actor) -> float:
    """Mean planted reward of 8 samples per prompt (its own seed), the policy's tendency."""
    tok, _, split = task
    samples = generate(actor, tok, EncodedPrompts(split.ids, [""] * 8, split.prompt, "dataset"),
                       SamplingParams(8, n_samples=8, seed=123, batch_size=64))
    batch = pad_sequences([split.prompt[split.ids.index(s.prompt_id)] for s in samples],
                          [s.token_ids for s in samples], tok.pad_token_id)
    return EvenTokens()(batch).mean().item()


@pytest.mark.parametrize("method", ["ppo", "rloo", "regression_rl", "rto"])
def test_a_few_steps_raise_the_planted_reward(task, method):
    tok, sft, split = task
    model = actor_critic(sft, method)
    before = planted_reward(task, model.actor)
    dpo = copy.deepcopy(sft) if method == "rto" else None
    result = train_online(model, method, [split], ONLINE, OPTIM, 0, tok, copy.deepcopy(sft), EvenTokens(), dpo)
    after = planted_reward(task, model.actor)
    assert after > before + 0.15, (before, after)
    assert result["steps"] == 8 * method_plan(method, ONLINE)[2]  # 2 batches of 4 prompts × 4 epochs
    loss_key = "loss/regression_avg" if method == "regression_rl" else "policy/clipfrac_avg"
    for key in ("objective/kl", "objective/scores", "objective/rlhf_reward", "val/num_eos_tokens", loss_key):
        assert key in result, key


def test_rto_with_pi_dpo_the_reference_is_ppo_with_rto_kl_coef(task):
    """The dense term β₁·log(π_dpo/π_ref) is 0 when π_dpo = π_ref: RTO trains exactly as PPO whose KL
    coefficient is RTO's."""
    tok, sft, split = task
    online = replace(ONLINE, epochs=1, rto=RTOConfig(kl_coef=0.2, beta1=1.0, dense_clip=1.0))
    rto, ppo = actor_critic(sft, "rto"), actor_critic(sft, "ppo")
    train_online(rto, "rto", [split], online, OPTIM, 0, tok, copy.deepcopy(sft), EvenTokens(), copy.deepcopy(sft))
    train_online(ppo, "ppo", [split], replace(online, ppo=PPOConfig(kl_coef=0.2)), OPTIM, 0, tok, copy.deepcopy(sft),
                 EvenTokens())
    for (name, a), b in zip(rto.state_dict().items(), ppo.state_dict().values()):
        assert name == "work" or torch.equal(a, b), name
    # RTO's work is PPO's and one more forward per rollout, π_dpo's
    # (fields: forward_passes 1, forward_head_tokens 4, generated_tokens 7; the head reads every sampled token)
    assert rto.work[1] - ppo.work[1] == 2 and rto.work[4] - ppo.work[4] == ppo.work[7]
    # and another kl_coef trains otherwise: the key is read
    other = actor_critic(sft, "ppo")
    train_online(other, "ppo", [split], replace(online, ppo=PPOConfig(kl_coef=0.0)), OPTIM, 0, tok, copy.deepcopy(sft),
                 EvenTokens())
    assert not torch.equal(other.actor.lm_head.weight, ppo.actor.lm_head.weight)


def naive_token_logps(model, prompt: list[int], response: list[int]) -> torch.Tensor:
    """log π(response token | prefix), one row through the whole model and a full log-softmax."""
    ids = torch.tensor([prompt + response])
    logp = model(ids).logits[0, :-1].log_softmax(-1)
    return logp[torch.arange(len(prompt) - 1, ids.shape[1] - 1), ids[0, len(prompt):]]


@torch.no_grad()
def test_rto_rewards_are_ppo_rewards_plus_the_clamped_dense_term(task):
    """On one rollout: RTO's per-token reward − PPO's (same KL coefficient) = clamp(β₁·(log π_dpo − log π_ref),
    −c, c) on the response tokens, with the log-probs computed one row at a time."""
    tok, sft, split = task
    dpo = copy.deepcopy(sft)
    for p in dpo.parameters():
        p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    online = replace(ONLINE, rto=RTOConfig(kl_coef=0.05, beta1=0.5, dense_clip=0.1), ppo=PPOConfig(kl_coef=0.05))
    rto = OnlineTrainer(actor_critic(sft, "rto"), "rto", online, OPTIM, 0, tok, sft, EvenTokens(), dpo)
    ppo = OnlineTrainer(actor_critic(sft, "ppo"), "ppo", online, OPTIM, 0, tok, sft, EvenTokens())
    index = [0, 3, 5]
    exp_rto, batch, metrics = rto.experience(split, index)
    exp_ppo, batch_ppo, _ = ppo.experience(split, index)
    assert torch.equal(batch.input_ids, batch_ppo.input_ids)  # the same seeded samples
    dense = exp_rto.rewards - exp_ppo.rewards
    clipped = 0
    for row, i in enumerate(index):
        mask = exp_rto.action_mask[row].bool()
        response = batch.input_ids[row, 1:][mask].tolist()
        naive = (0.5 * (naive_token_logps(dpo, split.prompt[i], response)
                        - naive_token_logps(sft, split.prompt[i], response))).clamp(-0.1, 0.1)
        torch.testing.assert_close(dense[row][mask], naive, atol=1e-5, rtol=1e-4)
        assert torch.all(dense[row][~mask] == 0)
        torch.testing.assert_close(exp_rto.old_logps[row][mask], naive_token_logps(sft, split.prompt[i], response),
                                   atol=1e-5, rtol=1e-4)
        clipped += int((naive.abs() == 0.1).sum())
    assert clipped > 0 and dense.abs().sum() > 0  # the clamp and the term both act
    torch.testing.assert_close(metrics["rto/dense_reward"], dense.sum(-1).mean(), atol=1e-5, rtol=1e-5)


def test_a_crashed_run_resumes_to_the_uninterrupted_one(task, tmp_path):
    tok, sft, split = task
    online, optim = replace(ONLINE, epochs=2), replace(OPTIM, checkpoint_every=2)
    whole = actor_critic(sft, "ppo")
    train_online(whole, "ppo", [split], online, optim, 0, tok, copy.deepcopy(sft), EvenTokens(),
                 checkpoint=tmp_path / "whole.pt")
    ckpt = tmp_path / "killed.pt"
    with pytest.raises(Crash):  # the third rollout's scoring fails: two batches (4 steps) are checkpointed
        train_online(actor_critic(sft, "ppo"), "ppo", [split], online, optim, 0, tok, copy.deepcopy(sft),
                     CrashingProxy(at=3), checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=False)["steps"] == 4
    resumed = actor_critic(sft, "ppo")
    result = train_online(resumed, "ppo", [split], online, optim, 0, tok, copy.deepcopy(sft), EvenTokens(),
                          checkpoint=ckpt)
    assert result["steps"] == 8 and not ckpt.exists()
    assert int(resumed.rollouts) == 4
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_work_is_counted(task):
    tok, sft, split = task
    online = replace(ONLINE, epochs=1)
    ppo, rloo = actor_critic(sft, "ppo"), actor_critic(sft, "rloo")
    c_ppo = train_online(ppo, "ppo", [split], online, OPTIM, 0, tok, copy.deepcopy(sft), EvenTokens())["compute"]
    c_rloo = train_online(rloo, "rloo", [split], online, OPTIM, 0, tok, copy.deepcopy(sft), EvenTokens())["compute"]
    assert c_ppo.optimizer_steps == 2 * 2 and c_ppo.backward_passes == 2 * c_ppo.optimizer_steps  # actor + critic
    assert c_rloo.optimizer_steps == 2 and c_rloo.backward_passes == 2
    assert 8 <= c_ppo.generated_tokens <= 8 * 8 and 16 <= c_rloo.generated_tokens <= 2 * 8 * 8  # k = 2 for rloo
    # an update's backward runs through actor and critic bodies, the LM head at the actor's response tokens only
    assert c_ppo.backward_head_tokens * 2 < c_ppo.backward_tokens
    assert c_ppo.forward_tokens > c_ppo.backward_tokens and c_ppo.forward_head_tokens > c_ppo.backward_head_tokens


def test_online_dpo_and_a_missing_critic_are_refused(task):
    tok, sft, _ = task
    with pytest.raises(ValueError, match="online_dpo runs as the workflow"):
        method_plan("online_dpo", ONLINE)
    with pytest.raises(ValueError, match="ppo: needs critic"):
        OnlineTrainer(actor_critic(sft, "rloo"), "ppo", ONLINE, OPTIM, 0, tok, sft, EvenTokens())
    with pytest.raises(ValueError, match="rto: π_dpo is needed"):
        OnlineTrainer(actor_critic(sft, "rto"), "rto", ONLINE, OPTIM, 0, tok, sft, EvenTokens())


def test_the_critic_starts_as_the_reward_model_and_trains(task):
    from p2o.training.reward_model import RewardModel

    _, sft, _ = task
    body = GPT2Model(sft.config)
    body.load_state_dict(sft.transformer.state_dict())
    proxy = RewardModel(body, seed=3).requires_grad_(False)
    critic = Critic.from_reward_model(proxy)
    assert torch.equal(critic.head.weight, proxy.head.weight) and critic.head.weight is not proxy.head.weight
    assert all(p.requires_grad for p in critic.parameters())
    assert torch.equal(critic.backbone.wte.weight, proxy.backbone.wte.weight)


@torch.no_grad()
def test_per_token_logps_are_the_tempered_log_softmax(task):
    from p2o.training.actor_critic import action_mask_of, per_token_logps

    tok, sft, split = task
    batch = pad_sequences(split.prompt[:3], split.chosen[:3], tok.pad_token_id)
    got, mask = per_token_logps(sft, batch, temperature=2.0), action_mask_of(batch)
    for row in range(3):
        ids = split.prompt[row] + split.chosen[row]
        logp = (sft(torch.tensor([ids])).logits[0, :-1] / 2.0).log_softmax(-1)
        start = len(split.prompt[row]) - 1
        naive = logp[torch.arange(start, len(ids) - 1), torch.tensor(ids[start + 1:])]
        torch.testing.assert_close(got[row][mask[row].bool()], naive, atol=1e-5, rtol=1e-5)
    assert torch.all(got[mask == 0] == 0)
