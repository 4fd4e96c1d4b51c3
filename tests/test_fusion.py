"""Fusion fidelity: the fused parameters are the numbers the strategy promises."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    PassiveAggressiveClassifier,
    PassiveAggressiveRegressor,
    Perceptron,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.svm import LinearSVC, LinearSVR

from daskfuse import FusedClassifier, FusedClusterer, FusedRegressor, fuse
from daskfuse.fusion import Average, Recluster, Weighted

CHUNKS = (300, 700, 1000, 2000)


def _local_models(estimator, X, y, chunks):
    edges = np.concatenate([[0], np.cumsum(chunks)])
    return [clone(estimator).fit(X[a:b], y[a:b]) for a, b in zip(edges[:-1], edges[1:])]


@pytest.mark.parametrize(
    "fusion, weights",
    [
        (Weighted(), CHUNKS),
        ("weighted", CHUNKS),
        (Average(), (1, 1, 1, 1)),
        ("average", (1, 1, 1, 1)),
        (Weighted(by=[4.0, 0.0, 1.0, 2.5]), (4.0, 0.0, 1.0, 2.5)),
    ],
)
def test_binary_fusion_is_weighted_mean_of_partition_models(
    scheduler, binary_data, fusion, weights
):
    X, y = binary_data
    Xd, yd = da.from_array(X, chunks=(CHUNKS, -1)), da.from_array(y, chunks=(CHUNKS,))
    clf = FusedClassifier(LogisticRegression(), fusion=fusion).fit(Xd, yd)

    local = _local_models(LogisticRegression(), X, y, CHUNKS)
    w = np.asarray(weights, dtype=float)[:, None]
    coef = sum(wi * m.coef_ for wi, m in zip(w, local)) / w.sum()
    intercept = sum(wi * m.intercept_ for wi, m in zip(w, local)) / w.sum()

    fused = clf.fused_estimator_
    assert type(fused) is LogisticRegression
    assert fused.coef_.shape == (1, X.shape[1])
    assert_allclose(fused.coef_, coef, rtol=1e-10)
    assert_allclose(fused.intercept_, intercept, rtol=1e-10)
    assert_array_equal(clf.classes_, [0, 1])
    assert clf.partition_report_["rows"].tolist() == list(CHUNKS)
    assert_allclose(clf.partition_report_["weight"], np.asarray(weights, dtype=float))


def test_regression_fusion_is_row_weighted_mean(scheduler, regression_data):
    X, y = regression_data
    chunks = (500, 1000, 1500)
    reg = FusedRegressor(Ridge(alpha=3.0), fusion="weighted").fit(
        da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,))
    )
    local = _local_models(Ridge(alpha=3.0), X, y, chunks)
    n = np.asarray(chunks, dtype=float)
    assert_allclose(
        reg.fused_estimator_.coef_,
        sum(k * m.coef_ for k, m in zip(n, local)) / n.sum(),
        rtol=1e-10,
    )
    assert isinstance(reg.fused_estimator_.intercept_, float)
    assert_allclose(
        reg.fused_estimator_.intercept_,
        sum(k * m.intercept_ for k, m in zip(n, local)) / n.sum(),
        rtol=1e-10,
    )


@pytest.mark.parametrize("labels", [np.array([0, 1, 2]), np.array(["ant", "bee", "cat"])])
@pytest.mark.parametrize(
    "estimator, scale",
    [(LogisticRegression(), 0.5), (SGDClassifier(random_state=0), 1.0)],
    ids=["multinomial", "one-vs-rest"],
)
def test_partition_lacking_a_class_is_aligned_by_label(labels, estimator, scale):
    """Partition 0 sees classes {0, 1} only, partition 2 sees {1, 2}: rows realign."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(900, 4))
    codes = np.concatenate(
        [rng.integers(0, 2, 300), rng.integers(0, 3, 300), rng.integers(1, 3, 300)]
    )
    X += codes[:, None] * 1.5
    y = labels[codes]
    chunks = (300, 300, 300)
    clf = FusedClassifier(estimator).fit(
        da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,))
    )
    local = _local_models(estimator, X, y, chunks)

    # each partition's rows, laid out per class: a binary model w is (-s*w, s*w)
    rows = np.zeros((3, 3, 4))
    icpt = np.zeros((3, 3))
    seen = np.zeros((3, 3))
    for p, m in enumerate(local):
        idx = np.searchsorted(labels, m.classes_)
        if len(m.classes_) == 2:
            rows[p, idx] = [-scale * m.coef_[0], scale * m.coef_[0]]
            icpt[p, idx] = [-scale * m.intercept_[0], scale * m.intercept_[0]]
        else:
            rows[p, idx], icpt[p, idx] = m.coef_, m.intercept_
        seen[p, idx] = 300
    expected_coef = (rows * seen[:, :, None]).sum(0) / seen.sum(0)[:, None]
    expected_icpt = (icpt * seen).sum(0) / seen.sum(0)

    assert_array_equal(clf.classes_, labels)
    assert_array_equal(clf.fused_estimator_.classes_, labels)
    assert_allclose(clf.fused_estimator_.coef_, expected_coef, rtol=1e-10)
    assert_allclose(clf.fused_estimator_.intercept_, expected_icpt, rtol=1e-10)
    assert set(clf.predict(X)) <= set(labels)
    assert clf.score(X, y) > 0.6


