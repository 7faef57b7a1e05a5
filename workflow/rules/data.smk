rule demo_data:
    output:
        hh="results/demo/raw/hh.jsonl",
        shp="results/demo/raw/shp.jsonl",
        uf="results/demo/raw/ultrafeedback.jsonl",
    params:
        n_prompts=300,
        seed=0,
    log:
        "logs/demo_data.log",
    script:
        "../scripts/demo_data.py"


rule download:
    input:
        raw_source,
    output:
        "results/raw/{dataset}.jsonl",
    params:
        dataset=download_params,
    log:
        "logs/download/{dataset}.log",
    script:
        "../scripts/download.py"


rule prepare:
    input:
        "results/raw/{dataset}.jsonl",
    output:
        train="results/data/{dataset}/train.jsonl",
        eval="results/data/{dataset}/eval.jsonl",
        manifest="results/data/{dataset}/manifest.json",
    params:
        prepare=prepare_params,
    log:
        "logs/prepare/{dataset}.log",
    script:
        "../scripts/prepare.py"
