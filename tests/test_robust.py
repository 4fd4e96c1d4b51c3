"""Robust fusion (Median, TrimmedMean, Krum): exact numbers and resistance to bad partitions.

The corruption tests fit 8 partitions (each a whole chunk of the dask array: 1,000
rows for LogisticRegression, 2,000 for SGDClassifier) and corrupt 1 or 2 of them.
Observed on 4,000 clean test rows (``A`` the accuracy of the clean model, fused by
``"weighted"``; then the change against ``A`` in points, on the corrupted data):

=======================  ======  ========  ======  ===========  =======
corruption               parts   weighted  Median  TrimmedMean  Krum(2)
                                                   (0.25)
=======================  ======  ========  ======  ===========  =======
LogisticRegression       A = 96.15
features x 1000          2       -3.53     +0.50   +0.45        -0.02
features x 1000          1, 5    -9.15     -0.68   -0.35        +0.05
99% one class            2       -1.02     +0.00   +0.02        -0.02
99% one class            1, 5    -5.23     +0.28   +0.05        +0.05
labels flipped           2       +0.02     +0.00   +0.02        -0.02
labels flipped           1, 5    +0.35     +0.28   +0.05        +0.05
SGDClassifier            A = 94.75
features x 1000          2       -14.90    -0.25   -0.10        -0.52
features x 1000          1, 5    -45.85    -0.50   -0.85        -0.52
99% one class            2       -0.45     -0.48   -0.58        -0.52
99% one class            1, 5    -0.05     -0.22   -0.35        -0.52
labels flipped           2       +0.05     -0.48   -0.58        -0.52
labels flipped           1, 5    -0.28     -0.22   -0.35        -0.52
=======================  ======  ========  ======  ===========  =======

Flipping every label of a binary partition negates its model's parameters (the
losses are symmetric in the label), so averaging fewer than half flipped models only
shrinks the averaged parameters towards 0 without moving the decision boundary:
plain averaging keeps its accuracy there and degrades in parameter space only
(:func:`test_label_flip_shrinks_average_but_not_robust_fusion`). With 1,000 rows per
partition SGDClassifier's models are too noisy for one of them (Krum) to stay within
a point of the fused clean model (-2.8 points), hence 2,000 rows for SGD.
"""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier

from daskfuse import FusedClassifier, FusedRegressor, fuse
from daskfuse.exceptions import FusionError
from daskfuse.fusion import Average, Weighted
from daskfuse.fusion.robust import Krum, Median, PartitionParameters, TrimmedMean
from tests.conftest import make_classification_data

N_PARTS = 8
#: rows per partition: SGD's models need more rows than lbfgs's to agree within a point
ROWS = {"logistic": 1000, "sgd": 2000}
ROBUST = {"median": Median(), "trimmed": TrimmedMean(0.25), "krum": Krum(f=2)}
ESTIMATORS = {
    "logistic": LogisticRegression(),
    "sgd": SGDClassifier(random_state=0),
}


@functools.cache
def _data(rows=1000):
    X, y = make_classification_data(n=N_PARTS * rows + 4000, seed=3)
    # features off-centre: the models need an intercept, so that shrinking the
    # coefficients alone (as badly scaled partitions do to an average) moves the boundary
    X = X + 3.0
    n = N_PARTS * rows
    return X[:n], y[:n], X[n:], y[n:]


