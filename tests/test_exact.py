"""Exact fusion: the fused model is the one fitted on all rows, whatever the partitioning."""

from __future__ import annotations

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeClassifier
from sklearn.naive_bayes import (
    BernoulliNB,
    CategoricalNB,
    ComplementNB,
    GaussianNB,
    MultinomialNB,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

from daskfuse import FusedClassifier, FusedRegressor, FusedTransformer, FusionError
from daskfuse.fusion.exact import Exact, Gram, RFactor
from daskfuse.partition import Rows

RTOL = 1e-8

FUSED = {
    "classifier": FusedClassifier,
    "regressor": FusedRegressor,
    "transformer": FusedTransformer,
}

# (kind, estimator, data fixture): every family and the parameters that change its math
CASES = [
    pytest.param("regressor", LinearRegression(), "regression_data", id="LinearRegression"),
    pytest.param(
        "regressor",
        LinearRegression(fit_intercept=False),
        "multi_target_data",
        id="LinearRegression-no-intercept-2-targets",
    ),
    pytest.param("regressor", Ridge(alpha=3.0), "regression_data", id="Ridge"),
    pytest.param(
        "regressor", Ridge(alpha=[0.5, 20.0]), "multi_target_data", id="Ridge-alpha-per-target"
    ),
    pytest.param(
        "regressor",
        Ridge(alpha=2.0, solver="svd", fit_intercept=False),
        "regression_data",
        id="Ridge-svd-no-intercept",
    ),
    pytest.param("classifier", RidgeClassifier(alpha=2.0), "binary_data", id="RidgeClassifier-2"),
    pytest.param("classifier", RidgeClassifier(), "multiclass_data", id="RidgeClassifier-3"),
    pytest.param("classifier", GaussianNB(), "multiclass_data", id="GaussianNB"),
    pytest.param(
        "classifier",
        GaussianNB(priors=[0.2, 0.3, 0.5], var_smoothing=1e-3),
        "multiclass_data",
        id="GaussianNB-priors",
    ),
    pytest.param("classifier", MultinomialNB(alpha=0.5), "count_data", id="MultinomialNB"),
    pytest.param("classifier", ComplementNB(norm=True), "count_data", id="ComplementNB"),
    pytest.param(
        "classifier", BernoulliNB(binarize=2.5, fit_prior=False), "count_data", id="BernoulliNB"
    ),
    pytest.param("classifier", CategoricalNB(), "categorical_data", id="CategoricalNB"),
    pytest.param("transformer", StandardScaler(), "pca_data", id="StandardScaler"),
    pytest.param(
        "transformer", StandardScaler(with_mean=False), "pca_data", id="StandardScaler-no-mean"
    ),
    pytest.param(
        "transformer",
        MinMaxScaler(feature_range=(-1, 2), clip=True),
        "pca_data",
        id="MinMaxScaler",
    ),
    pytest.param("transformer", MaxAbsScaler(), "pca_data", id="MaxAbsScaler"),
    pytest.param("transformer", PCA(n_components=3), "pca_data", id="PCA-3"),
    pytest.param("transformer", PCA(), "pca_data", id="PCA-all"),
    pytest.param(
        "transformer", PCA(n_components=0.9, whiten=True), "pca_data", id="PCA-0.9-whiten"
    ),
    pytest.param("transformer", TruncatedSVD(n_components=3), "pca_data", id="TruncatedSVD"),
]

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")


@pytest.fixture
def multi_target_data(regression_data):
    X, y = regression_data
    return X, np.column_stack([y, X @ [0.5, 1.0, -1.0, 2.0, 0.0] - 3.0])


@pytest.fixture
def count_data():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 1500)
    rates = rng.uniform(0.5, 6.0, size=(3, 8))
    return rng.poisson(rates[y]).astype(float), y


@pytest.fixture
def categorical_data():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 1500)
    # a rare top category, so that some partitions never see it
    X = np.minimum(rng.poisson(1.0 + y[:, None], size=(1500, 4)), 6)
    return X, y


