from pathlib import Path

from _common import device, log_to, resolved_config, section
from p2o.stages import jobs
from p2o.stages.launch import on_devices
from p2o.config import LoraConfig, OptimConfig, TokenizeConfig

log_to(snakemake)
p = snakemake.params
sft = dict(p.sft)
lora = sft.pop("lora", None)  # model.lora, there when on
optim = section(OptimConfig, sft, "sft", snakemake)
on_devices(optim.devices, jobs.sft, snakemake.input.base, dict(zip(p.datasets, snakemake.input.splits)),  # torchrun if > 1
           section(TokenizeConfig, p.tokenize, "tokenize", snakemake), optim, p.seed,
           Path(snakemake.output.model).parent, device(), config=resolved_config(snakemake),
           lora=section(LoraConfig, lora, "model.lora", snakemake) if lora else None)
