"""The results layout: where every stage reads and writes, under one root folder.

One place names the paths, for the workflow's rules (root ``results``) and for the ``p2o`` command
line (root ``--workdir``, default ``runs``)::

    raw/{dataset}.jsonl, {dataset}.source.json       download: the rows and their source record
    data/{dataset}/{train,eval}.jsonl, manifest.json  prepare (and gold.jsonl: the trained judge's pool)
    base/                                            init_model
    sft/{model/, log.jsonl, summary.json}            sft: the reference model
    reference/{dataset}_{part}.pt                    reference log-probs, once per split
    {base,sft,reference}/seed{seed}/...              the same, per training seed (seed_scope: pipeline)
    train/{method}/seed{seed}/{model/, log.jsonl, summary.json}
    evaluate/{method}/seed{seed}/{dataset}.json
    generate/{method}/seed{seed}/{dataset}.jsonl, generation.json   samples of a trained model
    generate/sft/{dataset}.jsonl (generate/sft/seed{seed}/...)      the SFT model's, the baseline
    judge/{method}/seed{seed}/{dataset}.json         gold reward, win rate against SFT, KL estimates
    gold_judge/{model/, log.jsonl, summary.json, heldout.json}    the trained gold judge (judge.name: trained)
    proxy_rm/{model/, log.jsonl, summary.json, heldout.json}      online training's proxy reward model
    online_dpo/seed{seed}/iter{i}/{samples/, pairs/{dataset}/, reference/, model/, ...}  online DPO's iterations
    aggregate/{name}.csv                             tidy results and summaries
    rm_experiment/{dataset}/...                      reward model versus DPO (``Layout.rm_*``)
    tables/{name}.csv, paper/generated/{name}, paper/main.pdf

Every argument is formatted into the path as given, so a Snakemake wildcard is an argument like
any other: ``Layout().train("{method}", "{seed}").model`` is the rule's output pattern
``results/train/{method}/seed{seed}/model`` and ``Layout().train("dpo", 0).model`` one job's
folder. Paths are strings, built as ``pathlib`` builds them (``Layout("./runs/")`` gives
``runs/...``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    """A training run's folder as ``jobs.sft``, ``jobs.train`` and ``reward.train_reward_model`` write it."""

    dir: str

    @property
    def model(self) -> str:
        return _join(self.dir, "model")

    @property
    def log(self) -> str:
        return _join(self.dir, "log.jsonl")

    @property
    def summary(self) -> str:
        return _join(self.dir, "summary.json")


def _join(*parts) -> str:
    return str(Path(*map(str, parts)))


