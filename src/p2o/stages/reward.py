"""The reward-model experiment's jobs (after ``p2o.stages.jobs``: every input and output named).

    rm_subset              train split + its reference log-probs -> their first N pairs
    train_reward_model     SFT model + train splits              -> reward model folder, log, summary
    evaluate_reward_model  reward model + one eval split         -> metrics JSON
    train_scored_reward_model  SFT model + pools + eval splits  -> a reward model and its held-out accuracy
                           (the trained gold judge on its own pools; online training's proxy on the training splits)

The DPO side of the experiment is ``p2o.stages.jobs.train`` and ``p2o.stages.jobs.evaluate`` on the subset.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from p2o.config import OptimConfig, TokenizeConfig
from p2o.io import JsonlLog, read_json, write_json, write_jsonl
from p2o.stages.jobs import PathLike, load_split, manifest_sha256, pad_id_of, split_record
from p2o.job_code import entry_of
from p2o.provenance import provenance
from p2o.training.fingerprint import Fingerprint, input_digests

def rm_subset(split_path: PathLike, ref_path: PathLike, n: int, out_dir: PathLike,
              held_out_manifests: tuple[PathLike, PathLike] | None = None) -> dict:
    """The first ``n`` pairs of a prepared training split and their reference log-probs (cut from
    the split's, not recomputed): ``out_dir/{train.jsonl, reference.pt, manifest.json}``.

    ``held_out_manifests`` (the split's manifest, the main experiment's manifest): their held-out
    splits must be the same, so that a pool prepared apart is disjoint from the held-out pairs.
    """
    from p2o.data import read_split
    from p2o.data.splits import split_hash as frame_hash
    from p2o.model.reference import ReferenceLogps

    if held_out_manifests is not None:
        pool, main = (read_json(m)["splits"]["eval"]["sha256"] for m in held_out_manifests)
        if pool != main:
            raise ValueError(f"{held_out_manifests[0]}: its held-out split differs from "
                             f"{held_out_manifests[1]}'s; the training pool must be prepared with the same "
                             f"salt and n_eval")
    df = read_split(split_path)
    if n > len(df):
        raise ValueError(f"{split_path} holds {len(df)} pairs; {n} asked for")
    ref = ReferenceLogps.load(ref_path)
    if ref.ids != df["id"].tolist():
        raise ValueError(f"{ref_path}: reference log-probs of other pairs than {split_path}")
    out_dir = Path(out_dir)
    subset = df.iloc[:n]
    write_jsonl(out_dir / "train.jsonl", [dict(sorted(r.items())) for r in subset.to_dict("records")])
    ref.prefix(n).save(out_dir / "reference.pt")
    manifest = {"source": str(split_path), "source_sha256": manifest_sha256(split_path), "first_n": n,
                "splits": {"train": {"n": n, "sha256": frame_hash(subset)}}}
    write_json(out_dir / "manifest.json", manifest)
    print(f"first {n} of {len(df)} pairs of {split_path} -> {out_dir}", file=sys.stderr)
    return manifest


def train_reward_model(model_dir: PathLike, train_splits: Mapping[str, PathLike], optim: OptimConfig,
                       tokenize: TokenizeConfig, seed: int, out_dir: PathLike, device: str = "cpu",
                       config: Mapping | None = None) -> dict:
    """A Bradley–Terry reward model from the SFT model's body (``p2o.training.reward_model``); writes
    ``out_dir/{model/, log.jsonl, summary.json}``. Resumes from ``out_dir/checkpoint.pt`` as
    ``train`` does (only a checkpoint of the same run: parameters, SFT model, splits, code); ``config``
    is recorded, as in ``sft``."""
    from p2o.training import reward_model as reward
    from p2o.model.loading import load_tokenizer

    out_dir = Path(out_dir)
    tokenizer = load_tokenizer(model_dir)
    model = reward.RewardModel.from_causal_lm(model_dir, seed, device)
    splits = [load_split(tokenizer, path, name, tokenize) for name, path in train_splits.items()]
    run = Fingerprint({"tokenize": asdict(tokenize)}, input_digests(
        {"sft_model": model_dir, **{f"split/{name}": path for name, path in train_splits.items()}})
    ).extend(code=[entry_of(train_reward_model)])
    start = time.time()
    with JsonlLog(out_dir / "log.jsonl") as log:
        result = reward.train_reward_model(model, splits, optim, seed, pad_id_of(tokenizer), log, device,
                                           checkpoint=out_dir / "checkpoint.pt", run=run)
    fingerprint = result.pop("fingerprint")
    model.save(out_dir / "model", tokenizer)
    summary = {"model": "reward_model", "loss": "bradley_terry", "seed": seed, "train": asdict(optim),
               "tokenize": asdict(tokenize), "wall_s": time.time() - start,
               "split_sha256": {name: manifest_sha256(path) for name, path in train_splits.items()},
               "final": result, "fingerprint": fingerprint, "provenance": provenance(device, config)}
    write_json(out_dir / "summary.json", summary)
    return summary


def evaluate_reward_model(rm_dir: PathLike, split_path: PathLike, dataset: str, tokenize: TokenizeConfig,
                          batch_size: int, out_path: PathLike, device: str = "cpu",
                          run: Mapping | None = None, config: Mapping | None = None) -> dict:
    """Held-out accuracy (r_w > r_l), margin and loss of a reward model on one split; ``run`` and
    ``config`` are recorded with them, as in ``evaluate``."""
    from p2o.model.loading import load_tokenizer
    from p2o.training.reward_model import RewardModel, evaluate_reward_model as evaluate_rm

    tokenizer = load_tokenizer(rm_dir)
    model = RewardModel.load(rm_dir, device)
    split = load_split(tokenizer, split_path, dataset, tokenize)
    metrics = evaluate_rm(model, split, pad_id_of(tokenizer), batch_size, device)
    record = {**(run or {}), "dataset": dataset, "reward_model": str(rm_dir),
              "split_sha256": manifest_sha256(split_path), **metrics, "provenance": provenance(device, config)}
    write_json(out_path, record)
    print(f"{dataset}: reward model accuracy {metrics['eval_rewards/accuracies']:.3f}  margin "
          f"{metrics['eval_rewards/margins']:.3f}  -> {out_path}", file=sys.stderr)
    return record


def train_scored_reward_model(model_dir: PathLike, pools: Mapping[str, PathLike], heldout: Mapping[str, PathLike],
                              optim: OptimConfig, tokenize: TokenizeConfig, seed: int, out_dir: PathLike,
                              heldout_out: PathLike, batch_size: int = 16, device: str = "cpu",
                              config: Mapping | None = None, role: str = "gold_judge") -> dict:
    """A Bradley–Terry reward model (``train_reward_model``) trained on ``pools`` (dataset -> split), then
    scored on every held-out split (dataset -> ``eval.jsonl``), which it never saw. ``role`` says what it
    is for: ``gold_judge`` (``judge.name: trained``, on pools disjoint from every split) or ``proxy``
    (online training's reward, on the training splits). ``heldout_out`` gets ``{role, heldout: {dataset:
    metrics}, mean_accuracy, pools: {dataset: {n, sha256}}}``: what its verdicts are worth."""
    from p2o.model.loading import load_tokenizer
    from p2o.training.reward_model import RewardModel, evaluate_reward_model as evaluate_rm

    summary = train_reward_model(model_dir, pools, optim, tokenize, seed, out_dir, device, config)
    model_path = Path(out_dir) / "model"
    tokenizer, model = load_tokenizer(model_path), RewardModel.load(model_path, device)
    metrics = {name: {**evaluate_rm(model, load_split(tokenizer, path, name, tokenize), pad_id_of(tokenizer),
                                    batch_size, device), "split_sha256": manifest_sha256(path)}
               for name, path in heldout.items()}
    accuracy = {name: m["eval_rewards/accuracies"] for name, m in metrics.items()}
    record = {"role": role, "model": str(model_path), "seed": seed,
              "pools": {name: split_record(path) for name, path in pools.items()},
              "heldout": metrics, "mean_accuracy": sum(accuracy.values()) / len(accuracy),
              "provenance": provenance(device, config)}
    write_json(heldout_out, record)
    print(f"{role} held-out accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()) +
          f" -> {heldout_out}", file=sys.stderr)
    return {**summary, "heldout": record}

