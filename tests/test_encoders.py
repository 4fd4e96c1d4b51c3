"""Exact fusion of encoders, imputers, binning and stateless transformers (issue 16).

Each fused transformer is compared with scikit-learn's fit on all rows, over
contiguous, random, label-sorted and very unequal partitions (with an empty and a
one-row partition), through ``split_every=2``.
"""

from __future__ import annotations

import re

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)

from daskfuse import FusedClassifier, FusedTransformer, FusionError, fuse
from daskfuse._adapters import accepts_objects
from daskfuse.fusion import Exact, resolve_fusion
from daskfuse.partition import Rows


def _frame(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "s": rng.choice(np.array(["b", "a", "c", "d", None], dtype=object), n),
            "k": rng.choice([3, 1, 2, 7], n, p=[0.5, 0.3, 0.15, 0.05]),
            "c": pd.Categorical(rng.choice(np.array(["v", "u", None], dtype=object), n)),
            "x": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n).round(1)),
            "e": np.full(n, np.nan),  # no value at all: an empty feature
            "b": rng.random(n) < 0.3,
        }
    )


FRAME = _frame()


def _pieces(df, how):
    """``df`` cut into row pieces: contiguous, random, label-sorted or very unequal."""
    n = len(df)
    if how == "contiguous":
        cuts = [n // 3, 2 * n // 3]
        order = np.arange(n)
    elif how == "random":
        cuts, order = [n // 4, n // 2], np.random.default_rng(1).permutation(n)
    elif how == "sorted":  # by label: each partition sees few categories
        key = np.array([str(v) for v in df.iloc[:, 0]])
        cuts, order = [n // 3, 2 * n // 3], np.argsort(key, kind="stable")
    else:  # unequal: one row, an empty piece, most rows, the rest
        cuts, order = [1, 1, n - 3], np.arange(n)
    return [df.iloc[part] for part in np.split(order, cuts)]


def _dask(df, how):
    # unknown divisions and chunk sizes: the pieces come from a function
    return dd.from_map(lambda piece: piece, _pieces(df, how), meta=df.iloc[:0])


def _dense(a):
    return a.toarray() if hasattr(a, "toarray") else np.asarray(a)


def _same(a, b):
    """Fitted transformers equal: their outputs, output names and fitted statistics."""
    for name in ("categories_", "infrequent_categories_", "statistics_", "bin_edges_"):
        if hasattr(b, name):
            left, right = getattr(a, name), getattr(b, name)
            if isinstance(right, np.ndarray) and right.dtype != object:
                np.testing.assert_allclose(left, right, rtol=1e-12)
                assert left.dtype == right.dtype, name
            else:
                assert len(left) == len(right), name
                for u, v in zip(left, right):
                    u, v = pd.Series(u, dtype=object), pd.Series(v, dtype=object)
                    pd.testing.assert_series_equal(u, v, check_exact=False, rtol=1e-12)
    assert a.n_features_in_ == b.n_features_in_
    assert_array_equal(getattr(a, "feature_names_in_", None), getattr(b, "feature_names_in_", None))
    if hasattr(b, "get_feature_names_out"):
        assert_array_equal(a.get_feature_names_out(), b.get_feature_names_out())
    assert repr(a.get_params()) == repr(b.get_params())  # NaN parameters too


def _params(model):
    """The repr of ``model``'s parameters, without the addresses of callables."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(model.get_params()))


def _check_outputs(a, b, X):
    out_a, out_b = _dense(a.transform(X)), _dense(b.transform(X))
    assert out_a.dtype == out_b.dtype
    if out_b.dtype == object:
        assert_array_equal(out_a.astype(str), out_b.astype(str))
    else:
        np.testing.assert_allclose(out_a, out_b, rtol=1e-12)


# (estimator, columns): columns of FRAME it is fitted on
CASES = [
    (OneHotEncoder(), ["s", "k", "c", "b"]),
    (OneHotEncoder(handle_unknown="ignore", drop="first", sparse_output=False), ["s", "c"]),
    (OneHotEncoder(min_frequency=6, handle_unknown="infrequent_if_exist"), ["s", "k"]),
    (OneHotEncoder(max_categories=3, drop="if_binary"), ["s", "k", "c"]),
    (
        OneHotEncoder(categories=[["d", "c", "b", "a", "z"]], handle_unknown="ignore"),
        ["s"],
    ),
    (OrdinalEncoder(), ["s", "k", "c"]),
    (
        OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=-1,
            encoded_missing_value=-2,
            min_frequency=0.2,
        ),
        ["s", "k"],
    ),
    (OrdinalEncoder(max_categories=2, dtype=np.float32), ["k"]),
    # codes checked against the grouped categories: 3 and 4 are free once b, c group
    (
        OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=3,
            max_categories=3,
            encoded_missing_value=4,
        ),
        ["s"],
    ),
    (SimpleImputer(strategy="most_frequent"), ["s", "c", "k", "x"]),
    (SimpleImputer(strategy="constant", fill_value="?", add_indicator=True), ["s"]),
    (SimpleImputer(), ["x", "k"]),
    (SimpleImputer(missing_values=1, keep_empty_features=True), ["k"]),
    (SimpleImputer(keep_empty_features=True), ["x", "e"]),
    (SimpleImputer(strategy="most_frequent", add_indicator=True), ["e", "s"]),
    (KBinsDiscretizer(n_bins=3, strategy="uniform", encode="ordinal"), ["x", "k"]),
    (PolynomialFeatures(2), ["k"]),
    (FunctionTransformer(np.log1p, validate=True), ["k"]),
    (FunctionTransformer(feature_names_out="one-to-one"), ["k", "x"]),
    (RobustScaler(with_centering=False, with_scaling=False), ["k"]),
]


def _needs_finite(estimator):
    return isinstance(estimator, KBinsDiscretizer | PolynomialFeatures | FunctionTransformer)


@pytest.mark.parametrize(("estimator", "columns"), CASES, ids=lambda c: repr(c)[:60])
def test_exact_equals_fit_on_all_rows(on_cluster, estimator, columns):
    df = FRAME[columns]
    if _needs_finite(estimator):
        df = df.fillna(0.0)
    single = clone(estimator).fit(df)
    fits = [FusedTransformer(estimator, fusion="exact", n_partitions=3, partition="random").fit(df)]
    for how in ("contiguous", "random", "sorted", "unequal"):
        fits.append(FusedTransformer(estimator, fusion="exact", split_every=2).fit(_dask(df, how)))
    for fused in fits:
        assert isinstance(fused.fusion_, Exact)
        _same(fused.fused_estimator_, single)
        _check_outputs(fused.fused_estimator_, single, df)


def test_dask_string_columns_equal_the_pandas_frame(on_cluster):
    # dask stores strings as string[pyarrow] (missing: pd.NA); the encoders see NaN
    # as in the pandas frame the dask one was built from
    ddf = dd.from_pandas(FRAME[["s"]], npartitions=3)
    assert str(ddf.dtypes["s"]) == "string"
    fused = FusedTransformer(OneHotEncoder(), fusion="auto").fit(ddf)
    single = OneHotEncoder().fit(FRAME[["s"]])
    _same(fused.fused_estimator_, single)


def test_object_arrays_in_memory_and_dask(on_cluster):
    X = FRAME[["s", "k"]].to_numpy(dtype=object)
    X[:, 1] = X[:, 1].astype(str)
    single = OrdinalEncoder().fit(X)
    for data in (X, da.from_array(X, chunks=(10, 2))):
        fused = FusedTransformer(OrdinalEncoder(), fusion="exact", n_partitions=3).fit(data)
        _same(fused.fused_estimator_, single)


def test_numeric_array_keeps_float_categories(on_cluster):
    X = FRAME[["k"]].to_numpy(dtype=float)
    fused = FusedTransformer(OneHotEncoder(), n_partitions=4, partition=Rows(4, "random"))
    _same(fused.fit(X).fused_estimator_, OneHotEncoder().fit(X))


def test_auto_picks_exact():
    for estimator, _ in CASES:
        assert isinstance(resolve_fusion("auto", estimator), Exact)


@pytest.mark.parametrize(
    ("estimator", "reason"),
    [
        (SimpleImputer(strategy="median"), "median of all rows"),
        (RobustScaler(), "quantile range"),
        (RobustScaler(with_centering=False), "quantile range"),
        (KBinsDiscretizer(strategy="quantile"), "quantiles of all rows"),
        (KBinsDiscretizer(strategy="kmeans"), "1-D k-means"),
    ],
)
def test_refused_with_the_reason(estimator, reason):
    with pytest.raises(FusionError, match=reason):
        resolve_fusion("exact", estimator)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"unknown_value": 1}, "unknown_value 1 is one of the values already used"),
        ({"unknown_value": 5, "encoded_missing_value": 1}, r"encoded_missing_value \(1\)"),
    ],
)
def test_ordinal_codes_refused_as_scikit_learn_refuses_them(on_cluster, params, message):
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", max_categories=3)
    encoder.set_params(**params)
    df = FRAME[["s"]]
    with pytest.raises(ValueError, match=message):
        clone(encoder).fit(df)
    fused = FusedTransformer(encoder, n_partitions=2)
    with pytest.raises(ValueError, match=message):
        fused.fit(df)
    assert not hasattr(fused, "fused_estimator_")


def test_failed_fit_leaves_unfitted(on_cluster):
    fused = FusedTransformer(OneHotEncoder(categories=[["a", "b"]]), fusion="exact")
    with pytest.raises(Exception, match="unknown categories"):
        fused.fit(dd.from_pandas(pd.DataFrame({"s": ["a", "b", "c"]}), npartitions=2))
    assert not hasattr(fused, "fused_estimator_")


def test_numeric_only_error_stays_for_other_estimators(on_cluster):
    for data in (FRAME, dd.from_pandas(FRAME, npartitions=2)):
        with pytest.raises(ValueError, match=r"numeric columns only.*\['s', 'c'\]"):
            FusedTransformer(StandardScaler(), n_partitions=2).fit(data)


def test_accepts_objects():
    assert accepts_objects(OneHotEncoder()) and accepts_objects(OrdinalEncoder())
    assert accepts_objects(SimpleImputer(strategy="most_frequent"))
    assert not accepts_objects(SimpleImputer())
    assert accepts_objects(ColumnTransformer([("o", OneHotEncoder(), ["s"])]))
    assert accepts_objects(FeatureUnion([("i", SimpleImputer(strategy="constant"))]))
    assert accepts_objects(make_pipeline(OneHotEncoder(), LogisticRegression()))
    assert not accepts_objects(make_pipeline(StandardScaler(), OneHotEncoder()))
    assert not accepts_objects(StandardScaler())


def test_fuse_fitted_encoders():
    parts = _pieces(FRAME[["s", "k"]], "sorted")
    models = [OneHotEncoder().fit(p) for p in parts]
    _same(fuse(models, "exact"), OneHotEncoder().fit(FRAME[["s", "k"]]))
    imputers = [SimpleImputer().fit(p[["k"]]) for p in parts]
    with pytest.raises(FusionError, match="needs the training rows, not only fitted models"):
        fuse(imputers, "exact")
    infrequent = [OneHotEncoder(min_frequency=3).fit(p) for p in parts]
    with pytest.raises(FusionError, match="row count of every category"):
        fuse(infrequent, "exact")


def test_pins_private_sklearn_members():
    # the route _encoders takes through scikit-learn; a release that renames one of
    # these members breaks this test first
    from sklearn.utils import _encode, _mask

    for member in (
        "_fit",
        "_check_infrequent_enabled",
        "_fit_infrequent_category_mapping",
        "_validate_params",
    ):
        assert hasattr(OneHotEncoder, member) and hasattr(OrdinalEncoder, member)
    assert hasattr(OneHotEncoder, "_set_drop_idx")
    assert hasattr(OneHotEncoder, "_compute_n_features_outs")
    assert hasattr(SimpleImputer, "_validate_input")
    assert hasattr(_encode, "_unique") and hasattr(_encode, "_encode")
    assert hasattr(_mask, "_get_mask")


COMPOSITES = [
    ColumnTransformer(
        [("o", OneHotEncoder(), ["s", "c"]), ("sc", StandardScaler(), ["k"])],
        remainder="passthrough",
    ),
    ColumnTransformer(
        [
            ("o", OneHotEncoder(drop="first"), make_column_selector(dtype_exclude="number")),
            ("i", SimpleImputer(), [3]),
        ],
        remainder=StandardScaler(),
        sparse_threshold=0.5,
        verbose_feature_names_out=False,
    ),
    ColumnTransformer(
        [
            ("o", OneHotEncoder(min_frequency=5), lambda X: ["s"]),
            ("p", PolynomialFeatures(2), ["k"]),
        ],
        sparse_threshold=0.9,
    ),
    ColumnTransformer(  # a selection that matches no column: an empty part
        [
            ("o", OneHotEncoder(), ["s"]),
            ("none", StandardScaler(), make_column_selector(pattern="^zz")),
        ],
        sparse_threshold=0.8,
    ),
    FeatureUnion(
        [
            ("a", ColumnTransformer([("o", OrdinalEncoder(), ["s"])])),
            ("b", ColumnTransformer([("i", SimpleImputer(strategy="most_frequent"), ["x", "c"])])),
            ("d", "drop"),
        ]
    ),
]


@pytest.mark.parametrize("composite", COMPOSITES, ids=lambda c: repr(c)[:50])
def test_composites_equal_fit_on_all_rows(on_cluster, composite):
    single = clone(composite).fit(FRAME)
    fits = [FusedTransformer(composite, fusion="auto", n_partitions=3).fit(FRAME)]
    for how in ("contiguous", "sorted", "unequal"):
        fits.append(FusedTransformer(composite, split_every=2).fit(_dask(FRAME, how)))
    for fused in fits:
        model = fused.fused_estimator_
        assert type(model) is type(composite)
        assert _params(model) == _params(single)
        _check_outputs(model, single, FRAME)
        assert_array_equal(model.get_feature_names_out(), single.get_feature_names_out())
        assert getattr(model, "sparse_output_", None) == getattr(single, "sparse_output_", None)
        if isinstance(model, ColumnTransformer):
            assert model.output_indices_ == single.output_indices_
            assert model.named_transformers_.keys() == single.named_transformers_.keys()


def test_density_over_all_rows_sets_sparse_output(on_cluster):
    # drop="first" zeroes each partition's own first category: the density differs per
    # partition, and only the counts over all rows give scikit-learn's sparse_output_
    ct = ColumnTransformer(
        [("o", OneHotEncoder(drop="first"), ["s", "k"]), ("x", "passthrough", ["x"])],
        sparse_threshold=1.0,
    )
    out = ct.fit_transform(FRAME)
    # as scikit-learn counts it: a dense block's every entry is a non-zero
    onehot = ct.named_transformers_["o"].transform(FRAME[["s", "k"]])
    density = (onehot.nnz + len(FRAME)) / (out.shape[0] * out.shape[1])
    assert 0 < density < 1
    for threshold in (density - 1e-9, density + 1e-9):
        ct.set_params(sparse_threshold=threshold)
        single = clone(ct).fit(FRAME)
        fused = FusedTransformer(ct, split_every=2).fit(_dask(FRAME, "sorted"))
        assert fused.fused_estimator_.sparse_output_ == single.sparse_output_


def test_composite_refuses_a_part_with_the_reason():
    ct = ColumnTransformer([("m", SimpleImputer(strategy="median"), ["x"])])
    with pytest.raises(FusionError, match="part 'm' cannot be fused exactly.*median"):
        resolve_fusion("exact", ct)


def test_transform_takes_string_columns(on_cluster):
    ct, df = COMPOSITES[0], FRAME[["s", "c", "k", "x"]]
    single = clone(ct).fit(df)
    fused = FusedTransformer(ct, n_partitions=2).fit(df)
    expected = single.transform(df)
    np.testing.assert_allclose(fused.transform(df), expected, rtol=1e-12)
    lazy = fused.transform(_dask(df, "unequal"))  # with an empty block
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12)
    encoder = FusedTransformer(OneHotEncoder(), n_partitions=2).fit(FRAME[["s"]])
    sparse_blocks = encoder.transform(dd.from_pandas(FRAME[["s"]], npartitions=3))
    expected = OneHotEncoder().fit_transform(FRAME[["s"]]).toarray()
    assert_array_equal(sparse_blocks.compute().toarray(), expected)


def test_none_and_nan_are_two_categories_as_in_scikit_learn(on_cluster):
    # an object column holding None and NaN: scikit-learn keeps both, None first
    rng = np.random.default_rng(0)
    values = np.array(["a", "b", None, np.nan], dtype=object)
    df = pd.DataFrame({"o": pd.Series(rng.choice(values, 40), dtype=object)})
    single = OneHotEncoder().fit(df)
    assert len(single.categories_[0]) == 4
    with dask.config.set({"dataframe.convert-string": False}):  # dask keeps object
        ddf = dd.from_pandas(df, npartitions=3)
        assert ddf.dtypes["o"].kind == "O"
        fits = [FusedTransformer(OneHotEncoder(), split_every=2).fit(ddf)]
    fits.append(FusedTransformer(OneHotEncoder(), n_partitions=3).fit(df))
    for fused in fits:
        _same(fused.fused_estimator_, single)


def test_object_dask_array_of_unknown_chunk_sizes(on_cluster):
    X = FRAME[["s", "k"]].to_numpy(dtype=object)
    lazy = da.from_array(X, chunks=(10, 2))
    lazy = lazy[lazy[:, 1] != 99]  # a filter: the chunk sizes become unknown
    assert np.isnan(lazy.chunks[0][0])
    fused = FusedTransformer(OrdinalEncoder(encoded_missing_value=-1), split_every=2).fit(lazy)
    single = OrdinalEncoder(encoded_missing_value=-1).fit(X)
    _same(fused.fused_estimator_, single)
    assert_array_equal(fused.transform(lazy).compute(), single.transform(X))


def test_a_pipeline_that_encodes_first_takes_string_columns(on_cluster):
    # the voting fusion of a Pipeline whose first step encodes (the i16-pipeline
    # branch fuses it step by step): the partitions reach it as DataFrames
    df = FRAME[["s", "k"]]
    y = (FRAME["k"] > 2).astype(int)
    ddf = dd.from_pandas(df.assign(t=y), npartitions=3)
    pipe = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression())
    fused = FusedClassifier(pipe, fusion="vote").fit(ddf[["s", "k"]], ddf["t"])
    predicted = fused.predict(ddf[["s", "k"]]).compute()
    assert_array_equal(predicted, fused.predict(df))
    assert fused.score(df, y) > 0.9
    with pytest.raises(ValueError, match=r"numeric columns only.*\['s'\]"):
        FusedClassifier(make_pipeline(StandardScaler(), LogisticRegression())).fit(
            ddf[["s", "k"]], ddf["t"]
        )


def test_kbins_refuses_sample_weights():
    # a weighted fit (the sample_weight branch) must not be fused unweighted silently
    X = np.arange(6.0).reshape(3, 2)
    template = KBinsDiscretizer(strategy="uniform", n_bins=2)
    info = {"template": template, "sample_weight": np.ones(3)}
    with pytest.raises(FusionError, match="sample_weight"):
        Exact().summarize(None, X, None, info)
    assert Exact().summarize(None, X, None, {"template": template}).low.tolist() == [0, 1]


def test_categoricals_that_differ_between_partitions(on_cluster):
    # each partition of a dask frame read in pieces knows only its own categories
    df = FRAME[["s", "c"]].astype({"s": "category"})  # pieces sorted by s
    pieces = [p.astype({"s": object}).astype({"s": "category"}) for p in _pieces(df, "sorted")]
    assert len({tuple(p["s"].cat.categories) for p in pieces}) > 1
    ddf = dd.from_map(lambda piece: piece, pieces, meta=df.iloc[:0])
    for estimator in (OneHotEncoder(), SimpleImputer(strategy="most_frequent")):
        single = clone(estimator).fit(df)
        fused = FusedTransformer(estimator, split_every=2).fit(ddf)
        _same(fused.fused_estimator_, single)
        _check_outputs(fused.fused_estimator_, single, df)


def test_a_part_that_cannot_take_its_columns_is_named(on_cluster):
    ct = ColumnTransformer([("o", OneHotEncoder(), ["c"]), ("num", StandardScaler(), ["s", "k"])])
    fused = FusedTransformer(ct, n_partitions=2)
    with pytest.raises(ValueError, match=r"part 'num' \(StandardScaler\) on columns \['s', 'k'\]"):
        fused.fit(FRAME)
    assert not hasattr(fused, "fused_estimator_")
