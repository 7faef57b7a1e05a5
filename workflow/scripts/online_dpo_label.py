from _common import device, log_to, section
from p2o.config import JudgeConfig, TokenizeConfig
from p2o.stages.online_dpo import label_pairs

log_to(snakemake)
inp, p = snakemake.input, snakemake.params
label_pairs(dict(zip(p.datasets, inp.samples, strict=True)), inp.proxy,
            section(TokenizeConfig, p.tokenize, "tokenize", snakemake),
            dict(zip(p.datasets, snakemake.output.pairs, strict=True)), device(),
            section(JudgeConfig, {}, "judge", snakemake).batch_size)
