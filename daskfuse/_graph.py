"""Task decomposition: one fit task per partition and a tree reduction of summaries.

Every task function here is a module-level pure function, so graphs pickle to any
scheduler (sync, threads, processes, distributed) and the dashboard groups tasks by
the step word of their key: ``daskfuse-fit``, ``daskfuse-combine``,
``daskfuse-finalize`` (and ``daskfuse-split`` / ``daskfuse-piece`` where rows are
redistributed).
"""

from __future__ import annotations

import os
import pickle
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any

import dask
import numpy as np
import pandas as pd
from dask import delayed
from dask.base import tokenize
from sklearn.base import ClassifierMixin, RegressorMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags
from sklearn.utils.multiclass import check_classification_targets

from ._adapters import fitted_train_score, max_iter_reached, predicts_at_fit_cost
from ._inputs import aligned, check_dense, check_label_types, missing_as_nan, weight_problem
from ._quiet import quiet_warnings
from .exceptions import FusionError, PartitionError
from .partition import active_client

__all__ = [
    "FitSpec",
    "Node",
    "build_fit_graph",
    "build_score_graph",
    "convergence_note",
    "fit_partition",
    "fit_prefix",
    "plain_params",
    "worker_groups",
]


@dataclass(frozen=True)
class FitSpec:
    """What every fit task needs besides its rows (small; travels with each task)."""

    estimator: Any
    fuser: Any
    classifier: bool
    #: per partition index (a tuple, or in a task a mapping to its own seed only)
    seeds: Any = None
    holdout: float = 0.0
    allow_nan: bool = False
    classes: Any = None
    local_epochs: int = 1
    proximal: float = 0.0
    #: "raise": a failing partition fails the fit; "skip": it is left out of the fusion
    on_error: str = "raise"
    #: fewest partitions that must survive for ``finalize`` to fuse (with "skip")
    min_partitions: int = 1
    #: the estimator takes string and categorical columns (``accepts_objects``): each
    #: partition keeps its container and dtypes (a pandas DataFrame stays one)
    objects: bool = False


@dataclass
class Node:
    """A fusion summary with the report rows of the partitions it covers."""

    summary: Any
    reports: list = field(default_factory=list)


#: a partition of at most this many rows scores its model on all of them for the report
TRAIN_SCORE_ROWS = 1000
#: a larger one on every ``TRAIN_SCORE_STEP``-th row (a tenth of its rows' predictions) ...
TRAIN_SCORE_STEP = 10
#: ... a model that predicts a row in about what its fit spends on one (kernel SVMs,
#: :func:`~daskfuse._adapters.predicts_at_fit_cost`) on all of at most
#: ``KERNEL_SCORE_ROWS`` rows, else on every ``KERNEL_SCORE_STEP``-th (a fiftieth of
#: its rows' predictions: about 2% of its fit, where a tenth cost 11%) ...
KERNEL_SCORE_ROWS = 100
KERNEL_SCORE_STEP = 50
#: ... and on at most this many rows (GaussianNB predicts a row in about 2.5 times
#: what its fit spends on one: 10,000 of a 250,000-row partition cost a tenth of its fit)
TRAIN_SCORE_MAX = 2_000

#: the steps of a row fit
ROW_STEPS = (
    "data",
    "split",
    "piece",
    "fit",
    "combine",
    "finalize",
    "global",
    "score",
    "kept",
)


def fit_prefix(token, steps=ROW_STEPS):
    """Key names of one fit: ``{step: key prefix}`` (``daskfuse-<step>-<token>``)."""
    return {step: f"daskfuse-{step}-{token}" for step in steps}


