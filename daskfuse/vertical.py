"""Vertical (feature-partitioned) training: one model per column block, fused.

With ``partition=Columns(...)`` (:class:`daskfuse.partition.Columns`) the features are
split over *column blocks*; every block has all rows. Each block's raw columns are
their own dask pieces and only that block's tasks read them: what leaves a block is a
fitted model of its columns, coefficients, or n-vectors of predictions. Two fusions:

:class:`Backfit` (``fusion="backfit"``)
    additive fusion of linear models (``LinearRegression``, ``Ridge``,
    ``LogisticRegression`` with an L2 penalty or none) by block coordinate descent,
    the backfitting of additive models. A round visits the blocks in turn
    (Gauss-Seidel); block ``b``'s task takes its columns, the targets and the
    running linear predictor of the whole model (an n-vector, n x k for k outputs
    or classes), solves the model's own objective over its coefficients and the
    intercept with every other block's contribution held fixed as an offset, and
    passes the updated predictor on. Least squares solve exactly (an
    eigendecomposition of the block's centred Gram matrix, computed once); the
    logistic block problem ``C * sum(w_i * logloss_i) + ||W||^2 / 2`` (intercept
    unpenalised, ``w_i`` from ``class_weight``: scikit-learn's objective) is solved
    by L-BFGS from the previous round's coefficients. Every step lowers that convex
    objective, so the rounds converge to the centralised model; they stop when the
    largest coefficient change of a round, relative to the largest coefficient, is
    below ``tol``. The fused model is a plain ``LinearRegression`` / ``Ridge`` /
    ``LogisticRegression`` with ``coef_`` in the original column order.
:class:`ColumnStack` (``fusion="stack"``)
    any classifier or regressor: each block fits the estimator on its columns and
    computes out-of-fold predictions with scikit-learn's ``cross_val_predict``; a
    meta-learner is fitted on the blocks' out-of-fold outputs side by side. The
    fused model is a :class:`~daskfuse.models.ColumnStackingClassifier` /
    :class:`~daskfuse.models.ColumnStackingRegressor`, which routes each block of a
    full ``X`` to its model. Stacking combines what each block can say on its own:
    an interaction between features of different blocks (``y`` depends on
    ``x_a * x_b``) is invisible to both blocks and lost.

``fusion="auto"`` picks backfitting where it applies, else stacking.

Why the blocks run one after another: the blocks of a Jacobi round (all at once,
from the same predictor) may diverge on correlated blocks unless each step is damped
by ``1/n_blocks``, which costs about ``n_blocks`` times more rounds. A Gauss-Seidel
round keeps one worker busy at a time but needs few rounds, and only one n-vector
travels per step. Putting correlated features in the same block
(``Columns(strategy="correlation")``) makes the rounds converge faster.

Task graph
----------
Keys are ``("daskfuse-<step>-<token>", ..., b)``: every per-block key ends with its
block index ``b``.

* ``data`` (in-memory inputs): block ``b``'s columns, one piece. For dask arrays
  whose column chunks are the blocks (``strategy="chunks"``) the pieces are the
  array's own chunks, one per row chunk (a rows x columns grid: the block task
  concatenates its row pieces). Otherwise ``columns`` tasks ``(i, b)`` cut block
  ``b``'s columns out of row chunk ``i`` on the worker that holds the chunk.
* ``target``: the targets, one n-vector, read by every block.
* ``fit`` (stacking): fits block ``b``'s model and its out-of-fold predictions;
  ``finalize`` fits the meta-learner on those predictions.
* ``block`` (backfitting): block ``b``'s columns and targets with what the rounds
  reuse (the eigendecomposition of least squares); :meth:`FusedClassifier.fit`
  persists it once, so that every round reuses it where it is. ``step`` ``(r, b)``
  is block ``b``'s update in round ``r``, the only task of a round: it reads its
  block, the step before it (the running predictor, the only n-sized thing that
  travels, with a small log of the steps) and its own previous step (its
  coefficients, on the same worker). The first step of a round tests the previous
  round's convergence; after convergence the steps pass their inputs through.
  ``coef`` and ``log`` take the results out, ``finalize`` assembles the model.
  ``fit`` runs a few rounds at a time (as many as the rate of convergence says are
  left) and stops at convergence; ``fit_graph`` unrolls ``max_rounds`` rounds.
"""

from __future__ import annotations

import operator
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from scipy import optimize
from scipy.special import logsumexp, softmax
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import cross_val_predict
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from ._graph import (
    _worker_name,
    compute_with_progress,
    estimator_allows_nan,
    fit_prefix,
    plain_params,
)
from ._inputs import (
    _y_blocks,
    aligned,
    dask_blocks,
    dask_classes,
    is_dask_input,
    seed_sequence,
)
from ._quiet import quiet_warnings
from ._trainer import (
    FitResult,
    check_on_error,
    check_passes,
    check_split_every,
    report_frame,
    validation_probe,
)
from ._validation import check_int, check_real, is_int
from .exceptions import FusionError, PartitionError
from .fusion.base import Strategy
from .models import (
    ColumnStackingClassifier,
    ColumnStackingRegressor,
    resolve_stack_method,
    stack_features,
)
from .partition import Columns, cluster_threads

__all__ = [
    "Backfit",
    "ColumnPlan",
    "ColumnStack",
    "VerticalFusion",
    "column_groups",
    "fit",
    "fit_graph",
    "graph",
    "plan_columns",
    "resolve_vertical_fusion",
    "train",
]

#: the estimators that backfitting fuses (exact types: a subclass may change the loss)
BACKFIT_ESTIMATORS = (LinearRegression, Ridge, LogisticRegression)
#: gradient tolerance and iteration cap of the logistic block solves: tight,
#: so that the rounds approach the exact optimum rather than a solver's stopping point
INNER_GTOL = 1e-10
INNER_MAX_ITER = 1000
#: logistic block problems with at most this many parameters are solved by Newton's
#: method (Hessian of that size, n times its size to build), larger ones by L-BFGS
NEWTON_MAX_PARAMS = 400


# ------------------------------------------------------------------------ fusions
class VerticalFusion(Strategy):
    """Base class of the fusions of column blocks (:class:`Backfit`, :class:`ColumnStack`)."""

    _token_name = "daskfuse.VerticalFusion"
    name = None

    def unsupported_reason(self, estimator):
        """Why this fusion cannot fuse ``estimator``, or None when it can."""
        raise NotImplementedError


