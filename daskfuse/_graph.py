"""Task decomposition: one fit task per partition and a tree reduction of summaries.

Every task function here is a module-level pure function, so graphs pickle to any
scheduler (sync, threads, processes, distributed) and the dashboard groups tasks by
the step word of their key: ``daskfuse-fit``, ``daskfuse-combine``,
``daskfuse-finalize`` (and ``daskfuse-split`` / ``daskfuse-piece`` where rows are
redistributed).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import pandas as pd
from dask import delayed
from dask.base import tokenize
from sklearn.base import clone, is_classifier
from sklearn.utils import get_tags
from sklearn.utils.multiclass import check_classification_targets

from ._inputs import check_dense, check_label_types
from ._quiet import quiet_warnings
from .exceptions import FusionError, PartitionError

__all__ = [
    "FitSpec",
    "Node",
    "build_fit_graph",
    "build_score_graph",
    "fit_partition",
    "fit_prefix",
]


@dataclass(frozen=True)
class FitSpec:
    """What every fit task needs besides its rows (small; travels with each task)."""

    estimator: Any
    fuser: Any
    classifier: bool
    seeds: tuple | None = None
    holdout: float = 0.0
    allow_nan: bool = False
    classes: Any = None
    local_epochs: int = 1
    proximal: float = 0.0
    #: "raise": a failing partition fails the fit; "skip": it is left out of the fusion
    on_error: str = "raise"
    #: fewest partitions that must survive for ``finalize`` to fuse (with "skip")
    min_partitions: int = 1


@dataclass
class Node:
    """A fusion summary with the report rows of the partitions it covers."""

    summary: Any
    reports: list = field(default_factory=list)


def fit_prefix(token):
    """Key names of one fit: ``{step: key prefix}``."""
    return {
        step: f"daskfuse-{step}-{token}"
        for step in (
            "data", "split", "piece", "fit", "combine", "finalize", "global", "score"
        )
    }


def _worker_name():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _as_numpy(part, what, index):
    try:
        check_dense(part, what, blocks=True)
    except TypeError as exc:
        raise PartitionError(index, str(exc)) from None
    if isinstance(part, pd.DataFrame | pd.Series):
        try:
            return part.to_numpy(dtype=float if what == "X" else None)
        except (TypeError, ValueError) as exc:
            raise PartitionError(
                index, f"{what} could not be converted to a numeric array ({exc})"
            ) from exc
    return np.asarray(part)


def _concat(pieces, index):
    xs = [_as_numpy(x, "X", index) for x, _ in pieces]
    X = xs[0] if len(xs) == 1 else np.concatenate(xs, axis=0)
    if pieces[0][1] is None:
        return X, None
    ys = [_as_numpy(y, "y", index) for _, y in pieces]
    y = ys[0] if len(ys) == 1 else np.concatenate(ys, axis=0)
    return X, y


def _check_partition(X, y, index, spec):
    if X.ndim != 2:
        raise PartitionError(index, f"X must be 2-dimensional, got {X.ndim} dimensions")
    if y is not None and X.shape[0] != y.shape[0]:
        raise PartitionError(
            index,
            f"X has {X.shape[0]} rows but y has {y.shape[0]}: X and y are not aligned",
        )
    if X.shape[0] == 0:
        raise PartitionError(index, "the partition is empty (0 rows)")
    if X.dtype.kind not in "biuf":
        raise PartitionError(index, f"X must be numeric, got dtype {X.dtype}")
    if not spec.allow_nan and not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=0))
        raise PartitionError(
            index,
            f"X contains NaN or infinity (in column(s) {bad[:10].tolist()}); "
            f"{type(spec.estimator).__name__} needs finite values: impute or drop them, "
            "or pass on_error='skip' to leave the partition out",
        )
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


def _pieces(args):
    """``(X, y)`` pieces from the fit task's arguments: pairs, or an X then its y."""
    args = iter(args)
    return [arg if isinstance(arg, tuple) else (arg, next(args)) for arg in args]


def _task_args(pieces):
    # an (X, y) piece of two collections goes as two arguments, never as a tuple:
    # dask optimises the whole input graph once per call for collections nested in
    # a tuple, which made building the graph quadratic in the number of blocks
    return [a for p in pieces for a in (p if isinstance(p, tuple) else (p,))]


