"""The training-loss panel keeps zero and negative losses in view (linear or symlog axis, never log)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from p2o.report import plots
from p2o.report.plots import loss_scale, training_curves

LOSSES = {  # per step: DPO's loss falls by orders of magnitude, hinge's reaches exactly 0, robust DPO's goes negative
    "dpo": [0.69, 0.1, 1e-2, 1e-3, 1e-4, 1e-5],
    "hinge": [1.0, 0.5, 0.0, 0.0, 0.0, 0.0],
    "robust_dpo": [0.6, 0.2, -0.05, -0.2, -0.3, -0.3],
}


def curves_of(losses: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "seed": 0, "kind": "train", "step": step, "pairs_seen": 8 * step,
                          "dataset": "hh", "metric": metric, "value": v if metric == "loss" else 0.1 * step}
                         for m, values in losses.items() for step, v in enumerate(values, 1)
                         for metric in ("loss", "rewards/margins")])


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plotting functions would save, kept open instead."""
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    yield figures
    for fig in figures:
        plots.plt.close(fig)


def test_loss_scale_is_linear_when_the_values_allow_it_else_symlog():
    assert loss_scale([0.7, 0.3, 0.0, -0.05]) == {"value": "linear"}  # |values| within 14x: linear
    assert loss_scale([0.0, 0.0]) == {"value": "linear"} and loss_scale([]) == {"value": "linear"}
    assert loss_scale([0.69, 3e-4, 0.0, -0.2]) == {"value": "symlog", "linthresh": 1e-4}
    assert loss_scale([1.0, 1e-12, np.nan]) == {"value": "symlog", "linthresh": 1e-6}  # at most 6 decades


def test_negative_and_zero_losses_are_on_the_loss_axis(drawn, tmp_path):
    training_curves(curves_of(LOSSES), list(LOSSES), tmp_path / "curves.pdf", smooth=1)
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "symlog" and ax.yaxis.get_transform().linthresh == 1e-5
    low, high = ax.get_ylim()
    assert low <= -0.3 and high >= 1.0  # robust DPO's negative losses and the largest loss are in range
    lines = {line.get_label(): line for line in ax.get_lines()}
    hinge, robust = lines["Hinge"].get_ydata(), lines["rDPO"].get_ydata()
    assert (np.asarray(hinge) == 0).sum() == 4 and (np.asarray(robust) < 0).sum() == 4
    points = [[8, 0.0], [8, -0.3], [8, 1e-5]]  # zero, negative and tiny losses map to distinct finite heights
    y = ax.transData.transform(points)[:, 1]
    assert np.isfinite(y).all() and y[1] < y[0] < y[2]


def test_losses_of_one_scale_stay_on_a_linear_axis(drawn, tmp_path):
    training_curves(curves_of({"dpo": [0.69, 0.6, 0.5], "robust_dpo": [0.6, 0.1, -0.05]}), ["dpo", "robust_dpo"],
                    tmp_path / "curves.pdf", smooth=1)
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] <= -0.05
