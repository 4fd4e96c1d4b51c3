"""The bad-input catalogue: every case gives a clear error or a correct result, never a hang.

One table, one row per case. A row with an exception must raise it with a message
that names the input (parameter, partition, column) and what was expected or got; a
row without one runs a function that asserts the correct result. Cases that build
dask collections run on every scheduler (sync, threads, the distributed cluster),
the others once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from daskfuse import (
    FusedClassifier,
    FusedRegressor,
    FusedTransformer,
    FusionError,
    PartitionError,
    fuse,
)
from daskfuse.fusion import Weighted

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- data
def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int)


def _dask(X, y, chunks=100):
    return da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=chunks)


def _frames(X, y, npartitions=4):
    return (
        dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c"]), npartitions=npartitions),
        dd.from_pandas(pd.Series(y, name="y"), npartitions=npartitions),
    )


def _clf(**kwargs):
    return FusedClassifier(kwargs.pop("estimator", LogisticRegression()), **kwargs)


def _fit(X, y, **kwargs):
    return _clf(**kwargs).fit(X, y)


def _fitted(**kwargs):
    return _fit(*_data(), n_partitions=2, **kwargs)


def _with(value, row, col, dask=False):
    X, y = _data()
    X[row, col] = value
    return _dask(X, y) if dask else (X, y)


def _sorted_by_label(X, y):
    order = np.argsort(y, kind="stable")
    return X[order], y[order]


def _unknown_blocks_mismatch():
    Xd, _ = _dask(*_data())
    return Xd[Xd[:, 0] > -5], da.from_array(_data()[1], chunks=200)


def _unknown_rows_mismatch():
    Xd, yd = _dask(*_data())
    return Xd[Xd[:, 0] > 0], yd[yd >= 0]


def _unknown_rows_in_memory_y():
    Xd, _ = _dask(*_data())
    return Xd[Xd[:, 0] > -1], _data()[1]


def _frame_with_strings():
    X, y = _data()
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["c"] = np.where(y == 1, "up", "down")
    return frame, y


def _labels(y, kind):
    return {
        "str": np.where(y == 1, "yes", "no"),
        "bool": y.astype(bool),
        "float": y.astype(float),
        "mixed": np.array(["yes" if v else 0 for v in y], dtype=object),
    }[kind]


# --------------------------------------------------------------------------- results
def _all_nan_column_scaler():
    X, _ = _data()
    X[:, 1] = np.nan
    X[5, 2] = np.nan
    fused = FusedTransformer(StandardScaler(), n_partitions=4).fit(da.from_array(X, chunks=100))
    single = StandardScaler().fit(X)
    for name in ("mean_", "var_", "scale_", "n_samples_seen_"):
        assert_allclose(getattr(fused.fused_estimator_, name), getattr(single, name))
    assert np.isnan(fused.fused_estimator_.mean_[1])
    assert_allclose(fused.transform(X), single.transform(X))


def _empty_block_left_out(on_error):
    """A dask block without rows is left out of the fusion, whatever on_error says
    (a filtered dask DataFrame has such blocks); no 'skipped' warning is given."""

    def check():
        X, y = _data()
        Xd = da.from_array(X, chunks=((100, 0, 300), (3,)))
        yd = da.from_array(y, chunks=((100, 0, 300),))
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            clf = _fit(Xd, yd, on_error=on_error)
        assert clf.partition_report_["skipped"].tolist() == [False, True, False]
        assert clf.partition_report_["error"].iloc[1] == "the partition is empty (0 rows)"
        assert clf.score(X, y) > 0.95

    return check


def _single_class_partitions_exact():
    X, y = _sorted_by_label(*_data())
    clf = _fit(*_dask(X, y), estimator=GaussianNB(), fusion="exact")
    assert sum(len(c) == 1 for c in clf.partition_report_["class_counts"]) >= 2
    single = GaussianNB().fit(X, y)
    assert_allclose(clf.fused_estimator_.theta_, single.theta_)
    assert_allclose(clf.fused_estimator_.var_, single.var_)
    assert_array_equal(clf.predict(X), single.predict(X))


def _label_kind_result(kind):
    def check():
        X, y = _data()
        labels = _labels(y, kind)
        clf = _fit(*_dask(X, labels))
        assert_array_equal(clf.classes_, np.unique(labels))
        pred = clf.predict(X)
        assert pred.dtype == labels.dtype
        assert np.mean(pred == labels) > 0.95
        assert_array_equal(clf.predict(da.from_array(X, chunks=(100, -1))).compute(), pred)

    return check


def _unseen_label_at_score():
    X, y = _data()
    clf = _fit(X, y, n_partitions=2)
    y_new = np.where(y == 1, 2, y)  # class 2 was never in training
    expected = float(np.mean(clf.predict(X) == y_new))
    assert expected < 0.6
    assert clf.score(X, y_new) == pytest.approx(expected)
    assert clf.score(*_dask(X, y_new)) == pytest.approx(expected)
    assert_array_equal(clf.classes_, [0, 1])


def _frames_with_different_partitions():
    X, y = _data()
    Xf, _ = _frames(X, y, npartitions=4)
    _, yf = _frames(X, y, npartitions=3)
    clf = _fit(Xf, yf)
    assert clf.partition_report_["rows"].sum() == 400
    # aligned by index: the model is that of the rows with their own labels
    assert clf.score(pd.DataFrame(X, columns=["a", "b", "c"]), y) > 0.95


def _unknown_chunks_predict():
    X, y = _data()
    clf = _fit(X, y, n_partitions=2)
    Xd = da.from_array(X, chunks=(100, -1))
    keep = Xd[:, 1] > 0
    pred = clf.predict(Xd[keep])
    assert np.isnan(pred.shape[0])
    assert_array_equal(pred.compute(), clf.predict(X[X[:, 1] > 0]))


def _object_dtype_numbers():
    X, y = _data()
    as_objects = _fit(X.astype(object), y, n_partitions=2)
    as_floats = _fit(X, y, n_partitions=2)
    assert_allclose(as_objects.fused_estimator_.coef_, as_floats.fused_estimator_.coef_)


def _split_every_above_partitions():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ [1.0, 2.0, 3.0] + 0.5 + rng.normal(size=400)
    reg = FusedRegressor(LinearRegression(), fusion="exact", n_partitions=4, split_every=100)
    reg.fit(X, y)
    assert reg.split_every_ == 100
    assert_allclose(reg.fused_estimator_.coef_, LinearRegression().fit(X, y).coef_, rtol=1e-10)


def _fewer_rows_than_partitions(reg=False):
    """13 rows in blocks of unknown size, for 20 randomly dealt partitions."""
    X, y = _data(n=40)
    Xd, yd = _dask(X, X[:, 1] if reg else y, chunks=10)
    keep = Xd[:, 0] > 0.5
    assert int(keep.sum().compute()) == 13
    return Xd[keep], yd[keep]


def _random_over_one_row_blocks():
    """'random' deals all rows round-robin when the block lengths are known: 1-row
    blocks give every partition its share, down to one row each."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 3))
    y = X @ [1.0, 2.0, 3.0] + 0.5
    Xd, yd = da.from_array(X, chunks=(1, -1)), da.from_array(y, chunks=1)
    reg = FusedRegressor(LinearRegression(), partition="random", n_partitions=8, random_state=0)
    reg.fit(Xd, yd)
    assert reg.partition_report_["rows"].tolist() == [1] * 8
    assert_allclose(reg.fused_estimator_.coef_, [1.0, 2.0, 3.0], rtol=1e-8)
    clf = _fit(*_dask(*_data(n=16), chunks=1), partition="random", n_partitions=4,
               estimator=GaussianNB(), random_state=0)
    assert clf.partition_report_["rows"].tolist() == [4] * 4


