"""p2o: offline preference optimisation of language models, reproducibly.

The library behind the p2o Snakemake workflow and the ``p2o`` command line. Its packages are layers,
lowest first: a package imports only the packages listed before it (and the helper modules named
below), so parsing a config never imports torch:

    p2o.config    typed configuration: YAML files -> ``Config``, every key checked and named in errors
    p2o.data      raw hub rows -> a table of pairs, deterministic train/eval splits, offline demo data
    p2o.model     causal LMs and tokenizers, token batches, per-sequence log-probs, reference
                  log-probs once per split, held-out evaluation (accuracy, margins, exact KL)
    p2o.losses    the offline preference losses as pure functions of per-sequence log-prob tensors,
                  found by name
    p2o.training  one training loop for SFT and preference training, the reward model, compute spent
    p2o.stages    one function per workflow stage, with explicit inputs and outputs
    p2o.report    aggregate tables, significance, LaTeX tables, figures and the paper's numbers

Beside them: ``p2o.cli`` (the ``p2o`` command), ``p2o.io`` (atomic file output) and
``p2o.provenance`` (what produced a result).
"""

__version__ = "0.1.0"
