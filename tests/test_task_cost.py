"""Issue 17: what a partition task costs and reports, and loading what daskfuse fits."""

from __future__ import annotations

import tracemalloc

import dask
import dask.array as da
import numpy as np
import pytest
import skops.io
from numpy.testing import assert_array_equal
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC

from daskfuse import FusedClassifier, FusedClusterer, FusedRegressor, FusedTransformer
from daskfuse._adapters import max_iter_reached
from daskfuse._graph import FitSpec, _class_counts, _label_counts, fit_partition
from daskfuse.exceptions import PartitionError
from daskfuse.fusion.ensemble import Stack, Vote
from daskfuse.fusion.exact import Exact
from daskfuse.persist import ModelFileError, load, save

RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 4))
Y_CLASS = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
Y_REG = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * RNG.normal(size=400)

#: every estimator family the README lists, as daskfuse fits it (its default fusion)
FAMILIES = [
    FusedClassifier(LogisticRegression(), n_partitions=2),
    FusedClassifier(SGDClassifier(random_state=0), n_partitions=2),
    FusedRegressor(LinearRegression(), n_partitions=2),
    FusedClassifier(GaussianNB(), n_partitions=2),
    FusedTransformer(StandardScaler(), n_partitions=2),
    FusedTransformer(PCA(2), n_partitions=2),
    FusedClusterer(KMeans(3, n_init=1, random_state=0), n_partitions=2),
    FusedClusterer(MiniBatchKMeans(3, n_init=1, random_state=0), n_partitions=2),
    FusedClassifier(RandomForestClassifier(5, random_state=0), n_partitions=2),
    FusedClassifier(SVC(), n_partitions=2),
    FusedClassifier(SVC(probability=True, random_state=0), n_partitions=2, fusion="stack"),
    FusedRegressor(SVR(), n_partitions=2),
    FusedClassifier(MLPClassifier((4,), max_iter=30, random_state=0), n_partitions=2),
    FusedClassifier(HistGradientBoostingClassifier(max_iter=5), n_partitions=2),
    FusedRegressor(HistGradientBoostingRegressor(max_iter=5), n_partitions=2),
    FusedRegressor(Ridge(), n_partitions=2),
    FusedRegressor(Lasso(alpha=0.01), n_partitions=2),
    FusedRegressor(SGDRegressor(random_state=0), n_partitions=2),
    FusedClassifier(LinearSVC(), n_partitions=2),
    FusedTransformer(MinMaxScaler(), n_partitions=2),
    FusedTransformer(TruncatedSVD(2, random_state=0), n_partitions=2),
    FusedRegressor(
        MLPRegressor(hidden_layer_sizes=(4,), max_iter=30, random_state=0), n_partitions=2
    ),
    FusedRegressor(ExtraTreesRegressor(5, random_state=0), n_partitions=2),
]


def _fit(model):
    if isinstance(model, FusedClassifier):
        return model.fit(X, Y_CLASS)
    if isinstance(model, FusedRegressor):
        return model.fit(X, Y_REG)
    return model.fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("model", FAMILIES, ids=lambda m: type(m.estimator).__name__)
def test_every_family_loads_without_trusted(model, client, tmp_path):
    model = _fit(model)
    path = tmp_path / "model.skops"
    save(model, path)
    loaded = load(path)
    fused = model.fused_estimator_
    assert type(loaded.fused_estimator_) is type(fused)
    if hasattr(fused, "predict"):
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    else:
        np.testing.assert_allclose(loaded.transform(X), model.transform(X))


def test_corrupt_hist_gradient_boosting_tree_is_refused(client, tmp_path):
    model = _fit(FusedClassifier(HistGradientBoostingClassifier(max_iter=3), n_partitions=2))
    member = model.fused_estimator_.estimators_[0]
    predictor = member._predictors[0][0]
    inner = np.flatnonzero(~predictor.nodes["is_leaf"].astype(bool))[0]
    predictor.nodes["left"][inner] = 10**6  # a child outside the tree
    path = tmp_path / "bad.skops"
    save(model, path)
    with pytest.raises(ModelFileError, match="corrupt histogram gradient-boosting tree"):
        load(path)
    assert "TreePredictor" in " ".join(skops.io.get_untrusted_types(file=str(path)))


# ------------------------------------------------------------------ training score
def test_train_score_of_a_large_partition_is_on_a_sample(client):
    rng = np.random.default_rng(1)
    Xl = rng.normal(size=(6000, 4))
    yl = (Xl[:, 0] > 0).astype(int)
    clf = FusedClassifier(SVC(), n_partitions=2, fusion="vote").fit(Xl, yl)
    report = clf.partition_report_
    assert (report["train_score_on"] == "sample").all()
    # every 50th of its 3,000 rows (a kernel machine; see the test below)
    assert (report["train_score_rows"] == 60).all()
    for i, model in enumerate(clf.fused_estimator_.estimators_):
        rows = slice(3000 * i, 3000 * (i + 1))
        on_sample = np.mean(model.predict(Xl[rows][::50]) == yl[rows][::50])
        assert report["train_score"][i] == pytest.approx(on_sample)


