from _common import device, log_to, resolved_config, section
from p2o.stages import jobs
from p2o.config import EvalConfig, TokenizeConfig

log_to(snakemake)
wc, inp, params = snakemake.wildcards, snakemake.input, snakemake.params
targets = {name: jobs.EvalTarget(split, reference, out)
           for name, split, reference, out in zip(params.datasets, inp.splits, inp.references, snakemake.output,
                                                  strict=True)}
jobs.evaluate(inp.policy, inp.model, targets, section(TokenizeConfig, params.tokenize, "tokenize", snakemake),
              section(EvalConfig, params.evaluate, "evaluate", snakemake), device(),
              run={"method": wc.method, "seed": int(wc.seed)}, config=resolved_config(snakemake),
              autocast=params.autocast, inference_dtype=params.inference_dtype)
