from pathlib import Path

from _common import log_to, section
from p2o.stages import jobs
from p2o.config import ModelConfig

log_to(snakemake)
splits = {Path(p).parent.name: p for p in snakemake.input.splits}
jobs.init_model(section(ModelConfig, snakemake.params.model, "model", snakemake), splits, snakemake.output[0],
                seed=snakemake.params.seed)
