"""Clustering fusion: weighted reclustering of the partitions' centroids.

Averaging centroids is wrong: cluster 0 of one partition need not be cluster 0 of
another (label permutation), and a partition that holds two blobs in one cluster has a
centroid between them. Instead each partition sends its centroids with their cluster
sizes, and the root clusters those ``n_partitions * k`` weighted points into ``k``
clusters: a weighted k-means on the centroids, which is the k-means of the data with
every point moved to its local centroid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.cluster import KMeans, MiniBatchKMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from .._adapters import stamp_inputs
from .._quiet import quiet_warnings
from .._validation import check_int
from ..exceptions import FusionError
from .base import Fuser

__all__ = ["CentroidPart", "Centroids", "Recluster"]


@dataclass
class CentroidPart:
    """One partition's clusters.

    Attributes
    ----------
    index : int
        The partition's index.
    means : ndarray of shape (k, n_features)
        Mean of the rows of each of its clusters (the model's ``cluster_centers_``
        where its rows are not known).
    sizes : ndarray of shape (k,)
        Rows in each of its clusters.
    within : float
        Sum of the squared distances of its rows to their cluster's mean (the
        model's ``inertia_`` where its rows are not known).
    points : ndarray of shape (m, n_features)
        The weighted points that stand for its rows in the reclustering: the means,
        or two points per cluster (see :class:`Recluster`'s ``split``).
    weights : ndarray of shape (m,)
        Rows each point stands for.
    n_steps : int or None
        Mini-batch steps of its model (``MiniBatchKMeans``).
    """

    index: int
    means: np.ndarray
    sizes: np.ndarray
    within: float
    points: np.ndarray
    weights: np.ndarray
    n_steps: int | None = None


@dataclass
class Centroids:
    """The summary of :class:`Recluster`: the clusters of the partitions covered.

    A leaf's ``report_weight`` is its partition's rows (None once combined).
    """

    parts: list
    report_weight: float | None = None


def _labels_and_inertia(estimator, X, index, sample_weight=None):
    """The rows' clusters and their (weighted) sum of squared distances to their centres.

    From the fit where it labelled these rows (``labels_``, ``inertia_``), else by
    ``predict`` and ``score`` on ``X``.
    """
    labels = getattr(estimator, "labels_", None)
    if labels is not None and (X is None or len(labels) == len(X)):
        return np.asarray(labels), float(estimator.inertia_)
    if X is None:
        # MiniBatchKMeans(compute_labels=False) keeps no labels_ and only an estimate
        # of its inertia
        raise FusionError(
            f"partition {index}: {type(estimator).__name__} has no labels_, so its "
            "cluster sizes are unknown; fit it with compute_labels=True"
        )
    inertia = -float(estimator.score(X, sample_weight=sample_weight))
    return np.asarray(estimator.predict(X)), inertia


def _principal_directions(scatter, counts):
    """Unit vectors of largest variance of a stack of clusters, and the mean square of
    their rows' projections on them.

    ``scatter[j]`` is ``R_j.T @ R_j`` for the centred rows ``R_j`` of cluster ``j``
    and ``counts[j]`` their number (total weight). The direction comes from
    repeated squaring of the scatter matrices, all clusters in one product a step:
    ``S^(2^m)`` (scaled to trace 1) tends to the projection on the top eigenvector at
    the rate ``(lambda_2 / lambda_1)^(2^m)``, and :data:`SQUARINGS` steps take it to
    rounding for any gap that matters here (a cluster holding two blobs has a large
    one; where the top eigenvalues are almost equal, any direction in their span has
    almost the same spread). Up to :data:`SQUARE_FEATURES` features this costs less
    than an eigendecomposition a cluster (about a third at 20 features). The mean
    square is the Rayleigh quotient of the direction found: exact for it.
    """
    power = scatter / np.maximum(np.einsum("kii->k", scatter), 1e-300)[:, None, None]
    for _ in range(SQUARINGS // 2):
        # trace 1 keeps every eigenvalue in [0, 1] and the top one above 1 / d:
        # scaled again every second squaring, nothing overflows or underflows
        power = power @ power
        power = power @ power
        power /= np.maximum(np.einsum("kii->k", power), 1e-300)[:, None, None]
    # the column of the largest diagonal entry: the top eigenvector times its largest
    # component
    top = np.argmax(np.einsum("kii->ki", power), axis=1)
    vectors = power[np.arange(len(power)), :, top]
    norms = np.sqrt(np.einsum("ki,ki->k", vectors, vectors))
    # a cluster of equal rows has no spread: any unit vector
    vectors = np.where(norms[:, None] > 0, vectors, np.eye(scatter.shape[-1])[0])
    vectors /= np.where(norms > 0, norms, 1.0)[:, None]
    spread = np.einsum("ki,kij,kj->k", vectors, scatter, vectors)
    return vectors, np.maximum(spread, 0.0) / counts


def _principal_direction(centered):
    """Unit vector of largest variance of the rows of ``centered`` (mean zero), and
    the mean square of the rows' projections on it, one cluster at a time: from an
    eigendecomposition up to :data:`SCATTER_FEATURES` features, else by power
    iteration, ``O(n * d)`` a step where an eigendecomposition is ``O(d^3)``."""
    n, d = centered.shape
    if d <= SCATTER_FEATURES:
        values, vectors = np.linalg.eigh(centered.T @ centered)
        return vectors[:, -1], max(float(values[-1]), 0.0) / n
    v = np.random.default_rng(0).normal(size=d)
    for _ in range(50):
        v = centered.T @ (centered @ v)
        norm = np.linalg.norm(v)
        if norm == 0:
            break
        v /= norm
    return v, float(np.mean((centered @ v) ** 2))


#: features up to which :func:`_principal_directions` squares the scatter matrices
#: rather than decomposing them
SQUARE_FEATURES = 64

#: squarings of :func:`_principal_directions`: the power ``2^10 = 1024``
SQUARINGS = 10

#: features above which :func:`_principal_direction` iterates on the rows rather than
#: decomposing their scatter matrix
SCATTER_FEATURES = 256

#: rows of one cluster whose principal direction and spread give its two split points
#: (all the rows of a smaller cluster; see :func:`_split_rows`)
SPLIT_ROWS = 256

#: rows per run, and most rows in all, of the sample whose labels :func:`_split_rows`
#: reads first in a large partition
RUN_ROWS = 64
SAMPLE_ROWS = 8192

#: rows per block of the per-cluster sums. A dask worker's nanny sets glibc's
#: ``MALLOC_TRIM_THRESHOLD_``, which leaves every allocation of 128 KiB or more to a
#: fresh ``mmap``: its pages fault in one by one, at about 0.4 ms per MiB. Blocks of
#: 8,192 rows keep every temporary of the summary under 64 KiB
SUM_ROWS = 8192


def _cluster_summary(X, labels, centers, split, sample_weight=None, inertia=None):
    """Sizes, row means, within-cluster sum of squares and reclustering points.

    The means are exact (:func:`_cluster_sums`: one pass over ``X`` in row order that
    copies nothing). The within-cluster sum of squares follows from ``inertia``, the
    fit's own (weighted) sum of the squared distances of these rows to ``centers``
    under ``labels`` (:func:`_within`). Where ``split``, a cluster's principal
    direction and its spread along it come from at most :data:`SPLIT_ROWS` of its
    rows (:func:`_split_rows`, :func:`_split_points`).

    Returns
    -------
    sizes : ndarray of shape (k,)
        Rows (total weight) in each cluster; a cluster of total weight 0 is empty.
    means : ndarray of shape (k, n_features)
        Mean of each cluster's rows (the model's centre for an empty cluster).
    within : float
        Sum of the (weighted) squared distances of the rows to their cluster's mean.
    points, weights : ndarray
        The weighted points that stand for the rows (see :func:`_split_points`).
    """
    sizes, sums = _cluster_sums(X, labels, len(centers), sample_weight)
    full = sizes > 0
    means = np.array(centers, dtype=float, copy=True)
    means[full] = sums[full] / sizes[full, None]
    within = _within(X, labels, means, centers, sizes, inertia, sample_weight)
    if not split:
        return sizes, means, within, means, sizes
    points, halves = _split_points(X, labels, means, sizes, sample_weight)
    return sizes, means, within, points, halves


def _cluster_sums(X, labels, k, sample_weight=None):
    """Each cluster's rows (total weight) and (weighted) sum of the rows of ``X``.

    ``(sizes, sums)`` of shapes ``(k,)`` and ``(k, n_features)``, from the product of
    a sparse indicator matrix (cluster by row, the rows' weights as its values) with
    the rows, :data:`SUM_ROWS` rows at a time: within a block, the rows of a cluster
    are added in row order, as ``X[labels == j].sum(axis=0)`` adds them.
    """
    n = len(labels)
    block = min(n, SUM_ROWS)
    ones = np.ones(block)
    indptr = np.arange(block + 1, dtype=labels.dtype)
    sizes, sums = np.zeros(k), np.zeros((k, X.shape[1]))
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = slice(start, stop)
        values = ones[: stop - start] if sample_weight is None else sample_weight[rows]
        indicator = sparse.csc_array(
            (values, labels[rows], indptr[: stop - start + 1]), shape=(k, stop - start)
        )
        sizes += np.bincount(labels[rows], weights=values, minlength=k)
        sums += indicator @ X[rows]
    return sizes, sums


def _within(X, labels, means, centers, sizes, inertia, sample_weight):
    """Sum of the (weighted) squared distances of the rows to their cluster's mean.

    For any labelling, ``sum_i w_i |x_i - c_j|^2 = sum_i w_i |x_i - m_j|^2 + n_j |m_j -
    c_j|^2`` over the rows ``i`` of cluster ``j`` (mean ``m_j``, total weight ``n_j``,
    centre ``c_j``): the fit's ``inertia`` (the left side summed over the clusters)
    gives it without a pass over ``X``. Where ``inertia`` is None, or the centres lie
    so far from the means that the difference would lose digits, it is summed
    directly.
    """
    if inertia is not None:
        moved = float(sizes @ ((means - centers) ** 2).sum(axis=1))
        if moved <= inertia / 2:
            return max(inertia - moved, 0.0)
    diff = X - means[labels]
    squares = np.einsum("ij,ij->i", diff, diff)
    return float(squares.sum() if sample_weight is None else sample_weight @ squares)


def _split_rows(labels, k, clusters, sample_weight=None):
    """At most :data:`SPLIT_ROWS` rows of each of ``clusters`` (labels in ``range(k)``).

    In a partition of at least four times as many rows, the labels of a sample of
    ``2 * SPLIT_ROWS`` rows per cluster (at most :data:`SAMPLE_ROWS`) are read
    first: runs of :data:`RUN_ROWS` consecutive rows, evenly spaced over the
    partition, which memory delivers many times faster than as many rows picked one
    by one. A cluster with ``SPLIT_ROWS / 2`` rows or more in it keeps at most
    :data:`SPLIT_ROWS` of those, evenly spaced; any other cluster (small, or one the
    runs miss) is read on all its rows and keeps at most :data:`SPLIT_ROWS` of them,
    evenly spaced. With sample weights, only rows of positive weight count.
    """
    n = len(labels)
    positive = None if sample_weight is None else sample_weight > 0
    runs = max(2, min(2 * SPLIT_ROWS * len(clusters), SAMPLE_ROWS) // RUN_ROWS)
    found = None
    if n >= 4 * runs * RUN_ROWS:
        starts = np.arange(runs) * (n - RUN_ROWS) // (runs - 1)
        picks = (starts[:, None] + np.arange(RUN_ROWS)).ravel()
        if positive is not None:
            picks = picks[positive[picks]]
        picked = labels[picks]
        order = np.argsort(picked, kind="stable")
        found = np.bincount(picked, minlength=k)
        ends = np.cumsum(found)
        picks = picks[order]  # by cluster, each cluster's rows in order
    for j in clusters:
        if found is not None and found[j] >= SPLIT_ROWS // 2:
            rows = picks[ends[j] - found[j] : ends[j]]
        else:
            rows = np.flatnonzero(labels == j if positive is None else (labels == j) & positive)
        yield rows[:: -(-len(rows) // SPLIT_ROWS)]


def _split_points(X, labels, means, sizes, sample_weight=None):
    """Two weighted points per cluster, keeping its mean and its largest variance.

    A cluster stands in the reclustering for its rows. Its centroid alone loses how
    the rows spread: a local k-means stuck in a poor optimum may hold two blobs in
    one cluster, whose centroid lies between them and, weighted by both blobs' rows,
    drags a fused centre off. The points ``mean +- std * v`` along the cluster's
    principal direction ``v``, each weighted by half its rows, have the same mean
    and the same variance along ``v``: for a compact cluster they stay together,
    for two merged blobs they land on the blobs. ``v`` and ``std`` are those of at
    most :data:`SPLIT_ROWS` of the cluster's rows spread over the partition
    (:func:`_split_rows`; with weights: of its rows of positive weight, weighted),
    plenty to tell two blobs apart. Up to :data:`SQUARE_FEATURES` features all
    clusters' directions come at once from their scatter matrices
    (:func:`_principal_directions`), else one cluster at a time
    (:func:`_principal_direction`).
    """
    full = np.flatnonzero(sizes > 0)
    d = X.shape[1]
    counts = np.empty(len(full))
    # each cluster's rows are dropped once read: one cluster's at a time in memory
    if d <= SQUARE_FEATURES:
        scatter = np.empty((len(full), d, d))
    else:
        scatter, vectors, mean_square = None, np.empty((len(full), d)), np.empty(len(full))
    for i, rows in enumerate(_split_rows(labels, len(sizes), full, sample_weight)):
        centered = np.take(X, rows, axis=0)
        centered -= means[full[i]]
        counts[i] = len(rows)
        if sample_weight is not None:
            # the rows scaled by the root of their weight: the weighted variance along
            # the principal direction is their sum of squares over their total weight
            w = sample_weight[rows]
            centered *= np.sqrt(w)[:, None]
            counts[i] = w.sum()
        if scatter is not None:
            np.matmul(centered.T, centered, out=scatter[i])
        else:
            vectors[i], mean_square[i] = _principal_direction(centered)
            mean_square[i] *= len(rows) / counts[i]
    if scatter is not None:
        vectors, mean_square = _principal_directions(scatter, counts)
    step = np.sqrt(mean_square)[:, None] * vectors
    points = np.empty((2 * len(full), d))
    points[0::2] = means[full] - step
    points[1::2] = means[full] + step
    return points, np.repeat(sizes[full] / 2, 2)


def _prime(template, centers):
    """A fitted clone of ``template`` whose centres are exactly ``centers``.

    ``predict``, ``transform`` and ``score`` read state that only ``fit`` sets
    (``_n_threads``, ``_n_features_out``), so rather than touching private attributes
    the clone is fitted for one iteration on the centres themselves, started from
    them (each centre is its own cluster, so it stays put), and the centres are then
    set to the exact values. The parameters changed for that fit (``init``,
    ``n_init``, ``max_iter``, ``compute_labels``) are set back to the template's.
    """
    params = template.get_params()
    priming = {"init": centers, "n_init": 1, "max_iter": 1}
    if "compute_labels" in params:
        # MiniBatchKMeans without labels estimates its inertia from the convergence
        # monitor, which a single step never starts
        priming["compute_labels"] = True
    model = clone(template).set_params(**priming)
    with quiet_warnings():
        # k points for k clusters: warnings about small batches or init sizes
        model.fit(centers)
    model.set_params(**{name: params[name] for name in priming})
    model.cluster_centers_ = np.array(centers, copy=True)
    # labels_ of that priming fit label the centres, not the training rows: drop it
    # (FusedClusterer.labels_ labels the training rows)
    del model.labels_
    return model


class Recluster(Fuser):
    """Weighted reclustering of the partitions' centroids (``KMeans``, ``MiniBatchKMeans``).

    Each partition's model gives its ``cluster_centers_`` and the number of its rows
    in each cluster; the root runs a weighted ``KMeans(n_clusters=k)`` on all those
    centroids and returns a plain fitted clone of the template (``KMeans`` or
    ``MiniBatchKMeans``, with the template's parameters) whose ``cluster_centers_``
    are the reclustered centres. The centroids are weighed by their clusters' rows
    only: :func:`daskfuse.fuse` refuses other ``weights``. Combine concatenates; the
    root orders the centroids by partition, so that the result does not depend on
    ``split_every``.

    The fused model's ``inertia_`` is not the inertia of the training rows (they are
    not at the root) but an upper bound on it: the sum, over every local cluster, of
    its rows' squared distances to their mean plus its rows times the squared
    distance from that mean to the nearest fused centre (equal when all of a local
    cluster's rows keep that fused centre as their nearest). For already fitted
    models (no rows) the models' centres and inertias stand in for the means, and
    the bound is approximate. ``n_iter_`` is the reclustering's. It has no
    ``labels_`` (the training rows' clusters are not known at the root;
    :class:`~daskfuse.FusedClusterer` sets its own ``labels_`` by ``predict``). For a
    ``MiniBatchKMeans``, ``n_steps_`` is the total of the partitions' steps, and a
    later ``partial_fit`` starts from the fused centres with small counts.

    With the partition's rows at hand (``split=True``, not for already fitted
    models), each local cluster is sent as two half-weight points along its
    principal direction rather than as its centroid (same mean, same largest
    variance), so that a partition whose k-means merged two blobs into one cluster
    does not drag a fused centre between them. The direction and the spread along it
    are those of at most 256 of the cluster's rows (``SPLIT_ROWS``): in a partition of
    at least 2,048 rows per cluster (32,768 rows from 16 clusters on), those the
    cluster has among runs of 64 consecutive rows spread evenly over the partition
    (``RUN_ROWS``), where it has 128 or more of them; else its rows evenly spaced. The
    sizes, means and sums of squares are those of all its rows.

    Parameters
    ----------
    split : bool, default=True
        Send two points per local cluster (its mean plus and minus its standard
        deviation along its principal direction) instead of its centroid. This reads
        at most 256 rows of each cluster once more.
    n_init : int, default=10
        Initialisations of the weighted k-means on the centroids (it is small:
        ``n_partitions * k`` points).
    random_state : int or None, default=0
        Seed of the reclustering; an int makes the fused model reproducible.
    init_sample : int, "auto" or None, default="auto"
        A partition's ``KMeans(init="k-means++")`` with one initialisation (``n_init``
        1 or ``"auto"``) is seeded by k-means++ on a uniform sample of this many of
        its rows rather than on all of them, as ``MiniBatchKMeans`` does with its
        ``init_size``; Lloyd's iterations then run on all rows. k-means++ costs about
        ``2 + log(k)`` passes over the rows per centre, more than the iterations on
        well-separated data, and the reclustering of split points corrects a
        partition whose seeds fell poorly. ``"auto"`` is ``max(10_000, 200 * k)``
        rows; None seeds on all rows. The sample is drawn from the partition's
        ``random_state``, so a seeded fit stays reproducible. Other estimators and
        initialisations are fitted as given.

    Examples
    --------
    >>> from daskfuse.fusion.cluster import Recluster
    >>> Recluster(n_init=5)
    Recluster(split=True, n_init=5, random_state=0, init_sample='auto')
    """

    name = "recluster"
    requirement = "reclustering needs a KMeans or MiniBatchKMeans model"

    def __init__(self, split=True, n_init=10, random_state=0, init_sample="auto"):
        if not isinstance(split, bool):
            raise ValueError(f"Recluster(split=...) must be True or False; got {split!r}")
        self.n_init = check_int(n_init, "Recluster(n_init=...)", low=1)
        check_int(random_state, "Recluster(random_state=...)", allow_none=True)
        if init_sample != "auto":
            check_int(
                init_sample,
                "Recluster(init_sample=...)",
                low=1,
                allow_none=True,
                expected="an int >= 1, 'auto' or None",
            )
        self.split = split
        self.random_state = random_state
        self.init_sample = init_sample if init_sample in (None, "auto") else int(init_sample)

    def _params(self):
        return {
            "split": self.split,
            "n_init": self.n_init,
            "random_state": self.random_state,
            "init_sample": self.init_sample,
        }

    def first_estimator(self, estimator, X, y):
        """Seed a one-initialisation k-means++ ``KMeans`` from a sample of the rows."""
        if self.init_sample is None or not isinstance(estimator, KMeans):
            return estimator
        params = estimator.get_params()
        if not (isinstance(params["init"], str) and params["init"] == "k-means++"):
            return estimator
        if params["n_init"] not in ("auto", 1):
            return estimator
        k = params["n_clusters"]
        size = max(10_000, 200 * k) if self.init_sample == "auto" else self.init_sample
        if len(X) <= max(size, k):
            return estimator
        rng = check_random_state(params["random_state"])
        sample = np.sort(rng.choice(len(X), size=size, replace=False))
        centers, _ = kmeans_plusplus(np.asarray(X[sample], dtype=float), k, random_state=rng)
        return estimator.set_params(init=centers, n_init=1)

    def supports(self, estimator):
        return isinstance(estimator, KMeans | MiniBatchKMeans)

    def tags(self, estimator):
        """Fused from fitted models too; rounds run k-means from the fused centres."""
        return replace(
            super().tags(estimator),
            from_models=True,
            rounds_reason=None,
            # the partitions' clusters are kept: new ones join them and are reclustered
            partial_fit_reason=None,
            given_weights_reason=(
                f"{self!r} weighs each centroid by the rows of its cluster and has no use "
                "for other weights"
            ),
            # with sample weights: by the total weight of its cluster's rows
            sample_weight_reason=None,
        )

    def local_fit(self, template, feedback, X, y, info):
        """Run ``local_epochs`` k-means iterations from the fused centres."""
        estimator = clone(template).set_params(
            init=np.array(feedback.cluster_centers_, dtype=float),  # a copy: never the shared model
            n_init=1,
            max_iter=info["local_epochs"],
        )
        if info.get("seed") is not None:
            estimator.set_params(random_state=info["seed"])
        with quiet_warnings(ConvergenceWarning):
            return estimator.fit(X)

    def change(self, previous, current):
        """Relative move of the centres, matched one to one (the labels may permute)."""
        a = np.asarray(previous.cluster_centers_, dtype=float)
        b = np.asarray(current.cluster_centers_, dtype=float)
        cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        rows, cols = linear_sum_assignment(cost)
        return float(np.sqrt(cost[rows, cols].sum() / max((a**2).sum(), 1e-300)))

    def summarize(self, estimator, X, y, info):
        centers = np.asarray(estimator.cluster_centers_, dtype=float)
        weights = info.get("sample_weight")
        weights = None if weights is None else np.asarray(weights, dtype=float)
        labels, inertia = _labels_and_inertia(estimator, X, info["index"], weights)
        if X is None:
            sizes = np.bincount(labels, minlength=len(centers)).astype(float)
            means, within, points, weights = centers, inertia, centers, sizes
        else:
            # the rows' own means, not the model's centres: MiniBatchKMeans' centres
            # (and a KMeans stopped by tol) are not quite the means of the rows they
            # label, and the inertia bound of finalize needs the means. The fit's
            # inertia is summed in the fit's precision: float64 only
            exact = estimator.cluster_centers_.dtype == np.float64
            sizes, means, within, points, weights = _cluster_summary(
                np.asarray(X, dtype=float),
                labels,
                centers,
                self.split,
                weights,
                inertia if exact else None,
            )
        part = CentroidPart(
            info["index"],
            means,
            sizes,
            within,
            points,
            weights,
            getattr(estimator, "n_steps_", None),
        )
        return Centroids([part], float(sizes.sum()))

    def combine(self, summaries):
        return Centroids([p for s in summaries for p in s.parts])

    def finalize(self, summary, template, meta):
        parts = sorted(summary.parts, key=lambda p: p.index)
        points = np.concatenate([p.points for p in parts])
        weights = np.concatenate([p.weights for p in parts])
        # an empty local cluster says nothing about the data
        keep = weights > 0
        k = template.get_params()["n_clusters"]
        n_distinct = len(np.unique(points[keep], axis=0))
        if n_distinct < k:
            raise FusionError(
                f"{self!r}: the partitions' clusters give {n_distinct} distinct points "
                f"in all, fewer than n_clusters={k}"
            )
        recluster = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state)
        recluster.fit(points[keep], sample_weight=weights[keep])
        centers = recluster.cluster_centers_
        fused = _prime(template, centers)
        # A row x of local cluster j (mean m_j, n_j rows) is no farther from its
        # nearest fused centre than from c_j, the one nearest m_j, and
        # sum_j |x - c_j|^2 = SS_j + n_j |m_j - c_j|^2 exactly, m_j being the mean.
        means = np.concatenate([p.means for p in parts])
        sizes = np.concatenate([p.sizes for p in parts])
        moved = ((means[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).min(axis=1)
        fused.inertia_ = float(sum(p.within for p in parts) + sizes @ moved)
        fused.n_iter_ = int(recluster.n_iter_)
        if isinstance(fused, MiniBatchKMeans) and all(p.n_steps is not None for p in parts):
            fused.n_steps_ = int(sum(p.n_steps for p in parts))
        return stamp_inputs(fused, meta)
