"""Exact fusion: merge sufficient statistics, so the fused model is the global fit.

Every family summarises a partition by statistics that add up exactly under any
grouping of the partitions (a monoid), and the root solves for the model once, from
the merged statistics, the way scikit-learn solves it from all of the rows:

==========================================  =============================================
family                                      summary (``combine``)
==========================================  =============================================
LinearRegression, Ridge, RidgeClassifier    :class:`Gram` of ``[X | Y]``: n, column
                                            means and the centred cross-products
                                            (Chan's pairwise update); a partition whose
                                            ``X`` is ill-conditioned, or
                                            ``Exact(method="qr")``: an :class:`RFactor`
PCA, TruncatedSVD                           :class:`RFactor` of the centred ``[X | Y]``:
                                            n, column means and the R factor of a QR
                                            (TSQR: stack the R factors and the mean
                                            corrections, QR again)
GaussianNB                                  :class:`ClassMoments`: per class n, mean and
                                            M2 (Chan, Golub & LeVeque's pairwise update)
MultinomialNB, ComplementNB, BernoulliNB,   :class:`ClassCounts`: per class counts
CategoricalNB                               (added; category tables padded)
StandardScaler                              :class:`Moments`: n, mean, M2 per feature
MinMaxScaler, MaxAbsScaler                  :class:`Extremes`: n, minima, maxima
OneHotEncoder, OrdinalEncoder               ``Categories``: per column the sorted
                                            categories and their row counts
SimpleImputer (mean, most_frequent,         ``Imputation``: per column a missing flag and
constant)                                   the count and sum, or the value counts
KBinsDiscretizer (uniform)                  ``Range``: per column minimum and maximum
PolynomialFeatures, FunctionTransformer,    ``Stateless``: one partition's fitted model
RobustScaler (no centring or scaling)
ColumnTransformer, FeatureUnion             ``Parts``: the tuple of the parts' summaries
==========================================  =============================================

The transformer families live in :mod:`daskfuse.fusion._encoders` (their root lets
scikit-learn fit the template on a few representative rows built from the merged
summary) and :mod:`daskfuse.fusion._composite` (ColumnTransformer and FeatureUnion,
whose parts are any family here); :data:`FAMILIES` registers them.

Nothing is ever an average of averages, and nothing that a single fit applies once
(GaussianNB's ``epsilon_`` smoothing, Ridge's penalty, the log probabilities of naive
Bayes) is applied per partition. Per-class statistics are aligned by class label, so
a partition may lack classes.

The linear and decomposition families are computed from the rows (cross-products or
the R factor of a QR of the partition); naive Bayes and the scalers are read from each partition's
fitted model (their public fitted attributes are sufficient statistics). See
:meth:`Exact.tags` (``needs_fit``).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field, replace
from functools import reduce

import numpy as np
from scipy import linalg
from sklearn.base import clone
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import LinearRegression, Ridge, RidgeClassifier
from sklearn.naive_bayes import (
    BernoulliNB,
    CategoricalNB,
    ComplementNB,
    GaussianNB,
    MultinomialNB,
)
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.utils.extmath import svd_flip

from .._adapters import stamp_inputs
from .._graph import r2_from_sums
from .._quiet import quiet_warnings
from ..exceptions import FusionError
from ._composite import composite_families
from ._encoders import ENCODER_FAMILIES
from ._family import Family
from .base import Fuser

__all__ = ["ClassCounts", "ClassMoments", "Exact", "Extremes", "Gram", "Moments", "RFactor"]

#: Ridge solvers that solve the normal equations directly (no tol, no iterations)
DIRECT_RIDGE_SOLVERS = ("auto", "cholesky", "svd")

#: how :class:`Exact` summarises least-squares partitions
LEAST_SQUARES_METHODS = ("auto", "gram", "qr")

#: ``method="auto"`` summarises a partition by its cross-products when the condition
#: number of its (regularised) ``X.T @ X`` is at most this: the cross-products hold
#: ``X``'s small singular values to a relative precision of about eps * cond / 2,
#: 1e-8 here, and cond(X) = 1e4 is far from LinearRegression's rank cutoff (tol=1e-6)
GRAM_COND_LIMIT = 1e8

#: rows of ``[X | Y]`` centred at a time while accumulating cross-products: a block
#: of about 1 MiB stays in cache between the subtraction and the BLAS call
_CHUNK_BYTES = 1 << 20


# --------------------------------------------------------------------------- summaries
def _union(class_lists):
    return reduce(np.union1d, class_lists)


def _align(classes, rows, target):
    """``rows`` (one per label of ``classes``) laid out on the labels ``target``."""
    if np.array_equal(classes, target):
        return rows
    full = np.zeros((len(target),) + rows.shape[1:])
    full[np.searchsorted(target, classes)] = rows
    return full


def _chan(a, b):
    """Merge two ``(n, mean, M2)`` triples (Chan, Golub & LeVeque, 1979).

    ``n`` broadcasts against ``mean``; an empty side (``n == 0``) must hold zeros.
    """
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    safe = np.where(n > 0, n, 1)
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / safe), m2_a + m2_b + delta**2 * (n_a * n_b / safe)


def fit_dtype(X):
    """The float dtype scikit-learn fits ``X`` in, and gives its fitted attributes.

    float32 stays float32; everything else (float64, integers, float16) is float64,
    as ``check_array(dtype=[np.float64, np.float32])`` converts it. The statistics are
    always merged and solved in float64; only the fused attributes are cast back.

    Examples
    --------
    >>> fit_dtype(np.zeros(2, dtype=np.float32)), fit_dtype(np.zeros(2, dtype=int))
    (dtype('float32'), dtype('float64'))
    """
    dtype = np.asarray(X).dtype
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def _merged_dtype(parts):
    """The dtype of a merge: float32 only where every part is float32."""
    return np.result_type(*[p.dtype for p in parts])


def _cast(value, dtype):
    """``value`` (an array or a scalar) in ``dtype``; float64 values are left as they are."""
    if dtype == np.float64:
        return value
    return np.asarray(value, dtype=dtype) if np.ndim(value) else dtype.type(value)


@dataclass
class RFactor:
    """TSQR summary of a block ``Z``: row count, column means, R of the centred block.

    ``R.T @ R`` is the centred cross-product matrix of ``Z``, so two blocks merge
    exactly: stack their R factors and the rows ``sqrt(n_i) * (mean_i - mean)``, and
    QR again. For least squares ``Z = [X | Y]``; for decompositions ``Z = X``.

    Attributes
    ----------
    n : int
        Rows summarised.
    mean : ndarray of shape (n_columns,)
        Column means.
    r : ndarray of shape (k, n_columns)
        Upper-trapezoidal R factor of ``Z - mean``, ``k = min(n, n_columns)`` for one
        block.
    n_x : int
        Leading columns of ``Z`` that are ``X``.
    y_ndim : int or None
        Dimensions of the regression target (1 or 2), None without a target.
    dtype : numpy.dtype
        The dtype of the fused model's attributes (:func:`fit_dtype` of ``X``); the
        statistics themselves are float64.
    report_train_score : float or None
        A least-squares leaf's own R² on its rows (:func:`own_r2`), for the
        partition report; None once merged and for the other uses.
    """

    n: int
    mean: np.ndarray
    r: np.ndarray
    n_x: int
    y_ndim: int | None = None
    dtype: np.dtype = np.dtype(np.float64)
    rows: int | None = None
    #: a leaf's own R² for the partition report (not a statistic: never merged)
    report_train_score: float | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, Z, n_x, y_ndim=None, dtype=None, sample_weight=None):
        """The summary of the rows ``Z`` (``dtype``: that of the fit, default ``Z``'s).

        With ``sample_weight``, of the rows weighted as scikit-learn weighs them in
        least squares: centred at the weighted means and scaled by the root of their
        weights; ``n`` is then the total weight and ``rows`` the row count.
        """
        dtype = fit_dtype(Z) if dtype is None else dtype
        Z = np.asarray(Z, dtype=float)
        if sample_weight is not None:
            n, mean, root = _weighted_centre(Z, sample_weight)
            r = np.linalg.qr(root[:, None] * (Z - mean), mode="r")
            return cls(n, mean, r, n_x, y_ndim, dtype, len(Z))
        mean = Z.mean(axis=0)
        return cls(len(Z), mean, np.linalg.qr(Z - mean, mode="r"), n_x, y_ndim, dtype)

    @classmethod
    def merge(cls, parts):
        """Merge any number of summaries (associative up to rounding).

        :class:`Gram` summaries among ``parts`` are factored first (see
        :meth:`Gram.rfactor`).
        """
        parts = [_as_rfactor(p) for p in parts]
        n = sum(p.n for p in parts)
        mean = sum(p.n * p.mean for p in parts) / n
        stack = [p.r for p in parts] + [np.sqrt(p.n) * (p.mean - mean)[None] for p in parts]
        r = np.linalg.qr(np.vstack(stack), mode="r")
        merged = cls(n, mean, r, parts[0].n_x, parts[0].y_ndim, _merged_dtype(parts))
        merged.rows = _merged_rows(parts)
        return merged

    def gram(self, fit_intercept):
        """``X.T X`` and ``X.T Y`` of the centred (or, without intercept, raw) columns."""
        r = self.r if fit_intercept else self.uncentred()
        rx = r[:, : self.n_x]
        return rx.T @ rx, rx.T @ r[:, self.n_x :]

    def uncentred(self):
        """R factor of ``Z`` itself (not centred): ``Z.T Z = Rc.T Rc + n mean mean.T``."""
        return np.linalg.qr(np.vstack([self.r, np.sqrt(self.n) * self.mean[None]]), mode="r")


def _weighted_centre(Z, sample_weight):
    """``(total weight, weighted column means, root of the weights)`` of the rows ``Z``."""
    weights = np.asarray(sample_weight, dtype=float)
    total = float(np.sum(weights))
    return total, weights @ Z / total, np.sqrt(weights)


def _merged_rows(parts):
    """The row count of merged weighted summaries (None where none is weighted)."""
    if all(p.rows is None for p in parts):
        return None
    return sum(p.n if p.rows is None else p.rows for p in parts)


def _as_rfactor(summary):
    return summary if isinstance(summary, RFactor) else summary.rfactor()


def _psd_factor(m2):
    """An upper-triangular ``R`` with ``R.T @ R == m2`` for a symmetric PSD ``m2``.

    Cholesky where ``m2`` is positive definite; otherwise (a target that ``X`` fits
    exactly, rank-deficient columns) through its eigendecomposition, negative
    rounding-level eigenvalues clipped to zero.
    """
    try:
        return linalg.cholesky(m2, lower=False)
    except linalg.LinAlgError:
        values, vectors = linalg.eigh(m2)
        return np.linalg.qr(np.sqrt(np.clip(values, 0, None))[:, None] * vectors.T, mode="r")


def _cross_products(X, Y, sample_weight=None):
    """Row count, column means and centred cross-products of ``Z = [X | Y]`` in one pass.

    ``Z`` is never built: row chunks of ``X`` and ``Y`` are copied, shifted by the
    mean of the first rows, into one cache-sized buffer, whose ``B.T @ B`` (BLAS
    ``syrk``) and column sums accumulate. The shift keeps the correction from the
    shifted to the centred cross-products small, so there is no cancellation when
    the columns' means are large next to their spread.

    With ``sample_weight`` each shifted row is scaled by the root of its weight (as
    scikit-learn rescales weighted least squares): the count is the total weight,
    the means and cross-products are weighted.
    """
    n, p = X.shape
    q = p + Y.shape[1]
    head = slice(0, min(n, 1024))
    # float64, as the buffer: a longdouble mean would leave the summary in a dtype
    # that numpy's linalg (the R-factor merge) does not take
    shift = np.concatenate([X[head].mean(axis=0), Y[head].mean(axis=0)]).astype(float)
    rows = max(64, _CHUNK_BYTES // (8 * q))
    buffer = np.empty((min(n, rows), q))
    cross = np.zeros((q, q))
    sums = np.zeros(q)
    root = None if sample_weight is None else np.sqrt(np.asarray(sample_weight, dtype=float))
    for start in range(0, n, rows):
        block = buffer[: min(n, start + rows) - start]
        stop = start + len(block)
        np.subtract(X[start:stop], shift[:p], out=block[:, :p])
        np.subtract(Y[start:stop], shift[p:], out=block[:, p:])
        if root is None:
            sums += block.sum(axis=0)
        else:
            block *= root[start:stop, None]
            sums += root[start:stop] @ block
        cross += block.T @ block
    if root is not None:
        n = float(np.sum(sample_weight))
    offset = sums / n
    return n, shift + offset, cross - n * np.outer(offset, offset)


@dataclass
class Gram:
    """Cross-product summary of a block ``Z = [X | Y]``: row count, means, centred ``Z.T Z``.

    ``m2`` is the centred cross-product matrix ``(Z - mean).T @ (Z - mean)``, the
    matrix generalisation of a variance's M2, and two blocks merge by Chan, Golub &
    LeVeque's pairwise update ``m2 = m2_a + m2_b + n_a n_b / n * d d.T`` with ``d``
    the difference of their means, so that no raw ``Z.T Z`` (which cancels
    catastrophically when the means are large) is ever formed. One BLAS ``syrk`` per
    partition, and the solve at the root is the one scikit-learn's Ridge makes
    (Cholesky of ``X.T X + alpha I``).

    A summary merged with an :class:`RFactor` (a partition too ill-conditioned for
    cross-products) becomes one: see :meth:`rfactor`.

    Attributes
    ----------
    n : int
        Rows summarised.
    mean : ndarray of shape (n_columns,)
        Column means.
    m2 : ndarray of shape (n_columns, n_columns)
        Centred cross-products.
    n_x : int
        Leading columns of ``Z`` that are ``X``.
    y_ndim : int or None
        Dimensions of the regression target (1 or 2).
    dtype : numpy.dtype
        The dtype of the fused model's attributes (:func:`fit_dtype` of ``X``).
    report_train_score : float or None
        A least-squares leaf's own R² on its rows (:func:`own_r2`), for the
        partition report; None once merged and for the other uses.
    """

    n: int
    mean: np.ndarray
    m2: np.ndarray
    n_x: int
    y_ndim: int | None = None
    dtype: np.dtype = np.dtype(np.float64)
    rows: int | None = None
    #: a leaf's own R² for the partition report (not a statistic: never merged)
    report_train_score: float | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, X, Y, y_ndim=None, sample_weight=None):
        """The summary of the rows ``[X | Y]`` (``X`` and ``Y`` 2-D, row-aligned).

        With ``sample_weight``: weighted means and cross-products of the rows centred
        at them (scikit-learn's rescaling by the root of the weights), ``n`` the total
        weight and ``rows`` the row count.
        """
        n, mean, m2 = _cross_products(X, Y, sample_weight)
        rows = None if sample_weight is None else len(X)
        return cls(n, mean, m2, X.shape[1], y_ndim, fit_dtype(X), rows)

    @classmethod
    def merge(cls, parts):
        """Merge any number of summaries; with any :class:`RFactor` among them, by TSQR."""
        if any(isinstance(p, RFactor) for p in parts):
            return RFactor.merge(parts)
        n = sum(p.n for p in parts)
        mean = sum(p.n * p.mean for p in parts) / n
        m2 = sum(p.m2 for p in parts)
        for p in parts:
            d = p.mean - mean
            m2 = m2 + p.n * np.outer(d, d)
        merged = cls(n, mean, m2, parts[0].n_x, parts[0].y_ndim, _merged_dtype(parts))
        merged.rows = _merged_rows(parts)
        return merged

    def gram(self, fit_intercept):
        """``X.T X`` and ``X.T Y`` of the centred (or, without intercept, raw) columns."""
        m2, p = self.m2, self.n_x
        if not fit_intercept:
            m2 = m2 + self.n * np.outer(self.mean, self.mean)
        return m2[:p, :p], m2[:p, p:]

    def rfactor(self):
        """The same statistics as an :class:`RFactor` (``R.T R == m2``)."""
        return RFactor(
            self.n, self.mean, _psd_factor(self.m2), self.n_x, self.y_ndim, self.dtype, self.rows
        )


@dataclass
class ClassMoments:
    """Per class row count, mean and sum of squared deviations (M2) of each feature.

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        Sorted class labels.
    count : ndarray of shape (n_classes,)
    mean : ndarray of shape (n_classes, n_features)
    m2 : ndarray of shape (n_classes, n_features)
    dtype : numpy.dtype
        The dtype of the fused model's attributes (the partition models' ``theta_``).
    x_moments : tuple of (int, ndarray, ndarray) or None
        Where the rows were weighted (then ``count`` holds total weights): the
        unweighted row count, mean and M2 of each feature over all classes, from
        which scikit-learn's ``epsilon_`` is worked out (``np.var(X)``, unweighted).
    """

    classes: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    dtype: np.dtype = np.dtype(np.float64)
    x_moments: tuple | None = None

    @classmethod
    def merge(cls, parts):
        classes = _union([p.classes for p in parts])
        triples = [
            (
                _align(p.classes, p.count, classes)[:, None],
                _align(p.classes, p.mean, classes),
                _align(p.classes, p.m2, classes),
            )
            for p in parts
        ]
        count, mean, m2 = reduce(_chan, triples)
        moments = [p.x_moments for p in parts]
        x_moments = None if any(m is None for m in moments) else reduce(_chan, moments)
        return cls(classes, count[:, 0], mean, m2, _merged_dtype(parts), x_moments)


@dataclass
class ClassCounts:
    """Per class counts: class totals and count tables (one row per class).

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        Sorted class labels.
    class_count : ndarray of shape (n_classes,)
    tables : tuple of ndarray of shape (n_classes, width)
        Discrete naive Bayes: one table, the feature counts. CategoricalNB: one table
        per feature, one column per category; a partition that never saw a feature's
        highest categories has a narrower table, padded with zeros on merge.
    """

    classes: np.ndarray
    class_count: np.ndarray
    tables: tuple

    @classmethod
    def merge(cls, parts):
        classes = _union([p.classes for p in parts])
        tables = []
        for column in zip(*(p.tables for p in parts)):
            width = max(t.shape[1] for t in column)
            tables.append(
                sum(
                    _align(p.classes, np.pad(t, [(0, 0), (0, width - t.shape[1])]), classes)
                    for p, t in zip(parts, column)
                )
            )
        class_count = sum(_align(p.classes, p.class_count, classes) for p in parts)
        return cls(classes, class_count, tuple(tables))


@dataclass
class Moments:
    """Row count, mean and M2 of each feature (per-feature counts where NaNs were skipped).

    Attributes
    ----------
    n : int or ndarray of shape (n_features,)
    mean : ndarray of shape (n_features,) or None
        None when the scaler neither centres nor scales (only counts).
    m2 : ndarray of shape (n_features,) or None
        None when the scaler does not scale.
    """

    n: object
    mean: np.ndarray | None
    m2: np.ndarray | None

    @classmethod
    def merge(cls, parts):
        n = sum(np.asarray(p.n) for p in parts)
        if parts[0].mean is None:
            return cls(n, None, None)
        zero = np.zeros_like(parts[0].mean)
        triples = [(np.asarray(p.n), p.mean, zero if p.m2 is None else p.m2) for p in parts]
        _, mean, m2 = reduce(_chan, triples)
        return cls(n, mean, None if parts[0].m2 is None else m2)


@dataclass
class Extremes:
    """Row count and per-feature minima and maxima (NaN where a block had no value).

    Attributes
    ----------
    n : int
    low : ndarray of shape (n_features,) or None
    high : ndarray of shape (n_features,)
    """

    n: int
    low: np.ndarray | None
    high: np.ndarray

    @classmethod
    def merge(cls, parts):
        # fmin/fmax skip NaN, as nanmin/nanmax over all rows do
        low = None if parts[0].low is None else reduce(np.fmin, [p.low for p in parts])
        return cls(sum(p.n for p in parts), low, reduce(np.fmax, [p.high for p in parts]))


# --------------------------------------------------------------------------- helpers
def _global_classes(summary, meta):
    """The fused model's classes: ``meta["classes"]`` when known, else the union seen."""
    classes = meta.get("classes")
    if classes is None:
        return summary.classes
    classes = np.asarray(classes)
    missing = np.setdiff1d(summary.classes, classes)
    if missing.size:
        raise FusionError(f"the partitions saw classes {list(missing)} outside {list(classes)}")
    return classes


def _given_prior(template, n_classes, name):
    """The class prior given as a parameter (``priors``/``class_prior``), or None."""
    prior = getattr(template, name)
    if prior is None:
        return None
    prior = np.asarray(prior, dtype=float)
    if prior.shape != (n_classes,):
        raise FusionError(
            f"{type(template).__name__}({name}=...) has {prior.size} entries but the "
            f"data has {n_classes} classes"
        )
    return prior


# --------------------------------------------------------------------------- linear
def _check_linear(estimator):
    if getattr(estimator, "positive", False):
        return (
            "positive=True (non-negative least squares) is an iterative fit that merged "
            "statistics cannot reproduce; use positive=False"
        )
    solver = getattr(estimator, "solver", "auto")
    if solver not in DIRECT_RIDGE_SOLVERS:
        return (
            f"solver={solver!r} is iterative (its result depends on tol and max_iter), so "
            f"no merge reproduces it exactly; use solver in {DIRECT_RIDGE_SOLVERS}"
        )
    if getattr(estimator, "class_weight", None) is not None:
        return "class_weight is not supported (it reweights rows by global class counts)"
    return None


def _targets(model, y, info):
    """The least-squares targets: y as columns, or RidgeClassifier's ±1 class columns."""
    if not isinstance(model, RidgeClassifier):
        y = np.asarray(y, dtype=float)
        return y.reshape(len(y), -1), y.ndim
    classes = info.get("classes")
    if classes is None:
        raise FusionError(
            "exact fusion of RidgeClassifier needs the global class list "
            "(info['classes']) to binarize every partition's labels alike"
        )
    # LabelBinarizer(pos_label=1, neg_label=-1): one column for two classes
    columns = np.asarray(classes) if len(classes) > 2 else np.asarray(classes)[1:]
    return np.where(np.asarray(y)[:, None] == columns[None, :], 1.0, -1.0), 2


def _penalty(template):
    """The smallest ridge penalty (0 for LinearRegression): it bounds X.T X + alpha I below."""
    alpha = getattr(template, "alpha", 0.0)
    try:
        return max(float(np.min(np.asarray(alpha, dtype=float))), 0.0)
    except (TypeError, ValueError):
        return 0.0  # finalize says what is wrong with alpha


def _well_conditioned(gram, alpha):
    """Whether ``gram + alpha I`` is positive definite with cond <= :data:`GRAM_COND_LIMIT`."""
    values = linalg.eigvalsh(gram)
    low, high = values[0] + alpha, values[-1] + alpha
    return bool(low > 0 and high <= GRAM_COND_LIMIT * low)


def _summarize_linear(model, X, y, info, method="auto"):
    Y, y_ndim = _targets(model, y, info)
    X = np.asarray(X)
    weights = info.get("sample_weight")
    if method != "qr":
        summary = Gram.of(X, Y, y_ndim, weights)
        if method == "gram":
            return summary
        gram, _ = summary.gram(model.fit_intercept)
        if np.all(np.isfinite(gram)) and _well_conditioned(gram, _penalty(model)):
            return summary
    # ill-conditioned (or rank-deficient, or fewer rows than columns): cross-products
    # would lose X's small singular values, which the R factor of a QR keeps
    Z = np.hstack([np.asarray(X, dtype=float), Y])
    return RFactor.of(Z, X.shape[1], y_ndim, fit_dtype(X), weights)


def _summarize_least_squares(model, X, y, info, method="auto"):
    """The partition's least-squares summary, carrying its own R² for the report."""
    summary = _summarize_linear(model, X, y, info, method)
    if not isinstance(model, RidgeClassifier):  # its score is an accuracy, not an R²
        summary.report_train_score = own_r2(summary, model)
    return summary


def own_r2(summary, template):
    """R² of the least-squares fit of one summary's own rows, from the summary alone.

    The coefficients ``w`` are solved from ``summary`` as :meth:`Exact.finalize`
    solves the merged statistics (so, for a partition's summary, they are what
    ``template`` fitted on that partition alone would find). With ``t = [w | -I]``
    the residual sum of squares of the rows ``Z = [X | Y]`` is ``t.T Z.T Z t``: read
    from the cross-products (or ``|R t|²`` from the R factor), centred where the model
    fits an intercept; the total is the targets' centred sum of squares. Gives
    scikit-learn's ``score`` (``r2_score``, averaged over several targets) without
    predicting a row; None where the solve fails.
    """
    p, fit_intercept = summary.n_x, template.fit_intercept
    try:
        if isinstance(template, LinearRegression):
            coef = _lstsq(summary, fit_intercept, getattr(template, "tol", None))[0]
        else:
            coef = _ridge_coef(summary, template)[0]
    except (linalg.LinAlgError, FusionError, ValueError):
        return None
    coef = np.reshape(coef, (-1, p))
    t = np.vstack([coef.T, -np.eye(len(coef))])
    if isinstance(summary, RFactor):
        r = summary.r if fit_intercept else summary.uncentred()
        ss_res = np.sum((r @ t) ** 2, axis=0)
        ss_tot = np.sum(summary.r[:, p:] ** 2, axis=0)
    else:
        m2 = summary.m2
        if not fit_intercept:
            m2 = m2 + summary.n * np.outer(summary.mean, summary.mean)
        # a sum of squares: rounding of the cross-products must not make it negative
        ss_res = np.clip(np.sum(t * (m2 @ t), axis=0), 0, None)
        ss_tot = np.diag(summary.m2)[p:]
    return float(np.mean(r2_from_sums(ss_res, ss_tot)))


def _ridge_alpha(template, n_targets):
    alpha = np.asarray(template.alpha, dtype=float).ravel()
    if alpha.size not in (1, n_targets):
        raise FusionError(
            f"{type(template).__name__}(alpha=...) has {alpha.size} penalties but there "
            f"are {n_targets} targets"
        )
    return np.broadcast_to(alpha, (n_targets,))


def _ridge_coef(summary, template):
    """Ridge's coefficients from a :class:`Gram` or an :class:`RFactor` summary.

    Solves ``(X.T X + alpha I) w = X.T y`` as scikit-learn's ``cholesky`` solver does
    (also for ``auto``) and falls back, as it does, to the SVD solution when the
    system is singular; ``solver="svd"`` takes the SVD route directly: from the R
    factor (whose singular values are ``X``'s) or from the eigendecomposition of
    ``X.T X`` (``(X.T X + alpha I)^-1 X.T y`` is the same solution).
    """
    p = summary.n_x
    n_targets = summary.mean.size - p
    alpha = _ridge_alpha(template, n_targets)
    gram, xy = summary.gram(template.fit_intercept)
    if template.solver != "svd":
        eye = np.eye(len(gram))
        try:
            if np.all(alpha == alpha[0]):
                return linalg.solve(gram + alpha[0] * eye, xy, assume_a="pos").T, "cholesky"
            return np.vstack(
                [
                    linalg.solve(gram + a * eye, xy[:, j], assume_a="pos")
                    for j, a in enumerate(alpha)
                ]
            ), "cholesky"
        except linalg.LinAlgError:
            pass
    if isinstance(summary, RFactor):
        r = summary.r if template.fit_intercept else summary.uncentred()
        rx, ry = r[:, :p], r[:, p:]
        # ry = U.T y for X's left singular vectors U, since Q has orthonormal columns
        u, s, vt = linalg.svd(rx, full_matrices=False)
        keep = s > 1e-15
        d = np.zeros((s.size, n_targets))
        d[keep] = s[keep, None] / (s[keep, None] ** 2 + alpha)
        return (vt.T @ (d * (u.T @ ry))).T, "svd"
    values, vectors = linalg.eigh(gram)
    keep = np.sqrt(np.clip(values, 0, None)) > 1e-15
    v = vectors[:, keep]
    return (v @ ((v.T @ xy) / (values[keep, None] + alpha))).T, "svd"


def _lstsq(summary, fit_intercept, cond):
    """LinearRegression's minimum-norm least squares: coefficients, rank, singular values.

    From an R factor, ``scipy.linalg.lstsq`` on it (``X`` and ``R`` differ by an
    orthonormal ``Q`` only, so they share singular values and rank); from
    cross-products, the eigendecomposition of ``X.T X`` (singular values are the
    square roots of its eigenvalues), with lstsq's rank cutoff ``cond``.
    """
    p = summary.n_x
    # (the rows, not the total weight, where the rows were weighted)
    n_singular = min(summary.n if summary.rows is None else summary.rows, p)
    if isinstance(summary, RFactor):
        r = summary.r if fit_intercept else summary.uncentred()
        coef, _, rank, singular = linalg.lstsq(r[:, :p], r[:, p:], cond=cond)
        return coef.T, int(rank), singular[:n_singular]
    gram, xy = summary.gram(fit_intercept)
    values, vectors = linalg.eigh(gram)
    values, vectors = values[::-1], vectors[:, ::-1]
    singular = np.sqrt(np.clip(values, 0, None))
    cutoff = np.finfo(float).eps if cond is None else cond
    keep = singular > cutoff * singular[0]
    v = vectors[:, keep]
    coef = v @ ((v.T @ xy) / values[keep, None])
    return coef.T, int(keep.sum()), singular[:n_singular]


def _finalize_linear(summary, template, meta):
    p = summary.n_x
    estimator = clone(template)
    if isinstance(template, RidgeClassifier):
        # classes_ is a property over a label binarizer that only fit() sets up:
        # prime it on one row per class, then put the fused parameters in place
        classes = np.asarray(meta["classes"])
        with quiet_warnings():
            estimator.fit(np.zeros((len(classes), p)), classes)
    if isinstance(template, LinearRegression):
        coef, estimator.rank_, estimator.singular_ = _lstsq(
            summary, template.fit_intercept, getattr(template, "tol", None)
        )
    else:
        coef, solver = _ridge_coef(summary, template)
        estimator.n_iter_ = None
        estimator.solver_ = solver
    # LinearRegression keeps y's shape; Ridge (so RidgeClassifier too) ravels one target
    if summary.y_ndim == 1 or (len(coef) == 1 and not isinstance(template, LinearRegression)):
        coef = coef.ravel()
    if template.fit_intercept:
        intercept = summary.mean[p:] - summary.mean[:p] @ coef.T
        if summary.y_ndim == 1:
            intercept = intercept[0]
        intercept = _cast(intercept, summary.dtype)
    else:
        intercept = 0.0
    # scikit-learn keeps float32 input's dtype in the fitted attributes
    estimator.coef_ = _cast(coef, summary.dtype)
    estimator.intercept_ = intercept
    if isinstance(template, LinearRegression):
        estimator.singular_ = _cast(estimator.singular_, summary.dtype)
    return stamp_inputs(estimator, meta)


# --------------------------------------------------------------------------- PCA / SVD
def _check_decomposition(estimator):
    if isinstance(estimator, PCA) and isinstance(estimator.n_components, str):
        return (
            f"n_components={estimator.n_components!r} (Minka's dimension estimate) is not "
            "supported; give an int, a fraction in (0, 1) or None"
        )
    return None


def _summarize_decomposition(model, X, y, info):
    return RFactor.of(X, np.shape(X)[1])


def _svd(r, k):
    """The first ``k`` singular values and right singular vectors of ``r``, signs as
    scikit-learn's PCA/TruncatedSVD fix them (largest loading of each row positive)."""
    _, s, vt = linalg.svd(r, full_matrices=False)
    _, vt = svd_flip(None, vt[:k], u_based_decision=False)
    return s[:k], vt


def _n_components(template, ratio, n_samples, n_features):
    n_max = min(n_samples, n_features)
    n = template.n_components
    if n is None:
        # scikit-learn's arpack solver cannot return all min(n_samples, n_features)
        return n_max - 1 if template.svd_solver == "arpack" else n_max
    if isinstance(n, numbers.Integral):
        if not 0 <= n <= n_max:
            raise FusionError(
                f"PCA(n_components={n}) must be between 0 and min(n_samples, n_features)"
                f"={n_max} with n_samples={n_samples}, n_features={n_features}"
            )
        return int(n)
    # the fewest components whose cumulated explained variance ratio exceeds n
    return int(np.searchsorted(np.cumsum(ratio), n, side="right") + 1)


def _finalize_pca(summary, template, meta):
    n, p = summary.n, summary.r.shape[1]
    n_max = min(n, p)
    s, components = _svd(summary.r, n_max)
    variance = s**2 / (n - 1)
    ratio = variance / variance.sum()
    k = _n_components(template, ratio, n, p)
    pca = clone(template)
    dtype = summary.dtype
    pca.mean_ = _cast(summary.mean, dtype)
    pca.n_samples_ = n
    pca.n_components_ = k
    pca.components_ = _cast(components[:k].copy(), dtype)
    pca.explained_variance_ = _cast(variance[:k].copy(), dtype)
    pca.explained_variance_ratio_ = _cast(ratio[:k].copy(), dtype)
    pca.singular_values_ = _cast(s[:k].copy(), dtype)
    pca.noise_variance_ = _cast(float(variance[k:].mean()) if k < n_max else 0.0, dtype)
    return stamp_inputs(pca, meta)


def _finalize_truncated_svd(summary, template, meta):
    n, p = summary.n, summary.r.shape[1]
    k = template.n_components
    if not 1 <= k <= min(n, p):
        raise FusionError(
            f"TruncatedSVD(n_components={k}) must be between 1 and min(n_samples, "
            f"n_features)={min(n, p)}"
        )
    s, components = _svd(summary.uncentred(), k)
    svd = clone(template)
    # the variance of X @ v is |Xc @ v|^2 / n = |Rc @ v|^2 / n: no cancellation
    variance = np.sum((summary.r @ components.T) ** 2, axis=0) / n
    ratio = variance / (np.sum(summary.r**2) / n)
    for name, value in [
        ("components_", components),
        ("singular_values_", s),
        ("explained_variance_", variance),
        ("explained_variance_ratio_", ratio),
    ]:
        setattr(svd, name, _cast(value, summary.dtype))
    return stamp_inputs(svd, meta)


def _finalize_decomposition(summary, template, meta):
    if isinstance(template, PCA):
        return _finalize_pca(summary, template, meta)
    return _finalize_truncated_svd(summary, template, meta)


# --------------------------------------------------------------------------- naive Bayes
def _summarize_gaussian_nb(model, X, y, info):
    count = np.asarray(model.class_count_, dtype=float)
    # var_ holds the partition's own epsilon_; the raw variance is what merges
    var = np.asarray(model.var_, dtype=float) - model.epsilon_
    x_moments = None
    if info.get("sample_weight") is not None:
        # weighted class moments, but scikit-learn's epsilon_ from the rows unweighted
        rows = np.asarray(X, dtype=float)
        mean = rows.mean(axis=0)
        x_moments = (len(rows), mean, ((rows - mean) ** 2).sum(axis=0))
    return ClassMoments(
        np.asarray(model.classes_),
        count,
        model.theta_,
        var * count[:, None],
        model.theta_.dtype,
        x_moments,
    )


def _finalize_gaussian_nb(summary, template, meta):
    classes = _global_classes(summary, meta)
    count = _align(summary.classes, summary.count, classes)
    mean = _align(summary.classes, summary.mean, classes)
    m2 = _align(summary.classes, summary.m2, classes)
    # variance of each feature over all rows, merged from the classes: var_smoothing
    # applies once, to the global variance, as a single fit applies it
    n_all, _, m2_all = reduce(_chan, [(c, mu, s) for c, mu, s in zip(count, mean, m2)])
    if summary.x_moments is not None:
        n_all, _, m2_all = summary.x_moments
    epsilon = template.var_smoothing * np.max(m2_all / n_all)
    nb = clone(template)
    dtype = summary.dtype
    nb.classes_ = classes
    nb.class_count_ = _cast(count, dtype)
    nb.theta_ = _cast(mean, dtype)
    nb.var_ = _cast(m2 / np.where(count > 0, count, 1)[:, None] + epsilon, dtype)
    nb.epsilon_ = _cast(epsilon, dtype)
    prior = _given_prior(template, len(classes), "priors")
    if prior is None:
        prior = _cast(count / count.sum(), dtype)
    elif not np.isclose(prior.sum(), 1.0) or np.any(prior < 0):
        raise FusionError("GaussianNB(priors=...) must be non-negative and sum to 1")
    nb.class_prior_ = prior
    return stamp_inputs(nb, meta)


def _summarize_discrete_nb(model, X, y, info):
    if isinstance(model, CategoricalNB):
        tables = tuple(np.asarray(t, dtype=float) for t in model.category_count_)
    else:
        tables = (np.asarray(model.feature_count_, dtype=float),)
    return ClassCounts(np.asarray(model.classes_), np.asarray(model.class_count_, float), tables)


def _alpha(template, n_features):
    """The smoothing ``alpha`` as naive Bayes validates it at fit."""
    alpha = template.alpha
    if not isinstance(alpha, numbers.Real):
        alpha = np.asarray(alpha, dtype=float)
        if alpha.shape != (n_features,):
            raise FusionError(
                f"{type(template).__name__}(alpha=...) must hold one value per feature "
                f"({n_features}); got shape {alpha.shape}"
            )
    if np.min(alpha) < 1e-10 and not template.force_alpha:
        warnings.warn(
            "alpha too small will result in numeric errors, setting alpha = 1.0e-10. "
            "Use `force_alpha=True` to keep alpha unchanged.",
            UserWarning,
            stacklevel=3,
        )
        alpha = np.maximum(alpha, 1e-10)
    return alpha


def _feature_log_prob(template, fc, cc, alpha):
    """Smoothed log probabilities of each naive Bayes variant (scikit-learn's user guide)."""
    if isinstance(template, ComplementNB):
        complement = fc.sum(axis=0) + alpha - fc
        logged = np.log(complement / complement.sum(axis=1, keepdims=True))
        return logged / logged.sum(axis=1, keepdims=True) if template.norm else -logged
    smoothed = fc + alpha
    if isinstance(template, BernoulliNB):
        return np.log(smoothed) - np.log(cc + 2 * alpha)[:, None]
    return np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True))


