rule reference:
    input:
        model=layout.sft.model,
        split=layout.split("{dataset}", "{part}"),
    output:
        layout.reference("{dataset}", "{part}"),
    params:
        tokenize=section(CFG.tokenize),
        batch_size=CFG.evaluate.batch_size,
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/reference/{dataset}_{part}.log",
    script:
        "../scripts/reference.py"
