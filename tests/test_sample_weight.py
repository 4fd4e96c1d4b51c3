"""``fit(X, y, sample_weight=...)``: weights carried to every partition's fit and
weighed by the fusion, or refused with the reason (issue 16, item 2)."""

from __future__ import annotations

import dataclasses
import warnings

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    RidgeClassifier,
)
from sklearn.naive_bayes import BernoulliNB, CategoricalNB, ComplementNB, GaussianNB, MultinomialNB
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from daskfuse import FusedClassifier, FusedClusterer, FusedRegressor, FusedTransformer
from daskfuse.exceptions import FusionError, PartitionError
from daskfuse.fusion import (
    DP,
    Cascade,
    Exact,
    Krum,
    Median,
    Secure,
    Stack,
    TrimmedMean,
    Vote,
    Weighted,
)
from daskfuse.partition import Columns


def _data(n=240, p=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X @ np.arange(1.0, p + 1) + 0.5 + rng.normal(size=n)
    labels = np.digitize(X[:, 1] + 0.3 * rng.normal(size=n), [-0.5, 0.5])
    weights = rng.uniform(0.0, 3.0, size=n)
    return X, y, labels, weights


def _close(a, b, rtol):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert_allclose(a, b, rtol=rtol, atol=rtol * max(np.max(np.abs(b)), 1.0))


# ------------------------------------------------------------------- exact fusion
EXACT = [
    ("linear-gram", FusedRegressor, LinearRegression(), Exact(method="gram"), "y"),
    ("linear-qr", FusedRegressor, LinearRegression(), Exact(method="qr"), "y"),
    ("ridge", FusedRegressor, Ridge(alpha=3.0), Exact(), "y"),
    ("ridge-classifier", FusedClassifier, RidgeClassifier(alpha=2.0), Exact(), "labels"),
    ("gaussian-nb", FusedClassifier, GaussianNB(var_smoothing=0.5), Exact(), "labels"),
]


@pytest.mark.parametrize("strategy", ["uniform", "random", "stratified"])
@pytest.mark.parametrize("case", EXACT, ids=[c[0] for c in EXACT])
def test_exact_with_weights_equals_sklearn_with_weights(on_cluster, case, strategy):
    _, meta, estimator, fusion, target = case
    X, y, labels, w = _data()
    y = labels if target == "labels" else y
    fused = meta(estimator, fusion=fusion, n_partitions=3, partition=strategy, random_state=0)
    model = fused.fit(X, y, sample_weight=w).fused_estimator_
    single = estimator.fit(X, y, sample_weight=w)
    for name in ("coef_", "intercept_", "theta_", "var_", "class_prior_", "singular_"):
        if hasattr(single, name):
            _close(getattr(model, name), getattr(single, name), 1e-10)
    # the weights matter: the unweighted fit differs
    unweighted = meta(estimator, fusion=fusion, n_partitions=3).fit(X, y).fused_estimator_
    name = "coef_" if hasattr(single, "coef_") else "theta_"
    assert not np.allclose(getattr(unweighted, name), getattr(model, name), rtol=1e-6)


@pytest.mark.parametrize(
    "estimator", [MultinomialNB(), ComplementNB(), BernoulliNB(), CategoricalNB()], ids=type
)
def test_discrete_naive_bayes_with_weights(on_cluster, estimator):
    X, _, labels, w = _data()
    counts = np.random.default_rng(1).integers(0, 4, size=X.shape)
    model = (
        FusedClassifier(estimator, fusion="exact", n_partitions=3)
        .fit(counts, labels, sample_weight=w)
        .fused_estimator_
    )
    single = estimator.fit(counts, labels, sample_weight=w)
    _close(model.class_count_, single.class_count_, 1e-10)
    for mine, theirs in zip(
        np.atleast_1d(model.feature_log_prob_), np.atleast_1d(single.feature_log_prob_)
    ):
        _close(mine, theirs, 1e-10)


def test_standard_scaler_with_weights(on_cluster):
    X, _, _, w = _data()
    model = (
        FusedTransformer(StandardScaler(), fusion="exact", n_partitions=4)
        .fit(X, sample_weight=w)
        .fused_estimator_
    )
    single = StandardScaler().fit(X, sample_weight=w)
    for name in ("mean_", "var_", "scale_", "n_samples_seen_"):
        _close(getattr(model, name), getattr(single, name), 1e-10)


# ------------------------------------------------------------------- newton
NEWTON = [
    ("multinomial", FusedClassifier, LogisticRegression(tol=1e-10, max_iter=500), "labels"),
    (
        "balanced-binary",
        FusedClassifier,
        LogisticRegression(tol=1e-10, C=0.5, class_weight="balanced", max_iter=500),
        "binary",
    ),
    ("poisson", FusedRegressor, PoissonRegressor(tol=1e-10, alpha=0.1, max_iter=500), "counts"),
]


@pytest.mark.parametrize("case", NEWTON, ids=[c[0] for c in NEWTON])
def test_newton_with_weights_equals_sklearn_with_weights(on_cluster, case):
    _, meta, estimator, target = case
    X, _, labels, w = _data()
    y = {
        "labels": labels,
        "binary": (labels == 2).astype(int),
        "counts": np.random.default_rng(2).poisson(np.exp(0.3 * X[:, 0])),
    }[target]
    model = (
        meta(estimator, fusion="newton", n_partitions=3).fit(X, y, sample_weight=w).fused_estimator_
    )
    single = estimator.fit(X, y, sample_weight=w)
    _close(model.coef_, single.coef_, 1e-6)
    _close(model.intercept_, single.intercept_, 1e-6)


# ------------------------------------------------------------------- repeated rows
def _repeated_by_chunk(X, y, counts, chunk):
    """X, y with every row repeated ``counts`` times within its own chunk of rows,
    as dask arrays whose chunks hold the same rows as ``chunk``-row chunks of X."""
    blocks = range(0, len(X), chunk)
    xs = [np.repeat(X[s : s + chunk], counts[s : s + chunk], axis=0) for s in blocks]
    ys = [np.repeat(y[s : s + chunk], counts[s : s + chunk]) for s in blocks]
    sizes = tuple(len(b) for b in xs)
    return (
        da.from_array(np.concatenate(xs), chunks=(sizes, -1)),
        da.from_array(np.concatenate(ys), chunks=(sizes,)),
    )


@pytest.mark.parametrize(
    "fusion", [Weighted(by="rows"), Exact(), "newton"], ids=["weighted", "exact", "newton"]
)
def test_integer_weights_equal_repeated_rows(on_cluster, fusion):
    X, y, labels, _ = _data()
    counts = np.random.default_rng(3).integers(0, 4, size=len(X))
    counts[:5] = 1  # no chunk without rows
    estimator, meta, target = LinearRegression(), FusedRegressor, y
    if fusion == "newton":
        estimator, meta, target = LogisticRegression(tol=1e-10), FusedClassifier, labels
    chunk = 80
    weighted = meta(estimator, fusion=fusion, partition="chunks").fit(
        da.from_array(X, chunks=(chunk, -1)),
        da.from_array(target, chunks=chunk),
        sample_weight=da.from_array(counts.astype(float), chunks=chunk),
    )
    repeated = meta(estimator, fusion=fusion, partition="chunks").fit(
        *_repeated_by_chunk(X, target, counts, chunk)
    )
    rtol = 1e-6 if fusion == "newton" else 1e-10
    _close(weighted.fused_estimator_.coef_, repeated.fused_estimator_.coef_, rtol)
    _close(weighted.fused_estimator_.intercept_, repeated.fused_estimator_.intercept_, rtol)


def test_weighted_averaging_counts_total_weight(on_cluster):
    """``Weighted(by="rows")`` weighs each partition by its total sample weight."""
    X, y, _, w = _data()
    est = FusedRegressor(LinearRegression(), fusion="weighted", n_partitions=3)
    est.fit(X, y, sample_weight=w)
    totals = [w[s : s + 80].sum() for s in range(0, 240, 80)]
    _close(est.partition_report_["weight"], totals, 1e-12)
    models = [
        LinearRegression().fit(X[s : s + 80], y[s : s + 80], sample_weight=w[s : s + 80])
        for s in range(0, 240, 80)
    ]
    expected = np.average([m.coef_ for m in models], axis=0, weights=totals)
    _close(est.fused_estimator_.coef_, expected, 1e-10)


def test_robust_and_secure_averaging_weigh_by_total_weight(on_cluster):
    """``Median(weighted=True)`` and ``Secure`` over ``Weighted`` weigh each partition by
    its total sample weight (here given as a pandas Series)."""
    X, y, _, w = _data()
    parts = [slice(s, s + 80) for s in range(0, 240, 80)]
    totals = [w[p].sum() for p in parts]
    coefs = [LinearRegression().fit(X[p], y[p], sample_weight=w[p]).coef_ for p in parts]
    median = FusedRegressor(LinearRegression(), fusion=Median(weighted=True), n_partitions=3)
    median.fit(X, y, sample_weight=pd.Series(w))
    _close(median.partition_report_["weight"], totals, 1e-12)
    expected = []
    for values in np.transpose(coefs):  # each coefficient's weighted median
        order = np.argsort(values)
        below = np.cumsum(np.asarray(totals)[order])
        expected.append(values[order][np.searchsorted(below, below[-1] / 2)])
    _close(median.fused_estimator_.coef_, expected, 1e-10)
    secure = FusedRegressor(LinearRegression(), fusion=Secure("weighted"), n_partitions=3)
    secure.fit(X, y, sample_weight=w)
    _close(secure.fused_estimator_.coef_, np.average(coefs, axis=0, weights=totals), 1e-9)


@pytest.mark.parametrize("fusion", [TrimmedMean(0.2, weighted=True), Krum()], ids=repr)
def test_other_robust_averagings_fit_each_partition_with_its_weights(on_cluster, fusion):
    X, y, _, w = _data(n=300)
    est = FusedRegressor(LinearRegression(), fusion=fusion, n_partitions=5)
    weighted = est.fit(X, y, sample_weight=w).fused_estimator_.coef_
    assert not np.allclose(weighted, est.fit(X, y).fused_estimator_.coef_, rtol=1e-6)


def test_recluster_weights_equal_repeated_rows(on_cluster):
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(c, 0.3, size=(60, 2)) for c in (-2.0, 0.0, 2.0)])
    X = X[rng.permutation(len(X))]
    counts = rng.integers(1, 4, size=len(X))
    init = np.array([[-2.0, -2.0], [0.0, 0.0], [2.0, 2.0]])
    kmeans = KMeans(n_clusters=3, init=init, n_init=1)
    weighted = FusedClusterer(kmeans, fusion="recluster", partition="chunks").fit(
        da.from_array(X, chunks=(60, -1)),
        sample_weight=da.from_array(counts.astype(float), chunks=60),
    )
    repeated = FusedClusterer(kmeans, fusion="recluster", partition="chunks").fit(
        _repeated_by_chunk(X, np.zeros(len(X)), counts, 60)[0]
    )
    _close(
        np.sort(weighted.fused_estimator_.cluster_centers_, axis=0),
        np.sort(repeated.fused_estimator_.cluster_centers_, axis=0),
        1e-8,
    )
    # fit_transform takes the weights too
    distances = FusedClusterer(kmeans, fusion="recluster", n_partitions=3).fit_transform(
        X, sample_weight=counts
    )
    _close(distances.min(axis=1), weighted.transform(X).min(axis=1), 1e-8)


