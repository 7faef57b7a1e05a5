from pathlib import Path

from _common import device, log_to, resolved_config, section
from p2o.config import OptimConfig, TokenizeConfig
from p2o.config.online import OnlineConfig
from p2o.stages.online import train_online

log_to(snakemake)
inp, p, wc = snakemake.input, snakemake.params, snakemake.wildcards
train_online(wc.method, inp.model, inp.proxy, dict(zip(p.datasets, inp.splits, strict=True)),
             section(OnlineConfig, p.online, "online", snakemake), section(OptimConfig, p.train, "train", snakemake),
             section(TokenizeConfig, p.tokenize, "tokenize", snakemake), int(wc.seed),
             Path(snakemake.output.model).parent, device(), dpo_dir=inp.get("dpo"), config=resolved_config(snakemake))
