import pandas as pd

from _common import log_to
from p2o.io import atomic_path
from p2o.report.aggregate import overall, summarise
from p2o.report.generation import collect_generation

log_to(snakemake)
tidy = collect_generation(snakemake.input.judgements)
values = tidy.drop(columns="judge")
summary = pd.concat([summarise(values), overall(values)], ignore_index=True)
for frame, path in ((tidy, snakemake.output.tidy), (summary, snakemake.output.summary)):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