class Layout:
    """Paths of the results under ``root``."""

    def __init__(self, root: str | os.PathLike = "results"):
        self.root = root

    def path(self, *parts) -> str:
        return _join(self.root, *parts)

    # ------------------------------------------------------------------ data and models

    def demo_raw(self, file: str) -> str:
        """The demo's raw files (``p2o.data.demo.DEMO_FILES``), where config/demo.yaml's sources point."""
        return self.path("demo", "raw", file)

    def raw(self, dataset: str) -> str:
        return self.path("raw", f"{dataset}.jsonl")

    def raw_source(self, dataset: str) -> str:
        """The source record ``download`` writes beside the raw file (``p2o.stages.jobs.raw_source_path``)."""
        return self.path("raw", f"{dataset}.source.json")

    def data(self, dataset: str) -> str:
        """The folder ``p2o.data.prepare_dataset`` writes: the splits and the manifest."""
        return self.path("data", dataset)

    def split(self, dataset: str, part: str) -> str:
        return _join(self.data(dataset), f"{part}.jsonl")

    def manifest(self, dataset: str) -> str:
        return _join(self.data(dataset), "manifest.json")

    def _seeded(self, stage: str, seed) -> str:
        """A model stage's folder: shared (``seed`` None) or one training seed's own."""
        return self.path(stage) if seed is None else self.path(stage, f"seed{seed}")

    def base_of(self, seed=None) -> str:
        return self._seeded("base", seed)

    def sft_of(self, seed=None) -> Run:
        return Run(self._seeded("sft", seed))

    @property
    def base(self) -> str:
        return self.base_of()

    @property
    def sft(self) -> Run:
        return self.sft_of()

    def reference(self, dataset: str, part: str, seed=None) -> str:
        return _join(self._seeded("reference", seed), f"{dataset}_{part}.pt")

    def train(self, method: str, seed) -> Run:
        return Run(self.path("train", method, f"seed{seed}"))

    def evaluate(self, method: str, seed, dataset: str) -> str:
        return self.path("evaluate", method, f"seed{seed}", f"{dataset}.json")

    def generation(self, model: str, seed=None) -> str:
        """The folder of a model's samples (``p2o.stages.generation.generate``): a method's at ``seed``, or the SFT
        model's (``model`` ``sft``), shared (``seed`` None) or one seed's own."""
        return self.path("generate", model) if seed is None else self.path("generate", model, f"seed{seed}")

    def samples(self, model: str, seed, dataset: str) -> str:
        """One dataset's samples, a JSONL row per completion."""
        return _join(self.generation(model, seed), f"{dataset}.jsonl")

    def generation_meta(self, model: str, seed) -> str:
        """What was sampled and how (settings, prompt style, models, provenance), beside the samples."""
        return _join(self.generation(model, seed), "generation.json")

    def judge(self, method: str, seed, dataset: str) -> str:
        return self.path("judge", method, f"seed{seed}", f"{dataset}.json")

    def gold_judge(self) -> Run:
        """The reward model the workflow trains as the gold judge (``judge.name: trained``)."""
        return Run(self.path("gold_judge"))

    def gold_judge_heldout(self) -> str:
        """Its accuracy on every held-out split (pairs it never saw)."""
        return _join(self.gold_judge().dir, "heldout.json")

    # ------------------------------------------------------------------ online training

    def proxy(self) -> Run:
        """The proxy reward model online methods optimise (Bradley–Terry on the training splits)."""
        return Run(self.path("proxy_rm"))

    def proxy_heldout(self) -> str:
        return _join(self.proxy().dir, "heldout.json")

    def online_dpo(self, seed, iteration) -> Run:
        """Online DPO's iteration ``iteration`` (1, 2, ...) of training seed ``seed``: its policy, log, summary."""
        return Run(self.path("online_dpo", f"seed{seed}", f"iter{iteration}"))

    def online_dpo_samples(self, seed, iteration, dataset: str) -> str:
        """The K samples per training prompt the iteration's pairs are picked from (drawn by the previous policy)."""
        return _join(self.online_dpo(seed, iteration).dir, "samples", f"{dataset}.jsonl")

    def online_dpo_generation_meta(self, seed, iteration) -> str:
        return _join(self.online_dpo(seed, iteration).dir, "samples", "generation.json")

    def online_dpo_pairs(self, seed, iteration, dataset: str) -> str:
        """The iteration's (best, worst) pairs by the proxy reward model, a split with a manifest beside it."""
        return _join(self.online_dpo(seed, iteration).dir, "pairs", dataset, "train.jsonl")

    def online_dpo_labels(self, seed, iteration, dataset: str) -> str:
        """What labelling found and cost (``p2o.stages.online_dpo.label_pairs``), beside the pairs."""
        return _join(self.online_dpo(seed, iteration).dir, "pairs", dataset, "labels.json")

    def online_dpo_reference(self, seed, iteration, dataset: str) -> str:
        return _join(self.online_dpo(seed, iteration).dir, "reference", f"{dataset}.pt")

    def aggregate(self, name: str) -> str:
        return self.path("aggregate", f"{name}.csv")

    # ------------------------------------------------------------------ reward model versus DPO

    def rm_dataset(self, dataset: str) -> str:
        return self.path("rm_experiment", dataset)

    def rm_pool(self, dataset: str, file: str) -> str:
        """A training pool larger than the main split (prepared like it): ``train.jsonl``,
        ``eval.jsonl``, ``manifest.json``, ``reference_train.pt``."""
        return _join(self.rm_dataset(dataset), "pool", file)

    def rm_subset(self, dataset: str, size, file: str) -> str:
        """The first ``size`` pairs (``reward.rm_subset``): ``train.jsonl``, ``reference.pt``, ``manifest.json``."""
        return _join(self.rm_dataset(dataset), f"n{size}", file)

    def rm_run(self, dataset: str, size, seed, model: str) -> Run:
        """One model of one cell: ``model`` is ``rm`` or the policy's method."""
        return Run(_join(self.rm_dataset(dataset), f"n{size}", f"seed{seed}", model))

    def rm_evaluate(self, dataset: str, size, seed, model: str) -> str:
        return _join(self.rm_run(dataset, size, seed, model).dir, "eval.json")

    # ------------------------------------------------------------------ report

    def table(self, name: str) -> str:
        """A table's numbers as CSV (its LaTeX is ``generated("table_<name>.tex")``)."""
        return self.path("tables", f"{name}.csv")

    @property
    def paper(self) -> str:
        """The folder the paper is built in (``paper/main.tex`` is copied here)."""
        return self.path("paper")

    def generated(self, name: str) -> str:
        """A file the paper reads as ``generated/<name>``."""
        return _join(self.paper, "generated", name)

    @property
    def pdf(self) -> str:
        return _join(self.paper, "main.pdf")