def fit_partition(spec, index, previous, *args, secret=None):
    """Fit a clone of ``spec.estimator`` on one partition and summarise it.

    ``args`` are the partition's pieces: each an ``(X, y)`` pair or an ``X``
    followed by its ``y`` (None without targets).

    Runs on the worker that holds the partition's rows; only the summary and a
    report row leave it. ``previous`` is None in the first pass, else the previous
    pass's ``(fused model, feedback, steps)``: the model is scored on the partition's
    rows (``start_score``) and the estimator is trained from the feedback
    (``fuser.local_fit``); ``steps`` is the mean number of updates (iterations x
    rows) each partition has made so far. ``secret`` is this partition's entry of
    ``spec.fuser.partition_secrets`` (None for most strategies).

    With ``spec.on_error == "skip"`` a partition that cannot be fitted or summarised
    gives a ``Node`` whose summary is what the strategy wants from a failed
    partition (``summarize_failed``, usually None) and a report row saying why
    (``skipped=True``, ``error``), and the fusion goes on without it.
    """
    start = time.perf_counter()
    pieces = _pieces(args)
    if spec.on_error != "skip":
        return _fit_partition(spec, index, previous, pieces, secret, start)
    try:
        return _fit_partition(spec, index, previous, pieces, secret, start)
    except Exception as exc:
        error = exc if isinstance(exc, PartitionError) else PartitionError(
            index, f"{type(exc).__name__}: {exc}"
        )
        # secure aggregation: a failed partition hands over what removes its masks
        summary = spec.fuser.summarize_failed(index, secret)
        return Node(summary, [_skipped_report(index, pieces, error, start)])


def _skipped_report(index, pieces, error, start):
    try:
        rows = int(sum(len(x) for x, _ in pieces))
    except TypeError:
        rows = None
    return {
        "partition": index,
        "rows": rows,
        "class_counts": None,
        "train_score": None,
        "start_score": None,
        "holdout_score": None,
        "weight": None,
        "n_iter": None,
        "fit_seconds": None,
        "task_seconds": time.perf_counter() - start,
        "worker": _worker_name(),
        "skipped": True,
        "error": error.detail,
    }


