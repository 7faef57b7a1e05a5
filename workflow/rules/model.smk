rule init_model:
    input:
        splits=split_files("train") if CFG.model.name_or_path == "tiny" else [],
    output:
        directory("results/base"),
    params:
        model=section(CFG.model),
        seed=0,
    log:
        "logs/init_model.log",
    script:
        "../scripts/init_model.py"


rule sft:
    input:
        base="results/base",
        splits=split_files("train"),
    output:
        model=directory("results/sft/model"),
        log="results/sft/log.jsonl",
        summary="results/sft/summary.json",
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
