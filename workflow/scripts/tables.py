import pandas as pd

from _common import log_to
from p2o.io import atomic_path, write_text
from p2o.tables import method_table, table_csv

log_to(snakemake)
summary = pd.read_csv(snakemake.input.summary)
for table, tex, csv in zip(snakemake.params.tables, snakemake.output.tex, snakemake.output.csv):
    where = "averaged over datasets" if table == "all" else f"on {table.upper()}"
    caption = f"Held-out results {where}: mean $\\pm$ 95\\,\\% CI over seeds; best per column in bold."
    write_text(tex, method_table(summary, table, snakemake.params.methods, caption, f"tab:{table}"))
    with atomic_path(csv) as tmp:
        table_csv(summary, table).to_csv(tmp, index=False)
order = ["all"] + [t for t in snakemake.params.tables if t != "all"]  # the overall table first
write_text(snakemake.output.index, "".join(f"\\input{{generated/table_{t}.tex}}\n" for t in order))
