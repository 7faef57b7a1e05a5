"""One function per pipeline stage, with every input and output named explicitly.

The ``p2o`` CLI and the Snakemake rules' scripts are thin layers over these: they only decide
paths. Each job takes the config *sections* it depends on (not the whole config), so that a
workflow rule's ``params`` can list exactly what its job reads.

    download       dataset section (hub id or local file) -> its raw rows as one local JSONL file, and
                   its source record (the hub commit read, or the local file's sha256)
    init_model     model section + train splits           -> base model folder
    sft            base model + train splits              -> SFT (reference) model folder, log
    reference      SFT model + one split                  -> reference log-probs file
    train          SFT model + train splits + references  -> trained model folder, log, summary
    evaluate       policy + SFT model + eval splits       -> one metrics JSON per split

Sampling and judging by what the models generate: ``p2o.stages.generation``.

Reference, train and evaluate run every forward at one precision, ``train.autocast`` (passed to
``reference`` and ``evaluate`` as ``autocast``; see ``p2o.model.logps``), so that the policy's
log-probs equal the reference's before any update.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from p2o.config import (DatasetConfig, EvalConfig, LoraConfig, ModelConfig, OptimConfig,
                        TokenizeConfig)
from p2o.io import JsonlLog, read_json, write_json, write_jsonl
from p2o.config.methods import MethodSpec
from p2o.job_code import entry_of
from p2o.provenance import provenance, source_label
from p2o.training.fingerprint import Fingerprint, input_digests

PathLike = str | Path


def read_prepared(path: PathLike):
    """A prepared split file as a DataFrame (``p2o.data.read_split``), or an error saying how to make it."""
    from p2o.data import read_split

    if not Path(path).exists():
        raise FileNotFoundError(f"{path} not found; prepare the data first (p2o prepare)")
    return read_split(path)


def load_split(tokenizer, path: PathLike, dataset: str, tokenize: TokenizeConfig):
    """A prepared split file, tokenised."""
    return tokenize_frame(tokenizer, read_prepared(path), dataset, tokenize)


def tokenize_frame(tokenizer, df, dataset: str, tokenize: TokenizeConfig):
    """A split's pairs (``read_prepared``), tokenised (``p2o.model.tokenize.tokenize_pairs``)."""
    from p2o.model.tokenize import tokenize_pairs

    return tokenize_pairs(tokenizer, dataset, df["id"].tolist(), df["prompt"].tolist(), df["chosen"].tolist(),
                          df["rejected"].tolist(), tokenize)


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def split_record(split_path: PathLike) -> dict:
    """A prepared split's ``{n, sha256}``, from the manifest beside it ({} without one)."""
    manifest = Path(split_path).parent / "manifest.json"
    if not manifest.exists():
        return {}
    return read_json(manifest)["splits"][Path(split_path).stem]


def manifest_sha256(split_path: PathLike) -> str | None:
    """sha256 of a prepared split, from the manifest beside it."""
    return split_record(split_path).get("sha256")


def download(ds: DatasetConfig, out_path: PathLike, source_path: PathLike | None = None,
             key: str = "data.datasets.<name>") -> int:
    """The raw rows of a dataset, unchanged and in source order, as one local JSONL file; and, at
    ``source_path`` (default: ``out_path`` with ``.source.json`` for ``.jsonl``), the source record
    (``p2o.data.sources.resolve_source``): a hub source's resolved commit, which is what is read, or a
    local source's sha256. ``key`` is the dataset's config key, named in errors.

    The only job that may touch the network (for a hub source); everything after it reads the copy.
    """
    from p2o.data import read_raw_rows
    from p2o.data.sources import resolve_source

    source = resolve_source(ds, key)
    pinned = replace(ds, revision=source["commit"]) if source["kind"] == "hub" else ds
    n = 0

    def rows():
        nonlocal n
        for _, _, row in read_raw_rows(pinned):
            n += 1
            yield row

    write_jsonl(out_path, rows())
    write_json(source_path or raw_source_path(out_path), source)
    print(f"{ds.source}: {n} raw rows -> {out_path} ({source_label(source)})", file=sys.stderr)
    return n


def raw_source_path(raw_path: PathLike) -> Path:
    """Where ``download`` records the source of the raw file ``raw_path``: ``{dataset}.source.json``."""
    raw_path = Path(raw_path)
    return raw_path.with_name(raw_path.name.removesuffix(".jsonl") + ".source.json")


def manifest_source(split_path: PathLike) -> dict | None:
    """The data source record of a prepared split, from the manifest beside it."""
    manifest = Path(split_path).parent / "manifest.json"
    return read_json(manifest).get("resolved") if manifest.exists() else None