class Backfit(VerticalFusion):
    """Additive fusion of linear models over column blocks (block coordinate descent).

    Converges to the model fitted on all columns: ``LinearRegression``, ``Ridge``
    (one scalar ``alpha``) and ``LogisticRegression`` (L2 penalty or none, binary or
    multinomial, ``class_weight`` supported; not ``liblinear``, which penalises the
    intercept). See the module documentation.

    Parameters
    ----------
    max_rounds : int, default=100
        At most this many rounds (each visits every block once); a
        ``ConvergenceWarning`` says when they were not enough.
    tol : float, default=1e-5
        Stop when the largest change of a coefficient (intercept included) in a round,
        divided by the largest coefficient, is below ``tol``. The rounds converge
        linearly, at a rate ``r`` that grows with the correlation between blocks;
        the coefficients are then within about ``tol * r / (1 - r)`` (relative) of
        the centralised solution (``history_`` shows the rate). The estimator's own
        ``tol``, ``max_iter`` and ``solver`` are not used: each block problem is
        solved to full precision.

    Examples
    --------
    >>> from daskfuse.vertical import Backfit
    >>> Backfit(max_rounds=50, tol=1e-8)
    Backfit(max_rounds=50, tol=1e-08)
    """

    name = "backfit"

    def __init__(self, max_rounds=100, tol=1e-5):
        self.max_rounds = check_int(max_rounds, "Backfit(max_rounds=...)", low=1)
        self.tol = check_real(tol, "Backfit(tol=...)", low=0, low_open=True)

    def _params(self):
        return {"max_rounds": self.max_rounds, "tol": self.tol}

    def unsupported_reason(self, estimator):
        if type(estimator) not in BACKFIT_ESTIMATORS:
            return (
                "backfitting fuses LinearRegression, Ridge and LogisticRegression; got "
                f"{type(estimator).__name__}"
            )
        params = estimator.get_params(deep=False)
        if params.get("positive"):
            return "positive=True (constrained coefficients) is not supported by backfitting"
        if isinstance(estimator, Ridge) and np.size(params["alpha"]) != 1:
            return "backfitting needs one scalar alpha"
        if isinstance(estimator, LogisticRegression):
            penalty = params["penalty"]
            if penalty not in ("deprecated", "l2", None):
                return (
                    f"backfitting solves the L2 (or unpenalised) objective; got "
                    f"penalty={penalty!r}"
                )
            if penalty == "deprecated" and params["l1_ratio"] not in (0, None):
                return (
                    "backfitting solves the L2 (or unpenalised) objective; got "
                    f"l1_ratio={params['l1_ratio']!r} (an L1 term)"
                )
            if params["solver"] == "liblinear":
                return (
                    "solver='liblinear' penalises the intercept, so its optimum is not "
                    "the one backfitting converges to; use solver='lbfgs'"
                )
        return None


class ColumnStack(VerticalFusion):
    """Stacking over column blocks: a meta-learner on the blocks' out-of-fold outputs.

    Each block fits the estimator on its columns (all rows) and computes its
    out-of-fold output with ``sklearn.model_selection.cross_val_predict(cv=cv)``;
    the meta-learner is fitted on the blocks' outputs side by side. Applies to any
    classifier or regressor. The fused model is a
    :class:`~daskfuse.models.ColumnStackingClassifier` /
    :class:`~daskfuse.models.ColumnStackingRegressor`.

    Parameters
    ----------
    final_estimator : estimator or None, default=None
        The meta-learner (cloned); None is ``LogisticRegression()`` for classifiers
        and ``RidgeCV()`` for regressors.
    cv : int or cross-validation splitter, default=5
        The folds of ``cross_val_predict`` (an int: scikit-learn's (stratified)
        k-fold, unshuffled, so every block gets the same folds).
    stack_method : {"auto", "predict_proba", "decision_function", "predict"}, default="auto"
        Which block output feeds the meta-learner (classifiers); ``"auto"`` takes the
        first of these the estimator has.

    Examples
    --------
    >>> from daskfuse.vertical import ColumnStack
    >>> ColumnStack(cv=3)
    ColumnStack(final_estimator=None, cv=3, stack_method='auto')
    """

    name = "stack"

    def __init__(self, final_estimator=None, cv=5, stack_method="auto"):
        if final_estimator is not None and not hasattr(final_estimator, "fit"):
            raise TypeError(
                "ColumnStack(final_estimator=...) must be None or an estimator; got "
                f"{type(final_estimator).__name__}"
            )
        if is_int(cv):
            if cv < 2:
                raise ValueError(f"ColumnStack(cv=...) must be >= 2 folds; got {cv}")
        elif not hasattr(cv, "split"):
            raise TypeError(
                "ColumnStack(cv=...) must be an int >= 2 or a cross-validation splitter; "
                f"got {cv!r}"
            )
        methods = ("auto", "predict_proba", "decision_function", "predict")
        if stack_method not in methods:
            raise ValueError(
                f"ColumnStack(stack_method=...) must be one of "
                f"{', '.join(map(repr, methods))}; got {stack_method!r}"
            )
        self.final_estimator = final_estimator
        self.cv = cv
        self.stack_method = stack_method

    def _params(self):
        return {
            "final_estimator": self.final_estimator,
            "cv": self.cv,
            "stack_method": self.stack_method,
        }

    def unsupported_reason(self, estimator):
        classifier = is_classifier(estimator)
        if not (classifier or is_regressor(estimator)):
            return "stacking needs a classifier or a regressor"
        try:
            resolve_stack_method(estimator, self.stack_method, classifier)
        except TypeError as exc:
            return str(exc)
        return None


VERTICAL_FUSIONS = {"backfit": Backfit, "stack": ColumnStack}


def resolve_vertical_fusion(fusion, estimator):
    """The :class:`VerticalFusion` that ``fusion`` names for ``estimator``.

    Parameters
    ----------
    fusion : str or VerticalFusion
        ``"auto"`` (backfitting where it applies, else stacking), ``"backfit"``,
        ``"stack"`` or an instance.
    estimator : estimator
        The unfitted template.

    Raises
    ------
    ValueError
        ``fusion`` is not one of these.
    FusionError
        The fusion cannot fuse this estimator.
    """
    can = [n for n, cls in VERTICAL_FUSIONS.items() if cls().unsupported_reason(estimator) is None]
    if isinstance(fusion, VerticalFusion):
        chosen = fusion
    elif isinstance(fusion, str) and fusion == "auto":
        chosen = Backfit() if "backfit" in can else ColumnStack()
    elif isinstance(fusion, str) and fusion in VERTICAL_FUSIONS:
        chosen = VERTICAL_FUSIONS[fusion]()
    else:
        raise ValueError(
            "with partition=Columns(...), fusion must be 'auto', 'backfit', 'stack' or a "
            "daskfuse.vertical.Backfit / ColumnStack instance (the row-wise fusions do "
            f"not apply to column blocks); got {fusion!r}"
        )
    reason = chosen.unsupported_reason(estimator)
    if reason is not None:
        raise FusionError(
            f"fusion={chosen!r} cannot fuse {estimator!r} over column blocks: {reason}. "
            f"Vertical fusions that apply to {type(estimator).__name__}: "
            f"{', '.join(map(repr, can)) or 'none'}"
        )
    return chosen


# ------------------------------------------------------------------------ planning
@dataclass
class ColumnPlan:
    """The column blocks of one fit and the dask pieces of their raw columns.

    Attributes
    ----------
    groups : list of ndarray of int
        The sorted column indices of each block.
    pieces : list of list of Delayed
        For each block, its row pieces (all rows, only its columns), in row order.
    target : Delayed
        The targets, one piece (``("daskfuse-target-<token>", 0)``).
    strategy : str
        The strategy that made the blocks.
    keys : dict
        Key prefix of each step.
    """

    groups: list
    pieces: list
    target: Any
    strategy: str
    keys: dict = field(default_factory=dict)


#: the steps of a column fit
COLUMN_STEPS = (
    "data", "columns", "target", "fit", "block", "step", "coef", "log", "finalize",
)


