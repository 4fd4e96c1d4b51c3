"""Exact fusion: merge sufficient statistics, so the fused model is the global fit.

Every family summarises a partition by statistics that add up exactly under any
grouping of the partitions (a monoid), and the root solves for the model once, from
the merged statistics, the way scikit-learn solves it from all of the rows:

==========================================  =============================================
family                                      summary (``combine``)
==========================================  =============================================
LinearRegression, Ridge, RidgeClassifier    :class:`RFactor` of the centred ``[X | Y]``:
PCA, TruncatedSVD                           n, column means and the R factor of a QR
                                            (TSQR: stack the R factors and the mean
                                            corrections, QR again)
GaussianNB                                  :class:`ClassMoments`: per class n, mean and
                                            M2 (Chan, Golub & LeVeque's pairwise update)
MultinomialNB, ComplementNB, BernoulliNB,   :class:`ClassCounts`: per class counts
CategoricalNB                               (added; category tables padded)
StandardScaler                              :class:`Moments`: n, mean, M2 per feature
MinMaxScaler, MaxAbsScaler                  :class:`Extremes`: n, minima, maxima
==========================================  =============================================

Nothing is ever an average of averages, and nothing that a single fit applies once
(GaussianNB's ``epsilon_`` smoothing, Ridge's penalty, the log probabilities of naive
Bayes) is applied per partition. Per-class statistics are aligned by class label, so
a partition may lack classes.

The linear and decomposition families are computed from the rows (the R factor of a
QR of the partition); naive Bayes and the scalers are read from each partition's
fitted model (their public fitted attributes are sufficient statistics). See
:meth:`Exact.needs_fit_for`.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
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

from .._quiet import quiet_warnings
from ..exceptions import FusionError
from .base import Fuser

__all__ = ["ClassCounts", "ClassMoments", "Exact", "Extremes", "Moments", "RFactor"]

#: Ridge solvers that solve the normal equations directly (no tol, no iterations)
DIRECT_RIDGE_SOLVERS = ("auto", "cholesky", "svd")


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
    """

    n: int
    mean: np.ndarray
    r: np.ndarray
    n_x: int
    y_ndim: int | None = None

    @classmethod
    def of(cls, Z, n_x, y_ndim=None):
        """The summary of the rows ``Z``."""
        Z = np.asarray(Z, dtype=float)
        mean = Z.mean(axis=0)
        return cls(len(Z), mean, np.linalg.qr(Z - mean, mode="r"), n_x, y_ndim)

    @classmethod
    def merge(cls, parts):
        """Merge any number of summaries (associative up to rounding)."""
        n = sum(p.n for p in parts)
        mean = sum(p.n * p.mean for p in parts) / n
        stack = [p.r for p in parts] + [np.sqrt(p.n) * (p.mean - mean)[None] for p in parts]
        r = np.linalg.qr(np.vstack(stack), mode="r")
        return cls(n, mean, r, parts[0].n_x, parts[0].y_ndim)

    def uncentred(self):
        """R factor of ``Z`` itself (not centred): ``Z.T Z = Rc.T Rc + n mean mean.T``."""
        return np.linalg.qr(np.vstack([self.r, np.sqrt(self.n) * self.mean[None]]), mode="r")


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
    """

    classes: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

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
        return cls(classes, count[:, 0], mean, m2)


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
def _stamp(estimator, meta):
    estimator.n_features_in_ = meta["n_features_in_"]
    if meta.get("feature_names_in_") is not None:
        estimator.feature_names_in_ = meta["feature_names_in_"]
    return estimator


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


def _summarize_linear(model, X, y, info):
    Y, y_ndim = _targets(model, y, info)
    X = np.asarray(X, dtype=float)
    return RFactor.of(np.hstack([X, Y]), X.shape[1], y_ndim)


def _ridge_coef(rx, ry, template):
    """Ridge's coefficients from ``X = Q rx``, ``Y = Q ry`` (the same Q).

    Solves ``(X.T X + alpha I) w = X.T y`` as scikit-learn's ``cholesky`` solver does
    (also for ``auto``) and falls back, as it does, to the SVD solution when the
    system is singular; ``solver="svd"`` takes the SVD route directly.
    """
    n_targets = ry.shape[1]
    alpha = np.asarray(template.alpha, dtype=float).ravel()
    if alpha.size not in (1, n_targets):
        raise FusionError(
            f"{type(template).__name__}(alpha=...) has {alpha.size} penalties but there "
            f"are {n_targets} targets"
        )
    alpha = np.broadcast_to(alpha, (n_targets,))
    if template.solver != "svd":
        gram, xy = rx.T @ rx, rx.T @ ry
        eye = np.eye(len(gram))
        try:
            if np.all(alpha == alpha[0]):
                return linalg.solve(gram + alpha[0] * eye, xy, assume_a="pos").T, "cholesky"
            return np.vstack(
                [linalg.solve(gram + a * eye, xy[:, j], assume_a="pos") for j, a in
                 enumerate(alpha)]
            ), "cholesky"
        except linalg.LinAlgError:
            pass
    # ry = U.T y for X's left singular vectors U, since Q has orthonormal columns
    u, s, vt = linalg.svd(rx, full_matrices=False)
    keep = s > 1e-15
    d = np.zeros((s.size, n_targets))
    d[keep] = s[keep, None] / (s[keep, None] ** 2 + alpha)
    return (vt.T @ (d * (u.T @ ry))).T, "svd"


def _finalize_linear(summary, template, meta):
    p = summary.n_x
    fit_intercept = template.fit_intercept
    r = summary.r if fit_intercept else summary.uncentred()
    rx, ry = r[:, :p], r[:, p:]
    estimator = clone(template)
    if isinstance(template, RidgeClassifier):
        # classes_ is a property over a label binarizer that only fit() sets up:
        # prime it on one row per class, then put the fused parameters in place
        classes = np.asarray(meta["classes"])
        with quiet_warnings():
            estimator.fit(np.zeros((len(classes), p)), classes)
    if isinstance(template, LinearRegression):
        # lstsq on R gives X's singular values and rank: X and R differ by an
        # orthonormal Q only
        coef, _, rank, singular = linalg.lstsq(rx, ry, cond=getattr(template, "tol", None))
        coef = coef.T
        estimator.rank_ = int(rank)
        estimator.singular_ = singular[: min(summary.n, p)]
    else:
        coef, solver = _ridge_coef(rx, ry, template)
        estimator.n_iter_ = None
        estimator.solver_ = solver
    # LinearRegression keeps y's shape; Ridge (so RidgeClassifier too) ravels one target
    if summary.y_ndim == 1 or (len(coef) == 1 and not isinstance(template, LinearRegression)):
        coef = coef.ravel()
    if fit_intercept:
        intercept = summary.mean[p:] - summary.mean[:p] @ coef.T
        if summary.y_ndim == 1:
            intercept = intercept[0]
    else:
        intercept = 0.0
    estimator.coef_ = coef
    estimator.intercept_ = intercept
    return _stamp(estimator, meta)


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
    pca.mean_ = summary.mean
    pca.n_samples_ = n
    pca.n_components_ = k
    pca.components_ = components[:k].copy()
    pca.explained_variance_ = variance[:k].copy()
    pca.explained_variance_ratio_ = ratio[:k].copy()
    pca.singular_values_ = s[:k].copy()
    pca.noise_variance_ = float(variance[k:].mean()) if k < n_max else 0.0
    return _stamp(pca, meta)


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
    svd.components_ = components
    svd.singular_values_ = s
    # the variance of X @ v is |Xc @ v|^2 / n = |Rc @ v|^2 / n: no cancellation
    svd.explained_variance_ = np.sum((summary.r @ components.T) ** 2, axis=0) / n
    svd.explained_variance_ratio_ = svd.explained_variance_ / (np.sum(summary.r**2) / n)
    return _stamp(svd, meta)


def _finalize_decomposition(summary, template, meta):
    if isinstance(template, PCA):
        return _finalize_pca(summary, template, meta)
    return _finalize_truncated_svd(summary, template, meta)


# --------------------------------------------------------------------------- naive Bayes
def _summarize_gaussian_nb(model, X, y, info):
    count = np.asarray(model.class_count_, dtype=float)
    # var_ holds the partition's own epsilon_; the raw variance is what merges
    var = np.asarray(model.var_, dtype=float) - model.epsilon_
    return ClassMoments(np.asarray(model.classes_), count, model.theta_, var * count[:, None])


def _finalize_gaussian_nb(summary, template, meta):
    classes = _global_classes(summary, meta)
    count = _align(summary.classes, summary.count, classes)
    mean = _align(summary.classes, summary.mean, classes)
    m2 = _align(summary.classes, summary.m2, classes)
    # variance of each feature over all rows, merged from the classes: var_smoothing
    # applies once, to the global variance, as a single fit applies it
    n_all, _, m2_all = reduce(_chan, [(c, mu, s) for c, mu, s in zip(count, mean, m2)])
    epsilon = template.var_smoothing * np.max(m2_all / n_all)
    nb = clone(template)
    nb.classes_ = classes
    nb.class_count_ = count
    nb.theta_ = mean
    nb.var_ = m2 / np.where(count > 0, count, 1)[:, None] + epsilon
    nb.epsilon_ = epsilon
    prior = _given_prior(template, len(classes), "priors")
    if prior is None:
        prior = count / count.sum()
    elif not np.isclose(prior.sum(), 1.0) or np.any(prior < 0):
        raise FusionError("GaussianNB(priors=...) must be non-negative and sum to 1")
    nb.class_prior_ = prior
    return _stamp(nb, meta)


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
    return _stamp(nb, meta)


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
    return _stamp(scaler, meta)


def _summarize_extremes(model, X, y, info):
    if isinstance(model, MaxAbsScaler):
        return Extremes(int(model.n_samples_seen_), None, np.asarray(model.max_abs_, float))
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
        return _stamp(scaler, meta)
    low, high = template.feature_range
    scaler.data_min_ = summary.low
    scaler.data_max_ = summary.high
    scaler.data_range_ = summary.high - summary.low
    scaler.scale_ = (high - low) / _nonzero_scale(scaler.data_range_)
    scaler.min_ = low - summary.low * scaler.scale_
    return _stamp(scaler, meta)


# --------------------------------------------------------------------------- families
def _no_constraint(estimator):
    return None


@dataclass(frozen=True)
class _Family:
    """How one family of estimators is summarised, and solved at the root."""

    types: tuple
    summarize: Callable
    finalize: Callable
    check: Callable = _no_constraint
    #: summarised from the partition's rows (True) or from its fitted model (False)
    from_rows: bool = True


FAMILIES = (
    _Family(
        types=(LinearRegression, Ridge, RidgeClassifier),
        summarize=_summarize_linear,
        finalize=_finalize_linear,
        check=_check_linear,
    ),
    _Family(
        types=(PCA, TruncatedSVD),
        summarize=_summarize_decomposition,
        finalize=_finalize_decomposition,
        check=_check_decomposition,
    ),
    _Family(
        types=(GaussianNB,),
        summarize=_summarize_gaussian_nb,
        finalize=_finalize_gaussian_nb,
        from_rows=False,
    ),
    _Family(
        types=(MultinomialNB, ComplementNB, BernoulliNB, CategoricalNB),
        summarize=_summarize_discrete_nb,
        finalize=_finalize_discrete_nb,
        from_rows=False,
    ),
    _Family(
        types=(StandardScaler,),
        summarize=_summarize_standard_scaler,
        finalize=_finalize_standard_scaler,
        from_rows=False,
    ),
    _Family(
        types=(MinMaxScaler, MaxAbsScaler),
        summarize=_summarize_extremes,
        finalize=_finalize_extremes,
        from_rows=False,
    ),
)


def exact_estimator_names():
    """Names of the estimators that exact fusion supports."""
    return [t.__name__ for family in FAMILIES for t in family.types]


def _family(estimator):
    # exact types only: a subclass may change what fit computes
    for family in FAMILIES:
        if type(estimator) in family.types:
            return family
    return None


class Exact(Fuser):
    """Exact fusion: merge sufficient statistics, so the fused model is the global fit.

    Each partition is summarised by statistics that merge exactly, whatever the
    partitioning and the fan-in of the tree (``split_every``), and the root solves for
    the model once, as scikit-learn does from all of the rows. The fused model equals
    the single-process fit up to floating-point rounding (PCA and TruncatedSVD: the
    exact, full-SVD solution, with scikit-learn's sign convention).

    Supported estimators and what each partition contributes:

    - ``LinearRegression``, ``Ridge``, ``RidgeClassifier`` (``solver`` in ``"auto"``,
      ``"cholesky"``, ``"svd"``; ``positive=False``; ``class_weight=None``): the R
      factor of a QR of the centred ``[X | Y]``, with its row count and column
      means; ``RidgeClassifier``'s ``Y`` holds its ±1 class columns.
    - ``PCA`` (``n_components`` an int, a fraction or None; ``whiten`` either way) and
      ``TruncatedSVD``: the R factor of the centred ``X``, merged as in TSQR.
    - ``GaussianNB``: per class counts, means and sums of squared deviations, merged by
      Chan, Golub & LeVeque's update; ``epsilon_`` is added once, at the root.
    - ``MultinomialNB``, ``ComplementNB``, ``BernoulliNB``, ``CategoricalNB``: per class
      counts, which add.
    - ``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``: counts and moments, or
      minima and maxima.

    Per-class statistics are aligned by class label, so a partition may lack classes.
    Sample weights are not supported.

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
    #: every family's summary can be taken from a fitted model (naive Bayes, scalers)
    #: or next to one (the row families ignore it); :meth:`needs_fit_for` says which
    #: families need the fit at all
    needs_fit = True
    #: RidgeClassifier binarizes every partition's labels against the global classes
    needs_classes = True
    #: the linear and decomposition families need the rows
    from_models = False
    #: per-class statistics merge by label, so a partition may hold one class only
    single_class_partitions = True
    requirement = (
        "exact fusion merges sufficient statistics of "
        f"{', '.join(exact_estimator_names())}"
    )

    def supports(self, estimator):
        family = _family(estimator)
        return family is not None and family.check(estimator) is None

    def unsupported_reason(self, estimator):
        """Why ``estimator`` (or its parameters) cannot be fused exactly, or None."""
        family = _family(estimator)
        return self.requirement if family is None else family.check(estimator)

    def needs_fit_for(self, estimator):
        """Whether each partition's ``estimator`` must be fitted before :meth:`summarize`.

        False for the families summarised from the rows (linear least squares, PCA,
        TruncatedSVD), True for those read from a fitted model (naive Bayes, scalers).

        Parameters
        ----------
        estimator : estimator
            The unfitted template.

        Returns
        -------
        bool
        """
        family = _family(estimator)
        return family is None or not family.from_rows

    def needs_classes_for(self, estimator):
        """Only RidgeClassifier binarizes its targets against the global classes."""
        return isinstance(estimator, RidgeClassifier)

    def from_models_for(self, estimator):
        """Naive Bayes and scaler models carry their sufficient statistics."""
        family = _family(estimator)
        return family is not None and not family.from_rows

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
        summary : RFactor, ClassMoments, ClassCounts, Moments or Extremes
        """
        model = estimator if estimator is not None else info.get("template")
        family = _family(model)
        if family is None:
            raise FusionError(
                f"{self!r} cannot summarise {type(model).__name__}: {self.requirement}"
            )
        name = type(model).__name__
        if family.from_rows and X is None:
            raise FusionError(
                f"{self!r} needs the training rows of {name} (it merges R factors of "
                f"the rows), not only a fitted model; fit with daskfuse's Fused* "
                "estimators instead"
            )
        if not family.from_rows and estimator is None:
            raise FusionError(f"{self!r} reads {name}'s statistics from a fitted model")
        return family.summarize(model, X, y, info)

    def combine(self, summaries):
        """Merge any number of summaries of one family (associative)."""
        return type(summaries[0]).merge(summaries)

    def finalize(self, summary, template, meta):
        """Solve for the fused model: a fitted clone of ``template``."""
        return _family(template).finalize(summary, template, meta)
