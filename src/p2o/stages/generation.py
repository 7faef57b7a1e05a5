"""The stages that judge a model by what it generates, with every input and output named explicitly.

    generate       policy + SFT model + eval splits       -> one JSONL of samples per split (+ generation.json)
    judge          a policy's samples + the SFT model's   -> gold reward, win rate, KL: one JSON per split
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from p2o.config import GenerateConfig, JudgeConfig, TokenizeConfig
from p2o.io import read_json, read_jsonl, write_json, write_jsonl
from p2o.provenance import provenance
from p2o.stages.jobs import PathLike, manifest_sha256, pad_id_of, read_prepared

SAMPLING_KEYS = ("n_prompts", "n_samples", "max_new_tokens", "temperature", "top_p", "seed", "prompt_style")  # samples compare across models
GENERATION_META = "generation.json"


def heldout_prompts(split_path: PathLike, n: int) -> tuple[list[str], list[str]]:
    """``(ids, prompts)``: the first ``n`` distinct prompts of a held-out split in split order, each
    named by the id of its first pair (several pairs can share a prompt)."""
    df = read_prepared(split_path)
    first = df.drop_duplicates("prompt").head(n)
    return first["id"].astype(str).tolist(), first["prompt"].tolist()


def generate(policy_dir: PathLike, reference_dir: PathLike, targets: Mapping[str, tuple[PathLike, PathLike]],
             generate: GenerateConfig, tokenize: TokenizeConfig, device: str = "cpu", run: Mapping | None = None,
             config: Mapping | None = None, autocast: str = "none", meta_out: PathLike | None = None,
             inference_dtype: str = "float32") -> dict:
    """Samples of ``policy_dir`` on the first ``generate.n_prompts`` held-out prompts of every split of
    ``targets`` (dataset -> (split file, samples JSONL)), each with log π_ref of its tokens under the
    reference (SFT) model ``reference_dir``; both models are loaded once (once in all when they are the
    same folder, the SFT model's own samples, the baseline, or a LoRA adapter on it:
    ``load_policy_and_reference``). A JSONL row is ``Sample.record()`` plus
    ``dataset``, ``prompt`` (the text as the split stores it), ``ref_logprob`` and ``run``'s keys.
    ``meta_out`` (default: ``generation.json`` beside the first samples file) records the sampling
    settings, the prompt style, the models, the work done (``compute``: sampling and the reference pass, as
    ``p2o.training.compute`` counts it) and the provenance; the judge reads it. Returns it. Both models'
    weights are in ``inference_dtype`` (``model.inference_dtype``)."""
    from p2o.model.generate import SamplingParams, encode_prompts, model_max_positions, generate as sample
    from p2o.model.judge import sample_logps
    from p2o.model.loading import load_policy_and_reference, load_tokenizer
    from p2o.model.logps import resolve_autocast

    autocast = resolve_autocast(autocast, device)
    tokenizer = load_tokenizer(reference_dir)
    policy, reference_model = load_policy_and_reference(policy_dir, reference_dir, device, inference_dtype)
    limit = model_max_positions(policy)
    max_prompt = tokenize.max_prompt_length if limit is None else min(tokenize.max_prompt_length,
                                                                     limit - generate.max_new_tokens)
    if max_prompt < 1:
        raise ValueError(f"generate.max_new_tokens={generate.max_new_tokens} leaves no room for a prompt in the "
                         f"model's {limit} positions")
    params = SamplingParams(generate.max_new_tokens, generate.temperature, generate.top_p, generate.n_samples,
                            generate.seed, generate.batch_size)
    from p2o.training.compute import Compute, compute_record

    pad_id, run, work = pad_id_of(tokenizer), dict(run or {}), Compute()
    datasets, style = {}, None
    for dataset, (split_path, out_path) in targets.items():
        ids, prompts = heldout_prompts(split_path, generate.n_prompts)
        encoded = encode_prompts(tokenizer, prompts, ids, generate.prompt_style, max_prompt)
        style = encoded.style
        samples = sample(policy, tokenizer, encoded, params, device, autocast)
        ref = sample_logps(reference_model, encoded, samples, pad_id, generate.batch_size, device, autocast)
        tokens, new = sum(x.prompt_tokens + x.n_tokens for x in samples), sum(x.n_tokens for x in samples)
        work.add(tokens, new)  # sampling: KV-cached, each token through the body once, the head at each new one
        work.add(tokens, new)  # log π_ref of the samples
        work.generated_tokens += new
        text_of = dict(zip(ids, prompts))
        write_jsonl(out_path, ({**run, "dataset": dataset, **s.record(), "prompt": text_of[s.prompt_id],
                                "ref_logprob": float(r)} for s, r in zip(samples, ref)))
        datasets[dataset] = {"split": str(split_path), "split_sha256": manifest_sha256(split_path),
                             "n_prompts": len(ids), "n_samples": len(samples), "samples": str(out_path)}
        print(f"{dataset}: {len(samples)} samples of {len(ids)} prompts -> {out_path}", file=sys.stderr)
    meta = {**run, "policy": str(policy_dir), "reference": str(reference_dir), "sampling": asdict(generate),
            "prompt_style": style, "max_prompt_tokens": max_prompt, "autocast": autocast,
            **({"inference_dtype": inference_dtype} if inference_dtype != "float32" else {}), "datasets": datasets,
            "compute": compute_record(work, policy), "provenance": provenance(device, config)}
    if targets or meta_out:
        write_json(meta_out or Path(next(iter(targets.values()))[1]).parent / GENERATION_META, meta)
    return meta


def gold_judge(judge: JudgeConfig, device: str = "cpu", autocast: str = "none", judge_model: PathLike | None = None,
               tokenize: TokenizeConfig | None = None):
    """The judge ``judge`` names: the planted rule (no torch imported), the workflow's trained reward model
    (``judge_model``, reading texts as it read its pairs: ``tokenize``), or a reward model by hub id or
    folder, reading no more tokens than the model takes (``RewardModelJudge`` cuts the prompt's start,
    keeping the completion)."""
    from p2o.model.planted import PLANTED, PlantedJudge

    if judge.name == PLANTED:
        return PlantedJudge()
    if judge.trained:
        from p2o.training.reward_model import RewardModelJudge as TrainedJudge

        if judge_model is None or tokenize is None:
            raise ValueError("judge.name: trained needs the trained judge's folder and the tokenize settings")
        return TrainedJudge(judge_model, tokenize, device, judge.batch_size)
    from p2o.model.generate import model_max_positions
    from p2o.model.judge import RewardModelJudge

    scorer = RewardModelJudge(judge.name, judge.revision, device, judge.batch_size, autocast=autocast)
    limits = [model_max_positions(scorer.model), getattr(scorer.tokenizer, "model_max_length", None)]
    scorer.max_length = min([scorer.max_length, *(n for n in limits if isinstance(n, int) and n > 0)])
    return scorer


def judge_record(judge: JudgeConfig, judge_model: PathLike | None) -> dict:
    """Which judge: its name and revision, and for the trained judge its folder and held-out accuracy
    (from ``heldout.json`` beside the folder, ``p2o.stages.reward.train_scored_reward_model``)."""
    record = {"name": judge.name, "revision": judge.revision}
    if judge.trained and judge_model is not None:
        heldout = Path(judge_model).parent / "heldout.json"
        accuracy = read_json(heldout) if heldout.exists() else {}
        record.update(model=str(judge_model), heldout_accuracy={
            name: m["eval_rewards/accuracies"] for name, m in accuracy.get("heldout", {}).items()})
    return record


def generation_meta(samples_path: PathLike) -> dict:
    """The ``generation.json`` beside a samples file ({} when there is none)."""
    path = Path(samples_path).parent / GENERATION_META
    return read_json(path) if path.exists() else {}


def judge(samples: Mapping[str, PathLike], baseline: Mapping[str, PathLike], out: Mapping[str, PathLike],
          judge: JudgeConfig, device: str = "cpu", run: Mapping | None = None, config: Mapping | None = None,
          autocast: str = "none", judge_model: PathLike | None = None,
          tokenize: TokenizeConfig | None = None) -> dict[str, dict]:
    """Scores a policy's samples (dataset -> JSONL of ``generate``) and the baseline's (the SFT model's,
    on the same prompts) with the gold judge and writes, per dataset, one JSON to ``out[dataset]``:
    ``mean_reward`` (gold) and ``baseline_mean_reward``, ``win_rate`` against the baseline (sample k
    against sample k of the same prompt; a tie counts half), ``lc_win_rate`` (length-controlled),
    ``tie_rate``, ``kl_k1``, ``kl_k2``, ``kl_k3`` (Monte-Carlo KL(π ‖ π_ref), nats per completion),
    ``mean_length`` (tokens), ``eos_rate``, ``n`` (samples), with the judge, the sampling settings and
    prompt style (from ``generation.json``, which must agree with the baseline's) and the provenance."""
    import pandas as pd

    from p2o.report.winrate import compare_to_baseline, generation_summary

    scorer, run = gold_judge(judge, device, autocast, judge_model, tokenize), dict(run or {})
    which = judge_record(judge, judge_model)
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
                  "judge": which,
                  "prompt_style": meta.get("prompt_style"), "sampling": sampling,
                  "samples": str(path), "baseline": str(baseline[dataset]),
                  "policy": meta.get("policy"), "provenance": provenance(device, config)}
        write_json(out[dataset], record)
        print(f"{dataset}: gold reward {record['mean_reward']:.3f} (SFT {record['baseline_mean_reward']:.3f})  win "
              f"rate {record['win_rate']:.3f}  LC {record['lc_win_rate']:.3f}  KL k3 {record['kl_k3']:.3f}  -> "
              f"{out[dataset]}", file=sys.stderr)
        records[dataset] = record
    return records
