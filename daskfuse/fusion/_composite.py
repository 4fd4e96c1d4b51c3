"""Exact fusion of ColumnTransformer and FeatureUnion (families of :class:`Exact`).

A partition lets scikit-learn resolve the column selections (names, indices,
callables, ``make_column_selector``, the remainder: a clone whose parts pass their
columns through is fitted on one row) and summarises each part with that part's own
exact family, on the columns routed to it (a part read from a fitted model is fitted
on them first): the summary is the tuple of the parts' summaries (:class:`Parts`),
merged part by part. No partition transforms its rows.

The root finalises each part, then lets scikit-learn fit a clone of the composite
on one row of the input, with every part replaced by a stand-in that applies the
fused part (a ``FunctionTransformer``): scikit-learn sets the column bookkeeping
(``transformers_``, ``output_indices_``, ``feature_names_in_``, the remainder) from
the fused parts' outputs. The stand-ins are then swapped for the fused parts, and
``sparse_output_`` is set from the density over all rows, computed from the merged
statistics (a one-hot block's non-zeros from its category counts). Only public
fitted attributes are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import FunctionTransformer, KBinsDiscretizer, OneHotEncoder
from sklearn.utils import _safe_indexing

from .._adapters import stamp_inputs
from .._quiet import quiet_warnings
from ..exceptions import FusionError
from ._family import Family

__all__ = ["Parts", "composite_families"]


@dataclass
class Parts:
    """A composite's summary: its parts' summaries (None for a part without one).

    Attributes
    ----------
    names : tuple
        The parts' names, in the order of the composite's fitted parts.
    parts : tuple
        Per part, its summary.
    columns : tuple
        Per part, the input columns it received (a ColumnTransformer's resolved
        selection; None for a FeatureUnion's parts, which take all columns).
    head : DataFrame or ndarray
        One row of the input (its columns and dtypes, for the root's refit).
    n : int
        Rows summarised.
    nnz : tuple
        Per part, the non-zeros of its sparse output where that output does not
        depend on the fit (stateless parts), else None.
    """

    names: tuple
    parts: tuple
    columns: tuple
    head: Any
    n: int
    nnz: tuple

    @classmethod
    def merge(cls, parts):
        """Each part's summaries merged by that part's family (associative)."""
        merged = []
        for j, first in enumerate(parts[0].parts):
            column = [p.parts[j] for p in parts]
            merged.append(None if first is None else type(first).merge(column))
        nnz = tuple(
            None if first is None else sum(p.nnz[j] for p in parts)
            for j, first in enumerate(parts[0].nnz)
        )
        first = parts[0]
        n = sum(p.n for p in parts)
        return cls(first.names, tuple(merged), first.columns, first.head, n, nnz)


def _templates(template):
    """``{name: unfitted part}`` of a ColumnTransformer (remainder too) or FeatureUnion."""
    if isinstance(template, ColumnTransformer):
        named = {name: t for name, t, _ in template.transformers}
        named["remainder"] = template.remainder
        return named
    return dict(template.transformer_list)


def _subset(X, columns):
    return X if columns is None else _safe_indexing(X, columns, axis=1)


def _check(estimator, reason_of):
    for name, part in _templates(estimator).items():
        if isinstance(part, str):
            continue
        reason = reason_of(part)
        if reason is not None:
            return f"{type(estimator).__name__}'s part {name!r} cannot be fused exactly: {reason}"
    return None


def _head(X):
    return X.iloc[:1] if isinstance(X, pd.DataFrame) else np.asarray(X)[:1]


def _routing(template, X):
    """``(name, unfitted part, columns)`` of ``template`` on ``X``.

    scikit-learn resolves a ColumnTransformer's selections (names, indices,
    callables, ``make_column_selector``, the remainder): it fits a clone whose parts
    pass their columns through, on one row. A FeatureUnion's parts take all columns.
    """
    templates = _templates(template)
    if not isinstance(template, ColumnTransformer):
        return [(name, part, None) for name, part in templates.items()]
    probe = clone(template).set_params(
        transformers=[
            (n, t if isinstance(t, str) else "passthrough", c) for n, t, c in template.transformers
        ],
        remainder=template.remainder if isinstance(template.remainder, str) else "passthrough",
    )
    with quiet_warnings(UserWarning):
        probe.fit(_head(X))
    return [(name, templates[name], cols) for name, _, cols in probe.transformers_]


def _summarize(model, X, y, info, family_of):
    """Each part's summary, by its own family, on the columns routed to it."""
    template = info["template"]
    names, parts, columns, nnz = [], [], [], []
    for name, sub, cols in _routing(template, X):
        family = None if isinstance(sub, str) else family_of(sub)
        Xs = _subset(X, cols)
        names.append(name)
        columns.append(cols)
        if family is None or Xs.shape[1] == 0:
            parts.append(None)
            nnz.append(None)
            continue
        try:
            summary, fitted = _summarize_part(family, sub, Xs, y, info)
        except (TypeError, ValueError) as exc:
            where = "" if cols is None else f" on columns {_labels(Xs, cols)}"
            raise type(exc)(
                f"{type(template).__name__}'s part {name!r} ({type(sub).__name__}){where}: {exc}"
            ) from exc
        parts.append(summary)
        nnz.append(_stateless_nnz(template, family, fitted, Xs))
    return Parts(tuple(names), tuple(parts), tuple(columns), _head(X), len(X), tuple(nnz))


def _summarize_part(family, sub, Xs, y, info):
    """``(summary, fitted part or None)``: a part read from a fitted model is fitted."""
    fitted = None
    if not family.from_rows:
        fitted = clone(sub)
        with quiet_warnings(UserWarning):
            fitted.fit(Xs, y)
    model = sub if fitted is None else fitted
    return family.summarize(model, Xs, y, {**info, "template": sub}), fitted


def _labels(Xs, cols):
    """The column names a part received (its selection where the input has none)."""
    return list(map(str, Xs.columns)) if isinstance(Xs, pd.DataFrame) else cols


def _stateless_nnz(template, family, fitted, Xs):
    """Non-zeros of a part's sparse output on the partition, where the root needs
    them (a ColumnTransformer's density) and cannot count them from statistics."""
    if getattr(template, "sparse_threshold", 0) <= 0 or family.from_rows:
        return None
    if not sparse.issparse(fitted.transform(_head(Xs))):
        return None
    return int(fitted.transform(Xs).nnz)


def _part_meta(head, columns, meta):
    Xh = _subset(head, columns)
    names = None
    if isinstance(Xh, pd.DataFrame) and all(isinstance(c, str) for c in Xh.columns):
        names = np.asarray(Xh.columns, dtype=object)
    return {**meta, "n_features_in_": Xh.shape[1], "feature_names_in_": names, "classes": None}


def _standin(fused):
    """A transformer that applies ``fused`` (fitting it learns nothing)."""
    return FunctionTransformer(fused.transform, accept_sparse=True, check_inverse=False)


def _onehot_nnz(encoder, summary):
    """Non-zeros of ``encoder``'s output over all rows, from the category counts."""
    if summary.counts is None:
        return None
    out = encoder.transform(summary.layout.rows(summary.categories))
    hit = (sparse.csr_matrix(out) != 0).toarray()
    bounds = np.cumsum([0, *encoder._n_features_outs])
    nnz = 0
    for j, (cats, counts) in enumerate(zip(summary.categories, summary.counts)):
        nnz += int(counts[hit[: len(cats), bounds[j] : bounds[j + 1]].any(axis=1)].sum())
    return nnz


def _part_nnz(fused, part, nnz, n):
    if isinstance(fused, OneHotEncoder):
        return _onehot_nnz(fused, part)
    if isinstance(fused, KBinsDiscretizer):  # one bin per row and feature
        return n * fused.n_features_in_
    return nnz


def _sparse_output(composite, summary, fused):
    """Whether the fused ColumnTransformer's output is sparse: the density over all
    rows, as scikit-learn computes it from the whole output, against
    ``sparse_threshold``."""
    n, nnz, total, any_sparse = summary.n, 0, 0, False
    by_name = {name: j for j, name in enumerate(summary.names)}
    for name, part, cols in composite.transformers_:
        head = _subset(summary.head, cols)
        if (isinstance(part, str) and part == "drop") or head.shape[1] == 0:
            continue  # no output, as scikit-learn skips it
        out = part.transform(head)
        width = out.shape[1]
        total += n * width
        if not sparse.issparse(out):
            nnz += n * width
            continue
        any_sparse = True
        j = by_name[name]
        count = _part_nnz(fused.get(name), summary.parts[j], summary.nnz[j], n)
        if count is None:
            raise FusionError(
                f"ColumnTransformer(sparse_threshold={composite.sparse_threshold}): the "
                f"density of part {name!r}'s sparse output over all rows is not known "
                "from its statistics; set sparse_threshold=0 or make the part dense"
            )
        nnz += count
    return any_sparse and nnz / total < composite.sparse_threshold


def _finalize(summary, template, meta, family_of):
    templates = _templates(template)
    fused = {}
    composite = clone(template)
    for name, part, columns in zip(summary.names, summary.parts, summary.columns):
        if part is not None:
            sub = templates[name]
            sub_meta = _part_meta(summary.head, columns, meta)
            fused[name] = family_of(sub).finalize(part, sub, sub_meta)
    standins = {name: _standin(f) for name, f in fused.items()}
    if isinstance(template, ColumnTransformer):
        composite.transformers = [(n, standins.get(n, t), c) for n, t, c in template.transformers]
        composite.remainder = standins.get("remainder", template.remainder)
    else:
        composite.transformer_list = [(n, standins.get(n, t)) for n, t in template.transformer_list]
    with quiet_warnings(UserWarning):
        composite.fit(summary.head)
    if isinstance(template, ColumnTransformer):
        composite.transformers_ = [(n, fused.get(n, t), c) for n, t, c in composite.transformers_]
        composite.transformers = clone(template).transformers
        composite.remainder = clone(template).remainder
        composite.sparse_output_ = bool(_sparse_output(composite, summary, fused))
    else:
        # a FeatureUnion reads n_features_in_ and feature_names_in_ from its parts
        composite.transformer_list = [(n, fused.get(n, t)) for n, t in composite.transformer_list]
        return composite
    return stamp_inputs(composite, meta)


def composite_families(family_of, reason_of):
    """The composite families; ``family_of``/``reason_of`` answer for their parts.

    Parameters
    ----------
    family_of : callable
        ``family_of(estimator)``: the exact :class:`~daskfuse.fusion._family.Family`
        of a part, or None.
    reason_of : callable
        ``reason_of(estimator)``: why a part cannot be fused exactly, or None.
    """
    return (
        Family(
            types=(ColumnTransformer, FeatureUnion),
            summarize=lambda m, X, y, info: _summarize(m, X, y, info, family_of),
            finalize=lambda s, t, meta: _finalize(s, t, meta, family_of),
            check=lambda e: _check(e, reason_of),
        ),
    )
