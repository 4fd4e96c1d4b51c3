"""Exact fusion of the transformers people put in pipelines (families of :class:`Exact`).

==========================================  =============================================
family                                      summary (``combine``)
==========================================  =============================================
OneHotEncoder, OrdinalEncoder               :class:`Categories`: per column the sorted
                                            categories and their row counts (union,
                                            counts added)
SimpleImputer (mean, most_frequent,         :class:`Imputation`: per column whether a
constant)                                   value is missing, and the non-missing count
                                            and sum (mean) or the value counts
KBinsDiscretizer (strategy="uniform")       :class:`Range`: per column minimum, maximum
PolynomialFeatures, FunctionTransformer,    :class:`Stateless`: one partition's fitted
RobustScaler (no centring, no scaling)      model (its state is the input's shape and
                                            column names only)
==========================================  =============================================

The root lets scikit-learn set the fitted attributes: it fits a clone of the template
on a few *representative rows* built from the merged summary (each column's
categories, or its statistic and a missing value where the column had one) in the
container and dtypes of the partitions' rows, so ``categories_``, ``statistics_``,
``bin_edges_``, ``drop_idx_``, ``indicator_``, ``feature_names_in_`` are computed by
scikit-learn itself. Only what needs the merged counts is set from them, with
scikit-learn's own method: the encoders' infrequent categories
(``_fit_infrequent_category_mapping``, then ``_set_drop_idx`` for OneHotEncoder).

The partitions are read with scikit-learn's own validation (the encoders' ``_fit`` with
``return_counts``, SimpleImputer's ``_validate_input``), so strings, categoricals,
``None`` and NaN reach the summary as they reach a fit on all rows. These private
members are pinned by ``tests/test_encoders.py`` on the installed scikit-learn.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    RobustScaler,
)
from sklearn.utils import check_array
from sklearn.utils._encode import _encode, _unique
from sklearn.utils._mask import _get_mask
from sklearn.utils._missing import is_scalar_nan

from .._adapters import stamp_inputs
from .._quiet import quiet_warnings
from ..exceptions import FusionError
from ._family import Family

__all__ = [
    "ENCODER_FAMILIES",
    "Categories",
    "Imputation",
    "Layout",
    "Range",
    "Stateless",
]

#: the SimpleImputer strategies whose statistic merges exactly
IMPUTER_STRATEGIES = ("mean", "most_frequent", "constant")


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """The container of a partition's ``X``: a DataFrame's column labels and dtypes,
    or an array's dtype. The root builds its representative rows in it."""

    columns: tuple | None
    dtypes: tuple

    @classmethod
    def of(cls, X):
        """The layout of ``X`` (a pandas DataFrame or an array)."""
        if isinstance(X, pd.DataFrame):
            # a categorical column by its values only: partitions of a dask frame
            # may each know only their own categories
            dtypes = ("category" if isinstance(t, pd.CategoricalDtype) else t for t in X.dtypes)
            return cls(tuple(X.columns), tuple(dtypes))
        X = np.asarray(X)
        return cls(None, (X.dtype,) * X.shape[1])

    @classmethod
    def of_model(cls, model, values):
        """The layout a fitted ``model`` saw, as far as it tells (``values``: per column)."""
        names = getattr(model, "feature_names_in_", None)
        dtypes = tuple(np.asarray(v).dtype for v in values)
        return cls(None if names is None else tuple(names), dtypes)

    def rows(self, columns, dtypes=None):
        """Rows holding ``columns[j]`` in column ``j`` (shorter columns repeat their
        first value), in this layout; ``dtypes`` overrides the column dtypes."""
        dtypes = self.dtypes if dtypes is None else dtypes
        k = max(len(c) for c in columns)
        padded = [list(c) + [c[0]] * (k - len(c)) for c in columns]
        if self.columns is None:
            # an array's columns share its dtype
            out = np.empty((k, len(padded)), dtype=dtypes[0])
            for j, values in enumerate(padded):
                out[:, j] = values
            return out
        frame = pd.DataFrame(
            {j: pd.Series(v, dtype=d) for j, (v, d) in enumerate(zip(padded, dtypes))}
        )
        frame.columns = pd.Index(self.columns)
        return frame


