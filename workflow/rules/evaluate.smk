rule evaluate:
    input:
        policy=layout.train("{method}", "{seed}").model,
        model=get_sft_model,
        split=layout.split("{dataset}", "eval"),
        reference=get_eval_reference,
    output:
        layout.evaluate("{method}", "{seed}", "{dataset}"),
    params:
        tokenize=section(CFG.tokenize),
        evaluate=section(CFG.evaluate),
        autocast=CFG.train.autocast,  # the precision the policy trained at (p2o.model.logps)
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/evaluate/{method}/seed{seed}/{dataset}.log",
    script:
        "../scripts/evaluate.py"
