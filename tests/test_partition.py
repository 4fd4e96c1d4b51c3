"""Data distribution: Rows strategies over every kind of input."""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.linear_model import LogisticRegression, Ridge

from daskfuse import FusedClassifier, FusedRegressor
from daskfuse.partition import Rows, assign_rows, auto_n_partitions


def _fit(X, y, **kw):
    return FusedClassifier(LogisticRegression(), **kw).fit(X, y)


def test_same_partitions_same_model_across_input_types(scheduler, binary_data):
    """numpy, pandas, dask array (row- and column-chunked) and dask DataFrame agree."""
    X, y = binary_data
    reference = _fit(X, y, n_partitions=4)
    cols = [f"f{i}" for i in range(X.shape[1])]
    pdf = pd.DataFrame(X, columns=cols)
    inputs = {
        "pandas": (pdf, pd.Series(y)),
        "dask array": (da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=1000)),
        "column-chunked dask array": (
            da.from_array(X, chunks=(1000, 2)),
            da.from_array(y, chunks=1000),
        ),
        "dask array, y chunked differently": (
            da.from_array(X, chunks=(1000, -1)),
            da.from_array(y, chunks=500),
        ),
        "dask array, numpy y": (da.from_array(X, chunks=(1000, -1)), y),
        "dask dataframe": (
            dd.from_pandas(pdf, npartitions=4, sort=False),
            dd.from_pandas(pd.Series(y), npartitions=4, sort=False),
        ),
    }
    for name, (Xi, yi) in inputs.items():
        clf = _fit(Xi, yi, n_partitions=None if name != "pandas" else 4)
        assert clf.n_partitions_ == 4, name
        assert_allclose(
            clf.fused_estimator_.coef_, reference.fused_estimator_.coef_, rtol=1e-10,
            err_msg=name,
        )
    named = _fit(pdf, y, n_partitions=4)
    assert list(named.feature_names_in_) == cols
    assert list(named.fused_estimator_.feature_names_in_) == cols
    ddf_clf = _fit(dd.from_pandas(pdf, npartitions=4, sort=False), pd.Series(y).pipe(
        lambda s: dd.from_pandas(s, npartitions=4, sort=False)))
    assert list(ddf_clf.feature_names_in_) == cols


def test_random_partitions_of_unknown_block_lengths_are_those_of_known_ones():
    """Unknown block lengths are counted first, so 'random' deals the same partitions.

    (Before, each block was dealt from its own start: 2 rows in 2 one-row blocks could
    leave a partition empty, and the model differed from the known-length one.)
    """
    rng = np.random.default_rng(3)
    X = rng.normal(size=(7, 2))
    y = X @ np.array([1.0, -2.0]) + rng.normal(size=7)
    chunks = (1, 2, 4)
    known = da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,))
    keep = known[0][:, 0] > -np.inf
    unknown = (known[0][keep], known[1][keep])
    assert np.isnan(unknown[0].shape[0]) and np.isnan(unknown[1].shape[0])
    fits = [
        FusedRegressor(Ridge(), partition="random", n_partitions=3, random_state=0).fit(*xy)
        for xy in (known, unknown)
    ]
    assert_array_equal(fits[0].partition_report_["rows"], fits[1].partition_report_["rows"])
    assert_array_equal(fits[0].fused_estimator_.coef_, fits[1].fused_estimator_.coef_)
    two = [da.from_array(a, chunks=1) for a in (X[:2], y[:2])]
    two = [a[two[0][:, 0] > -np.inf] for a in two]
    fitted = FusedRegressor(Ridge(), partition="random", n_partitions=2).fit(*two)
    assert list(fitted.partition_report_["rows"]) == [1, 1]


def test_unknown_chunk_sizes(scheduler, binary_data):
    X, y = binary_data
    Xd, yd = da.from_array(X, chunks=(500, -1)), da.from_array(y, chunks=500)
    keep = Xd[:, 0] > -1.0
    Xu, yu = Xd[keep], yd[keep]
    assert np.isnan(Xu.shape[0])
    mask = X[:, 0] > -1.0
    for partition, n in [(None, 8), ("uniform", 3), ("random", 3), ("stratified", 3)]:
        clf = FusedClassifier(
            LogisticRegression(), partition=partition,
            n_partitions=None if partition is None else n, random_state=0,
        ).fit(Xu, yu)
        assert clf.n_partitions_ == n
        assert clf.partition_report_["rows"].sum() == mask.sum()
        assert clf.score(Xu, yu) > 0.85

    ddf = dd.from_pandas(pd.DataFrame(X), npartitions=5, sort=False)
    ys = dd.from_pandas(pd.Series(y), npartitions=5, sort=False)
    sel = ddf[0] > -1.0
    clf = FusedClassifier(LogisticRegression(), partition="uniform", n_partitions=2).fit(
        ddf[sel], ys[sel]
    )
    assert clf.partition_report_["rows"].sum() == mask.sum()
    assert abs(clf.partition_report_["rows"].diff().iloc[1]) <= 1


