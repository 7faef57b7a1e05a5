rule train:
    input:
        unpack(train_inputs),
    output:
        model=directory("results/train/{method}/seed{seed}/model"),
        log="results/train/{method}/seed{seed}/log.jsonl",
        summary="results/train/{method}/seed{seed}/summary.json",
    params:
        train_params,
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        "logs/train/{method}/seed{seed}.log",
    script:
        "../scripts/train.py"
