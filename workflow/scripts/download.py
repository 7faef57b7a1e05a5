from _common import log_to, section
from p2o.stages import jobs
from p2o.config import DatasetConfig

log_to(snakemake)
ds = section(DatasetConfig, {"format": "hh-rlhf", **snakemake.params.dataset}, "dataset", snakemake)  # format: unused here
jobs.download(ds, snakemake.output.raw, snakemake.output.source, key=f"data.datasets.{snakemake.wildcards.dataset}")
