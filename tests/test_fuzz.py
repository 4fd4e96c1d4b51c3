"""Property-based fuzzing of the inputs: a clear error or the in-memory model.

Every example draws an estimator, a dtype, a shape, a container and a row
partitioning, and fits daskfuse on it. The invariant:

* either the fit (or predict/score) raises a ``ValueError``/``TypeError`` (daskfuse's
  errors are ``ValueError``\\ s) whose message names what is wrong: the parameter
  (``X``, ``y``, ``n_partitions``), a column, a partition or the offending dtype;
* or the model predicts as the same daskfuse fit on the numpy version of the data
  (same partitioning: a dask input's numpy version is wrapped in a dask array of the
  same row chunks), and ``score`` is in its range (accuracy in [0, 1], R² <= 1).

The default run draws the ``FUZZ`` profile's examples on the synchronous scheduler
and a few on the shared cluster; ``-m slow`` runs the longer ``FUZZ_LONG`` profile
on the threaded scheduler.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.base import is_dask_collection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from daskfuse import FusedClassifier, FusedRegressor
from daskfuse.partition import Columns

#: the default run: a modest, derandomized profile (about 15 s with the cluster test)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        # the cluster test's ``on_cluster`` is the same shared cluster for every example
        HealthCheck.function_scoped_fixture,
    ],
)
#: ``-m slow``: twenty times as many examples, drawn afresh each run (a minute or two)
FUZZ_LONG = settings(FUZZ, max_examples=3000, derandomize=False)
CLUSTER_EXAMPLES = 10


CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(),
    "tree": lambda: DecisionTreeClassifier(max_depth=3, random_state=0),
    "nb": lambda: GaussianNB(),
    "forest": lambda: RandomForestClassifier(n_estimators=3, random_state=0),
}
#: the estimators also fitted on column blocks (daskfuse.partition.Columns)
VERTICAL = ("logistic", "ridge", "ols", "tree")
REGRESSORS = {
    "ridge": lambda: Ridge(),
    "ols": lambda: LinearRegression(),
    "tree": lambda: DecisionTreeRegressor(max_depth=3, random_state=0),
}

#: numpy dtypes, for every container
NUMPY_DTYPES = [
    "float64",
    "float32",
    "float16",
    "longdouble",
    "int8",
    "int64",
    "uint8",
    "bool",
    "complex128",
    "object-number",
    "object-word",
    "str-word",
]
#: the numpy dtype of a numeric numpy dtype's values (the rest are compared as float64)
NUMPY_EQUIVALENT = {
    d: d for d in ["float64", "float32", "float16", "longdouble", "int8", "int64", "uint8", "bool"]
}
NUMPY_EQUIVALENT["complex128"] = "complex128"
#: dtypes only a DataFrame holds
FRAME_DTYPES = [
    "Int64",
    "Float64",
    "boolean",
    "category-number",
    "category-word",
    "string-number",
    "string-word",
]
ARRAY_CONTAINERS = ["numpy", "dask-array", "dask-array-unknown"]
FRAME_CONTAINERS = ["pandas", "dask-frame"]
DASK_CONTAINERS = ("dask-array", "dask-array-unknown", "dask-frame")
#: dtypes that can hold a missing value (NaN or pd.NA), drawn with one or without
MISSING = ("float64", "float32", "longdouble", "object-number", "Float64", "Int64")
#: dtypes whose values are not numbers: the fit must refuse them, naming them
NOT_NUMBERS = ("complex128", "object-word", "str-word", "category-word", "string-word")


@dataclass
class Case:
    """One drawn example."""

    kind: str
    estimator: str
    dtype: str
    container: str
    y_form: str
    n_rows: int
    n_features: int
    strategy: str
    n_partitions: int | None
    chunks: tuple
    seed: int
    missing: bool = False
    values: np.ndarray = field(repr=False, default=None)
    y: np.ndarray = field(repr=False, default=None)

    @property
    def columns(self):
        return [f"feat_{j}" for j in range(self.n_features)]


# ------------------------------------------------------------------ drawing cases
def _chunks(draw, n_rows, n_blocks):
    """Row chunk sizes summing to ``n_rows``; some may be 0 or 1."""
    cuts = sorted(
        draw(st.lists(st.integers(0, n_rows), min_size=n_blocks - 1, max_size=n_blocks - 1))
    )
    edges = [0, *cuts, n_rows]
    return tuple(int(b - a) for a, b in zip(edges[:-1], edges[1:]))


@st.composite
def cases(draw, containers=None):
    kind = draw(st.sampled_from(["classifier", "regressor"]))
    estimators = CLASSIFIERS if kind == "classifier" else REGRESSORS
    estimator = draw(st.sampled_from(sorted(estimators)))
    container = draw(st.sampled_from(containers or ARRAY_CONTAINERS + FRAME_CONTAINERS))
    frame = container in FRAME_CONTAINERS
    dtype = draw(st.sampled_from(NUMPY_DTYPES + (FRAME_DTYPES if frame else [])))
    # more features than rows, one feature, one row, no rows
    n_rows = draw(st.integers(0, 24))
    n_features = draw(st.integers(1, 5))
    y_forms = ["1d", "column"] + (["series"] if frame else [])
    y_form = draw(st.sampled_from(y_forms))
    strategies = ["uniform", "random"] + (["stratified"] if kind == "classifier" else [])
    dask_input = container in DASK_CONTAINERS
    if dask_input:
        strategies.append("chunks")
    if estimator in VERTICAL:
        # column blocks: backfitting (least squares, logistic) or column stacking
        strategies += [f"columns-{s}" for s in ("uniform", "random", "correlation")]
    strategy = draw(st.sampled_from(strategies))
    n_blocks = draw(st.integers(1, 4)) if dask_input else 1
    chunks = _chunks(draw, n_rows, n_blocks) if dask_input else (n_rows,)
    if strategy == "chunks":
        n_partitions = None
    elif strategy.startswith("columns-"):
        n_partitions = draw(st.integers(1, n_features))  # the number of column blocks
    else:
        n_partitions = draw(st.integers(1, 4))  # more partitions than rows too
    seed = draw(st.integers(0, 2**16))
    missing = dtype in MISSING and draw(st.booleans())
    case = Case(
        kind,
        estimator,
        dtype,
        container,
        y_form,
        n_rows,
        n_features,
        strategy,
        n_partitions,
        chunks,
        seed,
        missing,
    )
    _fill(case)
    return case


def _fill(case):
    """The numeric values of X and y (before the dtype and the container)."""
    rng = np.random.default_rng(case.seed)
    X = rng.normal(size=(case.n_rows, case.n_features))
    signal = X @ rng.normal(size=case.n_features)
    if case.kind == "classifier":
        y = np.where(signal + 0.3 * rng.normal(size=case.n_rows) > 0, "yes", "no")
    else:
        y = signal + 0.1 * rng.normal(size=case.n_rows)
    if case.dtype in ("int8", "int64", "Int64") or "number" in case.dtype:
        X = np.round(X * 4)
    elif case.dtype == "uint8":
        X = np.abs(np.round(X * 4))
    elif case.dtype in ("bool", "boolean"):
        X = (X > 0).astype(float)
    elif case.dtype in ("float16", "float32"):
        X = X.astype(case.dtype).astype(float)
    if case.missing and case.n_rows:
        X[0, 0] = np.nan
    case.values, case.y = X, y


# ------------------------------------------------------------------ containers
def _typed_column(values, dtype):
    """One column of ``values`` in ``dtype`` (a numpy array or a pandas extension array)."""
    words = np.array(["low", "mid", "high"])
    if dtype == "object-number":
        return values.astype(object)
    if dtype in ("object-word", "str-word", "category-word", "string-word"):
        text = words[np.abs(values).astype(int) % 3] if len(values) else values.astype(str)
        return {
            "object-word": text.astype(object),
            "str-word": text.astype(str),
            "category-word": pd.Categorical(text),
            "string-word": pd.array(text, dtype="string"),
        }[dtype]
    if dtype == "category-number":
        return pd.Categorical(values)
    if dtype == "string-number":
        return pd.array([repr(float(v)) for v in values], dtype="string")
    if dtype in ("Int64", "Float64", "boolean"):
        numbers = values.astype(bool) if dtype == "boolean" else values
        return pd.array(numbers, dtype=dtype)
    return values.astype(dtype)


def _numpy_x(case):
    """X as a numpy array of the case's dtype (numpy dtypes only)."""
    if case.n_features == 0 or case.n_rows == 0:
        return case.values.astype(NUMPY_EQUIVALENT.get(case.dtype, object))
    return np.column_stack([_typed_column(c, case.dtype) for c in case.values.T])


