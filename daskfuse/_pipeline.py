"""The Pipeline trainer: a scikit-learn ``Pipeline`` fused step by step.

A ``Pipeline`` (also from ``make_pipeline``, with nested pipelines and
``"passthrough"`` steps) whose transformer steps exact fusion supports is fitted one
step at a time over the same row partitions, persisted once on the workers:

1. the data are validated against the Pipeline and planned over row partitions as
   the row trainer plans them (:func:`daskfuse._rows.plan_partitions`); each
   partition is gathered into one block and persisted where it was planned;
2. each transformer step is fitted by the row trainer with ``fusion=Exact()`` over
   those blocks (as ``FusedTransformer(step, fusion="exact")`` would), and the
   blocks are transformed on their workers by the fused step (``map_blocks``; a
   sparse output is densified for the next steps' training only) and persisted;
3. the final step is fitted by the row trainer over the transformed blocks with the
   meta-estimator's own ``fusion``, ``rounds`` and the rest (``"auto"`` picks for the
   final estimator as it would alone).

The result is one plain fitted ``Pipeline`` with the user's step names and settings
(``fused_estimator_``); ``fusion_`` is the final step's strategy and
``pipeline_steps_`` says what every step got. A Pipeline with a transformer step that
exact fusion cannot fit is fused as a whole by the row trainer, as before (by
voting, under ``fusion="auto"``), with a warning that names the step and the reason.
"""

from __future__ import annotations

import operator
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed
from dask.base import tokenize
from scipy import sparse
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from . import _rows
from ._adapters import accepts_objects
from ._graph import _concat, _flatten, _regroup
from ._inputs import is_dask_input, keeps_dtypes
from ._trainer import TrainSpec
from .fusion import Exact, Newton, prefers_newton
from .partition import Rows

__all__ = ["applies", "exact_blocker", "fused_last", "graph", "leaves", "train"]


def applies(estimator):
    """Whether ``estimator`` is fitted by this trainer (a scikit-learn ``Pipeline``)."""
    return isinstance(estimator, Pipeline)


def _is_passthrough(step):
    return step is None or (isinstance(step, str) and step == "passthrough")


def leaves(pipeline, prefix="", at=()):
    """The steps of ``pipeline`` with nested pipelines flattened, in order.

    Returns
    -------
    list of (path, name, step)
        ``path``: the indices into ``steps`` at each level; ``name``: the step names
        joined by ``"__"`` (as in ``set_params``); ``step``: the estimator or
        ``"passthrough"``/None.
    """
    out = []
    for i, (name, step) in enumerate(pipeline.steps):
        if isinstance(step, Pipeline):
            out.extend(leaves(step, f"{prefix}{name}__", (*at, i)))
        else:
            out.append(((*at, i), f"{prefix}{name}", step))
    return out


def _split(pipeline):
    """``(transformers, final, after)``: the leaves before the last estimator, its
    leaf, and the ``"passthrough"`` leaves after it.

    The final step is the last leaf that is not ``"passthrough"`` (a Pipeline of
    transformers ending in ``"passthrough"`` fuses its last transformer with the
    meta-estimator's ``fusion``); None where every step is ``"passthrough"``.
    """
    steps = leaves(pipeline)
    real = [i for i, (_, _, step) in enumerate(steps) if not _is_passthrough(step)]
    if not real:
        return steps, None, []
    return steps[: real[-1]], steps[real[-1]], steps[real[-1] + 1 :]


def fused_last(estimator):
    """What the meta-estimator's ``fusion`` fuses: the final step of a Pipeline fused
    step by step, else ``estimator`` itself."""
    if not applies(estimator) or exact_blocker(estimator) is not None:
        return estimator
    return _split(estimator)[1][2]


def exact_blocker(pipeline):
    """``(name, reason)`` of the first transformer step of ``pipeline`` that exact
    fusion cannot fit, or None where every one can (and the Pipeline is fused step
    by step)."""
    transformers, final, _ = _split(pipeline)
    if final is None:
        return "", "every step is 'passthrough'"
    for _, name, step in transformers:
        if _is_passthrough(step):
            continue
        reason = Exact().unsupported_reason(step)
        if reason is not None:
            return name, f"{type(step).__name__}: {reason}"
    return None


def _record(name, step, fusion=None, reason=None, seconds=None):
    return {
        "step": name,
        "estimator": "passthrough" if _is_passthrough(step) else type(step).__name__,
        "fusion": None if fusion is None else repr(fusion),
        "reason": reason,
        "seconds": seconds,
    }


def _fallback(params, blocker):
    """Warn that the Pipeline is fused as a whole, naming the step that forced it."""
    name, reason = blocker
    warnings.warn(
        f"{params.owner}: the Pipeline is fused as a whole (one pipeline per partition, "
        f"fusion={params.fusion!r}), not step by step: step {name!r} cannot be fitted by "
        f"exact fusion ({reason})",
        UserWarning,
        stacklevel=4,
    )


