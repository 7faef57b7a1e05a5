rule init_model:
    input:
        splits=base_model_inputs(),
    output:
        directory(layout.base_of(MODEL_SEED)),
    params:
        model=get_base_model_params(),
        seed=get_model_seed,
        code=code_of("init_model.py"),
    log:
        model_log("init_model"),
    script:
        "../scripts/init_model.py"


rule sft:
    input:
        base=layout.base_of(MODEL_SEED),
        splits=split_files("train"),
    output:
        model=directory(layout.sft_of(MODEL_SEED).model),
        log=layout.sft_of(MODEL_SEED).log,
        summary=layout.sft_of(MODEL_SEED).summary,
    params:
        sft=get_sft_params(),
        tokenize=section(CFG.tokenize),
        datasets=DATASETS,
        seed=get_model_seed,
        code=code_of("sft.py"),
    threads: MODEL_THREADS
    resources:
        gpu=CFG.sft.devices,  # one GPU per process of the job (p2o.stages.launch)
    log:
        model_log("sft"),
    script:
        "../scripts/sft.py"