# ------------------------------------------------------------------- dask inputs
def _unknown_chunks(X, y, w):
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["y"], frame["w"] = y, w
    ddf = dd.from_pandas(frame, npartitions=4)
    ddf = ddf[ddf["x0"] > -1e9]  # a filter: the partition lengths become unknown
    return ddf[list(frame.columns[:-2])], ddf["y"], ddf["w"]


@pytest.mark.parametrize("strategy", ["chunks", "random", "uniform"])
def test_dask_inputs_with_unknown_chunks(on_cluster, strategy):
    X, y, _, w = _data()
    Xd, yd, wd = _unknown_chunks(X, y, w)
    n = None if strategy == "chunks" else 3
    est = FusedRegressor(LinearRegression(), fusion="exact", partition=strategy, n_partitions=n)
    est.fit(Xd, yd, sample_weight=wd)
    single = LinearRegression().fit(X, y, sample_weight=w)
    _close(est.fused_estimator_.coef_, single.coef_, 1e-10)
    # a dask array of unknown chunk sizes too
    keep = da.from_array(X[:, 0], chunks=60) > -1e9
    Xa = da.from_array(X, chunks=(60, -1))[keep]
    ya, wa = da.from_array(y, chunks=60)[keep], da.from_array(w, chunks=60)[keep]
    assert np.isnan(Xa.chunks[0][0])
    est.fit(Xa, ya, sample_weight=wa)
    _close(est.fused_estimator_.coef_, single.coef_, 1e-10)


