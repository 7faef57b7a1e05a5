from _common import device, log_to, resolved_config, section
from p2o.stages import jobs
from p2o.config import EvalConfig, TokenizeConfig

log_to(snakemake)
wc, inp = snakemake.wildcards, snakemake.input
jobs.evaluate(inp.policy, inp.model, inp.split, inp.reference, wc.dataset,
              section(TokenizeConfig, snakemake.params.tokenize, "tokenize"),
              section(EvalConfig, snakemake.params.evaluate, "evaluate"), snakemake.output[0], device(),
              run={"method": wc.method, "seed": int(wc.seed)}, config=resolved_config(snakemake),
              autocast=snakemake.params.autocast)
