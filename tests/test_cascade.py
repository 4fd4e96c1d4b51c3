"""Cascade SVM fusion: SVC and SVR, any kernel, multiclass, feedback passes."""

from __future__ import annotations

import pickle
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC, SVR, LinearSVC

from daskfuse import FusedClassifier, FusedRegressor, FusionError
from daskfuse.fusion import Cascade, available_fusions, resolve_fusion
from daskfuse.fusion.cascade import RowStats, SupportVectors, _check_rows, row_ids, violators


def _rings(n, n_classes, seed, noise=0.03):
    """Nonlinear classes: rings around the origin in the first two of four features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    radius = np.hypot(X[:, 0], X[:, 1]) + 0.3 * X[:, 2]
    cuts = np.quantile(radius, np.linspace(0, 1, n_classes + 1)[1:-1])
    y = np.digitize(radius, cuts)
    flip = rng.random(n) < noise
    y[flip] = rng.integers(0, n_classes, flip.sum())
    return X, y


@pytest.fixture
def rings2():
    X, y = _rings(1800, 2, seed=0)
    return X[:1200], y[:1200], X[1200:], y[1200:]


@pytest.fixture
def rings3():
    X, y = _rings(1800, 3, seed=1)
    return X[:1200], y[:1200], X[1200:], y[1200:]


@pytest.fixture
def wave():
    rng = np.random.default_rng(2)
    X = rng.uniform(-2, 2, size=(1800, 3))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.1 * rng.normal(size=1800)
    return X[:1200], y[:1200], X[1200:], y[1200:]


@pytest.fixture
def sync():
    with dask.config.set(scheduler="sync"):
        yield


def _cascade(estimator, **kw):
    meta = FusedClassifier if isinstance(estimator, SVC) else FusedRegressor
    kw.setdefault("n_partitions", 4)
    return meta(estimator, **kw)


@pytest.mark.parametrize(
    "data, estimator",
    [
        ("rings2", SVC()),
        ("rings2", SVC(kernel="poly", degree=2, coef0=1.0, C=3.0)),
        ("rings3", SVC()),
        ("rings3", SVC(kernel="poly", degree=2, coef0=1.0, C=3.0)),
    ],
    ids=["binary-rbf", "binary-poly", "multiclass-rbf", "multiclass-poly"],
)
@pytest.mark.parametrize("max_passes", [1, 10])
def test_svc_accuracy_close_to_svc_on_all_rows(request, data, estimator, max_passes, sync):
    X, y, X_test, y_test = request.getfixturevalue(data)
    reference = SVC(**estimator.get_params()).fit(X, y).score(X_test, y_test)
    clf = _cascade(estimator, fusion=Cascade(max_passes=max_passes)).fit(X, y)
    fused = clf.fused_estimator_
    assert type(fused) is SVC
    assert list(fused.classes_) == list(np.unique(y))
    if max_passes == 1:
        # the one-pass cascade on 300-row partitions: close
        assert abs(clf.score(X_test, y_test) - reference) <= 0.01
        assert clf.n_rounds_ == 1 and not hasattr(clf, "history_")
        return
    # stopped because the support-vector set no longer changed, and then no
    # training row breaks the fused model's optimality conditions: the SVM on all rows
    assert abs(clf.score(X_test, y_test) - reference) <= 0.005 + 1e-9
    assert 1 < clf.n_rounds_ < max_passes
    assert clf.history_["change"].iloc[-1] == 0
    assert not (violators(fused, X, y) & ~_is_support_vector(fused, X)).any()


def _is_support_vector(model, X):
    support = {row.tobytes() for row in model.support_vectors_}
    return np.array([row.tobytes() in support for row in X])


def test_svr_close_to_svr_on_all_rows(wave, sync):
    X, y, X_test, y_test = wave
    reference = SVR(C=3.0).fit(X, y)
    reg = _cascade(SVR(C=3.0), fusion=Cascade(max_passes=12)).fit(X, y)
    fused = reg.fused_estimator_
    assert type(fused) is SVR
    assert reg.n_rounds_ < 12 and reg.history_["change"].iloc[-1] == 0
    assert not (violators(fused, X, y) & ~_is_support_vector(fused, X)).any()
    assert abs(reg.score(X_test, y_test) - reference.score(X_test, y_test)) <= 0.005
    np.testing.assert_allclose(fused.predict(X_test), reference.predict(X_test), atol=0.02)


def test_converged_cascade_is_the_svm_on_all_rows(rings2, sync):
    X, y, X_test, _ = rings2
    clf = _cascade(SVC(), fusion=Cascade(max_passes=10), n_partitions=6, split_every=2)
    fused = clf.fit(X, y).fused_estimator_
    assert clf.history_["change"].iloc[-1] == 0
    reference = SVC().fit(X, y)
    assert fused.gamma == pytest.approx(1 / (X.shape[1] * X.var()))
    # the same optimum up to libsvm's tol: the same support vectors, the same decisions
    ours = _is_support_vector(fused, X)
    theirs = _is_support_vector(reference, X)
    assert (ours != theirs).sum() <= 0.02 * theirs.sum()
    np.testing.assert_allclose(
        fused.decision_function(X_test), reference.decision_function(X_test), atol=0.01
    )


@pytest.mark.parametrize("prune", [True, False])
def test_history_and_report(rings3, prune, sync):
    X, y, _, _ = rings3
    clf = _cascade(SVC(), fusion=Cascade(max_passes=10, prune=prune)).fit(X, y)
    history, report = clf.history_, clf.partition_report_
    assert list(history.columns) == ["round", "train_score", "change", "seconds"]
    assert np.isnan(history["change"].iloc[0]) and history["change"].iloc[-1] == 0
    assert history["train_score"].between(0.9, 1).all()
    assert report["rows"].sum() == len(X)
    # the last pass sent the fused model's support vectors, unchanged, from everywhere
    assert (report["weight"] == clf.fused_estimator_.n_support_.sum()).all()
    assert report["start_score"].notna().all()
    if prune:
        # nothing fitted: the fused model's score, from the violation check's kernel
        assert report["n_iter"].isna().all()
        np.testing.assert_allclose(report["train_score"], report["start_score"])
    else:
        assert (report["n_iter"] > 0).all()


def test_one_pass_result_does_not_depend_on_grouping(rings2, sync):
    X, y, X_test, _ = rings2
    models = [
        _cascade(SVC(), n_partitions=4, split_every=s).fit(X, y).fused_estimator_ for s in (4, 8)
    ]
    np.testing.assert_array_equal(models[0].support_vectors_, models[1].support_vectors_)
    np.testing.assert_array_equal(models[0].predict(X_test), models[1].predict(X_test))


def test_fused_model_is_plain_and_picklable(rings2, sync):
    X, y, X_test, _ = rings2
    clf = _cascade(SVC(), partition="random", random_state=0).fit(X, y)
    fused = pickle.loads(pickle.dumps(clf.fused_estimator_))
    assert type(fused) is SVC and fused.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(fused.predict(X_test), clf.predict(X_test))
    assert isinstance(fused.get_params()["gamma"], float)


def test_dask_input_on_the_cluster(rings3, on_cluster):
    X, y, X_test, y_test = rings3
    Xd, yd = da.from_array(X, chunks=300), da.from_array(y, chunks=300)
    clf = FusedClassifier(SVC(), fusion=Cascade(max_passes=3)).fit(Xd, yd)
    assert clf.n_partitions_ == 4 and clf.n_rounds_ == len(clf.history_) <= 3
    workers = set(on_cluster.scheduler_info()["workers"])
    assert set(clf.partition_report_["worker"]) <= workers
    assert clf.predict(da.from_array(X_test, chunks=200)).compute().shape == y_test.shape
    with dask.config.set(scheduler="sync"):
        in_memory = _cascade(SVC(), fusion=Cascade(max_passes=3)).fit(X, y)
    # the same partitions give the same cascade, whatever the input and scheduler
    np.testing.assert_array_equal(
        clf.fused_estimator_.support_vectors_, in_memory.fused_estimator_.support_vectors_
    )


def test_string_labels(rings3, sync):
    X, y, X_test, y_test = rings3
    names = np.array(["inner", "middle", "outer"])
    clf = _cascade(SVC(), fusion=Cascade(max_passes=3)).fit(X, names[y])
    assert list(clf.classes_) == ["inner", "middle", "outer"]
    assert clf.score(X_test, names[y_test]) > 0.9


def test_balanced_class_weight_and_gamma_from_all_rows(sync):
    X, y = _rings(1200, 2, seed=3)
    y = np.where(np.arange(1200) % 5 == 0, 1, y)  # unequal classes
    clf = _cascade(SVC(class_weight="balanced", gamma="scale")).fit(X, y)
    params = clf.fused_estimator_.get_params()
    counts = np.bincount(y)
    assert params["class_weight"] == pytest.approx({c: len(y) / (2 * counts[c]) for c in (0, 1)})
    assert params["gamma"] == pytest.approx(1 / (X.shape[1] * X.var()))
    auto = _cascade(SVC(gamma="auto")).fit(X, y).fused_estimator_
    assert auto.get_params()["gamma"] == pytest.approx(1 / X.shape[1])


def test_row_stats_merge_is_the_statistics_of_all_rows():
    rng = np.random.default_rng(4)
    X, y = rng.normal(3, 2, size=(90, 3)), rng.integers(0, 3, 90)
    parts = [RowStats.of(X[a:b], y[a:b], True) for a, b in ((0, 10), (10, 55), (55, 90))]
    merged = RowStats.merge(parts)
    assert merged.rows == 90 and merged.var == pytest.approx(X.var())
    np.testing.assert_array_equal(merged.counts, np.bincount(y))


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_violators_agree_with_decision_function(n_classes):
    X, y = _rings(500, n_classes, seed=5, noise=0.1)
    model = SVC(gamma=0.5, decision_function_shape="ovo").fit(X, y)
    dec = model.decision_function(X).reshape(len(X), -1)
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    expected = np.zeros(len(X), dtype=bool)
    for k, (i, j) in enumerate(pairs):
        sign = np.where(y == i, 1.0, np.where(y == j, -1.0, np.nan))
        if n_classes == 2:
            # sklearn's binary decision is positive for classes_[1]
            sign = -sign
        with np.errstate(invalid="ignore"):
            expected |= sign * dec[:, k] < 1 - model.tol
    mask, pred = _check_rows(model, X, y)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(pred, model.predict(X))
    # an unknown label is a violator
    assert violators(model, X[:3], np.array([7, 7, 7])).all()


def test_violators_svr_outside_the_tube(wave):
    X, y, _, _ = wave
    model = SVR(gamma=0.5, epsilon=0.2).fit(X, y)
    expected = np.abs(y - model.predict(X)) > 0.2 + model.tol
    mask, pred = _check_rows(model, X, y)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_allclose(pred, model.predict(X), atol=1e-9)


def test_single_class_node_passes_its_rows_on():
    X = np.arange(12.0).reshape(6, 2)
    y = np.zeros(6, dtype=int)
    stats = RowStats.of(X, y, True)
    halves = [SupportVectors(X[i::2], y[i::2], row_ids(i, 3), stats, SVC(), SVC()) for i in (0, 1)]
    node = Cascade().combine(halves)
    assert node.model is None and len(node.ids) == 6
    with pytest.raises(FusionError, match="hold one class"):
        Cascade().finalize(node, SVC(), {})


@pytest.mark.parametrize(
    "estimator, match",
    [
        (LogisticRegression(), r"cannot fuse LogisticRegression\(\): the cascade needs"),
        (LinearSVC(), "cannot fuse LinearSVC"),
        (SVC(kernel="precomputed"), "a kernel other than 'precomputed'"),
    ],
)
def test_clear_error_for_other_estimators(estimator, match):
    X, y = _rings(40, 2, seed=6)
    with pytest.raises(FusionError, match=match):
        FusedClassifier(estimator, fusion="cascade", n_partitions=2).fit(X, y)


def test_rounds_and_parameters_are_checked():
    X, y = _rings(40, 2, seed=6)
    with pytest.raises(FusionError, match=r"rounds=3 .* set Cascade\(max_passes=...\)"):
        FusedClassifier(SVC(), fusion="cascade", rounds=3).fit(X, y)
    for bad, match in (
        ({"max_passes": 0}, "max_passes"),
        ({"max_passes": 2.0}, "max_passes"),
        ({"prune": "yes"}, "prune"),
    ):
        with pytest.raises(ValueError, match=match):
            Cascade(**bad)


def test_auto_picks_the_cascade_for_kernel_svms():
    assert resolve_fusion("auto", SVC()) == Cascade()
    assert resolve_fusion("auto", SVR(kernel="poly")) == Cascade()
    assert "cascade" in available_fusions(SVC())
    assert "cascade" not in available_fusions(SVC(), from_models=True)
    assert "cascade" not in available_fusions(SVC(kernel="precomputed"))


def test_node_refits_restore_warning_filters_across_threads():
    # A fit thread that ends its quiet block while a cascade refit is inside its own
    # (simulated here by the refit's estimator) must not leave an "ignore" filter
    # behind: warnings.catch_warnings() restored the filters it saw on entry.
    from daskfuse._quiet import quiet_warnings
    from daskfuse.fusion.cascade import _fit

    other = quiet_warnings(UserWarning)

    class EndsOtherBlock(SVC):
        def fit(self, X, y):
            other.__exit__(None, None, None)
            return super().fit(X, y)

    before = list(warnings.filters)
    other.__enter__()
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    _fit(EndsOtherBlock(), X, np.array([0, 0, 1, 1]))
    assert warnings.filters == before