def _column_dtypes(X, n_features):
    if isinstance(X, pd.DataFrame | dd.DataFrame):
        return [str(t) for t in X.dtypes]
    dtype = X.dtype if hasattr(X, "dtype") else np.asarray(X).dtype
    return [str(dtype)] * n_features


def _moments(block):
    """Row count, column sums and cross-products of one row block (correlation planning)."""
    a = np.asarray(block, dtype=np.float64)
    return len(a), a.sum(axis=0), a.T @ a


def _correlation(X):
    """Column correlations of ``X`` from one pass of moments (on the workers for dask)."""
    if is_dask_input(X):
        parts = dask.compute(*[delayed(_moments, pure=True)(b) for b in dask_blocks(X).x_blocks])
    else:
        parts = [_moments(X)]
    n = sum(p[0] for p in parts)
    s = sum(p[1] for p in parts)
    cross = sum(p[2] for p in parts)
    mean = s / max(n, 1)
    cov = cross / max(n, 1) - np.outer(mean, mean)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    corr[~np.isfinite(corr)] = 0.0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


def _cluster_columns(corr, n_blocks):
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    p = len(corr)
    if p == 1 or n_blocks == 1:
        return np.zeros(p, dtype=int)
    dist = squareform(1.0 - np.abs(corr), checks=False)
    labels = fcluster(linkage(dist, method="average"), t=n_blocks, criterion="maxclust")
    return labels


def _groups_from_labels(labels):
    labels = np.asarray(labels)
    order = []
    for lab in labels:
        if lab not in order:
            order.append(lab)
    return [np.flatnonzero(labels == lab) for lab in order]


def _count(columns, n_features, what):
    n = columns.n_blocks
    if is_int(n):
        if n > n_features:
            raise ValueError(
                f"Columns(n_blocks={n}) is larger than the number of columns "
                f"({n_features}) with strategy={what!r}: every block needs a column"
            )
        return int(n)
    return max(1, min(cluster_threads(), n_features))


def _check_count(columns, n, what):
    if is_int(columns.n_blocks) and columns.n_blocks != n:
        raise ValueError(
            f"Columns(n_blocks={columns.n_blocks}) contradicts strategy={what!r}, which "
            f"makes {n} block(s); leave n_blocks out"
        )


def _explicit_groups(columns, n_features, names):
    groups = []
    for b, group in enumerate(columns.groups):
        group = list(group)
        if isinstance(group[0], str):
            if names is None:
                raise ValueError(
                    f"Columns(groups=...): groups[{b}] names columns ({group[:3]!r} ...) but "
                    "X has no column names (an array); use column indices"
                )
            position = {n: i for i, n in enumerate(names)}
            unknown = [c for c in group if c not in position]
            if unknown:
                raise ValueError(
                    f"Columns(groups=...): groups[{b}] names columns {unknown} that X does "
                    f"not have; X's columns: {list(names)}"
                )
            idx = [position[c] for c in group]
        else:
            idx = [int(c) for c in group]
            bad = [c for c in idx if c >= n_features]
            if bad:
                raise ValueError(
                    f"Columns(groups=...): groups[{b}] holds column index(es) {bad}, but X "
                    f"has {n_features} columns (0 .. {n_features - 1})"
                )
        groups.append(np.asarray(sorted(idx), dtype=np.intp))
    covered = np.concatenate(groups)
    missing = np.setdiff1d(np.arange(n_features), covered)
    if len(missing):
        shown = missing.tolist() if names is None else [names[i] for i in missing]
        raise ValueError(
            f"Columns(groups=...) leaves column(s) {shown} in no group; every column of X "
            "must be in exactly one group (drop unused columns from X first)"
        )
    return groups


def resolve_strategy(columns, X):
    """The strategy ``columns`` means for ``X`` (``"auto"`` resolved)."""
    if columns.strategy != "auto":
        return columns.strategy
    if columns.groups is not None:
        return "groups"
    if isinstance(X, da.Array) and X.ndim == 2 and X.numblocks[1] > 1 and columns.n_blocks is None:
        return "chunks"
    return "uniform"


def column_groups(columns, X, n_features, names, corr_data=None):
    """The column indices of every block, sorted within blocks, blocks by first column.

    Parameters
    ----------
    columns : Columns
    X : array-like or dask collection
        The input as given (its dtypes, column chunks and, for ``"correlation"``,
        its values are read).
    n_features : int
    names : sequence of str or None
        Column names, where ``X`` has them.
    corr_data : array-like or None
        What to compute correlations on (default ``X``).

    Returns
    -------
    groups : list of ndarray of int
    strategy : str
    """
    strategy = resolve_strategy(columns, X)
    if strategy == "groups":
        groups = _explicit_groups(columns, n_features, names)
        _check_count(columns, len(groups), strategy)
    elif strategy == "chunks":
        if not isinstance(X, da.Array):
            raise ValueError(
                "Columns(strategy='chunks') needs a dask array chunked along its columns; "
                f"got {type(X).__module__}.{type(X).__name__}: use 'uniform', 'groups', "
                "'dtype' or 'correlation'"
            )
        edges = np.cumsum((0,) + tuple(X.chunks[1]))
        groups = [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:])]
        _check_count(columns, len(groups), strategy)
    elif strategy == "dtype":
        groups = _groups_from_labels(_column_dtypes(X, n_features))
        _check_count(columns, len(groups), strategy)
    elif strategy in ("uniform", "random"):
        n = _count(columns, n_features, strategy)
        order = np.arange(n_features)
        if strategy == "random":
            order = np.random.default_rng(columns.random_state).permutation(n_features)
        groups = [np.sort(g) for g in np.array_split(order, n)]
    else:  # correlation
        n = _count(columns, n_features, strategy)
        corr = _correlation(X if corr_data is None else corr_data)
        groups = _groups_from_labels(_cluster_columns(corr, n))
    groups = sorted((np.asarray(g, dtype=np.intp) for g in groups), key=lambda g: g[0])
    return groups, strategy


def _piece(value):
    return value


def _select_columns(index, *chunks):
    """Block columns of one row chunk: ``index`` into the chunks side by side."""
    parts = []
    for chunk in chunks:
        if isinstance(chunk, pd.DataFrame | pd.Series):
            chunk = chunk.to_numpy()
        parts.append(np.asarray(chunk))
    whole = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return whole[:, index]


def _concat_target(*pieces):
    ys = [p.to_numpy() if isinstance(p, pd.Series | pd.DataFrame) else np.asarray(p)
          for p in pieces]
    return aligned(ys[0]) if len(ys) == 1 else np.concatenate(ys, axis=0)


def _dask_array_pieces(X, groups, keys):
    grid = X.to_delayed()
    edges = np.cumsum((0,) + tuple(X.chunks[1]))
    pieces = []
    for b, cols in enumerate(groups):
        js = np.unique(np.searchsorted(edges, cols, side="right") - 1)
        whole = len(js) == 1 and np.array_equal(cols, np.arange(edges[js[0]], edges[js[0] + 1]))
        if whole:
            # the block is a column chunk: its pieces are the array's own chunks
            pieces.append(list(grid[:, js[0]]))
            continue
        local = np.concatenate(
            [np.arange(edges[j], edges[j + 1]) for j in js]
        ).searchsorted(cols)
        pieces.append([
            delayed(_select_columns, pure=True)(
                local, *grid[i, js], dask_key_name=(keys["columns"], i, b)
            )
            for i in range(grid.shape[0])
        ])
    return pieces, (list(X.chunks[0]) if not np.isnan(X.chunks[0]).any() else None)