@pytest.fixture
def pca_data():
    rng = np.random.default_rng(5)
    mix = rng.normal(size=(6, 6))
    X = rng.normal(size=(1500, 6)) * [5.0, 3.0, 2.0, 1.0, 0.5, 0.1] @ mix + [1, -2, 3, 0, 5, 9]
    return X, None


def _uneven(n):
    """Five row blocks of uneven sizes."""
    edges = (np.array([0.0, 0.13, 0.43, 0.48, 0.83, 1.0]) * n).astype(int)
    return tuple(np.diff(edges).tolist())


def _dask(X, y, chunks):
    Xd = da.from_array(X, chunks=(chunks, -1))
    yd = None if y is None else da.from_array(y, chunks=(chunks,) + y.shape[1:])
    return Xd, yd


def _reference(estimator, X, y):
    """The single-process fit on all rows (PCA/TruncatedSVD: the exact solvers)."""
    ref = clone(estimator)
    if isinstance(ref, PCA):
        ref.set_params(svd_solver="full")
    if isinstance(ref, TruncatedSVD):
        ref.set_params(algorithm="arpack", tol=0.0)
    return ref.fit(X, y)


def _close(actual, desired, what):
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    if desired.dtype.kind in "fc":
        # values that are 0 in exact arithmetic get an absolute floor at rounding level
        scale = np.max(np.abs(desired[np.isfinite(desired)]), initial=1.0)
        assert_allclose(actual, desired, rtol=RTOL, atol=1e-12 * scale, err_msg=what)
    else:
        assert_array_equal(actual, desired, err_msg=what)


def assert_same_model(fused, ref):
    """Every public fitted attribute of ``ref`` is on ``fused``, equal to rtol 1e-8."""
    assert type(fused) is type(ref)
    names = [k for k in vars(ref) if k.endswith("_") and not k.startswith("_")]
    assert names
    for name in names:
        want, got = getattr(ref, name), getattr(fused, name)
        if want is None:
            assert got is None, name
        elif isinstance(want, list):
            assert len(got) == len(want), name
            for i, (g, w) in enumerate(zip(got, want)):
                _close(g, w, f"{name}[{i}]")
        else:
            _close(got, want, name)


def assert_same_outputs(meta_estimator, ref, X):
    """The meta-estimator's predictions/transforms equal the reference's."""
    for method in METHODS:
        if hasattr(ref, method):
            _close(getattr(meta_estimator, method)(X), getattr(ref, method)(X), method)


def _case_data(request, data):
    return request.getfixturevalue(data)


@pytest.mark.parametrize("kind, estimator, data", CASES)
def test_exact_equals_global_fit(scheduler, request, kind, estimator, data):
    X, y = _case_data(request, data)
    fused = FUSED[kind](estimator, fusion=Exact(), split_every=3)
    fused.fit(*_dask(X, y, _uneven(len(X))))

    assert fused.n_partitions_ == 5
    ref = _reference(estimator, X, y)
    assert_same_model(fused.fused_estimator_, ref)
    assert_same_outputs(fused, ref, X)


@pytest.mark.parametrize("kind, estimator, data", CASES)
def test_exact_ignores_partitioning_and_split_every(request, kind, estimator, data):
    X, y = _case_data(request, data)
    ref = _reference(estimator, X, y)
    Xd, yd = _dask(X, y, _uneven(len(X)))
    fits = [
        {"split_every": 2},
        {"split_every": 8},
        {"partition": Rows(7, strategy="random"), "random_state": 0, "split_every": 3},
    ]
    with dask.config.set(scheduler="sync"):
        for params in fits:
            fused = FUSED[kind](estimator, fusion=Exact(), **params).fit(Xd, yd)
            assert_same_model(fused.fused_estimator_, ref)
        # in-memory rows, split into contiguous parts
        fused = FUSED[kind](estimator, fusion=Exact(), n_partitions=6).fit(X, y)
    assert_same_model(fused.fused_estimator_, ref)


