from _common import log_to
from p2o.report import rm_experiment
from p2o.io import atomic_path

log_to(snakemake)
tidy = rm_experiment.collect(snakemake.input)
for frame, path in ((tidy, snakemake.output.tidy), (rm_experiment.summary(tidy), snakemake.output.summary)):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