def plan_columns(X, y, groups, strategy, token):
    """The pieces of every block's raw columns (and the targets) as dask objects.

    Parameters
    ----------
    X : ndarray, dask array or dask DataFrame
        In-memory inputs are validated arrays.
    y : ndarray, dask collection
    groups : list of ndarray of int
    strategy : str
    token : str

    Returns
    -------
    ColumnPlan
    """
    keys = fit_prefix(token, COLUMN_STEPS)
    if isinstance(X, da.Array):
        pieces, lengths = _dask_array_pieces(X, groups, keys)
        y_pieces = _y_blocks(y, lengths, len(pieces[0]))
    elif isinstance(X, dd.DataFrame):
        blocks = dask_blocks(X, y)
        pieces = [
            [
                delayed(_select_columns, pure=True)(
                    cols, xb, dask_key_name=(keys["columns"], i, b)
                )
                for i, xb in enumerate(blocks.x_blocks)
            ]
            for b, cols in enumerate(groups)
        ]
        y_pieces = blocks.y_blocks
    else:
        pieces = [
            [delayed(_piece, pure=True)(
                np.ascontiguousarray(X[:, cols]), dask_key_name=(keys["data"], b)
            )]
            for b, cols in enumerate(groups)
        ]
        y_pieces = [y]
    target = delayed(_concat_target, pure=True)(*y_pieces, dask_key_name=(keys["target"], 0))
    return ColumnPlan(groups, pieces, target, strategy, keys)


# ------------------------------------------------------------------- block tasks
@dataclass(frozen=True)
class VerticalSpec:
    """What every block task needs besides its columns (small; travels with each task)."""

    estimator: Any
    fusion: Any
    classifier: bool
    classes: Any = None
    seeds: tuple | None = None
    allow_nan: bool = False
    groups: tuple = ()


def _block_matrix(spec, index, pieces, n_rows):
    """Block ``index``'s columns as one float64 array, checked (on its worker)."""
    try:
        parts = [
            p.to_numpy(dtype=np.float64) if isinstance(p, pd.DataFrame)
            else np.asarray(p, dtype=np.float64)
            for p in pieces
        ]
    except (TypeError, ValueError) as exc:
        raise PartitionError(
            index, f"the block's columns could not be converted to numbers ({exc})"
        ) from exc
    X = aligned(parts[0]) if len(parts) == 1 else np.concatenate(parts, axis=0)
    cols = spec.groups[index].tolist() if spec.groups else None
    if X.ndim != 2:
        raise PartitionError(index, f"the block's X must be 2-dimensional, got {X.ndim}")
    if X.shape[0] != n_rows:
        raise PartitionError(
            index,
            f"the block (columns {cols}) has {X.shape[0]} rows but y has {n_rows}: X and y "
            "are not aligned",
        )
    if not spec.allow_nan and not np.isfinite(X).all():
        raise PartitionError(index, f"X contains NaN or infinity in columns {cols}")
    return X


def _check_target(y):
    y = np.asarray(y)
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")
    if y.dtype.kind == "O" and pd.isna(y).any():
        raise ValueError("y contains missing values")
    return y


def _fit_quietly(estimator, X, y):
    with quiet_warnings(UserWarning):
        return estimator.fit(X, y)


def _block_estimator(spec, index):
    estimator = clone(spec.estimator)
    if spec.seeds is not None and "random_state" in estimator.get_params():
        estimator.set_params(random_state=spec.seeds[index])
    return estimator


def fit_stack_block(spec, index, y, *pieces):
    """Fit block ``index``'s model and its out-of-fold outputs (a ``daskfuse-fit`` task).

    Runs where the block's columns are; the fitted model, the out-of-fold
    meta-features (n rows) and a report row leave it.
    """
    start = time.perf_counter()
    y = _check_target(y)
    X = _block_matrix(spec, index, pieces, len(y))
    estimator = _block_estimator(spec, index)
    method = resolve_stack_method(estimator, spec.fusion.stack_method, spec.classifier)
    fit_start = time.perf_counter()
    try:
        model = _fit_quietly(clone(estimator), X, y)
        with quiet_warnings(UserWarning):
            raw = cross_val_predict(estimator, X, y, cv=spec.fusion.cv, method=method)
    except Exception as exc:
        raise PartitionError(
            index, f"{type(estimator).__name__} on columns {spec.groups[index].tolist()} "
            f"failed: {type(exc).__name__}: {exc}"
        ) from exc
    fit_seconds = time.perf_counter() - fit_start
    features = stack_features(np.asarray(raw), method, spec.classes, spec.classes)
    report = {
        "partition": index,
        "columns": spec.groups[index].tolist(),
        "rows": len(y),
        "train_score": float(model.score(X, y)),
        "n_iter": None,
        "fit_seconds": fit_seconds,
        "task_seconds": time.perf_counter() - start,
        "worker": _worker_name(),
    }
    return model, features, report


def finalize_stack(spec, meta, y, *results):
    """Fit the meta-learner on the blocks' out-of-fold outputs (``daskfuse-finalize``)."""
    fusion = spec.fusion
    models = [r[0] for r in results]
    blocks = [g.tolist() for g in spec.groups]
    if spec.classifier:
        fused = ColumnStackingClassifier(
            models, blocks, fusion.final_estimator, stack_method=fusion.stack_method,
            classes=spec.classes,
        )
    else:
        fused = ColumnStackingRegressor(
            models, blocks, fusion.final_estimator, stack_method=fusion.stack_method
        )
    fused.fit_final(np.hstack([r[1] for r in results]), np.asarray(y))
    _set_inputs(fused, meta)
    return fused, [r[2] for r in results]


def _set_inputs(model, meta):
    model.n_features_in_ = meta["n_features_in_"]
    if meta.get("feature_names_in_") is not None:
        model.feature_names_in_ = meta["feature_names_in_"]
    return model


# ----------------------------------------------------------------- backfitting
def _problem(estimator):
    """``(loss, penalty, fit_intercept)`` of a supported linear estimator.

    ``loss`` is ``"squares"`` (penalty: ``alpha``) or ``"logistic"`` (penalty: ``C``,
    ``inf`` for none).
    """
    params = estimator.get_params(deep=False)
    if isinstance(estimator, LogisticRegression):
        C = np.inf if params["penalty"] is None else float(params["C"])
        return "logistic", C, bool(params["fit_intercept"])
    alpha = float(np.ravel(params["alpha"])[0]) if isinstance(estimator, Ridge) else 0.0
    return "squares", alpha, bool(params["fit_intercept"])


@dataclass
class BackfitBlock:
    """One block's data for the rounds; holds its raw columns, so stays with the block."""

    index: int
    #: the columns, with a last column of ones for a logistic model with intercept
    #: (made once, not in every Newton step); ``X`` is a view without it
    design: np.ndarray
    target: np.ndarray
    weights: np.ndarray | None = None
    mean: np.ndarray | None = None
    eigvals: np.ndarray | None = None
    eigvecs: np.ndarray | None = None
    n_columns: int = 0

    @property
    def X(self):
        return self.design[:, : self.n_columns]