def plain_params(value):
    """``value`` with every estimator in it replaced by its class and parameters.

    The graph tokens hash this with ``dask.base.tokenize``, which hashes the data of
    arrays, numbers and strings. A printed form does not do: NumPy prints large arrays
    shortened and scikit-learn shortens long estimator reprs, so two estimators that
    differ only there would share their task keys. An estimator (anything with
    ``get_params``) becomes its class name and the plain form of its own parameters,
    recursively (``deep=False`` at every level, so that the estimators in lists, as
    in a ``Pipeline``'s steps, are reached too); dicts, lists and tuples are walked;
    everything else is left to ``tokenize``.
    """
    if hasattr(value, "get_params") and not isinstance(value, type):
        params = value.get_params(deep=False)
        return (
            "estimator",
            type(value).__module__,
            type(value).__qualname__,
            {k: plain_params(v) for k, v in params.items()},
        )
    if isinstance(value, dict):
        # (tokenize hashes a dict's items sorted by key)
        return {k: plain_params(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return (type(value).__name__, [plain_params(v) for v in value])
    return value


def _worker_name():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _as_numpy(part, what, index, objects=False):
    try:
        check_dense(part, what, blocks=True)
    except TypeError as exc:
        raise PartitionError(index, str(exc)) from None
    if objects and what == "X":
        # string columns' pd.NA as NaN, as in a pandas frame (see missing_as_nan)
        return missing_as_nan(part) if isinstance(part, pd.DataFrame) else aligned(np.asarray(part))
    if isinstance(part, pd.DataFrame | pd.Series):
        try:
            return aligned(part.to_numpy(dtype=float if what == "X" else None))
        except (TypeError, ValueError) as exc:
            raise PartitionError(
                index, f"{what} could not be converted to a numeric array ({exc})"
            ) from exc
    return aligned(np.asarray(part))


def _concat(pieces, index, objects=False):
    """``(X, y, sample_weight)`` of a partition's pieces (``y``, the weights: or None);
    ``objects``: X's blocks may be DataFrames with string columns, concatenated as
    DataFrames."""
    out = []
    for k, what in enumerate(("X", "y", "sample_weight")):
        if k >= len(pieces[0]) or pieces[0][k] is None:
            out.append(None)
            continue
        parts = [_as_numpy(piece[k], what, index, objects and k == 0) for piece in pieces]
        if len(parts) == 1:
            out.append(parts[0])
        elif isinstance(parts[0], pd.DataFrame):
            out.append(pd.concat(parts, axis=0))
        else:
            out.append(np.concatenate(parts, axis=0))
    return tuple(out)


def _flatten(pieces):
    """The task arguments for ``pieces``, and how many arguments each piece takes.

    A piece is a Delayed computing to an ``(X, y)`` pair, an ``(X, y)`` tuple of
    Delayed (``y`` may be None), or an ``(X, y, rows)`` triple whose slice ``rows``
    selects the piece from larger blocks; with sample weights, ``(X, y, weights)``
    and ``(X, y, weights, rows)``. Each Delayed becomes an argument of its
    own: dask turns a Delayed argument into a reference, but one inside a tuple by
    optimising its whole graph, once per task (quadratic in the number of blocks).
    """
    sizes, args = [], []
    for piece in pieces:
        piece = piece if isinstance(piece, tuple) else (piece,)
        sizes.append(len(piece))
        args.extend(piece)
    return tuple(sizes), args


def _select(data, rows):
    if data is None:
        return None
    return data.iloc[rows] if hasattr(data, "iloc") else data[rows]


def _regroup(sizes, args):
    """The ``(X, y)`` (or ``(X, y, weights)``) pieces from :func:`_flatten`'s
    arguments, once computed."""
    pieces, start = [], 0
    for size in sizes:
        part = args[start : start + size]
        start += size
        if size == 1:
            pieces.append(tuple(part[0]))
        elif isinstance(part[-1], slice):
            pieces.append(tuple(_select(data, part[-1]) for data in part[:-1]))
        else:
            pieces.append(tuple(part))
    return pieces


def _all_finite(X):
    """Whether every value of the numeric array ``X`` is finite."""
    if X.dtype.kind != "f":
        return True
    # a finite sum means finite values (scikit-learn's fast check): one pass and no
    # boolean array of X's size; only an overflowing or non-finite sum looks closer
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(X)):
            return True
    return bool(np.isfinite(X).all())


def _check_partition(X, y, index, spec, finite=True):
    """Raise a ``PartitionError`` saying what is wrong with the rows ``X, y``.

    ``finite=False`` leaves the values of ``X`` unchecked, for a fit that checks
    them itself (see :func:`_first_fit`).
    """
    if X.ndim != 2:
        raise PartitionError(index, f"X must be 2-dimensional, got {X.ndim} dimensions")
    if y is not None and X.shape[0] != y.shape[0]:
        raise PartitionError(
            index,
            f"X has {X.shape[0]} rows but y has {y.shape[0]}: X and y are not aligned",
        )
    if X.shape[0] == 0:
        raise PartitionError(index, EMPTY)
    if spec.objects:
        # the estimator validates its own columns, as scikit-learn's fit on all rows
        return _check_target(y, index)
    if X.dtype.kind not in "biuf":
        raise PartitionError(index, f"X must be numeric, got dtype {X.dtype}")
    if finite:
        _check_finite(X, index, spec)
    _check_target(y, index)


def _check_finite(X, index, spec):
    if not spec.allow_nan and not _all_finite(X):
        bad = np.flatnonzero(~np.isfinite(X).all(axis=0))
        raise PartitionError(
            index,
            f"X contains NaN or infinity (in column(s) {bad[:10].tolist()}); "
            f"{type(spec.estimator).__name__} needs finite values: impute or drop them, "
            "or pass on_error='skip' to leave the partition out",
        )


def _check_target(y, index):
    if y is None:
        return
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise PartitionError(index, "y contains NaN or infinity")
    if y.dtype.kind == "O" and pd.isna(y).any():
        raise PartitionError(index, "y contains missing values")


def _split_holdout(n, fraction, seed):
    rng = np.random.default_rng(seed)
    n_hold = int(round(n * fraction))
    if n_hold < 1 or n - n_hold < 1:
        return None, None
    order = rng.permutation(n)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def fit_partition(spec, index, previous, sizes, *pieces, secret=None, checked=False):
    """Fit a clone of ``spec.estimator`` on one partition and summarise it.

    Runs on the worker that holds the partition's rows; only the summary and a
    report row leave it. ``previous`` is None in the first pass, else the previous
    pass's ``(fused model, feedback, steps)``: the model is scored on the partition's
    rows (``start_score``) and the estimator is trained from the feedback
    (``fuser.local_fit``); ``steps`` is the mean number of updates (iterations x
    rows) each partition has made so far. ``secret`` is this partition's entry of
    ``spec.fuser.partition_secrets`` (None for most strategies). ``pieces`` are the
    partition's row pieces as flat arguments, ``sizes`` how many each takes (see
    :func:`_flatten`). ``checked``: an earlier pass of this fit found the partition's
    values finite (its rows are persisted and do not change), so they are not scanned
    again.

    A partition without rows (an empty block of a filtered dask DataFrame) is left
    out of the fusion whatever ``on_error`` says: its report row says so
    (``skipped=True``, ``error`` :data:`EMPTY`). With ``spec.on_error == "skip"`` a
    partition that cannot be fitted or summarised
    gives a ``Node`` whose summary is what the strategy wants from a failed
    partition (``summarize_failed``, usually None) and a report row saying why
    (``skipped=True``, ``error``), and the fusion goes on without it.
    """
    start = time.perf_counter()
    spec, previous = _opened(spec), _opened(previous)
    pieces = _regroup(sizes, pieces)
    if _rows_in(pieces) == 0:
        # a block without rows (a filtered dask DataFrame has them) adds nothing to
        # any fusion: it is left out, whatever on_error says
        return _left_out(spec, index, pieces, secret, start, PartitionError(index, EMPTY))
    if spec.on_error != "skip":
        return _fit_partition(spec, index, previous, pieces, secret, start, checked)
    try:
        return _fit_partition(spec, index, previous, pieces, secret, start, checked)
    except Exception as exc:
        error = (
            exc
            if isinstance(exc, PartitionError)
            else PartitionError(index, f"{type(exc).__name__}: {exc}")
        )
        return _left_out(spec, index, pieces, secret, start, error)


#: the report's ``error`` of a partition without rows (left out of every fusion)
EMPTY = "the partition is empty (0 rows)"


class Sealed:
    """A task argument that ``dask.delayed`` passes as it is, without walking it.

    ``delayed(f)(arg)`` looks for dask collections inside every tuple, list, dict and
    dataclass it is given; the fit spec and a later pass's small previous state hold
    none, and walking them for each of a pass's fit tasks was a third of the
    client's time per pass at 64 partitions. The fit task opens it (:func:`_opened`).
    """

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def fit_partitions(spec, indices, previous, layout, checked, *pieces):
    """Several partitions held by one worker, fitted in one task of a later pass: the
    ``Node`` of their :func:`fit_partition` nodes combined (one report row each).

    ``layout`` holds, per partition of ``indices``, the ``sizes`` of its pieces (see
    :func:`_flatten`), ``checked`` whether the pass before found its values finite;
    ``pieces`` are all their arguments, one partition after another.
    """
    spec, previous = _opened(spec), _opened(previous)
    nodes, at = [], 0
    for index, sizes, done in zip(indices, layout, checked):
        n_args = sum(sizes)
        piece_args = pieces[at : at + n_args]
        nodes.append(fit_partition(spec, index, previous, sizes, *piece_args, checked=done))
        at += n_args
    return combine_nodes(spec.fuser, *nodes)


def _opened(arg):
    return arg.value if isinstance(arg, Sealed) else arg


def _rows_in(pieces):
    try:
        return int(sum(len(piece[0]) for piece in pieces))
    except TypeError:
        return None


#: the report's ``error`` of a partition whose sample weights are all zero (left out
#: of every fusion, as an empty one)
ZERO_WEIGHT = "the partition's sample weights are all zero"


def _check_weights(X, weights, index):
    """Raise :class:`PartitionError` for sample weights that are not one finite,
    non-negative number per row of the partition ``index``."""
    if weights.ndim != 1 or len(weights) != len(X):
        raise PartitionError(
            index,
            f"sample_weight must be 1-D with one weight per row ({len(X)}); got shape "
            f"{weights.shape}",
        )
    problem = weight_problem(np.asarray(weights, dtype=float))
    if problem is not None:
        raise PartitionError(index, problem)


def _left_out(spec, index, pieces, secret, start, error):
    """The ``Node`` of a partition left out of the fusion, with its report row."""
    # secure aggregation: a partition left out hands over what removes its masks
    summary = spec.fuser.summarize_failed(index, secret)
    return Node(summary, [_skipped_report(index, pieces, error, start)])


def _skipped_report(index, pieces, error, start):
    return {
        "partition": index,
        "rows": _rows_in(pieces),
        "class_counts": None,
        "train_score": None,
        "train_score_on": None,
        "train_score_rows": None,
        "start_score": None,
        "holdout_score": None,
        "weight": None,
        "n_iter": None,
        "max_iter_reached": None,
        "fit_seconds": None,
        "task_seconds": time.perf_counter() - start,
        "worker": _worker_name(),
        "skipped": True,
        "error": error.detail,
    }


def _fit_partition(spec, index, previous, pieces, secret, start, checked=False):
    """Check, split, fit and summarise one partition: its ``Node`` (one report row)."""
    X, y, weights = _concat(pieces, index, spec.objects)
    tags = spec.fuser.tags(spec.estimator)
    # a first fit on all the rows checks their values itself (scikit-learn's
    # estimators refuse NaN and infinity unless they allow them): one pass over X
    # fewer, and only a failed fit looks for them, to say so (_first_fit); another
    # library's estimator may not check, so its rows are checked here
    own_check = (
        previous is None
        and tags.needs_fit
        and not spec.holdout
        and type(spec.estimator).__module__.startswith("sklearn.")
    )
    _check_partition(X, y, index, spec, finite=not (own_check or checked))
    if weights is not None:
        _check_weights(X, weights, index)
        if not np.any(weights > 0):
            # it adds nothing to a weighted fit: left out, as an empty partition
            return _left_out(spec, index, pieces, secret, start, PartitionError(index, ZERO_WEIGHT))
    seed = None if spec.seeds is None else spec.seeds[index]
    X_fit, y_fit, X_hold, y_hold = _holdout_rows(X, y, index, spec.holdout, seed)
    class_counts = None
    if spec.classifier:
        class_counts = _class_counts(y_fit, index, tags.single_class_partitions)
    fit_start = time.perf_counter()
    if previous is not None:
        estimator = _local_fit(spec, index, seed, previous, X_fit, y_fit)
    elif tags.needs_fit:
        estimator = _first_fit(spec, index, seed, X_fit, y_fit, weights)
    else:
        # a strategy that summarises the rows themselves (sufficient statistics)
        estimator = None
    fit_seconds = time.perf_counter() - fit_start
    holdout_score = None if X_hold is None else _score(estimator, X_hold, y_hold)
    summary = _summarize(
        spec, index, estimator, (X_fit, y_fit, weights), holdout_score, seed, secret, previous
    )
    train_score, train_score_on, train_score_rows = _train_score(estimator, X_fit, y_fit, summary)
    start_score = None if previous is None else _start_score(previous[0], summary, X, y)
    report = {
        "partition": index,
        "rows": int(len(X)),
        "class_counts": class_counts,
        "train_score": train_score,
        "train_score_on": train_score_on,
        "train_score_rows": train_score_rows,
        "start_score": start_score,
        "holdout_score": holdout_score,
        # the weight a leaf summary carries (the Fuser protocol), else None
        "weight": getattr(summary, "report_weight", None),
        "n_iter": _n_iter(estimator),
        # a later pass stops after local_epochs on purpose: not a convergence failure
        "max_iter_reached": max_iter_reached(estimator) if previous is None else None,
        # None where no partition model is fitted (a strategy that summarises rows);
        # with the fitting a strategy does while summarising (Stack's cross fit and
        # its out-of-fold outputs)
        "fit_seconds": None
        if estimator is None
        else fit_seconds + (getattr(summary, "report_fit_seconds", None) or 0.0),
        "task_seconds": time.perf_counter() - start,
        "worker": _worker_name(),
        "skipped": False,
        "error": None,
    }
    report = spec.fuser.public_report(report)
    if report["train_score"] is None:  # none, or withheld (private strategies)
        report.update(train_score_on=None, train_score_rows=None)
    return Node(summary, [report])


def _start_score(model, summary, X, y):
    """The previous pass's fused ``model``'s score on the partition's rows: the
    summary's ``report_start_score`` where the strategy knows it, else from ``predict``."""
    known = getattr(summary, "report_start_score", None)
    if known is not None:
        return known
    # a model fitted on named columns, scored on this partition's array
    with quiet_warnings(UserWarning):
        return _score(model, X, y)


def _holdout_rows(X, y, index, holdout, seed):
    """``(X_fit, y_fit, X_hold, y_hold)``: ``holdout`` of the rows set aside for scoring."""
    if not holdout:
        return X, y, None, None
    fit_idx, hold_idx = _split_holdout(len(X), holdout, seed)
    if fit_idx is None:
        raise PartitionError(
            index,
            f"{len(X)} rows are too few to hold out {holdout:.0%} for scoring",
        )
    if y is None:
        return X[fit_idx], None, X[hold_idx], None
    return X[fit_idx], y[fit_idx], X[hold_idx], y[hold_idx]


def _class_counts(y, index, single_class):
    """``{label: rows}`` of a classifier's partition, after checking its labels.

    Integer and boolean labels are always valid classes. Other labels of one
    dimension are checked on their distinct values, which tell the same (a float
    label that is not a whole number, mixed types): one sort of ``y`` rather than
    three (scikit-learn's target-type check sorts it too, at 250,000 float labels as
    long as a ``GaussianNB`` fit's own statistics).
    """
    try:
        if y.dtype.kind == "O" or y.ndim != 1:
            check_label_types(y)  # numpy cannot sort mixed types
        if y.ndim != 1 and y.dtype.kind not in "biu":
            check_classification_targets(y)
        labels, counts = _label_counts(y)
        if y.ndim == 1 and y.dtype.kind not in "biu":
            check_classification_targets(labels)
    except ValueError as exc:
        raise PartitionError(index, str(exc)) from None
    if len(labels) < 2 and not single_class:
        raise PartitionError(
            index,
            f"the partition holds 1 class ({labels[0]}) and a classifier "
            "needs at least 2; use partition='stratified' or 'random'",
        )
    return {_py(label): int(c) for label, c in zip(labels, counts)}


def _label_counts(y):
    """The distinct labels of ``y``, sorted, and the rows of each (``np.unique``'s
    ``return_counts``).

    Labels that are small non-negative integers (or booleans) are counted by
    ``np.bincount``: one pass and no copy of ``y`` to sort, a tenth of the time at
    250,000 labels.
    """
    if y.ndim == 1 and y.dtype.kind in "biu" and len(y):
        if y.min() >= 0 and y.max() < max(1024, 2 * len(y)):
            counts = np.bincount(y.astype(np.intp, copy=False))
            labels = np.flatnonzero(counts)
            return labels.astype(y.dtype), counts[labels]
    return np.unique(y, return_counts=True)


def _takes_seed(estimator, seed):
    return seed is not None and "random_state" in estimator.get_params()


def _first_fit(spec, index, seed, X, y, weights=None):
    """The first pass: a clone of the template (with the partition's seed), fitted
    (with the rows' sample ``weights`` where given).

    A fit that fails on rows with NaN or infinity (which the task leaves to the
    fit to find) raises the partition check's error naming their columns.
    """
    estimator = clone(spec.estimator)
    if _takes_seed(estimator, seed):
        estimator.set_params(random_state=seed)
    fit_params = {} if weights is None else {"sample_weight": weights}
    try:
        estimator = spec.fuser.first_estimator(estimator, X, y)
        with quiet_warnings(UserWarning):
            estimator.fit(X, y, **fit_params)
    except Exception as exc:
        if not spec.objects:
            _check_finite(X, index, spec)  # the clearer error, where that was the cause
        raise PartitionError(
            index, f"{type(estimator).__name__}.fit failed: {type(exc).__name__}: {exc}"
        ) from exc
    return estimator


def _local_fit(spec, index, seed, previous, X, y):
    """A later pass: the strategy trains the partition's model from the feedback."""
    context = {
        "index": index,
        "seed": seed,
        "classes": spec.classes,
        "local_epochs": spec.local_epochs,
        "proximal": spec.proximal,
        "steps": previous[2],
    }
    template = spec.estimator
    if _takes_seed(template, seed):
        template = clone(template).set_params(random_state=seed)
    try:
        return spec.fuser.local_fit(template, previous[1], X, y, context)
    except PartitionError:
        raise
    except Exception as exc:
        raise PartitionError(
            index,
            f"{type(spec.estimator).__name__} could not train from the fused model: "
            f"{type(exc).__name__}: {exc}",
        ) from exc


def _summarize(spec, index, estimator, rows, holdout_score, seed, secret, previous):
    """The strategy's summary of one partition (see :mod:`daskfuse.fusion.base`);
    ``rows`` is ``(X, y, sample_weight)``."""
    X, y, weights = rows
    info = {
        "index": index,
        "n_rows": len(X),
        "holdout_score": holdout_score,
        "classes": spec.classes,
        "seed": seed,
        "template": spec.estimator,
        "secret": secret,
        # the previous pass's fused model (None in the first pass)
        "init": None if previous is None else previous[0],
        "sample_weight": weights,
    }
    try:
        return spec.fuser.summarize(estimator, X, y, info)
    except PartitionError:
        raise
    except Exception as exc:
        raise PartitionError(
            index, f"{spec.fuser!r} could not summarise it: {type(exc).__name__}: {exc}"
        ) from exc


def _score(estimator, X, y):
    """The estimator's own score (accuracy, R², -inertia ...) or None.

    Where the estimator keeps scikit-learn's own ``score`` (accuracy for a
    classifier, R² for a regressor, one target), the score is worked out from one
    ``predict`` with NumPy: the same figure without the metric's input validation,
    which on small partitions costs more than the fit.
    """
    if estimator is None or not hasattr(estimator, "score"):
        return None
    try:
        fast = _fast_score(estimator, X, y)
        if fast is not None:
            return fast
        return float(estimator.score(X) if y is None else estimator.score(X, y))
    except (TypeError, ValueError, AttributeError):
        return None


def _fast_score(estimator, X, y):
    own = type(estimator).score
    if y is None or np.ndim(y) != 1:
        return None
    if own is ClassifierMixin.score:
        return float(np.mean(estimator.predict(X) == y))
    if own is RegressorMixin.score and y.dtype.kind in "biuf":
        pred = np.asarray(estimator.predict(X), dtype=float)
        if pred.shape != y.shape:
            return None
        residual = np.sum((y - pred) ** 2)
        return float(r2_from_sums(residual, np.sum((y - np.mean(y)) ** 2)))
    return None


def r2_from_sums(ss_res, ss_tot):
    """R² (per output) from the residual and total sums of squares.

    As scikit-learn's ``r2_score`` with ``force_finite``: a constant target (total
    0) scores 1 when it is fitted exactly, else 0.
    """
    ss_res, ss_tot = np.asarray(ss_res, dtype=float), np.asarray(ss_tot, dtype=float)
    return np.where(
        ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.where(ss_res > 0, 0.0, 1.0)
    )


def _train_score(estimator, X, y, summary=None):
    """``(score, on, rows)``: the estimator's score on the rows it was fitted on.

    ``on`` says how it was computed: ``"fit"`` where the fit already knows it
    (:func:`~daskfuse._adapters.fitted_train_score`, k-means' inertia),
    ``"statistics"`` where no partition model is fitted but the strategy's
    ``summary`` carries the score of the partition's own solution on all its rows
    (``report_train_score``: exact least squares' R² from the cross-products),
    ``"all"`` from predictions on all ``rows`` (at most ``TRAIN_SCORE_ROWS``),
    ``"sample"`` from predictions on every ``TRAIN_SCORE_STEP``-th row (or sparser,
    at most ``TRAIN_SCORE_MAX`` ``rows``) of a larger partition; for a kernel model,
    whose predictions cost about as much as its fit, ``KERNEL_SCORE_ROWS`` and
    ``KERNEL_SCORE_STEP`` instead. ``(None, None, None)`` where there
    is no score.
    """
    if estimator is None:
        known = getattr(summary, "report_train_score", None)
        return (None, None, None) if known is None else (known, "statistics", int(len(X)))
    known = fitted_train_score(estimator, X, y)
    if known is not None:
        return known, "fit", int(len(X))
    on, all_rows, step = "all", TRAIN_SCORE_ROWS, TRAIN_SCORE_STEP
    if predicts_at_fit_cost(estimator):
        all_rows, step = KERNEL_SCORE_ROWS, KERNEL_SCORE_STEP
    if len(X) > all_rows:
        on, step = "sample", max(step, -(-len(X) // TRAIN_SCORE_MAX))
        X, y = X[::step], None if y is None else y[::step]
    score = _score(estimator, X, y)
    return (None, None, None) if score is None else (score, on, int(len(X)))


def _n_iter(estimator):
    n_iter = getattr(estimator, "n_iter_", None)
    return None if n_iter is None else int(np.max(n_iter))


def convergence_note(report, estimator):
    """The one warning text for the partitions whose solver stopped at ``max_iter``,
    or None (``report``: the partition report, ``estimator``: the template)."""
    if "max_iter_reached" not in report:
        return None
    stopped = report.loc[report["max_iter_reached"].eq(True), "partition"].tolist()
    if not stopped:
        return None
    max_iter = estimator.get_params().get("max_iter")
    return (
        f"{len(stopped)} of {len(report)} partitions did not converge: "
        f"{type(estimator).__name__} stopped at max_iter={max_iter} (partitions "
        f"{stopped[:10]}{' ...' if len(stopped) > 10 else ''}; partition_report_ column "
        "'max_iter_reached'). Raise max_iter, scale the features or loosen tol"
    )


def _py(value):
    return value.item() if isinstance(value, np.generic) else value


def combine_nodes(fuser, *nodes):
    """One inner node of the reduction tree: combine any number of children.

    Children without a summary (skipped partitions) are left out; when every child
    lacks one, so does the node.
    """
    summaries = [n.summary for n in nodes if n.summary is not None]
    return Node(
        fuser.combine(summaries) if summaries else None,
        [r for n in nodes for r in n.reports],
    )


def finalize_node(fuser, estimator, meta, node, min_partitions=1, with_feedback=False):
    """The root: turn the combined summary into a plain fitted estimator.

    With ``with_feedback``, also what the next pass sends back to the partitions.

    Raises
    ------
    FusionError
        Fewer than ``min_partitions`` partitions were fitted (the others were
        skipped); the message names every skipped partition and its error.
    """
    skipped = [r for r in node.reports if r.get("skipped")]
    fitted = len(node.reports) - len(skipped)
    if node.summary is None or fitted < min_partitions:
        reasons = "; ".join(f"partition {r['partition']}: {r['error']}" for r in skipped)
        raise FusionError(
            f"only {fitted} of {len(node.reports)} partitions could be fitted, and "
            f"min_partitions={min_partitions} are needed to fuse; {len(skipped)} "
            f"skipped ({reasons})"
        )
    fused = fuser.finalize(node.summary, estimator, meta)
    if with_feedback:
        return fused, node.reports, fuser.feedback(fused, node.summary)
    return fused, node.reports


def with_root_summary(finalized, node):
    """``(model, reports, summary)``: the root's output and its summary (``partial_fit``)."""
    return (*finalized, node.summary)


def score_partition(model, sizes, *pieces):
    """``(score, rows)`` of ``model`` on one partition (a ``daskfuse-score`` task)."""
    X, y, _ = _concat(_regroup(sizes, pieces), None)
    return _score(model, X, y), len(X)


def tree_reduce(leaves, fuser, split_every, prefix):
    """Reduce ``leaves`` to one delayed ``Node`` with fan-in ``split_every``."""
    level = 0
    nodes = list(leaves)
    combine = delayed(combine_nodes, pure=True)
    while len(nodes) > 1:
        level += 1
        nodes = [
            combine(fuser, *nodes[i : i + split_every], dask_key_name=(prefix, level, j))
            for j, i in enumerate(range(0, len(nodes), split_every))
        ]
    return nodes[0]


#: the largest pickled ``previous`` that travels inside every fit task of a pass; a
#: shared ``daskfuse-global`` node costs each pass a task and a transfer to every
#: worker before its fits can start
INLINE_BYTES = 1 << 16


def _small(value):
    """Whether ``value`` pickles to at most :data:`INLINE_BYTES`."""
    try:
        return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) <= INLINE_BYTES
    except Exception:  # what pickle cannot take, the scheduler's cloudpickle may
        return False


def build_fit_graph(
    partitions,
    spec,
    meta,
    split_every,
    token,
    previous=None,
    with_feedback=False,
    *,
    kept=None,
    start=0,
    with_summary=False,
    groups=None,
    checked=frozenset(),
):
    """The whole fit as one ``Delayed``: fit leaves, combine tree, finalize root.

    Parameters
    ----------
    partitions : list of list of pieces
        For each partition, the pieces that make it up (see :func:`_flatten`).
    spec : FitSpec
    meta : dict
        Fit-wide facts for ``finalize`` (``n_features_in_``, ``feature_names_in_``).
    split_every : int
        Fan-in of the reduction tree.
    token : str
        Deterministic token naming every key of this fit.
    previous : tuple or None
        For a later pass, the previous pass's ``(fused model, feedback, steps)``: an
        argument of every fit task where it pickles to at most :data:`INLINE_BYTES`
        (newton's parameter-sized state), else one ``daskfuse-global`` node that every
        fit task depends on (a large model travels once to each worker).
    with_feedback : bool
        Whether the root also returns the feedback for a next pass.
    kept : object or None
        A continued fit's root summary (``partial_fit``): one ``daskfuse-kept`` node,
        the first leaf of the combine tree, without report rows.
    start : int
        Number of the first partition (a continued fit numbers its new partitions
        after the old ones; ``spec.seeds`` is indexed from 0 all the same).
    with_summary : bool
        Whether the graph also computes to the root summary (``(model, reports,
        summary)``, by :func:`with_root_summary`: the fit's keys and its
        ``daskfuse-finalize`` task stay as they are).
    groups : list of list of int or None
        For a later pass, the partitions that one fit task fits together (those one
        worker thread holds: see :func:`worker_groups`): a ``daskfuse-fit`` task per
        group, named after its first partition, rather than one per partition.
    checked : set of int
        With ``groups``: the partitions whose values the pass before found finite
        (not skipped): not scanned again.
    """
    # per-partition secrets (secure aggregation's mask seeds) are drawn afresh for
    # every graph and passed to their own partition's task only
    secrets = spec.fuser.partition_secrets(len(partitions))
    if secrets is not None:
        # the tasks' values then differ from graph to graph, so their keys must too:
        # a cluster that still holds a key from another graph would otherwise mix
        # summaries masked with different seeds
        token = tokenize(token, os.urandom(16))
    names = fit_prefix(token)
    if previous is not None and not _small(previous):
        previous = delayed(previous, name=names["global"], traverse=False)
    elif previous is not None:
        previous = Sealed(previous)
    leaves = []
    if kept is not None:
        leaves.append(delayed(Node(kept, []), name=names["kept"], traverse=False))
    if groups is not None and secrets is None:
        leaves += _group_leaves(partitions, spec, previous, groups, checked, names["fit"])
        partitions = []
    fit = delayed(fit_partition, pure=True)
    for i, pieces in enumerate(partitions):
        sizes, args = _flatten(pieces)
        own = Sealed(_seeded_for(spec, [i], start))
        leaves.append(
            fit(
                own,
                start + i,
                previous,
                sizes,
                *args,
                **({} if secrets is None else {"secret": secrets[i]}),
                dask_key_name=(names["fit"], start + i),
            )
        )
    root = tree_reduce(leaves, spec.fuser, split_every, names["combine"])
    # A tuple key: dask's key_split takes any 8-letter word starting with a-f (as
    # "finalize") for a hex token and drops it, but the scheduler names a tuple key's
    # task group after its first element, so the group stays "daskfuse-finalize-...".
    final = delayed(finalize_node, pure=True)(
        spec.fuser,
        spec.estimator,
        meta,
        root,
        spec.min_partitions,
        with_feedback,
        dask_key_name=(names["finalize"], 0),
    )
    return delayed(with_root_summary, pure=True)(final, root) if with_summary else final


def _seeded_for(spec, indices, start=0):
    """The fit spec that the task of the partitions ``indices`` takes: it travels inside
    the task (as a shared dependency it would make the scheduler weigh a second worker
    for every fit, against locality), with only their own seeds (numbered from
    ``start``, a continued fit's first new partition) rather than all n of them."""
    if spec.seeds is None:
        return spec
    return replace(spec, seeds={start + i: spec.seeds[i] for i in indices})


def _group_leaves(partitions, spec, previous, groups, checked, name):
    """One :func:`fit_partitions` task per group of partitions (a later pass)."""
    fit = delayed(fit_partitions, pure=True)
    leaves = []
    for group in groups:
        layout, args = [], []
        for i in group:
            sizes, own_args = _flatten(partitions[i])
            layout.append(sizes)
            args += own_args
        done = tuple(i in checked for i in group)
        leaves.append(
            fit(
                Sealed(_seeded_for(spec, group)),
                tuple(group),
                previous,
                layout,
                done,
                *args,
                dask_key_name=(name, group[0]),
            )
        )
    return leaves


def worker_groups(reports, nthreads):
    """The partitions of a pass grouped by where their fit task ran, for the next pass
    (:func:`build_fit_graph`'s ``groups``), or None to keep a task per partition.

    A worker's partitions (by the report's ``worker``) are dealt into as many groups as
    it has threads (``nthreads``: ``{worker address: threads}``), the largest first
    into the group with the fewest rows so far, so that one task per thread fits them
    where their rows are: a pass of many small partitions then costs a few tasks'
    scheduling, not one per partition. None where a worker is not in ``nthreads`` (not
    a ``distributed`` cluster) or where grouping saves no task.
    """
    by_worker, rows = {}, {}
    for report in sorted(reports, key=lambda r: r["partition"]):
        by_worker.setdefault(report["worker"], []).append(int(report["partition"]))
        rows[int(report["partition"])] = report.get("rows") or 0
    if not nthreads or any(w not in nthreads for w in by_worker):
        return None
    groups = [
        group
        for worker, held in by_worker.items()
        for group in _deal(held, rows, min(nthreads[worker], len(held)))
    ]
    return groups if len(groups) < len(reports) else None


def _deal(held, rows, k):
    """``held`` in ``k`` groups of about equal rows (each in partition order)."""
    groups, loads = [[] for _ in range(k)], [0] * k
    for i in sorted(held, key=lambda i: -rows[i]):
        lightest = loads.index(min(loads))
        groups[lightest].append(i)
        loads[lightest] += rows[i]
    return [sorted(group) for group in groups]


def build_score_graph(partitions, model, token):
    """``score_partition`` of ``model`` on every partition, as one ``Delayed`` list."""
    names = fit_prefix(token)
    model = delayed(model, name=names["global"], traverse=False)
    score = delayed(score_partition, pure=True)
    return delayed(list)(
        [
            score(model, *_pieces_arguments(pieces), dask_key_name=(names["score"], i))
            for i, pieces in enumerate(partitions)
        ]
    )


def _pieces_arguments(pieces):
    sizes, args = _flatten(pieces)
    return (sizes, *args)


def compute_with_progress(graph, progress, optimize=True):
    """Compute ``graph`` on the active scheduler, optionally with a progress bar.

    ``optimize=False`` skips dask's graph optimisation: for a later pass, whose
    inputs are persisted partitions and whose tasks are all daskfuse's own, it has
    nothing to cull or fuse and cost a few tens of milliseconds per pass.
    """
    client = active_client()
    if progress and client is not None:
        from distributed import progress as distributed_progress

        future = client.compute(graph, optimize_graph=optimize)
        # a text bar everywhere: in Jupyter, distributed's default is an ipywidgets
        # widget, which needs ipywidgets and shows only when displayed. complete=False:
        # the bar counts the tasks still to run (splits, fits, combine tree,
        # finalize), not the input blocks already in memory, so it starts at 0%
        distributed_progress(future, notebook=False, complete=False)
        return future.result()
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return dask.compute(graph, optimize_graph=optimize)[0]
    return dask.compute(graph, optimize_graph=optimize)[0]


def estimator_allows_nan(estimator):
    """Whether ``estimator`` says (through its tags) that it accepts NaN.

    A ``Pipeline`` accepts NaN where its first step does (an imputer): scikit-learn's
    tags say False for every Pipeline.
    """
    steps = getattr(estimator, "steps", None)
    if isinstance(estimator, Pipeline) and steps:
        first = next((s for _, s in steps if s is not None and s != "passthrough"), None)
        return first is not None and estimator_allows_nan(first)
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):
        return False
