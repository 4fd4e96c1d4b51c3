"""Clustering fusion: weighted reclustering of the partitions' centroids."""

from __future__ import annotations

import io
import pickle
import tracemalloc

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.cluster import AgglomerativeClustering, BisectingKMeans, KMeans, MiniBatchKMeans
from sklearn.datasets import make_blobs

from daskfuse import FusedClusterer, FusionError
from daskfuse.fusion.cluster import (
    RUN_ROWS,
    SAMPLE_ROWS,
    SPLIT_ROWS,
    Recluster,
    _cluster_summary,
    _principal_directions,
    _split_rows,
)

K = 8


@pytest.fixture
def blobs():
    """Eight overlapping blobs: local k-means runs do get stuck in poor optima."""
    X, blob = make_blobs(n_samples=6000, centers=K, n_features=4, cluster_std=1.5, random_state=0)
    return X, blob


def _by_blob(X, blob, n_partitions=4):
    """A dask array whose row blocks each hold only one or two blobs (skewed)."""
    order = np.argsort(blob, kind="stable")
    return da.from_array(X[order], chunks=(len(X) // n_partitions, -1))


def _inertia(X, centers):
    return ((X[:, None, :] - centers[None]) ** 2).sum(axis=2).min(axis=1).sum()


def _modules(obj):
    """Top-level modules of the classes and functions a pickle of ``obj`` refers to."""
    found = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(module.split(".")[0])
            return super().find_class(module, name)

    Recorder(io.BytesIO(pickle.dumps(obj))).load()
    return found


@pytest.mark.parametrize("layout", ["random", "by-blob"])
@pytest.mark.parametrize("estimator, bound", [(KMeans(K), 1.01), (MiniBatchKMeans(K), 1.02)])
def test_fused_inertia_is_within_bound_of_kmeans_on_all_rows(
    scheduler, blobs, layout, estimator, bound
):
    X, blob = blobs
    if layout == "random":
        data = X
        model = FusedClusterer(
            estimator, fusion=Recluster(), n_partitions=4, partition="random", random_state=0
        ).fit(data)
    else:
        data = _by_blob(X, blob)
        model = FusedClusterer(estimator, fusion=Recluster(), random_state=0).fit(data)
    reference = KMeans(n_clusters=K, random_state=0).fit(X).inertia_
    fused = model.fused_estimator_
    inertia = -fused.score(X)

    # KMeans: within 1% of scikit-learn's KMeans on all rows (1.0000 to 1.0006 over
    # 30 seeds); MiniBatchKMeans partitions: within 2% (at most 1.0094 over 30 seeds)
    assert inertia <= bound * reference
    assert type(fused) is type(estimator)
    assert fused.cluster_centers_.shape == (K, X.shape[1])
    assert model.n_partitions_ == 4
    assert_array_equal(np.asarray(model.labels_), fused.predict(np.asarray(data)))
    # inertia_ is an upper bound on the training rows' inertia under the fused centres
    assert inertia <= fused.inertia_ * (1 + 1e-12)
    assert_allclose(inertia, _inertia(X, fused.cluster_centers_), rtol=1e-10)
    assert not hasattr(fused, "labels_")


def test_recluster_finds_every_blob_despite_label_permutation(blobs):
    X, blob = blobs
    model = FusedClusterer(KMeans(K), fusion=Recluster(), random_state=0).fit(_by_blob(X, blob))
    truth = np.array([X[blob == b].mean(axis=0) for b in range(K)])
    centers = model.fused_estimator_.cluster_centers_
    distance = np.sqrt(((truth[:, None] - centers[None]) ** 2).sum(axis=2))
    # one fused centre near each blob, and a different one for each blob
    assert distance.min(axis=1).max() < 0.3
    assert len(set(distance.argmin(axis=1))) == K


def _fused_inertia_ratios(X):
    """Inertia on ``X`` of the fusion of 4 random partitions' KMeans, without and with
    split points, over that of one KMeans on all rows."""
    reference = KMeans(n_clusters=K, random_state=0).fit(X).inertia_
    ratios = []
    for split in (False, True):
        model = FusedClusterer(
            KMeans(K),
            fusion=Recluster(split=split),
            n_partitions=4,
            partition="random",
            random_state=0,
        ).fit(X)
        ratios.append(-model.score(X) / reference)
    return ratios


def test_splitting_clusters_repairs_partitions_stuck_in_poor_optima(blobs):
    X, _ = blobs
    without, with_split = _fused_inertia_ratios(X)
    # with these seeds two of the four partitions merge two blobs into one cluster;
    # their centroids alone drag a fused centre between the blobs
    assert without > 1.03
    assert with_split < 1.002


def test_split_points_from_runs_of_rows_repair_large_partitions(scheduler):
    # partitions of 20,000 rows: each cluster's split rows come from the runs of rows
    # spread over the partition (_split_rows), not from a scan of all its rows
    X, _ = make_blobs(n_samples=80_000, centers=K, n_features=4, cluster_std=1.5, random_state=0)
    assert len(X) // 4 >= 4 * min(2 * SPLIT_ROWS * K, SAMPLE_ROWS)

    # a partition merges two blobs here too: 1.022 without the split points
    without, with_split = _fused_inertia_ratios(X)
    assert without > 1.01
    assert with_split < 1.002


@pytest.mark.parametrize(
    "estimator", [KMeans(K, random_state=1), MiniBatchKMeans(K, random_state=1)]
)
def test_recluster_does_not_depend_on_split_every(blobs, estimator):
    X, _ = blobs
    Xd = da.from_array(X, chunks=(750, -1))
    fitted = [
        FusedClusterer(estimator, fusion=Recluster(), split_every=s).fit(Xd).fused_estimator_
        for s in (2, 3, 8)
    ]
    for other in fitted[1:]:
        assert_allclose(other.cluster_centers_, fitted[0].cluster_centers_, rtol=1e-12)
        assert other.inertia_ == pytest.approx(fitted[0].inertia_, rel=1e-12)


def test_fused_clusterer_is_plain_and_picklable(on_cluster, blobs):
    X, _ = blobs
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = FusedClusterer(
        MiniBatchKMeans(K, random_state=0), fusion=Recluster(), n_partitions=3
    ).fit(frame)
    fused = model.fused_estimator_
    assert _modules(fused) <= {"sklearn", "numpy", "builtins", "copyreg", "_codecs"}
    assert_array_equal(fused.feature_names_in_, ["a", "b", "c", "d"])
    restored = pickle.loads(pickle.dumps(fused))
    assert_array_equal(restored.predict(frame), model.predict(frame))
    assert_allclose(restored.transform(frame), model.transform(frame))
    assert restored.score(frame) == fused.score(frame)
    # the template's parameters, not those of the priming fit
    assert restored.get_params() == MiniBatchKMeans(K, random_state=0).get_params()
    # the partitions' mini-batch steps in all, not the single step of the priming fit
    assert fused.n_steps_ >= 3 * 2


def test_recluster_fuses_already_fitted_models(blobs):
    X, _ = blobs
    fuser = Recluster()
    parts = np.array_split(np.arange(len(X)), 3)
    # without the rows, clusters cannot be split: the local fits must be good ones
    models = [KMeans(K, n_init=10, random_state=i).fit(X[rows]) for i, rows in enumerate(parts)]
    summaries = [
        fuser.summarize(
            m,
            None,
            None,
            {"index": i, "n_rows": len(r), "holdout_score": None, "classes": None, "seed": None},
        )
        for i, (m, r) in enumerate(zip(models, parts))
    ]
    summary = fuser.combine([summaries[2], fuser.combine(summaries[:2])])
    fused = fuser.finalize(summary, KMeans(K), {"n_features_in_": 4})
    reference = KMeans(n_clusters=K, random_state=0).fit(X).inertia_
    assert -fused.score(X) <= 1.01 * reference
    assert fused.n_features_in_ == 4


def test_cluster_sizes_come_from_predict_without_labels(blobs):
    X, _ = blobs
    model = FusedClusterer(
        MiniBatchKMeans(K, compute_labels=False, random_state=0),
        fusion=Recluster(),
        n_partitions=2,
    ).fit(X)
    assert model.partition_report_["weight"].tolist() == [3000.0, 3000.0]
    with pytest.raises(FusionError, match="compute_labels=True"):
        Recluster().summarize(
            MiniBatchKMeans(K, compute_labels=False, random_state=0).fit(X),
            None,
            None,
            {"index": 0, "n_rows": len(X), "holdout_score": None, "classes": None, "seed": None},
        )


@pytest.mark.parametrize(
    "estimator", [BisectingKMeans(3), AgglomerativeClustering(3)], ids=lambda e: type(e).__name__
)
def test_recluster_rejects_other_clusterers(blobs, estimator):
    X, _ = blobs
    with pytest.raises(FusionError, match="KMeans or MiniBatchKMeans"):
        FusedClusterer(estimator, fusion=Recluster(), n_partitions=2).fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_init": 0}, "n_init"),
        ({"n_init": 1.5}, "n_init"),
        ({"random_state": "zero"}, "random_state"),
        ({"split": "yes"}, "split"),
        ({"init_sample": 0}, "init_sample"),
        ({"init_sample": "all"}, "init_sample"),
        ({"init_sample": True}, "init_sample"),
    ],
)
def test_recluster_parameters_are_checked(params, match):
    with pytest.raises(ValueError, match=match):
        Recluster(**params)


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")
def test_too_few_clusters_in_all_partitions(blobs):
    X, _ = blobs
    one = np.repeat(X[:1], 40, axis=0)
    with pytest.raises(FusionError, match="distinct points in all, fewer than n_clusters=3"):
        FusedClusterer(KMeans(3), fusion=Recluster(), n_partitions=2).fit(one)


