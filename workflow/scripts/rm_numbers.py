import pandas as pd

from _common import log_to
from p2o.io import write_text
from p2o.report.paper import rm_experiment_tex

log_to(snakemake)
inp, p = snakemake.input, snakemake.params
write_text(snakemake.output[0], rm_experiment_tex(pd.read_csv(inp.summary), pd.read_csv(inp.tidy), p.datasets,
                                                  p.models, p.epochs))