def _finalize_discrete_nb(summary, template, meta):
    classes = _global_classes(summary, meta)
    cc = _align(summary.classes, summary.class_count, classes)
    tables = [_align(summary.classes, t, classes) for t in summary.tables]
    alpha = _alpha(template, meta["n_features_in_"])
    nb = clone(template)
    nb.classes_ = classes
    nb.class_count_ = cc
    if isinstance(template, CategoricalNB):
        nb.category_count_ = tables
        nb.n_categories_ = np.array([t.shape[1] for t in tables], dtype=np.int64)
        nb.feature_log_prob_ = [_feature_log_prob(template, t, cc, alpha) for t in tables]
    else:
        nb.feature_count_ = tables[0]
        nb.feature_log_prob_ = _feature_log_prob(template, tables[0], cc, alpha)
        if isinstance(template, ComplementNB):
            nb.feature_all_ = tables[0].sum(axis=0)
    prior = _given_prior(template, len(classes), "class_prior")
    with np.errstate(divide="ignore"):
        if prior is not None:
            nb.class_log_prior_ = np.log(prior)
        elif template.fit_prior:
            nb.class_log_prior_ = np.log(cc) - np.log(cc.sum())
        else:
            nb.class_log_prior_ = np.full(len(classes), -np.log(len(classes)))
    return stamp_inputs(nb, meta)


