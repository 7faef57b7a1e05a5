"""Shared by the rule scripts: log redirection, config sections from params, device choice."""

import sys

from p2o.config import build, config_from_dict


def log_to(snakemake):
    """Send stderr (progress bars, messages, tracebacks) to the rule's log file."""
    sys.stderr = open(snakemake.log[0], "w", buffering=1)


def section(cls, value, key, snakemake):
    """A config dataclass from a rule's params (the schema was checked when the workflow was parsed).
    The keys a rule leaves out of its params because they change how a job runs, not what it computes
    (``cls.RUN_ONLY``: how often to log or checkpoint, inference batch sizes), come from the config
    section ``key``."""
    run_only = getattr(cls, "RUN_ONLY", ())
    if run_only:
        configured = getattr(config_from_dict(dict(snakemake.config)), key)
        value = {**{k: getattr(configured, k) for k in run_only}, **value}
    return build(cls, value, key)


def resolved_config(snakemake):
    """The whole config with defaults filled in, to be recorded in result files (not a rule param:
    recording it must not make every job depend on every key)."""
    return config_from_dict(dict(snakemake.config)).to_dict()


def device():
    """``cuda`` on a GPU slot of its own (``p2o.gpu_slots``: with ``--resources gpu=N`` the N model jobs
    that run at once get N different cards), or ``cpu``."""
    from p2o.gpu_slots import claim_device

    return claim_device()