def test_train_score_of_a_small_partition_is_on_all_rows(client):
    clf = FusedClassifier(LogisticRegression(), n_partitions=2).fit(X, Y_CLASS)
    report = clf.partition_report_
    assert (report["train_score_on"] == "all").all()
    assert (report["train_score_rows"] == 200).all()


def test_k_means_train_score_comes_from_the_fit(client):
    km = FusedClusterer(KMeans(3, n_init=1, random_state=0), n_partitions=2).fit(X)
    report = km.partition_report_
    assert (report["train_score_on"] == "fit").all() and report["train_score"].lt(0).all()


@pytest.mark.parametrize("method", ["gram", "qr"])
@pytest.mark.parametrize(
    "estimator", [LinearRegression(), Ridge(alpha=30.0), LinearRegression(fit_intercept=False)]
)
def test_exact_least_squares_train_r2_from_the_statistics(client, estimator, method):
    # exact fusion fits no partition model; the R² of each partition's own solution
    # comes from its cross-products (or R factor), the same as fitting and scoring it
    reg = FusedRegressor(estimator, fusion=Exact(method=method), n_partitions=3)
    report = reg.fit(X, Y_REG).partition_report_
    assert (report["train_score_on"] == "statistics").all()
    assert report["train_score_rows"].tolist() == [134, 133, 133]
    assert report["fit_seconds"].isna().all()  # still no partition model fitted
    for i, (start, stop) in enumerate([(0, 134), (134, 267), (267, 400)]):
        own = clone(estimator).fit(X[start:stop], Y_REG[start:stop])
        expected = own.score(X[start:stop], Y_REG[start:stop])
        assert report["train_score"][i] == pytest.approx(expected, abs=1e-12)


def test_exact_train_r2_of_several_targets_is_their_mean(client):
    Y = np.column_stack([Y_REG, X[:, 1] + 0.5 * RNG.normal(size=400)])
    report = FusedRegressor(LinearRegression(), n_partitions=2).fit(X, Y).partition_report_
    first = LinearRegression().fit(X[:200], Y[:200])
    assert report["train_score"][0] == pytest.approx(first.score(X[:200], Y[:200]), abs=1e-12)


def test_no_train_score_says_so(client):
    # RidgeClassifier's score is an accuracy, which the statistics do not give; a
    # transformer fused exactly has no score either: the report says so
    clf = FusedClassifier(RidgeClassifier(), fusion="exact", n_partitions=2).fit(X, Y_CLASS)
    pca = FusedTransformer(PCA(2), n_partitions=2).fit(X)
    for report in (clf.partition_report_, pca.partition_report_):
        assert report["train_score"].isna().all() and report["train_score_on"].isna().all()


# ------------------------------------------------------------------ convergence
def test_partitions_that_stop_at_max_iter_give_one_warning(client):
    clf = FusedClassifier(LogisticRegression(max_iter=2), n_partitions=3)
    with pytest.warns(ConvergenceWarning) as record:
        clf.fit(X * [1, 100, 1, 1], Y_CLASS)
    ours = [w for w in record if issubclass(w.category, ConvergenceWarning)]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert "3 of 3 partitions did not converge" in message and "max_iter=2" in message
    assert clf.partition_report_["max_iter_reached"].tolist() == [True, True, True]


def test_converged_partitions_give_no_warning(client):
    import warnings

    clf = FusedClassifier(LogisticRegression(), n_partitions=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, Y_CLASS)
    assert clf.partition_report_["max_iter_reached"].tolist() == [False, False]


@pytest.mark.parametrize(
    "estimator",
    [KMeans(3, n_init=1, max_iter=1), HistGradientBoostingClassifier(max_iter=2), SVC()],
    ids=["KMeans", "HistGradientBoosting", "SVC-no-limit"],
)
def test_max_iter_that_is_no_convergence_failure_is_not_reported(estimator):
    fitted = estimator.fit(X, Y_CLASS)
    assert max_iter_reached(fitted) is None


def test_no_partition_model_has_no_fit_seconds(client):
    reg = FusedRegressor(LinearRegression(), n_partitions=2).fit(X, Y_REG)
    assert reg.partition_report_["fit_seconds"].isna().all()
    assert (reg.partition_report_["task_seconds"] > 0).all()


# ------------------------------------------------------------------ task seconds
def test_stack_counts_its_cross_fit_as_fitting():
    # Stack fits a clone on the rows it does not hold out (the meta-learner needs
    # the member's output on rows it has not seen): that second fit and those outputs
    # are fitting (StackingClassifier.fit spends its cross_val_predict so), and the
    # partition's fit_seconds counts them, so task seconds / fit seconds stays near 1
    spec = FitSpec(LogisticRegression(), Stack(), classifier=True)
    node = fit_partition(spec, 0, None, (2,), X, Y_CLASS)
    cross = node.summary.report_fit_seconds
    (report,) = node.reports
    assert cross > 0 and report["fit_seconds"] > cross
    assert report["task_seconds"] >= report["fit_seconds"]