def sources(model_dir: PathLike, splits: Mapping[str, PathLike]) -> dict:
    """Where a run's inputs came from: the source record of its starting model and of each dataset."""
    from p2o.model.loading import model_source

    return {"model": model_source(model_dir), "data": {name: manifest_source(path) for name, path in splits.items()}}


def lora_run(model, lora: LoraConfig | None, params: dict, seed: int):
    """``(peft_model, record)``: ``model`` wrapped with LoRA adapters drawn from ``seed`` when ``lora.r > 0``
    (``params``, the run's fingerprint parameters, then hold ``lora``), else ``(None, None)``; the record,
    for the summary, adds the number of trained parameters."""
    if lora is None or lora.r <= 0:
        return None, None
    from p2o.model.lora import add_lora

    params["lora"] = asdict(lora)
    peft_model = add_lora(model, lora, seed)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return peft_model, {**asdict(lora), "trained_params": trained}


def init_model(model: ModelConfig, train_splits: Mapping[str, PathLike], out_dir: PathLike, seed: int = 0) -> Path:
    """Base model and tokenizer; ``tiny`` trains its tokenizer on the training text only."""
    from p2o.data import read_split
    from p2o.model.loading import init_base_model

    texts: list[str] = []
    if model.name_or_path == "tiny":
        for path in train_splits.values():
            df = read_split(path)
            texts += (df["prompt"] + df["chosen"]).tolist() + df["rejected"].tolist()
    out = init_base_model(model, out_dir, texts, seed=seed)
    print(f"base model written to {out}", file=sys.stderr)
    return out


def main_log(path: PathLike, tensorboard: bool = False):
    """The job's JSONL log on rank 0 of a job of several processes (and of every job of one); no log
    (None) on the others, which must not create the file."""
    from p2o.training import parallel

    return JsonlLog(path, tensorboard) if parallel.rank() == 0 else contextlib.nullcontext()


def sft(base_dir: PathLike, train_splits: Mapping[str, PathLike], tokenize: TokenizeConfig, optim: OptimConfig,
        seed: int, out_dir: PathLike, device: str = "cpu", config: Mapping | None = None,
        lora: LoraConfig | None = None) -> dict:
    """SFT on the chosen responses; writes ``out_dir/model``, ``log.jsonl`` and ``summary.json``.
    ``config`` (the whole resolved config) is recorded in the summary's provenance, never read.
    The run's fingerprint (``p2o.training.fingerprint``) covers ``tokenize``, ``optim``, ``seed``,
    ``lora`` when on and the bytes of the base model and the splits; the summary records it.
    With ``lora.r > 0`` only LoRA adapters train and are merged into the saved model
    (``merge_and_unload``): the SFT model stays a plain model folder, the reference of every method."""
    from p2o.model.loading import freeze_lower, load_model, load_tokenizer, model_source, save_model
    from p2o.training import parallel
    from p2o.training.sft import sft as run_sft

    parallel.init(optim.devices, "sft")  # a torchrun job of sft.devices processes: before any model is loaded
    out_dir = Path(out_dir)
    tokenizer, model = load_tokenizer(base_dir), load_model(base_dir, device)
    freeze_lower(model, optim.freeze_layers)
    params = {"tokenize": asdict(tokenize)}
    peft_model, lora_record = lora_run(model, lora, params, seed)
    run = Fingerprint(params, input_digests(
        {"base_model": base_dir, **{f"split/{name}": path for name, path in train_splits.items()}})
    ).extend(code=[entry_of(sft)])
    splits = [load_split(tokenizer, path, name, tokenize) for name, path in train_splits.items()]
    start = time.time()
    with main_log(out_dir / "log.jsonl", optim.tensorboard) as log:
        result = run_sft(model, splits, optim, seed, pad_id_of(tokenizer), log, device,
                         checkpoint=out_dir / "checkpoint.pt", run=run)
    if parallel.rank() != 0:  # rank 0 alone writes
        return result
    if peft_model is not None:
        model = peft_model.merge_and_unload()
    save_model(model, tokenizer, out_dir / "model", model_source(base_dir))
    summary = {"seed": seed, "wall_s": time.time() - start, "sft": asdict(optim),
               **({"lora": lora_record} if lora_record else {}), **result,
               "split_sha256": {name: manifest_sha256(path) for name, path in train_splits.items()},
               "sources": sources(base_dir, train_splits), "provenance": provenance(device, config)}
    write_json(out_dir / "summary.json", summary)
    return summary


