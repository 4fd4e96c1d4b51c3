"""The column trainer: checks, planning, the task graphs and the rounds (``train``, ``graph``)."""

from __future__ import annotations

import operator
import warnings

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from .._graph import (
    compute_with_progress,
    estimator_allows_nan,
    plain_params,
)
from .._inputs import (
    dask_classes,
    is_dask_input,
    seed_sequence,
)
from .._trainer import (
    FitResult,
    check_split_every,
    report_frame,
    validation_probe,
)
from ..partition import Columns
from . import _gradient
from ._backfit import (
    backfit_step,
    finalize_backfit,
    prepare_block,
    round_summary,
    split_rounds,
)
from ._blocks import VerticalSpec, finalize_stack, fit_stack_block
from ._fusions import ColumnStack, GlobalGradient, resolve_vertical_fusion
from ._planning import column_groups, plan_columns

#: parameters that only mean something for row partitions, with their defaults and why
#: a column fit refuses any other value
_ROW_ONLY = (
    (
        "rounds",
        1,
        "it counts fusion rounds over row partitions; the column fusions have their own: "
        "fusion=GlobalGradient(max_passes=...) or Backfit(max_rounds=...) (stacking has none)",
    ),
    (
        "tol",
        1e-4,
        "it is the tolerance of fusion rounds over row partitions; the column fusions "
        "have their own: pass fusion=GlobalGradient(tol=...) or Backfit(tol=...) (stacking "
        "has no rounds)",
    ),
    (
        "local_epochs",
        1,
        "it is what a row partition trains in each round after the "
        "first; every backfitting step solves its block exactly and stacking fits once",
    ),
    (
        "proximal",
        0.0,
        "it pulls row partitions toward the fused model between rounds; "
        "column blocks are parts of one model, which backfitting solves exactly",
    ),
    (
        "on_error",
        "raise",
        "a column block cannot be left out of the fusion without "
        "dropping its features from the model",
    ),
    (
        "min_partitions",
        1,
        "it counts the row partitions that on_error='skip' may leave "
        "out; column blocks are never skipped",
    ),
    (
        "split_every",
        None,
        "it is the fan-in of the tree that fuses row partitions; "
        "column blocks are fused by one task (stacking) or in sequence (backfitting)",
    ),
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
    # (check_params has validated the others): a bad value gets the rows' message
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
                f"X must be a 2-dimensional dask array with known columns; got shape {X.shape}"
            )
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must be numeric; got a dask array of dtype {X.dtype}")
        n_features, names = int(X.shape[1]), None
    elif isinstance(X, dd.DataFrame):
        n_features = len(X.columns)
        names = (
            np.asarray(list(X.columns), dtype=object)
            if all(isinstance(c, str) for c in X.columns)
            else None
        )
    else:
        raise TypeError(f"X must be a dask array or dask DataFrame; got {type(X).__name__}")
    if not is_dask_input(y):
        y = np.asarray(y)
    if params.classifier:
        y = _label_column(y)
    return X, y, n_features, names


def _label_column(y):
    """A classifier's dask (or numpy) ``y`` of one column as 1-D labels.

    As scikit-learn does with an in-memory column vector (the in-memory path goes
    through it), with its ``DataConversionWarning``.
    """
    if y.ndim != 2 or y.shape[1] != 1:
        return y
    warnings.warn(
        "A column-vector y was passed when a 1d array was expected. Please change the "
        "shape of y to (n_samples, ), for example using ravel().",
        DataConversionWarning,
        stacklevel=7,  # the caller of FusedClassifier.fit (fit -> _fit -> train -> ...)
    )
    return y.iloc[:, 0] if isinstance(y, dd.DataFrame) else y[:, 0]


def _memory_input(params, X, y, allow_nan):
    """An in-memory ``X``, ``y`` validated by scikit-learn, with ``X``'s columns."""
    if is_dask_input(y):
        raise TypeError(
            "X is in memory but y is a dask collection; pass both in memory or both as "
            "dask collections"
        )
    probe = validation_probe(params.owner)
    Xv, yv = validate_data(
        probe,
        X,
        y,
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
        held = f"1 class ({classes[0]})" if len(classes) else "no class (0 rows)"
        raise ValueError(f"y holds {held}; a classifier needs samples of at least 2 classes")
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
        "daskfuse.vertical",
        params.owner,
        type(params.estimator).__qualname__,
        plain_params(params.estimator),
        fusion,
        tuple(tuple(g.tolist()) for g in groups),
        seeds,
        X,
        y,
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
    if isinstance(spec.fusion, GlobalGradient):
        return _gradient.graph(spec, plan, meta)
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
        new = split_rounds(log, n_blocks)[len(history) :]
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
        The meta-estimator's parameters (``partition`` a :class:`Columns`), past
        :func:`~daskfuse._trainer.check_params`.
    X, y : the training data

    Returns
    -------
    daskfuse._trainer.FitResult
    """
    spec, plan, meta = _prepare(params, X, y)
    history = None
    if isinstance(spec.fusion, ColumnStack):
        fused, reports = compute_with_progress(_stack_graph(spec, plan, meta), params.verbose)
    elif isinstance(spec.fusion, GlobalGradient):
        fused, reports, history = _gradient.run(spec, plan, meta, params.verbose)
        history = pd.DataFrame(history)
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