def prepare_block(spec, index, y, *pieces):
    """Block ``index``'s columns and what every round reuses (a ``daskfuse-block`` task)."""
    y = _check_target(y)
    X = _block_matrix(spec, index, pieces, len(y))
    loss, _, fit_intercept = _problem(spec.estimator)
    if loss == "logistic":
        labels = np.searchsorted(spec.classes, y)
        if len(spec.classes) == 2:
            target = (labels == 1).astype(np.float64)[:, None]
        else:
            target = np.zeros((len(y), len(spec.classes)))
            target[np.arange(len(y)), labels] = 1.0
        class_weight = spec.estimator.get_params()["class_weight"]
        weights = None
        if class_weight is not None:
            weights = compute_class_weight(class_weight, classes=spec.classes, y=y)[labels]
        design = np.hstack([X, np.ones((len(X), 1))]) if fit_intercept else X
        return BackfitBlock(index, design, target, weights=weights, n_columns=X.shape[1])
    target = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    mean = X.mean(axis=0) if fit_intercept else np.zeros(X.shape[1])
    centred = X - mean
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred)
    return BackfitBlock(
        index, X, target, mean=mean, eigvals=eigvals, eigvecs=eigvecs, n_columns=X.shape[1]
    )


def _solve_squares(block, offset, alpha, fit_intercept):
    r = block.target - offset
    centre = r.mean(axis=0) if fit_intercept else np.zeros(r.shape[1])
    g = block.X.T @ (r - centre)
    denom = block.eigvals + alpha
    # alpha = 0 (LinearRegression): the pseudo-inverse on the block's column space
    cut = denom > max(block.eigvals.max(initial=0.0), 0.0) * len(denom) * np.finfo(float).eps
    inv = np.where(cut, 1.0 / np.where(cut, denom, 1.0), 0.0)
    w = block.eigvecs @ (inv[:, None] * (block.eigvecs.T @ g))
    intercept = centre - block.mean @ w
    return w.T, intercept, 0


def _logistic_terms(z, target, weights):
    """The summed (weighted) log-loss at the predictor ``z``, the residuals and ``p``."""
    if target.shape[1] == 1:
        # one exponential for both: log(1 + e^z) = max(z, 0) + log1p(e^-|z|) and
        # sigmoid(z) = 1 / (1 + e^-z) or e^z / (1 + e^z), whichever does not overflow
        z1 = z[:, 0]
        e = np.exp(-np.abs(z1))
        losses = np.maximum(z1, 0.0) + np.log1p(e) - target[:, 0] * z1
        prob = (np.where(z1 >= 0, 1.0, e) / (1.0 + e))[:, None]
    else:
        losses = logsumexp(z, axis=1) - np.sum(target * z, axis=1)
        prob = softmax(z, axis=1)
    residual = prob - target
    if weights is not None:
        losses = losses * weights
        residual = residual * weights[:, None]
    return losses.sum(), residual, prob


def _solve_logistic(block, offset, C, fit_intercept, coef0, intercept0):
    """Minimise the logistic objective over one block's coefficients and the intercept.

    scikit-learn's objective ``C * sum(w_i * loss_i) + ||W||^2 / 2`` (intercept
    unpenalised), divided by ``C * sum(w_i)`` (as scikit-learn's own solvers do) for
    a well-scaled problem, with the other blocks' part of the predictor fixed in
    ``offset``. Newton's method with a backtracking line search where the Hessian is
    small (it converges in a few iterations from the previous round's coefficients,
    and to full precision), else L-BFGS.
    """
    A, target = block.design, block.target
    k, p = coef0.shape
    total = float(len(A) if block.weights is None else block.weights.sum())
    l2 = 0.0 if np.isinf(C) else 1.0 / (C * total)
    q = A.shape[1]
    penalty = np.full(q, l2)
    if fit_intercept:
        penalty[-1] = 0.0
    theta0 = np.hstack([coef0, intercept0[:, None]]) if fit_intercept else coef0.copy()

    def value_grad(theta):
        z = offset + A @ theta.T
        loss, residual, prob = _logistic_terms(z, target, block.weights)
        value = loss / total + 0.5 * np.sum(penalty * theta * theta)
        return value, residual.T @ A / total + penalty * theta, (z, loss, prob)

    if k * q <= NEWTON_MAX_PARAMS:
        theta, n_iter, (z, loss, _) = _newton(
            value_grad, theta0, A, block.weights, total, penalty
        )
    else:

        def fun(flat):
            value, grad, _ = value_grad(flat.reshape(k, q))
            return value, grad.ravel()

        result = optimize.minimize(
            fun, theta0.ravel(), method="L-BFGS-B", jac=True,
            options={"maxiter": INNER_MAX_ITER, "gtol": INNER_GTOL,
                     "ftol": 64 * np.finfo(float).eps, "maxls": 50},
        )
        theta, n_iter = result.x.reshape(k, q), int(result.nit)
        _, _, (z, loss, _) = value_grad(theta)
    W = theta[:, :p]
    b = theta[:, p] if fit_intercept else np.zeros(k)
    # the new linear predictor and the data term come with the solution
    return W, b, n_iter, z, (loss if np.isinf(C) else C * loss)


def _hessian(prob, A, weights, total, penalty):
    """Hessian of the scaled logistic objective in the layout ``(class, column)``."""
    k, q = prob.shape[1], A.shape[1]
    if k == 1:
        curvature = {(0, 0): prob[:, 0] * (1 - prob[:, 0])}
    else:
        curvature = {
            (c, d): prob[:, c] * ((c == d) - prob[:, d]) for c in range(k) for d in range(c, k)
        }
    H = np.zeros((k * q, k * q))
    for (c, d), D in curvature.items():
        if weights is not None:
            D = D * weights
        block = A.T @ (D[:, None] * A) / total
        H[c * q : (c + 1) * q, d * q : (d + 1) * q] = block
        H[d * q : (d + 1) * q, c * q : (c + 1) * q] = block.T
    H[np.diag_indices_from(H)] += np.tile(penalty, k)
    return H


def _newton(value_grad, theta, A, weights, total, penalty):
    value, grad, extra = value_grad(theta)
    n_iter = 0
    while n_iter < INNER_MAX_ITER and np.max(np.abs(grad)) > INNER_GTOL:
        H = _hessian(extra[2], A, weights, total, penalty)
        # least squares: the Hessian is singular along the softmax's shift (and
        # without a penalty); the minimum-norm step stays off that direction
        step = -np.linalg.lstsq(H, grad.ravel(), rcond=None)[0].reshape(theta.shape)
        slope = float(np.sum(grad * step))
        # -slope (the Newton decrement) is twice the decrease a full step promises:
        # below the precision of the objective there is nothing left to gain
        if not -slope > 4 * np.finfo(float).eps * max(abs(value), np.finfo(float).tiny):
            break
        t = 1.0
        while t > 1e-12:
            new_value, new_grad, new_extra = value_grad(theta + t * step)
            if new_value <= value + 1e-4 * t * slope and new_value < value:
                break
            t *= 0.5
        else:  # no decrease left at machine precision: converged
            break
        theta, value, grad, extra = theta + t * step, new_value, new_grad, new_extra
        n_iter += 1
    return theta, n_iter, extra


