from _common import device, log_to, section
from p2o.stages import jobs
from p2o.config import EvalConfig, TokenizeConfig

log_to(snakemake)
jobs.reference(snakemake.input.model, snakemake.input.split, snakemake.wildcards.dataset,
               section(TokenizeConfig, snakemake.params.tokenize, "tokenize", snakemake),
               section(EvalConfig, {}, "evaluate", snakemake).batch_size,
               snakemake.output[0], device(), autocast=snakemake.params.autocast,
               # rm_reference runs this script without it: the reward-model experiment stays float32
               inference_dtype=getattr(snakemake.params, "inference_dtype", "float32"))