def _fit_partition(spec, index, previous, pieces, secret, start):
    X, y = _concat(pieces, index)
    _check_partition(X, y, index, spec)
    start_score = None
    if previous is not None:
        # a model fitted on named columns, scored on this partition's array
        with quiet_warnings(UserWarning):
            start_score = _score(previous[0], X, y)
    estimator = clone(spec.estimator)
    seed = None if spec.seeds is None else spec.seeds[index]
    if seed is not None and "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)

    X_fit, y_fit, X_hold, y_hold = X, y, None, None
    if spec.holdout:
        fit_idx, hold_idx = _split_holdout(len(X), spec.holdout, seed)
        if fit_idx is None:
            raise PartitionError(
                index,
                f"{len(X)} rows are too few to hold out {spec.holdout:.0%} for scoring",
            )
        X_fit, X_hold = X[fit_idx], X[hold_idx]
        if y is not None:
            y_fit, y_hold = y[fit_idx], y[hold_idx]

    if spec.classifier:
        try:
            check_label_types(y_fit)
            check_classification_targets(y_fit)
        except ValueError as exc:
            raise PartitionError(index, str(exc)) from None
        labels, counts = np.unique(y_fit, return_counts=True)
        if len(labels) < 2 and not getattr(spec.fuser, "single_class_partitions", False):
            raise PartitionError(
                index,
                f"the partition holds 1 class ({labels[0]}) and a classifier "
                "needs at least 2; use partition='stratified' or 'random'",
            )
    fit_start = time.perf_counter()
    if previous is not None:
        context = {
            "index": index,
            "seed": seed,
            "classes": spec.classes,
            "local_epochs": spec.local_epochs,
            "proximal": spec.proximal,
            "steps": previous[2],
        }
        template = spec.estimator
        if seed is not None and "random_state" in template.get_params():
            template = clone(template).set_params(random_state=seed)
        try:
            estimator = spec.fuser.local_fit(template, previous[1], X_fit, y_fit, context)
        except PartitionError:
            raise
        except Exception as exc:
            raise PartitionError(
                index,
                f"{type(spec.estimator).__name__} could not train from the fused model: "
                f"{type(exc).__name__}: {exc}",
            ) from exc
    elif spec.fuser.needs_fit_for(spec.estimator):
        try:
            with quiet_warnings(UserWarning):
                estimator.fit(X_fit, y_fit)
        except Exception as exc:
            raise PartitionError(
                index, f"{type(estimator).__name__}.fit failed: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        # the strategy summarises the rows themselves (sufficient statistics)
        estimator = None
    fit_seconds = time.perf_counter() - fit_start
    holdout_score = None if X_hold is None else _score(estimator, X_hold, y_hold)
    info = {
        "index": index,
        "n_rows": len(X_fit),
        "holdout_score": holdout_score,
        "classes": spec.classes,
        "seed": seed,
        "template": spec.estimator,
        "secret": secret,
        # the previous pass's fused model (None in the first pass)
        "init": None if previous is None else previous[0],
    }
    try:
        summary = spec.fuser.summarize(estimator, X_fit, y_fit, info)
    except PartitionError:
        raise
    except Exception as exc:
        raise PartitionError(
            index, f"{spec.fuser!r} could not summarise it: {type(exc).__name__}: {exc}"
        ) from exc
    report = {
        "partition": index,
        "rows": int(len(X)),
        "class_counts": (
            {_py(label): int(c) for label, c in zip(labels, counts)}
            if spec.classifier
            else None
        ),
        "train_score": _score(estimator, X_fit, y_fit),
        "start_score": start_score,
        "holdout_score": holdout_score,
        "weight": info.get("weight"),
        "n_iter": _n_iter(estimator),
        "fit_seconds": fit_seconds,
        "task_seconds": time.perf_counter() - start,
        "worker": _worker_name(),
        "skipped": False,
        "error": None,
    }
    return Node(summary, [spec.fuser.public_report(report)])


def _score(estimator, X, y):
    """The estimator's own score (accuracy, R², -inertia ...) or None."""
    if estimator is None or not hasattr(estimator, "score"):
        return None
    try:
        return float(estimator.score(X) if y is None else estimator.score(X, y))
    except (TypeError, ValueError, AttributeError):
        return None


def _n_iter(estimator):
    n_iter = getattr(estimator, "n_iter_", None)
    return None if n_iter is None else int(np.max(n_iter))


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


def score_partition(model, *args):
    """``(score, rows)`` of ``model`` on one partition (a ``daskfuse-score`` task)."""
    X, y = _concat(_pieces(args), None)
    return _score(model, X, y), len(X)


def tree_reduce(leaves, fuser, split_every, prefix):
    """Reduce ``leaves`` to one delayed ``Node`` with fan-in ``split_every``."""
    level = 0
    nodes = list(leaves)
    while len(nodes) > 1:
        level += 1
        nodes = [
            delayed(combine_nodes, pure=True)(
                fuser, *nodes[i : i + split_every], dask_key_name=(prefix, level, j)
            )
            for j, i in enumerate(range(0, len(nodes), split_every))
        ]
    return nodes[0]


def build_fit_graph(
    partitions, spec, meta, split_every, token, previous=None, with_feedback=False
):
    """The whole fit as one ``Delayed``: fit leaves, combine tree, finalize root.

    Parameters
    ----------
    partitions : list of list of (Delayed, Delayed)
        For each partition, the ``(X, y)`` pieces that make it up.
    spec : FitSpec
    meta : dict
        Fit-wide facts for ``finalize`` (``n_features_in_``, ``feature_names_in_``).
    split_every : int
        Fan-in of the reduction tree.
    token : str
        Deterministic token naming every key of this fit.
    previous : tuple or None
        For a later pass, the previous pass's ``(fused model, feedback, steps)``: one
        ``daskfuse-global`` node that every fit task depends on.
    with_feedback : bool
        Whether the root also returns the feedback for a next pass.
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
    if previous is not None:
        previous = delayed(previous, name=names["global"], traverse=False)
    leaves = [
        delayed(fit_partition, pure=True)(
            spec,
            i,
            previous,
            *_task_args(pieces),
            **({} if secrets is None else {"secret": secrets[i]}),
            dask_key_name=(names["fit"], i),
        )
        for i, pieces in enumerate(partitions)
    ]
    root = tree_reduce(leaves, spec.fuser, split_every, names["combine"])
    # A tuple key: dask's key_split takes any 8-letter word starting with a-f (as
    # "finalize") for a hex token and drops it, but the scheduler names a tuple key's
    # task group after its first element, so the group stays "daskfuse-finalize-...".
    return delayed(finalize_node, pure=True)(
        spec.fuser,
        spec.estimator,
        meta,
        root,
        spec.min_partitions,
        with_feedback,
        dask_key_name=(names["finalize"], 0),
    )


def build_score_graph(partitions, model, token):
    """``score_partition`` of ``model`` on every partition, as one ``Delayed`` list."""
    names = fit_prefix(token)
    model = delayed(model, name=names["global"], traverse=False)
    return delayed(list)(
        [
            delayed(score_partition, pure=True)(
                model, *_task_args(pieces), dask_key_name=(names["score"], i)
            )
            for i, pieces in enumerate(partitions)
        ]
    )


def compute_with_progress(graph, progress):
    """Compute ``graph`` on the active scheduler, optionally with a progress bar."""
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    if progress and client is not None and hasattr(client, "compute"):
        from distributed import progress as distributed_progress

        future = client.compute(graph)
        # a text bar everywhere: in Jupyter, distributed's default is an ipywidgets
        # widget, which needs ipywidgets and shows only when displayed
        distributed_progress(future, notebook=False)
        return future.result()
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return dask.compute(graph)[0]
    return dask.compute(graph)[0]


def estimator_allows_nan(estimator):
    """Whether ``estimator`` says (through its tags) that it accepts NaN."""
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):
        return False


def is_classifier_estimator(estimator):
    return bool(is_classifier(estimator))
