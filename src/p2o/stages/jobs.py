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
    generate       policy + SFT model + eval splits       -> one JSONL of samples per split (+ generation.json)
    judge          a policy's samples + the SFT model's   -> gold reward, win rate, KL: one JSON per split

Reference, train and evaluate run every forward at one precision, ``train.autocast`` (passed to
``reference`` and ``evaluate`` as ``autocast``; see ``p2o.model.logps``), so that the policy's
log-probs equal the reference's before any update.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from p2o.config import (DatasetConfig, EvalConfig, GenerateConfig, JudgeConfig, ModelConfig, OptimConfig,
                        TokenizeConfig)
from p2o.io import JsonlLog, read_json, read_jsonl, write_json, write_jsonl
from p2o.config.methods import MethodSpec
from p2o.config.sections import PLANTED_JUDGE
from p2o.job_code import entry_of
from p2o.provenance import provenance, source_label
from p2o.training.fingerprint import Fingerprint, input_digests

PathLike = str | Path


def load_split(tokenizer, path: PathLike, dataset: str, tokenize: TokenizeConfig):
    """A prepared split file, tokenised."""
    from p2o.data import read_split
    from p2o.model.tokenize import tokenize_pairs

    if not Path(path).exists():
        raise FileNotFoundError(f"{path} not found; prepare the data first (p2o prepare)")
    df = read_split(path)
    return tokenize_pairs(tokenizer, dataset, df["id"].tolist(), df["prompt"].tolist(), df["chosen"].tolist(),
                          df["rejected"].tolist(), tokenize)


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def manifest_sha256(split_path: PathLike) -> str | None:
    """sha256 of a prepared split, from the manifest beside it."""
    manifest = Path(split_path).parent / "manifest.json"
    if not manifest.exists():
        return None
    return read_json(manifest)["splits"][Path(split_path).stem]["sha256"]


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


def sft(base_dir: PathLike, train_splits: Mapping[str, PathLike], tokenize: TokenizeConfig, optim: OptimConfig,
        seed: int, out_dir: PathLike, device: str = "cpu", config: Mapping | None = None) -> dict:
    """SFT on the chosen responses; writes ``out_dir/model``, ``log.jsonl`` and ``summary.json``.
    ``config`` (the whole resolved config) is recorded in the summary's provenance, never read.
    The run's fingerprint (``p2o.training.fingerprint``) covers ``tokenize``, ``optim``, ``seed`` and
    the bytes of the base model and the splits; the summary records it."""
    from p2o.model.loading import load_model, load_tokenizer, model_source, save_model
    from p2o.training.sft import sft as run_sft

    out_dir = Path(out_dir)
    run = Fingerprint({"tokenize": asdict(tokenize)}, input_digests(
        {"base_model": base_dir, **{f"split/{name}": path for name, path in train_splits.items()}})
    ).extend(code=[entry_of(sft)])
    tokenizer, model = load_tokenizer(base_dir), load_model(base_dir, device)
    splits = [load_split(tokenizer, path, name, tokenize) for name, path in train_splits.items()]
    start = time.time()
    with JsonlLog(out_dir / "log.jsonl") as log:
        result = run_sft(model, splits, optim, seed, pad_id_of(tokenizer), log, device,
                         checkpoint=out_dir / "checkpoint.pt", run=run)
    save_model(model, tokenizer, out_dir / "model", model_source(base_dir))
    summary = {"seed": seed, "wall_s": time.time() - start, "sft": asdict(optim), **result,
               "split_sha256": {name: manifest_sha256(path) for name, path in train_splits.items()},
               "sources": sources(base_dir, train_splits), "provenance": provenance(device, config)}
    write_json(out_dir / "summary.json", summary)
    return summary