def _same(a, b):
    """Whether two category arrays hold the same values in the same order (NaN equal)."""
    return len(a) == len(b) and all(
        (is_scalar_nan(u) and is_scalar_nan(v)) or u is v or u == v for u, v in zip(a, b)
    )


def merge_counts(values, counts):
    """The union of sorted unique ``values`` (scikit-learn's order: missing last) and
    the summed ``counts`` (None where a part has none)."""
    union = values[0]
    if not all(_same(v, union) for v in values[1:]):
        union = _unique(np.concatenate([np.asarray(v, dtype=object) for v in values]))
        union = union.astype(np.result_type(*[np.asarray(v).dtype for v in values]))
    if any(c is None for c in counts):
        return union, None
    total = np.zeros(len(union), dtype=np.int64)
    for v, c in zip(values, counts):
        if len(v):
            total[_encode(np.asarray(v), uniques=union)] += c
    return union, total


# --------------------------------------------------------------------------- encoders
@dataclass
class Categories:
    """Per column the categories seen and their row counts (an encoder's summary).

    Attributes
    ----------
    n : int or None
        Rows summarised (None for fitted models, which keep no counts).
    categories : list of ndarray
        Per column, the sorted categories (or those given by ``categories=``).
    counts : list of ndarray or None
        Per column, the rows of each category.
    layout : Layout
    """

    n: int | None
    categories: list
    counts: list | None
    layout: Layout

    @classmethod
    def merge(cls, parts):
        """Union of the categories per column, counts added (associative)."""
        merged, counts = [], []
        for j in range(len(parts[0].categories)):
            values = [p.categories[j] for p in parts]
            cats, total = merge_counts(
                values, [None if p.counts is None else p.counts[j] for p in parts]
            )
            merged.append(cats)
            counts.append(total)
        known = all(p.n is not None for p in parts)
        n = sum(p.n for p in parts) if known else None
        return cls(n, merged, counts if known else None, parts[0].layout)


def _summarize_encoder(model, X, y, info):
    if X is None:  # daskfuse.fuse: a fitted model's categories, without counts
        cats = [np.asarray(c) for c in model.categories_]
        return Categories(None, cats, None, Layout.of_model(model, cats))
    template = info["template"]
    encoder = clone(template).set_params(min_frequency=None, max_categories=None)
    encoder._validate_params()
    with quiet_warnings(UserWarning):
        out = encoder._fit(
            X,
            handle_unknown=template.handle_unknown,
            ensure_all_finite="allow-nan",
            return_counts=True,
        )
    return Categories(
        out["n_samples"], list(encoder.categories_), out["category_counts"], Layout.of(X)
    )


def _set_aside(template):
    """The parameters the root fits without, then sets back: the infrequent grouping
    (set from the merged counts afterwards) and, for an OrdinalEncoder that groups,
    the codes that its fit checks against the grouped number of categories."""
    params = {"min_frequency": None, "max_categories": None}
    grouping = clone(template)
    grouping._check_infrequent_enabled()
    if isinstance(template, OrdinalEncoder) and grouping._infrequent_enabled:
        if template.handle_unknown == "use_encoded_value":
            params["unknown_value"] = -1
        if not is_scalar_nan(template.encoded_missing_value):
            params["encoded_missing_value"] = -1
    return params


def _check_ordinal_codes(encoder):
    """OrdinalEncoder.fit's checks of ``unknown_value`` and ``encoded_missing_value``
    against each column's number of codes once infrequent categories are grouped, as
    scikit-learn counts them (without the missing category)."""
    codes = []
    for cats, infrequent in zip(encoder.categories_, encoder.infrequent_categories_):
        n = len(cats) - (0 if infrequent is None else len(infrequent))
        codes.append(n - 1 if is_scalar_nan(cats[-1]) else n)
    unknown = encoder.unknown_value
    if encoder.handle_unknown == "use_encoded_value" and any(0 <= unknown < n for n in codes):
        raise ValueError(
            f"The used value for unknown_value {unknown} is one of the values already "
            "used for encoding the seen categories."
        )
    value = encoder.encoded_missing_value
    bad = [
        j for j in encoder._missing_indices if not is_scalar_nan(value) and 0 <= value < codes[j]
    ]
    if bad:
        names = getattr(encoder, "feature_names_in_", None)
        raise ValueError(
            f"encoded_missing_value ({value}) is already used to encode a known category "
            f"in features: {bad if names is None else names[bad]}"
        )


