import pandas as pd

from _common import log_to
from p2o.io import atomic_path, read_json, write_text
from p2o.report.generation import mean_training_flops, reward_kl_figure, samples_appendix, winrate_csv, winrate_table

log_to(snakemake)
p, inp, out = snakemake.params, snakemake.input, snakemake.output
summary, tidy = pd.read_csv(inp.summary), pd.read_csv(inp.tidy)
if p.judge == "planted":
    judge = "the demo's planted rule"
elif p.judge_pairs:  # the trained judge: what its verdicts are worth, on pairs it never saw
    heldout = read_json(inp.judge_heldout)["heldout"]
    accuracy = ", ".join(f"{name} {m['eval_rewards/accuracies']:.2f}" for name, m in heldout.items())
    judge = (f"a Bradley--Terry reward model the workflow trains on {p.judge_pairs} pairs per dataset whose prompts "
             f"no policy trains or is evaluated on (held-out accuracy: {accuracy})")
else:
    judge = f"the reward model \\texttt{{\\detokenize{{{p.judge}}}}}"
caption = (f"Judged by what the models generate: win rate of each method's samples against the SFT model's on the "
           f"same held-out prompts ({p.n_prompts} per dataset, {p.n_samples} sample(s) each, at most "
           f"{p.max_new_tokens} new tokens, temperature {p.temperature:g}, top-$p$ {p.top_p:g}), judged by {judge}; a "
           f"tie counts half. All datasets: the mean over datasets of the win rate, the length-controlled win rate "
           f"\\citep{{dubois2024length}}, the gold reward, the Monte-Carlo KL to the SFT model (k3, nats per completion) "
           f"and the length in tokens. Mean $\\pm$ 95\\,\\% CI over seeds; best per column in bold.")
write_text(out.table, winrate_table(summary, p.methods, p.datasets, caption, "tab:winrate"))
with atomic_path(out.csv) as tmp:
    winrate_csv(summary, p.methods).to_csv(tmp, index=False)
compared = list(p.methods) + list(p.online_methods)
reward_kl_figure(tidy, compared, p.datasets, out.figure)  # the offline and online runs on one frontier
if p.online_methods:
    online_caption = (f"Offline against online preference learning, judged by what the models generate (as in "
                      f"Table~\\ref{{tab:winrate}}, judged by {judge}). The online methods learn from their own samples, "
                      f"scored by a proxy Bradley--Terry reward model trained on the training pairs. FLOPs: training "
                      f"compute per run, mean over seeds: an online run's counts its sampling, the proxy's scoring, the "
                      f"reference's and (PPO, RTO) the critic's passes; online DPO's, every iteration's sampling, "
                      f"labelling and training.")
    text = winrate_table(summary, compared, p.datasets, online_caption, "tab:online", mean_training_flops(p.costs))
else:
    text = "% no online methods configured (online.methods is empty)\n"
write_text(out.online, text)
files = {"sft": dict(zip(p.datasets, inp.baseline, strict=True))}
files.update({m: dict(zip(p.datasets, inp.samples[i * len(p.datasets): (i + 1) * len(p.datasets)], strict=True))
              for i, m in enumerate(p.methods)})
write_text(out.appendix, samples_appendix(files, p.methods, p.datasets, seed=p.seed))
