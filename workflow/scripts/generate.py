from _common import device, log_to, resolved_config, section
from p2o.config import GenerateConfig, TokenizeConfig
from p2o.config.sections import SFT_BASELINE
from p2o.stages import generation

log_to(snakemake)
wc, inp, params = snakemake.wildcards, snakemake.input, snakemake.params
policy = getattr(inp, "policy", inp.model)  # the SFT model's own samples (rule generate_sft) have no policy
targets = {name: (split, out) for name, split, out in zip(params.datasets, inp.splits, snakemake.output.samples,
                                                          strict=True)}
seed = int(wc.seed) if "seed" in wc.keys() else None
generation.generate(policy, inp.model, targets, section(GenerateConfig, params.generate, "generate", snakemake),
              section(TokenizeConfig, params.tokenize, "tokenize", snakemake), device(),
              run=getattr(params, "run", None) or {"method": wc.get("method", SFT_BASELINE), "seed": seed},
              config=resolved_config(snakemake),
              autocast=params.autocast, meta_out=snakemake.output.meta)
