"""The ``online`` config section: online RLHF against the proxy reward model (``p2o.training.online``).

Each method has its own sub-section of hyper-parameters with the source's defaults: ``ppo`` (TRL's
PPOTrainer, OpenRLHF; GAE and clips as RTO's script), ``rto`` (Zhong et al. 2024, "DPO Meets PPO",
https://arxiv.org/abs/2404.18922: PPO whose reward adds the dense DPO term), ``rloo`` (Ahmadian et al.
2024; TRL's RLOOTrainer), ``regression_rl`` (Shi et al. 2025's "simple RL") and ``online_dpo`` (Shi et al.
2025's iterative online DPO; its iterations are rule chains of the workflow). ``proxy`` is the
Bradley–Terry reward model all of them optimise, trained on the training pairs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from p2o.config.fields import ConfigError, section, setting
from p2o.config.methods import is_registered_loss

ONLINE_METHODS = ("ppo", "rto", "rloo", "regression_rl", "online_dpo")
KL_ESTIMATORS = ("k1", "k3")


@dataclass
class PPOConfig:
    """PPO (Schulman et al. 2017) with a critic, GAE and a per-token KL penalty in the reward."""

    ppo_epochs: int = setting(2, "optimizer steps on each rollout, ppo and rto (TRL num_ppo_epochs: 4, OpenRLHF "
                                 "max_epochs: 1)", minimum=1)
    clip: float = setting(0.2, "ε of the clipped policy ratio 1 ± ε (RTO, TRL, OpenRLHF: 0.2)", exclusiveMinimum=0)
    value_clip: float = setting(0.2, "ε_v: the value is clipped to V_old ± ε_v in the value loss (RTO, OpenRLHF: "
                                     "0.2)", exclusiveMinimum=0)
    vf_coef: float = setting(0.1, "weight of the value loss in the actor-critic loss (TRL vf_coef: 0.1)", minimum=0)
    kl_coef: float = setting(0.05, "weight of the per-token KL penalty in the reward (TRL kl_coef: 0.05)", minimum=0)
    kl_estimator: str = setting("k1", "per-token KL estimator of the penalty: k1 = log r, k3 = 1/r − 1 + log r "
                                      "(Schulman 2020; OpenRLHF kl_estimator)", choices=KL_ESTIMATORS)
    gamma: float = setting(1.0, "GAE discount γ (RTO, TRL, OpenRLHF: 1)", minimum=0, maximum=1)
    lam: float = setting(0.95, "GAE λ (RTO, TRL, OpenRLHF: 0.95)", minimum=0, maximum=1)
    whiten: bool = setting(True, "whiten advantages over the rollout's response tokens (TRL, OpenRLHF: true)")
    missing_eos_penalty: float = setting(0.0, "subtracted from the proxy reward of a response that never reaches "
                                              "EOS, ppo and rto (TRL missing_eos_penalty; 0: none)", minimum=0)


@dataclass
class RTOConfig:
    """RTO: PPO with the dense token reward clamp(β₁·log(π_dpo/π_ref), −c, c) (the rest: ``ppo``)."""

    beta1: float = setting(0.05, "β₁ of the dense reward β₁·(log π_dpo − log π_ref) (RTO's script: 0.05)",
                           minimum=0)
    dense_clip: float = setting(0.05, "c: the dense token reward is clamped to [−c, c] (RTO's script: 0.05)",
                                minimum=0)
    kl_coef: float = setting(0.01, "weight of the per-token KL penalty in RTO's reward (RTO's script: 0.01)",
                             minimum=0)
    dpo_method: str = setting("dpo", "the methods entry (or a registered loss with its defaults) whose trained "
                                     "policy, from the same SFT model and seed, is π_dpo")


@dataclass
class RLOOConfig:
    """RLOO: REINFORCE with the leave-one-out baseline over k samples per prompt, KL in the reward."""

    k: int = setting(2, "responses sampled per prompt (TRL rloo_k: 2)", minimum=2)
    kl_coef: float = setting(0.05, "weight of the summed KL in the sequence reward (TRL RLOO kl_coef: 0.05)",
                             minimum=0)
    ppo_epochs: int = setting(1, "optimizer steps on each rollout, PPO-clipped after the first (TRL num_ppo_epochs: "
                                 "4; 1: plain REINFORCE)", minimum=1)
    clip: float = setting(0.2, "ε of the clipped sequence ratio (TRL cliprange: 0.2)", exclusiveMinimum=0)
    normalize_advantage: bool = setting(False, "whiten the advantages over the rollout (TRL normalize_advantage: "
                                               "false)")


@dataclass
class RegressionRLConfig:
    """Shi et al. 2025's "simple RL": β·(log-ratio margin) regressed onto the proxy's reward margin of two
    samples per prompt; one optimizer step per rollout."""

    beta: float = setting(0.1, "β, the KL scale of the implicit reward margin (as DPO's β: 0.1)", exclusiveMinimum=0)


@dataclass
class OnlineDPOConfig:
    """Iterative online DPO (Shi et al. 2025): per iteration, k samples per prompt from the current policy,
    best and worst by the proxy reward model, an offline loss trained on them."""

    iterations: int = setting(2, "sample-label-train rounds (Shi et al.: 2)", minimum=1)
    k: int = setting(2, "responses sampled per prompt; the pair is the proxy's best and worst (Shi et al.: 2)",
                     minimum=2)
    method: str = setting("dpo", "the methods entry or registered loss trained on the labelled pairs (p2o: online "
                                 "P²O)")
    reference: str = setting("sft", "the reference of each iteration: sft (Shi et al.) or previous (the last "
                                    "iteration's policy)", choices=("sft", "previous"))


@dataclass
class ProxyConfig:
    """The proxy reward model: Bradley–Terry on the training pairs, from the SFT model's body."""

    epochs: int = setting(2, "passes over the training pairs (the rest of the optimiser: train)", minimum=1)
    lr: float | None = setting(None, "peak learning rate (null: train.lr)", exclusiveMinimum=0)