def _corrupt(kind, parts, rows=1000):
    X, y, _, _ = _data(rows)
    X, y = X.copy(), y.copy()
    rng = np.random.default_rng(0)
    for p in parts:
        part = slice(p * rows, (p + 1) * rows)
        if kind == "flip":
            y[part] = 1 - y[part]
        elif kind == "scale":
            X[part] *= 1000
        else:
            # all-constant labels cannot be fitted by scikit-learn: 99% of one class
            y[part] = 0
            y[p * rows + rng.choice(rows, rows // 100, replace=False)] = 1
    return X, y


def _fit(estimator, fusion, X, y, rows=1000, **kwargs):
    Xd = da.from_array(X, chunks=(rows, -1))
    yd = da.from_array(y, chunks=(rows,))
    return FusedClassifier(clone(estimator), fusion=fusion, **kwargs).fit(Xd, yd)


def _accuracy(model, rows=1000):
    _, _, Xt, yt = _data(rows)
    return model.fused_estimator_.score(Xt, yt)


#: (estimator, corruption, corrupted partitions) where plain averaging loses more
#: than a point, with the loss observed (in points) in the table above
AVERAGE_DEGRADES = {
    ("logistic", "scale", (2,)): 3.53,
    ("logistic", "scale", (1, 5)): 9.15,
    ("logistic", "constant", (1, 5)): 5.23,
    ("sgd", "scale", (2,)): 14.90,
    ("sgd", "scale", (1, 5)): 45.85,
}


@pytest.mark.parametrize("parts", [(2,), (1, 5)], ids=["one", "two"])
@pytest.mark.parametrize("kind", ["scale", "flip", "constant"])
@pytest.mark.parametrize("est", list(ESTIMATORS))
def test_robust_fusers_resist_corrupted_partitions(on_cluster, est, kind, parts):
    estimator, rows = ESTIMATORS[est], ROWS[est]
    X, y, _, _ = _data(rows)
    clean = _accuracy(_fit(estimator, "weighted", X, y, rows), rows)
    Xc, yc = _corrupt(kind, parts, rows)
    averaged = _accuracy(_fit(estimator, "weighted", Xc, yc, rows), rows)
    expected_loss = AVERAGE_DEGRADES.get((est, kind, parts))
    if expected_loss is not None:
        assert clean - averaged > 0.01
        assert clean - averaged == pytest.approx(expected_loss / 100, abs=0.01)
    for name, fuser in ROBUST.items():
        robust = _accuracy(_fit(estimator, fuser, Xc, yc, rows), rows)
        assert abs(robust - clean) <= 0.01, (name, clean, robust)


def test_label_flip_shrinks_average_but_not_robust_fusion(on_cluster):
    X, y, _, _ = _data()
    reference = _fit(LogisticRegression(), "weighted", X, y).fused_estimator_
    ref = np.append(reference.coef_.ravel(), reference.intercept_)
    Xc, yc = _corrupt("flip", (1, 5))

    def distance(fusion):
        fused = _fit(LogisticRegression(), fusion, Xc, yc).fused_estimator_
        theta = np.append(fused.coef_.ravel(), fused.intercept_)
        return np.linalg.norm(theta - ref) / np.linalg.norm(ref)

    # 2 of 8 models negated: the average is about (6 - 2) / 8 = half the clean one
    assert distance("weighted") == pytest.approx(0.5, abs=0.05)
    for fuser in ROBUST.values():
        assert distance(fuser) < 0.15


def _local_models(estimator, X, y, chunks):
    edges = np.concatenate([[0], np.cumsum(chunks)])
    return [clone(estimator).fit(X[a:b], y[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def test_median_of_three_is_coordinatewise_median(on_cluster, binary_data):
    X, y = binary_data
    chunks = (1000, 1200, 1800)
    Xd, yd = da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,))
    fused = FusedClassifier(LogisticRegression(), fusion=Median()).fit(Xd, yd).fused_estimator_
    local = _local_models(LogisticRegression(), X, y, chunks)
    assert type(fused) is LogisticRegression
    assert_allclose(fused.coef_, np.median([m.coef_ for m in local], axis=0), rtol=1e-12)
    assert_allclose(fused.intercept_, np.median([m.intercept_ for m in local], axis=0), rtol=1e-12)
    assert_array_equal(fused.classes_, [0, 1])


def test_trimmed_mean_beta_zero_is_average(on_cluster, binary_data):
    X, y = binary_data
    chunks = (500, 1000, 1000, 1500)
    Xd, yd = da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,))
    for robust, plain in [(TrimmedMean(0), Average()), (TrimmedMean(0, weighted=True), Weighted())]:
        a = FusedClassifier(LogisticRegression(), fusion=robust).fit(Xd, yd).fused_estimator_
        b = FusedClassifier(LogisticRegression(), fusion=plain).fit(Xd, yd).fused_estimator_
        assert_allclose(a.coef_, b.coef_, rtol=1e-12)
        assert_allclose(a.intercept_, b.intercept_, rtol=1e-12)


def _regressor(coef, intercept=0.0):
    model = LinearRegression()
    model.coef_ = np.atleast_1d(np.asarray(coef, dtype=float))
    model.intercept_ = float(intercept)
    model.n_features_in_ = model.coef_.shape[0]
    return model


def test_trimmed_mean_matches_scipy_and_trims_by_weight():
    rng = np.random.default_rng(0)
    coefs = rng.normal(size=(7, 3))
    models = [_regressor(c, i) for i, c in enumerate(coefs)]
    fused = fuse(models, TrimmedMean(0.3))
    assert_allclose(fused.coef_, stats.trim_mean(coefs, 0.3, axis=0), rtol=1e-12)
    assert fused.intercept_ == pytest.approx(stats.trim_mean(np.arange(7.0), 0.3))

    values = [0.0, 1.0, 2.0, 3.0, 100.0]
    models = [_regressor(v) for v in values]
    # equal weights, beta * total = one model's weight cut from each end
    assert fuse(models, TrimmedMean(0.2, weighted=True)).coef_[0] == pytest.approx(2.0)
    # weights 3,1,1,1,4 (total 10): 2 cut from each end, inside the first and last
    weights = [3, 1, 1, 1, 4]
    fused = fuse(models, TrimmedMean(0.2, weighted=True), weights=weights)
    assert fused.coef_[0] == pytest.approx((1 * 0 + 1 + 2 + 3 + 2 * 100) / 6)


def test_krum_picks_the_model_closest_to_its_neighbours():
    models = [_regressor(v) for v in [0.25, 0.0, 10.0, 0.1, -0.12]]
    # f=1: each scored by its n - f - 2 = 2 nearest neighbours:
    # 0.0 -> .01 + .0144, 0.1 -> .01 + .0225, -0.12 -> .0144 + .0484, ...
    assert fuse(models, Krum(f=1)).coef_[0] == 0.0
    assert fuse(models, Krum(f=1, m=2)).coef_[0] == pytest.approx(0.05)
    # f=0: 3 nearest; 0.1 -> .0809, 0.0 -> .0869, -0.12 -> .1997, 0.25 -> .2219
    assert fuse(models, Krum(f=0, m=3)).coef_[0] == pytest.approx((0.1 + 0.0 - 0.12) / 3)


def test_multikrum_weighs_the_best_models_as_flower():
    # Flower's MultiKrum test vectors: its num_closest = max(1, n - f - 2) is
    # daskfuse's n - f - 2 with f=0 for n=3; it keeps the 2 best (0.2 and 0.5)
    models = [_regressor([v] * 4) for v in [0.2, 0.5, 1.0]]
    # Flower's test (5 examples each) and no weights: plain mean of 0.2 and 0.5
    assert_allclose(fuse(models, Krum(f=0, m=2), weights=[5, 5, 5]).coef_, 0.35)
    assert_allclose(fuse(models, Krum(f=0, m=2)).coef_, 0.35)
    # weighted by example counts 1, 3, 5: (0.2 * 1 + 0.5 * 3) / 4
    assert_allclose(fuse(models, Krum(f=0, m=2), weights=[1, 3, 5]).coef_, 0.425)
    # one model is taken whole whatever the weights; the scores are unweighted
    assert fuse(models, Krum(f=0), weights=[1, 3, 5]).coef_[0] == 0.2
    with pytest.raises(FusionError, match="2 best-scored partitions all have weight 0"):
        fuse(models, Krum(f=0, m=2), weights=[0, 0, 5])


def test_multikrum_weighs_the_best_partitions_by_rows(on_cluster, regression_data):
    X, y = regression_data
    chunks = (300, 300, 2400)
    Xd, yd = da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,))
    # m = n: every partition kept, weighted by its rows as Weighted() weighs them
    krum = FusedRegressor(LinearRegression(), fusion=Krum(f=0, m=3)).fit(Xd, yd)
    weighted = FusedRegressor(LinearRegression(), fusion="weighted").fit(Xd, yd)
    assert_allclose(krum.fused_estimator_.coef_, weighted.fused_estimator_.coef_, rtol=1e-12)