def _two_rows_in_three_blocks():
    """Blocks of unknown size holding 1, 0 and 1 rows."""
    X, y = _dask(*_data(n=30), chunks=10)
    keep = da.from_array(np.isin(np.arange(30), [0, 25]), chunks=10)
    return X[keep], y[keep]


def _fewer_rows_than_partitions_skipped():
    # 'random' counts unknown block lengths first, so the check is made before any
    # fit, whatever on_error says (as for known lengths)
    reg = FusedRegressor(
        LinearRegression(), partition="random", n_partitions=20, on_error="skip", random_state=0
    )
    too_many = r"n_partitions=20 is larger than the number of rows \(13\)"
    with pytest.raises(ValueError, match=too_many):
        reg.fit(*_fewer_rows_than_partitions(reg=True))
    assert not hasattr(reg, "fused_estimator_")


def _nan_in_dask_block_skipped():
    X, y = _data()
    X[250, 2] = np.nan
    with pytest.warns(UserWarning, match=r"partition 2: X contains NaN"):
        clf = _fit(*_dask(X, y), on_error="skip")
    assert clf.partition_report_["skipped"].tolist() == [False, False, True, False]
    keep = np.r_[0:200, 300:400]
    assert clf.score(X[keep], y[keep]) > 0.95


def _overfit_noise():
    # 20 features on 20 fitted rows per partition: the models interpolate noise, so
    # each one scores below 0 on its held-out rows and gets weight 0
    rng = np.random.default_rng(0)
    return rng.normal(size=(100, 20)), rng.normal(size=100)


