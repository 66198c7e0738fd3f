"""The figures of a training run: learning curves and the atlas of the learned space.

Matplotlib's object API with the Agg canvas (`Figure.savefig`), never `pyplot`: no global backend state, no display
needed, safe in a flow's worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lens.bundle import Bundle
from lens.model import QueryFeatures
from lens.training import EpochStats

TOP_LABELS = 10
"""Labels (families, tasks) drawn in their own colour; the rest are grey."""


def learning_curves(selection: Sequence[EpochStats], refit: Sequence[EpochStats], path: Path) -> Path:
    """Training loss per epoch (selection run and refit) and the selection run's validation tau_w."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    loss, tau = figure.subplots(1, 2)
    loss.plot([e.epoch for e in selection], [e.loss for e in selection], "o-", label="selection run")
    if refit is not selection:
        loss.plot([e.epoch for e in refit], [e.loss for e in refit], "s--", label="refit on the training side")
    loss.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    loss.legend()
    tau.plot([e.epoch for e in selection], [e.val_tau for e in selection], "o-", color="tab:green")
    best = int(np.nanargmax([e.val_tau for e in selection]))
    tau.axvline(selection[best].epoch, color="grey", linestyle=":", label=f"selected epoch {selection[best].epoch}")
    tau.set(xlabel="epoch", ylabel="top-weighted τw", title="Validation τw (held-out benchmark families)")
    tau.legend()
    for ax in (loss, tau):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.savefig(path, dpi=100)
    return path


def atlas(bundle: Bundle, path: Path) -> Path:
    """The learned space in 2-D: every model's and every dataset group's first-layer contribution, one projection.

    The network's first layer is a sum of a per-model and a per-query part (`ModelLens.model_side` and `query_side`),
    so both live in one space; a PCA fitted on both places them together. Models are coloured by family, datasets by
    task (the domain).
    """
    groups = bundle.groups
    with torch.no_grad():
        models = bundle.model.model_side(bundle.pool).pre.numpy()
        features = QueryFeatures.build(
            list(groups["key"]), list(groups["task"]), list(groups["metric"]), bundle.group_vectors, bundle.vocabulary
        )
        queries = bundle.model.query_side(features).numpy()
    points = _pca(np.vstack([models, queries]))
    figure = Figure(figsize=(14, 6), layout="constrained")
    left, right = figure.subplots(1, 2, sharex=True, sharey=True)
    _scatter(left, points[: len(models)], bundle.models["family"].fillna("").replace("", "unknown"), "model family")
    _scatter(right, points[len(models) :], groups["task"], "task domain")
    left.set(title=f"Models ({len(models):,})", xlabel="PC 1", ylabel="PC 2")
    right.set(title=f"Datasets ({len(groups):,} ranking groups)", xlabel="PC 1")
    figure.suptitle("ModelLens atlas: PCA of the first layer's model and dataset contributions")
    figure.savefig(path, dpi=100)
    return path


def _pca(x: np.ndarray) -> np.ndarray:
    """The first two principal components, signs fixed so the same vectors always draw the same picture."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    return centred @ (axes * signs[:, None]).T


def _scatter(ax, points: np.ndarray, labels: pd.Series, what: str) -> None:
    labels = labels.astype(str).to_numpy()
    top = pd.Series(labels).value_counts().index[:TOP_LABELS]
    other = ~np.isin(labels, top)
    if other.any():
        ax.scatter(points[other, 0], points[other, 1], s=4, c="lightgrey", label="other")
    for i, label in enumerate(top):
        mine = labels == label
        ax.scatter(points[mine, 0], points[mine, 1], s=6, color=f"C{i}", label=label)
    ax.legend(title=what, fontsize="small", markerscale=2, loc="best")