def _finalize_encoder(summary, template, meta):
    """An encoder fitted by scikit-learn on the merged categories, then given the
    infrequent categories of the merged counts."""
    set_aside = _set_aside(template)
    encoder = clone(template).set_params(**set_aside)
    with quiet_warnings(UserWarning):
        encoder.fit(summary.layout.rows(summary.categories))
    encoder.set_params(**{name: getattr(template, name) for name in set_aside})
    encoder._check_infrequent_enabled()
    if encoder._infrequent_enabled:
        if summary.counts is None:
            raise FusionError(
                f"{type(template).__name__}(min_frequency=..., max_categories=...) needs "
                "the row count of every category, which fitted models do not keep: fit "
                "it with daskfuse.FusedTransformer instead of fusing fitted models"
            )
        missing = getattr(encoder, "_missing_indices", {})
        encoder._fit_infrequent_category_mapping(summary.n, summary.counts, missing)
        if isinstance(encoder, OneHotEncoder):
            encoder._set_drop_idx()
            encoder._n_features_outs = encoder._compute_n_features_outs()
        else:
            _check_ordinal_codes(encoder)
    return stamp_inputs(encoder, meta)


# --------------------------------------------------------------------------- imputer
@dataclass
class Imputation:
    """A SimpleImputer's summary: per column whether a value was missing, and the
    statistic's ingredients.

    Attributes
    ----------
    missing : ndarray of bool
        Per column, whether some row missed its value.
    count, total : ndarray or None
        ``"mean"``: per column the non-missing values and their sum (float64).
    values, counts : list of ndarray or None
        ``"most_frequent"``: per column the sorted distinct values and their rows;
        ``"constant"``: a value seen (its dtype checks the fill value).
    layout : Layout
    """

    missing: np.ndarray
    count: np.ndarray | None
    total: np.ndarray | None
    values: list | None
    counts: list | None
    layout: Layout

    @classmethod
    def merge(cls, parts):
        """Flags or-ed, counts and sums added, value counts merged (associative)."""
        first = parts[0]
        missing = np.logical_or.reduce([p.missing for p in parts])
        if first.count is not None:
            count = sum(p.count for p in parts)
            total = sum(p.total for p in parts)
            return cls(missing, count, total, None, None, first.layout)
        values, counts = [], []
        for j in range(len(missing)):
            v, c = merge_counts([p.values[j] for p in parts], [p.counts[j] for p in parts])
            values.append(v)
            counts.append(c)
        return cls(missing, None, None, values, counts, first.layout)


def _check_imputer(estimator):
    if callable(estimator.strategy):
        return (
            "SimpleImputer with a callable strategy cannot be fused exactly: its value "
            "over all rows is not merged from the partitions'"
        )
    if estimator.strategy not in IMPUTER_STRATEGIES:
        return (
            f"SimpleImputer(strategy={estimator.strategy!r}) needs the median of all "
            "rows, which no summary of the partitions gives exactly; use strategy="
            "'mean', 'most_frequent' or 'constant'"
        )
    return None


def _summarize_imputer(model, X, y, info):
    imputer = clone(info["template"])
    imputer._validate_params()
    Xv = imputer._validate_input(X, in_fit=True)
    mask = _get_mask(Xv, imputer.missing_values)
    layout = Layout.of(X)
    if imputer.strategy == "mean":
        count = (~mask).sum(axis=0)
        total = np.where(mask, 0, Xv).sum(axis=0, dtype=np.float64)
        return Imputation(mask.any(axis=0), count, total, None, None, layout)
    values, counts = [], []
    for j in range(Xv.shape[1]):
        column = Xv[~mask[:, j], j]
        if imputer.strategy == "constant":
            column = column[:1]
        v, c = _unique(column, return_counts=True)
        values.append(v)
        counts.append(c)
    return Imputation(mask.any(axis=0), None, None, values, counts, layout)


def _statistic(summary, j):
    """Column ``j``'s statistic over all rows, or None where it had no value."""
    if summary.count is not None:
        return summary.total[j] / summary.count[j] if summary.count[j] else None
    values, counts = summary.values[j], summary.counts[j]
    # ties go to the smallest value, as scikit-learn's most_frequent breaks them
    return values[np.argmax(counts)] if len(values) else None