def _large_blobs():
    X, _ = make_blobs(n_samples=80_000, centers=K, n_features=4, cluster_std=1.5, random_state=3)
    return X


def test_partitions_seed_kmeans_from_a_sample_of_their_rows():
    X = _large_blobs()[:30_000]
    fuser = Recluster(init_sample=5_000)
    seeded = fuser.first_estimator(KMeans(K, random_state=4), X, None)
    init = seeded.get_params()["init"]
    # k-means++ seeds, all of them rows of the partition, drawn from the seed
    assert init.shape == (K, X.shape[1])
    assert all((X == row).all(axis=1).any() for row in init)
    again = fuser.first_estimator(KMeans(K, random_state=4), X, None).get_params()["init"]
    assert_array_equal(init, again)
    assert seeded.get_params()["n_init"] == 1
    # left as given: few rows, several inits, another init, MiniBatchKMeans, None
    for estimator, rows, given in [
        (KMeans(K), X[:5_000], None),
        (KMeans(K, n_init=3), X, None),
        (KMeans(K, init="random"), X, None),
        (MiniBatchKMeans(K), X, None),
        (KMeans(K), X, Recluster(init_sample=None)),
    ]:
        out = (given or fuser).first_estimator(estimator, rows, None)
        assert isinstance(out.get_params()["init"], str)