def backfit_step(spec, round_, block, previous, own):
    """Block ``b``'s update in one round (a ``daskfuse-step`` task).

    Parameters
    ----------
    spec : VerticalSpec
    round_ : int
    block : BackfitBlock
        The block's columns and targets (on the block's worker).
    previous : tuple or None
        The output of the step just before (the previous block's, or the last
        block's of the previous round): the whole model's linear predictor and
        intercept, the log of the steps so far and whether the rounds have
        converged. None at the very first step.
    own : tuple or None
        This block's output of the previous round (its coefficients, on the same
        worker); None in the first round.

    Returns
    -------
    coef, carry, log, done
        The block's coefficients (k x p_b); ``(eta, intercept)``, the predictor
        (n x k, the only n-sized thing that leaves the block) and intercept (k);
        the log of every step (small dicts: the convergence test and the reports);
        and whether the rounds had converged, in which case the step passed its
        inputs through. The first block of a round tests the previous round.
    """
    with _one_blas_thread():
        return _backfit_step(spec, round_, block, previous, own)


_BLAS = {"lock": threading.Lock(), "users": 0, "limiter": None, "controller": None}


@contextmanager
def _one_blas_thread():
    """Run a block step with one BLAS thread.

    A step's BLAS calls are small (a block's columns by an n-vector) and run
    thousands of times; under the sync or threads scheduler, OpenBLAS's own threads
    then only contend with the scheduler's (on a busy 2-core machine one logistic
    block solve took 100 ms with two BLAS threads, 8 ms with one). The limit is
    process-wide, so concurrent steps share one: the last to finish restores the
    original. Distributed workers start with one BLAS thread already.
    """
    state = _BLAS
    with state["lock"]:
        if state["users"] == 0:
            if state["controller"] is None:
                from threadpoolctl import ThreadpoolController

                state["controller"] = ThreadpoolController()
            state["limiter"] = state["controller"].limit(limits=1, user_api="blas")
        state["users"] += 1
    try:
        yield
    finally:
        with state["lock"]:
            state["users"] -= 1
            if state["users"] == 0:
                state["limiter"].restore_original_limits()
                state["limiter"] = None


def _backfit_step(spec, round_, block, previous, own):
    start = time.perf_counter()
    n, p = block.X.shape
    k = block.target.shape[1]
    if previous is None:
        carry, log, done = (np.zeros((n, k)), np.zeros(k)), [], False
    else:
        _, carry, log, done = previous
        n_blocks = len(spec.groups)
        if block.index == 0 and not done and len(log) >= n_blocks:
            done = round_summary(log[-n_blocks:], spec.estimator)["max_change"] < spec.fusion.tol
    coef_old = np.zeros((k, p)) if own is None else own[0]
    if done:
        return coef_old, carry, log, True
    eta, intercept = carry
    loss, penalty, fit_intercept = _problem(spec.estimator)
    # the block's own part is recomputed rather than kept: one n-vector less per block
    offset = eta - block.X @ coef_old.T - intercept
    if loss == "squares":
        coef, new_intercept, n_iter = _solve_squares(block, offset, penalty, fit_intercept)
        eta = offset + block.X @ coef.T + new_intercept
        data_loss = float(np.sum((block.target - eta) ** 2))
    else:
        coef, new_intercept, n_iter, eta, data_loss = _solve_logistic(
            block, offset, penalty, fit_intercept, coef_old, intercept
        )
    change = max(
        float(np.max(np.abs(coef - coef_old), initial=0.0)),
        float(np.max(np.abs(new_intercept - intercept), initial=0.0)),
    )
    info = {
        "block": block.index,
        "round": round_,
        "change": change,
        "scale": max(
            float(np.max(np.abs(coef), initial=0.0)),
            float(np.max(np.abs(new_intercept), initial=0.0)),
        ),
        "sq_norm": float(np.sum(coef * coef)),
        "loss": data_loss,
        "n_iter": n_iter,
        "rows": n,
        "seconds": time.perf_counter() - start,
        "worker": _worker_name(),
        "intercept": new_intercept,
    }
    return coef, (eta, new_intercept), [*log, info], False


def round_summary(infos, estimator):
    """Convergence figures of one round from its steps' infos."""
    loss, penalty, _ = _problem(estimator)
    scale = max(i["scale"] for i in infos)
    change = max(i["change"] for i in infos)
    sq_norm = sum(i["sq_norm"] for i in infos)
    if loss == "squares":
        objective = infos[-1]["loss"] + penalty * sq_norm
    else:
        objective = infos[-1]["loss"] + 0.5 * sq_norm * (0.0 if np.isinf(penalty) else 1.0)
    return {
        "round": infos[0]["round"],
        "max_change": change / scale if scale > 0 else (0.0 if change == 0 else np.inf),
        "objective": objective,
        "seconds": sum(i["seconds"] for i in infos),
    }


def _rounds(log, n_blocks):
    return [log[i : i + n_blocks] for i in range(0, len(log), n_blocks)]


def finalize_backfit(spec, meta, log, coefs):
    """The fused linear model, the block reports and the rounds' history.

    Parameters
    ----------
    log : list of dict
        The steps' log, as the last step passed it on.
    coefs : list of ndarray
        Every block's coefficients after the last round (k x p_b).
    """
    rounds = _rounds(log, len(spec.groups))
    history = [round_summary(r, spec.estimator) for r in rounds]
    converged = bool(history[-1]["max_change"] < spec.fusion.tol)
    estimator = clone(spec.estimator)
    k = coefs[0].shape[0]
    coef = np.zeros((k, meta["n_features_in_"]))
    for block_coef, cols in zip(coefs, spec.groups):
        coef[:, cols] = block_coef
    intercept = np.asarray(log[-1]["intercept"], dtype=float)
    loss, _, fit_intercept = _problem(spec.estimator)
    if loss == "logistic":
        if k > 1:
            # softmax is unchanged by a shift of all intercepts: centre them as
            # scikit-learn's solution is (its intercept gradient sums to zero)
            intercept = intercept - intercept.mean()
        estimator.classes_ = np.asarray(spec.classes)
        estimator.coef_ = coef
        estimator.intercept_ = intercept if fit_intercept else np.zeros(k)
        estimator.n_iter_ = np.asarray([len(rounds)], dtype=np.int32)
    elif meta.get("y_ndim", 1) == 1:
        estimator.coef_ = coef[0]
        estimator.intercept_ = float(intercept[0]) if fit_intercept else 0.0
    else:
        estimator.coef_ = coef
        estimator.intercept_ = intercept if fit_intercept else np.zeros(k)
    _set_inputs(estimator, meta)
    reports = []
    for b, cols in enumerate(spec.groups):
        steps = [r[b] for r in rounds]
        seconds = float(sum(s["seconds"] for s in steps))
        reports.append({
            "partition": b,
            "columns": cols.tolist(),
            "rows": steps[-1]["rows"],
            "train_score": None,
            "n_iter": int(sum(s["n_iter"] for s in steps)),
            "fit_seconds": seconds,
            "task_seconds": seconds,
            "worker": steps[-1]["worker"],
            "rounds": len(rounds),
            "converged": converged,
        })
    return estimator, reports, history


