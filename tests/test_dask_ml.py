"""dask-ml alongside daskfuse: preprocessing, splitting and model selection (issue 16).

Each test uses dask-ml as a user would, on the session LocalCluster, and checks the
fused model against what scikit-learn fits on the same rows in one process.
"""

from __future__ import annotations

import pathlib
import re
import tomllib

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask_ml.model_selection import GridSearchCV as DaskGridSearchCV
from dask_ml.model_selection import train_test_split
from dask_ml.preprocessing import Categorizer, DummyEncoder
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from daskfuse import FusedClassifier, FusedRegressor
from daskfuse.fusion import Weighted
from daskfuse.partition import Rows

#: newton's own stopping rule, tight enough that it equals scikit-learn's lbfgs
TIGHT = {"tol": 1e-10, "max_iter": 1000}


def _table(n=600, seed=0):
    """Two numbers, a categorical and a string column; a label that depends on all."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], size=n)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "colour": pd.Categorical(colour, categories=["blue", "green", "red"]),
            "size": rng.choice(["S", "M", "L"], size=n).astype(object),
        }
    )
    logit = 1.5 * frame["a"] - frame["b"] + 2.0 * (colour == "red") - (frame["size"] == "L")
    y = pd.Series((logit + rng.logistic(size=n) > 0).astype(int), name="y")
    return frame, y


def _numbers(n=600, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X @ [1.0, -2.0, 0.5, 0.0] + rng.logistic(size=n) > 0).astype(int)
    return X, y


# dask-ml's Categorizer selects "object" columns, which pandas 3 says will not include "str"
@pytest.mark.filterwarnings("ignore:For backward compatibility, 'str' dtypes")
def test_categorizer_and_dummy_encoder_before_a_fused_classifier(on_cluster):
    frame, y = _table()
    X, dy = dd.from_pandas(frame, npartitions=3), dd.from_pandas(y, npartitions=3)
    fused = make_pipeline(
        Categorizer(), DummyEncoder(), FusedClassifier(LogisticRegression(**TIGHT), fusion="newton")
    ).fit(X, dy)
    one = make_pipeline(Categorizer(), DummyEncoder(), LogisticRegression(**TIGHT)).fit(frame, y)

    clf = fused[-1]
    assert clf.n_partitions_ == 3 and clf.fusion_.name == "newton"
    # the dummy columns reach the fused model under dask-ml's names, as in one process
    assert list(clf.feature_names_in_) == list(one[-1].feature_names_in_)
    assert {"colour_red", "size_L"} <= set(clf.feature_names_in_)
    np.testing.assert_allclose(clf.fused_estimator_.coef_, one[-1].coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(clf.fused_estimator_.intercept_, one[-1].intercept_, atol=1e-6)

    predictions = fused.predict(X)  # lazy: dask in, dask out, block by block on the workers
    assert isinstance(predictions, da.Array)
    np.testing.assert_array_equal(predictions.compute(), one.predict(frame))
    assert fused.score(X, dy) == pytest.approx(one.score(frame, y))


@pytest.mark.parametrize("kind", ["array", "dataframe"])
def test_dask_ml_train_test_split_feeds_the_fused_estimators(on_cluster, kind):
    X, y = _numbers()
    if kind == "array":
        Xd, yd = da.from_array(X, chunks=150), da.from_array(y, chunks=150)
    else:
        columns = [f"x{i}" for i in range(X.shape[1])]
        Xd = dd.from_pandas(pd.DataFrame(X, columns=columns), npartitions=4)
        yd = dd.from_pandas(pd.Series(y, name="y"), npartitions=4)
    X_train, X_test, y_train, y_test = train_test_split(Xd, yd, random_state=0, shuffle=True)
    Xtr, Xte, ytr, yte = dask.compute(X_train, X_test, y_train, y_test)
    assert len(Xtr) + len(Xte) == len(X) and 0 < len(Xte) < len(Xtr)

    clf = FusedClassifier(LogisticRegression(**TIGHT), fusion="newton").fit(X_train, y_train)
    one = LogisticRegression(**TIGHT).fit(Xtr, ytr)
    assert clf.n_partitions_ == X_train.npartitions
    np.testing.assert_allclose(clf.fused_estimator_.coef_, one.coef_, rtol=0, atol=1e-6)
    assert clf.score(X_test, y_test) == pytest.approx(one.score(Xte, yte))

    target = y_train.astype(float)
    reg = FusedRegressor(Ridge(alpha=1.0), fusion="exact").fit(X_train, target)
    ridge = Ridge(alpha=1.0).fit(Xtr, ytr.astype(float))
    np.testing.assert_allclose(reg.fused_estimator_.coef_, ridge.coef_, rtol=1e-8)
    assert reg.score(X_test, y_test.astype(float)) == pytest.approx(
        ridge.score(Xte, yte.astype(float))
    )


GRID = {"estimator__C": [0.01, 1.0], "fusion": ["weighted", "newton"]}


def _check_search(search, X, y):
    """Four candidates; newton's cross-validated scores are scikit-learn's own."""
    assert len(search.cv_results_["params"]) == 4
    plain = GridSearchCV(LogisticRegression(**TIGHT), {"C": GRID["estimator__C"]}, cv=3).fit(X, y)
    results = pd.DataFrame(search.cv_results_["params"])
    newton = (results["fusion"] == "newton").to_numpy()
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"][newton], plain.cv_results_["mean_test_score"]
    )
    best = search.best_estimator_
    assert isinstance(best, FusedClassifier)
    assert best.fused_estimator_.C == search.best_params_["estimator__C"]
    assert best.fusion_.name == search.best_params_["fusion"]
    # the parameters searched over were set on clones: the template is untouched
    assert search.estimator.get_params()["estimator__C"] == 1.0
    assert not hasattr(search.estimator, "fused_estimator_")


def test_scikit_learn_grid_search_over_a_fused_classifier(on_cluster):
    X, y = _numbers()
    template = FusedClassifier(LogisticRegression(**TIGHT), n_partitions=2)
    search = GridSearchCV(template, GRID, cv=3).fit(X, y)
    _check_search(search, X, y)


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_dask_ml_grid_search_over_a_fused_classifier(on_cluster, kind):
    X, y = _numbers()
    template = FusedClassifier(LogisticRegression(**TIGHT), n_partitions=2)
    search = DaskGridSearchCV(template, GRID, cv=3)
    if kind == "numpy":
        search.fit(X, y)
    else:  # dask-ml splits the dask arrays into its folds itself
        search.fit(da.from_array(X, chunks=200), da.from_array(y, chunks=200))
    _check_search(search, X, y)


def test_clone_and_get_params_round_trip():
    template = FusedClassifier(
        LogisticRegression(C=0.5),
        fusion=Weighted(by="score"),
        partition=Rows(3, "random"),
        random_state=7,
        split_every=4,
    )
    copy = clone(template)
    shallow, again = template.get_params(deep=False), copy.get_params(deep=False)
    assert shallow.keys() == again.keys()
    for name, value in shallow.items():
        if name == "estimator":
            assert again[name] is not value and again[name].get_params() == value.get_params()
        else:
            assert again[name] == value, name
    assert copy.get_params()["estimator__C"] == 0.5

    rebuilt = FusedClassifier(**shallow)
    assert rebuilt.get_params() == template.get_params()
    copy.set_params(estimator__C=2.0, fusion="newton")
    assert copy.estimator.C == 2.0 and template.estimator.C == 0.5
    assert template.fusion == Weighted(by="score")

    # in a Pipeline, the nested names reach the fused estimator's inner estimator
    pipe = make_pipeline(Categorizer(), DummyEncoder(), template)
    pipe.set_params(fusedclassifier__estimator__C=3.0)
    assert clone(pipe).get_params()["fusedclassifier__estimator__C"] == 3.0


def test_clone_of_a_fitted_fused_estimator_is_unfitted(on_cluster):
    X, y = _numbers(n=200)
    fitted = FusedClassifier(LogisticRegression(), n_partitions=2).fit(X, y)
    copy = clone(fitted)
    assert not hasattr(copy, "fused_estimator_") and not hasattr(copy, "partition_report_")
    assert copy.get_params(deep=False).keys() == fitted.get_params(deep=False).keys()
    np.testing.assert_array_equal(copy.fit(X, y).predict(X), fitted.predict(X))


def test_the_test_extra_installs_dask_ml():
    root = pathlib.Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [
        re.match(r"[A-Za-z0-9_.-]+", spec)[0] for spec in project["optional-dependencies"]["test"]
    ]
    assert "dask-ml" in names
    assert 'pip install -e ".[test]"` installs dask-ml' in (root / "README.md").read_text("utf-8")