@pytest.mark.parametrize("strategy", ["uniform", "random", "stratified"])
def test_strategies_balance_rows(strategy, multiclass_data):
    X, y = multiclass_data
    clf = FusedClassifier(
        LogisticRegression(), partition=strategy, n_partitions=7, random_state=0
    ).fit(X, y)
    rows = clf.partition_report_["rows"]
    assert rows.sum() == len(X)
    assert rows.max() - rows.min() <= 1


def test_stratified_keeps_label_proportions():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [600, 300, 100])  # sorted by class: the worst case
    X = rng.normal(size=(1000, 3)) + y[:, None]
    clf = FusedClassifier(
        LogisticRegression(), partition="stratified", n_partitions=5, random_state=0
    ).fit(X, y)
    for counts in clf.partition_report_["class_counts"]:
        assert counts == {0: 120, 1: 60, 2: 20}

    blocks = FusedClassifier(
        LogisticRegression(), partition="stratified", n_partitions=5, random_state=0
    ).fit(da.from_array(X, chunks=(250, -1)), da.from_array(y, chunks=250))
    for counts in blocks.partition_report_["class_counts"]:
        # each of the 4 blocks deals each class round-robin: within 1 row per block
        for label, total in {0: 600, 1: 300, 2: 100}.items():
            assert abs(counts[label] - total / 5) <= 4


def test_uniform_is_contiguous_and_random_shuffles():
    y = np.arange(10)
    rng = np.random.default_rng(0)
    assert_array_equal(assign_rows("uniform", 10, y, 3, rng, 0, 10), [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    ids = assign_rows("random", 10, None, 3, np.random.default_rng(0))
    assert sorted(np.bincount(ids)) == [3, 3, 4]
    assert not np.array_equal(ids, np.sort(ids))


def test_random_partitioning_is_reproducible(binary_data):
    X, y = binary_data

    def fit(seed):
        return FusedClassifier(
            LogisticRegression(), partition="random", n_partitions=4, random_state=seed
        ).fit(X, y).fused_estimator_.coef_

    assert_array_equal(fit(0), fit(0))
    assert not np.array_equal(fit(0), fit(1))


def test_auto_uses_cluster_threads(on_cluster, regression_data):
    X, y = regression_data
    threads = sum(on_cluster.nthreads().values())
    assert auto_n_partitions() == threads
    assert auto_n_partitions(n_rows=60) == 1
    reg = FusedRegressor(Ridge(), n_partitions="auto").fit(X, y)
    assert reg.n_partitions_ == threads
    reg = FusedRegressor(Ridge(), n_partitions="auto").fit(
        da.from_array(X, chunks=(300, -1)), da.from_array(y, chunks=300)
    )
    assert reg.n_partitions_ == threads
    assert reg.partition_.strategy == "uniform"


def test_rows_object_and_shortcut_agree(binary_data):
    X, y = binary_data
    a = FusedClassifier(LogisticRegression(), partition=Rows(5, "random"), random_state=0)
    b = FusedClassifier(LogisticRegression(), partition="random", n_partitions=5, random_state=0)
    assert_array_equal(a.fit(X, y).fused_estimator_.coef_, b.fit(X, y).fused_estimator_.coef_)
    assert a.partition_ == Rows(5, "random")
    assert repr(a.partition_) == "Rows(n_partitions=5, strategy='random')"


def test_parquet_columns_of_one_frame_align(tmp_path, binary_data):
    """dask may partition ddf[features] and ddf[target] differently; fit still aligns."""
    X, y = binary_data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]).assign(label=y)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 8)):
        frame.iloc[rows].to_parquet(tmp_path / f"part-{i}.parquet")
    ddf = dd.read_parquet(tmp_path)
    features = [c for c in ddf.columns if c != "label"]
    clf = FusedClassifier(LogisticRegression()).fit(ddf[features], ddf["label"])
    assert clf.partition_report_["rows"].sum() == len(X)
    assert list(clf.feature_names_in_) == features
    assert clf.score(ddf[features], ddf["label"]) > 0.85
