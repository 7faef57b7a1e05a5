rule reference:
    input:
        model=layout.sft.model,
        split=layout.split("{dataset}", "{part}"),
    output:
        layout.reference("{dataset}", "{part}"),
    params:
        tokenize=section(CFG.tokenize),
        batch_size=CFG.evaluate.batch_size,
        autocast=CFG.train.autocast,  # the precision training runs at (p2o.model.logps)
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/reference/{dataset}_{part}.log",
    script:
        "../scripts/reference.py"
