"""The row trainer: one model per row partition, fused by a tree of ``combine`` tasks.

``train(params, X, y)`` runs the fit and returns a :class:`~daskfuse._trainer.FitResult`;
``graph(params, X, y)`` builds its first pass without running it. Both take a
:class:`~daskfuse._trainer.TrainSpec` that has passed
:func:`~daskfuse._trainer.check_params` and never touch the meta-estimator. The steps:
:func:`prepare` (validate the parameters and the data, plan the partitions, build the
graph) and :func:`run_passes` (compute one pass, or rounds of fit-and-fuse).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd
from dask.base import tokenize
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import has_fit_parameter, validate_data

from ._adapters import accepts_objects, updates_per_partition
from ._graph import (
    FitSpec,
    build_fit_graph,
    build_score_graph,
    compute_with_progress,
    estimator_allows_nan,
    fit_prefix,
    plain_params,
    worker_groups,
)
from ._inputs import (
    check_dense,
    check_frame_columns,
    check_label_types,
    check_sample_weight,
    dask_blocks,
    dask_classes,
    is_dask_input,
    keeps_dtypes,
    seed_sequence,
)
from ._trainer import (
    FitResult,
    RootSummary,
    check_split_every,
    report_frame,
    validation_probe,
)
from ._validation import is_int
from .exceptions import FusionError, PartitionError
from .fusion import Newton, prefers_newton, resolve_fusion
from .partition import (
    STRATEGIES,
    Rows,
    assign_in_memory,
    check_row_count,
    cluster_threads,
    count_rows,
    plan_blocks,
    plan_groups,
    worker_threads,
)

__all__ = ["Prepared", "graph", "plan_partitions", "prepare", "run_passes", "train"]


@dataclass
class Prepared:
    """A row fit, validated and planned: its first pass's graph and what later passes reuse."""

    graph: Any
    fuser: Any
    meta: dict
    plan: Any
    split_every: int
    keys: dict
    spec: FitSpec
    token: str
    passes: int
    x_blocks: list | None = None


@dataclass
class _Planned:
    """The validated data of one fit, planned over partitions."""

    meta: dict
    classes: Any
    token: str
    keys: dict
    plan: Any
    x_blocks: list | None = None


def resolve_rows(params):
    """The :class:`~daskfuse.partition.Rows` that ``partition`` and ``n_partitions`` mean."""
    n = params.n_partitions
    part = params.partition
    if part is None:
        return Rows(n)
    if isinstance(part, str):
        if part not in STRATEGIES:
            raise ValueError(
                f"partition must be a daskfuse.partition.Rows or one of "
                f"{', '.join(map(repr, STRATEGIES))}; got {part!r}"
            )
        return Rows(n, strategy=part)
    if isinstance(part, Rows):
        part.validate()
        if n is not None and part.n_partitions is not None and n != part.n_partitions:
            raise ValueError(
                f"n_partitions={n!r} contradicts partition={part!r}; give the count once"
            )
        return Rows(part.n_partitions if n is None else n, strategy=part.strategy)
    raise TypeError(
        f"partition must be None, a strategy name, a daskfuse.partition.Rows or a "
        f"daskfuse.partition.Columns; got {type(part).__name__}"
    )


def _check_rounds(params, fuser):
    """Whether ``rounds`` and ``proximal`` apply to ``fuser``; the number of passes to run."""
    name = type(params.estimator).__name__
    tags = fuser.tags(params.estimator)
    if params.rounds > 1:
        reason = tags.rounds_reason
        if reason is not None:
            raise FusionError(
                f"rounds={params.rounds} cannot be used with fusion={fuser!r} and {name}: {reason}"
            )
    if params.proximal > 0:
        reason = tags.proximal_reason
        if params.rounds == 1 or reason is not None:
            raise ValueError(
                f"proximal={params.proximal!r} needs rounds > 1 and an estimator that "
                f"takes a proximal step; got rounds={params.rounds} with {name}"
                + ("" if reason is None else f" ({reason})")
            )
    return int(fuser.passes(int(params.rounds)))


