from dataclasses import replace
from pathlib import Path

from _common import device, log_to, resolved_config, section
from p2o.stages import reward as reward_jobs
from p2o.config import OptimConfig, TokenizeConfig

log_to(snakemake)
wc, p = snakemake.wildcards, snakemake.params
optim, tokenize = section(OptimConfig, p.train, "train", snakemake), section(TokenizeConfig, p.tokenize, "tokenize", snakemake)
optim = replace(optim, devices=1)  # the reward model trains on one process, whatever train.devices (the rule claims one GPU)
reward_jobs.train_reward_model(snakemake.input.model, {wc.dataset: snakemake.input.split}, optim, tokenize,
                               int(wc.seed), Path(snakemake.output.model).parent, device(),
                               config=resolved_config(snakemake))
