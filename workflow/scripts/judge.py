from _common import log_to, resolved_config, section
from p2o.config import JudgeConfig, TokenizeConfig
from p2o.stages import generation

log_to(snakemake)
wc, inp, params = snakemake.wildcards, snakemake.input, snakemake.params
judge = section(JudgeConfig, params.judge, "judge", snakemake)
if judge.neural:
    from _common import device

    where = device()
else:  # the planted rule: no torch to import
    where = "cpu"
datasets = params.datasets
generation.judge(dict(zip(datasets, inp.samples, strict=True)), dict(zip(datasets, inp.baseline, strict=True)),
           dict(zip(datasets, snakemake.output, strict=True)), judge, where,
           run={"method": wc.method, "seed": int(wc.seed)}, config=resolved_config(snakemake),
           judge_model=inp.get("judge_model"),
           tokenize=section(TokenizeConfig, params.tokenize, "tokenize", snakemake) if judge.trained else None)
