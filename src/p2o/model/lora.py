"""LoRA adapters (Hu et al. 2021, https://arxiv.org/abs/2106.09685) through ``peft``.

A LoRA layer computes W·x + (α/r)·B·A·dropout(x) with W frozen and only A (r × d_in) and B (d_out × r)
trained; peft initialises B = 0, so the adapted model starts exactly at its base. ``add_lora`` wraps a
loaded causal LM with ``peft.get_peft_model`` (``model.lora``): the training code keeps reading the
transformers model itself (``PeftModel.get_base_model()``, the LoRA layers injected in place), and
``FrozenBase`` is that model's frozen base as a model of its own: every forward runs inside peft's
``disable_adapter()``. Preference training starts from the SFT model, so the frozen base *is* the
reference π_ref: TDPO's in-step reference and evaluation's exact KL read it without a second copy.

An adapter folder (``p2o.model.loading.save_adapter_model``) holds peft's ``adapter_config.json`` and adapter weights, the
tokenizer, and ``ADAPTER_FILE``: the base model's folder, relative to the adapter's, which
``p2o.model.loading.load_model`` follows.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from p2o.config import LoraConfig
from p2o.io import read_json

ADAPTER_FILE = "p2o_adapter.json"  # {"base_model": the base folder, relative to the adapter folder}
# the layers each model family adapts by default (peft matches names by suffix): GPT-2's fused
# attention projection and the attention and MLP output projections; Llama's attention projections
DEFAULT_TARGETS = {"gpt2": ("c_attn", "c_proj"), "llama": ("q_proj", "k_proj", "v_proj", "o_proj")}


def target_modules(model, cfg: LoraConfig) -> list[str]:
    """``model.lora.target_modules``, or the family's default (``DEFAULT_TARGETS``)."""
    if cfg.target_modules:
        return list(cfg.target_modules)
    family = model.config.model_type
    if family not in DEFAULT_TARGETS:
        raise ValueError(f"model type {family!r} has no default LoRA layers: set config key "
                         f"'model.lora.target_modules' (known defaults: {sorted(DEFAULT_TARGETS)})")
    return list(DEFAULT_TARGETS[family])


def add_lora(model, cfg: LoraConfig, seed: int = 0):
    """``peft.get_peft_model`` of ``model`` with rank ``cfg.r``: the returned ``PeftModel`` shares the
    weights of ``model``, which now carries the LoRA layers; only A and B require gradients. A's
    random init (peft's Kaiming-uniform) is drawn from ``seed``, leaving the global RNG as it was."""
    from peft import LoraConfig as PeftLoraConfig, get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    if cfg.r <= 0:
        raise ValueError("add_lora needs model.lora.r > 0")
    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, bias="none",
                              target_modules=target_modules(model, cfg), task_type="CAUSAL_LM",
                              fan_in_fan_out=model.config.model_type == "gpt2")  # GPT-2's Conv1D is (in, out)
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, peft_cfg)
    inner = peft_model.get_base_model()
    if isinstance(inner.get_output_embeddings(), BaseTunerLayer):  # log-probs apply the head's own weight
        raise ValueError("config key 'model.lora.target_modules' adapts the LM head, which p2o's log-probs read "
                         "directly: leave it out")
    return peft_model


@contextlib.contextmanager
def adapters_disabled(peft_model):
    """``peft_model.disable_adapter()`` in eval mode without gradient: the base model's forward. Leaves
    the model as it was: train mode and each weight's ``requires_grad`` (peft's context turns on the
    adapters' on leaving it, even of an adapter loaded frozen)."""
    inner = peft_model.get_base_model()
    training, flags = inner.training, [(p, p.requires_grad) for p in inner.parameters()]
    inner.eval()
    try:
        with peft_model.disable_adapter(), torch.no_grad():
            yield
    finally:
        inner.train(training)
        for p, flag in flags:
            p.requires_grad_(flag)


class FrozenBase:
    """The frozen base under a LoRA model, used where a reference model is (``p2o.model.logps``,
    ``p2o.model.evaluate``, ``p2o.model.judge``): calling it, or its ``base_model`` (the transformer
    body), runs the shared weights with the adapters disabled, no gradient, dropout off. ``eval`` and
    ``requires_grad_`` leave the policy's own state alone."""

    def __init__(self, peft_model):
        self.peft_model, self.model = peft_model, peft_model.get_base_model()

    def __call__(self, *args, **kwargs):
        with adapters_disabled(self.peft_model):
            return self.model(*args, **kwargs)

    @property
    def base_model(self):
        body = self.model.base_model

        def forward(*args, **kwargs):
            with adapters_disabled(self.peft_model):
                return body(*args, **kwargs)

        return forward

    @property
    def config(self):
        return self.model.config

    def get_output_embeddings(self):
        return self.model.get_output_embeddings()

    def eval(self) -> FrozenBase:
        return self

    def requires_grad_(self, requires_grad: bool = True) -> FrozenBase:
        return self


def is_adapter(path: str | Path) -> bool:
    """Whether ``path`` is a saved adapter folder (peft's ``adapter_config.json``)."""
    return (Path(path) / "adapter_config.json").is_file()


def adapter_base(path: str | Path) -> Path:
    """The base model folder of the adapter folder ``path`` (``ADAPTER_FILE``, relative to ``path``)."""
    record = Path(path) / ADAPTER_FILE
    if not record.exists():
        raise FileNotFoundError(f"{path} holds an adapter but no {ADAPTER_FILE} naming its base model")
    base = Path(os.path.normpath(Path(path) / read_json(record)["base_model"]))
    if not base.is_dir():
        raise FileNotFoundError(f"the adapter folder {path} adapts the model folder {base}, which is missing "
                                f"(the adapter names its base relative to itself: keep the two in place)")
    return base


def adapter_record(base: str | Path, final: str | Path) -> dict:
    """``ADAPTER_FILE``'s content: ``base`` relative to ``final``, where the adapter folder will end up."""
    return {"base_model": Path(os.path.relpath(Path(base).resolve(), Path(final).resolve())).as_posix()}


def load_adapter(base_model, path: str | Path, device: str = "cpu"):
    """``PeftModel.from_pretrained`` of the adapter folder ``path`` on ``base_model``, frozen."""
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(base_model, str(path), is_trainable=False)
    return peft_model.to(device)