@st.composite
def chunkings(draw, n, step=10):
    """Row blocks of at least ``step`` rows covering ``n`` rows."""
    cuts = draw(st.lists(st.integers(1, n // step - 1), unique=True, max_size=15))
    return tuple(np.diff([0, *sorted(step * c for c in cuts), n]).tolist())


@pytest.fixture
def cyclic_data():
    # labels cycle, so every block of 3 rows or more holds every class
    rng = np.random.default_rng(6)
    X = rng.normal(size=(600, 4)) * [3.0, 2.0, 1.0, 0.5] + [1.0, 0.0, -1.0, 2.0]
    y = np.arange(600) % 3
    return X, y, X @ [1.0, -1.0, 2.0, 0.5] + rng.normal(size=600)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=chunkings(600), split_every=st.integers(2, 9))
def test_exact_result_does_not_depend_on_partitioning(cyclic_data, chunks, split_every):
    X, y, target = cyclic_data
    fits = [
        (FusedRegressor, Ridge(alpha=1.0), target),
        (FusedClassifier, GaussianNB(), y),
        (FusedTransformer, PCA(n_components=2), None),
    ]
    with dask.config.set(scheduler="sync"):
        for fused_cls, estimator, yy in fits:
            fused = fused_cls(estimator, fusion=Exact(), split_every=split_every)
            fused.fit(*_dask(X, yy, chunks))
            assert fused.n_partitions_ == len(chunks)
            assert_same_model(fused.fused_estimator_, _reference(estimator, X, yy))


@pytest.mark.parametrize(
    "estimator, data",
    [
        (RidgeClassifier(), "multiclass_data"),
        (GaussianNB(), "multiclass_data"),
        (MultinomialNB(), "count_data"),
        (CategoricalNB(), "categorical_data"),
    ],
    ids=["RidgeClassifier", "GaussianNB", "MultinomialNB", "CategoricalNB"],
)
def test_partition_lacking_a_class(request, estimator, data):
    X, y = request.getfixturevalue(data)
    # class "c" last: the first blocks hold only classes "a" and "b"
    order = np.argsort(y == 2, kind="stable")
    X, y = X[order], np.array(["a", "b", "c"])[y[order]]
    chunks = (400, 300, len(X) - 700)
    with dask.config.set(scheduler="sync"):
        fused = FusedClassifier(estimator, fusion=Exact(), split_every=2).fit(*_dask(X, y, chunks))
    assert list(fused.partition_report_["class_counts"][0]) == ["a", "b"]
    assert_array_equal(fused.classes_, ["a", "b", "c"])
    ref = _reference(estimator, X, y)
    assert_same_model(fused.fused_estimator_, ref)
    assert_same_outputs(fused, ref, X)


@pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning")
def test_scalers_with_missing_values():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 3)) * [1.0, 10.0, 0.1]
    X[:100, 1] = np.nan  # a block where feature 1 has no value at all
    X[150:160, 2] = np.nan
    with dask.config.set(scheduler="sync"), np.errstate(invalid="ignore"):
        for estimator in (StandardScaler(), MinMaxScaler(), MaxAbsScaler()):
            fused = FusedTransformer(estimator, fusion=Exact()).fit(
                da.from_array(X, chunks=(100, -1))
            )
            ref = clone(estimator).fit(X)
            assert_same_model(fused.fused_estimator_, ref)
            assert_allclose(fused.transform(X), ref.transform(X), rtol=RTOL)


def test_exact_transformer_in_a_pipeline(binary_data):
    X, y = binary_data
    X = X * [1.0, 5.0, 0.2, 3.0, 1.0, 10.0] + 4.0
    fused = Pipeline(
        [
            ("scale", FusedTransformer(StandardScaler(), fusion=Exact(), n_partitions=4)),
            ("clf", LogisticRegression()),
        ]
    ).fit(X, y)
    ref = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)

    assert_same_model(fused[0].fused_estimator_, ref[0])
    assert_allclose(fused[:-1].transform(X), ref[:-1].transform(X), rtol=RTOL)
    assert_array_equal(fused.predict(X), ref.predict(X))
    assert_allclose(fused.predict_proba(X), ref.predict_proba(X), rtol=1e-6)