# ------------------------------------------------------------------ the driver
#: parameters that only mean something for row partitions, with their defaults and why
#: a column fit refuses any other value
_ROW_ONLY = (
    ("rounds", 1, "it counts fusion rounds over row partitions; backfitting's rounds are "
     "Backfit(max_rounds=...) (pass fusion=Backfit(max_rounds=...)) and stacking has none"),
    ("tol", 1e-4, "it is the tolerance of fusion rounds over row partitions; backfitting "
     "has its own: pass fusion=Backfit(tol=...) (stacking has no rounds)"),
    ("local_epochs", 1, "it is what a row partition trains in each round after the "
     "first; every backfitting step solves its block exactly and stacking fits once"),
    ("proximal", 0.0, "it pulls row partitions toward the fused model between rounds; "
     "column blocks are parts of one model, which backfitting solves exactly"),
    ("on_error", "raise", "a column block cannot be left out of the fusion without "
     "dropping its features from the model"),
    ("min_partitions", 1, "it counts the row partitions that on_error='skip' may leave "
     "out; column blocks are never skipped"),
    ("split_every", None, "it is the fan-in of the tree that fuses row partitions; "
     "column blocks are fused by one task (stacking) or in sequence (backfitting)"),
)


def _check_params(params):
    """Validate the parameters of a column fit; refuse those of row partitions only."""
    if params.kind not in ("classifier", "regressor"):
        raise TypeError(
            f"partition=Columns(...) (vertical partitioning) needs a FusedClassifier or "
            f"FusedRegressor; got {params.owner}"
        )
    if params.n_partitions is not None:
        raise ValueError(
            f"n_partitions={params.n_partitions!r} counts row partitions; with "
            "partition=Columns(...) give the number of column blocks as "
            "Columns(n_blocks=...)"
        )
    params.partition.validate()
    # the same checks as for rows first: a bad value gets the same message
    check_passes(params)
    check_on_error(params)
    if params.split_every is not None:
        check_split_every(params)
    for name, default, why in _ROW_ONLY:
        value = getattr(params, name)
        if value != default:
            raise ValueError(
                f"{name}={value!r} does not apply to partition=Columns(...) (vertical "
                f"partitioning): {why}; leave {name} at its default ({default!r})"
            )


def _dask_input(params, X, y):
    """A dask ``X``'s column count and names, after its checks; ``y`` as given or an array."""
    if isinstance(X, da.Array):
        if X.ndim != 2 or np.isnan(X.shape[1]):
            raise ValueError(
                f"X must be a 2-dimensional dask array with known columns; got shape "
                f"{X.shape}"
            )
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must be numeric; got a dask array of dtype {X.dtype}")
        n_features, names = int(X.shape[1]), None
    elif isinstance(X, dd.DataFrame):
        n_features = len(X.columns)
        names = (
            np.asarray(list(X.columns), dtype=object)
            if all(isinstance(c, str) for c in X.columns) else None
        )
    else:
        raise TypeError(
            f"X must be a dask array or dask DataFrame; got {type(X).__name__}"
        )
    if not is_dask_input(y):
        y = np.asarray(y)
    return X, y, n_features, names


def _memory_input(params, X, y, allow_nan):
    """An in-memory ``X``, ``y`` validated by scikit-learn, with ``X``'s columns."""
    if is_dask_input(y):
        raise TypeError(
            "X is in memory but y is a dask collection; pass both in memory or both as "
            "dask collections"
        )
    probe = validation_probe(params.owner)
    Xv, yv = validate_data(
        probe, X, y,
        ensure_all_finite=not allow_nan,
        multi_output=not params.classifier and params.multi_output,
        y_numeric=not params.classifier,
    )
    return Xv, yv, probe.n_features_in_, getattr(probe, "feature_names_in_", None)


def _block_seeds(params, n_blocks):
    if params.random_state is None:
        return None
    ss = seed_sequence(params.random_state)
    return tuple(int(s.generate_state(1)[0]) for s in ss.spawn(n_blocks))


def _classes(params, X, y, plan):
    """The class labels of a classifier's targets (None for a regressor)."""
    if not params.classifier:
        return None
    if is_dask_input(X):
        classes = dask_classes([plan.target])
    else:
        check_classification_targets(y)
        classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            f"y holds 1 class ({classes[0]}); a classifier needs samples of at least "
            "2 classes"
        )
    return classes


def _prepare(params, X, y):
    """Validate, plan the blocks and build what both drivers need."""
    _check_params(params)
    fusion = resolve_vertical_fusion(params.fusion, params.estimator)
    if y is None:
        raise ValueError(f"{params.owner} requires y to be passed, but the target y is None")
    allow_nan = isinstance(fusion, ColumnStack) and estimator_allows_nan(params.estimator)
    columns = params.partition
    if is_dask_input(X):
        X, y, n_features, names = _dask_input(params, X, y)
        groups, strategy = column_groups(columns, X, n_features, names)
        n_rows = None
    else:
        X_as_given = X
        X, y, n_features, names = _memory_input(params, X, y, allow_nan)
        groups, strategy = column_groups(columns, X_as_given, n_features, names, corr_data=X)
        n_rows = len(y)
    seeds = _block_seeds(params, len(groups))
    token = tokenize(
        "daskfuse.vertical", params.owner, type(params.estimator).__qualname__,
        plain_params(params.estimator),
        fusion, tuple(tuple(g.tolist()) for g in groups), seeds, X, y,
    )
    plan = plan_columns(X, y, groups, strategy, token)
    classes = _classes(params, X, y, plan)
    meta = {
        "n_features_in_": n_features,
        "feature_names_in_": names,
        "classes": classes,
        "y_ndim": y.ndim,
        "n_rows": n_rows,
    }
    spec = VerticalSpec(
        estimator=params.estimator,
        fusion=fusion,
        classifier=params.classifier,
        classes=classes,
        seeds=seeds,
        allow_nan=allow_nan,
        groups=tuple(groups),
    )
    return spec, plan, meta


def _stack_graph(spec, plan, meta):
    keys = plan.keys
    results = [
        delayed(fit_stack_block, pure=True)(
            spec, b, plan.target, *pieces, dask_key_name=(keys["fit"], b)
        )
        for b, pieces in enumerate(plan.pieces)
    ]
    return delayed(finalize_stack, pure=True)(
        spec, meta, plan.target, *results, dask_key_name=(keys["finalize"], 0)
    )


def _prepared_blocks(spec, plan):
    return [
        delayed(prepare_block, pure=True)(
            spec, b, plan.target, *pieces, dask_key_name=(plan.keys["block"], b)
        )
        for b, pieces in enumerate(plan.pieces)
    ]


def _key(obj):
    return obj.key if isinstance(obj, Delayed) else obj


