rule init_model:
    input:
        splits=base_model_inputs(),
    output:
        directory(layout.base),
    params:
        model=section(CFG.model),
        seed=0,
    log:
        "logs/init_model.log",
    script:
        "../scripts/init_model.py"


rule sft:
    input:
        base=layout.base,
        splits=split_files("train"),
    output:
        model=directory(layout.sft.model),
        log=layout.sft.log,
        summary=layout.sft.summary,
    params:
        sft=section(CFG.sft),
        tokenize=section(CFG.tokenize),
        datasets=DATASETS,
        seed=0,
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/sft.log",
    script:
        "../scripts/sft.py"
