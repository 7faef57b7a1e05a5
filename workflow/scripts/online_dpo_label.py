from _common import device, log_to, section
from p2o.config import EvalConfig, JudgeConfig, TokenizeConfig
from p2o.stages import jobs
from p2o.stages.online_dpo import label_pairs

log_to(snakemake)
inp, out, p = snakemake.input, snakemake.output, snakemake.params
tokenize, where = section(TokenizeConfig, p.tokenize, "tokenize", snakemake), device()
label_pairs(dict(zip(p.datasets, inp.samples, strict=True)), inp.proxy, tokenize,
            dict(zip(p.datasets, out.pairs, strict=True)), where, section(JudgeConfig, {}, "judge", snakemake).batch_size)
batch_size = section(EvalConfig, {}, "evaluate", snakemake).batch_size
for dataset, pairs, reference in zip(p.datasets, out.pairs, out.references, strict=True):
    jobs.reference(inp.model, pairs, dataset, tokenize, batch_size, reference, where, autocast=p.autocast)
