from pathlib import Path

from _common import device, log_to, resolved_config, section
from p2o.stages import jobs
from p2o.config import LoraConfig, OptimConfig, TokenizeConfig

log_to(snakemake)
p = snakemake.params
jobs.sft(snakemake.input.base, dict(zip(p.datasets, snakemake.input.splits)),
         section(TokenizeConfig, p.tokenize, "tokenize", snakemake), section(OptimConfig, p.sft, "sft", snakemake), p.seed,
         Path(snakemake.output.model).parent, device(), config=resolved_config(snakemake),
         lora=section(LoraConfig, p.lora, "model.lora", snakemake) if p.lora else None)