def _min_partitions(params, n):
    """``min_partitions`` as a count of the ``n`` partitions."""
    m = params.min_partitions
    if is_int(m):
        if m > n:
            raise ValueError(f"min_partitions={m} is larger than the number of partitions ({n})")
        return int(m)
    return max(1, math.ceil(m * n - 1e-9))


def _partition_seeds(params, fuser, fit_seeds, n):
    shared = fuser.tags(params.estimator).shared_seed
    if params.random_state is None:
        inner = params.estimator.get_params().get("random_state")
        if not shared:
            # every partition fits the estimator exactly as given
            return None
        if is_int(inner):
            return (int(inner),) * n
    if shared:
        # one seed for every partition: the same initial parameters everywhere
        return (int(fit_seeds.generate_state(1)[0]),) * n
    return tuple(int(s.generate_state(1)[0]) for s in fit_seeds.spawn(n))


def _token_parts(params, fuser, rows, split_every, seeds, extra=()):
    """What the fit's token hashes; ``extra`` (see :func:`_increment_parts`) is empty
    for a plain fit."""
    return (
        params.owner,
        # the real parameter values (arrays by their data), not a printed form
        plain_params(params.estimator),
        fuser,
        rows,
        # "auto" counts resolve to the threads of the active scheduler
        cluster_threads() if rows.n_partitions in (None, "auto") else None,
        split_every,
        # Fresh entropy (random_state=None) only matters where rows are shuffled;
        # elsewhere the keys stay deterministic.
        seeds.entropy
        if params.random_state is not None or rows.strategy in ("random", "stratified")
        else None,
        params.on_error,
        params.min_partitions,
        # what the later passes compute (their keys derive from this token)
        params.local_epochs,
        params.proximal,
    ) + tuple(extra)


def _data_token(token_parts, X, y, sample_weight):
    """The token of one fit's data (the weights too, where given)."""
    if sample_weight is None:
        return tokenize(token_parts, X, y)
    return tokenize(token_parts, X, y, sample_weight)


def check_weights_apply(params, fuser):
    """Raise unless ``fit``'s ``sample_weight`` can be honoured by the estimator's
    ``fit`` and by ``fuser`` (its ``sample_weight_reason``, and with ``rounds`` > 1
    its ``weighted_rounds_reason``)."""
    if params.sample_weight is None:
        return
    name = type(params.estimator).__name__
    if not has_fit_parameter(params.estimator, "sample_weight"):
        raise ValueError(
            f"sample_weight cannot be used with {name}: {name}.fit takes no sample_weight"
        )
    tags = fuser.tags(params.estimator)
    reason = tags.sample_weight_reason
    if reason is None and tags.holdout:
        reason = "it scores the models on held-out rows, which are scored unweighted"
    if reason is not None:
        raise FusionError(
            f"sample_weight cannot be used with fusion={fuser!r} and {name}: {reason}"
        )
    if params.rounds > 1 and tags.weighted_rounds_reason is not None:
        raise FusionError(
            f"rounds={params.rounds} cannot be used with sample_weight and fusion={fuser!r}: "
            f"{tags.weighted_rounds_reason}; fit with rounds=1"
        )


def _keeps_summary(params, fuser, passes, keep_summary):
    """Whether the graph's root returns its summary too (a fit that can be continued)."""
    return keep_summary and passes == 1 and fuser.tags(params.estimator).partial_fit_reason is None


def _increment_parts(classes, continued):
    """The token's parts for what an incremental fit adds: declared classes, and the
    earlier fit a ``partial_fit`` continues (its root summary enters the combine tree,
    so its keys must differ from another fit's). Empty for a plain fit, whose keys
    are those of ``fit_graph``."""
    parts = []
    if classes is not None:
        parts.append(("classes", np.asarray(classes)))
    if continued is not None:
        root = continued.root
        parts.append(("continued", continued.start, tokenize(root.summary, root.classes)))
    return parts


