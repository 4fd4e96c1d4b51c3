"""Diagnostics: one figure that shows how a fused estimator was fitted.

:func:`plot_fusion` draws the partition sizes, each partition's local score against
the fused model's score, and the shape of the fusion tree. matplotlib is imported
only when a figure is drawn, so ``import daskfuse`` works without it.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import is_classifier, is_clusterer
from sklearn.utils.validation import check_is_fitted

from ._validation import check_int

__all__ = ["fusion_tree", "plot_fusion"]

_FITTED = ("fused_estimator_", "partition_report_", "n_partitions_", "split_every_")


def fusion_tree(n_partitions, split_every):
    """The shape of the reduction tree that fuses ``n_partitions`` models.

    The same grouping as the fit graph: each level combines consecutive groups of
    ``split_every`` nodes of the level below (the last group may be smaller) until
    one node is left, which the ``finalize`` task turns into the fused model. One
    partition needs no ``combine`` task.

    Parameters
    ----------
    n_partitions : int
        Number of leaves (``daskfuse-fit`` tasks), >= 1.
    split_every : int
        Fan-in of the tree, >= 2.

    Returns
    -------
    levels : list of list of range
        ``levels[k][j]`` holds the indices, in level ``k`` (0: the partitions), of
        the children of the ``j``-th node of combine level ``k + 1`` (task key
        ``("daskfuse-combine-<token>", k + 1, j)``).

    Examples
    --------
    >>> from daskfuse.plot import fusion_tree
    >>> [[list(g) for g in level] for level in fusion_tree(8, 3)]
    [[[0, 1, 2], [3, 4, 5], [6, 7]], [[0, 1, 2]]]
    >>> fusion_tree(1, 8)
    []
    """
    check_int(n_partitions, "n_partitions", low=1)
    check_int(split_every, "split_every", low=2)
    levels = []
    width = int(n_partitions)
    while width > 1:
        groups = [range(i, min(i + split_every, width)) for i in range(0, width, split_every)]
        levels.append(groups)
        width = len(groups)
    return levels


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def _import_matplotlib():
    try:
        import matplotlib
        from matplotlib.collections import LineCollection
        from matplotlib.patches import Patch
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ImportError(
            "daskfuse.plot_fusion needs matplotlib: pip install matplotlib"
        ) from exc
    return matplotlib, LineCollection, Patch, MaxNLocator


def _new_figure():
    """A new figure, closed in pyplot at once.

    Made through pyplot so that the backend is set up (in Jupyter the inline backend
    then displays the figure once, as the cell's value), and closed so that pyplot
    neither keeps it open nor shows it again.
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 4.6), layout="constrained")
    plt.close(fig)
    return fig


def _n_rows(X):
    n = X.shape[0]
    if isinstance(n, numbers.Integral):
        return int(n)
    return int(len(X))  # dask collections with unknown chunk sizes


def _fused_score(estimator, X, y):
    """The fused model's score on ``(X, y)``, or None where it has no score."""
    if X is None:
        if y is not None:
            raise ValueError("y was given without X; pass both to score the fused model")
        return None
    if getattr(estimator, "_kind", None) in ("classifier", "regressor") and y is None:
        raise ValueError(
            f"X was given without y; {type(estimator).__name__}.score needs both"
        )
    if not hasattr(estimator, "score"):
        return None
    score = estimator.score(X) if y is None else estimator.score(X, y)
    return float(score)


def _class_labels(estimator, counts):
    seen = {label for c in counts if isinstance(c, dict) for label in c}
    labels = [label for label in getattr(estimator, "classes_", []) if label in seen]
    labels += sorted(seen - set(labels), key=str)
    return labels


def _colors(matplotlib, n):
    name = "tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"
    cmap = matplotlib.colormaps[name]
    if name == "viridis":
        return [cmap(i / max(n - 1, 1)) for i in range(n)]
    return [cmap(i) for i in range(n)]


def _legend_below(ax, **kwargs):
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, fontsize="small",
              frameon=False, **kwargs)


def _partition_axis(ax, parts, MaxNLocator):
    if len(parts) <= 20:
        ax.set_xticks(parts)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(parts.min() - 0.6, parts.max() + 0.6)