def test_exact_keeps_feature_names(pca_data):
    X, _ = pca_data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with dask.config.set(scheduler="sync"):
        fused = FusedTransformer(PCA(n_components=2), fusion=Exact()).fit(
            dd.from_pandas(frame, npartitions=4)
        )
    ref = PCA(n_components=2, svd_solver="full").fit(frame)
    assert_same_model(fused.fused_estimator_, ref)
    assert_array_equal(fused.get_feature_names_out(), ["pca0", "pca1"])
    assert_allclose(fused.transform(frame), ref.transform(frame), rtol=RTOL, atol=1e-12)


def test_summaries_of_fitted_models_fuse_without_rows(multiclass_data):
    """Naive Bayes and the scalers are summarised from fitted models alone."""
    X, y = multiclass_data
    exact = Exact()
    halves = [slice(0, 1000), slice(1000, None)]
    for estimator, yy in ((GaussianNB(), y), (StandardScaler(), None)):
        info = {"index": 0, "n_rows": None, "holdout_score": None, "classes": None, "seed": None}
        summaries = [
            exact.summarize(
                clone(estimator).fit(X[h], None if yy is None else yy[h]), None, None, info
            )
            for h in halves
        ]
        meta = {
            "n_features_in_": X.shape[1],
            "feature_names_in_": None,
            "n_partitions": 2,
            "classes": None,
        }
        fused = exact.finalize(exact.combine(summaries), estimator, meta)
        assert_same_model(fused, clone(estimator).fit(X, yy))


def test_row_families_need_the_rows(regression_data):
    X, y = regression_data
    info = {"index": 3, "n_rows": len(X), "holdout_score": None, "classes": None, "seed": None}
    with pytest.raises(FusionError, match="needs the training rows of LinearRegression"):
        Exact().summarize(LinearRegression().fit(X, y), None, None, info)


def test_needs_fit_per_family():
    exact = Exact()
    assert not exact.tags(Ridge()).needs_fit
    assert not exact.tags(PCA()).needs_fit
    assert exact.tags(GaussianNB()).needs_fit
    assert exact.tags(MinMaxScaler()).needs_fit
    assert repr(exact) == "Exact(method='auto')"
    assert exact == Exact()


@pytest.mark.parametrize(
    "kind, estimator, match",
    [
        ("classifier", LogisticRegression(), "exact fusion merges sufficient statistics of"),
        ("regressor", Ridge(solver="sag"), "solver='sag' is iterative"),
        ("regressor", Ridge(positive=True), "positive=True"),
        ("regressor", LinearRegression(positive=True), "positive=True"),
        ("classifier", RidgeClassifier(class_weight="balanced"), "class_weight"),
        ("transformer", PCA(n_components="mle"), "n_components='mle'"),
    ],
    ids=[
        "LogisticRegression",
        "Ridge-sag",
        "Ridge-positive",
        "LinearRegression-positive",
        "RidgeClassifier-class_weight",
        "PCA-mle",
    ],
)
def test_unsupported_estimators_are_refused(binary_data, kind, estimator, match):
    X, y = binary_data
    with pytest.raises(FusionError, match=match) as err:
        FUSED[kind](estimator, fusion=Exact()).fit(X, y)
    assert "Strategies that apply to" in str(err.value)


@pytest.mark.parametrize(
    "kind, estimator, match",
    [
        ("transformer", PCA(n_components=7), "n_components"),
        ("transformer", TruncatedSVD(n_components=7), "n_components"),
        ("regressor", Ridge(alpha=[1.0, 2.0, 3.0]), "penalties"),
    ],
    ids=["PCA", "TruncatedSVD", "Ridge-alpha"],
)
def test_impossible_parameters_for_the_data(pca_data, multi_target_data, kind, estimator, match):
    X, y = pca_data if kind == "transformer" else multi_target_data
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError, match=match):
        FUSED[kind](estimator, fusion=Exact(), n_partitions=3).fit(X, y)