def _plan_dask(params, needs_classes, X, y, rows, partition_seeds, token_parts, known=None):
    objects = keeps_dtypes(accepts_objects(params.estimator), X)
    blocks = dask_blocks(X, y, params.sample_weight, objects=objects)
    meta = {
        "n_features_in_": blocks.n_features,
        "feature_names_in_": blocks.feature_names,
    }
    classes = None
    if params.classifier and known is not None:
        # (partial_fit) the labels are checked against the classes of the fit
        classes = check_known_classes(dask_classes(blocks.y_blocks), known, params.owner)
    elif params.classifier and needs_classes:
        classes = dask_classes(blocks.y_blocks)
    token = _data_token(token_parts, X, y, params.sample_weight)
    names = fit_prefix(token)
    plan = plan_blocks(
        blocks.x_blocks,
        blocks.y_blocks,
        blocks.lengths,
        rows,
        partition_seeds,
        names,
        blocks.w_blocks,
    )
    return _Planned(meta, classes, token, names, plan, blocks.x_blocks)


def _validate_in_memory(params, X, y, allow_nan):
    """``X``, ``y`` validated by scikit-learn, with what validation learnt of them."""
    for name, value in (("y", y), ("sample_weight", params.sample_weight)):
        if is_dask_input(value):
            raise TypeError(
                f"X is in memory but {name} is a dask collection; pass both in memory or "
                "both as dask collections"
            )
    check_dense(X)
    objects = keeps_dtypes(accepts_objects(params.estimator), X)
    if not objects:
        check_frame_columns(X)
    if params.classifier:
        check_label_types(y)
    probe = validation_probe(params.owner)
    # an estimator that takes string columns validates them itself (in each
    # partition, as in a fit on all rows); a DataFrame stays one, with its dtypes
    kept = X if objects and isinstance(X, pd.DataFrame) else None
    checks = {"dtype": None} if objects else {}
    finite = not allow_nan and not objects
    if params.supervised:
        X, y = validate_data(
            probe,
            X,
            y,
            ensure_all_finite=finite,
            multi_output=not params.classifier and params.multi_output,
            y_numeric=not params.classifier,
            **checks,
        )
    else:
        X = validate_data(probe, X, ensure_all_finite=finite, **checks)
    X = X if kept is None else kept
    meta = {
        "n_features_in_": probe.n_features_in_,
        "feature_names_in_": getattr(probe, "feature_names_in_", None),
    }
    return X, y, meta


def check_known_classes(seen, known, owner):
    """``known``, after checking that the labels ``seen`` are among them (``partial_fit``).

    Raises
    ------
    ValueError
        A label is not one of ``known``.
    """
    known = np.asarray(known)
    unknown = [label for label in np.asarray(seen).tolist() if label not in known.tolist()]
    if unknown:
        raise ValueError(
            f"y holds class(es) {unknown} that {owner} was not fitted for: its classes are "
            f"{known.tolist()}. partial_fit keeps the classes of its first call; declare "
            "every class there with classes=..., or refit"
        )
    return known


def _validated_in_memory(params, X, y, allow_nan, known=None):
    """``(X, y, meta, classes)``: the in-memory data validated, a classifier's classes
    (``known``, where given: a ``partial_fit``'s, which the labels must be among)."""
    X, y, meta = _validate_in_memory(params, X, y, allow_nan)
    classes = None
    if params.classifier and known is not None:
        check_classification_targets(y)
        classes = check_known_classes(np.unique(y), known, params.owner)
    elif params.classifier:
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                f"y holds 1 class ({classes[0]}); a classifier needs samples of at least 2 classes"
            )
    return X, y, meta, classes


