"""``partial_fit`` of a Pipeline fused step by step (where Pipeline fusion meets partial_fit).

The fused transformers stay as the first fit made them; the new rows are transformed
by them on the workers and the final step's fit is continued with its own strategy.
"""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from daskfuse import FusedClassifier, FusedRegressor, FusionError

N = 200  # rows per batch


def _batches(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * N, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    y = X @ [1.0, 0.1, 0.01] + 0.5 * rng.normal(size=2 * N)
    labels = (y + rng.logistic(size=2 * N) > 0).astype(int)
    return (X[:N], y[:N], labels[:N]), (X[N:], y[N:], labels[N:])


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_exact_final_step_continues_on_the_first_fits_transformers(on_cluster, kind):
    (A, yA, _), (B, yB, _) = _batches()
    if kind == "dask":
        A, B = da.from_array(A, chunks=N // 2), da.from_array(B, chunks=N // 2)
    model = FusedRegressor(make_pipeline(StandardScaler(), Ridge()), fusion="exact", n_partitions=2)
    model.fit(A, yA).partial_fit(B, yB)

    A, B = np.asarray(A), np.asarray(B)
    scaler = StandardScaler().fit(A)  # the transformers are kept as the first fit made them
    ridge = Ridge().fit(scaler.transform(np.vstack([A, B])), np.concatenate([yA, yB]))
    fused = model.fused_estimator_
    np.testing.assert_allclose(fused[0].mean_, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(fused[-1].coef_, ridge.coef_, rtol=1e-8)
    np.testing.assert_allclose(fused[-1].intercept_, ridge.intercept_, rtol=1e-8)
    assert model.n_partitions_ == 4 and list(model.partition_report_["partition"]) == [0, 1, 2, 3]
    steps = model.pipeline_steps_.set_index("step")
    assert "kept as fitted" in steps.loc["standardscaler", "reason"]
    assert steps.loc["ridge", "fusion"] == "Exact(method='auto')"
    np.testing.assert_allclose(model.predict(B), fused.predict(B))


def test_weighted_final_step_equals_the_final_estimator_continued_alone(on_cluster):
    (A, _, yA), (B, _, yB) = _batches(seed=1)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    model = FusedClassifier(pipe, fusion="weighted", n_partitions=2).fit(A, yA)
    model.partial_fit(B, yB)

    scaler = model.fused_estimator_[0]
    alone = FusedClassifier(LogisticRegression(), fusion="weighted", n_partitions=2)
    alone.fit(scaler.transform(A), yA).partial_fit(scaler.transform(B), yB)
    np.testing.assert_allclose(model.fused_estimator_[-1].coef_, alone.fused_estimator_.coef_)
    np.testing.assert_array_equal(model.classes_, [0, 1])
    assert model.n_partitions_ == 4


def test_unfitted_partial_fit_with_classes_is_a_fit(on_cluster):
    (A, _, yA), _ = _batches(seed=2)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    model = FusedClassifier(pipe, fusion="weighted", n_partitions=2)
    model.partial_fit(A, yA, classes=[0, 1])
    fitted = FusedClassifier(pipe, fusion="weighted", n_partitions=2).fit(A, yA)
    np.testing.assert_allclose(model.fused_estimator_[-1].coef_, fitted.fused_estimator_[-1].coef_)


def test_a_final_step_that_cannot_continue_refuses_and_leaves_the_model(on_cluster):
    (A, _, yA), (B, _, yB) = _batches(seed=3)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    model = FusedClassifier(pipe, fusion="newton", n_partitions=2).fit(A, yA)
    before = model.fused_estimator_[-1].coef_.copy()
    with pytest.raises(FusionError, match="Newton.*refit on all rows"):
        model.partial_fit(B, yB)
    np.testing.assert_array_equal(model.fused_estimator_[-1].coef_, before)
    assert model.n_partitions_ == 2


def test_string_columns_of_a_dask_dataframe_continue(on_cluster):
    # partial_fit checks a dask DataFrame's columns as predict does, without converting
    # the string columns to numbers
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=2 * N),
            "colour": rng.choice(["red", "blue", None], size=2 * N),  # pandas' str: NaN
        }
    )
    labels = ((frame["x"] + (frame["colour"] == "red")) > 0.5).astype(int)
    columns = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), ["colour"]), ("x", "passthrough", ["x"])]
    )
    model = FusedClassifier(make_pipeline(columns, LogisticRegression()), fusion="weighted")
    A, B = dd.from_pandas(frame[:N], npartitions=2), dd.from_pandas(frame[N:], npartitions=2)
    model.fit(A, dd.from_pandas(labels[:N], npartitions=2))
    model.partial_fit(B, dd.from_pandas(labels[N:], npartitions=2))
    assert model.n_partitions_ == 4
    predictions = model.predict(B)
    assert isinstance(predictions, da.Array)
    np.testing.assert_array_equal(predictions.compute(), model.fused_estimator_.predict(frame[N:]))
