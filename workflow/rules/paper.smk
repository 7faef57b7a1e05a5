# Tables, figures and generated text from the aggregate tables only (restyling never retrains),
# then the paper. The paper's generated inputs are the generated/ files paper/main.tex reads
# (get_paper_generated in common.smk): main.tex is the one list of them.


rule tables:
    input:
        summary=layout.aggregate("summary"),
        runs=layout.aggregate("runs"),
        significance=layout.aggregate("significance"),
        seed_spread=layout.aggregate("seed_spread"),
        trust_region=layout.aggregate("trust_region_summary"),
    output:
        tex=[layout.generated(f"table_{table}.tex") for table in TABLES],
        compute=layout.generated("table_compute.tex"),
        seed_spread=layout.generated("table_seed_spread.tex"),
        trust_region=layout.generated("table_trust_region.tex"),
        index=layout.generated("tables.tex"),
        csv=report(
            [layout.table(table) for table in TABLES],
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
        trust_region_methods=TRUST_REGION_METHODS,
        datasets=DATASETS,
        tables=TABLES,
        seed_scope=CFG.seed_scope,  # what a seed varies, in the spread table's caption
        code=code_of("tables.py"),
    log:
        "logs/tables.log",
    script:
        "../scripts/tables.py"


rule figures:
    input:
        summary=layout.aggregate("summary"),
        curves=layout.aggregate("curves"),
    output:
        **{
            name: report(layout.generated(f"{name}.pdf"), caption=f"../report/{name}.rst", category="Figures")
            for name in FIGURES
        },
    params:
        methods=MAIN_METHODS,
        datasets=DATASETS,
        code=code_of("figures.py"),
    log:
        "logs/figures.log",
    script:
        "../scripts/figures.py"


LOCK_FILE = "requirements/lock.txt"  # written by python3 .ci/lock.py (README, Quickstart)


rule paper_numbers:
    input:
        summary=layout.aggregate("summary"),
        runs=layout.aggregate("runs"),
        significance=layout.aggregate("significance"),  # the findings' verdicts are the tables' daggers
        trust_region=layout.aggregate("trust_region_summary"),
        manifests=[layout.manifest(d) for d in DATASETS],
        train_summary=[layout.train(METHODS[0], SEEDS[0]).summary],
        lock=LOCK_FILE,  # the environment's pins; the setup table prints its sha256
    output:
        numbers=layout.generated("numbers.tex"),
        setup=layout.generated("setup.tex"),
        findings=layout.generated("findings.tex"),
        trust_region=layout.generated("trust_region.tex"),
    params:
        model=CFG.model.name_or_path,
        methods=MAIN_METHODS,
        trust_region_methods=TRUST_REGION_METHODS,
        datasets=DATASETS,
        code=code_of("paper_numbers.py"),
    log:
        "logs/paper_numbers.log",
    script:
        "../scripts/paper_numbers.py"


rule paper:
    input:
        tex=PAPER_TEX,
        bib="paper/refs.bib",
        generated=get_paper_generated,
    output:
        report(layout.pdf, caption="../report/paper.rst", category="Paper"),
    log:
        "logs/paper.log",
    shell:
        # built in .latex/ and moved into place: a killed build never leaves a main.pdf behind;
        # .latex/ is emptied first: a build killed while pdflatex rewrote main.aux leaves it cut off,
        # and every later build read it and failed
        f"(cp {{input.tex}} {{input.bib}} {layout.paper}/ && cd {layout.paper} && rm -rf .latex && "
        "latexmk -pdf -interaction=nonstopmode -halt-on-error -outdir=.latex main.tex && "
        "mv .latex/main.pdf main.pdf) > {log} 2>&1"