def test_stratified_dask_partitions_carry_their_weights(on_cluster):
    X, _, labels, w = _data()
    est = FusedClassifier(
        GaussianNB(var_smoothing=0.5), fusion="exact", partition="stratified", n_partitions=3
    )
    est.fit(
        da.from_array(X, chunks=(60, -1)),
        da.from_array(labels, chunks=60),
        sample_weight=da.from_array(w, chunks=60),
    )
    single = GaussianNB(var_smoothing=0.5).fit(X, labels, sample_weight=w)
    _close(est.fused_estimator_.theta_, single.theta_, 1e-10)
    _close(est.fused_estimator_.var_, single.var_, 1e-10)


def test_fit_graph_takes_weights(on_cluster):
    X, y, _, w = _data()
    est = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=3)
    model, _ = est.fit_graph(X, y, sample_weight=w).compute()
    _close(model.coef_, LinearRegression().fit(X, y, sample_weight=w).coef_, 1e-10)


# ------------------------------------------------------------------- zero weights
def test_zero_weight_partition_is_left_out_like_an_empty_one(on_cluster):
    X, y, _, w = _data()
    w = w.copy()
    w[80:160] = 0.0  # the whole of partition 1
    est = FusedRegressor(LinearRegression(), fusion="weighted", n_partitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # left out without a word, as an empty block
        est.fit(X, y, sample_weight=w)
    report = est.partition_report_.set_index("partition")
    assert report.loc[1, "skipped"] and "all zero" in report.loc[1, "error"]
    assert not report.loc[[0, 2], "skipped"].any()
    exact = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=3)
    exact.fit(X, y, sample_weight=w)
    single = LinearRegression().fit(X, y, sample_weight=w)
    _close(exact.fused_estimator_.coef_, single.coef_, 1e-10)