def _finalize_imputer(summary, template, meta):
    """A SimpleImputer fitted by scikit-learn on two rows per column: the statistic,
    and a missing value where the column had one."""
    columns = []
    for j in range(len(summary.missing)):
        stat = _statistic(summary, j)
        first = template.missing_values if stat is None else stat
        columns.append([first, template.missing_values if summary.missing[j] else first])
    dtypes = None
    if template.strategy == "mean":
        dtypes = (np.dtype(np.float64),) * len(columns)
    imputer = clone(template)
    with quiet_warnings(UserWarning):
        imputer.fit(summary.layout.rows(columns, dtypes))
    return stamp_inputs(imputer, meta)


# --------------------------------------------------------------------------- binning
@dataclass
class Range:
    """Per column the smallest and largest value (KBinsDiscretizer, uniform bins)."""

    low: np.ndarray
    high: np.ndarray
    dtype: np.dtype

    @classmethod
    def merge(cls, parts):
        """Minima of the minima, maxima of the maxima."""
        low = np.minimum.reduce([p.low for p in parts])
        high = np.maximum.reduce([p.high for p in parts])
        return cls(low, high, np.result_type(*[p.dtype for p in parts]))


def _check_kbins(estimator):
    if estimator.strategy == "uniform":
        return None
    what = {
        "quantile": "quantiles of all rows, which no summary of the partitions gives exactly",
        "kmeans": "a 1-D k-means over all rows, an iterative fit that partition summaries "
        "do not reproduce",
    }.get(estimator.strategy, "a strategy exact fusion does not know")
    return (
        f"KBinsDiscretizer(strategy={estimator.strategy!r}) needs {what}; use "
        "strategy='uniform' (bins from the merged minima and maxima)"
    )


def _summarize_kbins(model, X, y, info):
    if info.get("sample_weight") is not None:
        # the only family here whose fit takes sample_weight: not honoured, refused
        raise FusionError(
            "KBinsDiscretizer with sample_weight cannot be fused exactly: its merged "
            "minima and maxima are unweighted"
        )
    Xv = check_array(X, dtype=[np.float64, np.float32])
    return Range(Xv.min(axis=0), Xv.max(axis=0), Xv.dtype)


def _finalize_kbins(summary, template, meta):
    rows = np.vstack([summary.low, summary.high]).astype(summary.dtype)
    names = meta.get("feature_names_in_")
    if names is not None:
        rows = pd.DataFrame(rows, columns=list(names))
    binner = clone(template)
    with quiet_warnings(UserWarning):
        binner.fit(rows)
    return stamp_inputs(binner, meta)


# --------------------------------------------------------------------------- stateless
@dataclass
class Stateless:
    """A fitted model whose state depends on the input's shape and names only."""

    model: Any

    @classmethod
    def merge(cls, parts):
        """Any part: they are all the same model."""
        return parts[0]


def _check_robust_scaler(estimator):
    if estimator.with_centering or estimator.with_scaling:
        return (
            "RobustScaler centres on the median and scales by a quantile range of all "
            "rows, which no summary of the partitions gives exactly; use StandardScaler, "
            "or RobustScaler(with_centering=False, with_scaling=False)"
        )
    return None


def _summarize_stateless(model, X, y, info):
    return Stateless(model)


def _finalize_stateless(summary, template, meta):
    return stamp_inputs(copy.deepcopy(summary.model), meta)


ENCODER_FAMILIES = (
    Family(
        types=(OneHotEncoder, OrdinalEncoder),
        summarize=_summarize_encoder,
        finalize=_finalize_encoder,
        from_models=True,
    ),
    Family(
        types=(SimpleImputer,),
        summarize=_summarize_imputer,
        finalize=_finalize_imputer,
        check=_check_imputer,
    ),
    Family(
        types=(KBinsDiscretizer,),
        summarize=_summarize_kbins,
        finalize=_finalize_kbins,
        check=_check_kbins,
    ),
    Family(
        types=(PolynomialFeatures, FunctionTransformer, RobustScaler),
        summarize=_summarize_stateless,
        finalize=_finalize_stateless,
        check=lambda e: _check_robust_scaler(e) if isinstance(e, RobustScaler) else None,
        from_rows=False,
    ),
)
