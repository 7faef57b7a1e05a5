"""p2o: offline preference optimisation of language models, reproducibly.

The library behind the p2o Snakemake workflow and the ``p2o`` command line. Its packages are layers,
lowest first: a package imports only the packages listed before it (and the helper modules named
below), so parsing a config never imports torch:

    p2o.config    typed configuration: YAML files -> ``Config``, every key checked and named in errors
    p2o.data      raw hub rows -> a table of pairs, deterministic train/eval splits, offline demo data
    p2o.model     causal LMs and tokenizers, token batches, per-sequence log-probs, reference
                  log-probs once per split, held-out evaluation (accuracy, margins, exact KL),
                  seeded batched sampling and the gold judges of generated text
    p2o.losses    the offline preference losses as pure functions of per-sequence log-prob tensors,
                  found by name, each declaring its hyper-parameters and the inputs it reads; the
                  maths of online RLHF on per-token tensors under an action mask (KL estimators and
                  token rewards with RTO's dense term, GAE and PPO's clipped losses, RLOO, regression
                  RL, online DPO's pair selection), not registered
    p2o.training  one training loop for SFT, preference training, the reward model and the online
                  trainers (PPO, RTO, RLOO, regression RL: actor and critic in one module); the inputs a
                  loss declares, computed per step; compute spent; an online rollout's ``Experience``
                  (rewards, advantages and returns, built once from per-token tensors)
    p2o.report    aggregate tables, significance, win rates and Monte-Carlo KL of samples, LaTeX
                  tables, figures and the paper's numbers
    p2o.stages    one function per workflow stage, with explicit inputs and outputs (a judging stage
                  reports win rates with ``p2o.report``)
    p2o.docs      ``python -m p2o.docs``: the config schema, the loss catalogue and the docs' tables,
                  generated from the declarations of every layer

Beside them: ``p2o.cli`` (the ``p2o`` command), ``p2o.io`` (atomic file output),
``p2o.provenance`` (what produced a result) and ``p2o.job_code`` (which source a job runs, and its
digest).
"""

__version__ = "0.1.0"