@pytest.mark.parametrize("init_sample", ["auto", None])
def test_sampled_seeding_keeps_the_inertia_within_one_percent(init_sample):
    X = _large_blobs()
    reference = KMeans(n_clusters=K, n_init=1, random_state=0).fit(X).inertia_
    models = [
        FusedClusterer(
            KMeans(K),
            fusion=Recluster(init_sample=init_sample),
            n_partitions=4,
            partition="random",
            random_state=0,
        ).fit(X)
        for _ in range(2)
    ]
    # 20,000 rows a partition: "auto" seeds each from 10,000 of them
    assert -models[0].score(X) <= 1.01 * reference
    assert_array_equal(
        models[0].fused_estimator_.cluster_centers_, models[1].fused_estimator_.cluster_centers_
    )


# ------------------------------------------------- the partition summary (issue 17)
def _direct(X, labels, k, weights=None):
    """Sizes, means and within-cluster sum of squares summed row by row."""
    w = np.ones(len(X)) if weights is None else weights
    sizes = np.array([w[labels == j].sum() for j in range(k)])
    means = np.array([w[labels == j] @ X[labels == j] / sizes[j] for j in range(k)])
    within = sum(w[labels == j] @ ((X[labels == j] - means[j]) ** 2).sum(axis=1) for j in range(k))
    return sizes, means, within