# --------------------------------------------------------------------------- tasks
def _gather(index, sizes, objects, *pieces):
    """One partition's pieces as one ``(X, y, sample_weight)`` triple (a
    ``daskfuse-pipeline`` task on the worker that holds them; ``y`` and the weights
    may be None): arrays, or a DataFrame ``X`` for a first step that takes string
    columns (``objects``)."""
    return _concat(_regroup(sizes, pieces), index, objects)


def _empty(block):
    """``block``'s rows and its first 0 rows (its columns and dtypes)."""
    return len(block), block.iloc[:0] if hasattr(block, "iloc") else block[:0]


def _facts(part, classifier):
    """``(X's facts, y's facts, class counts)`` of one partition (see :func:`_empty`)."""
    X, y, _ = part
    if y is None:
        return _empty(X), None, None
    counts = dict(zip(*np.unique(y, return_counts=True))) if classifier else None
    return _empty(X), _empty(y), counts


def _transform_block(block, model):
    """``model.transform`` of one block, as a dense array (the next steps train on it)."""
    out = model.transform(block)
    if sparse.issparse(out):
        out = out.toarray()
    return np.asarray(out)


# --------------------------------------------------------------------------- blocks
@dataclass
class _Blocks:
    """The partitions' rows between steps: one persisted block per partition."""

    blocks: list
    rows: list
    #: a block of 0 rows: the columns and dtypes (an array or a pandas DataFrame)
    empty: Any

    @classmethod
    def of(cls, blocks, facts):
        return cls(list(blocks), [n for n, _ in facts], facts[0][1])

    def collection(self):
        """The blocks as one dask array or dask DataFrame (a block per partition)."""
        if isinstance(self.empty, pd.DataFrame | pd.Series):
            return dd.from_delayed(self.blocks, meta=self.empty, verify_meta=False)
        return da.concatenate(
            [
                da.from_delayed(b, (n, *self.empty.shape[1:]), dtype=self.empty.dtype)
                for b, n in zip(self.blocks, self.rows)
            ]
        )

    def transformed(self, fused):
        """The blocks transformed on their workers by ``fused``, persisted."""
        model = delayed(fused, pure=True)
        name = f"daskfuse-transform-{tokenize(model.key, [b.key for b in self.blocks])}"
        transform = delayed(_transform_block, pure=True)
        out = dask.persist(
            *[transform(b, model, dask_key_name=(name, i)) for i, b in enumerate(self.blocks)]
        )
        return _Blocks.of(out, dask.compute(*[delayed(_empty)(b) for b in out]))


def _partitions(params, X, y):
    """The planned partitions, persisted: ``(X blocks, y blocks or None, weight blocks
    or None, meta, class counts of each partition, strategy)``; partitions without
    rows are left out."""
    plan, meta, token = _rows.plan_partitions(params, X, y)
    objects = keeps_dtypes(accepts_objects(params.estimator), X)
    gather = delayed(_gather, pure=True)
    parts = []
    for i, pieces in enumerate(plan.partitions):
        sizes, args = _flatten(pieces)
        key = (f"daskfuse-pipeline-{token}", i)
        parts.append(gather(i, sizes, objects, *args, dask_key_name=key))
    parts = dask.persist(*parts)
    facts = dask.compute(*[delayed(_facts)(p, params.classifier) for p in parts])
    kept = [(p, f) for p, f in zip(parts, facts) if f[0][0] > 0]  # blocks without rows
    if not kept:
        raise ValueError(f"X has 0 rows in all of its {len(parts)} partitions")
    getitem = delayed(operator.getitem, pure=True)
    Xb = _Blocks.of([getitem(p, 0) for p, _ in kept], [f[0] for _, f in kept])
    yb = wb = None
    if params.supervised:
        yb = _Blocks.of([getitem(p, 1) for p, _ in kept], [f[1] for _, f in kept])
    if params.sample_weight is not None:
        rows = [(f[0][0], np.zeros(0)) for _, f in kept]
        wb = _Blocks.of([getitem(p, 2) for p, _ in kept], rows)
    return Xb, yb, wb, meta, [f[2] for _, f in kept], plan.strategy


def _step_spec(params, step):
    """The row trainer's spec for one transformer step: exact fusion, one pass, the
    partitions as they are."""
    return TrainSpec(
        owner=params.owner,
        kind="transformer",
        estimator=step,
        fusion=Exact(),
        split_every=params.split_every,
        random_state=params.random_state,
        on_error=params.on_error,
        min_partitions=params.min_partitions,
        verbose=params.verbose,
    )


def _final_fusion(params, final, X, counts):
    """``fusion="auto"`` picks for the final estimator as it would alone: the
    global-gradient passes on label-skewed in-memory partitions."""
    if is_dask_input(X) or counts[0] is None:
        return params.fusion
    labels = sorted(set().union(*counts))
    table = [[c.get(label, 0) for label in labels] for c in counts]
    if prefers_newton(params.fusion, final, rounds=params.rounds, class_counts=table):
        return Newton()
    return params.fusion


def _step(pipeline, path):
    """The step of ``pipeline`` at ``path`` (indices into nested pipelines' steps)."""
    for i in path:
        pipeline = pipeline.steps[i][1]
    return pipeline


