rule reference:
    input:
        model="results/sft/model",
        split="results/data/{dataset}/{part}.jsonl",
    output:
        "results/reference/{dataset}_{part}.pt",
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