def _plan_in_memory(X, y, meta, classes, assigned, token_parts, sample_weight=None):
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, len(X))
    token = _data_token(token_parts, X, y, sample_weight)
    names = fit_prefix(token)
    plan = plan_groups(X, y, *assigned, names["data"], sample_weight)
    return _Planned(meta, classes, token, names, plan)


def _counts(classes, y, groups):
    """Rows of each class in each partition (in-memory classifiers), or None."""
    if classes is None:
        return None
    index = np.searchsorted(classes, y)
    return np.array([np.bincount(index[g], minlength=len(classes)) for g in groups])


def _strategy(params, continued):
    """``(fuser, passes)``: the strategy and the passes to run (a continued fit keeps
    its strategy as resolved, in one pass)."""
    if continued is not None:
        return continued.fusion, 1
    fuser = resolve_fusion(params.fusion, params.estimator)
    if prefers_newton(params.fusion, params.estimator, rounds=params.rounds):
        fuser = Newton()
    return fuser, _check_rounds(params, fuser)


def _check_continued_inputs(params, meta, continued):
    """Raise ``ValueError`` unless a continued fit's new rows have the fit's features."""
    n, expected = meta["n_features_in_"], continued.n_features_in
    if n != expected:
        raise ValueError(
            f"X has {n} features, but {params.owner} is expecting {expected} features as input"
        )
    # the fused model takes its feature names from the new rows: they must match
    names, seen = meta["feature_names_in_"], continued.feature_names_in
    if names is None and seen is not None:
        raise ValueError(
            f"X has no column names, but {params.owner} was fitted on columns {list(seen)}"
        )
    if names is not None and (seen is None or list(names) != list(seen)):
        raise ValueError(
            f"X's columns {list(names)} differ from the columns seen in fit "
            f"{None if seen is None else list(seen)}"
        )


def _target(params, y):
    """``y`` for a supervised fit (required), None for the others."""
    if not params.supervised:
        return None
    if y is None:
        raise ValueError(f"{params.owner} requires y to be passed, but the target y is None")
    return y


def plan_partitions(params, X, y):
    """Validate ``X``, ``y`` and lay them over row partitions as :func:`prepare` does,
    before any strategy is chosen.

    For a trainer that fits several estimators on one set of partitions (the
    step-by-step Pipeline trainer, :mod:`daskfuse._pipeline`): the data are checked
    against ``params.estimator`` (its NaN tag) and partitioned by ``partition``,
    ``n_partitions`` and ``random_state``, under keys of their own.

    Returns
    -------
    plan : RowPlan
    meta : dict
        ``n_features_in_`` and ``feature_names_in_`` of the input.
    token : str
    """
    rows = resolve_rows(params)
    seeds = seed_sequence(params.random_state)
    y = _target(params, y)
    partition_seeds, _ = seeds.spawn(2)
    token_parts = _token_parts(params, "partitions", rows, None, seeds)
    if is_dask_input(X):
        planned = _plan_dask(params, False, X, y, rows, partition_seeds, token_parts)
    else:
        allow_nan = estimator_allows_nan(params.estimator)
        X, y, meta, _ = _validated_in_memory(params, X, y, allow_nan)
        assigned = assign_in_memory(X, y, rows, partition_seeds)
        planned = _plan_in_memory(X, y, meta, None, assigned, token_parts, params.sample_weight)
    return planned.plan, planned.meta, planned.token