@dataclass
class OnlineConfig:
    """Online methods: the policy samples its own responses, the proxy reward model scores them."""

    methods: list[str] = setting([], "online methods to run, a subset of ppo, rto, rloo, regression_rl, online_dpo "
                                     "([]: none)", unique=True)
    prompts_per_step: int = setting(8, "training prompts per rollout: each batch of the training splits' pairs gives "
                                       "its prompts (as train.batch_size: 8)", minimum=1)
    max_new_tokens: int = setting(64, "tokens per sampled response at most (the EOS included)", minimum=1)
    temperature: float = setting(1.0, "sampling temperature of the rollouts (1: the policy itself, which the "
                                      "log-prob ratios assume)", exclusiveMinimum=0)
    top_p: float = setting(1.0, "nucleus sampling of the rollouts (1: off, which the log-prob ratios assume)",
                           exclusiveMinimum=0, maximum=1)
    epochs: int = setting(1, "passes over the training prompts", minimum=1)
    lr: float | None = setting(None, "peak learning rate of actor and critic (null: train.lr)", exclusiveMinimum=0)
    ppo: PPOConfig = section(PPOConfig, "PPO, and RTO's PPO part")
    rto: RTOConfig = section(RTOConfig, "RTO's dense DPO reward")
    rloo: RLOOConfig = section(RLOOConfig, "RLOO")
    regression_rl: RegressionRLConfig = section(RegressionRLConfig, "Shi et al.'s simple RL")
    online_dpo: OnlineDPOConfig = section(OnlineDPOConfig, "iterative online DPO")
    proxy: ProxyConfig = section(ProxyConfig, "the proxy reward model the online methods optimise")

    def validate(self, key: str) -> None:
        for i, name in enumerate(self.methods):
            if name not in ONLINE_METHODS:
                raise ConfigError(f"config key '{key}.methods[{i}]': {name!r} is not one of {ONLINE_METHODS}")

    def check(self, cfg, key: str) -> None:
        """Cross-key rules against the whole ``Config`` ``cfg``: no online method is also an offline one; π_dpo and online DPO's loss are methods or registered
        losses; the prompt and the new tokens fit the tiny model."""
        for i, name in enumerate(self.methods):
            if name in cfg.methods:
                raise ConfigError(f"config key '{key}.methods[{i}]': {name!r} is also an offline method in "
                                  f"'methods'; their results would share a folder")
        for sub, name in (("rto.dpo_method", self.rto.dpo_method), ("online_dpo.method", self.online_dpo.method)):
            if name not in cfg.methods and not is_registered_loss(name):
                raise ConfigError(f"config key '{key}.{sub}': {name!r} is neither a method of 'methods' "
                                  f"({sorted(cfg.methods)}) nor a registered loss")
        tiny = cfg.model.tiny
        if self.methods and cfg.model.name_or_path == "tiny" and \
                cfg.tokenize.max_prompt_length + self.max_new_tokens > tiny.n_positions:
            raise ConfigError(f"config key '{key}.max_new_tokens': tokenize.max_prompt_length "
                              f"({cfg.tokenize.max_prompt_length}) + {self.max_new_tokens} exceeds "
                              f"model.tiny.n_positions ({tiny.n_positions})")

    def lr_of(self, train_lr: float) -> float:
        """The online peak learning rate: ``lr``, or ``train.lr`` when null."""
        return self.lr if self.lr is not None else train_lr

    def proxy_optim(self, train):
        """The proxy reward model's optimiser: ``train``'s (an ``OptimConfig``) with ``proxy.epochs``,
        ``proxy.lr`` (null: train.lr) and no held-out curves."""
        return dataclasses.replace(train, epochs=self.proxy.epochs, eval_every=0, lr=self.proxy.lr or train.lr)
