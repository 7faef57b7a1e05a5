# Reward model versus DPO over training-set sizes (after Shi et al. 2025): for each dataset, size N
# and seed, a Bradley-Terry reward model and the `rm_experiment.method` policy (DPO) train on the
# same first N pairs from the same SFT model (with seed_scope: pipeline, the first training seed's:
# RM_SFT in common.smk), and both are scored on the main held-out split.
#
#   pool (main train split, or a larger one) -> rm_subset (first N pairs + their reference log-probs)
#     -> rm_train_reward_model, rm_train_policy -> rm_evaluate -> rm_aggregate -> rm_figure, rm_table, rm_numbers
#
# The constants (RM_*) and helpers (get_rm_*, rm_runs) are in common.smk.


wildcard_constraints:
    size=r"\d+",


rule rm_prepare:
    input:
        raw=layout.raw("{dataset}"),
        source=layout.raw_source("{dataset}"),
    output:
        train=layout.rm_pool("{dataset}", "train.jsonl"),
        eval=layout.rm_pool("{dataset}", "eval.jsonl"),
        manifest=layout.rm_pool("{dataset}", "manifest.json"),
        **({"gold": layout.rm_pool("{dataset}", "gold.jsonl")} if N_GOLD else {}),  # the same pool as the main split's
    params:
        prepare=get_rm_prepare_params,
        code=code_of("prepare.py"),
    log:
        "logs/rm_experiment/{dataset}/prepare.log",
    script:
        "../scripts/prepare.py"


rule rm_reference:
    input:
        model=RM_SFT,
        split=layout.rm_pool("{dataset}", "train.jsonl"),
    output:
        layout.rm_pool("{dataset}", "reference_train.pt"),
    params:
        tokenize=section(CFG.tokenize),
        autocast=CFG.train.autocast,  # the precision training runs at (p2o.model.logps)
        code=code_of("reference.py"),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/rm_experiment/{dataset}/reference.log",
    script:
        "../scripts/reference.py"


rule rm_subset:
    input:
        unpack(get_rm_pool),
    output:
        split=layout.rm_subset("{dataset}", "{size}", "train.jsonl"),
        reference=layout.rm_subset("{dataset}", "{size}", "reference.pt"),
        manifest=layout.rm_subset("{dataset}", "{size}", "manifest.json"),
    params:
        code=code_of("rm_subset.py"),
    log:
        "logs/rm_experiment/{dataset}/subset_n{size}.log",
    script:
        "../scripts/rm_subset.py"


rule rm_train_reward_model:
    input:
        model=RM_SFT,
        split=layout.rm_subset("{dataset}", "{size}", "train.jsonl"),
    output:
        model=directory(layout.rm_run("{dataset}", "{size}", "{seed}", REWARD_MODEL).model),
        log=layout.rm_run("{dataset}", "{size}", "{seed}", REWARD_MODEL).log,
        summary=layout.rm_run("{dataset}", "{size}", "{seed}", REWARD_MODEL).summary,
    params:
        train=rm_optim(RM.lr or CFG.train.lr),
        tokenize=section(CFG.tokenize),
        code=code_of("rm_train.py"),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/rm_experiment/{dataset}/n{size}/seed{seed}/rm.log",
    script:
        "../scripts/rm_train.py"


rule rm_train_policy:
    input:
        model=RM_SFT,
        splits=[layout.rm_subset("{dataset}", "{size}", "train.jsonl")],
        references=[layout.rm_subset("{dataset}", "{size}", "reference.pt")],
    output:
        model=directory(layout.rm_run("{dataset}", "{size}", "{seed}", RM_POLICY).model),
        log=layout.rm_run("{dataset}", "{size}", "{seed}", RM_POLICY).log,
        summary=layout.rm_run("{dataset}", "{size}", "{seed}", RM_POLICY).summary,
    params:
        get_rm_policy_params,
        code=get_rm_policy_code,
    threads: MODEL_THREADS
    resources:
        gpu=CFG.train.devices,  # scripts/train.py: one GPU per process
    log:
        "logs/rm_experiment/{dataset}/n{size}/seed{seed}/" + RM_POLICY + ".log",
    script:
        "../scripts/train.py"


# One job per dataset scores every model of the experiment: on CPU, loading the libraries costs more
# than scoring a held-out split, so one process instead of one per (size, seed) saves minutes.
rule rm_evaluate:
    input:
        model=RM_SFT,
        split=layout.split("{dataset}", "eval"),
        reference=layout.reference("{dataset}", "eval", RM_SFT_SEED),
        reward_models=rm_runs(REWARD_MODEL, "model"),
        policies=rm_runs(RM_POLICY, "model"),
    output:
        reward_models=rm_runs(REWARD_MODEL, "eval"),
        policies=rm_runs(RM_POLICY, "eval"),
    params:
        cells=RM_CELLS,
        policy=RM_POLICY,
        tokenize=section(CFG.tokenize),
        evaluate=section(CFG.evaluate),
        autocast=CFG.train.autocast,
        code=code_of("rm_evaluate.py"),
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
        tidy=layout.aggregate("rm_experiment"),
        summary=layout.aggregate("rm_experiment_summary"),
    params:
        code=code_of("rm_aggregate.py"),
    log:
        "logs/rm_experiment/aggregate.log",
    script:
        "../scripts/rm_aggregate.py"


rule rm_figure:
    input:
        summary=layout.aggregate("rm_experiment_summary"),
    output:
        report(layout.generated("rm_vs_dpo.pdf"), caption="../report/rm_vs_dpo.rst", category="Figures"),
    params:
        datasets=RM_DATASETS,
        models=RM_MODELS,
        code=code_of("rm_figure.py"),
    log:
        "logs/rm_experiment/figure.log",
    script:
        "../scripts/rm_figure.py"


rule rm_table:
    input:
        summary=layout.aggregate("rm_experiment_summary"),
    output:
        tex=layout.generated("table_rm_experiment.tex"),
        csv=report(layout.table("rm_experiment"), caption="../report/rm_experiment.rst", category="Tables"),
    params:
        datasets=RM_DATASETS,
        models=RM_MODELS,
        code=code_of("rm_table.py"),
    log:
        "logs/rm_experiment/table.log",
    script:
        "../scripts/rm_table.py"


rule rm_numbers:
    input:
        tidy=layout.aggregate("rm_experiment"),
        summary=layout.aggregate("rm_experiment_summary"),
    output:
        layout.generated("rm_experiment.tex"),
    params:
        datasets=RM_DATASETS,
        models=RM_MODELS,
        epochs=RM.epochs,
        code=code_of("rm_numbers.py"),
    log:
        "logs/rm_experiment/numbers.log",
    script:
        "../scripts/rm_numbers.py"