def _frame(case):
    return pd.DataFrame(
        {name: _typed_column(case.values[:, j], case.dtype) for j, name in enumerate(case.columns)},
        index=pd.RangeIndex(case.n_rows),
    )


def _y_memory(case):
    if case.y_form == "column":
        return case.y.reshape(-1, 1)
    if case.y_form == "series":
        return pd.Series(case.y, name="target")
    return case.y


def _dask_rows(array, chunks):
    return da.from_array(array, chunks=(chunks,) + tuple(-1 for _ in array.shape[1:]))


def _unknown(array):
    """``array`` with unknown row chunk sizes (as after boolean indexing)."""
    blocks = array.to_delayed().ravel()
    parts = [
        da.from_delayed(b, shape=(np.nan,) + array.shape[1:], dtype=array.dtype, meta=array._meta)
        for b in blocks
    ]
    return da.concatenate(parts, axis=0, allow_unknown_chunksizes=True)


def _frame_blocks(frame, chunks):
    """A dask DataFrame of ``frame`` in blocks of ``chunks`` rows (some may be empty)."""
    edges = np.concatenate([[0], np.cumsum(chunks)]).astype(int)
    # (dd.from_delayed would do, but its frames fail in to_dask_array().compute()
    # with "Missing dependency" on dask 2026.8)
    return dd.from_map(
        _rows_of,
        list(zip(edges[:-1], edges[1:])),
        frame=frame,
        meta=frame.iloc[:0],
        enforce_metadata=False,
    )


