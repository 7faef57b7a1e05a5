rule train:
    input:
        unpack(get_train_inputs),
    output:
        model=directory(layout.train("{method}", "{seed}").model),
        log=layout.train("{method}", "{seed}").log,
        summary=layout.train("{method}", "{seed}").summary,
    wildcard_constraints:
        method="|".join(METHODS),  # the offline methods (online ones: rules/online.smk)
    params:
        get_train_params,
        code=get_train_code,
    threads: MODEL_THREADS
    resources:
        gpu=CFG.train.devices,  # one GPU per process of the job (p2o.stages.launch)
    log:
        "logs/train/{method}/seed{seed}.log",
    script:
        "../scripts/train.py"
