from pathlib import Path

from _common import log_to
from p2o.stages import reward as reward_jobs

log_to(snakemake)
inp = snakemake.input
reward_jobs.rm_subset(inp.split, inp.reference, int(snakemake.wildcards.size),
                      Path(snakemake.output.split).parent,
                      held_out_manifests=(inp.manifest, inp.main_manifest))