def test_weighted_median_honours_weights():
    models = [_regressor(v, 10 * v) for v in [1.0, 2.0, 3.0]]
    assert fuse(models, Median()).coef_[0] == 2.0
    # the unweighted median has no use for weights: refused, not ignored
    with pytest.raises(ValueError, match=r"use Median\(weighted=True\)"):
        fuse(models, Median(), weights=[1, 1, 5])
    fused = fuse(models, Median(weighted=True), weights=[1, 1, 5])
    assert (fused.coef_[0], fused.intercept_) == (3.0, 30.0)
    # cumulative weight reaches exactly half at 2: halfway to the next value
    assert fuse(models, Median(weighted=True), weights=[1, 1, 2]).coef_[0] == 2.5
    # a weight-0 model never counts
    assert fuse(models, Median(weighted=True), weights=[0, 1, 1]).coef_[0] == 2.5


def test_weighted_median_honours_rows_per_partition(on_cluster, regression_data):
    X, y = regression_data
    chunks = (300, 300, 2400)
    Xd, yd = da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,))
    reg = FusedRegressor(LinearRegression(), fusion=Median(weighted=True)).fit(Xd, yd)
    big = LinearRegression().fit(X[600:], y[600:])
    assert_allclose(reg.fused_estimator_.coef_, big.coef_, rtol=1e-12)
    assert reg.partition_report_["weight"].tolist() == [300.0, 300.0, 2400.0]