def _rows_of(bounds, frame):
    return frame.iloc[bounds[0] : bounds[1]]


def containers(case):
    """``(X, y)`` in the case's container, dtype and y form."""
    if case.container == "numpy":
        return _numpy_x(case), _y_memory(case)
    if case.container == "pandas":
        return _frame(case), _y_memory(case)
    if case.container in ("dask-array", "dask-array-unknown"):
        X, y = _dask_rows(_numpy_x(case), case.chunks), _dask_rows(_y_memory(case), case.chunks)
        if case.container == "dask-array-unknown":
            X, y = _unknown(X), _unknown(y)
        return X, y
    # X and y cut from one dask DataFrame, as ddf[features] and ddf[target]
    frame = _frame(case).assign(target=case.y)
    whole = _frame_blocks(frame, case.chunks)
    X = whole[case.columns]
    if case.y_form == "series":
        y = whole["target"]
    elif case.y_form == "column":
        y = whole[["target"]]
    else:
        y = _dask_rows(case.y, case.chunks)
    return X, y


def reference_inputs(case):
    """The numpy version of the data, chunked as the case's dask input is."""
    dtype = NUMPY_EQUIVALENT.get(case.dtype, "float64")
    X, y = case.values.astype(dtype), np.asarray(_y_memory(case))
    if case.container in DASK_CONTAINERS:
        return _dask_rows(X, case.chunks), _dask_rows(y, case.chunks)
    return X, y


# ------------------------------------------------------------------ the invariant
def _model(case):
    estimators = CLASSIFIERS if case.kind == "classifier" else REGRESSORS
    cls = FusedClassifier if case.kind == "classifier" else FusedRegressor
    if case.strategy.startswith("columns-"):
        columns = Columns(
            n_blocks=case.n_partitions, strategy=case.strategy[8:], random_state=case.seed
        )
        return cls(estimators[case.estimator](), partition=columns, random_state=0)
    return cls(
        estimators[case.estimator](),
        partition=case.strategy,
        n_partitions=case.n_partitions,
        random_state=0,
    )


def _names(case):
    """What an error about this case may name: parameters, columns, dtypes, partitions."""
    names = ["X ", "X'", "X,", "X:", "y ", "y:", "n_partitions", "partition", "class", "sample"]
    if case.container in FRAME_CONTAINERS:
        names += case.columns
    return names + _dtype_names(case)


def _dtype_names(case):
    # (or a problem of y's classes, which may come first)
    names = [case.dtype.split("-")[0], "complex", "object", "str", "numeric", "categor", "class"]
    if case.container in FRAME_CONTAINERS:
        names += case.columns
    return names


def _check_error(case, exc):
    message = str(exc).lower()
    # a non-numeric X must be named by its dtype or its columns
    names = _dtype_names(case) if case.dtype in NOT_NUMBERS and case.n_rows else _names(case)
    assert any(n.lower() in message for n in names), f"{case}: unclear error {str(exc)!r}"


def _refused_by_container(case, exc):
    """Whether only the container makes this (clear) error: known and accepted."""
    # a dask array of dtype object is refused ("X must be numeric") where a numpy
    # array of dtype object holding numbers is converted, and a dask DataFrame's
    # columns must have numeric dtypes, where a pandas one's object, category and
    # string columns of numbers are converted
    numbers = ("object-number", "category-number", "string-number")
    if case.dtype in numbers and case.container in DASK_CONTAINERS:
        return True
    # scikit-learn 1.9's trees cannot fit a read-only float32 array holding NaN
    # ("buffer source array is read-only"); pandas 3 hands out read-only arrays
    return case.dtype == "float32" and case.missing and "read-only" in str(exc)


def _quietly(func, *args):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return func(*args)


def _result(value):
    return value.compute() if hasattr(value, "compute") else np.asarray(value)