def reference(model_dir: PathLike, split_path: PathLike, dataset: str, tokenize: TokenizeConfig, batch_size: int,
              out_path: PathLike, device: str = "cpu", autocast: str = "none", inference_dtype: str = "float32") -> None:
    """Reference log-probs of one split (chosen, rejected and KTO's mismatched rows), at the precision
    ``autocast`` training will run at (``train.autocast``), the weights in ``inference_dtype``."""
    from p2o.model.loading import load_model, load_tokenizer
    from p2o.model.logps import resolve_autocast
    from p2o.model.reference import compute_reference_logps

    autocast = resolve_autocast(autocast, device)
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir, device, inference_dtype)
    split = load_split(tokenizer, split_path, dataset, tokenize)
    ref = compute_reference_logps(model, split, tokenize, pad_id_of(tokenizer), batch_size, device, autocast)
    ref.save(out_path)
    print(f"reference log-probs of {len(split)} pairs -> {out_path}", file=sys.stderr)


def train(model_dir: PathLike, train_splits: Mapping[str, PathLike], train_refs: Mapping[str, PathLike],
          method: MethodSpec, optim: OptimConfig, tokenize: TokenizeConfig, seed: int, out_dir: PathLike,
          device: str = "cpu", eval_splits: Mapping[str, tuple[PathLike, PathLike]] | None = None,
          evaluate: EvalConfig | None = None, config: Mapping | None = None, lora: LoraConfig | None = None,
          inference_dtype: str = "float32") -> dict:
    """Preference training from the SFT model; writes ``out_dir/{model/, log.jsonl, summary.json}``.

    With ``lora.r > 0`` only LoRA adapters on the SFT model train, and ``model/`` is the adapter folder
    (``p2o.model.lora``; ``load_model`` reads it); the frozen base is the SFT model, so the in-step
    reference (TDPO) and the held-out KL run the policy with its adapters disabled, not a second copy.

    With ``optim.checkpoint_every > 0`` a killed job rerun with the same arguments resumes from
    ``out_dir/checkpoint.pt`` and ends as an uninterrupted run would. Its fingerprint covers every
    argument read and the bytes of every input file (SFT model, splits, reference log-probs, and the
    held-out ones when evaluated): a checkpoint of another run is set aside and the job starts afresh.

    ``train_splits`` and ``train_refs`` map dataset -> file, in training order. With
    ``optim.eval_every > 0``, ``eval_splits`` (dataset -> (split file, reference file)) are
    evaluated during training for the held-out curves. ``config`` is recorded, as in ``sft``.
    The method's peak learning rate is ``optim.lr × method.lr_scale``. The frozen reference model (for
    held-out evaluation during training and in-step inputs such as TDPO's) is loaded in
    ``inference_dtype``, as the reference log-probs were; the policy trains in fp32 weights.
    """
    from p2o.model.evaluate import evaluate_split
    from p2o.model.loading import (freeze_lower, load_model, load_tokenizer, model_source, save_adapter_model,
                                   save_model)
    from p2o.model.logps import precision, resolve_autocast
    from p2o.model.lora import FrozenBase
    from p2o.model.reference import ReferenceLogps
    from p2o.training.compute import compute_record, training_compute
    from p2o.training import parallel
    from p2o.training.inputs import needs_reference_model
    from p2o.training.preference import method_inputs, train_preference

    parallel.init(optim.devices)  # a torchrun job of train.devices processes: before any model is loaded
    out_dir = Path(out_dir)
    # the summary records the learning rate run and the precision `auto` resolved to
    optim = replace(optim, lr=optim.lr * method.lr_scale, autocast=resolve_autocast(optim.autocast, device))
    tokenizer, policy = load_tokenizer(model_dir), load_model(model_dir, device)
    freeze_lower(policy, optim.freeze_layers)
    params = {"tokenize": asdict(tokenize)}
    if inference_dtype != "float32":  # fp32 runs keep the fingerprint their checkpoints carry
        params["inference_dtype"] = inference_dtype
    peft_model, lora_record = lora_run(policy, lora, params, seed)
    pad_id = pad_id_of(tokenizer)
    splits = [load_split(tokenizer, path, name, tokenize) for name, path in train_splits.items()]
    references = {s.dataset: ReferenceLogps.load(train_refs[s.dataset], s, tokenize, optim.autocast) for s in splits}

    evaluating = optim.eval_every > 0 and bool(eval_splits)
    inputs = {"sft_model": model_dir, **{f"split/{name}": path for name, path in train_splits.items()},
              **{f"reference/{name}": path for name, path in train_refs.items()}}
    if evaluating:
        params.update(evaluate=asdict(evaluate or EvalConfig()), eval_datasets=list(eval_splits))
        for name, (split_path, ref_path) in eval_splits.items():
            inputs.update({f"eval_split/{name}": split_path, f"eval_reference/{name}": ref_path})
    run = Fingerprint(params, input_digests(inputs)).extend(code=[entry_of(train)])
    # the frozen SFT model, loaded once: the exact held-out KL needs its distribution, and so does TDPO's step
    in_step_reference = needs_reference_model(method_inputs(method))
    reference_model = None
    if evaluating or in_step_reference:
        reference_model = FrozenBase(peft_model) if peft_model is not None else load_model(model_dir, device,
                                                                                           inference_dtype)
    evaluator = None
    if evaluating:
        evaluate = evaluate or EvalConfig()
        held_out = []
        for name, (split_path, ref_path) in eval_splits.items():
            split = load_split(tokenizer, split_path, name, tokenize)
            held_out.append((split, ReferenceLogps.load(ref_path, split, tokenize, optim.autocast)))

        def evaluator(model):
            with precision(optim.autocast, device):
                return {s.dataset: evaluate_split(model, reference_model, s, ref, evaluate.beta, pad_id,
                                                  evaluate.batch_size, device, progress=False)
                        for s, ref in held_out}

    start = time.time()
    with main_log(out_dir / "log.jsonl", optim.tensorboard) as log:
        result = train_preference(policy, splits, references, method, optim, seed, pad_id, log, device, evaluator,
                                  checkpoint=out_dir / "checkpoint.pt", reference_model=reference_model, run=run)
    if parallel.rank() != 0:  # rank 0 alone writes
        return result
    fingerprint = result.pop("fingerprint")
    if peft_model is not None:  # the adapter folder, on the SFT model
        save_adapter_model(peft_model, tokenizer, out_dir / "model", model_dir, model_source(model_dir))
    else:
        save_model(policy, tokenizer, out_dir / "model", model_source(model_dir))
    summary = {
        "method": method.name, "loss": method.loss, "hparams": method.hparams, "inner_steps": method.inner_steps,
        "lr_scale": method.lr_scale, **({"lora": lora_record} if lora_record else {}), "seed": seed,
        "train": asdict(optim), "tokenize": asdict(tokenize), "wall_s": time.time() - start,
        "split_sha256": {name: manifest_sha256(path) for name, path in train_splits.items()}, "final": result,
        "compute": compute_record(training_compute(splits, optim.batch_size, optim.epochs, seed, method), policy),
        "fingerprint": fingerprint, "sources": sources(model_dir, train_splits), "provenance": provenance(device, config),
    }
    write_json(out_dir / "summary.json", summary)
    return summary