# --------------------------------------------------------------------------- least squares
LEAST_SQUARES = [
    (FusedRegressor, LinearRegression(), "target"),
    (FusedRegressor, LinearRegression(fit_intercept=False), "targets"),
    (FusedRegressor, Ridge(alpha=[0.5, 20.0]), "targets"),
    (FusedRegressor, Ridge(alpha=2.0, solver="svd"), "target"),
    (FusedClassifier, RidgeClassifier(alpha=3.0, fit_intercept=False), "labels"),
]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=chunkings(600),
    split_every=st.integers(2, 9),
    method=st.sampled_from(["auto", "gram"]),
)
def test_cross_products_equal_global_fit(cyclic_data, chunks, split_every, method):
    X, y, target = cyclic_data
    data = {
        "target": target,
        "targets": np.column_stack([target, X @ [0.5, 1.0, -1.0, 2.0] - 3.0]),
        "labels": y,
    }
    with dask.config.set(scheduler="sync"):
        for fused_cls, estimator, name in LEAST_SQUARES:
            fused = fused_cls(estimator, fusion=Exact(method), split_every=split_every)
            fused.fit(*_dask(X, data[name], chunks))
            assert_same_model(fused.fused_estimator_, _reference(estimator, X, data[name]))


def _summaries(method, estimator, X, y, chunks):
    exact = Exact(method)
    bounds = np.cumsum((0, *chunks))
    return [
        exact.summarize(None, X[a:b], y[a:b], {"index": i, "classes": None, "template": estimator})
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]


