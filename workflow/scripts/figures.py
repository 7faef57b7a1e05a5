import pandas as pd

from _common import log_to
from p2o.report import plots

log_to(snakemake)
summary, curves = pd.read_csv(snakemake.input.summary), pd.read_csv(snakemake.input.curves)
methods, datasets, out = snakemake.params.methods, snakemake.params.datasets, snakemake.output
plots.training_curves(curves, methods, out.training_curves)
plots.heldout_curves(curves, methods, datasets, out.heldout_curves)
plots.final_metrics(summary, methods, datasets, out.final_metrics)
plots.tradeoff(summary, methods, datasets, out.tradeoff)