def test_all_zero_weights_on_dask_input_name_the_partitions(on_cluster):
    X, y, _, _ = _data()
    est = FusedRegressor(LinearRegression(), fusion="exact", partition="chunks")
    with pytest.raises(FusionError, match=r"0 of 3 partitions.*partition 0: .*all zero"):
        est.fit(
            da.from_array(X, chunks=(80, -1)),
            da.from_array(y, chunks=80),
            sample_weight=da.zeros(len(X), chunks=80),
        )
    assert not hasattr(est, "fused_estimator_")


# ------------------------------------------------------------------- bad weights
@pytest.mark.parametrize(
    "weights, message",
    [
        (np.ones(239), r"sample_weight has 239 entries but X has 240 rows"),
        (np.ones((240, 2)), r"sample_weight must be 1-dimensional.*got shape \(240, 2\)"),
        (np.r_[np.nan, np.ones(239)], r"sample_weight must be finite; got nan \(row 0"),
        (np.r_[np.ones(7), -1.0, np.ones(232)], r"non-negative; got -1.0 \(row 7 of 240\)"),
        (np.zeros(240), r"sample_weight is all zero \(240 rows\)"),
        (["a"] * 240, r"sample_weight must be an array of numbers"),
    ],
    ids=["length", "2-d", "nan", "negative", "all-zero", "strings"],
)
def test_bad_weights_are_refused_and_leave_the_estimator_unfitted(on_cluster, weights, message):
    X, y, _, _ = _data()
    est = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=3).fit(X, y)
    with pytest.raises(ValueError, match=message):
        est.fit(X, y, sample_weight=weights)
    assert not hasattr(est, "fused_estimator_")


def test_bad_dask_weights_name_the_partition(on_cluster):
    X, y, _, w = _data()
    w = w.copy()
    w[100] = -2.0
    est = FusedRegressor(LinearRegression(), fusion="exact", partition="chunks")
    with pytest.raises(PartitionError, match=r"partition 1.*non-negative; got -2.0 \(row 20"):
        est.fit(
            da.from_array(X, chunks=(80, -1)),
            da.from_array(y, chunks=80),
            sample_weight=da.from_array(w, chunks=80),
        )
    assert not hasattr(est, "fused_estimator_")


def test_dask_weights_with_in_memory_x_are_refused(on_cluster):
    X, y, _, w = _data()
    est = FusedRegressor(LinearRegression(), n_partitions=3)
    with pytest.raises(TypeError, match="X is in memory but sample_weight is a dask"):
        est.fit(X, y, sample_weight=da.from_array(w, chunks=80))