def reference(model_dir: PathLike, split_path: PathLike, dataset: str, tokenize: TokenizeConfig, batch_size: int,
              out_path: PathLike, device: str = "cpu", autocast: str = "none") -> None:
    """Reference log-probs of one split (chosen, rejected and KTO's mismatched rows), at the precision
    ``autocast`` training will run at (``train.autocast``)."""
    from p2o.model.loading import load_model, load_tokenizer
    from p2o.model.reference import compute_reference_logps

    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir, device)
    split = load_split(tokenizer, split_path, dataset, tokenize)
    ref = compute_reference_logps(model, split, tokenize, pad_id_of(tokenizer), batch_size, device, autocast)
    ref.save(out_path)
    print(f"reference log-probs of {len(split)} pairs -> {out_path}", file=sys.stderr)


def train(model_dir: PathLike, train_splits: Mapping[str, PathLike], train_refs: Mapping[str, PathLike],
          method: MethodSpec, optim: OptimConfig, tokenize: TokenizeConfig, seed: int, out_dir: PathLike,
          device: str = "cpu", eval_splits: Mapping[str, tuple[PathLike, PathLike]] | None = None,
          evaluate: EvalConfig | None = None, config: Mapping | None = None) -> dict:
    """Preference training from the SFT model; writes ``out_dir/{model/, log.jsonl, summary.json}``.

    With ``optim.checkpoint_every > 0`` a killed job rerun with the same arguments resumes from
    ``out_dir/checkpoint.pt`` and ends as an uninterrupted run would. Its fingerprint covers every
    argument read and the bytes of every input file (SFT model, splits, reference log-probs, and the
    held-out ones when evaluated): a checkpoint of another run is set aside and the job starts afresh.

    ``train_splits`` and ``train_refs`` map dataset -> file, in training order. With
    ``optim.eval_every > 0``, ``eval_splits`` (dataset -> (split file, reference file)) are
    evaluated during training for the held-out curves. ``config`` is recorded, as in ``sft``.
    The method's peak learning rate is ``optim.lr × method.lr_scale``.
    """
    from p2o.model.evaluate import evaluate_split
    from p2o.model.loading import load_model, load_tokenizer, model_source, save_model
    from p2o.model.logps import precision
    from p2o.model.reference import ReferenceLogps
    from p2o.training.compute import compute_record, training_compute
    from p2o.training.inputs import needs_reference_model
    from p2o.training.preference import method_inputs, train_preference

    out_dir = Path(out_dir)
    optim = replace(optim, lr=optim.lr * method.lr_scale)  # the summary records the learning rate run
    tokenizer, policy = load_tokenizer(model_dir), load_model(model_dir, device)
    pad_id = pad_id_of(tokenizer)
    splits = [load_split(tokenizer, path, name, tokenize) for name, path in train_splits.items()]
    references = {s.dataset: ReferenceLogps.load(train_refs[s.dataset], s, tokenize, optim.autocast) for s in splits}

    evaluating = optim.eval_every > 0 and bool(eval_splits)
    inputs = {"sft_model": model_dir, **{f"split/{name}": path for name, path in train_splits.items()},
              **{f"reference/{name}": path for name, path in train_refs.items()}}
    params = {"tokenize": asdict(tokenize)}
    if evaluating:
        params.update(evaluate=asdict(evaluate or EvalConfig()), eval_datasets=list(eval_splits))
        for name, (split_path, ref_path) in eval_splits.items():
            inputs.update({f"eval_split/{name}": split_path, f"eval_reference/{name}": ref_path})
    run = Fingerprint(params, input_digests(inputs)).extend(code=[entry_of(train)])
    # the frozen SFT model, loaded once: the exact held-out KL needs its distribution, and so does TDPO's step
    in_step_reference = needs_reference_model(method_inputs(method))
    reference_model = load_model(model_dir, device) if evaluating or in_step_reference else None
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
    with JsonlLog(out_dir / "log.jsonl") as log:
        result = train_preference(policy, splits, references, method, optim, seed, pad_id, log, device, evaluator,
                                  checkpoint=out_dir / "checkpoint.pt", reference_model=reference_model, run=run)
    fingerprint = result.pop("fingerprint")
    save_model(policy, tokenizer, out_dir / "model", model_source(model_dir))
    summary = {
        "method": method.name, "loss": method.loss, "hparams": method.hparams, "inner_steps": method.inner_steps,
        "lr_scale": method.lr_scale, "seed": seed, "train": asdict(optim), "tokenize": asdict(tokenize), "wall_s": time.time() - start,
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
             autocast: str = "none") -> dict[str, dict]:
    """Held-out metrics of ``policy_dir`` against the reference model ``model_dir`` on every split of
    ``targets`` (dataset -> ``EvalTarget``), at the precision ``autocast`` the policy trained at; the
    models are loaded once. ``run`` (method, seed, ...) and ``config`` are recorded with the metrics."""
    from p2o.data import read_split
    from p2o.data.splits import prompt_key
    from p2o.model.evaluate import evaluate_split
    from p2o.model.loading import load_model, load_tokenizer
    from p2o.model.logps import precision
    from p2o.model.reference import ReferenceLogps

    tokenizer = load_tokenizer(model_dir)
    policy, reference_model = load_model(policy_dir, device), load_model(model_dir, device)
    records = {}
    for dataset, target in targets.items():
        split = load_split(tokenizer, target.split, dataset, tokenize)
        ref = ReferenceLogps.load(target.reference, split, tokenize, autocast)
        with precision(autocast, device):
            metrics = evaluate_split(policy, reference_model, split, ref, evaluate.beta, pad_id_of(tokenizer),
                                     evaluate.batch_size, device, per_pair=True)
        metrics["pairs"]["prompt"] = [prompt_key(p) for p in read_split(target.split)["prompt"]]  # bootstrap clusters
        record = {**(run or {}), "dataset": dataset, "policy": str(policy_dir),
                  "split_sha256": manifest_sha256(target.split), **metrics, "provenance": provenance(device, config)}
        write_json(target.out, record)
        print(f"{dataset}: accuracy {metrics['eval_rewards/accuracies']:.3f}  margin "
              f"{metrics['eval_rewards/margins']:.3f}  KL/token {metrics['eval_kl/token_mean']:.4f}  -> {target.out}",
              file=sys.stderr)
        records[dataset] = record
    return records