def prepare(params, X, y, *, classes=None, continued=None, keep_summary=False):
    """Validate the parameters and the data, plan the partitions, build the first pass.

    Parameters
    ----------
    params : TrainSpec
    X, y : the training data (``y`` None for transformers and clusterers)
    classes : array-like or None
        A classifier's classes declared at a first ``partial_fit``; ``y`` may hold
        no other label.
    continued : Continued or None
        A ``partial_fit`` of a fitted model: the new partitions are numbered after
        the old ones and their summaries are combined with its root summary.
    keep_summary : bool
        Whether the graph's root also returns its summary (where the strategy can
        be continued, in one pass).

    Returns
    -------
    Prepared
    """
    fuser, passes = _strategy(params, continued)
    rows = resolve_rows(params)
    split_every = check_split_every(params)
    seeds = seed_sequence(params.random_state)
    y = _target(params, y)
    objects = keeps_dtypes(accepts_objects(params.estimator), X)
    allow_nan = estimator_allows_nan(params.estimator)
    partition_seeds, fit_seeds = seeds.spawn(2)
    extra = _increment_parts(classes, continued)
    token_parts = _token_parts(params, fuser, rows, split_every, seeds, extra)
    check_weights_apply(params, fuser)
    known = classes if continued is None else continued.root.classes
    if is_dask_input(X):
        needs_classes = fuser.tags(params.estimator).needs_classes
        planned = _plan_dask(
            params, needs_classes, X, y, rows, partition_seeds, token_parts, known
        )
    else:
        X, y, meta, classes = _validated_in_memory(params, X, y, allow_nan, known)
        assigned = assign_in_memory(X, y, rows, partition_seeds)
        counts = _counts(classes, y, assigned[1])
        if continued is None and prefers_newton(
            params.fusion, params.estimator, class_counts=counts
        ):
            # fusion="auto" on label-skewed partitions: the global-gradient passes
            # (decided before the data is planned, under their own keys)
            fuser = Newton()
            passes = _check_rounds(params, fuser)
            check_weights_apply(params, fuser)
            token_parts = _token_parts(params, fuser, rows, split_every, seeds, extra)
        weights = params.sample_weight
        planned = _plan_in_memory(X, y, meta, classes, assigned, token_parts, weights)
    if continued is not None:
        _check_continued_inputs(params, planned.meta, continued)
    keep = _keeps_summary(params, fuser, passes, keep_summary)
    return _prepared(
        params, fuser, passes, planned, split_every, fit_seeds, continued, keep, objects
    )


def _prepared(
    params, fuser, passes, planned, split_every, fit_seeds, continued, keep_summary, objects
):
    """The fit spec and the first pass's graph of a planned fit."""
    plan, meta, classes = planned.plan, planned.meta, planned.classes
    n = len(plan.partitions)
    start = 0 if continued is None else continued.start
    fuser.prepare(n)
    min_partitions = _min_partitions(params, n)
    meta["classes"] = classes
    meta["n_partitions"] = start + n
    tags = fuser.tags(params.estimator)
    seeds = _partition_seeds(params, fuser, fit_seeds, start + n)
    spec = FitSpec(
        estimator=params.estimator,
        fuser=fuser,
        classifier=params.classifier,
        # a continued fit's partitions get the seeds a fit of all of them would
        seeds=None if seeds is None else seeds[start:],
        holdout=tags.holdout,
        allow_nan=estimator_allows_nan(params.estimator),
        classes=classes if tags.needs_classes else None,
        local_epochs=int(params.local_epochs),
        proximal=float(params.proximal),
        on_error=params.on_error,
        min_partitions=min_partitions,
        objects=objects,
    )
    graph_ = build_fit_graph(
        plan.partitions,
        spec,
        meta,
        split_every,
        planned.token,
        kept=None if continued is None else continued.root.summary,
        start=start,
        with_summary=keep_summary,
    )
    return Prepared(
        graph_,
        fuser,
        meta,
        plan,
        split_every,
        planned.keys,
        spec,
        planned.token,
        passes,
        planned.x_blocks,
    )


def _mean_score(parts, total=False):
    """The row-weighted mean (``total``: the sum) of ``(score, rows)`` pairs, or None
    if a score is missing."""
    parts = list(parts)
    if not parts or any(score is None for score, _ in parts):
        return None
    if total:
        return float(sum(score for score, _ in parts))
    rows = sum(n for _, n in parts)
    return float(sum(score * n for score, n in parts) / rows)


