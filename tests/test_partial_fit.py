"""Incremental fits: ``partial_fit`` combines new partitions into the kept root summary."""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC

from daskfuse import (
    FusedClassifier,
    FusedClusterer,
    FusedRegressor,
    FusedTransformer,
    FusionError,
    load,
    save,
)
from daskfuse._rows import prepare
from daskfuse.fusion import DP, FUSERS, Krum, Median, Secure, TrimmedMean, Weighted
from daskfuse.partition import Columns

N = 240  # rows per batch: two batches of two partitions, or all rows in four


def _data(seed=0, n=2 * N):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.3 * rng.normal(size=n)
    labels = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int) + (X[:, 1] > 1)
    return X, y, labels


def _batches(X, y, dask_input):
    """The two halves of ``X``, ``y``: numpy, or dask arrays of two blocks each."""
    halves = [(X[:N], y[:N]), (X[N:], y[N:])]
    if not dask_input:
        return halves
    return [(da.from_array(a, chunks=N // 2), da.from_array(b, chunks=N // 2)) for a, b in halves]


def _arrays(model):
    """The fitted array attributes of a plain model (``coef_``, ``theta_``, ...)."""
    return {
        k: np.asarray(v, dtype=float)
        for k, v in vars(model).items()
        if k.endswith("_") and isinstance(v, np.ndarray | float) and k != "classes_"
    }


def _assert_same_arrays(a, b, tol):
    fa, fb = _arrays(a), _arrays(b)
    assert fa.keys() == fb.keys() and fa
    for k in fa:
        np.testing.assert_allclose(fa[k], fb[k], rtol=tol, atol=tol, err_msg=k)


EXACT = {
    "linear": (FusedRegressor, LinearRegression),
    "ridge_classifier": (FusedClassifier, lambda: RidgeClassifier(alpha=0.5)),
    "gaussian_nb": (FusedClassifier, GaussianNB),
    "standard_scaler": (FusedTransformer, StandardScaler),
    "min_max_scaler": (FusedTransformer, MinMaxScaler),
    "pca": (FusedTransformer, lambda: PCA(n_components=2)),
}


@pytest.mark.parametrize("dask_input", [False, True], ids=["numpy", "dask"])
@pytest.mark.parametrize("name", list(EXACT))
def test_exact_partial_fit_equals_a_fit_on_all_rows(on_cluster, name, dask_input):
    Meta, make = EXACT[name]
    X, y, labels = _data()
    target = labels if Meta is FusedClassifier else y
    (XA, yA), (XB, yB) = _batches(X, target, dask_input)
    inc = Meta(make(), fusion="exact", n_partitions=2).fit(XA, yA).partial_fit(XB, yB)
    whole = Meta(make(), fusion="exact", n_partitions=4).fit(X, target)
    _assert_same_arrays(inc.fused_estimator_, whole.fused_estimator_, 1e-10)
    if Meta is FusedClassifier:
        np.testing.assert_array_equal(inc.classes_, whole.classes_)
    assert inc.n_partitions_ == 4


FUSION_OF_ALL = {
    "weighted": (FusedClassifier, LogisticRegression, "weighted", {}),
    "weighted_by_score": (
        FusedClassifier,
        LogisticRegression,
        Weighted(by="score"),
        {"random_state": 0},
    ),
    "average": (FusedRegressor, lambda: Ridge(alpha=1.0), "average", {}),
    "vote": (FusedRegressor, lambda: Ridge(alpha=1.0), "vote", {}),
    "trees": (
        FusedClassifier,
        lambda: RandomForestClassifier(n_estimators=3, max_depth=3),
        "trees",
        {"random_state": 0},
    ),
    "recluster": (FusedClusterer, lambda: KMeans(3, n_init=2, random_state=0), "recluster", {}),
}


@pytest.mark.parametrize("name", list(FUSION_OF_ALL))
def test_partial_fit_equals_the_fusion_of_all_partitions(on_cluster, name):
    """Batches of two partitions each fused incrementally give the model of one fit whose
    four partitions are those same rows (``"uniform"`` parts are contiguous)."""
    Meta, make, fusion, kw = FUSION_OF_ALL[name]
    X, y, labels = _data(1)
    target = labels if Meta is FusedClassifier else y
    (XA, yA), (XB, yB) = _batches(X, target, False)
    inc = Meta(make(), fusion=fusion, n_partitions=2, **kw).fit(XA, yA).partial_fit(XB, yB)
    whole = Meta(make(), fusion=fusion, n_partitions=4, **kw).fit(X, target)
    if Meta is FusedClusterer:
        np.testing.assert_allclose(
            inc.fused_estimator_.cluster_centers_, whole.fused_estimator_.cluster_centers_
        )
        np.testing.assert_array_equal(inc.labels_, whole.predict(XB))  # labels_: the batch's
    elif Meta is FusedClassifier:
        np.testing.assert_allclose(inc.predict_proba(X), whole.predict_proba(X), atol=1e-12)
    else:
        np.testing.assert_allclose(inc.predict(X), whole.predict(X), atol=1e-12)
    assert inc.partition_report_["rows"].tolist() == whole.partition_report_["rows"].tolist()


def test_report_numbers_the_new_partitions_after_the_old_ones(on_cluster):
    X, y, _ = _data()
    est = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=2).fit(X[:N], y[:N])
    est.partial_fit(X[N : N + 90], y[N : N + 90])
    report = est.partition_report_
    assert report["partition"].tolist() == [0, 1, 2, 3]
    assert report["rows"].tolist() == [N // 2, N // 2, 45, 45]
    assert est.n_partitions_ == 4 and est.partition_.n_partitions == 4
    assert not hasattr(est, "history_")


def test_partial_fit_on_an_unfitted_estimator_is_a_fit(on_cluster):
    X, _, labels = _data()
    a = FusedClassifier(GaussianNB(), n_partitions=2).partial_fit(X, labels)
    b = FusedClassifier(GaussianNB(), n_partitions=2).fit(X, labels)
    _assert_same_arrays(a.fused_estimator_, b.fused_estimator_, 0)
    assert a.n_partitions_ == 2


def test_declared_classes_may_arrive_later(on_cluster):
    """``classes=`` at the first call declares a class the first batch lacks; exact
    naive Bayes, aligned by label, then equals the fit on all rows."""
    X, _, labels = _data()
    first = labels[:N] < 2
    Xa, ya = X[:N][first], labels[:N][first]
    est = FusedClassifier(GaussianNB(), fusion="exact", n_partitions=2)
    est.partial_fit(Xa, ya, classes=[0, 1, 2])
    np.testing.assert_array_equal(est.root_summary_.classes, [0, 1, 2])
    est.partial_fit(X[N:], labels[N:])
    rows = np.concatenate([Xa, X[N:]])
    single = GaussianNB().fit(rows, np.concatenate([ya, labels[N:]]))
    _assert_same_arrays(est.fused_estimator_, single, 1e-10)


def test_an_undeclared_class_is_refused_and_the_model_kept(on_cluster):
    X, _, labels = _data()
    binary = (labels > 0).astype(int)
    est = FusedClassifier(GaussianNB(), n_partitions=2).fit(X[:N], binary[:N])
    before = est.fused_estimator_
    with pytest.raises(ValueError, match=r"class\(es\) \[2\].*its classes are \[0, 1\]"):
        est.partial_fit(X[N:], labels[N:])
    assert est.fused_estimator_ is before and est.n_partitions_ == 2
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2\] differs .* \[0, 1\]"):
        est.partial_fit(X[N:], binary[N:], classes=[0, 1, 2])


def test_a_failed_batch_leaves_the_fitted_model_unchanged(on_cluster):
    X, y, _ = _data()
    est = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=2).fit(X[:N], y[:N])
    before = (est.fused_estimator_, est.root_summary_, est.partition_report_)
    bad = X[N:].copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.partial_fit(bad, y[N:])
    with pytest.raises(ValueError, match="X has 2 features, but FusedRegressor is expecting 3"):
        est.partial_fit(X[N:, :2], y[N:])
    assert (est.fused_estimator_, est.root_summary_, est.partition_report_) == before


REFUSED = {
    "stack": ({"fusion": "stack"}, "Stack("),
    "cascade": ({"fusion": "cascade"}, "Cascade("),
    "median": ({"fusion": Median()}, "Median("),
    "trimmed_mean": ({"fusion": TrimmedMean()}, "TrimmedMean("),
    "krum": ({"fusion": Krum(f=0), "n_partitions": 3}, "Krum("),
    "newton": ({"fusion": "newton"}, "Newton("),
    "rounds": ({"fusion": "weighted", "rounds": 2}, "rounds=2"),
    "secure": ({"fusion": Secure()}, "Secure("),
    "dp": ({"fusion": DP(epsilon=1.0, clip=5.0, random_state=0)}, "DP("),
    "given_weights": ({"fusion": Weighted(by=[1.0, 2.0])}, "one weight per partition"),
    "columns": ({"partition": Columns(n_blocks=2)}, "Columns"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_strategies_that_cannot_continue_refuse_with_the_reason(on_cluster, name):
    kw, says = REFUSED[name]
    X, _, labels = _data()
    binary = (labels > 0).astype(int)
    estimator = SVC() if name == "cascade" else LogisticRegression()
    est = FusedClassifier(estimator, **{"n_partitions": 2, **kw})
    if name == "columns":
        with pytest.raises(FusionError, match="partial_fit needs row partitions.*Columns"):
            est.partial_fit(X, binary)
        return
    est.fit(X[:N], binary[:N])
    before = (est.fused_estimator_, est.partition_report_)
    assert not hasattr(est, "root_summary_")
    with pytest.raises(FusionError, match="cannot continue this fit") as info:
        est.partial_fit(X[N:], binary[N:])
    assert says in str(info.value) and "unchanged" in str(info.value)
    assert (est.fused_estimator_, est.partition_report_) == before


@pytest.mark.parametrize("fusion", ["exact", "weighted"])
def test_the_kept_summary_does_not_grow_with_the_rows(on_cluster, fusion):
    sizes = []
    for n in (200, 4000):
        X, y, _ = _data(2, n)
        est = FusedRegressor(Ridge(), fusion=fusion, n_partitions=2).fit(X, y)
        sizes.append(len(pickle.dumps(est.root_summary_)))
    assert abs(sizes[0] - sizes[1]) <= 16 and sizes[1] < 4000 * 3 * 8 / 10


def test_a_loaded_model_continues(on_cluster, tmp_path):
    X, _, labels = _data()
    make = lambda: FusedClassifier(  # noqa: E731
        RandomForestClassifier(n_estimators=2, max_depth=3), n_partitions=2, random_state=0
    )
    kept = make().fit(X[:N], labels[:N])
    save(kept, tmp_path / "m.skops")
    loaded = load(tmp_path / "m.skops").partial_fit(X[N:], labels[N:])
    kept.partial_fit(X[N:], labels[N:])
    np.testing.assert_array_equal(loaded.predict_proba(X), kept.predict_proba(X))
    assert loaded.n_partitions_ == 4


def test_a_file_without_a_summary_loads_and_refuses(on_cluster, tmp_path):
    X, y, _ = _data()
    est = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=2).fit(X[:N], y[:N])
    del est.root_summary_
    save(est, tmp_path / "old.skops")
    loaded = load(tmp_path / "old.skops")
    np.testing.assert_allclose(loaded.predict(X), est.predict(X))
    with pytest.raises(FusionError, match="kept no root summary.*unchanged"):
        loaded.partial_fit(X[N:], y[N:])
    assert loaded.n_partitions_ == 2


def test_a_continued_fit_has_keys_of_its_own(on_cluster):
    """Two fits continued on one batch from different summaries never share keys."""
    X, y, _ = _data()
    a = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=2).fit(X[:N], y[:N])
    b = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=2).fit(X[N:], y[N:])
    spec = a._train_spec()
    tokens = {prepare(spec, X[:10], y[:10], continued=est._continued()).token for est in (a, b)}
    tokens.add(prepare(spec, X[:10], y[:10]).token)
    assert len(tokens) == 3