@pytest.fixture
def collinear_data():
    """Column 4 is column 0 plus 1e-5 noise: cond(X) about 1e5, above the 1e4 limit of
    cross-products and below LinearRegression's rank cutoff (1e6)."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(1200, 5)) * [1.0, 2.0, 0.5, 3.0, 1.0] + [5.0, -1.0, 0.0, 2.0, 0.0]
    X[:, 4] = X[:, 0] + 1e-5 * rng.normal(size=len(X))
    return X, X @ [1.0, -2.0, 0.5, 1.5, 2.0] + 0.1 * rng.normal(size=len(X))


def test_auto_falls_back_to_r_factors_where_ill_conditioned(regression_data, collinear_data):
    chunks = (500, 300, 400)
    X, y = regression_data[0][:1200], regression_data[1][:1200]
    kinds = {type(s) for s in _summaries("auto", LinearRegression(), X, y, chunks)}
    assert kinds == {Gram}
    X, y = collinear_data
    # X.T X loses the small singular values of X: each partition sends its R factor ...
    assert {type(s) for s in _summaries("auto", LinearRegression(), X, y, chunks)} == {RFactor}
    assert {type(s) for s in _summaries("gram", LinearRegression(), X, y, chunks)} == {Gram}
    # ... except under a penalty that bounds X.T X + alpha I away from singular
    assert {type(s) for s in _summaries("auto", Ridge(alpha=1.0), X, y, chunks)} == {Gram}
    assert {type(s) for s in _summaries("qr", Ridge(alpha=1.0), X, y, chunks)} == {RFactor}


@pytest.mark.parametrize("duplicate", [False, True], ids=["near-collinear", "rank-deficient"])
def test_ill_conditioned_linear_regression_equals_lstsq(collinear_data, duplicate):
    X, y = collinear_data
    if duplicate:
        X = np.column_stack([X[:, :4], X[:, 1]])  # rank 4: lstsq's minimum-norm solution
    ref = LinearRegression().fit(X, y)
    assert ref.rank_ == (4 if duplicate else 5)
    with dask.config.set(scheduler="sync"):
        fused = FusedRegressor(LinearRegression(), fusion=Exact(), split_every=2).fit(
            *_dask(X, y, (500, 300, 400))
        )
    assert_same_model(fused.fused_estimator_, ref)


def test_cross_products_and_r_factors_merge(regression_data):
    """A partition with fewer rows than columns is summarised by its R factor."""
    X, y = regression_data
    chunks = (3, 1497, 1500)
    summaries = _summaries("auto", LinearRegression(), X, y, chunks)
    assert [type(s) for s in summaries] == [RFactor, Gram, Gram]
    # the penalty makes even three rows well-conditioned
    assert {type(s) for s in _summaries("auto", Ridge(alpha=0.1), X, y, chunks)} == {Gram}
    with dask.config.set(scheduler="sync"):
        for split_every in (2, 3):
            fused = FusedRegressor(LinearRegression(), fusion=Exact(), split_every=split_every)
            fused.fit(*_dask(X, y, chunks))
            assert_same_model(fused.fused_estimator_, LinearRegression().fit(X, y))


@pytest.mark.parametrize("estimator", [LinearRegression(), Ridge(alpha=1.0)], ids=type)
def test_cross_products_of_columns_with_large_means(regression_data, estimator):
    """Shifting the rows by a first estimate of the means avoids cancellation."""
    X, y = regression_data
    X = X * [1.0, 0.1, 10.0, 1.0, 1.0] + [1e6, -3e5, 0.0, 7e4, 1.0]
    with dask.config.set(scheduler="sync"):
        fused = FusedRegressor(estimator, fusion=Exact("gram"), n_partitions=4).fit(X, y)
    assert_same_model(fused.fused_estimator_, clone(estimator).fit(X, y))


def test_exact_method_is_checked():
    with pytest.raises(ValueError, match=r"Exact\(method=...\) must be one of 'auto'"):
        Exact("cholesky")
    assert Exact("qr") != Exact()


FLOAT32_CASES = [
    pytest.param("regressor", LinearRegression(), "regression_data", id="LinearRegression"),
    pytest.param(
        "regressor",
        LinearRegression(fit_intercept=False),
        "multi_target_data",
        id="LinearRegression-no-intercept-2-targets",
    ),
    pytest.param("regressor", Ridge(alpha=3.0), "regression_data", id="Ridge"),
    pytest.param("classifier", RidgeClassifier(), "multiclass_data", id="RidgeClassifier-3"),
    pytest.param("classifier", GaussianNB(), "multiclass_data", id="GaussianNB"),
    pytest.param("transformer", StandardScaler(), "pca_data", id="StandardScaler"),
    pytest.param("transformer", MinMaxScaler(), "pca_data", id="MinMaxScaler"),
    pytest.param("transformer", MaxAbsScaler(), "pca_data", id="MaxAbsScaler"),
    pytest.param("transformer", PCA(n_components=3), "pca_data", id="PCA-3"),
    pytest.param("transformer", TruncatedSVD(n_components=3), "pca_data", id="TruncatedSVD"),
]


@pytest.mark.parametrize("kind, estimator, data", FLOAT32_CASES)
def test_exact_keeps_float32_as_scikit_learn_does(on_cluster, request, kind, estimator, data):
    X, y = _case_data(request, data)
    X = X.astype(np.float32)
    if y is not None and y.dtype.kind == "f":
        y = y.astype(np.float32)
    fused = FUSED[kind](estimator, fusion=Exact(), split_every=3)
    fused.fit(*_dask(X, y, _uneven(len(X))))
    ref = _reference(estimator, X, y)
    floats = [
        k
        for k, v in vars(ref).items()
        if k.endswith("_") and not k.startswith("_") and np.asarray(v).dtype.kind == "f"
    ]
    assert floats
    for name in floats:
        want, got = getattr(ref, name), getattr(fused.fused_estimator_, name)
        assert np.asarray(got).dtype == np.asarray(want).dtype, name
        assert type(got) is type(want), name
        # the statistics are merged in float64: as close as float32 rounding allows
        scale = np.max(np.abs(want), initial=1.0)
        assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=name)