def _persisted_partitions(prepared):
    pieces = [p for part in prepared.plan.partitions for p in part]
    persisted = iter(dask.persist(*pieces))
    return [[next(persisted) for _ in part] for part in prepared.plan.partitions]


def _pass_record(fuser, feedback):
    record = getattr(fuser, "pass_record", None)
    return {} if record is None else record(feedback)


def _rounds_strategy(fuser):
    """The strategy that trains the rounds: a wrapper's (Secure, DP) innermost one."""
    while getattr(fuser, "inner", None) is not None:
        fuser = fuser.inner
    return fuser


def _kept_round(fuser, history):
    """The index of the round whose fused model ``fit`` returns.

    A strategy with ``keep="best"`` (parameter averaging: FedAvg-style rounds can
    drift away on skewed partitions) keeps the round with the best training score
    (the fused model's own score on all training rows: accuracy, i.e. 1 - the 0/1
    loss, for classifiers; R² for regressors), the latest of equals; the others,
    and any fit whose scores are private, keep the last round.
    """
    last = len(history) - 1
    scores = [row["train_score"] for row in history]
    if getattr(_rounds_strategy(fuser), "keep", "last") != "best" or any(
        s is None or not np.isfinite(s) for s in scores
    ):
        return last
    return last - int(np.argmax(scores[::-1]))


def _server_step(fuser, previous, fused, feedback, velocity):
    """``(fused, feedback, velocity)`` after the strategy's ``server_step`` (FedAvgM's
    momentum, :meth:`daskfuse.fusion.Weighted.server_step`), where it has one; the
    strategies that have one send the fused model itself as the feedback."""
    step = getattr(_rounds_strategy(fuser), "server_step", None)
    if step is None or previous is None:
        return fused, feedback, velocity
    moved, velocity = step(previous[0], fused, velocity)
    return moved, (feedback if moved is fused else moved), velocity


def run_passes(params, prepared):
    """Compute the fit: one pass, or rounds of fit-and-fuse until ``tol``.

    Returns the fused model, the last pass's partition reports, the history
    (None for one pass) and the root summary (where the graph returns it: one pass
    of a strategy that can be continued; else None). Between passes the partitions
    stay persisted where they are, and only the fused model (the feedback) travels
    to them. Each round's fused model is scored on all training rows at no extra pass (the
    next round's fit tasks score it; the last round's gets one scoring pass unless
    the strategy's ``pass_record`` gave its ``train_score``), and
    the model of the round :func:`_kept_round` picks is returned (``kept`` in
    the history).
    """
    if prepared.passes == 1:
        fused, reports, *root = compute_with_progress(prepared.graph, params.verbose)
        return fused, reports, None, (root[0] if root else None)
    fuser, spec, meta = prepared.fuser, prepared.spec, prepared.meta
    partitions = _persisted_partitions(prepared)
    history, models, previous, steps, velocity = [], [], None, 0.0, None
    # a clusterer's score (minus the inertia) adds up over partitions
    total = params.kind == "clusterer"
    groups, checked, grouped = None, frozenset(), fuser.tags(spec.estimator).grouped_passes
    for r in range(prepared.passes):
        start = time.perf_counter()
        graph_ = build_fit_graph(
            partitions,
            spec,
            {**meta, "round": r},
            prepared.split_every,
            tokenize(prepared.token, "pass", r),
            previous=previous,
            with_feedback=True,
            groups=groups,
            checked=checked,
        )
        fused, reports, feedback = compute_with_progress(graph_, params.verbose, optimize=False)
        if grouped:
            # the next pass fits each worker thread's partitions in one task, where
            # their rows are
            groups = worker_groups(reports, worker_threads())
            checked = frozenset(r["partition"] for r in reports if not r["skipped"])
        fused, feedback, velocity = _server_step(fuser, previous, fused, feedback, velocity)
        change = None if previous is None else float(fuser.change(previous[1], feedback))
        if history:
            history[-1]["train_score"] = _mean_score(
                [(row["start_score"], row["rows"]) for row in reports], total
            )
        history.append(
            {
                "round": r + 1,
                "train_score": None,
                "change": change,
                "seconds": time.perf_counter() - start,
                # a strategy's own figures of the pass (newton: loss, gradient, step)
                **_pass_record(fuser, feedback),
            }
        )
        # updates per partition so far (where a private strategy hides the
        # iteration counts: one pass in the first round, local_epochs later)
        epochs = spec.local_epochs if r else 1
        steps += updates_per_partition(reports, epochs)
        previous = (fused, feedback, steps)
        models.append(fused)
        if change is not None and change <= params.tol:
            break
    if (
        history[-1]["train_score"] is None
        and fuser.public_report({"train_score": 0.0})["train_score"] is not None
    ):
        # (a strategy that keeps partition scores private gets no score pass, nor
        # one whose last pass scored its model already: newton's pass_record)
        scores = dask.compute(
            build_score_graph(partitions, fused, tokenize(prepared.token, "score"))
        )[0]
        history[-1]["train_score"] = _mean_score(scores, total)
    kept = _kept_round(fuser, history)
    if hasattr(_rounds_strategy(fuser), "keep"):
        # (the strategies with a keep option say which round's model fit returned)
        for r, row in enumerate(history):
            row["kept"] = r == kept
    return models[kept], reports, pd.DataFrame(history), None


