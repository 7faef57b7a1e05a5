from _common import device, log_to, resolved_config, section
from p2o.stages import jobs, reward as reward_jobs
from p2o.config import EvalConfig, TokenizeConfig
from p2o.config.sections import REWARD_MODEL

log_to(snakemake)
inp, out, p, dataset = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards.dataset
tokenize = section(TokenizeConfig, p.tokenize, "tokenize", snakemake)
evaluate = section(EvalConfig, p.evaluate, "evaluate", snakemake)
config, dev = resolved_config(snakemake), device()
for (size, seed), rm_dir, policy_dir, rm_out, policy_out in zip(p.cells, inp.reward_models, inp.policies,
                                                                  out.reward_models, out.policies):
    run = {"experiment": "rm_experiment", "size": size, "seed": seed}
    reward_jobs.evaluate_reward_model(rm_dir, inp.split, dataset, tokenize, evaluate.batch_size, rm_out, dev,
                                      run={**run, "model": REWARD_MODEL}, config=config)
    jobs.evaluate(policy_dir, inp.model, {dataset: jobs.EvalTarget(inp.split, inp.reference, policy_out)}, tokenize,
                  evaluate, dev, run={**run, "model": p.policy, "method": p.policy}, config=config, autocast=p.autocast)
