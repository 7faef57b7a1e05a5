from pathlib import Path

from _common import device, log_to, resolved_config, section
from p2o.stages import jobs
from p2o.stages.launch import on_devices
from p2o.config import EvalConfig, LoraConfig, OptimConfig, TokenizeConfig
from p2o.config.methods import MethodSpec

log_to(snakemake)
p, inp = snakemake.params[0], snakemake.input
names = p["datasets"]
eval_splits = dict(zip(names, zip(inp.eval_splits, inp.eval_references))) if "evaluate" in p else None
optim = section(OptimConfig, p["train"], "train", snakemake)
on_devices(  # train.devices > 1: one data-parallel job of that many processes, launched by torchrun
    optim.devices, jobs.train, inp.model, dict(zip(names, inp.splits)), dict(zip(names, inp.references)), MethodSpec(**p["method"]),
    optim, section(TokenizeConfig, p["tokenize"], "tokenize", snakemake),
    int(snakemake.wildcards.seed), Path(snakemake.output.model).parent, device(), eval_splits,
    section(EvalConfig, p["evaluate"], "evaluate", snakemake) if "evaluate" in p else None, config=resolved_config(snakemake),
    inference_dtype=p.get("inference_dtype", "float32"),  # rm_train_policy: float32, as its rm_reference
    lora=section(LoraConfig, p["lora"], "model.lora", snakemake) if "lora" in p else None,
)
