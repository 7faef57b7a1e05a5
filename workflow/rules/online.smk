# The online half of the field (online.methods): policies that learn from their own samples, scored by a
# proxy reward model the workflow trains (Bradley-Terry on the training splits, from the SFT model's body),
# then judged like every offline method (generate -> judge, the gold judge).
#
#   train_proxy -> train_online {ppo, rto, rloo, regression_rl} x {seed}   (rto also reads the seed's DPO policy)
#   train_proxy -> online DPO, per iteration i = 1..I and seed:
#       online_dpo_sample (the policy of iteration i-1; the SFT model at i = 1: K samples per training prompt)
#       -> online_dpo_label (the proxy's best and worst of each prompt's K, and their reference log-probs)
#       -> online_dpo_train (online_dpo.method's loss from the policy of iteration i-1)
#   Each iteration is its own rule chain: an interrupted run keeps the iterations it finished.
#
# The online constants (ONLINE_*, OD_*) and get_policy are in common.smk.


if ONLINE_METHODS:

    rule train_proxy:
        input:
            model=RM_SFT,
            pools=split_files("train"),
            heldout=split_files("eval"),
        output:
            model=directory(layout.proxy().model),
            log=layout.proxy().log,
            summary=layout.proxy().summary,
            heldout=layout.proxy_heldout(),
        params:
            datasets=DATASETS,
            train=section(PROXY_OPTIM),
            tokenize=section(CFG.tokenize),
            seed=0,
            role="proxy",
            n_pairs=CFG.online.proxy.n_pairs,
            label_noise=CFG.online.proxy.label_noise,
            code=code_of("train_scored_rm.py"),
        threads: MODEL_THREADS
        resources:
            gpu=1,
        log:
            "logs/proxy_rm.log",
        script:
            "../scripts/train_scored_rm.py"


if ONLINE_RL:

    rule train_online:
        input:
            unpack(get_online_inputs),
        output:
            model=directory(layout.train("{method}", "{seed}").model),
            log=layout.train("{method}", "{seed}").log,
            summary=layout.train("{method}", "{seed}").summary,
        wildcard_constraints:
            method="|".join(ONLINE_RL),
        params:
            datasets=DATASETS,
            online=section(CFG.online),
            train=section(CFG.train),
            tokenize=section(CFG.tokenize),
            code=code_of("train_online.py"),
        threads: MODEL_THREADS
        resources:
            gpu=1,
        log:
            "logs/train/{method}/seed{seed}.log",
        script:
            "../scripts/train_online.py"


wildcard_constraints:
    iter=r"\d+",


if ONLINE_DPO_ON:

    rule online_dpo_sample:
        input:
            policy=get_online_dpo_previous,
            model=get_online_dpo_previous,  # log π of the samples under the policy itself: no second model
            splits=split_files("train"),
        output:
            samples=[layout.online_dpo_samples("{seed}", "{iter}", d) for d in DATASETS],
            meta=layout.online_dpo_generation_meta("{seed}", "{iter}"),
        params:
            datasets=DATASETS,
            generate=get_online_dpo_sampling,
            tokenize=section(CFG.tokenize),
            autocast=CFG.train.autocast,
            inference_dtype=CFG.model.inference_dtype,
            run=lambda wildcards: {"method": ONLINE_DPO, "seed": int(wildcards.seed), "iteration": int(wildcards.iter)},
            code=code_of("generate.py"),
        threads: MODEL_THREADS
        resources:
            gpu=1,
        log:
            "logs/online_dpo/seed{seed}/iter{iter}/sample.log",
        script:
            "../scripts/generate.py"


    rule online_dpo_label:
        input:
            samples=[layout.online_dpo_samples("{seed}", "{iter}", d) for d in DATASETS],
            proxy=layout.proxy().model,
            model=get_online_dpo_reference_model,
        output:
            pairs=[layout.online_dpo_pairs("{seed}", "{iter}", d) for d in DATASETS],
            labels=[layout.online_dpo_labels("{seed}", "{iter}", d) for d in DATASETS],
            references=[layout.online_dpo_reference("{seed}", "{iter}", d) for d in DATASETS],
        params:
            datasets=DATASETS,
            tokenize=section(CFG.tokenize),
            autocast=CFG.train.autocast,  # the precision training runs at (p2o.model.logps)
            inference_dtype=CFG.model.inference_dtype,
            code=code_of("online_dpo_label.py"),
        threads: MODEL_THREADS
        resources:
            gpu=1,
        log:
            "logs/online_dpo/seed{seed}/iter{iter}/label.log",
        script:
            "../scripts/online_dpo_label.py"


    rule online_dpo_train:
        input:
            model=get_online_dpo_previous,
            splits=[layout.online_dpo_pairs("{seed}", "{iter}", d) for d in DATASETS],
            references=[layout.online_dpo_reference("{seed}", "{iter}", d) for d in DATASETS],
        output:
            model=directory(layout.online_dpo("{seed}", "{iter}").model),
            log=layout.online_dpo("{seed}", "{iter}").log,
            summary=layout.online_dpo("{seed}", "{iter}").summary,
        params:
            {"method": section(CFG.method(OD.method)), "train": section(OD_OPTIM), "tokenize": section(CFG.tokenize),
             "datasets": DATASETS, "inference_dtype": CFG.model.inference_dtype},
            code=code_of("train.py", loss_entry(CFG.method(OD.method).loss)),
        threads: MODEL_THREADS
        resources:
            gpu=1,
        log:
            "logs/online_dpo/seed{seed}/iter{iter}/train.log",
        script:
            "../scripts/train.py"
