"""Iterative online DPO (Xiong et al. 2024; Shi et al. 2025; TRL's OnlineDPOTrainer), as stages the workflow
chains once per iteration, so that an interrupted run keeps the iterations it finished:

    sample     the current policy (the SFT model at iteration 1) -> K responses per training prompt
               (``p2o.stages.generation.generate`` on the training splits)
    label      samples + the proxy reward model -> one pair split per dataset: (best, worst) of each prompt's
               K responses (``p2o.losses.pair_selection``), in the prepared-split format, with a manifest
    reference  the pairs' reference log-probs under the SFT model (or the previous iteration's policy)
               (``p2o.stages.jobs.reference``)
    train      any registered offline loss on the pairs, from the previous iteration's policy
               (``p2o.stages.jobs.train``)
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from p2o.config import TokenizeConfig
from p2o.io import read_jsonl, write_json, write_jsonl
from p2o.stages.jobs import PathLike


def label_pairs(samples: Mapping[str, PathLike], proxy_dir: PathLike, tokenize: TokenizeConfig,
                out: Mapping[str, PathLike], device: str = "cpu", batch_size: int = 16) -> dict[str, dict]:
    """Score every sample (dataset -> JSONL of ``generate``, K consecutive rows per prompt) with the proxy
    reward model ``proxy_dir`` (``p2o.training.reward_model.RewardModelJudge``: text read as its training
    pairs were) and write, per dataset, the (best, worst) pair of each prompt to ``out[dataset]`` (a
    ``train.jsonl``-style split; a ``manifest.json`` beside it records its size and sha256). A prompt whose
    K responses score the same, or whose best and worst texts are equal, carries no preference and is
    dropped (counted). Returns the per-dataset label records written to ``labels.json`` beside each split."""
    import pandas as pd
    import torch

    from p2o.data import PAIR_COLUMNS, pair_id, split_hash
    from p2o.losses.pair_selection import select_pairs
    from p2o.training.reward_model import RewardModelJudge

    judge = RewardModelJudge(proxy_dir, tokenize, device, batch_size)
    records = {}
    for dataset, path in samples.items():
        rows = pd.DataFrame(read_jsonl(path))
        if rows.empty:
            raise ValueError(f"no samples in {path}")
        k = int(rows["sample"].max()) + 1
        order = rows.groupby("prompt_id", sort=False).cumcount()
        if len(rows) % k or not (order == rows["sample"]).all():
            raise ValueError(f"{path}: expected {k} consecutive samples per prompt (sample 0..{k - 1})")
        scores = torch.from_numpy(judge.score(rows["prompt"].tolist(), rows["text"].tolist()))  # (P·K,)
        pairs = select_pairs(scores.view(-1, k))  # (P,) each
        base = torch.arange(len(rows) // k) * k
        best, worst = rows.iloc[(base + pairs.chosen).tolist()], rows.iloc[(base + pairs.rejected).tolist()]
        keep = pairs.valid.numpy() & (best["text"].to_numpy() != worst["text"].to_numpy())
        frame = pd.DataFrame({"dataset": dataset, "prompt": best["prompt"].to_numpy()[keep],
                              "chosen": best["text"].to_numpy()[keep], "rejected": worst["text"].to_numpy()[keep]})
        frame["id"] = [pair_id(dataset, p, c, r) for p, c, r in zip(frame["prompt"], frame["chosen"], frame["rejected"])]
        frame = frame.drop_duplicates("id")[list(PAIR_COLUMNS)].reset_index(drop=True)
        if frame.empty:
            raise ValueError(f"{path}: no prompt's {k} samples differ in proxy reward; nothing to train on")
        write_jsonl(out[dataset], (dict(sorted(r.items())) for r in frame.to_dict("records")))
        manifest = {"dataset": dataset, "splits": {Path(out[dataset]).stem: {"n": len(frame), "sha256": split_hash(frame)}},
                    "samples": str(path), "proxy": str(proxy_dir)}
        write_json(Path(out[dataset]).parent / "manifest.json", manifest)
        chosen_rows, rejected_rows = best.iloc[keep.nonzero()[0]], worst.iloc[keep.nonzero()[0]]
        pair_tokens = [int((r["prompt_tokens"] + r["n_tokens"]).sum()) for r in (chosen_rows, rejected_rows)]
        work = {"proxy_tokens": int((rows["prompt_tokens"] + rows["n_tokens"]).sum()),
                "reference_tokens": sum(pair_tokens),
                "reference_head_tokens": int(chosen_rows["n_tokens"].sum() + rejected_rows["n_tokens"].sum())}
        record = {"dataset": dataset, "prompts": len(rows) // k, "k": k, "pairs": len(frame),
                  "dropped_no_preference": int(len(rows) // k - len(frame)),
                  "chosen_reward": float(pairs.chosen_reward[pairs.valid].mean()),
                  "rejected_reward": float(pairs.rejected_reward[pairs.valid].mean()),
                  "mean_reward": float(scores.mean()), "compute": {**work, "flops": labelling_flops(judge.model, **work)}}
        write_json(Path(out[dataset]).parent / "labels.json", record)
        print(f"{dataset}: {record['pairs']} pairs of {record['prompts']} prompts (K = {k}); proxy reward best "
              f"{record['chosen_reward']:.3f}, worst {record['rejected_reward']:.3f} -> {out[dataset]}", file=sys.stderr)
        records[dataset] = record
    return records


def labelling_flops(proxy, proxy_tokens: int, reference_tokens: int, reference_head_tokens: int) -> float:
    """FLOPs of labelling (``p2o.training.compute``'s rule, Kaplan et al. 2020): the proxy's forward over every
    sample, 2·N per token, and the reference's over the pairs' rows, 2·N per token plus 2·d·V per response
    token; N is the proxy body's non-embedding parameters, which the SFT model's body shares."""
    import torch

    backbone = proxy.backbone
    embeddings = {id(p) for m in backbone.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    body = sum(p.numel() for p in backbone.parameters() if id(p) not in embeddings)
    d, vocab = backbone.config.hidden_size, backbone.config.vocab_size
    return float(2 * body * (proxy_tokens + reference_tokens) + 2 * d * vocab * reference_head_tokens)