# --------------------------------------------------------------------------- scalers
def _summarize_standard_scaler(model, X, y, info):
    n = np.asarray(model.n_samples_seen_)
    if model.mean_ is None:
        return Moments(n, None, None)
    empty = n == 0
    mean = np.where(empty, 0.0, model.mean_)
    m2 = None if model.var_ is None else np.where(empty, 0.0, model.var_ * n)
    return Moments(n, mean, m2)


def _finalize_standard_scaler(summary, template, meta):
    scaler = clone(template)
    n = summary.n
    # one count for all features unless NaNs made them differ, as scikit-learn keeps it
    scaler.n_samples_seen_ = n if np.ndim(n) == 0 or np.ptp(n) else n[0]
    # a feature with no value at all (all NaN) has NaN statistics, as in scikit-learn
    unseen = np.asarray(n) == 0
    scaler.mean_ = None if summary.mean is None else np.where(unseen, np.nan, summary.mean)
    scaler.var_ = (
        None if summary.m2 is None else np.where(unseen, np.nan, summary.m2 / np.where(n > 0, n, 1))
    )
    scaler.scale_ = None
    if template.with_std:
        var, mean, seen = scaler.var_, scaler.mean_, scaler.n_samples_seen_
        # a variance within the rounding error of the two-pass algorithm is a
        # constant feature (Chan, Golub & LeVeque's bound), which is not scaled
        eps = np.finfo(np.float64).eps
        constant = var <= seen * eps * var + (seen * mean * eps) ** 2
        scaler.scale_ = np.where(constant, 1.0, np.sqrt(var))
    return stamp_inputs(scaler, meta)


