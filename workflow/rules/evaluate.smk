rule evaluate:
    input:
        policy="results/train/{method}/seed{seed}/model",
        model="results/sft/model",
        split="results/data/{dataset}/eval.jsonl",
        reference="results/reference/{dataset}_eval.pt",
    output:
        "results/evaluate/{method}/seed{seed}/{dataset}.json",
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