# --------------------------------------------------------------------------- judging by what models generate

SAMPLING_KEYS = ("n_prompts", "n_samples", "max_new_tokens", "temperature", "top_p", "seed", "prompt_style")  # samples compare across models
GENERATION_META = "generation.json"


def heldout_prompts(split_path: PathLike, n: int) -> tuple[list[str], list[str]]:
    """``(ids, prompts)``: the first ``n`` distinct prompts of a held-out split in split order, each
    named by the id of its first pair (several pairs can share a prompt)."""
    from p2o.data import read_split

    if not Path(split_path).exists():
        raise FileNotFoundError(f"{split_path} not found; prepare the data first (p2o prepare)")
    df = read_split(split_path)
    first = df.drop_duplicates("prompt").head(n)
    return first["id"].astype(str).tolist(), first["prompt"].tolist()


def generate(policy_dir: PathLike, reference_dir: PathLike, targets: Mapping[str, tuple[PathLike, PathLike]],
             generate: GenerateConfig, tokenize: TokenizeConfig, device: str = "cpu", run: Mapping | None = None,
             config: Mapping | None = None, autocast: str = "none", meta_out: PathLike | None = None) -> dict:
    """Samples of ``policy_dir`` on the first ``generate.n_prompts`` held-out prompts of every split of
    ``targets`` (dataset -> (split file, samples JSONL)), each with log π_ref of its tokens under the
    reference (SFT) model ``reference_dir``; both models are loaded once (once in all when they are the
    same folder: the SFT model's own samples, the baseline). A JSONL row is ``Sample.record()`` plus
    ``dataset``, ``prompt`` (the text as the split stores it), ``ref_logprob`` and ``run``'s keys.
    ``meta_out`` (default: ``generation.json`` beside the first samples file) records the sampling
    settings, the prompt style, the models and the provenance; the judge reads it. Returns it."""
    from p2o.model.generate import SamplingParams, encode_prompts, model_max_positions, generate as sample
    from p2o.model.judge import sample_logps
    from p2o.model.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(reference_dir)
    policy = load_model(policy_dir, device)
    same = Path(policy_dir).resolve() == Path(reference_dir).resolve()
    reference_model = policy if same else load_model(reference_dir, device)
    limit = model_max_positions(policy)
    max_prompt = tokenize.max_prompt_length if limit is None else min(tokenize.max_prompt_length,
                                                                     limit - generate.max_new_tokens)
    if max_prompt < 1:
        raise ValueError(f"generate.max_new_tokens={generate.max_new_tokens} leaves no room for a prompt in the "
                         f"model's {limit} positions")
    params = SamplingParams(generate.max_new_tokens, generate.temperature, generate.top_p, generate.n_samples,
                            generate.seed, generate.batch_size)
    pad_id, run = pad_id_of(tokenizer), dict(run or {})
    datasets, style = {}, None
    for dataset, (split_path, out_path) in targets.items():
        ids, prompts = heldout_prompts(split_path, generate.n_prompts)
        encoded = encode_prompts(tokenizer, prompts, ids, generate.prompt_style, max_prompt)
        style = encoded.style
        samples = sample(policy, tokenizer, encoded, params, device, autocast)
        ref = sample_logps(reference_model, encoded, samples, pad_id, generate.batch_size, device, autocast)
        text_of = dict(zip(ids, prompts))
        write_jsonl(out_path, ({**run, "dataset": dataset, **s.record(), "prompt": text_of[s.prompt_id],
                                "ref_logprob": float(r)} for s, r in zip(samples, ref)))
        datasets[dataset] = {"split": str(split_path), "split_sha256": manifest_sha256(split_path),
                             "n_prompts": len(ids), "n_samples": len(samples), "samples": str(out_path)}
        print(f"{dataset}: {len(samples)} samples of {len(ids)} prompts -> {out_path}", file=sys.stderr)
    meta = {**run, "policy": str(policy_dir), "reference": str(reference_dir), "sampling": asdict(generate),
            "prompt_style": style, "max_prompt_tokens": max_prompt, "autocast": autocast, "datasets": datasets,
            "provenance": provenance(device, config)}
    if targets or meta_out:
        write_json(meta_out or Path(next(iter(targets.values()))[1]).parent / GENERATION_META, meta)
    return meta