@pytest.mark.parametrize("split_every", [2, 3, 8])
def test_result_does_not_depend_on_split_every(binary_data, split_every):
    X, y = binary_data
    common = dict(n_partitions=9, partition="random", random_state=0)
    reference = FusedClassifier(LogisticRegression(), split_every=100, **common).fit(X, y)
    clf = FusedClassifier(LogisticRegression(), split_every=split_every, **common).fit(X, y)
    assert_allclose(clf.fused_estimator_.coef_, reference.fused_estimator_.coef_, rtol=1e-12)
    assert_allclose(
        clf.fused_estimator_.intercept_, reference.fused_estimator_.intercept_, rtol=1e-12
    )


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    chunks=st.lists(st.integers(60, 400), min_size=1, max_size=7),
    split_every=st.integers(2, 9),
)
def test_weighted_mean_for_any_chunking_and_tree(chunks, split_every):
    rng = np.random.default_rng(len(chunks))
    n = sum(chunks)
    X = rng.normal(size=(n, 3))
    y = X @ [1.0, -1.0, 2.0] + rng.normal(size=n)
    reg = FusedRegressor(LinearRegression(), fusion="weighted", split_every=split_every).fit(
        da.from_array(X, chunks=(tuple(chunks), -1)), da.from_array(y, chunks=(tuple(chunks),))
    )
    local = _local_models(LinearRegression(), X, y, chunks)
    w = np.asarray(chunks, dtype=float)
    assert_allclose(
        reg.fused_estimator_.coef_,
        sum(k * m.coef_ for k, m in zip(w, local)) / w.sum(),
        rtol=1e-9,
    )


CLASSIFIERS = [
    LogisticRegression(),
    SGDClassifier(random_state=0),
    LinearSVC(),
    RidgeClassifier(),
    Perceptron(random_state=0),
    PassiveAggressiveClassifier(random_state=0),
]
REGRESSORS = [
    Ridge(),
    LinearRegression(),
    Lasso(alpha=0.01),
    ElasticNet(alpha=0.01),
    SGDRegressor(random_state=0),
    LinearSVR(random_state=0),
    PassiveAggressiveRegressor(random_state=0),
]


def _ids(est):
    return type(est).__name__


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("estimator", CLASSIFIERS, ids=_ids)
def test_classifier_accuracy_close_to_full_data_fit(estimator, n_classes):
    """Random partitions of generated data: fused accuracy within 1 point of one fit."""
    from tests.conftest import make_classification_data

    X, y = make_classification_data(n=24000, n_classes=n_classes, noise=1.0, seed=5)
    X_test, y_test = X[20000:], y[20000:]
    X, y = X[:20000], y[:20000]
    clf = FusedClassifier(estimator, partition="random", n_partitions=4, random_state=0)
    clf.fit(X, y)
    full = clone(estimator).fit(X, y)
    assert type(clf.fused_estimator_) is type(estimator)
    assert clf.fused_estimator_.coef_.shape == full.coef_.shape
    assert_array_equal(clf.predict(X_test), clf.fused_estimator_.predict(X_test))
    assert clf.score(X_test, y_test) >= full.score(X_test, y_test) - 0.01