def _summarize_extremes(model, X, y, info):
    if isinstance(model, MaxAbsScaler):
        high = np.asarray(model.max_abs_, dtype=fit_dtype(model.max_abs_))
        return Extremes(int(model.n_samples_seen_), None, high)
    return Extremes(int(model.n_samples_seen_), model.data_min_, model.data_max_)


def _nonzero_scale(scale):
    # a range or maximum within rounding of zero scales by 1, not by its inverse
    return np.where(scale < 10 * np.finfo(scale.dtype).eps, 1.0, scale)


def _finalize_extremes(summary, template, meta):
    scaler = clone(template)
    scaler.n_samples_seen_ = summary.n
    if isinstance(template, MaxAbsScaler):
        scaler.max_abs_ = summary.high
        scaler.scale_ = _nonzero_scale(summary.high)
        return stamp_inputs(scaler, meta)
    low, high = template.feature_range
    scaler.data_min_ = summary.low
    scaler.data_max_ = summary.high
    scaler.data_range_ = summary.high - summary.low
    scaler.scale_ = (high - low) / _nonzero_scale(scaler.data_range_)
    scaler.min_ = low - summary.low * scaler.scale_
    return stamp_inputs(scaler, meta)


# --------------------------------------------------------------------------- families
FAMILIES = (
    Family(
        types=(LinearRegression, Ridge, RidgeClassifier),
        summarize=_summarize_least_squares,
        finalize=_finalize_linear,
        check=_check_linear,
        takes_method=True,
    ),
    Family(
        types=(PCA, TruncatedSVD),
        summarize=_summarize_decomposition,
        finalize=_finalize_decomposition,
        check=_check_decomposition,
    ),
    Family(
        types=(GaussianNB,),
        summarize=_summarize_gaussian_nb,
        finalize=_finalize_gaussian_nb,
        from_rows=False,
    ),
    Family(
        types=(MultinomialNB, ComplementNB, BernoulliNB, CategoricalNB),
        summarize=_summarize_discrete_nb,
        finalize=_finalize_discrete_nb,
        from_rows=False,
    ),
    Family(
        types=(StandardScaler,),
        summarize=_summarize_standard_scaler,
        finalize=_finalize_standard_scaler,
        from_rows=False,
    ),
    Family(
        types=(MinMaxScaler, MaxAbsScaler),
        summarize=_summarize_extremes,
        finalize=_finalize_extremes,
        from_rows=False,
    ),
    *ENCODER_FAMILIES,
)


