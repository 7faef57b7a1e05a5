rule demo_data:
    output:
        hh=layout.demo_raw("hh.jsonl"),
        shp=layout.demo_raw("shp.jsonl"),
        uf=layout.demo_raw("ultrafeedback.jsonl"),
    params:
        n_prompts=300,
        seed=0,
        code=code_of("demo_data.py"),
    log:
        "logs/demo_data.log",
    script:
        "../scripts/demo_data.py"


rule download:
    input:
        get_raw_source,
    output:
        raw=layout.raw("{dataset}"),
        source=layout.raw_source("{dataset}"),  # the hub commit read, or the local file's sha256
    params:
        dataset=get_download_params,
        code=code_of("download.py"),
    log:
        "logs/download/{dataset}.log",
    script:
        "../scripts/download.py"


rule prepare:
    input:
        raw=layout.raw("{dataset}"),
        source=layout.raw_source("{dataset}"),
    output:
        train=layout.split("{dataset}", "train"),
        eval=layout.split("{dataset}", "eval"),
        manifest=layout.manifest("{dataset}"),
        **({"gold": layout.split("{dataset}", "gold")} if N_GOLD else {}),  # the trained judge's pool
    params:
        prepare=get_prepare_params,
        code=code_of("prepare.py"),
    log:
        "logs/prepare/{dataset}.log",
    script:
        "../scripts/prepare.py"