def gold_judge(judge: JudgeConfig, device: str = "cpu", autocast: str = "none"):
    """The judge ``judge`` names: the planted rule (no torch imported) or a reward model, reading no more
    tokens than the model takes (``RewardModelJudge`` cuts the prompt's start, keeping the completion)."""
    from p2o.model.planted import PLANTED, PlantedJudge

    if judge.name == PLANTED:
        return PlantedJudge()
    from p2o.model.generate import model_max_positions
    from p2o.model.judge import RewardModelJudge

    scorer = RewardModelJudge(judge.name, judge.revision, device, judge.batch_size, autocast=autocast)
    limits = [model_max_positions(scorer.model), getattr(scorer.tokenizer, "model_max_length", None)]
    scorer.max_length = min([scorer.max_length, *(n for n in limits if isinstance(n, int) and n > 0)])
    return scorer


def judge_provenance(judge: JudgeConfig, device: str, config: Mapping | None) -> dict:
    """``p2o.provenance.provenance``, less the torch threads for the planted judge (which runs without torch)."""
    if judge.name != PLANTED_JUDGE:
        return provenance(device, config)
    from p2o.provenance import config_sha256, cpu_name, git_commit, versions

    out = {"git_commit": git_commit(), "versions": versions(), "device": device, "device_name": cpu_name()}
    if config is not None:
        out.update(config_sha256=config_sha256(config), config=dict(config))
    return out