@dataclass(frozen=True)
class EvalTarget:
    """One held-out split to evaluate on: the prepared split, its reference log-probs, the metrics JSON."""

    split: PathLike
    reference: PathLike
    out: PathLike


def evaluate(policy_dir: PathLike, model_dir: PathLike, targets: Mapping[str, EvalTarget], tokenize: TokenizeConfig,
             evaluate: EvalConfig, device: str = "cpu", run: Mapping | None = None, config: Mapping | None = None,
             autocast: str = "none", inference_dtype: str = "float32") -> dict[str, dict]:
    """Held-out metrics of ``policy_dir`` against the reference model ``model_dir`` on every split of
    ``targets`` (dataset -> ``EvalTarget``), at the precision ``autocast`` the policy trained at, both
    models' weights in ``inference_dtype``; the models are loaded once (a LoRA policy on ``model_dir``:
    one model, its base the reference, ``load_policy_and_reference``). ``run`` (method, seed, ...) and
    ``config`` are recorded with the metrics."""
    from p2o.data.splits import prompt_key
    from p2o.model.evaluate import evaluate_split
    from p2o.model.loading import load_policy_and_reference, load_tokenizer
    from p2o.model.logps import precision, resolve_autocast
    from p2o.model.reference import ReferenceLogps

    autocast = resolve_autocast(autocast, device)
    tokenizer = load_tokenizer(model_dir)
    policy, reference_model = load_policy_and_reference(policy_dir, model_dir, device, inference_dtype)
    records = {}
    for dataset, target in targets.items():
        pairs = read_prepared(target.split)
        split = tokenize_frame(tokenizer, pairs, dataset, tokenize)
        ref = ReferenceLogps.load(target.reference, split, tokenize, autocast)
        with precision(autocast, device):
            metrics = evaluate_split(policy, reference_model, split, ref, evaluate.beta, pad_id_of(tokenizer),
                                     evaluate.batch_size, device, per_pair=True)
        metrics["pairs"]["prompt"] = [prompt_key(p) for p in pairs["prompt"]]  # bootstrap clusters
        record = {**(run or {}), "dataset": dataset, "policy": str(policy_dir),
                  "split_sha256": manifest_sha256(target.split), **metrics, "provenance": provenance(device, config)}
        write_json(target.out, record)
        print(f"{dataset}: accuracy {metrics['eval_rewards/accuracies']:.3f}  margin "
              f"{metrics['eval_rewards/margins']:.3f}  KL/token {metrics['eval_kl/token_mean']:.4f}  -> {target.out}",
              file=sys.stderr)
        records[dataset] = record
    return records