@pytest.mark.parametrize(
    "fuser",
    [
        Median(),
        Median(weighted=True),
        TrimmedMean(0.25),
        TrimmedMean(0.2, weighted=True),
        Krum(2, 3),
    ],
)
def test_split_every_does_not_change_the_result(on_cluster, fuser):
    X, y = _corrupt("constant", (1, 5))
    a = _fit(LogisticRegression(), fuser, X, y, split_every=2).fused_estimator_
    b = _fit(LogisticRegression(), fuser, X, y, split_every=8).fused_estimator_
    # the partition fits themselves may differ in the last bits between workers
    # (BLAS); the exact, bitwise check is the next test's
    assert_allclose(a.coef_, b.coef_, rtol=1e-9)
    assert_allclose(a.intercept_, b.intercept_, rtol=1e-9)


@pytest.mark.parametrize("fuser", [Median(weighted=True), TrimmedMean(0.25), Krum(2, 3)], ids=repr)
def test_any_grouping_of_summaries_gives_the_same_model(fuser):
    X, y, _, _ = _data()
    models = _local_models(LogisticRegression(), X, y, [1000] * 8)
    parts = [
        fuser.summarize(m, None, None, {"index": i, "n_rows": 1000 + i})
        for i, m in enumerate(models)
    ]
    meta = {"n_features_in_": X.shape[1]}
    flat = fuser.finalize(fuser.combine(parts), LogisticRegression(), meta)
    tree = fuser.combine(
        [fuser.combine([parts[5], parts[1], parts[7]]), fuser.combine(parts[6::-2]), parts[3]]
    )
    nested = fuser.finalize(tree, LogisticRegression(), meta)
    assert tree.indices == list(range(8))
    assert_array_equal(flat.coef_, nested.coef_)
    assert_array_equal(flat.intercept_, nested.intercept_)


