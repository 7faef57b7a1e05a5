# Configuration checks, wildcard constraints and the helpers that hand each job only the part of
# the config it reads, so that changing one method's hyper-parameter reruns that method alone.

import dataclasses

from snakemake.utils import validate

from p2o.config import ConfigError, config_from_dict
from p2o.data.sources import looks_local


validate(config, schema="../schemas/config.schema.yaml")
try:  # the library's own checks: each method's hyper-parameters against its loss, cross-key rules
    CFG = config_from_dict(config)
except ConfigError as e:
    raise WorkflowError(f"invalid configuration: {e}")

DATASETS = CFG.data.names  # training order
MAIN_METHODS = CFG.method_names  # the original protocol: order of table rows and legends
MATCHED_METHODS = CFG.matched_names  # rows of the compute-matched table (every method at K steps per batch)
METHODS = CFG.all_method_names  # everything trained: the above plus the K-step reruns


def baseline_of(rows):
    """The row significance is tested against: DPO (at the rows' K), else the first row."""
    return next((m for m in rows if CFG.method(m).loss == "dpo"), rows[0] if rows else None)


def comparisons():
    """[method, baseline] pairs: each method against DPO in the original protocol and against DPO
    at K steps per batch in the compute-matched one (P²O is in both)."""
    return [[m, baseline_of(rows)] for rows in (MAIN_METHODS, MATCHED_METHODS) for m in rows
            if m != baseline_of(rows)]
SEEDS = CFG.seeds
# A model job's threads: every core Snakemake was given (--cores), since a local GPU run trains one
# model at a time (the rules claim gpu=1); profiles set fewer (workflow/profiles/cpu: one each, so
# that jobs run side by side; slurm: --cpus-per-task). Snakemake passes it to torch as OMP_NUM_THREADS.
try:
    MODEL_THREADS = workflow.cores
except WorkflowError:  # a cluster executor has no --cores: its profile's set-threads decides
    MODEL_THREADS = 1
PARTS = ["train", "eval"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    method="|".join(METHODS),
    seed=r"\d+",
    part="train|eval",


def section(obj):
    """A config section as a plain dict (what a rule's params hold)."""
    return dataclasses.asdict(obj)


# ---------------------------------------------------------------- data


def raw_source(wildcards):
    """The local raw file a dataset is read from, if any (hub sources have no file input)."""
    source = CFG.data.datasets[wildcards.dataset].source
    return [source] if looks_local(source) else []


def download_params(wildcards):
    ds = CFG.data.datasets[wildcards.dataset]
    return {"source": ds.source, "split": ds.split, "data_dir": ds.data_dir, "revision": ds.revision}


def prepare_params(wildcards):
    ds = CFG.data.datasets[wildcards.dataset]
    data = CFG.data
    return {"format": ds.format, "min_score_ratio": ds.min_score_ratio, "n_train": data.n_train,
            "n_eval": data.n_eval, "split_salt": data.split_salt}


def split_files(part):
    return [f"results/data/{d}/{part}.jsonl" for d in DATASETS]


def reference_files(part):
    return [f"results/reference/{d}_{part}.pt" for d in DATASETS]


# ---------------------------------------------------------------- training and evaluation


def train_inputs(wildcards):
    inputs = {"model": "results/sft/model", "splits": split_files("train"), "references": reference_files("train")}
    if CFG.train.eval_every > 0:  # held-out curves during training
        inputs.update(eval_splits=split_files("eval"), eval_references=reference_files("eval"))
    return inputs


def train_params(wildcards):
    params = {"method": section(CFG.method(wildcards.method)), "train": section(CFG.train),
              "tokenize": section(CFG.tokenize), "datasets": DATASETS}
    if CFG.train.eval_every > 0:
        params["evaluate"] = section(CFG.evaluate)
    return params


def evaluation_files(method=METHODS, seed=SEEDS, dataset=DATASETS):
    return expand("results/evaluate/{method}/seed{seed}/{dataset}.json", method=method, seed=seed, dataset=dataset)


def training_files(name):
    return expand("results/train/{method}/seed{seed}/{name}", method=METHODS, seed=SEEDS, name=name)


# ---------------------------------------------------------------- targets


def final_outputs():
    return ["results/paper/main.pdf"]