CONTINUE = {"exact", "weighted", "average", "vote", "trees", "recluster"}


@pytest.mark.parametrize("name", sorted(FUSERS))
def test_the_strategies_say_in_their_tags_whether_they_continue(name):
    fuser = DP(epsilon=1.0, clip=5.0) if name == "dp" else FUSERS[name]()
    estimator = {
        "exact": LinearRegression(),
        "trees": RandomForestClassifier(),
        "recluster": KMeans(2),
        "cascade": SVC(),
    }.get(name, LogisticRegression())
    reason = fuser.tags(estimator).partial_fit_reason
    if name in CONTINUE:
        assert reason is None
    else:
        assert repr(fuser) in reason


def test_a_batch_costs_only_its_own_partitions(on_cluster):
    """The continued graph fits the new partitions only; the old ones are one kept leaf."""
    X, y, _ = _data()
    est = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=4).fit(X[:N], y[:N])
    spec = est._train_spec()
    graph = prepare(spec, X[N:], y[N:], continued=est._continued(), keep_summary=True).graph
    keys = [k if isinstance(k, tuple) else (k,) for k in dict(graph.__dask_graph__())]
    fits = sorted(k[1] for k in keys if k[0].startswith("daskfuse-fit-"))
    assert fits == [4, 5, 6, 7]
    assert sum(k[0].startswith("daskfuse-kept-") for k in keys) == 1


def test_a_batch_must_have_the_fit_s_columns(on_cluster):
    pd = pytest.importorskip("pandas")
    X, y, _ = _data()
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    est = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=2)
    est.fit(frame[:N], y[:N])
    with pytest.raises(ValueError, match=r"no column names.*\['a', 'b', 'c'\]"):
        with pytest.warns(UserWarning, match="feature names"):
            est.partial_fit(X[N:], y[N:])
    est.partial_fit(frame[N:], y[N:])
    assert list(est.fused_estimator_.feature_names_in_) == ["a", "b", "c"]