def _info(weights=None):
    return {
        "index": 0,
        "n_rows": None,
        "holdout_score": None,
        "classes": None,
        "seed": None,
        "sample_weight": weights,
    }


@pytest.mark.parametrize(
    "estimator, stops",
    [
        (KMeans(K, n_init=1, random_state=0), "converged"),
        (KMeans(K, n_init=1, max_iter=2, random_state=0), "max_iter"),
        (KMeans(K, n_init=1, tol=0.5, random_state=0), "tol"),
        (KMeans(K, n_init=1, max_iter=1, algorithm="elkan", random_state=0), "max_iter"),
        (MiniBatchKMeans(K, n_init=1, random_state=0), "mini-batch"),
        (MiniBatchKMeans(K, n_init=1, compute_labels=False, random_state=0), "mini-batch"),
    ],
    ids=["converged", "max_iter", "tol", "elkan-max_iter", "minibatch", "minibatch-no-labels"],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_summary_from_the_fits_inertia_equals_the_direct_sums(blobs, estimator, stops, weighted):
    X, _ = blobs
    weights = np.random.default_rng(1).integers(0, 4, len(X)).astype(float) if weighted else None
    fitted = clone(estimator).fit(X, sample_weight=weights)
    if stops == "max_iter":
        assert fitted.n_iter_ == estimator.max_iter
    part = Recluster().summarize(fitted, X, None, _info(weights)).parts[0]
    labels = fitted.predict(X)
    sizes, means, within = _direct(X, labels, K, weights)
    assert_array_equal(part.sizes, sizes)
    assert_allclose(part.means, means, rtol=1e-12)
    if stops != "converged":
        # the centres are not the means: the inertia carries n_j |m_j - c_j|^2 too
        assert fitted.inertia_ > within * (1 + 1e-6)
    assert part.within == pytest.approx(within, rel=1e-10)


def test_summary_of_a_float32_fit_sums_the_squares_itself(blobs):
    # a float32 fit sums its inertia in float32: the summary does not use it
    X = blobs[0].astype(np.float32)
    fitted = KMeans(K, n_init=1, max_iter=2, random_state=0).fit(X)
    part = Recluster().summarize(fitted, X, None, _info()).parts[0]
    sizes, means, within = _direct(X.astype(float), fitted.labels_, K)
    assert part.within == pytest.approx(within, rel=1e-10)
    assert abs(fitted.inertia_ - within) / within > 1e-9  # the fit's figure is off


def test_split_points_of_a_large_cluster_come_from_evenly_spaced_rows():
    rng = np.random.default_rng(2)
    n = 3 * SPLIT_ROWS + 5
    X = rng.normal(size=(n, 3)) * [3.0, 1.0, 0.5] + 10.0
    labels = np.zeros(n, dtype=np.int32)
    labels[::7] = 1  # a second cluster, of fewer than SPLIT_ROWS rows: all of them
    sizes, means, _, points, halves = _cluster_summary(X, labels, np.zeros((2, 3)), True)
    large = X[labels == 0]
    step = -(-len(large) // SPLIT_ROWS)
    assert step > 1
    for j, rows in enumerate([large[::step], X[labels == 1]]):
        assert len(rows) <= SPLIT_ROWS
        centered = rows - means[j]
        values, vectors = np.linalg.eigh(centered.T @ centered)
        std, v = np.sqrt(values[-1] / len(rows)), vectors[:, -1]
        assert_allclose(
            np.sort(points[2 * j : 2 * j + 2], axis=0),
            np.sort([means[j] - std * v, means[j] + std * v], axis=0),
            rtol=1e-12,
        )
        assert_array_equal(halves[2 * j : 2 * j + 2], [sizes[j] / 2] * 2)
    # the first cluster's main axis is the first column
    assert abs(points[1] - points[0])[0] > 5


def test_summary_makes_no_copy_of_the_partition():
    # a dask worker maps every allocation of 128 KiB or more afresh from the system
    X, _ = make_blobs(n_samples=40_000, centers=K, n_features=20, random_state=0)
    fitted = KMeans(K, n_init=1, random_state=0).fit(X)
    tracemalloc.start()
    try:
        Recluster().summarize(fitted, X, None, _info())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 20


def _rows_for(case, rng, d=20, n=300):
    """Centred rows of one cluster of the given shape."""
    if case == "anisotropic":
        rows = rng.normal(size=(n, d)) * np.linspace(3.0, 0.5, d)
    elif case == "two-blobs":
        axis = rng.normal(size=d)
        rows = rng.normal(size=(n, d)) + np.where(np.arange(n) % 2, 5.0, -5.0)[:, None] * axis
    elif case == "axis-aligned":
        # all the spread on one feature: the other eigenvalues are 16 orders smaller
        rows = rng.normal(size=(n, d)) * np.r_[10.0, np.full(d - 1, 1e-8)]
    elif case == "near-tie":
        rows = rng.normal(size=(n, d)) * np.r_[1.0, 0.999, np.full(d - 2, 0.5)]
    elif case == "tie":
        # equal spread along the first two features, none elsewhere
        rows = np.zeros((4, d))
        rows[[0, 1], 0], rows[[2, 3], 1] = (1.0, -1.0), (1.0, -1.0)
    elif case == "equal-rows":
        rows = np.zeros((5, d))
    elif case == "one-row":
        rows = np.zeros((1, d))
    else:  # one feature
        rows = rng.normal(size=(n, 1))
    return rows - rows.mean(axis=0)


@pytest.mark.parametrize(
    "case",
    [
        "anisotropic",
        "two-blobs",
        "axis-aligned",
        "near-tie",
        "tie",
        "equal-rows",
        "one-row",
        "one-feature",
    ],
)
def test_principal_directions_by_squaring_are_the_top_eigenpairs(case):
    rng = np.random.default_rng(4)
    first = _rows_for(case, rng)
    # a second cluster in the same stack: each is worked out on its own
    clusters = [first, _rows_for("anisotropic", rng, d=first.shape[1])]
    scatter = np.stack([r.T @ r for r in clusters])
    counts = np.array([len(r) for r in clusters], dtype=float)
    vectors, mean_square = _principal_directions(scatter, counts)
    values, eigvectors = np.linalg.eigh(scatter)
    assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-14)
    for j, rows in enumerate(clusters):
        top = values[j, -1] / counts[j]
        # the mean square is that of the rows' projections on the direction found
        projected = np.mean((rows @ vectors[j]) ** 2)
        assert mean_square[j] == pytest.approx(projected, rel=1e-12, abs=1e-300)
        if case in ("equal-rows", "one-row") and j == 0:
            assert mean_square[j] == 0.0
            continue
        # the largest mean square of any direction: to rounding where the top
        # eigenvalue stands apart, within 1e-4 where the next is 0.2 % below it
        assert mean_square[j] == pytest.approx(top, rel=1e-4 if case == "near-tie" else 1e-12)
        if case not in ("near-tie", "tie") or j == 1:
            assert abs(vectors[j] @ eigvectors[j, :, -1]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n_features", [80, 300])
def test_split_points_with_many_features_keep_the_principal_direction(n_features):
    # above 64 features each cluster is decomposed on its own; above 256 its
    # direction comes from power iteration on its rows
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, n_features)) * np.r_[6.0, np.ones(n_features - 1)]
    labels = np.repeat(np.arange(2, dtype=np.int32), 300)
    X[300:] += 50.0
    sizes, means, _, points, halves = _cluster_summary(X, labels, np.zeros((2, n_features)), True)
    for j in range(2):
        rows = X[labels == j][:: -(-300 // SPLIT_ROWS)] - means[j]
        values, vectors = np.linalg.eigh(rows.T @ rows)
        step = (points[2 * j + 1] - points[2 * j]) / 2
        std = np.linalg.norm(step)
        assert std == pytest.approx(np.sqrt(values[-1] / len(rows)), rel=1e-9)
        assert abs(step / std @ vectors[:, -1]) == pytest.approx(1.0, abs=1e-9)
        assert_allclose((points[2 * j] + points[2 * j + 1]) / 2, means[j], rtol=1e-12)
        assert_array_equal(halves[2 * j : 2 * j + 2], [sizes[j] / 2] * 2)


def _runs(n, n_clusters):
    """The rows that _split_rows reads first for ``n_clusters`` non-empty clusters."""
    runs = max(2, min(2 * SPLIT_ROWS * n_clusters, SAMPLE_ROWS) // RUN_ROWS)
    starts = np.arange(runs) * (n - RUN_ROWS) // (runs - 1)
    return np.unique((starts[:, None] + np.arange(RUN_ROWS)).ravel())


def test_split_rows_of_a_large_partition_come_from_runs_spread_over_it():
    n = 40_000
    rng = np.random.default_rng(6)
    labels = rng.choice(2, size=n, p=[0.6, 0.4]).astype(np.int32)
    sampled = _runs(n, 4)
    outside = np.setdiff1d(np.arange(n), sampled)
    # cluster 2: 40 rows, too few to find in the runs; cluster 3: 1,000 rows that
    # no run reads
    labels[rng.choice(n, 40, replace=False)] = 2
    labels[rng.choice(outside, 1000, replace=False)] = 3
    found = list(_split_rows(labels, 4, np.arange(4)))
    for j in (0, 1):
        rows = found[j]
        assert 0 < len(rows) <= SPLIT_ROWS
        assert np.all(labels[rows] == j) and np.all(np.diff(rows) > 0)
        assert np.isin(rows, sampled).all()
        # spread over the whole partition, not its first rows
        assert rows[0] < n / 20 and rows[-1] > n - n / 20
        inside = sampled[labels[sampled] == j]
        assert_array_equal(rows, inside[:: -(-len(inside) // SPLIT_ROWS)])
    # the others are read on all their rows, evenly spaced
    assert_array_equal(found[2], np.flatnonzero(labels == 2))
    assert_array_equal(found[3], np.flatnonzero(labels == 3)[:: -(-1000 // SPLIT_ROWS)])


def test_split_rows_with_labels_that_repeat_and_with_weights():
    n = 30_000
    labels = (np.arange(n) % 3).astype(np.int32)  # a pattern no sample falls in step with
    found = list(_split_rows(labels, 3, np.arange(3)))
    for j, rows in enumerate(found):
        assert SPLIT_ROWS / 2 <= len(rows) <= SPLIT_ROWS
        assert np.all(labels[rows] == j)
        assert rows[0] < n / 20 and rows[-1] > n - n / 20
    weights = np.where(np.arange(n) % 2 == 0, 0.0, 1.5)
    for j, rows in enumerate(_split_rows(labels, 3, np.arange(3), weights)):
        assert len(rows) >= SPLIT_ROWS / 2
        assert np.all(labels[rows] == j) and np.all(weights[rows] > 0)
