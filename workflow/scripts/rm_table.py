import pandas as pd

from _common import log_to
from p2o.io import atomic_path, write_text
from p2o.report.tables import rm_experiment_csv, rm_experiment_table

log_to(snakemake)
summary, p = pd.read_csv(snakemake.input.summary), snakemake.params
write_text(snakemake.output.tex, rm_experiment_table(summary, p.datasets, p.models))
with atomic_path(snakemake.output.csv) as tmp:
    rm_experiment_csv(summary, p.models).to_csv(tmp, index=False)
