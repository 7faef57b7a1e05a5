# Judging the models by what they generate: every trained model (method x seed) and the SFT model
# sample completions of the first generate.n_prompts held-out prompts of every dataset, with the SFT
# model's log-probs of them (the Monte-Carlo KL); the gold judge (judge.name: the demo's planted rule
# or a hub reward model) scores each method's samples against the SFT model's on the same prompts.
#
#   generate_sft (the baseline), generate {method} x {seed} -> judge {method} x {seed}
#     -> generation_aggregate -> generation_report (win-rate table, reward-vs-KL figure, samples appendix)
#   judge.name: trained adds train_judge: a Bradley-Terry reward model from the SFT model's body, trained
#     on every dataset's gold pool (judge.n_pairs pairs whose prompts no split holds), scored on the held-out splits
#
# One job per model covers every dataset (loading the libraries costs more than sampling a split).

from p2o.config.sections import SFT_BASELINE

GENERATE_PARAMS = dict(datasets=DATASETS, generate=section(CFG.generate), tokenize=section(CFG.tokenize),
                       autocast=CFG.train.autocast, inference_dtype=CFG.model.inference_dtype)
# a reward model judges on the GPU with the model rules' threads; the planted rule needs neither
JUDGE_GPU = 1 if CFG.judge.neural else 0
JUDGE_THREADS = MODEL_THREADS if CFG.judge.neural else 1


def baseline_samples(wildcards):
    """The SFT model's samples a method's are judged against: shared, or the seed's own (seed_scope: pipeline)."""
    seed = None if MODEL_SEED is None else wildcards.seed
    return [layout.samples(SFT_BASELINE, seed, d) for d in DATASETS]


def get_baseline_meta(wildcards):
    return layout.generation_meta(SFT_BASELINE, None if MODEL_SEED is None else wildcards.seed)


def get_judge_model(wildcards):
    """The trained judge's folder and its held-out accuracy, when the workflow trains the judge."""
    return {"judge_model": layout.gold_judge().model, "judge_heldout": layout.gold_judge_heldout()} if N_GOLD else {}


# the offline-versus-online comparison: the original protocol's methods and the online ones
COMPARED_METHODS = MAIN_METHODS + ONLINE_METHODS


def run_costs(method):
    """Seed -> the files whose `compute.flops` add up to one run's cost: the training summary; for online
    DPO every iteration's training summary, sampling record and labelling records."""
    if method != ONLINE_DPO:
        return {str(s): [layout.train(method, s).summary] for s in SEEDS}
    return {str(s): [f for i in range(1, OD.iterations + 1) for f in [
        layout.online_dpo(s, i).summary, layout.online_dpo_generation_meta(s, i),
        *(layout.online_dpo_labels(s, i, d) for d in DATASETS)]] for s in SEEDS}


def judge_files():
    return expand(layout.judge("{method}", "{seed}", "{dataset}"), method=JUDGED_METHODS, seed=SEEDS, dataset=DATASETS)


rule generate_sft:
    input:
        model=layout.sft_of(MODEL_SEED).model,
        splits=split_files("eval"),
    output:
        samples=[layout.samples(SFT_BASELINE, MODEL_SEED, d) for d in DATASETS],
        meta=layout.generation_meta(SFT_BASELINE, MODEL_SEED),
    params:
        **GENERATE_PARAMS,
        code=code_of("generate.py"),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        model_log("generate_sft"),
    script:
        "../scripts/generate.py"


rule generate:
    input:
        policy=get_policy,
        model=get_sft_model,
        splits=split_files("eval"),
    output:
        samples=[layout.samples("{method}", "{seed}", d) for d in DATASETS],
        meta=layout.generation_meta("{method}", "{seed}"),
    params:
        **GENERATE_PARAMS,
        code=code_of("generate.py"),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/generate/{method}/seed{seed}.log",
    script:
        "../scripts/generate.py"


rule train_judge:
    input:
        model=RM_SFT,
        pools=split_files("gold"),
        heldout=split_files("eval"),
    output:
        model=directory(layout.gold_judge().model),
        log=layout.gold_judge().log,
        summary=layout.gold_judge().summary,
        heldout=layout.gold_judge_heldout(),
    params:
        datasets=DATASETS,
        train=section(CFG.judge_optim),
        tokenize=section(CFG.tokenize),
        seed=CFG.judge.seed,
        role="gold_judge",
        n_pairs=None,
        label_noise=0.0,
        code=code_of("train_scored_rm.py"),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/gold_judge.log",
    script:
        "../scripts/train_scored_rm.py"


rule judge:
    input:
        unpack(get_judge_model),
        samples=[layout.samples("{method}", "{seed}", d) for d in DATASETS],
        meta=layout.generation_meta("{method}", "{seed}"),
        baseline=baseline_samples,
        baseline_meta=get_baseline_meta,
    output:
        [layout.judge("{method}", "{seed}", d) for d in DATASETS],
    params:
        datasets=DATASETS,
        judge=section(CFG.judge),
        tokenize=section(CFG.tokenize) if N_GOLD else {},
        code=code_of("judge.py"),
    threads: JUDGE_THREADS
    resources:
        gpu=JUDGE_GPU,
    log:
        "logs/judge/{method}/seed{seed}.log",
    script:
        "../scripts/judge.py"


rule generation_aggregate:
    input:
        judgements=judge_files(),
    output:
        tidy=layout.aggregate("generation"),
        summary=layout.aggregate("generation_summary"),
    params:
        code=code_of("generation_aggregate.py"),
    log:
        "logs/generation_aggregate.log",
    script:
        "../scripts/generation_aggregate.py"


# The paper's view: the methods of the original protocol (generation.csv holds every run, the
# compute-matched reruns too); the appendix shows the first seed's samples.
rule generation_report:
    input:
        unpack(get_judge_model),
        summary=layout.aggregate("generation_summary"),
        tidy=layout.aggregate("generation"),
        baseline=[layout.samples(SFT_BASELINE, None if MODEL_SEED is None else SEEDS[0], d) for d in DATASETS],
        samples=[layout.samples(m, SEEDS[0], d) for m in MAIN_METHODS for d in DATASETS],
        costs=[f for m in COMPARED_METHODS for files in run_costs(m).values() for f in files],
    output:
        table=layout.generated("table_winrate.tex"),
        csv=report(layout.table("winrate"), caption="../report/winrate.rst", category="Tables"),
        figure=report(layout.generated("reward_kl.pdf"), caption="../report/reward_kl.rst", category="Figures"),
        appendix=layout.generated("samples.tex"),
        online=layout.generated("table_online.tex"),
    params:
        methods=MAIN_METHODS,
        online_methods=ONLINE_METHODS,
        costs={m: run_costs(m) for m in COMPARED_METHODS},
        datasets=DATASETS,
        seed=SEEDS[0],
        judge=CFG.judge.name,
        judge_pairs=N_GOLD,
        n_prompts=CFG.generate.n_prompts,
        n_samples=CFG.generate.n_samples,
        max_new_tokens=CFG.generate.max_new_tokens,
        temperature=CFG.generate.temperature,
        top_p=CFG.generate.top_p,
        code=code_of("generation_report.py"),
    log:
        "logs/generation_report.log",
    script:
        "../scripts/generation_report.py"
