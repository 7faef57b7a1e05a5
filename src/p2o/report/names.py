"""Display names of methods and models, shared by the tables, the figures and the generated paper text.

A method is shown under its paper's name (``p2o`` is ``P$^2$O``); a compute-matched rerun ``dpo_k3``
is ``DPO ($K$=3)``; any other method its config name in capitals. Figures take the same names, in
the form matplotlib's mathtext reads (``display_name``).
"""

from __future__ import annotations

from p2o.config.sections import REWARD_MODEL

# The paper's methods in config.yaml's order, with their names in the papers. The order also fixes
# each method's style slot in the figures (``p2o.report.styles``).
PAPER_NAMES = {
    "dpo": "DPO", "ipo": "IPO", "kto": "KTO", "p2o": "P$^2$O", "pkto": "PKTO", "cdpo": "cDPO", "robust_dpo": "rDPO",
    "hinge": "Hinge", "rdpo": "R-DPO", "simpo": "SimPO", "orpo": "ORPO", "slpo": "SLPO", "tdpo1": "TDPO$_1$",
    "tdpo2": "TDPO$_2$", "p2o_lr5x": "P$^2$O (5$\\times$lr)",
    # the online methods (p2o.config.online)
    "ppo": "PPO", "rto": "RTO", "rloo": "RLOO", "regression_rl": "Regression RL", "online_dpo": "Online DPO",
}


def latex_name(method: str) -> str:
    """LaTeX name of a method as in the papers; a compute-matched rerun ``dpo_k3`` is ``DPO ($K$=3)``."""
    base, _, k = method.rpartition("_k")
    if base and k.isdigit():
        return f"{latex_name(base)} ($K$={k})"
    return PAPER_NAMES.get(method, method.upper().replace("_", "\\_"))


def display_name(method: str) -> str:
    """The tables' name of a method (``latex_name``), as matplotlib's mathtext reads it."""
    return latex_name(method).replace("\\_", "_")


def rm_model_label(model: str) -> str:
    """Column name of a model in the reward-model experiment's table."""
    return "Reward model" if model == REWARD_MODEL else f"{latex_name(model)} (implicit)"


def rm_model_name(model: str) -> str:
    """Legend entry of a model in the reward-model experiment's figure."""
    return "Reward model" if model == REWARD_MODEL else f"{display_name(model)} (implicit reward)"