@pytest.mark.parametrize("estimator", REGRESSORS, ids=_ids)
def test_regressor_r2_close_to_full_data_fit(estimator, regression_data):
    X, y = regression_data
    reg = FusedRegressor(estimator, partition="random", n_partitions=4, random_state=0)
    reg.fit(X[:2400], y[:2400])
    full = clone(estimator).fit(X[:2400], y[:2400])
    assert type(reg.fused_estimator_) is type(estimator)
    assert_allclose(reg.predict(X[2400:]), reg.fused_estimator_.predict(X[2400:]))
    assert reg.score(X[2400:], y[2400:]) >= full.score(X[2400:], y[2400:]) - 0.01


def test_multioutput_ridge(regression_data):
    X, y = regression_data
    Y = np.column_stack([y, -2 * y + 1])
    reg = FusedRegressor(Ridge(), n_partitions=3).fit(X, Y)
    assert reg.fused_estimator_.coef_.shape == (2, X.shape[1])
    assert reg.predict(X).shape == Y.shape
    assert reg.score(X, Y) > 0.95


def test_score_weighting_uses_held_out_rows(binary_data):
    X, y = binary_data
    clf = FusedClassifier(
        LogisticRegression(),
        fusion=Weighted(by="score", holdout=0.25),
        n_partitions=4,
        random_state=0,
    ).fit(X, y)
    report = clf.partition_report_
    assert report["holdout_score"].between(0.5, 1).all()
    assert_allclose(report["weight"], report["holdout_score"])
    assert clf.score(X, y) > 0.85


def test_weighted_by_huge_finite_weights_does_not_overflow(on_cluster, regression_data):
    X, y = regression_data
    chunks = (500, 1000, 1500)
    Xd, yd = da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,))
    ordinary = [3.0, 1.0, 7.0]
    # each weight finite, their sum 11 * 2**1021 not
    huge = np.ldexp(ordinary, 1021)
    fits = [
        FusedRegressor(LinearRegression(), fusion=Weighted(by=w)).fit(Xd, yd)
        for w in (ordinary, huge)
    ]
    plain, big = (f.fused_estimator_ for f in fits)
    assert np.all(np.isfinite(big.coef_))
    # scaled by a power of two inside the sums: bitwise the ordinary weights' model
    assert_array_equal(big.coef_, plain.coef_)
    assert big.intercept_ == plain.intercept_
    # the partition report shows the weights as given
    assert_array_equal(fits[1].partition_report_["weight"], huge)


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("estimator", [KMeans(1), MiniBatchKMeans(1, batch_size=64)], ids=repr)
def test_recluster_weighs_centroids_by_cluster_size(on_cluster, estimator, split):
    # a 900-row and a 100-row partition far apart: only weighting each centroid by
    # its rows gives the global mean; an unweighted mean of centroids is 4 units off
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 1.0, (900, 2)), rng.normal([10.0, 5.0], 1.0, (100, 2))])
    unweighted = (X[:900].mean(axis=0) + X[900:].mean(axis=0)) / 2
    assert np.linalg.norm(unweighted - X.mean(axis=0)) > 3
    fusion = Recluster(split=split)
    Xd = da.from_array(X, chunks=((900, 100), -1))
    fitted = FusedClusterer(estimator, fusion=fusion, random_state=0).fit(Xd)
    assert_allclose(fitted.fused_estimator_.cluster_centers_, [X.mean(axis=0)], rtol=1e-10)
    # fitted elsewhere: each model's centre (for MiniBatchKMeans an estimate of its
    # rows' mean) weighted by its cluster size, from its labels_
    models = [clone(estimator).set_params(random_state=0).fit(p) for p in (X[:900], X[900:])]
    fused = fuse(models, fusion)
    centers = [m.cluster_centers_[0] for m in models]
    assert_allclose(fused.cluster_centers_, [(900 * centers[0] + 100 * centers[1]) / 1000])
    if isinstance(estimator, KMeans):
        assert_allclose(fused.cluster_centers_, [X.mean(axis=0)], rtol=1e-10)