def test_missing_class_rows_are_left_out():
    X, y = make_classification_data(n=3000, n_classes=3, seed=1)
    full = [LogisticRegression().fit(X[i::3], y[i::3]) for i in range(2)]
    keep = y[2::3] != 2
    partial = LogisticRegression().fit(X[2::3][keep], y[2::3][keep])
    rows = [m.coef_ for m in full]
    # the binary model's rows for classes 0 and 1 in the softmax layout
    w = partial.coef_[0] / 2
    fused = fuse([*full, partial], Median())
    assert_array_equal(fused.classes_, [0, 1, 2])
    assert_allclose(fused.coef_[0], np.median([rows[0][0], rows[1][0], -w], axis=0))
    assert_allclose(fused.coef_[1], np.median([rows[0][1], rows[1][1], w], axis=0))
    # class 2: only the two partitions that saw it
    assert_allclose(fused.coef_[2], (rows[0][2] + rows[1][2]) / 2)
    fused = fuse([*full, partial], TrimmedMean(0.0))
    assert_allclose(fused.coef_[2], (rows[0][2] + rows[1][2]) / 2)


def test_mlp_median_runs(on_cluster, binary_data):
    from sklearn.neural_network import MLPClassifier

    X, y = binary_data
    Xd, yd = da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=(1000,))
    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0)
    clf = FusedClassifier(mlp, fusion=Median()).fit(Xd, yd)
    assert type(clf.fused_estimator_) is MLPClassifier
    assert clf.fused_estimator_.score(X, y) > 0.9


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: TrimmedMean(0.5), r"beta=\.\.\.\) must be a number in \[0, 0\.5\)"),
        (lambda: TrimmedMean(-0.1), r"\[0, 0\.5\)"),
        (lambda: TrimmedMean("a"), r"\[0, 0\.5\)"),
        (lambda: TrimmedMean(0.1, weighted="yes"), "True or False"),
        (lambda: Median(weighted=1), "True or False"),
        (lambda: Krum(f=-1), r"f=\.\.\.\) must be an int >= 0"),
        (lambda: Krum(f=1.5), "int >= 0"),
        (lambda: Krum(m=0), r"m=\.\.\.\) must be an int >= 1"),
    ],
)
def test_invalid_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_krum_needs_more_than_2f_plus_2_partitions(on_cluster, binary_data):
    X, y = binary_data
    models = [_regressor(v) for v in range(6)]
    with pytest.raises(FusionError, match=r"needs more than 2\*f \+ 2 = 6 .*f=2.*n=6"):
        fuse(models, Krum(f=2))
    assert fuse(models, Krum(f=1)).coef_.shape == (1,)
    # checked at the root too, whatever prepare was told
    fuser = Krum(f=2)
    summary = fuser.combine(
        [fuser.summarize(m, None, None, {"index": i, "n_rows": 1}) for i, m in enumerate(models)]
    )
    assert isinstance(summary, PartitionParameters) and summary.indices == list(range(6))
    with pytest.raises(FusionError, match="n=6"):
        fuser.finalize(summary, models[0], {"n_features_in_": 1})
    Xd, yd = da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=(1000,))
    with pytest.raises(FusionError, match="n=4"):
        FusedClassifier(LogisticRegression(), fusion=Krum(f=1)).fit(Xd, yd)


def test_repr_and_names():
    assert repr(Median()) == "Median()"
    assert repr(TrimmedMean()) == "TrimmedMean(beta=0.1)"
    assert repr(Krum()) == "Krum(f=1, m=1)"
    assert (Median.name, TrimmedMean.name, Krum.name) == ("median", "trimmed_mean", "krum")
    model = LogisticRegression()
    assert Median().tags(model).from_models and Krum().tags(model).from_models


def test_selectable_by_name(on_cluster, binary_data):
    from daskfuse.fusion import FUSERS

    assert {"median", "trimmed_mean", "krum"} <= set(FUSERS)
    X, y = binary_data
    Xd, yd = da.from_array(X, chunks=(500, -1)), da.from_array(y, chunks=(500,))
    for name, cls in [("median", Median), ("trimmed_mean", TrimmedMean), ("krum", Krum)]:
        clf = FusedClassifier(LogisticRegression(), fusion=name).fit(Xd, yd)
        assert type(clf.fusion_) is cls
        assert clf.score(X, y) > 0.9
