"""One look per method in every figure: colour, line style (hatch for bars) and marker.

Each of the paper's methods (``p2o.report.names.PAPER_NAMES``, in config.yaml's order) owns a fixed
slot, so a method keeps its look as others are added or dropped; methods not listed take the free
slots after these, in the order given. Slot k takes colour k mod 10, line style k div 10 (so the
first 40 slots differ in colour or line) and marker k mod 12.
"""

from __future__ import annotations

import itertools

import matplotlib

from p2o.report.names import PAPER_NAMES, REWARD_MODEL

PALETTE = matplotlib.colormaps["tab10"].colors
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p"]
LINESTYLES = ["-", "--", ":", "-."]
HATCHES = ["", "////", "....", "xxxx"]  # bars' counterpart of the line styles
KNOWN = list(PAPER_NAMES)  # the fixed slots
REWARD_MODEL_STYLE = {"color": "black", "marker": "s", "linestyle": "-", "hatch": ""}


def method_styles(methods: list[str]) -> dict[str, dict]:
    """Colour, marker and line style (hatch for bars) of each method, by its slot."""
    styles, free = {}, itertools.count(len(KNOWN))
    for m in methods:
        slot = KNOWN.index(m) if m in KNOWN else next(free)
        variant = (slot // len(PALETTE)) % len(LINESTYLES)
        styles[m] = {"color": PALETTE[slot % len(PALETTE)], "marker": MARKERS[slot % len(MARKERS)],
                     "linestyle": LINESTYLES[variant], "hatch": HATCHES[variant]}
    return styles


def rm_model_styles(models: list[str]) -> dict[str, dict]:
    """The reward model in black with squares; policies keep their method's colour and marker."""
    styles = method_styles([m for m in models if m != REWARD_MODEL])
    return {m: styles[m] if m in styles else dict(REWARD_MODEL_STYLE) for m in models}
