rule aggregate:
    input:
        evaluations=evaluation_files(),
        logs=training_files("log.jsonl"),
        summaries=training_files("summary.json"),
    output:
        metrics="results/aggregate/metrics.csv",
        summary="results/aggregate/summary.csv",
        curves="results/aggregate/curves.csv",
        runs="results/aggregate/runs.csv",
        significance="results/aggregate/significance.csv",
    params:
        comparisons=comparisons(),
        datasets=DATASETS,
    log:
        "logs/aggregate.log",
    script:
        "../scripts/aggregate.py"
