rule aggregate:
    input:
        evaluations=evaluation_files(),
        logs=training_files("log"),
        summaries=training_files("summary"),
    output:
        metrics=layout.aggregate("metrics"),
        summary=layout.aggregate("summary"),
        curves=layout.aggregate("curves"),
        runs=layout.aggregate("runs"),
        significance=layout.aggregate("significance"),
    params:
        comparisons=comparisons(),
        datasets=DATASETS,
    log:
        "logs/aggregate.log",
    script:
        "../scripts/aggregate.py"