# ------------------------------------------------------------------- refusals
REFUSED = [
    ("stack", FusedClassifier, LogisticRegression(), Stack(), r"Stack\(.*final_estimator"),
    ("cascade", FusedClassifier, SVC(), Cascade(), r"Cascade\(.*support vectors"),
    (
        "weighted-score",
        FusedClassifier,
        LogisticRegression(),
        Weighted(by="score"),
        r"Weighted\(by='score'.*unweighted scores",
    ),
    (
        "vote-score",
        FusedClassifier,
        LogisticRegression(),
        Vote(weights="score"),
        r"Vote\(.*unweighted scores",
    ),
    ("dp", FusedClassifier, LogisticRegression(), DP(epsilon=1.0), r"DP\(.*noise"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_strategies_that_cannot_honour_weights_refuse_them(on_cluster, case):
    _, meta, estimator, fusion, reason = case
    X, _, labels, w = _data()
    est = meta(estimator, fusion=fusion, n_partitions=3)
    with pytest.raises(FusionError, match=rf"sample_weight cannot be used with fusion={reason}"):
        est.fit(X, labels, sample_weight=w)
    assert not hasattr(est, "fused_estimator_")


def test_estimators_without_sample_weight_are_refused(on_cluster):
    X, _, _, w = _data()
    with pytest.raises(ValueError, match=r"PCA.fit takes no sample_weight"):
        FusedTransformer(PCA(n_components=2), fusion="exact", n_partitions=3).fit(
            X, sample_weight=w
        )


def test_rounds_with_weights_are_refused_by_parameter_averaging(on_cluster):
    X, _, labels, w = _data()
    est = FusedClassifier(LogisticRegression(), fusion="average", rounds=2, n_partitions=3)
    with pytest.raises(FusionError, match=r"rounds=2 cannot be used with sample_weight.*Average"):
        est.fit(X, labels, sample_weight=w)
    # newton's passes are its own: weights and rounds go together
    est.set_params(fusion="newton").fit(X, labels, sample_weight=w)


def test_columns_refuse_weights(on_cluster):
    X, y, _, w = _data()
    est = FusedRegressor(Ridge(), partition=Columns(n_blocks=2))
    for call in (est.fit, est.fit_graph):
        with pytest.raises(ValueError, match=r"sample_weight does not apply to partition=Col"):
            call(X, y, sample_weight=w)


def test_vote_and_trees_pass_weights_to_each_partition_fit(on_cluster):
    """Each member is fitted with its rows' weights: a partition whose rows of one
    class weigh nothing never predicts that class."""
    X, _, labels, _ = _data()
    w = np.where(labels == 0, 0.0, 1.0)
    for fusion in ("vote", "trees"):
        est = FusedClassifier(
            RandomForestClassifier(n_estimators=5, random_state=0),
            fusion=fusion,
            n_partitions=2,
            partition="stratified",
            random_state=0,
        )
        est.fit(X, labels, sample_weight=w)
        assert not np.any(est.predict(X) == 0), fusion
        assert np.any(
            FusedClassifier(est.estimator, fusion=fusion, n_partitions=2).fit(X, labels).predict(X)
            == 0
        )


def test_least_squares_with_small_weights_keeps_the_row_count(on_cluster):
    """Fewer rows than features and a total weight below 1: ``singular_`` has one
    value per row (not per unit of weight), as scikit-learn's."""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(8, 10)), rng.normal(size=8)
    w = np.full(8, 0.05)
    for method in ("auto", "qr"):  # (R factors: the rows are rank-deficient)
        est = FusedRegressor(LinearRegression(), fusion=Exact(method=method), n_partitions=2)
        model = est.fit(X, y, sample_weight=w).fused_estimator_
        single = LinearRegression().fit(X, y, sample_weight=w)
        assert model.rank_ == single.rank_
        _close(model.singular_, single.singular_, 1e-10)
        _close(model.predict(X), single.predict(X), 1e-8)


class _HoldingOut(Weighted):
    """A strategy that says it honours weights but holds rows out for scoring."""

    def tags(self, estimator):
        return dataclasses.replace(super().tags(estimator), holdout=0.2)


def test_a_strategy_that_holds_rows_out_is_refused_weights(on_cluster):
    """Generic code asks the tags: held-out rows would be scored unweighted."""
    X, y, _, w = _data()
    est = FusedRegressor(LinearRegression(), fusion=_HoldingOut(), n_partitions=3)
    with pytest.raises(FusionError, match=r"_HoldingOut\(.*held-out rows.*unweighted"):
        est.fit(X, y, sample_weight=w)
