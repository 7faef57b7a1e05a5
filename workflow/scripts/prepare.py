from pathlib import Path

from _common import log_to
from p2o.config import DatasetConfig
from p2o.data import prepare_dataset
from p2o.io import read_json

log_to(snakemake)
p = snakemake.params.prepare
ds = DatasetConfig(format=p["format"], source=snakemake.input.raw, min_score_ratio=p["min_score_ratio"],
                   max_pairs_per_prompt=p["max_pairs_per_prompt"])
prepare_dataset(snakemake.wildcards.dataset, ds, p["n_train"], p["n_eval"], p["split_salt"],
                Path(snakemake.output.manifest).parent, resolved=read_json(snakemake.input.source), n_gold=p["n_gold"])