def _draw_rows(ax, estimator, report, matplotlib, Patch, MaxNLocator):
    parts = report["partition"].to_numpy()
    rows = report["rows"].to_numpy(dtype=float)
    counts = list(report["class_counts"]) if "class_counts" in report else []
    if counts and all(isinstance(c, dict) for c in counts):
        labels = _class_labels(estimator, counts)
        colors = _colors(matplotlib, len(labels))
        bottom = np.zeros(len(parts))
        for label, color in zip(labels, colors):
            height = np.array([c.get(label, 0) for c in counts], dtype=float)
            ax.bar(parts, height, bottom=bottom, color=color, label=f"class {label}",
                   gid="rows")
            bottom += height
        held = rows - bottom
        if (held > 0).any():
            ax.bar(parts, held, bottom=bottom, color="0.85", hatch="//", edgecolor="0.5",
                   label="held out for scoring", gid="rows")
        if len(labels) <= 12:
            _legend_below(ax)
        else:
            _legend_below(ax, handles=[Patch(color="0.5", label=f"{len(labels)} classes")])
        ax.set_title("rows per partition, by class")
    else:
        ax.bar(parts, rows, color="C0", gid="rows")
        ax.set_title("rows per partition")
    ax.set_xlabel("partition")
    ax.set_ylabel("rows")
    _partition_axis(ax, parts, MaxNLocator)