def _fit_transformers(params, transformers, Xb, continued):
    """Fit the transformer steps in order (or, continuing a fit, take them from its
    fused Pipeline) and transform the blocks by each; ``(fitted, records, blocks)``."""
    fitted, records = {}, []
    for path, name, step in transformers:
        if _is_passthrough(step):
            records.append(_record(name, step))
            continue
        start = time.perf_counter()
        if continued is None:
            result = _rows.train(_step_spec(params, step), Xb.collection(), None)
            model, fusion, reason = result.fused, result.fusion, None
        else:
            model, fusion = _step(continued.model, path), None
            reason = "kept as fitted: partial_fit continues the final step only"
        Xb = Xb.transformed(model)
        fitted[path] = model
        records.append(_record(name, step, fusion, reason, time.perf_counter() - start))
    return fitted, records, Xb


def _final_continued(continued, final_path):
    """What the final step's fit continues from, or None (a fresh fit)."""
    if continued is None:
        return None
    final = _step(continued.model, final_path)
    return replace(
        continued,
        model=final,
        n_features_in=final.n_features_in_,
        feature_names_in=getattr(final, "feature_names_in_", None),
    )


def _fit_steps(params, X, y, classes=None, continued=None):
    """Fit every step in order; ``(fitted {path: model}, the final step's FitResult
    (with the partitioning planned), records, meta)``."""
    transformers, (final_path, final_name, final), after = _split(params.estimator)
    Xb, yb, wb, meta, counts, strategy = _partitions(params, X, y)
    fitted, records, Xb = _fit_transformers(params, transformers, Xb, continued)
    start = time.perf_counter()
    fusion = continued.fusion if continued is not None else None
    final_params = replace(
        params,
        estimator=final,
        fusion=fusion or _final_fusion(params, final, X, counts),
        partition=None,
        n_partitions=None,
        sample_weight=None if wb is None else wb.collection(),
    )
    result = _rows.train(
        final_params,
        Xb.collection(),
        None if yb is None else yb.collection(),
        classes=classes,
        continued=_final_continued(continued, final_path),
    )
    fitted[final_path] = result.fused
    records.append(_record(final_name, final, result.fusion, seconds=time.perf_counter() - start))
    records.extend(_record(name, step) for _, name, step in after)
    result = replace(result, partition=Rows(len(result.report), strategy))
    return fitted, result, records, meta


def _assembled(pipeline, fitted, meta):
    """A clone of ``pipeline`` holding the fitted steps, its first step stamped with
    the input's ``n_features_in_`` and ``feature_names_in_``."""
    out = clone(pipeline)
    for path, model in fitted.items():
        holder = _step(out, path[:-1])
        holder.steps = list(holder.steps)
        holder.steps[path[-1]] = (holder.steps[path[-1]][0], model)
    first = fitted[min(fitted)]
    first.n_features_in_ = meta["n_features_in_"]
    if meta.get("feature_names_in_") is not None:
        first.feature_names_in_ = meta["feature_names_in_"]
    return out


def train(params, X, y, *, classes=None, continued=None):
    """Fit ``params.estimator`` (a Pipeline) step by step, or as a whole where a
    transformer step cannot be fused exactly; a :class:`~daskfuse._trainer.FitResult`
    with ``pipeline_steps`` (one record per step).

    ``fit``'s ``sample_weight`` weighs the final step's fit (scikit-learn's
    ``pipeline.fit(X, y, <final>__sample_weight=w)``); the transformer steps are
    fitted unweighted, as scikit-learn fits them. ``classes`` and ``continued`` serve
    ``partial_fit`` (see :func:`daskfuse._rows.train`): a continued step-by-step fit
    keeps the fitted transformer steps, transforms the new rows by them and continues
    the final step's fit with the new partitions.
    """
    blocker = exact_blocker(params.estimator)
    if blocker is not None:
        if continued is None:
            _fallback(params, blocker)
        result = _rows.train(params, X, y, classes=classes, continued=continued)
        records = [
            _record(name, step, result.fusion, blocker[1] if name == blocker[0] else None)
            for _, name, step in leaves(params.estimator)
        ]
        return replace(result, pipeline_steps=pd.DataFrame(records))
    fitted, result, records, meta = _fit_steps(params, X, y, classes, continued)
    pipeline = _assembled(params.estimator, fitted, meta)
    return replace(
        result,
        fused=pipeline,
        n_features_in=meta["n_features_in_"],
        feature_names_in=meta["feature_names_in_"],
        pipeline_steps=pd.DataFrame(records),
    )


def graph(params, X, y):
    """The lazy fit of a Pipeline fused as a whole (see :func:`daskfuse._rows.graph`).

    Raises
    ------
    NotImplementedError
        The Pipeline is fused step by step: each step trains on the previous fused
        step's output, which only ``fit`` computes.
    """
    blocker = exact_blocker(params.estimator)
    if blocker is None:
        raise NotImplementedError(
            f"{params.owner}.fit_graph: this Pipeline is fused step by step (each step "
            "trains on the output of the previous fused step, which fit computes), so it "
            "has no single lazy graph; call fit"
        )
    _fallback(params, blocker)
    return _rows.graph(params, X, y)
