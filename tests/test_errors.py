"""Bad parameters: a clear error that names the parameter, never a hang or a wrong model."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.validation import check_is_fitted

from daskfuse import FusedClassifier, FusionError
from daskfuse.fusion import Weighted
from daskfuse.partition import Rows


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int)


def _dask(X, y, chunks=100):
    return da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=chunks)


def _estimator_without_fit():
    return object()


# The bad *data* (NaN, labels, shapes, sparse, dask alignment ...) is catalogued in
# tests/test_bad_input.py; these are bad parameters.
BAD_DATA = [
    # (id, make X/y, estimator kwargs, exception, message pattern)
    ("unknown fusion", _data, {"fusion": "magic"}, ValueError,
     r"fusion must be 'auto', one of 'average', 'weighted'.*got 'magic'"),
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
    ("user weights of the wrong length", _data,
     {"fusion": Weighted(by=[1, 2]), "n_partitions": 4}, ValueError,
     "Weighted\\(by=...\\) has 2 weights but the data has 4 partitions"),
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


def test_auto_without_a_strategy_names_the_estimator():
    from sklearn.feature_selection import SelectKBest

    from daskfuse import FusedTransformer

    with pytest.raises(FusionError, match="fusion='auto' found no strategy for SelectKBest"):
        FusedTransformer(SelectKBest(k=2)).fit(*_data())
