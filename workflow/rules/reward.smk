# Reward model versus DPO over training-set sizes (after Shi et al. 2025): for each dataset, size N
# and seed, a Bradley-Terry reward model and the `rm_experiment.method` policy (DPO) train on the
# same first N pairs from the same SFT model, and both are scored on the main held-out split.
#
#   pool (main train split, or a larger one) -> rm_subset (first N pairs + their reference log-probs)
#     -> rm_train_reward_model, rm_train_policy -> rm_evaluate -> rm_aggregate -> rm_figure, rm_table, rm_numbers

import dataclasses

RM = CFG.rm_experiment
RM_DATASETS = RM.dataset_names(CFG.data)
RM_POLICY = RM.method  # the policy's folder name and label
RM_MODELS = ["rm", RM_POLICY]
RM_CELLS = [(size, seed) for size in RM.sizes for seed in RM.seeds]
# The main training split is the first data.n_train pairs of the hash order; a larger N needs a larger
# pool, prepared by the same rule with the same salt and n_eval (so the held-out pairs are the same).
RM_OWN_POOL = max(RM.sizes) > CFG.data.n_train
RM_ROOT = "results/rm_experiment/{dataset}"
RM_RUN = RM_ROOT + "/n{size}/seed{seed}"


wildcard_constraints:
    size=r"\d+",


def rm_optim(lr):
    """The `train` optimiser with the experiment's epochs and no held-out curves."""
    return section(dataclasses.replace(CFG.train, epochs=RM.epochs, eval_every=0, lr=lr))


def rm_pool(wildcards):
    """The training pool a subset is cut from, and the manifests whose held-out splits must agree."""
    main = f"results/data/{wildcards.dataset}/manifest.json"
    if RM_OWN_POOL:
        root = RM_ROOT.format(dataset=wildcards.dataset) + "/pool"
        return {"split": f"{root}/train.jsonl", "reference": f"{root}/reference_train.pt",
                "manifest": f"{root}/manifest.json", "main_manifest": main}
    return {"split": f"results/data/{wildcards.dataset}/train.jsonl",
            "reference": f"results/reference/{wildcards.dataset}_train.pt", "manifest": main, "main_manifest": main}


def rm_prepare_params(wildcards):
    return {**prepare_params(wildcards), "n_train": max(RM.sizes)}


def rm_policy_params(wildcards):
    """What scripts/train.py reads (as train_params), for the experiment's policy."""
    return {"method": section(CFG.method(RM_POLICY)), "train": rm_optim(CFG.train.lr),
            "tokenize": section(CFG.tokenize), "datasets": [wildcards.dataset]}


def rm_runs(model, name, dataset="{dataset}"):
    return [RM_RUN.format(dataset=dataset, size=size, seed=seed) + f"/{model}/{name}" for size, seed in RM_CELLS]


def rm_evaluation_files():
    return [f for d in RM_DATASETS for model in RM_MODELS for f in rm_runs(model, "eval.json", d)]


RM_PAPER_INPUTS = [
    "results/paper/generated/rm_vs_dpo.pdf",
    "results/paper/generated/table_rm_experiment.tex",
    "results/paper/generated/rm_experiment.tex",
]


rule rm_prepare:
    input:
        "results/raw/{dataset}.jsonl",
    output:
        train=RM_ROOT + "/pool/train.jsonl",
        eval=RM_ROOT + "/pool/eval.jsonl",
        manifest=RM_ROOT + "/pool/manifest.json",
    params:
        prepare=rm_prepare_params,
    log:
        "logs/rm_experiment/{dataset}/prepare.log",
    script:
        "../scripts/prepare.py"


rule rm_reference:
    input:
        model="results/sft/model",
        split=RM_ROOT + "/pool/train.jsonl",
    output:
        RM_ROOT + "/pool/reference_train.pt",
    params:
        tokenize=section(CFG.tokenize),
        batch_size=CFG.evaluate.batch_size,
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/rm_experiment/{dataset}/reference.log",
    script:
        "../scripts/reference.py"