def _fit_or_explain(case, X, y):
    """The model fitted on ``(X, y)``, or None after checking that the error is clear."""
    model = _model(case)
    try:
        return _quietly(model.fit, X, y)
    except (ValueError, TypeError) as exc:
        _check_error(case, exc)
        assert not hasattr(model, "fused_estimator_"), "a failed fit left a fitted model"
        if case.dtype not in NOT_NUMBERS and not _refused_by_container(case, exc):
            # the numpy version must fail too: the container alone may not make it fail
            with pytest.raises((ValueError, TypeError)):
                _quietly(_model(case).fit, *reference_inputs(case))
        return None


def _tolerance(case):
    # float32 (and float16) data are fitted in float32: the summation order of a
    # different memory layout (a DataFrame's columns, a numpy array's rows) shows in
    # the last digits, and the solvers stop at their tolerance a step apart
    if case.dtype in ("float32", "float16"):
        return {"rtol": 1e-3, "atol": 1e-3}
    return {"rtol": 1e-7, "atol": 1e-9}


def _check_same_model(case, model, reference, X_ref):
    """``model`` predicts as ``reference`` (fitted on the numpy version) on ``X_ref``."""
    tol = _tolerance(case)
    expected = _quietly(reference.predict, X_ref)
    got = _quietly(model.predict, X_ref)
    if case.kind == "regressor":
        assert_allclose(got, expected, **tol)
        return got
    assert_array_equal(model.classes_, reference.classes_)
    proba = _quietly(reference.predict_proba, X_ref)
    assert_allclose(_quietly(model.predict_proba, X_ref), proba, **tol)
    # (scikit-learn's GaussianNB on constant columns has NaN probabilities, as has a
    # one-class one fitted on a dask y, which is not checked for a second class)
    finite = np.isfinite(proba).all(axis=1)
    assert_allclose(proba[finite].sum(axis=1), 1)
    # labels where the reference is not undecided (one column: a one-class model)
    top = np.sort(np.hstack([np.zeros((len(proba), 1)), proba]), axis=1)
    decided = top[:, -1] - top[:, -2] > 10 * tol["rtol"]
    assert_array_equal(got[decided], expected[decided])
    return got


def check_case(case):
    """Fit on the case's input: a clear error, or the model of the numpy version."""
    X, y = containers(case)
    model = _fit_or_explain(case, X, y)
    if model is None:
        return "error"
    assert case.dtype not in NOT_NUMBERS, f"{case}: fitted on values that are not numbers"
    ref_X, ref_y = reference_inputs(case)
    reference = _quietly(_model(case).fit, ref_X, ref_y)
    X_ref = _result(ref_X)
    got = _check_same_model(case, model, reference, X_ref)
    # the container's own predictions (a dask input's block by block)
    own = _quietly(lambda: _result(model.predict(X)))
    if case.kind == "regressor":
        assert_allclose(own, got, **_tolerance(case))
    else:
        assert_array_equal(own, got)
    X_score, y_score = X, y
    score = _quietly(model.score, X_score, y_score)
    if case.kind == "classifier":
        assert 0.0 <= score <= 1.0, f"{case}: accuracy {score}"
    elif case.n_rows < 2 and not is_dask_collection(X_score):
        # scikit-learn's R² of fewer than two rows is NaN (with a warning)
        assert np.isnan(score) or score <= 1.0, f"{case}: R² {score}"
    else:
        assert score <= 1.0 + 1e-12, f"{case}: R² {score}"
    with pytest.raises((ValueError, TypeError), match="(?i)complex"):
        model.predict(da.from_array(X_ref.astype(complex), chunks=(max(1, case.n_rows), -1)))
    return "fitted"


# ------------------------------------------------------------------ the tests
@FUZZ
@given(case=cases())
def test_fuzz_inputs(case):
    with dask.config.set(scheduler="sync"):
        check_case(case)


@settings(FUZZ, max_examples=CLUSTER_EXAMPLES)
@given(case=cases(containers=list(DASK_CONTAINERS)))
def test_fuzz_dask_inputs_on_the_cluster(on_cluster, case):
    check_case(case)


@pytest.mark.slow
@FUZZ_LONG
@given(case=cases())
def test_fuzz_inputs_long(case):
    with dask.config.set(scheduler="threads"):
        check_case(case)


# ------------------------------------------------------------------ what the fuzz found
def test_exact_least_squares_merges_longdouble_partitions():
    """A 3-row longdouble partition's summary is merged by QR, which needs float64."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3)).astype(np.longdouble)
    y = (X @ np.array([1.0, -2.0, 0.5])).astype(float) + 0.3
    chunks = (3, 11, 6)
    with dask.config.set(scheduler="sync"):
        model = FusedRegressor(LinearRegression()).fit(
            da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,))
        )
    single = LinearRegression().fit(X.astype(float), y)
    assert_allclose(model.fused_estimator_.coef_, single.coef_, rtol=1e-10)
    assert model.fused_estimator_.intercept_ == pytest.approx(single.intercept_, rel=1e-10)