def _check_rows_after_failure(prepared, error):
    """After a failed fit of a dask input whose rows were dealt out without knowing
    their number (unknown chunk sizes), count them: with fewer rows than partitions
    the partitions' errors (empty, one class) hide the cause, so raise that instead.
    """
    plan = prepared.plan
    dealt = plan.strategy in ("random", "stratified")
    if prepared.x_blocks is None or plan.n_rows is not None or not dealt:
        return
    try:
        n_rows = count_rows(prepared.x_blocks)
    except Exception:
        return  # the fit's own error says more than a failed count
    try:
        check_row_count(len(plan.partitions), n_rows)
    except ValueError as too_few:
        raise too_few from error


def graph(params, X, y):
    """The lazy row fit: a ``Delayed`` computing to ``(model, reports)`` (the first pass)."""
    return prepare(params, X, y).graph


def train(params, X, y, *, classes=None, continued=None):
    """Fit one model per row partition and fuse them; a :class:`FitResult`.

    ``classes`` (a first ``partial_fit``'s declared classes) and ``continued`` (a
    ``partial_fit`` of a fitted model: see :func:`prepare`) serve ``partial_fit``; a
    continued fit's result covers every partition so far (its report too).
    """
    prepared = prepare(params, X, y, classes=classes, continued=continued, keep_summary=True)
    try:
        fused, reports, history, summary = run_passes(params, prepared)
    except (PartitionError, FusionError) as exc:
        _check_rows_after_failure(prepared, exc)
        raise
    n_rounds = 1 if history is None else len(history)
    # differentially private strategies account for what this fit released
    meta = prepared.meta
    report = report_frame(reports)
    if continued is not None:
        report = pd.concat([continued.report, report], ignore_index=True)
    root = None
    if summary is not None:
        # the classes later batches are checked against: declared or seen, else the
        # model's (a dask y whose classes were not collected)
        known = meta["classes"]
        root = RootSummary(summary, getattr(fused, "classes_", None) if known is None else known)
    return FitResult(
        fused=fused,
        fusion=prepared.fuser,
        partition=Rows(len(report), prepared.plan.strategy),
        report=report,
        n_features_in=meta["n_features_in_"],
        feature_names_in=meta["feature_names_in_"],
        history=history,
        n_rounds=n_rounds,
        split_every=prepared.split_every,
        privacy_spent=prepared.fuser.privacy_spent(n_rounds),
        root=root,
    )
