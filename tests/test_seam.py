"""The trainer seam: one ``fit`` for row partitions and column blocks, every parameter
honoured or refused for column blocks."""

from __future__ import annotations

import dataclasses
import re

import dask
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.tree import DecisionTreeRegressor

from daskfuse import FusedClassifier, FusedRegressor, vertical
from daskfuse import _rows as rows_trainer
from daskfuse._trainer import FitResult, TrainSpec
from daskfuse.partition import Columns, Rows


@pytest.fixture(autouse=True)
def _sync():
    with dask.config.set(scheduler="sync"):
        yield


def _data(n=120, p=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    return X, X @ np.arange(1.0, p + 1) + 0.5 + 0.1 * rng.normal(size=n)


def _columns(**kwargs):
    return FusedRegressor(Ridge(alpha=1.0), partition=Columns(n_blocks=2), **kwargs)


#: row-partition parameters with a value other than the default
ROW_ONLY = [
    ("rounds", 3, "Backfit(max_rounds"),
    ("tol", 1e-6, "Backfit(tol"),
    ("local_epochs", 2, "solves its block exactly"),
    ("proximal", 0.1, "pulls row partitions"),
    ("on_error", "skip", "dropping its features"),
    ("min_partitions", 2, "never skipped"),
    ("split_every", 4, "fan-in of the tree"),
]


@pytest.mark.parametrize("name, value, why", ROW_ONLY, ids=[r[0] for r in ROW_ONLY])
@pytest.mark.parametrize("fusion", ["backfit", "stack"])
def test_columns_refuse_row_only_parameters(name, value, why, fusion):
    """Before the seam these were silently ignored with partition=Columns(...)."""
    X, y = _data()
    est = _columns(fusion=fusion).fit(X, y)
    est.set_params(**{name: value})
    for call in (est.fit, est.fit_graph):
        with pytest.raises(ValueError, match=rf"{name}=.*partition=Columns.*{re.escape(why)}"):
            call(X, y)
    # a failed fit leaves the estimator unfitted
    assert not hasattr(est, "fused_estimator_")
    assert not hasattr(est, "n_rounds_")


@pytest.mark.parametrize(
    "name, value",
    [
        ("rounds", 0),
        ("rounds", True),
        ("tol", -1.0),
        ("local_epochs", 1.5),
        ("proximal", "a"),
        ("on_error", "ignore"),
        ("min_partitions", True),
        ("min_partitions", 1.5),
        ("split_every", 1),
        ("split_every", 2.0),
        ("verbose", "yes"),
    ],
)
def test_columns_validate_parameters_as_rows_do(name, value):
    """A bad value gets the row path's exception and message, word for word."""
    X, y = _data()
    with pytest.raises((TypeError, ValueError)) as for_rows:
        FusedRegressor(Ridge(), n_partitions=2, **{name: value}).fit(X, y)
    with pytest.raises(for_rows.type, match=re.escape(str(for_rows.value))):
        _columns(**{name: value}).fit(X, y)


def test_defaults_given_explicitly_are_accepted():
    X, y = _data()
    est = _columns(
        rounds=1,
        tol=1e-4,
        local_epochs=1,
        proximal=0,
        on_error="raise",
        min_partitions=1,
        split_every=None,
    ).fit(X, y)
    assert est.n_partitions_ == 2


def test_n_rounds_and_skipped_partitions_for_columns():
    X, y = _data()
    backfit = _columns(fusion="backfit").fit(X, y)
    assert backfit.n_rounds_ == len(backfit.history_) > 1
    assert backfit.n_partitions_skipped_ == 0
    stack = _columns(fusion="stack").fit(X, y)
    assert stack.n_rounds_ == 1 and not hasattr(stack, "history_")
    assert stack.n_partitions_skipped_ == 0
    assert not hasattr(stack, "split_every_")


def test_random_state_seeds_the_column_blocks():
    X, y = _data()

    def predict(seed):
        est = FusedRegressor(
            DecisionTreeRegressor(max_features=1),
            partition=Columns(n_blocks=2),
            fusion="stack",
            random_state=seed,
        )
        return est.fit(X, y).predict(X)

    assert_array_equal(predict(0), predict(0))
    assert not np.array_equal(predict(0), predict(1))


def test_verbose_reports_the_backfit_rounds(capsys):
    X, y = _data()
    _columns(fusion="backfit", verbose=1).fit(X, y)
    assert "[daskfuse] backfit round 1" in capsys.readouterr().out


def _spec(**kwargs):
    return TrainSpec(owner="FusedRegressor", kind="regressor", **kwargs)


@pytest.mark.parametrize(
    "trainer, partition",
    [(rows_trainer, Rows(3)), (vertical, Columns(n_blocks=2))],
    ids=["rows", "columns"],
)
def test_trainers_take_a_spec_and_return_one_result(trainer, partition):
    """The trainers run from a frozen spec, without the meta-estimator, and the
    meta-estimator's fitted attributes are the result's."""
    X, y = _data()
    params = _spec(estimator=LinearRegression(), partition=partition)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.rounds = 2
    result = trainer.train(params, X, y)
    assert isinstance(result, FitResult)
    est = FusedRegressor(LinearRegression(), partition=partition).fit(X, y)
    attributes = result.attributes()
    assert sorted(attributes) == sorted(k for k in vars(est) if k.endswith("_"))
    assert_array_equal(attributes["fused_estimator_"].coef_, est.fused_estimator_.coef_)
    pd.testing.assert_frame_equal(
        attributes["partition_report_"].drop(columns=["fit_seconds", "task_seconds"]),
        est.partition_report_.drop(columns=["fit_seconds", "task_seconds"]),
    )
    model, _ = dask.compute(trainer.graph(params, X, y))[0]
    assert_array_equal(model.coef_, est.fused_estimator_.coef_)


def test_vertical_fit_functions_go_through_the_estimator():
    X, y = (_data()[0], (_data()[1] > 3).astype(int))
    est = FusedClassifier(LogisticRegression(), partition=Columns(n_blocks=2))
    assert vertical.fit(est, X, y) is est and est.n_rounds_ == len(est.history_)
    with pytest.raises(TypeError, match="partition is a daskfuse.partition.Columns"):
        vertical.fit(FusedClassifier(LogisticRegression()), X, y)


def test_column_vector_warning_points_at_the_caller_of_fit():
    """The column trainer runs a call deeper than the old driver: the warning still
    names the line that called ``fit``."""
    import dask.array as da
    from sklearn.exceptions import DataConversionWarning

    X, y = _data()
    labels = (y > 3).astype(int)[:, None]
    est = FusedClassifier(LogisticRegression(), partition=Columns(n_blocks=2))
    with pytest.warns(DataConversionWarning, match="column-vector") as record:
        est.fit(da.from_array(X, chunks=60), da.from_array(labels, chunks=60))
    assert {w.filename for w in record if w.category is DataConversionWarning} == {__file__}
