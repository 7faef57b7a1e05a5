# One job per trained model: the models are loaded once and every held-out split is evaluated in turn
# (a job's cost is mostly starting Python and loading the models; a split of the demo takes a second).
rule evaluate:
    input:
        policy=layout.train("{method}", "{seed}").model,
        model=get_sft_model,
        splits=split_files("eval"),
        references=get_eval_references,
    output:
        [layout.evaluate("{method}", "{seed}", dataset) for dataset in DATASETS],
    params:
        datasets=DATASETS,
        tokenize=section(CFG.tokenize),
        evaluate=section(CFG.evaluate),
        autocast=CFG.train.autocast,  # the precision the policy trained at (p2o.model.logps)
        inference_dtype=CFG.model.inference_dtype,
        code=code_of("evaluate.py"),
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/evaluate/{method}/seed{seed}.log",
    script:
        "../scripts/evaluate.py"