def generation_meta(samples_path: PathLike) -> dict:
    """The ``generation.json`` beside a samples file ({} when there is none)."""
    path = Path(samples_path).parent / GENERATION_META
    return read_json(path) if path.exists() else {}


def judge(samples: Mapping[str, PathLike], baseline: Mapping[str, PathLike], out: Mapping[str, PathLike],
          judge: JudgeConfig, device: str = "cpu", run: Mapping | None = None, config: Mapping | None = None,
          autocast: str = "none") -> dict[str, dict]:
    """Scores a policy's samples (dataset -> JSONL of ``generate``) and the baseline's (the SFT model's,
    on the same prompts) with the gold judge and writes, per dataset, one JSON to ``out[dataset]``:
    ``mean_reward`` (gold) and ``baseline_mean_reward``, ``win_rate`` against the baseline (sample k
    against sample k of the same prompt; a tie counts half), ``lc_win_rate`` (length-controlled),
    ``tie_rate``, ``kl_k1``, ``kl_k2``, ``kl_k3`` (Monte-Carlo KL(π ‖ π_ref), nats per completion),
    ``mean_length`` (tokens), ``eos_rate``, ``n`` (samples), with the judge, the sampling settings and
    prompt style (from ``generation.json``, which must agree with the baseline's) and the provenance."""
    import pandas as pd

    from p2o.report.winrate import compare_to_baseline, generation_summary

    scorer, run = gold_judge(judge, device, autocast), dict(run or {})
    records = {}
    for dataset, path in samples.items():
        meta, base_meta = generation_meta(path), generation_meta(baseline[dataset])
        sampling = {k: meta.get("sampling", {}).get(k) for k in SAMPLING_KEYS}
        base_sampling = {k: base_meta.get("sampling", {}).get(k) for k in SAMPLING_KEYS}
        if meta and base_meta and sampling != base_sampling:
            raise ValueError(f"{path} and the baseline {baseline[dataset]} were sampled differently: "
                             f"{sampling} against {base_sampling}")
        rows, base = pd.DataFrame(read_jsonl(path)), pd.DataFrame(read_jsonl(baseline[dataset]))
        if rows.empty or base.empty:
            raise ValueError(f"no samples in {path if rows.empty else baseline[dataset]}")
        rows["score"] = scorer.score(rows["prompt"].tolist(), rows["text"].tolist())
        base["score"] = scorer.score(base["prompt"].tolist(), base["text"].tolist())
        m, b = compare_to_baseline(rows, base), generation_summary(base)
        record = {**run, "dataset": dataset, "mean_reward": m["mean_score"], "baseline_mean_reward": b["mean_score"],
                  "win_rate": m["win_rate"], "lc_win_rate": m["lc_win_rate"], "tie_rate": m["tie_rate"],
                  "kl_k1": m["kl_k1"], "kl_k2": m["kl_k2"], "kl_k3": m["kl_k3"], "mean_length": m["mean_length"],
                  "eos_rate": m["eos_rate"], "n": m["n_samples"], "n_pairs": m["n_pairs"],
                  "baseline_mean_length": b["mean_length"], "baseline_eos_rate": b["eos_rate"],
                  "judge": {"name": judge.name, "revision": judge.revision},
                  "prompt_style": meta.get("prompt_style"), "sampling": sampling,
                  "samples": str(path), "baseline": str(baseline[dataset]),
                  "policy": meta.get("policy"), "provenance": judge_provenance(judge, device, config)}
        write_json(out[dataset], record)
        print(f"{dataset}: gold reward {record['mean_reward']:.3f} (SFT {record['baseline_mean_reward']:.3f})  win "
              f"rate {record['win_rate']:.3f}  LC {record['lc_win_rate']:.3f}  KL k3 {record['kl_k3']:.3f}  -> "
              f"{out[dataset]}", file=sys.stderr)
        records[dataset] = record
    return records
