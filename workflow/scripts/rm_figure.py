import pandas as pd

from _common import log_to
from p2o.report import plots

log_to(snakemake)
plots.rm_vs_dpo(pd.read_csv(snakemake.input.summary), snakemake.params.datasets, snakemake.params.models,
                snakemake.output[0])
