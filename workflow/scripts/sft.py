from pathlib import Path

from _common import device, log_to, resolved_config, section
from p2o.stages import jobs
from p2o.config import LoraConfig, OptimConfig, TokenizeConfig

log_to(snakemake)
p = snakemake.params
optim = dict(p.sft)
lora = optim.pop("lora", None)  # model.lora, there when on
jobs.sft(snakemake.input.base, dict(zip(p.datasets, snakemake.input.splits)),
         section(TokenizeConfig, p.tokenize, "tokenize", snakemake), section(OptimConfig, optim, "sft", snakemake), p.seed,
         Path(snakemake.output.model).parent, device(), config=resolved_config(snakemake),
         lora=section(LoraConfig, lora, "model.lora", snakemake) if lora else None)
