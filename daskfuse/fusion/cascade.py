"""Cascade SVM: support vectors flow up a tree of refits, the root's go back down.

Graf et al., "Parallel Support Vector Machines: The Cascade SVM" (NIPS 2004). Each
partition fits an SVM and sends only its support vectors up the tree; every inner
node refits an SVM on the union of its children's support vectors and passes on its
own. The root's model is the fused model. Rows that are not support vectors of a
partition's model rarely are of the model on all rows, so the root's problem is small.
In a feedback pass (``max_passes`` > 1; one pass by default) the root's support
vectors go back to every partition, which sends them up again together with its own
rows that break the fused model's optimality conditions (inside the margin or on the
wrong side; see ``prune``), until the root's support-vector set stops changing. When
no partition has such a row left, the fused model satisfies the optimality (KKT)
conditions of the SVM on all training rows, up to the SVM's ``tol``: it is the SVM on
all rows.

Unlike the other strategies, combine is not associative: an inner node's refit keeps
only its own support vectors, so with more partitions than ``split_every`` the result
depends on how the tree groups them (with at most ``split_every`` partitions there is
one refit, at the root, on the union of all partitions' support vectors, sorted by row
id, and the result does not depend on the grouping).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import r2_score
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.svm import SVC, SVR

from .._adapters import stamp_inputs
from .._quiet import quiet_warnings
from .._validation import check_int
from ..exceptions import FusionError
from .base import Fuser

__all__ = ["Cascade", "CascadeFeedback", "RowStats", "SupportVectors"]

#: a row's id is ``partition << ID_SHIFT | row``: stable over passes, as the
#: partitions stay where they are and keep their row order
ID_SHIFT = 32
#: entries of one block of the kernel matrix when checking a partition's rows
_KERNEL_BLOCK = 2**23


def row_ids(index, n):
    """Ids of the ``n`` rows of partition ``index``."""
    return (np.int64(index) << ID_SHIFT) | np.arange(n, dtype=np.int64)


@dataclass
class RowStats:
    """Statistics of all the rows a summary covers (not just its support vectors).

    ``gamma="scale"`` and ``class_weight="balanced"`` depend on the training rows; a
    refit on a few support vectors uses these instead, the values an SVM on all rows
    would take.

    Attributes
    ----------
    rows : int
        Rows covered.
    n_features : int
    mean : float
        Mean of every entry of ``X`` (what ``X.var()`` centres on).
    m2 : float
        Sum of squared deviations of every entry of ``X`` from ``mean``.
    labels : ndarray or None
        Sorted class labels (classifiers).
    counts : ndarray or None
        Rows of each label.
    """

    rows: int
    n_features: int
    mean: float
    m2: float
    labels: Any = None
    counts: Any = None

    @classmethod
    def of(cls, X, y, classifier):
        X = np.asarray(X, dtype=float)
        mean = float(X.mean())
        labels = counts = None
        if classifier:
            labels, counts = np.unique(y, return_counts=True)
        return cls(len(X), X.shape[1], mean, float(((X - mean) ** 2).sum()), labels, counts)

    @staticmethod
    def merge(stats):
        stats = list(stats)
        out = stats[0]
        for s in stats[1:]:
            # Chan et al.'s pairwise update, over every entry of X
            na, nb = out.rows * out.n_features, s.rows * s.n_features
            delta = s.mean - out.mean
            total = na + nb
            labels = counts = None
            if out.labels is not None:
                labels = np.union1d(out.labels, s.labels)
                counts = np.zeros(len(labels), dtype=np.int64)
                for part in (out, s):
                    counts[np.searchsorted(labels, part.labels)] += part.counts
            out = RowStats(
                out.rows + s.rows,
                out.n_features,
                out.mean + delta * nb / total,
                out.m2 + s.m2 + delta**2 * na * nb / total,
                labels,
                counts,
            )
        return out

    @property
    def var(self):
        return self.m2 / (self.rows * self.n_features)


@dataclass
class SupportVectors:
    """The summary of :class:`Cascade`: rows that go up the tree.

    Attributes
    ----------
    X : ndarray of shape (m, n_features)
    y : ndarray of shape (m,)
    ids : ndarray of int64, shape (m,)
        Row ids, ``partition << 32 | row within the partition``, sorted.
    stats : RowStats
        Of all the rows the summary covers.
    template : estimator
        The unfitted SVM.
    model : estimator or None
        A fitted SVM whose support vectors are exactly these rows, or None where
        they still need a fit.
    report_weight : float or None
        A leaf's number of support vectors, for the partition report.
    """

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    stats: RowStats
    template: Any
    model: Any = None
    report_weight: float | None = None


@dataclass
class CascadeFeedback:
    """What a feedback pass sends to every partition: the root's support vectors.

    Attributes
    ----------
    X, y, ids : ndarray
        The root's support vectors, their targets and row ids.
    model : estimator
        The fused SVM (its support vectors are these rows).
    """

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    model: Any


@dataclass
class _LeafModel:
    """A partition's model in a feedback pass, with the rows it was trained on.

    ``fitted`` False: nothing was fitted (``prune``): ``model`` is the fused model and
    the rows are what the partition sends up (the root's support vectors and the
    partition's violators). ``scored`` is ``(rows, score)``: the fused model's score
    on the partition's rows, known from the check.
    """

    model: Any
    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    fitted: bool
    n_new: int
    scored: tuple | None = None

    @property
    def n_iter_(self):
        return getattr(self.model, "n_iter_", None) if self.fitted else None

    def score(self, X, y):
        if self.scored is not None and self.scored[0] is X:
            return self.scored[1]
        with quiet_warnings(UserWarning):
            return self.model.score(X, y)


def _resolved(template, stats):
    """A clone of ``template`` with the data-dependent parameters fixed for all rows."""
    params = template.get_params()
    fixed = {}
    gamma = params.get("gamma")
    if gamma == "scale":
        var = stats.var
        fixed["gamma"] = 1.0 / (stats.n_features * var) if var != 0 else 1.0
    elif gamma == "auto":
        fixed["gamma"] = 1.0 / stats.n_features
    if params.get("class_weight") == "balanced" and stats.labels is not None:
        weights = stats.rows / (len(stats.labels) * stats.counts)
        fixed["class_weight"] = {
            (label.item() if isinstance(label, np.generic) else label): float(w)
            for label, w in zip(stats.labels, weights)
        }
    return clone(template).set_params(**fixed)


def _same_params(model, resolved):
    a, b = model.get_params(), resolved.get_params()
    return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)


def _equal(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


def _fit(estimator, X, y):
    # libsvm's max_iter warning (a ConvergenceWarning, a UserWarning) on a node's
    # refit is the user's setting, as on the partitions (daskfuse's fit tasks keep
    # UserWarnings to themselves); quiet_warnings is safe across worker threads
    with quiet_warnings(UserWarning):
        return estimator.fit(X, y)


def _kernel(model, X):
    """``K(X, support vectors)`` of a fitted SVM, by blocks of rows."""
    sv = model.support_vectors_
    params = model.get_params()
    kernel = params["kernel"]
    step = max(1, _KERNEL_BLOCK // max(len(sv), 1))
    for start in range(0, len(X), step):
        rows = X[start : start + step]
        if callable(kernel):
            yield start, np.asarray(kernel(rows, sv), dtype=float)
        else:
            yield (
                start,
                pairwise_kernels(
                    rows,
                    sv,
                    metric=kernel,
                    filter_params=True,
                    gamma=params["gamma"],
                    degree=params["degree"],
                    coef0=params["coef0"],
                ),
            )


def violators(model, X, y):
    """Mask of the rows of ``X`` that break the SVM's optimality conditions.

    For a classifier, a row whose margin ``y f(x)`` is below ``1 - tol`` in one of the
    one-vs-one problems of its class (it would enter the SVM with a non-zero dual
    coefficient); for a regressor, a row outside the ``epsilon + tol`` tube. Rows of a
    class the model does not know also count. Computed from the model's support
    vectors and dual coefficients with a blocked kernel matrix (numpy), which is
    faster than libsvm's ``decision_function`` on many rows.

    Parameters
    ----------
    model : sklearn.svm.SVC or sklearn.svm.SVR
        A fitted SVM whose ``gamma`` is a number.
    X : ndarray of shape (n, n_features)
    y : ndarray of shape (n,)

    Returns
    -------
    mask : ndarray of bool, shape (n,)
    """
    return _check_rows(model, X, y)[0]


def _check_rows(model, X, y):
    """``(violators mask, predictions)`` of a fitted SVM on rows ``X``, one kernel pass."""
    X = np.asarray(X, dtype=float)
    tol = float(model.get_params()["tol"])
    out = np.zeros(len(X), dtype=bool)
    if not is_classifier(model):
        eps = float(model.get_params()["epsilon"])
        y = np.asarray(y, dtype=float)
        pred = np.zeros(len(X))
        for start, K in _kernel(model, X):
            stop = start + len(K)
            pred[start:stop] = K @ model.dual_coef_[0] + model.intercept_[0]
        out[:] = np.abs(y - pred) > eps + tol
        return out, pred
    classes = model.classes_
    position = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
    known = classes[position] == y
    out[~known] = True
    pred_index = np.zeros(len(X), dtype=np.intp)
    if len(classes) == 2:
        # sklearn's binary decision is positive for classes_[1]
        sign = np.where(position == 1, 1.0, -1.0)
        for start, K in _kernel(model, X):
            stop = start + len(K)
            f = K @ model.dual_coef_[0] + model.intercept_[0]
            out[start:stop] |= known[start:stop] & (sign[start:stop] * f < 1 - tol)
            pred_index[start:stop] = f > 0
        return out, classes[pred_index]
    # one-vs-one: pair (i, j), i < j, decides for i where its decision is positive;
    # the prediction is the class with most votes, the first of the tied (as libsvm)
    starts = np.concatenate([[0], np.cumsum(model.n_support_)])
    coef = model.dual_coef_
    for start, K in _kernel(model, X):
        stop = start + len(K)
        pos = position[start:stop]
        votes = np.zeros((len(K), len(classes)), dtype=np.intp)
        pair = 0
        for i in range(len(classes)):
            si = slice(starts[i], starts[i + 1])
            for j in range(i + 1, len(classes)):
                sj = slice(starts[j], starts[j + 1])
                f = K[:, si] @ coef[j - 1, si] + K[:, sj] @ coef[i, sj] + model.intercept_[pair]
                votes[:, i] += f > 0
                votes[:, j] += f <= 0
                margin = np.where(pos == i, f, np.where(pos == j, -f, np.inf))
                out[start:stop] |= margin < 1 - tol
                pair += 1
        pred_index[start:stop] = votes.argmax(axis=1)
    return out, classes[pred_index]


class Cascade(Fuser):
    """Cascade SVM for ``SVC`` and ``SVR``, any kernel but ``"precomputed"``.

    Each partition fits the SVM and sends its support vectors up the fusion tree;
    every inner node refits a clone of the SVM on the union of its children's
    support vectors (de-duplicated by row id, sorted by it) and passes on its own;
    the root's refit is the fused model, a plain fitted ``SVC``/``SVR``. Multiclass
    ``SVC`` works as is (the support vectors of every class go up); a node whose
    union holds a single class passes its rows on as they are, without a fit.

    With ``max_passes`` > 1, feedback passes follow (Graf et al.'s cascade): the
    root's support vectors go back to every partition and up the tree again with
    the partition's own rows (see ``prune``), until the root's support-vector set
    changes by at most the meta-estimator's ``tol`` (the relative size of the
    symmetric difference of two passes' sets; with the default ``tol=1e-4``, until
    it no longer changes) or ``max_passes`` passes have run. The partitions stay
    persisted on their workers between passes and only support vectors travel;
    ``history_`` has one row per pass, with that relative difference as
    ``change``. A pass in which no partition has a row that breaks the fused
    model's optimality conditions fits nothing and changes nothing: the fused model
    is then the SVM on all training rows, up to the SVM's ``tol``. Each feedback
    pass also scores the previous fused model on every partition
    (``partition_report_``'s ``start_score``) and, after the last, on all rows
    (``history_``): with an SVM those predictions cost about as much as the
    violation check itself, so the one-pass cascade (the default) is the fast
    choice and feedback passes buy the guarantee.

    Parameters that depend on the training rows are fixed for all rows: the root's
    refit (so the fused model) and every refit of a feedback pass take
    ``gamma="scale"`` as the number it stands for on all training rows,
    ``1 / (n_features * X.var())`` (``"auto"``: ``1 / n_features``), and
    ``class_weight="balanced"`` as the weights from the class counts of all rows;
    the first pass's partition fits and inner nodes use their own rows'.

    Parameters
    ----------
    max_passes : int, default=1
        Most passes (the first plus feedback passes). The meta-estimator's
        ``rounds`` must stay 1; ``local_epochs`` is ignored.
    prune : bool, default=True
        In a feedback pass, a partition sends up the root's support vectors and
        only those of its other rows that break the fused model's optimality (KKT)
        conditions (classifiers: margin ``y f(x) < 1 - tol`` in a one-vs-one problem
        of the row's class; regressors: ``|y - f(x)| > epsilon + tol``, with the
        SVM's ``tol`` and ``epsilon``), without a fit, and only the root refits, on
        the union. The rows the fused model already satisfies would keep a zero
        dual coefficient, so the check costs one kernel evaluation per row and
        support vector where a refit of the partition would cost many, and every
        inner node would refit about the root's problem. A partition with no such
        row sends the root's set with its model, so a pass without violators fits
        nothing. ``prune=False`` refits the SVM on each partition's rows plus the
        root's support vectors and every inner node on the union of its children's
        (the original cascade).

    Notes
    -----
    Combine is not associative: an inner node keeps only its refit's support
    vectors, so with more partitions than ``split_every`` the fused model depends
    on the grouping. The SVM's cost grows about quadratically with its rows: many
    partitions of a few thousand rows and a small fan-in (``split_every`` 2 to 4)
    keep every refit, the root's included, small. ``partition_report_``'s
    ``weight`` is the number of rows a partition sent up the tree, and ``n_iter``
    its SVM's iterations (None where a feedback pass fitted nothing). Fusing
    already fitted models (:func:`daskfuse.fuse`) is not supported: the cascade
    needs the rows.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.svm import SVC
    >>> from daskfuse import FusedClassifier
    >>> from daskfuse.fusion import Cascade
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 2))
    >>> y = (X[:, 0] ** 2 + X[:, 1] ** 2 > 1).astype(int)
    >>> clf = FusedClassifier(SVC(), fusion=Cascade(max_passes=5), n_partitions=3)
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    >>> type(clf.fused_estimator_).__name__, clf.n_rounds_ <= 5
    ('SVC', True)
    >>> float(clf.history_["change"].iloc[-1])
    0.0
    """

    name = "cascade"
    requirement = "the cascade needs an sklearn.svm.SVC or SVR (a kernel other than 'precomputed')"

    def __init__(self, max_passes=1, *, prune=True):
        self.max_passes = check_int(max_passes, "Cascade(max_passes=...)", low=1)
        if not isinstance(prune, bool):
            raise ValueError(f"Cascade(prune=...) must be True or False; got {prune!r}")
        self.prune = prune

    def _params(self):
        return {"max_passes": self.max_passes, "prune": self.prune}

    def supports(self, estimator):
        return isinstance(estimator, SVC | SVR) and estimator.get_params()["kernel"] != (
            "precomputed"
        )

    # ------------------------------------------------------------ passes
    def passes(self, rounds):
        return self.max_passes

    def tags(self, estimator):
        """The cascade runs its own feedback passes instead of rounds."""
        return replace(
            super().tags(estimator),
            rounds_reason=(
                "the cascade runs its own feedback passes; leave rounds=1 and set "
                "Cascade(max_passes=...)"
            ),
            sample_weight_reason=(
                f"{self!r} refits SVMs on the support vectors that the partitions pass up "
                "the tree, which carry no sample weights, so the fused SVM would ignore "
                "them; use fusion='vote' (weights='rows')"
            ),
        )

    def feedback(self, fused, summary):
        if fused is summary.model:
            return CascadeFeedback(summary.X, summary.y, summary.ids, fused)
        sv = fused.support_
        return CascadeFeedback(summary.X[sv], summary.y[sv], summary.ids[sv], fused)

    def change(self, previous, current):
        """Relative size of the symmetric difference of two passes' support-vector ids."""
        union = np.union1d(previous.ids, current.ids)
        if len(union) == 0:
            return 0.0
        return float(len(np.setxor1d(previous.ids, current.ids)) / len(union))

    def local_fit(self, template, feedback, X, y, info):
        """The rows a partition sends up in a feedback pass (and their SVM, unless pruned)."""
        X_rows, X = X, np.asarray(X, dtype=float)
        ids = row_ids(info["index"], len(X))
        own = ~np.isin(ids, feedback.ids, assume_unique=True)
        new = np.flatnonzero(own)
        scored = None
        if self.prune:
            bad, pred = _check_rows(feedback.model, X, y)
            new = new[bad[new]]
            if is_classifier(feedback.model):
                scored = (X_rows, float(np.mean(pred == y)))
            else:
                scored = (X_rows, float(r2_score(y, pred)))
        rows_X = np.concatenate([feedback.X, X[new]])
        rows_y = np.concatenate([feedback.y, y[new]])
        rows_ids = np.concatenate([feedback.ids, ids[new]])
        order = np.argsort(rows_ids, kind="stable")
        rows_X, rows_y, rows_ids = rows_X[order], rows_y[order], rows_ids[order]
        if self.prune:
            return _LeafModel(feedback.model, rows_X, rows_y, rows_ids, False, len(new), scored)
        model = _fit(clone(feedback.model), rows_X, rows_y)
        return _LeafModel(model, rows_X, rows_y, rows_ids, True, len(new))

    # ------------------------------------------------------------ protocol
    def summarize(self, estimator, X, y, info):
        stats = RowStats.of(X, y, is_classifier(info["template"]))
        if isinstance(estimator, _LeafModel):
            # the fused model's parameters, fixed for all rows, for every node of a
            # feedback pass (a node's own rows would give another gamma="scale")
            template = clone(estimator.model)
            if estimator.fitted:
                sv = estimator.model.support_
                summary = SupportVectors(
                    estimator.X[sv],
                    estimator.y[sv],
                    estimator.ids[sv],
                    stats,
                    template,
                    estimator.model,
                )
            else:
                summary = SupportVectors(
                    estimator.X,
                    estimator.y,
                    estimator.ids,
                    stats,
                    template,
                    estimator.model if estimator.n_new == 0 else None,
                )
        else:
            sv = estimator.support_
            summary = SupportVectors(
                np.asarray(X, dtype=float)[sv],
                np.asarray(y)[sv],
                row_ids(info["index"], len(X))[sv],
                stats,
                info["template"],
                estimator,
            )
        summary.report_weight = float(len(summary.ids))
        return summary

    def _fit_node(self, X, y, ids, stats, template, children=()):
        """A node's summary: refit on its rows, unless a child's model already fits them."""
        resolved = _resolved(template, stats)
        for child in children:
            if (
                child.model is not None
                and len(child.ids) == len(ids)
                and np.array_equal(child.ids, ids)
                and _same_params(child.model, resolved)
            ):
                return SupportVectors(X, y, ids, stats, template, child.model)
        if is_classifier(template) and len(np.unique(y)) < 2:
            # nothing to separate here: the rows go up as they are
            return SupportVectors(X, y, ids, stats, template, None)
        try:
            model = _fit(resolved, X, y)
        except Exception as exc:
            raise FusionError(
                f"{self!r}: refitting {type(template).__name__} on {len(ids)} support "
                f"vectors failed: {type(exc).__name__}: {exc}"
            ) from exc
        sv = model.support_
        return SupportVectors(X[sv], y[sv], ids[sv], stats, template, model)

    def combine(self, summaries):
        stats = RowStats.merge(s.stats for s in summaries)
        ids = np.concatenate([s.ids for s in summaries])
        ids, first = np.unique(ids, return_index=True)
        X = np.concatenate([s.X for s in summaries])[first]
        y = np.concatenate([s.y for s in summaries])[first]
        template = summaries[0].template
        if any(s.model is None for s in summaries):
            # rows that still need a fit (a pruned feedback pass's, or one class):
            # every node would refit about the root's problem, so only the root fits
            return SupportVectors(X, y, ids, stats, template, None)
        return self._fit_node(X, y, ids, stats, template, summaries)

    def finalize(self, summary, template, meta):
        node = summary
        if node.model is None or not _same_params(node.model, _resolved(template, node.stats)):
            # one partition (its own gamma="scale"), or a last union without a fit
            node = self._fit_node(
                summary.X, summary.y, summary.ids, summary.stats, template, (summary,)
            )
        if node.model is None:
            raise FusionError(
                f"{self!r}: the support vectors that reached the root hold one class "
                f"({np.unique(node.y)[0]!r}); a classifier needs at least 2"
            )
        return stamp_inputs(node.model, meta)
