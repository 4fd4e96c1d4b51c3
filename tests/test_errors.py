"""Bad input: a clear error that names the problem, never a hang or a wrong model."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.validation import check_is_fitted

from daskfuse import FusedClassifier, FusedRegressor, FusionError, PartitionError
from daskfuse.fusion import Weighted
from daskfuse.partition import Rows


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int)


def _with_nan():
    X, y = _data()
    X[5, 1] = np.nan
    return X, y


def _with_inf():
    X, y = _data()
    X[7, 0] = np.inf
    return X, y


def _dask(X, y, chunks=100):
    return da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=chunks)


def _dask_nan_in_block_2():
    X, y = _with_nan()
    X[5, 1] = 0.0
    X[250, 2] = np.nan
    return _dask(X, y)


def _dask_empty_block():
    X, y = _data()
    return (
        da.from_array(X, chunks=((100, 0, 300), (3,))),
        da.from_array(y, chunks=((100, 0, 300),)),
    )


def _dask_rows_mismatch():
    X, y = _data()
    return da.from_array(X, chunks=(100, -1)), da.from_array(y[:-10], chunks=100)


def _dask_unknown_blocks_mismatch():
    X, y = _data()
    Xd, yd = _dask(X, y)
    return Xd[Xd[:, 0] > -5], da.from_array(y, chunks=200)


def _dask_unknown_rows_mismatch():
    X, y = _data()
    Xd, yd = _dask(X, y)
    return Xd[Xd[:, 0] > 0], yd[yd >= 0]


def _one_class_partition():
    X, y = _data()
    order = np.argsort(y)
    return _dask(X[order], y[order])


def _estimator_without_fit():
    return object()


BAD_DATA = [
    # (id, make X/y, estimator kwargs, exception, message pattern)
    ("nan", _with_nan, {}, ValueError, "Input X contains NaN"),
    ("inf", _with_inf, {}, ValueError, "Input X contains infinity"),
    ("nan in a dask block", _dask_nan_in_block_2, {}, PartitionError,
     r"partition 2: X contains NaN or infinity"),
    ("X/y rows differ", lambda: (_data()[0], _data()[1][:-1]), {}, ValueError,
     "inconsistent numbers of samples"),
    ("dask X/y rows differ", _dask_rows_mismatch, {}, ValueError,
     "X has 400 rows but y has 390"),
    ("dask X/y blocks cannot align", _dask_unknown_blocks_mismatch, {}, ValueError,
     "X has 4 row blocks but y has 2"),
    ("dask X/y rows differ inside a block", _dask_unknown_rows_mismatch, {}, PartitionError,
     r"partition \d: X has \d+ rows but y has \d+"),
    ("empty dask block", _dask_empty_block, {}, PartitionError,
     r"partition 1: the partition is empty"),
    ("more partitions than rows", lambda: _data(n=10), {"n_partitions": 11}, ValueError,
     r"n_partitions=11 is larger than the number of rows \(10\)"),
    ("1-D X", lambda: (_data()[0][:, 0], _data()[1]), {}, ValueError, "Expected 2D array"),
    ("3-D X", lambda: (_data()[0].reshape(400, 3, 1), _data()[1]), {}, ValueError,
     "Found array with dim 3"),
    ("3-D dask X", lambda: (da.zeros((40, 3, 2), chunks=10), da.zeros(40, chunks=10)), {},
     ValueError, "X must be 2-dimensional"),
    ("string X", lambda: (np.array([["a", "b"]] * 20), np.arange(20) % 2), {}, ValueError,
     "not compatible with arrays of bytes/strings"),
    ("continuous y for a classifier", lambda: (_data()[0], _data()[0][:, 0]), {}, ValueError,
     "Unknown label type"),
    ("single class", lambda: (_data()[0], np.zeros(400)), {}, ValueError,
     r"y holds 1 class \(0.0\)"),
    ("a partition with a single class", _one_class_partition, {}, PartitionError,
     r"partition [0-3]: the partition holds 1 class \([01]\).*'stratified'"),
    ("unknown fusion", _data, {"fusion": "magic"}, ValueError,
     r"fusion must be 'auto', one of 'average', 'weighted'.*got 'magic'"),
    ("fusion that does not fit the estimator", _data,
     {"estimator": KNeighborsClassifier(), "fusion": "weighted"}, FusionError,
     r"cannot fuse KNeighborsClassifier\(\): parameter averaging needs a linear model"),
    ("exact fusion of a model without sufficient statistics", _data,
     {"estimator": KNeighborsClassifier(), "fusion": "exact"}, FusionError,
     r"cannot fuse KNeighborsClassifier\(\): exact fusion merges sufficient statistics"),
    ("split_every 1", _data, {"split_every": 1}, ValueError, "split_every must be >= 2"),
    ("split_every not int", _data, {"split_every": 2.5}, TypeError,
     "split_every must be an int >= 2 or None"),
    ("estimator without fit", _data, {"estimator": _estimator_without_fit()}, TypeError,
     "estimator must be a scikit-learn estimator with fit"),
    ("regressor in FusedClassifier", _data, {"estimator": Ridge()}, TypeError,
     "FusedClassifier needs a classifier as estimator; got Ridge"),
    ("unknown partition strategy", _data, {"partition": "sideways"}, ValueError,
     r"partition must be a daskfuse.partition.Rows or one of .*got 'sideways'"),
    ("chunks strategy on numpy", _data, {"partition": "chunks"}, ValueError,
     "partition strategy 'chunks' needs a chunked \\(dask\\) input"),
    ("n_partitions zero", _data, {"n_partitions": 0}, ValueError, "n_partitions must be >= 1"),
    ("n_partitions float", _data, {"n_partitions": 2.5}, TypeError,
     "n_partitions must be a positive int, 'auto' or None; got 2.5"),
    ("n_partitions contradicts Rows", _data, {"partition": Rows(3), "n_partitions": 4},
     ValueError, "n_partitions=4 contradicts partition=Rows"),
    ("chunks with another count", lambda: _dask(*_data()),
     {"partition": "chunks", "n_partitions": 3}, ValueError,
     "n_partitions=3 does not match the 4 row blocks"),
    ("random_state a string", _data, {"random_state": "seed"}, TypeError,
     "random_state must be None, an int, a numpy.random.Generator"),
    ("user weights of the wrong length", _data,
     {"fusion": Weighted(by=[1, 2]), "n_partitions": 4}, ValueError,
     "Weighted\\(by=...\\) has 2 weights but the data has 4 partitions"),
    ("in-memory X with dask y", lambda: (_data()[0], da.from_array(_data()[1])), {},
     TypeError, "X is in memory but y is a dask collection"),
]


@pytest.mark.parametrize(
    "make, kwargs, exc, match", [case[1:] for case in BAD_DATA], ids=[c[0] for c in BAD_DATA]
)
def test_bad_input_gives_clear_error(scheduler, make, kwargs, exc, match):
    X, y = make()
    kwargs = dict(kwargs)
    clf = FusedClassifier(kwargs.pop("estimator", LogisticRegression()), **kwargs)
    with pytest.raises(exc, match=match):
        clf.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"by": "votes"}, "Weighted\\(by=...\\) must be 'rows', 'score' or an array"),
        ({"by": [1.0, -1.0]}, "weights must be finite and >= 0"),
        ({"by": [0.0, 0.0]}, "weights are all zero"),
        ({"by": [[1.0]]}, "non-empty 1-D array"),
        ({"by": "score", "holdout": 1.5}, "holdout=...\\) must be in \\(0, 1\\)"),
    ],
)
def test_bad_fuser_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Weighted(**kwargs)


def test_failed_fit_leaves_previously_fitted_estimator_unfitted():
    X, y = _data()
    clf = FusedClassifier(LogisticRegression(), n_partitions=2).fit(X, y)
    assert hasattr(clf, "fused_estimator_")
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(bad, y)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    assert not [k for k in vars(clf) if k.endswith("_")]


def test_predict_checks_features():
    X, y = _data()
    reg = FusedRegressor(LinearRegression(), n_partitions=2).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="X has 2 features, but FusedRegressor is expecting 3"):
        reg.predict(X[:, :2])
    with pytest.raises(ValueError, match="X has 2 features, but FusedRegressor is expecting 3"):
        reg.predict(da.from_array(X[:, :2]))
    with pytest.raises(NotFittedError):
        FusedRegressor(LinearRegression()).predict(X)


def test_auto_without_a_strategy_names_the_estimator():
    from sklearn.feature_selection import SelectKBest

    from daskfuse import FusedTransformer

    with pytest.raises(FusionError, match="fusion='auto' found no strategy for SelectKBest"):
        FusedTransformer(SelectKBest(k=2)).fit(*_data())
