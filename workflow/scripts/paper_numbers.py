from pathlib import Path

import pandas as pd

from _common import log_to
from p2o.io import read_json, write_text
from p2o.provenance import file_sha256
from p2o.report import trust_region
from p2o.report.paper import findings_tex, numbers_tex, setup_tex

log_to(snakemake)
inp, p = snakemake.input, snakemake.params
summary, runs, sig = pd.read_csv(inp.summary), pd.read_csv(inp.runs), pd.read_csv(inp.significance)
manifests = {Path(m).parent.name: read_json(m) for m in inp.manifests}
write_text(snakemake.output.numbers, numbers_tex(runs))
lock = (Path(inp.lock).as_posix(), file_sha256(inp.lock))  # the environment's pins (requirements/lock.txt)
write_text(snakemake.output.setup, setup_tex(runs, manifests, read_json(inp.train_summary[0]), p.model, lock))
write_text(snakemake.output.findings, findings_tex(summary, p.methods, p.datasets, sig))
settings, eps_clip = trust_region.settings_of(runs, p.trust_region_methods)
write_text(snakemake.output.trust_region, trust_region.activity_tex(pd.read_csv(inp.trust_region),
                                                                    p.trust_region_methods, settings, eps_clip))
