"""The online training job: SFT model + proxy reward model (+ π_dpo for RTO) + training prompts -> policy.

    train_online   out_dir/{model/ (the policy, p2o.model.loading.load_model), log.jsonl, summary.json}

As ``p2o.stages.jobs.train`` for the offline methods: the run's fingerprint covers every argument read
and the bytes of every input (SFT model, proxy reward model, π_dpo, training splits), a killed job
rerun with ``optim.checkpoint_every > 0`` resumes from ``out_dir/checkpoint.pt``, and the summary
records the method, seed, wall time, compute (FLOPs of generation, every forward and backward, the
critic's included: ``p2o.training.compute``), fingerprint and provenance. Online DPO's iterations are
the workflow's chains of existing stages, not this job.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from p2o.config import OptimConfig, TokenizeConfig
from p2o.config.online import OnlineConfig
from p2o.io import JsonlLog, write_json
from p2o.job_code import entry_of
from p2o.provenance import provenance
from p2o.stages.jobs import PathLike, load_split, manifest_sha256, sources
from p2o.training.fingerprint import Fingerprint, input_digests


def train_online(method: str, sft_dir: PathLike, proxy_dir: PathLike, train_splits: Mapping[str, PathLike],
                 online: OnlineConfig, optim: OptimConfig, tokenize: TokenizeConfig, seed: int, out_dir: PathLike,
                 device: str = "cpu", dpo_dir: PathLike | None = None, config: Mapping | None = None) -> dict:
    """Train ``method`` (ppo, rto, rloo or regression_rl) online from the SFT model against the proxy
    reward model saved at ``proxy_dir`` (``p2o.training.reward_model.RewardModel``).

    ``train_splits`` maps dataset -> prepared training split, in training order: their prompts are the
    rollouts'. ``optim`` is the ``train`` section (``online`` sets the batch, epochs and learning rate:
    ``p2o.training.online.online_optim``). ``dpo_dir``: π_dpo, the DPO policy of the same seed, for
    ``rto`` only. ``config`` (the whole resolved config) is recorded in the provenance, never read.
    """
    from p2o.model.loading import load_model, load_tokenizer, model_source, save_model
    from p2o.training.actor_critic import ActorCritic, Critic
    from p2o.training.compute import compute_record
    from p2o.training.online import WITH_CRITIC, online_optim, train_online as run_online
    from p2o.training.reward_model import RewardModel

    if (method == "rto") != (dpo_dir is not None):
        raise ValueError(f"online method {method!r}: dpo_dir (π_dpo) is " +
                         ("required (rto.dpo_method's trained policy)" if method == "rto" else "read by rto only"))
    out_dir = Path(out_dir)
    inputs = {"sft_model": sft_dir, "proxy": proxy_dir, **{f"split/{name}": p for name, p in train_splits.items()}}
    if dpo_dir is not None:
        inputs["dpo_model"] = dpo_dir
    run = Fingerprint({"tokenize": asdict(tokenize)}, input_digests(inputs)).extend(code=[entry_of(train_online)])
    tokenizer = load_tokenizer(sft_dir)
    proxy = RewardModel.load(proxy_dir, device)
    critic = Critic.from_reward_model(proxy) if method in WITH_CRITIC else None
    model = ActorCritic(load_model(sft_dir, device), critic)
    reference = load_model(sft_dir, device)
    dpo = load_model(dpo_dir, device) if dpo_dir is not None else None
    splits = [load_split(tokenizer, path, name, tokenize) for name, path in train_splits.items()]
    start = time.time()
    with JsonlLog(out_dir / "log.jsonl") as log:
        result = run_online(model, method, splits, online, optim, seed, tokenizer, reference, proxy, dpo, log,
                            device, checkpoint=out_dir / "checkpoint.pt", run=run)
    fingerprint, work = result.pop("fingerprint"), result.pop("compute")
    save_model(model.actor, tokenizer, out_dir / "model", model_source(sft_dir))
    summary = {
        "method": method, "seed": seed, "online": asdict(online), "train": asdict(online_optim(optim, online)),
        "tokenize": asdict(tokenize), "wall_s": time.time() - start,
        "split_sha256": {name: manifest_sha256(path) for name, path in train_splits.items()}, "final": result,
        "compute": compute_record(work, model.actor), "fingerprint": fingerprint,
        "sources": sources(sft_dir, train_splits), "provenance": provenance(device, config),
    }
    write_json(out_dir / "summary.json", summary)
    return summary