rule rm_subset:
    input:
        unpack(rm_pool),
    output:
        split=RM_ROOT + "/n{size}/train.jsonl",
        reference=RM_ROOT + "/n{size}/reference.pt",
        manifest=RM_ROOT + "/n{size}/manifest.json",
    log:
        "logs/rm_experiment/{dataset}/subset_n{size}.log",
    script:
        "../scripts/rm_subset.py"


rule rm_train_reward_model:
    input:
        model="results/sft/model",
        split=RM_ROOT + "/n{size}/train.jsonl",
    output:
        model=directory(RM_RUN + "/rm/model"),
        log=RM_RUN + "/rm/log.jsonl",
        summary=RM_RUN + "/rm/summary.json",
    params:
        train=rm_optim(RM.lr or CFG.train.lr),
        tokenize=section(CFG.tokenize),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/rm_experiment/{dataset}/n{size}/seed{seed}/rm.log",
    script:
        "../scripts/rm_train.py"


rule rm_train_policy:
    input:
        model="results/sft/model",
        splits=[RM_ROOT + "/n{size}/train.jsonl"],
        references=[RM_ROOT + "/n{size}/reference.pt"],
    output:
        model=directory(RM_RUN + f"/{RM_POLICY}/model"),
        log=RM_RUN + f"/{RM_POLICY}/log.jsonl",
        summary=RM_RUN + f"/{RM_POLICY}/summary.json",
    params:
        rm_policy_params,
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/rm_experiment/{dataset}/n{size}/seed{seed}/" + RM_POLICY + ".log",
    script:
        "../scripts/train.py"


# One job per dataset scores every model of the experiment: on CPU, loading the libraries costs more
# than scoring a held-out split, so one process instead of one per (size, seed) saves minutes.
rule rm_evaluate:
    input:
        model="results/sft/model",
        split="results/data/{dataset}/eval.jsonl",
        reference="results/reference/{dataset}_eval.pt",
        reward_models=rm_runs("rm", "model"),
        policies=rm_runs(RM_POLICY, "model"),
    output:
        reward_models=rm_runs("rm", "eval.json"),
        policies=rm_runs(RM_POLICY, "eval.json"),
    params:
        cells=RM_CELLS,
        policy=RM_POLICY,
        tokenize=section(CFG.tokenize),
        evaluate=section(CFG.evaluate),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/rm_experiment/{dataset}/evaluate.log",
    script:
        "../scripts/rm_evaluate.py"


rule rm_aggregate:
    input:
        rm_evaluation_files(),
    output:
        tidy="results/aggregate/rm_experiment.csv",
        summary="results/aggregate/rm_experiment_summary.csv",
    log:
        "logs/rm_experiment/aggregate.log",
    script:
        "../scripts/rm_aggregate.py"


rule rm_figure:
    input:
        summary="results/aggregate/rm_experiment_summary.csv",
    output:
        report("results/paper/generated/rm_vs_dpo.pdf", caption="../report/rm_vs_dpo.rst", category="Figures"),
    params:
        datasets=RM_DATASETS,
        models=RM_MODELS,
    log:
        "logs/rm_experiment/figure.log",
    script:
        "../scripts/rm_figure.py"


rule rm_table:
    input:
        summary="results/aggregate/rm_experiment_summary.csv",
    output:
        tex="results/paper/generated/table_rm_experiment.tex",
        csv=report("results/tables/rm_experiment.csv", caption="../report/rm_experiment.rst", category="Tables"),
    params:
        datasets=RM_DATASETS,
        models=RM_MODELS,
    log:
        "logs/rm_experiment/table.log",
    script:
        "../scripts/rm_table.py"


rule rm_numbers:
    input:
        tidy="results/aggregate/rm_experiment.csv",
        summary="results/aggregate/rm_experiment_summary.csv",
    output:
        "results/paper/generated/rm_experiment.tex",
    params:
        datasets=RM_DATASETS,
        models=RM_MODELS,
        epochs=RM.epochs,
    log:
        "logs/rm_experiment/numbers.log",
    script:
        "../scripts/rm_numbers.py"
