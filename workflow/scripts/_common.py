"""Shared by the rule scripts: log redirection, config sections from params, device choice."""

import sys

from p2o.config import build


def log_to(snakemake):
    """Send stderr (progress bars, messages, tracebacks) to the rule's log file."""
    sys.stderr = open(snakemake.log[0], "w", buffering=1)


def section(cls, value, key):
    """A config dataclass from a rule's params (the schema was checked when the workflow was parsed)."""
    return build(cls, value, key)


def device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
