TABLES = DATASETS + ["all"] + (["matched"] if MATCHED_METHODS else [])  # "matched": the compute-matched table
FIGURES = ["training_curves", "heldout_curves", "final_metrics", "tradeoff"]


rule tables:
    input:
        summary="results/aggregate/summary.csv",
        runs="results/aggregate/runs.csv",
        significance="results/aggregate/significance.csv",
    output:
        tex=expand("results/paper/generated/table_{table}.tex", table=TABLES),
        compute="results/paper/generated/table_compute.tex",
        index="results/paper/generated/tables.tex",
        csv=report(
            expand("results/tables/{table}.csv", table=TABLES),
            caption="../report/tables.rst",
            category="Tables",
        ),
    params:
        methods=MAIN_METHODS,
        baseline=baseline_of(MAIN_METHODS),
        matched=MATCHED_METHODS,
        matched_baseline=baseline_of(MATCHED_METHODS),
        inner_steps=CFG.compute_matched.inner_steps,
        all_methods=METHODS,
        tables=TABLES,
    log:
        "logs/tables.log",
    script:
        "../scripts/tables.py"


rule figures:
    input:
        summary="results/aggregate/summary.csv",
        curves="results/aggregate/curves.csv",
    output:
        **{
            name: report(
                f"results/paper/generated/{name}.pdf",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURES
        },
    params:
        methods=MAIN_METHODS,
        datasets=DATASETS,
    log:
        "logs/figures.log",
    script:
        "../scripts/figures.py"


rule paper_numbers:
    input:
        summary="results/aggregate/summary.csv",
        runs="results/aggregate/runs.csv",
        manifests=expand("results/data/{dataset}/manifest.json", dataset=DATASETS),
        train_summary=expand("results/train/{method}/seed{seed}/summary.json", method=METHODS[0], seed=SEEDS[0]),
    output:
        numbers="results/paper/generated/numbers.tex",
        setup="results/paper/generated/setup.tex",
        findings="results/paper/generated/findings.tex",
    params:
        model=CFG.model.name_or_path,
        methods=MAIN_METHODS,
        datasets=DATASETS,
    log:
        "logs/paper_numbers.log",
    script:
        "../scripts/paper_numbers.py"


rule paper:
    input:
        tex="paper/main.tex",
        bib="paper/refs.bib",
        tables=rules.tables.output.tex,
        table_index=rules.tables.output.index,
        compute_table=rules.tables.output.compute,
        figures=[f"results/paper/generated/{name}.pdf" for name in FIGURES],
        numbers=rules.paper_numbers.output,
        rm_experiment=RM_PAPER_INPUTS,
    output:
        report("results/paper/main.pdf", caption="../report/paper.rst", category="Paper"),
    log:
        "logs/paper.log",
    shell:
        # built in .latex/ and moved into place: a killed build never leaves a main.pdf behind
        "(cp {input.tex} {input.bib} results/paper/ && cd results/paper && "
        "latexmk -pdf -interaction=nonstopmode -halt-on-error -outdir=.latex main.tex && "
        "mv .latex/main.pdf main.pdf) > {log} 2>&1"
