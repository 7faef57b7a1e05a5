from pathlib import Path

from _common import log_to
from p2o.data import write_demo_data

log_to(snakemake)
write_demo_data(Path(snakemake.output.hh).parent, n_prompts=snakemake.params.n_prompts, seed=snakemake.params.seed)
