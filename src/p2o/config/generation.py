"""The config sections of judging models by what they generate: sampling (``generate``) and the gold judge
(``judge``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from p2o.config.fields import ConfigError, setting

SFT_BASELINE = "sft"  # the SFT model's name among the generating models (results/generate/sft/)
PLANTED_JUDGE = "planted"  # the demo's planted rule as the gold judge (p2o.model.planted)
TRAINED_JUDGE = "trained"  # a reward model the workflow trains on its own pool as the gold judge
DEMO_FILE_NAMES = ("hh.jsonl", "shp.jsonl", "ultrafeedback.jsonl")  # p2o.data.demo.DEMO_FILES, torch-free here


@dataclass
class GenerateConfig:
    """Sampling from every trained model and the SFT model on held-out prompts (``p2o.model.generate``),
    for the gold judge and the Monte-Carlo KL."""

    # rows decoded together: samples agree to float rounding at another batch size, so no rerun trigger
    RUN_ONLY: ClassVar[tuple[str, ...]] = ("batch_size",)

    n_prompts: int = setting(100, "held-out prompts per dataset, the first ones of the held-out split (distinct "
                                  "prompts, split order; fewer when the split has fewer)", minimum=1)
    n_samples: int = setting(1, "completions per prompt", minimum=1)
    max_new_tokens: int = setting(64, "tokens per completion at most (the EOS included); the prompt is cut from "
                                      "the left to tokenize.max_prompt_length and to the model's positions less "
                                      "this", minimum=1)
    temperature: float = setting(1.0, "softmax temperature (0: greedy); 1 with top_p 1 samples from the policy "
                                      "itself, so that the KL estimates are honest Monte-Carlo estimates",
                                 minimum=0)
    top_p: float = setting(1.0, "nucleus sampling: the smallest top set of mass >= top_p (1: off)",
                           exclusiveMinimum=0, maximum=1)
    seed: int = setting(0, "sampling seed; each (prompt, sample) draws from its own generator seeded by it, the "
                           "same for every model (common random numbers)", minimum=0)
    prompt_style: str = setting("dataset", "dataset (the prompt text as training read it) or chat (through the "
                                           "tokenizer's chat template, for a chat model)",
                                choices=("dataset", "chat"))
    batch_size: int = setting(16, "rows (prompt x sample) decoded together", minimum=1)


@dataclass
class JudgeConfig:
    """The gold judge of generated text: the demo's planted rule, a reward model the workflow trains on a
    pool of pairs no policy sees, or a reward model from the hub."""

    # texts scored together: scores agree to float rounding at another batch size, so no rerun trigger
    RUN_ONLY: ClassVar[tuple[str, ...]] = ("batch_size",)

    name: str = setting("OpenAssistant/reward-model-deberta-v3-large-v2",
                        "planted (the demo's planted rule; demo data only), trained (a Bradley-Terry reward model "
                        "the workflow trains on its own pool: judge.n_pairs) or a sequence-classification reward "
                        "model's hub id or local folder", nonempty=True)
    revision: str | None = setting(None, "hub revision of the reward model")
    batch_size: int = setting(16, "completions scored together (reward model)", minimum=1)
    n_pairs: int = setting(1000, "trained judge: pairs per dataset in its pool, whole prompts disjoint from every "
                                 "training and held-out split (and the reward-model experiment's pool); more than "
                                 "data.n_train, so the judge learns from more pairs than any policy", minimum=1)
    epochs: int = setting(2, "trained judge: passes over its pool (the rest of the optimiser: train)", minimum=1)
    lr: float | None = setting(None, "trained judge: peak learning rate (null: train.lr)", exclusiveMinimum=0)
    seed: int = setting(0, "trained judge: its head's initialisation and its data order", minimum=0)

    @property
    def neural(self) -> bool:
        """Whether the judge is a model (a GPU helps) rather than the planted rule."""
        return self.name != PLANTED_JUDGE

    @property
    def trained(self) -> bool:
        """Whether the workflow trains the judge (on ``n_pairs`` pairs per dataset of its own)."""
        return self.name == TRAINED_JUDGE

    def check(self, cfg, key: str) -> None:
        """The planted rule is the demo data's own labelling rule: on other data it means nothing; a
        trained judge learns from more pairs than any policy."""
        if self.trained and self.n_pairs <= cfg.data.n_train:
            raise ConfigError(f"config key '{key}.n_pairs': {self.n_pairs} pairs per dataset for the trained judge, "
                              f"but a gold judge must learn from more pairs than any policy (data.n_train = "
                              f"{cfg.data.n_train})")
        if self.name != PLANTED_JUDGE:
            return
        for name in cfg.data.names:
            source = cfg.data.datasets[name].source
            if source.replace("\\", "/").rsplit("/", 1)[-1] not in DEMO_FILE_NAMES:
                raise ConfigError(f"config key '{key}.name': 'planted' judges only the demo data (the rule the "
                                  f"demo's pairs were labelled by), but dataset {name!r} reads {source!r}; name a "
                                  f"reward model instead")