def _rounds_tasks(spec, keys, first, count, blocks, outs):
    """The tasks of rounds ``first`` .. ``first + count - 1``: Gauss-Seidel over the blocks.

    ``blocks`` are the keys of the prepared blocks and ``outs`` the keys of every
    block's last step (None before the first round). Every step reads its own
    block, the step before it (for the predictor, the log and the convergence
    flag) and its block's previous step (for the coefficients, on the same worker):
    one task per block and round, nothing else. The rounds are written as one dict
    of tasks: built call by call with ``dask.delayed``, every call would merge the
    graphs of all earlier rounds (quadratic in the rounds).

    Returns
    -------
    dsk : dict
    outs : list
        The keys of every block's last step.
    """
    dsk, outs = {}, list(outs)
    previous = outs[-1]
    for r in range(first, first + count):
        for b, block in enumerate(blocks):
            step = (keys["step"], r, b)
            dsk[step] = (backfit_step, spec, r, block, previous, outs[b])
            previous = outs[b] = step
    return dsk, outs


def _delayed(key, dsk, name, dependencies):
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=dependencies)
    return Delayed(key, graph, layer=name)


def _backfit_graph(spec, plan, meta):
    """The whole backfit as one graph: ``max_rounds`` unrolled rounds."""
    keys = plan.keys
    blocks = _prepared_blocks(spec, plan)
    dsk, outs = _rounds_tasks(
        spec, keys, 1, spec.fusion.max_rounds, [b.key for b in blocks], [None] * len(blocks)
    )
    coefs = []
    for b, out in enumerate(outs):
        coefs.append((keys["coef"], b))
        dsk[coefs[-1]] = (operator.getitem, out, 0)
    log = (keys["log"], 0)
    dsk[log] = (operator.getitem, outs[-1], 2)
    final = (keys["finalize"], 0)
    dsk[final] = (_finalize_lazy, spec, meta, log, coefs)
    return _delayed(final, dsk, keys["step"], blocks)


def _finalize_lazy(spec, meta, log, coefs):
    estimator, reports, _ = finalize_backfit(spec, meta, log, coefs)
    return estimator, reports


def _warn_not_converged(spec, history):
    warnings.warn(
        f"backfitting did not converge in {spec.fusion.max_rounds} rounds: the last "
        f"round changed the coefficients by {history[-1]['max_change']:.2e} (relative), "
        f"above tol={spec.fusion.tol}; raise Backfit(max_rounds=...) or put correlated "
        "features in the same block (Columns(strategy='correlation'))",
        ConvergenceWarning,
        stacklevel=3,
    )


def graph(params, X, y):
    """The lazy column fit (the trainer's ``graph``): a ``Delayed``.

    It computes to ``(fused model, reports)`` (one report per block). For
    backfitting ``max_rounds`` rounds are unrolled: the steps after convergence pass
    their inputs through, and each report says how many ``rounds`` ran and whether
    they ``converged``.

    Parameters
    ----------
    params : daskfuse._trainer.TrainSpec
        The meta-estimator's parameters (``partition`` a :class:`Columns`).
    X, y : the training data
    """
    spec, plan, meta = _prepare(params, X, y)
    if isinstance(spec.fusion, ColumnStack):
        return _stack_graph(spec, plan, meta)
    return _backfit_graph(spec, plan, meta)


def _next_chunk(history, tol, left):
    """How many rounds to run before the next look at convergence.

    Two at first; then the rounds that the last rate of convergence says are still
    needed (at most 8): a few rounds past convergence cost little (their steps pass
    through), a look costs a round trip to the client.
    """
    if len(history) < 2:
        return min(2, left)
    last, before = history[-1]["max_change"], history[-2]["max_change"]
    rate = last / before if before > 0 else 0.0
    needed = 1 if not 0 < rate < 1 else np.log(tol / last) / np.log(rate)
    return int(min(max(np.ceil(needed), 1), 8, left))


def _run_backfit(spec, plan, meta, verbose):
    """Rounds until convergence; each block's data are persisted once, where they are."""
    fusion, keys = spec.fusion, plan.keys
    n_blocks = len(plan.groups)
    blocks = list(dask.persist(*_prepared_blocks(spec, plan)))
    outs, history = [None] * n_blocks, []
    while len(history) < fusion.max_rounds:
        first = len(history) + 1
        count = _next_chunk(history, fusion.tol, fusion.max_rounds - len(history))
        dsk, last = _rounds_tasks(
            spec, keys, first, count, [b.key for b in blocks], [_key(o) for o in outs]
        )
        log_key = (keys["log"], first)
        dsk[log_key] = (operator.getitem, last[-1], 2)
        deps = [x for x in (*blocks, *outs) if isinstance(x, Delayed)]
        name = f"{keys['step']}-round-{first}"
        wanted = [_delayed(k, dsk, name, deps) for k in [*last, log_key]]
        # the last steps (coefficients and the predictor) stay on the workers; only
        # the log of the steps comes back
        persisted = dask.persist(*wanted)
        outs = list(persisted[:n_blocks])
        (log,) = dask.compute(persisted[n_blocks])
        new = _rounds(log, n_blocks)[len(history) :]
        for infos in new:
            history.append(round_summary(infos, spec.estimator))
            if verbose:
                print(
                    f"[daskfuse] backfit round {len(history)}: max relative change "
                    f"{history[-1]['max_change']:.3e}, objective "
                    f"{history[-1]['objective']:.10g}",
                    flush=True,
                )
        if len(new) < count or history[-1]["max_change"] < fusion.tol:
            break
    get = delayed(operator.getitem, pure=True)
    coefs = list(dask.compute(*[get(o, 0) for o in outs]))
    estimator, reports, history = finalize_backfit(spec, meta, log, coefs)
    if history[-1]["max_change"] >= fusion.tol:
        _warn_not_converged(spec, history)
    return estimator, reports, history


def train(params, X, y):
    """Fit the column blocks and fuse them (the trainer's ``train``).

    Parameters
    ----------
    params : daskfuse._trainer.TrainSpec
        The meta-estimator's parameters (``partition`` a :class:`Columns`).
    X, y : the training data

    Returns
    -------
    daskfuse._trainer.FitResult
    """
    spec, plan, meta = _prepare(params, X, y)
    history = None
    if isinstance(spec.fusion, ColumnStack):
        fused, reports = compute_with_progress(_stack_graph(spec, plan, meta), params.verbose)
    else:
        fused, reports, history = _run_backfit(spec, plan, meta, params.verbose)
        history = pd.DataFrame(history)
    return FitResult(
        fused=fused,
        fusion=spec.fusion,
        partition=Columns(groups=[g.tolist() for g in plan.groups], strategy="groups"),
        report=report_frame(reports),
        n_features_in=meta["n_features_in_"],
        feature_names_in=meta["feature_names_in_"],
        history=history,
        n_rounds=1 if history is None else len(history),
    )


def _check_columns(est):
    if not isinstance(getattr(est, "partition", None), Columns):
        raise TypeError(
            "daskfuse.vertical fits a FusedClassifier or FusedRegressor whose partition is "
            f"a daskfuse.partition.Columns; got partition={getattr(est, 'partition', None)!r}"
        )


def fit(est, X, y):
    """Fit the meta-estimator ``est`` (partition: a Columns) on ``X``, ``y``; return it.

    The same as ``est.fit(X, y)``. A failed fit leaves the estimator unfitted,
    whatever it held before.
    """
    _check_columns(est)
    return est.fit(X, y)


def fit_graph(est, X, y):
    """The lazy vertical fit of the meta-estimator ``est``: ``est.fit_graph(X, y)``."""
    _check_columns(est)
    return est.fit_graph(X, y)