def test_class_counts_check_the_labels_once_sorted():
    # the label checks run on the distinct labels: same counts, same refusals
    spec = FitSpec(GaussianNB(), Exact(), classifier=True)
    report = fit_partition(spec, 0, None, (2,), X, Y_CLASS.astype(float)).reports[0]
    assert report["class_counts"] == {0.0: int((Y_CLASS == 0).sum()), 1.0: int(Y_CLASS.sum())}
    with pytest.raises(PartitionError, match="Unknown label type: continuous"):
        fit_partition(spec, 0, None, (2,), X, Y_REG)
    mixed = np.array(["a" if c == 0 else 1 for c in Y_CLASS], dtype=object)
    with pytest.raises(PartitionError, match="mixes class labels of types"):
        fit_partition(spec, 0, None, (2,), X, mixed)


def test_train_score_sample_is_capped(client):
    # a 30,000-row partition is scored on every 15th row (2,000 rows), not every 10th
    rng = np.random.default_rng(2)
    Xl = rng.normal(size=(30_000, 3))
    yl = (Xl[:, 0] > 0).astype(int)
    report = FusedClassifier(GaussianNB(), n_partitions=1).fit(Xl, yl).partition_report_
    assert report["train_score_on"][0] == "sample"
    assert report["train_score_rows"][0] == 2_000
    model = GaussianNB().fit(Xl, yl)
    expected = np.mean(model.predict(Xl[::15]) == yl[::15])
    assert report["train_score"][0] == pytest.approx(expected)


class _TrustingMean(RegressorMixin, BaseEstimator):
    """Another library's regressor that neither allows NaN (its tags) nor checks for it."""

    def fit(self, X, y):
        self.mean_ = float(np.mean(y))
        self.coef_ = np.nanmean(np.asarray(X, dtype=float), axis=0)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def test_nan_rows_of_an_estimator_that_does_not_check_are_refused():
    # the first fit is trusted to check its rows only for scikit-learn's own
    # estimators: another library's that does not check must still be refused
    X = np.random.default_rng(0).normal(size=(40, 3))
    X[5, 1] = np.nan
    y = np.arange(40.0)
    with dask.config.set(scheduler="sync"):
        with pytest.raises(PartitionError, match=r"NaN or infinity \(in column\(s\) \[1\]\)"):
            FusedRegressor(_TrustingMean(), fusion="vote").fit(
                da.from_array(X, chunks=(20, 3)), da.from_array(y, chunks=20)
            )


@pytest.mark.parametrize(
    "y",
    [
        np.array([3, 0, 3, 7, 0, 3]),
        np.array([3, 0, 3, 7, 0, 3], dtype=np.int32),
        np.array([3, 0, 3, 7, 0, 3], dtype=np.uint8),
        np.array([True, False, True]),
        np.array([-1, 5, -1]),  # negative: sorted
        np.array([0, 10**12, 0], dtype=np.uint64),  # too wide for bins: sorted
        np.array([2.0, 0.0, 2.0]),
        np.array(["b", "a", "b"]),
    ],
    ids=["int64", "int32", "uint8", "bool", "negative", "wide", "float", "str"],
)
def test_label_counts_equal_numpy_unique(y):
    labels, counts = _label_counts(y)
    expected_labels, expected_counts = np.unique(y, return_counts=True)
    assert_array_equal(labels, expected_labels)
    assert labels.dtype == expected_labels.dtype
    assert_array_equal(counts, expected_counts)


def test_integer_class_counts_do_not_sort_the_labels():
    # np.unique sorts a copy of y (at 250,000 labels, longer than GaussianNB's own
    # statistics of its class); small non-negative integer labels are counted in place
    y = np.random.default_rng(3).integers(0, 3, 100_000)
    tracemalloc.start()
    try:
        counts = _class_counts(y, 0, single_class=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts == {c: int((y == c).sum()) for c in range(3)}
    assert peak < y.nbytes / 10


@pytest.mark.parametrize(
    "estimator, n, on, rows",
    [
        (SVC(), 2_000, "sample", 40),
        (make_pipeline(StandardScaler(), SVC()), 2_000, "sample", 40),
        (SVC(), 80, "all", 80),
        (LogisticRegression(), 2_000, "sample", 200),
    ],
    ids=["svc", "pipeline-svc", "svc-small", "logistic"],
)
def test_kernel_machines_are_scored_on_a_fiftieth_of_their_rows(estimator, n, on, rows):
    # an RBF SVC predicts a row in about what its fit spends on one: the score on every
    # 10th row cost 11% of its fit, on every 50th row it costs 2%
    Xl = np.random.default_rng(4).normal(size=(n, 3))
    yl = (Xl[:, 0] * Xl[:, 1] > 0).astype(int)
    report = fit_partition(
        FitSpec(estimator, Vote(), classifier=True), 0, None, (2,), Xl, yl
    ).reports[0]
    assert (report["train_score_on"], report["train_score_rows"]) == (on, rows)
    step = n // rows
    model = clone(estimator).fit(Xl, yl)
    assert report["train_score"] == pytest.approx(np.mean(model.predict(Xl[::step]) == yl[::step]))
