from pathlib import Path

from _common import device, log_to, resolved_config, section
from p2o.config import EvalConfig, OptimConfig, TokenizeConfig
from p2o.stages.reward import train_scored_reward_model

log_to(snakemake)
inp, out, p = snakemake.input, snakemake.output, snakemake.params
optim = section(OptimConfig, p.train, "train", snakemake)
tokenize = section(TokenizeConfig, p.tokenize, "tokenize", snakemake)
evaluate = section(EvalConfig, {}, "evaluate", snakemake)
train_scored_reward_model(inp.model, dict(zip(p.datasets, inp.pools, strict=True)),
                          dict(zip(p.datasets, inp.heldout, strict=True)), optim, tokenize, p.seed,
                          Path(out.model).parent, out.heldout, evaluate.batch_size, device(),
                          config=resolved_config(snakemake), role=p.role)
