rule evaluate:
    input:
        policy=layout.train("{method}", "{seed}").model,
        model=layout.sft.model,
        split=layout.split("{dataset}", "eval"),
        reference=layout.reference("{dataset}", "eval"),
    output:
        layout.evaluate("{method}", "{seed}", "{dataset}"),
    params:
        tokenize=section(CFG.tokenize),
        evaluate=section(CFG.evaluate),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/evaluate/{method}/seed{seed}/{dataset}.log",
    script:
        "../scripts/evaluate.py"