# --------------------------------------------------------------------------- table
@dataclass
class Case:
    id: str
    run: Any
    raises: type | None = None
    match: str | None = None
    dask: bool = False


CASES = [
    # NaN / inf
    Case("NaN in X", lambda: _fit(*_with(np.nan, 5, 1)), ValueError, "Input X contains NaN"),
    Case("inf in X", lambda: _fit(*_with(np.inf, 7, 0)), ValueError,
         "Input X contains infinity"),
    Case("NaN in a dask block", lambda: _fit(*_with(np.nan, 250, 2, dask=True)),
         PartitionError, r"partition 2: X contains NaN or infinity \(in column\(s\) \[2\]\); "
         "LogisticRegression needs finite values", dask=True),
    # on_error="skip" covers the fit tasks: in-memory data are validated whole first
    Case("NaN in X, on_error skip", lambda: _fit(*_with(np.nan, 5, 1), on_error="skip"),
         ValueError, "Input X contains NaN"),
    Case("NaN in a dask block, on_error skip", _nan_in_dask_block_skipped, dask=True),
    Case("NaN in a dask y", lambda: FusedRegressor(LinearRegression()).fit(
        *_dask(_data()[0], np.where(np.arange(400) == 150, np.nan, 1.0))),
         PartitionError, r"partition 1: y contains NaN or infinity", dask=True),
    # all-NaN column
    Case("all-NaN column, dask", lambda: _fit(*_with(np.nan, slice(None), 1, dask=True)),
         PartitionError, r"partition \d: X contains NaN or infinity \(in column\(s\) \[1\]\)",
         dask=True),
    Case("all-NaN column, estimator that allows NaN", _all_nan_column_scaler, dask=True),
    # empty partitions
    Case("empty dask block", _empty_block_left_out("raise"), dask=True),
    Case("empty dask block, skipped", _empty_block_left_out("skip"), dask=True),
    Case("empty X", lambda: _fit(_data()[0][:0], _data()[1][:0]), ValueError,
         r"Found array with 0 sample\(s\) \(shape=\(0, 3\)\)"),
    Case("more partitions than rows", lambda: _fit(*_data(n=10), n_partitions=11), ValueError,
         r"n_partitions=11 is larger than the number of rows \(10\)"),
    Case("more partitions than rows of unknown number", lambda: _fit(
        *_fewer_rows_than_partitions(), partition="random", n_partitions=20, random_state=0),
         ValueError, r"n_partitions=20 is larger than the number of rows \(13\)", dask=True),
    Case("random partitions of 1-row blocks", _random_over_one_row_blocks, dask=True),
    Case("fewer rows than blocks of unknown size, chunks", lambda: _fit(
        *_two_rows_in_three_blocks()), PartitionError,
         r"partition \d: the partition (is empty|holds 1 class)", dask=True),
    Case("more partitions than rows of unknown number, skipped",
         _fewer_rows_than_partitions_skipped, dask=True),
    # single-class partitions
    Case("single-class partition", lambda: _fit(*_dask(*_sorted_by_label(*_data()))),
         PartitionError,
         r"partition [0-3]: the partition holds 1 class \([01]\).*'stratified'", dask=True),
    Case("single-class partitions, exact fusion", _single_class_partitions_exact, dask=True),
    Case("y of one class", lambda: _fit(_data()[0], np.zeros(400)), ValueError,
         r"y holds 1 class \(0.0\)"),
    # label types
    Case("str labels", _label_kind_result("str"), dask=True),
    Case("bool labels", _label_kind_result("bool"), dask=True),
    Case("float labels", _label_kind_result("float"), dask=True),
    Case("mixed str/int labels", lambda: _fit(_data()[0], _labels(_data()[1], "mixed")),
         ValueError, r"y mixes class labels of types \['number', 'str'\]"),
    Case("mixed str/int labels, dask",
         lambda: _fit(*_dask(_data()[0], _labels(_data()[1], "mixed"))), PartitionError,
         r"partition \d: y mixes class labels of types \['number', 'str'\]", dask=True),
    Case("continuous y for a classifier", lambda: _fit(_data()[0], _data()[0][:, 0]),
         ValueError, "Unknown label type"),
    Case("continuous dask y for exact GaussianNB",
         lambda: _fit(*_dask(_data()[0], _data()[0][:, 0]), estimator=GaussianNB()),
         PartitionError, r"partition \d: Unknown label type: continuous", dask=True),
    # classes at predict that training never saw
    Case("label at score never seen in training", _unseen_label_at_score, dask=True),
    # mismatched X / y partitions
    Case("X/y rows differ", lambda: _fit(_data()[0], _data()[1][:-1]), ValueError,
         "inconsistent numbers of samples"),
    Case("dask X/y rows differ", lambda: _fit(
        da.from_array(_data()[0], chunks=(100, -1)), da.from_array(_data()[1][:-10], chunks=100)),
         ValueError, "X has 400 rows but y has 390", dask=True),
    Case("dask X/y blocks cannot align", lambda: _fit(*_unknown_blocks_mismatch()),
         ValueError, "X has 4 row blocks but y has 2", dask=True),
    Case("dask X/y rows differ inside a block", lambda: _fit(*_unknown_rows_mismatch()),
         PartitionError, r"partition \d: X has \d+ rows but y has \d+", dask=True),
    Case("dask frames X and y partitioned differently", _frames_with_different_partitions,
         dask=True),
    Case("in-memory X with dask y", lambda: _fit(_data()[0], da.from_array(_data()[1])),
         TypeError, "X is in memory but y is a dask collection"),
    # unknown chunk sizes
    Case("unknown chunk sizes, y in memory", lambda: _fit(*_unknown_rows_in_memory_y()),
         ValueError, "y is in memory but X is a dask collection of unknown chunk sizes",
         dask=True),
    Case("unknown chunk sizes at predict", _unknown_chunks_predict, dask=True),
    # object dtypes
    Case("string X", lambda: _fit(np.array([["a", "b"]] * 20), np.arange(20) % 2), ValueError,
         "not compatible with arrays of bytes/strings"),
    Case("object X of numbers", _object_dtype_numbers),
    Case("pandas column of strings", lambda: _fit(*_frame_with_strings()), ValueError,
         r"X must have numeric columns only; columns \['c'\] hold values that are not numbers"),
    Case("dask frame column of strings", lambda: _fit(
        _frames(*_data())[0].assign(c="x"), _frames(*_data())[1]), ValueError,
         r"X must have numeric columns only; columns \['c'\] are not numeric", dask=True),
    Case("object dask array", lambda: _fit(
        da.from_array(_data()[0].astype(object), chunks=(100, -1)), _dask(*_data())[1]),
         ValueError, "X must be numeric; got a dask array of dtype object", dask=True),
    # sparse
    Case("scipy.sparse X", lambda: _fit(sp.csr_matrix(_data()[0]), _data()[1]), TypeError,
         r"X is a sparse matrix \(scipy\.sparse\..*csr_matrix\); daskfuse fits dense "
         r"partitions only.*X\.toarray\(\)"),
    Case("dask array of sparse blocks", lambda: _fit(
        da.from_array(_data()[0], chunks=(100, -1)).map_blocks(sp.csr_matrix),
        _dask(*_data())[1]), TypeError,
         r"X is a dask array of sparse blocks \(scipy\.sparse.*\).*map_blocks", dask=True),
    Case("complex dask X at predict", lambda: _fitted().predict(
        da.from_array(_data()[0] + 1j, chunks=(100, -1))), ValueError,
         "X must be numeric; got a dask array of dtype complex128", dask=True),
    Case("complex dask X at score", lambda: _fitted().score(
        da.from_array(_data()[0] + 1j, chunks=(100, -1)), _data()[1]), ValueError,
         "X must be numeric; got a dask array of dtype complex128", dask=True),
    Case("dask y of 2 columns to score a one-target regressor", lambda: FusedRegressor(
        LinearRegression(), n_partitions=2).fit(*_data()).score(*_dask(
            _data()[0], np.c_[_data()[1], _data()[1]])), ValueError,
         r"y has 2 target column\(s\) but the model predicts 1", dask=True),
    Case("scipy.sparse X at predict", lambda: _fitted().predict(sp.csr_matrix(_data()[0])),
         TypeError, r"X is a sparse matrix"),
    # dimensions
    Case("1-D X", lambda: _fit(_data()[0][:, 0], _data()[1]), ValueError, "Expected 2D array"),
    Case("3-D X", lambda: _fit(_data()[0].reshape(400, 3, 1), _data()[1]), ValueError,
         "Found array with dim 3"),
    Case("1-D dask X", lambda: _fit(da.zeros(40, chunks=10), da.zeros(40, chunks=10)),
         ValueError, r"X must be 2-dimensional.*got a dask array with 1 dimension", dask=True),
    Case("3-D dask X", lambda: _fit(da.zeros((40, 3, 2), chunks=10), da.zeros(40, chunks=10)),
         ValueError, "X must be 2-dimensional", dask=True),
    # n_features at predict
    Case("fewer features at predict", lambda: _fitted().predict(_data()[0][:, :2]), ValueError,
         "X has 2 features, but FusedClassifier is expecting 3"),
    Case("fewer features at predict, dask", lambda: _fitted().predict(
        da.from_array(_data()[0][:, :2])), ValueError,
         "X has 2 features, but FusedClassifier is expecting 3", dask=True),
    Case("other columns at predict, dask frame", lambda: _fit(
        pd.DataFrame(_data()[0], columns=["a", "b", "c"]), _data()[1], n_partitions=2).predict(
        _frames(*_data())[0].rename(columns={"c": "d"})), ValueError,
         r"X's columns \['a', 'b', 'd'\] differ from the columns seen in fit", dask=True),
    # split_every
    Case("split_every 1", lambda: _fitted(split_every=1), ValueError,
         r"split_every must be >= 2 \(the fan-in of the fusion tree\); got 1"),
    Case("split_every True", lambda: _fitted(split_every=True), TypeError,
         "split_every must be an int >= 2 or None; got True"),
    Case("split_every above the partition count", _split_every_above_partitions),
    # weights
    Case("negative weights", lambda: _fitted(fusion=Weighted(by=[1.0, -1.0])), ValueError,
         r"Weighted\(by=...\) weights must be finite and >= 0; got \[1.0, -1.0\]"),
    Case("all-zero weights", lambda: _fitted(fusion=Weighted(by=[0.0, 0.0])), ValueError,
         r"Weighted\(by=...\) weights are all zero"),
    Case("every partition scored to weight 0", lambda: FusedRegressor(
        LinearRegression(), fusion=Weighted(by="score"), n_partitions=4).fit(*_overfit_noise()),
         FusionError, r"Weighted\(by='score'.*every partition got weight 0"),
    Case("fuse with negative weights", lambda: fuse(
        [_fitted().fused_estimator_] * 2, weights=[-1, 2]), ValueError,
         r"weights must be finite, >= 0 and not all zero; got \[-1.0, 2.0\]"),
    # a fusion that does not fit the estimator
    Case("averaging a model without parameters", lambda: _fitted(
        estimator=KNeighborsClassifier(), fusion="weighted"), FusionError,
         r"cannot fuse KNeighborsClassifier\(\): parameter averaging needs a linear model"),
    Case("exact fusion of a model without statistics", lambda: _fitted(
        estimator=KNeighborsClassifier(), fusion="exact"), FusionError,
         r"cannot fuse KNeighborsClassifier\(\): exact fusion merges sufficient statistics"),
    Case("reclustering a regressor", lambda: FusedRegressor(
        LinearRegression(), fusion="recluster").fit(*_data()), FusionError,
         r"cannot fuse LinearRegression\(\): reclustering needs a KMeans.*"
         r"Strategies that apply to LinearRegression: 'average'"),
    # predict before fit
    Case("predict before fit", lambda: _clf().predict(_data()[0]), NotFittedError,
         "This FusedClassifier instance is not fitted yet"),
    Case("score before fit, dask", lambda: _clf().score(*_dask(*_data())), NotFittedError,
         "This FusedClassifier instance is not fitted yet", dask=True),
    # random_state
    Case("random_state a string", lambda: _fitted(random_state="seed"), TypeError,
         "random_state must be None, an int, a numpy.random.Generator or "
         "numpy.random.RandomState; got str 'seed'"),
    Case("random_state a float", lambda: _fitted(random_state=1.5), TypeError,
         "random_state must be None, an int.*; got float 1.5"),
    Case("random_state negative", lambda: _fitted(random_state=-1), ValueError,
         "random_state must be >= 0; got -1"),
    # on_error / min_partitions
    Case("on_error unknown", lambda: _fitted(on_error="ignore"), ValueError,
         "on_error must be 'raise' or 'skip'; got 'ignore'"),
    Case("min_partitions 0", lambda: _fitted(min_partitions=0), ValueError,
         "min_partitions must be >= 1; got 0"),
    Case("min_partitions above the partition count", lambda: _fitted(min_partitions=3),
         ValueError, r"min_partitions=3 is larger than the number of partitions \(2\)"),
    Case("min_partitions fraction above 1", lambda: _fitted(min_partitions=1.5), ValueError,
         r"min_partitions as a fraction of the partitions must be in \(0, 1\]; got 1.5"),
    Case("min_partitions a string", lambda: _fitted(min_partitions="all"), TypeError,
         "min_partitions must be an int >= 1 or a float in \\(0, 1\\]"),
]

SCHEDULERS = ("sync", "threads", "distributed")


def _params():
    return list(_cases())


def _cases():
    for case in CASES:
        for name in SCHEDULERS if case.dask else ("sync",):
            yield pytest.param(name, case, id=f"{name}-{case.id}")


def test_catalogue_is_complete():
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("scheduler, case", _params(), indirect=["scheduler"])
def test_bad_input(scheduler, case):
    if case.raises is None:
        case.run()
        return
    with pytest.raises(case.raises, match=case.match):
        case.run()


def test_a_dask_y_of_one_class_is_refused_as_a_numpy_one(scheduler):
    """A dask y's classes are seen only by the partitions: a y of one class gave a
    one-class model (exact fusion takes single-class partitions) without a word."""
    X = np.random.default_rng(0).normal(size=(30, 2))
    y = np.array(["yes"] * 30)
    clf = FusedClassifier(GaussianNB(), n_partitions=None)
    for Xy in ((X, y), (da.from_array(X, chunks=(10, 2)), da.from_array(y, chunks=10))):
        with pytest.raises(ValueError, match=r"y holds 1 class \(yes\)"):
            clf.fit(*Xy)
        assert not hasattr(clf, "fused_estimator_")
