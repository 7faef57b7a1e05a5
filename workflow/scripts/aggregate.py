from pathlib import Path

import pandas as pd

from _common import log_to
from p2o.report import trust_region
from p2o.report.aggregate import collect_curves, collect_metrics, collect_runs, overall, seed_spread, summarise
from p2o.io import atomic_path
from p2o.report.significance import collect_pairs, significance

log_to(snakemake)
inp, out = snakemake.input, snakemake.output
metrics = collect_metrics(inp.evaluations)
runs = collect_runs(inp.summaries)
logs = {(Path(p).parent.parent.name, int(Path(p).parent.name.removeprefix("seed"))): p for p in inp.logs}
curves = collect_curves(logs, runs)
summary = pd.concat([summarise(metrics), overall(metrics)], ignore_index=True)
sig = significance(collect_pairs(inp.evaluations), snakemake.params.comparisons, snakemake.params.datasets)
trust = trust_region.collect({run: p for run, p in logs.items() if run[0] in snakemake.params.trust_region_methods})
for frame, path in ((metrics, out.metrics), (summary, out.summary), (curves, out.curves), (runs, out.runs),
                    (sig, out.significance), (seed_spread(metrics), out.seed_spread), (trust, out.trust_region),
                    (trust_region.summarise(trust), out.trust_region_summary)):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