def exact_estimator_names():
    """Names of the estimators that exact fusion supports."""
    return [t.__name__ for family in FAMILIES + COMPOSITE_FAMILIES for t in family.types]


def _family(estimator):
    # exact types only: a subclass may change what fit computes
    for family in FAMILIES + COMPOSITE_FAMILIES:
        if type(estimator) in family.types:
            return family
    return None


def _supported(estimator):
    """Why ``estimator`` cannot be fused exactly, or None (the composites ask per part)."""
    family = _family(estimator)
    return Exact.requirement if family is None else family.check(estimator)


#: ColumnTransformer and FeatureUnion of the families above (and of each other)
COMPOSITE_FAMILIES = composite_families(_family, _supported)


class Exact(Fuser):
    """Exact fusion: merge sufficient statistics, so the fused model is the global fit.

    Each partition is summarised by statistics that merge exactly, whatever the
    partitioning and the fan-in of the tree (``split_every``), and the root solves for
    the model once, as scikit-learn does from all of the rows. The fused model equals
    the single-process fit up to floating-point rounding (PCA and TruncatedSVD: the
    exact, full-SVD solution, with scikit-learn's sign convention). The statistics
    carry their own row and class counts: :func:`daskfuse.fuse` refuses ``weights``.

    Supported estimators and what each partition contributes:

    - ``LinearRegression``, ``Ridge``, ``RidgeClassifier`` (``solver`` in ``"auto"``,
      ``"cholesky"``, ``"svd"``; ``positive=False``; ``class_weight=None``): the row
      count, column means and centred cross-products of ``[X | Y]`` (a
      :class:`Gram`), or the R factor of a QR of the centred ``[X | Y]`` (an
      :class:`RFactor`), as ``method`` says; ``RidgeClassifier``'s ``Y`` holds its
      ±1 class columns.
    - ``PCA`` (``n_components`` an int, a fraction or None; ``whiten`` either way) and
      ``TruncatedSVD``: the R factor of the centred ``X``, merged as in TSQR.
    - ``GaussianNB``: per class counts, means and sums of squared deviations, merged by
      Chan, Golub & LeVeque's update; ``epsilon_`` is added once, at the root.
    - ``MultinomialNB``, ``ComplementNB``, ``BernoulliNB``, ``CategoricalNB``: per class
      counts, which add.
    - ``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``: counts and moments, or
      minima and maxima.
    - ``OneHotEncoder``, ``OrdinalEncoder`` (every parameter: given or found
      ``categories``, ``handle_unknown``, ``drop``, ``min_frequency``/``max_categories``
      from the merged counts, ``unknown_value``, ``encoded_missing_value``): per column
      the categories and their counts, in scikit-learn's order (missing last).
    - ``SimpleImputer`` (``strategy`` ``"mean"``, ``"most_frequent"`` (ties: the
      smallest value), ``"constant"``; any ``missing_values``, ``keep_empty_features``,
      ``add_indicator``): missing flags, and sums or value counts. ``"median"`` is
      refused: no summary of the partitions gives the median of all rows.
    - ``KBinsDiscretizer(strategy="uniform")``: minima and maxima (the bins of all
      rows, as scikit-learn computes them with ``subsample=None``); ``"quantile"`` and
      ``"kmeans"`` are refused.
    - ``PolynomialFeatures``, ``FunctionTransformer`` and
      ``RobustScaler(with_centering=False, with_scaling=False)``: stateless, fitted
      from the input's shape and names; a centring or scaling RobustScaler is refused
      (quantiles).
    - ``ColumnTransformer`` and ``FeatureUnion`` whose parts are any of these: the
      parts' summaries; ``sparse_output_`` from the density over all rows.

    Per-class statistics are aligned by class label, so a partition may lack classes.
    With ``fit``'s ``sample_weight`` the statistics are weighted as scikit-learn's own
    fit weighs them (least squares: centred at the weighted means, rows scaled by the
    root of their weights; naive Bayes and ``StandardScaler``: their fitted weighted
    counts), so the fused model equals the estimator fitted on all rows with the same
    weights; PCA, TruncatedSVD and the min/max scalers take no sample weights.

    Parameters
    ----------
    method : {"auto", "gram", "qr"}, default="auto"
        How least-squares partitions (``LinearRegression``, ``Ridge``,
        ``RidgeClassifier``) are summarised:

        - ``"gram"``: centred cross-products ``X.T X``, ``X.T Y``, one BLAS ``syrk``
          pass over the rows, merged by Chan's update, solved at the root as
          scikit-learn's Ridge solves (Cholesky of ``X.T X + alpha I``). Rounding
          errors grow with cond(X)², so it is exact only for a well-conditioned X.
        - ``"qr"``: the R factor of a QR of the centred ``[X | Y]``, merged by TSQR
          (errors grow with cond(X) only, as for scikit-learn's ``lstsq``); about
          twice the work of ``"gram"`` and slower BLAS.
        - ``"auto"``: cross-products for each partition whose ``X.T X + alpha I``
          has a condition number of at most 1e8 (cond(X) <= 1e4), the R factor for
          the others; a merge that meets an R factor continues as TSQR. A
          rank-deficient or near-collinear X is ill-conditioned in every partition
          (a direction that nearly annihilates all rows nearly annihilates each
          partition's), so LinearRegression's minimum-norm solution, ``rank_`` and
          ``singular_`` come from R factors, as scikit-learn's from ``lstsq``.

        PCA and TruncatedSVD always use R factors (their small components need
        them); the other families ignore ``method``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from daskfuse import FusedRegressor
    >>> from daskfuse.fusion.exact import Exact
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> y = X @ [1.0, 2.0, 3.0] + rng.normal(size=300)
    >>> fused = FusedRegressor(LinearRegression(), fusion=Exact(), n_partitions=4).fit(X, y)
    >>> single = LinearRegression().fit(X, y)
    >>> bool(np.allclose(fused.fused_estimator_.coef_, single.coef_, rtol=1e-10))
    True
    """

    name = "exact"
    requirement = (
        f"exact fusion merges sufficient statistics of {', '.join(exact_estimator_names())}"
    )

    def __init__(self, method="auto"):
        if method not in LEAST_SQUARES_METHODS:
            raise ValueError(
                f"Exact(method=...) must be one of {', '.join(map(repr, LEAST_SQUARES_METHODS))}"
                f"; got {method!r}"
            )
        self.method = method

    def _params(self):
        return {"method": self.method}

    def supports(self, estimator):
        family = _family(estimator)
        return family is not None and family.check(estimator) is None

    def unsupported_reason(self, estimator):
        """Why ``estimator`` (or its parameters) cannot be fused exactly, or None."""
        family = _family(estimator)
        return self.requirement if family is None else family.check(estimator)

    def tags(self, estimator):
        """What the family of ``estimator`` needs.

        The families summarised from the rows (linear least squares, PCA,
        TruncatedSVD) are not fitted (``needs_fit`` false) and cannot fuse fitted
        models; those read from a fitted model (naive Bayes, scalers) are, and can
        (``from_models``). Only RidgeClassifier binarizes its targets against the
        global classes (``needs_classes``). Per-class statistics merge by label, so
        a partition may hold one class only (``single_class_partitions``).

        Parameters
        ----------
        estimator : estimator
            The unfitted template.

        Returns
        -------
        FuserTags
        """
        family = _family(estimator)
        from_rows = family is not None and family.from_rows
        from_models = family is not None and not from_rows
        if family is not None and family.from_models is not None:
            from_models = family.from_models
        return replace(
            super().tags(estimator),
            needs_fit=not from_rows,
            needs_classes=isinstance(estimator, RidgeClassifier),
            from_models=from_models,
            single_class_partitions=True,
            # sufficient statistics merge exactly: partial_fit equals a fit on all rows
            partial_fit_reason=None,
            given_weights_reason=(
                f"{self!r} merges the models' own statistics (their row and class "
                "counts weigh them exactly) and has no use for other weights"
            ),
            # every family whose estimator's fit takes sample_weight weighs the
            # statistics as that fit does (PCA, TruncatedSVD and the min/max scalers
            # take none, and are refused for that)
            sample_weight_reason=None,
        )

    def summarize(self, estimator, X, y, info):
        """Summarise one partition.

        Parameters
        ----------
        estimator : estimator or None
            The partition's fitted model; None where it was not fitted, and the
            unfitted template is then ``info["template"]``.
        X : ndarray of shape (n_rows, n_features) or None
            The partition's rows (None when fusing fitted models).
        y : ndarray or None
            Its targets (None for transformers).
        info : dict
            ``classes`` (the global class list, for RidgeClassifier), and the other
            keys of the Fuser protocol.

        Returns
        -------
        summary : Gram, RFactor, ClassMoments, ClassCounts, Moments or Extremes
        """
        model = estimator if estimator is not None else info.get("template")
        family = _family(model)
        if family is None:
            raise FusionError(
                f"{self!r} cannot summarise {type(model).__name__}: {self.requirement}"
            )
        name = type(model).__name__
        if family.from_rows and X is None and not family.from_models:
            raise FusionError(
                f"{self!r} needs the training rows of {name} (it merges statistics of "
                f"the rows), not only a fitted model; fit with daskfuse's Fused* "
                "estimators instead"
            )
        if not family.from_rows and estimator is None:
            raise FusionError(f"{self!r} reads {name}'s statistics from a fitted model")
        if family.takes_method:
            return family.summarize(model, X, y, info, self.method)
        return family.summarize(model, X, y, info)

    def combine(self, summaries):
        """Merge any number of summaries of one family (associative).

        Least-squares summaries may mix :class:`Gram` and :class:`RFactor` (under
        ``method="auto"``); the merge is then an :class:`RFactor`.
        """
        return type(summaries[0]).merge(summaries)

    def finalize(self, summary, template, meta):
        """Solve for the fused model: a fitted clone of ``template``."""
        return _family(template).finalize(summary, template, meta)
