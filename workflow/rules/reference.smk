rule reference:
    input:
        model=layout.sft_of(MODEL_SEED).model,
        split=layout.split("{dataset}", "{part}"),
    output:
        layout.reference("{dataset}", "{part}", MODEL_SEED),
    params:
        tokenize=section(CFG.tokenize),
        autocast=CFG.train.autocast,  # the precision training runs at (p2o.model.logps)
        inference_dtype=CFG.model.inference_dtype,
        code=code_of("reference.py"),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        model_log("reference", "{dataset}_{part}"),
    script:
        "../scripts/reference.py"