def _draw_scores(ax, estimator, report, fused, MaxNLocator):
    parts = report["partition"].to_numpy()
    rows = report["rows"].to_numpy(dtype=float)
    train = np.array([np.nan if s is None else s for s in report["train_score"]], dtype=float)
    hold = np.array([np.nan if s is None else s for s in report["holdout_score"]], dtype=float)
    clusterer = is_clusterer(estimator)
    if clusterer:
        # k-means scores are -inertia, a sum over rows: compare them per row
        train = train / rows
        hold = hold / rows
    if clusterer:
        ylabel = "score per row (-inertia / rows)"
    elif is_classifier(estimator):
        ylabel = "accuracy"
    elif getattr(estimator, "_kind", None) == "regressor":
        ylabel = "R²"
    else:
        ylabel = "score"
    have_train = np.isfinite(train).any()
    if have_train:
        ax.vlines(parts, 0, 1, transform=ax.get_xaxis_transform(), colors="0.92", zorder=0)
        ax.plot(parts, train, "o", color="C0", markersize=7, linestyle="none",
                label="partition model, train rows", gid="train_score")
    if np.isfinite(hold).any():
        ax.plot(parts, hold, "D", color="k", markersize=5, linestyle="none",
                label="partition model, held-out rows", gid="holdout_score")
    line = None
    if fused is not None:
        value = fused["score"] / fused["rows"] if clusterer else fused["score"]
        line = ax.axhline(value, color="C3", linewidth=2, gid="fused_score",
                          label=f"fused model, on the data passed: {value:.4g}")
    elif have_train:
        ok = np.isfinite(train)
        value = float(np.average(train[ok], weights=rows[ok]))
        line = ax.axhline(
            value, color="0.3", linestyle="--", linewidth=1.5, gid="mean_score",
            label=f"row-weighted mean of partition scores: {value:.4g}\n"
            "(not the fused model's score: pass X, y)",
        )
    if not have_train and line is None:
        ax.text(0.5, 0.5, "no partition scores\n(the strategy fits no partition\nmodel, "
                "or the model has no score)", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    values = np.concatenate([train[np.isfinite(train)], hold[np.isfinite(hold)]])
    if line is not None:
        values = np.append(values, line.get_ydata()[0])
    if values.size and not clusterer and values.min() >= 0 and values.max() <= 1:
        low = max(0.0, values.min() - 0.1 * max(values.max() - values.min(), 0.05))
        ax.set_ylim(low, values.max() + 0.1 * max(values.max() - low, 0.02))
    if have_train or line is not None:
        _legend_below(ax)
    ax.set_title("local scores against the fused model")
    ax.set_xlabel("partition")
    ax.set_ylabel(ylabel)
    _partition_axis(ax, parts, MaxNLocator)


def _draw_tree(ax, n, split_every, LineCollection):
    levels = fusion_tree(n, split_every)
    xs = [np.arange(n, dtype=float)]
    segments = []
    for depth, groups in enumerate(levels):
        below = xs[-1]
        here = np.array([below[list(g)].mean() for g in groups])
        for j, g in enumerate(groups):
            segments += [[(below[i], depth), (here[j], depth + 1)] for i in g]
        xs.append(here)
    top = len(levels) + 1
    segments.append([(xs[-1][0], top - 1), (xs[-1][0], top)])
    ax.add_collection(LineCollection(segments, colors="0.6", linewidths=1, zorder=1))
    small = n <= 40
    ax.scatter(xs[0], np.zeros(n), s=40 if small else 12, color="C0", zorder=2,
               gid="daskfuse-fit", label=f"fit ({n})")
    n_combine = sum(len(g) for g in levels)
    if n_combine:
        cx = np.concatenate(xs[1:])
        cy = np.concatenate([np.full(len(x), k + 1.0) for k, x in enumerate(xs[1:])])
        ax.scatter(cx, cy, s=60, marker="s", color="C2", zorder=2, gid="daskfuse-combine",
                   label=f"combine ({n_combine})")
    ax.scatter([xs[-1][0]], [top], s=120, marker="*", color="C3", zorder=3,
               gid="daskfuse-finalize", label="finalize (1)")
    if small:
        for i in range(n):
            ax.annotate(str(i), (i, 0), textcoords="offset points", xytext=(0, -12),
                        ha="center", va="top", fontsize="x-small")
    ax.set_yticks(range(top + 1), ["fit"] + [f"combine {k}" for k in range(1, top)]
                  + ["finalize"])
    ax.set_xticks([])
    ax.set_xlim(-0.8, n - 0.2)
    ax.set_ylim(-0.7, top + 0.5)
    ax.set_xlabel("partition")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(f"fusion tree: {_plural(n, 'partition')}, split_every={split_every}")


def plot_fusion(estimator, *, X=None, y=None, fig=None):
    """Draw how a fused estimator was fitted: partitions, local scores, fusion tree.

    Three panels, from ``estimator.partition_report_``, ``n_partitions_`` and
    ``split_every_``:

    1. rows per partition, stacked by class for classifiers (rows held out from
       fitting to score the partition model, where the strategy holds some out,
       are hatched);
    2. each partition model's score on its training rows (bars) and on its
       held-out rows (diamonds, where the strategy holds rows out), with a line
       for the fused model. The fused model's score on the training data is not
       stored: with ``X`` (and ``y``) it is computed as ``estimator.score(X, y)``
       (a solid red line); without them the line is the row-weighted mean of the
       partitions' scores, drawn dashed and labelled as such. k-means scores
       (``-inertia``, a sum over rows) are shown per row;
    3. the fusion tree: one ``fit`` node per partition, the ``combine`` levels with
       fan-in ``split_every_``, and the ``finalize`` root, as in the task graph.

    matplotlib is imported when called. A new figure is closed in ``pyplot`` at
    once, so it is never shown by ``plt.show()`` nor kept open: save it with
    ``fig.savefig(...)``; in Jupyter it displays as a cell's value (end the cell
    with ``plot_fusion(...)`` or ``fig``).

    Parameters
    ----------
    estimator : FusedClassifier, FusedRegressor, FusedClusterer or FusedTransformer
        A fitted daskfuse estimator.
    X : array-like, pandas DataFrame, dask array or dask DataFrame, default=None
        Data to score the fused model on (usually the training data).
    y : array-like or dask collection, default=None
        Targets for ``X``; required with ``X`` for classifiers and regressors.
    fig : matplotlib.figure.Figure or SubFigure, default=None
        Where to draw; it is cleared first. None makes a new 15 x 4.6 inch figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, with the three axes in ``fig.axes``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If ``estimator`` is not a daskfuse estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from daskfuse import FusedClassifier
    >>> from daskfuse.plot import plot_fusion
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3))
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> clf = FusedClassifier(LogisticRegression(), n_partitions=6, split_every=3)
    >>> fig = plot_fusion(clf.fit(X, y), X=X, y=y)
    >>> len(fig.axes)
    3
    >>> fig.axes[2].get_title()
    'fusion tree: 6 partitions, split_every=3'
    >>> fig.savefig("fusion.png")  # doctest: +SKIP
    """
    from .estimators import _FusedBase

    if not isinstance(estimator, _FusedBase):
        raise TypeError(
            "plot_fusion needs a daskfuse estimator (FusedClassifier, FusedRegressor, "
            f"FusedClusterer, FusedTransformer); got {type(estimator).__name__}"
        )
    check_is_fitted(estimator, list(_FITTED))
    matplotlib, LineCollection, Patch, MaxNLocator = _import_matplotlib()
    score = _fused_score(estimator, X, y)
    fused = None if score is None else {"score": score, "rows": _n_rows(X)}
    report = estimator.partition_report_

    if fig is None:
        fig = _new_figure()
    else:
        fig.clear()
    axes = fig.subplots(1, 3, width_ratios=[1, 1, 1.15])
    _draw_rows(axes[0], estimator, report, matplotlib, Patch, MaxNLocator)
    _draw_scores(axes[1], estimator, report, fused, MaxNLocator)
    _draw_tree(axes[2], int(estimator.n_partitions_), int(estimator.split_every_),
               LineCollection)
    fig.suptitle(
        f"{type(estimator).__name__}: {_plural(estimator.n_partitions_, 'partition')} fused by "
        f"{estimator.fusion_!r} into {type(estimator.fused_estimator_).__name__}"
    )
    return fig
