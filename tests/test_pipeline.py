"""A scikit-learn Pipeline fused step by step (daskfuse._pipeline): exact transformer
steps, the final step with its own strategy, one plain Pipeline that equals the
single-process one."""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    PowerTransformer,
    StandardScaler,
)

import daskfuse
from daskfuse import FusedClassifier, FusedRegressor, FusedTransformer, FusionError
from daskfuse.fusion import Exact, Newton, Trees, Vote
from daskfuse.partition import Columns

SCALES = np.array([1.0, 5.0, 0.2, 3.0, 10.0])


def _data(n=300, seed=0, labels=(0, 1)):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)) * SCALES + [4.0, -2.0, 0.0, 1.0, 7.0]
    logit = (X - X.mean(0)) / SCALES @ [1.5, -1.0, 0.5, 0.0, 1.0] + rng.normal(size=n)
    y = np.asarray(labels)[(logit > 0).astype(int)]
    target = X @ [1.0, -2.0, 3.0, 0.5, 0.1] + rng.normal(size=n)
    return X, y, target


def _in_memory(X):
    """A dask input computed (a pandas frame for a dask DataFrame)."""
    return X.compute() if hasattr(X, "compute") else X


def _inputs(kind, X, y, order):
    """``(X, y, partitioning kwargs)``: label-sorted rows in contiguous partitions, or
    rows dealt at random."""
    if order == "sorted":
        idx = np.argsort(y, kind="stable")
        X, y = X[idx], y[idx]
    names = [f"f{i}" for i in range(X.shape[1])]
    if kind == "numpy":
        data = X, y
    elif kind == "pandas":
        data = pd.DataFrame(X, columns=names), pd.Series(y)
    elif kind == "dask-array":
        data = da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100)
    else:
        frame = pd.DataFrame(X, columns=names).assign(target=y)
        ddf = dd.from_pandas(frame, npartitions=3, sort=False)
        data = ddf[names], ddf["target"]
    dealt = {"partition": "random", "random_state": 0, "n_partitions": 3}
    contiguous = {} if kind.startswith("dask") else {"n_partitions": 3}
    return (*data, dealt if order == "random" else contiguous)


INPUTS = ["numpy", "pandas", "dask-array", "dask-frame"]
ORDERS = ["random", "sorted"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kind", INPUTS)
def test_exact_steps_and_exact_final_equal_one_process(client, on_cluster, kind, order):
    X, y, target = _data()
    pipe = make_pipeline(StandardScaler(), PCA(n_components=4), Ridge(alpha=0.5))
    Xi, ti, kwargs = _inputs(kind, X, target, order)
    fused = FusedRegressor(pipe, **kwargs).fit(Xi, ti)
    Xs, ts = _in_memory(Xi), _in_memory(ti)
    single = clone(pipe).fit(Xs, ts)

    model = fused.fused_estimator_
    assert type(model) is Pipeline
    assert [n for n, _ in model.steps] == [n for n, _ in single.steps]
    assert_allclose(model[0].mean_, single[0].mean_, rtol=1e-10)
    assert_allclose(model[-1].coef_, single[-1].coef_, rtol=1e-8, atol=1e-8)
    assert_allclose(model[-1].intercept_, single[-1].intercept_, rtol=1e-8)
    assert_allclose(fused.predict(Xs), single.predict(Xs), rtol=1e-8, atol=1e-8)
    assert fused.pipeline_steps_["fusion"].tolist() == [repr(Exact())] * 3


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kind", INPUTS)
def test_exact_steps_and_newton_final_equal_one_process(client, on_cluster, kind, order):
    X, y, _ = _data()
    pipe = make_pipeline(StandardScaler(), MinMaxScaler(), LogisticRegression(tol=1e-10))
    Xi, yi, kwargs = _inputs(kind, X, y, order)
    fused = FusedClassifier(pipe, fusion="newton", **kwargs).fit(Xi, yi)
    Xs, ys = _in_memory(Xi), _in_memory(yi)
    single = clone(pipe).fit(Xs, ys)

    model = fused.fused_estimator_
    assert_allclose(model[-1].coef_, single[-1].coef_, rtol=1e-6, atol=1e-6)
    assert_allclose(model[-1].intercept_, single[-1].intercept_, rtol=1e-6, atol=1e-6)
    assert_array_equal(fused.predict(Xs), single.predict(Xs))
    assert_allclose(fused.predict_proba(Xs), single.predict_proba(Xs), atol=1e-6)
    assert fused.fusion_ == Newton()
    assert fused.pipeline_steps_["fusion"].tolist() == [repr(Exact())] * 2 + [repr(Newton())]


def test_fused_pipeline_is_a_scikit_learn_estimator(client, on_cluster):
    X, y, _ = _data(labels=("no", "yes"))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    pipe = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10))
    clf = FusedClassifier(pipe, fusion="newton", n_partitions=2).fit(frame, y)
    single = clone(pipe).fit(frame, y)

    assert_array_equal(clf.classes_, ["no", "yes"])
    assert_array_equal(clf.fused_estimator_.classes_, ["no", "yes"])
    assert_allclose(clf.predict_proba(frame), single.predict_proba(frame), atol=1e-6)
    assert clf.score(frame, y) == single.score(frame, y)
    assert_array_equal(clf.feature_names_in_, frame.columns)
    assert_array_equal(clf.fused_estimator_.feature_names_in_, frame.columns)
    assert clf.n_features_in_ == clf.fused_estimator_.n_features_in_ == 5
    # the meta-estimator's parameters reach the Pipeline's steps
    assert clf.get_params()["estimator__logisticregression__C"] == 1.0
    copy = clone(clf).set_params(estimator__logisticregression__C=0.01)
    assert not hasattr(copy, "fused_estimator_")
    copy.fit(frame, y)
    assert copy.fused_estimator_[-1].C == 0.01
    expected = clone(pipe).set_params(logisticregression__C=0.01).fit(frame, y)
    assert_allclose(copy.fused_estimator_[-1].coef_, expected[-1].coef_, atol=1e-6)
    # the fused Pipeline is plain scikit-learn: its own parameters can be set too
    clf.fused_estimator_.set_params(logisticregression__C=5.0)
    assert clf.fused_estimator_[-1].C == 5.0


def test_nested_pipelines_and_passthrough_steps(client, on_cluster):
    X, _, target = _data()
    inner = Pipeline([("scale", MaxAbsScaler()), ("skip", "passthrough")])
    pipe = Pipeline(
        [("pre", inner), ("none", None), ("pca", PCA(n_components=3)), ("lr", LinearRegression())]
    )
    fused = FusedRegressor(pipe, n_partitions=4).fit(X, target)
    single = clone(pipe).fit(X, target)

    model = fused.fused_estimator_
    assert type(model[0]) is Pipeline and model[0].steps[1] == ("skip", "passthrough")
    assert model.steps[1] == ("none", None)
    assert_allclose(model[0][0].max_abs_, single[0][0].max_abs_)
    assert_allclose(model[-1].coef_, single[-1].coef_, rtol=1e-8, atol=1e-8)
    steps = fused.pipeline_steps_
    assert steps["step"].tolist() == ["pre__scale", "pre__skip", "none", "pca", "lr"]
    assert steps["estimator"].tolist()[1:3] == ["passthrough", "passthrough"]
    assert steps["fusion"].isna().tolist() == [False, True, True, False, False]


def _strings(n=300, seed=3):
    """A frame of two string columns, one with missing values, and its labels."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "rome", "oslo", None], size=n)
    size = rng.choice(["s", "m", "l"], size=n)
    y = ((city == "rome") | (size == "l")).astype(int) ^ (rng.random(n) < 0.1)
    return pd.DataFrame({"city": city, "size": size}), y


@pytest.mark.parametrize("kind", ["pandas", "dask-frame"])
def test_string_columns_with_missing_values(client, on_cluster, kind):
    frame, y = _strings()
    pipe = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore"),
        LogisticRegression(tol=1e-10),
    )
    X, target = frame, y
    if kind == "dask-frame":
        ddf = dd.from_pandas(frame.assign(target=y), npartitions=3, sort=False)
        X, target = ddf[["city", "size"]], ddf["target"]
    clf = FusedClassifier(pipe, fusion="newton", n_partitions=3)
    clf.fit(X, target)
    single = clone(pipe).fit(frame, y)

    model = clf.fused_estimator_
    for fused, expected in zip(model[1].categories_, single[1].categories_):
        assert_array_equal(fused, expected)
    assert_allclose(model[-1].coef_, single[-1].coef_, atol=1e-6)
    predicted = clf.predict(X)
    predicted = predicted.compute() if kind == "dask-frame" else predicted
    assert_array_equal(predicted, single.predict(frame))
    assert clf.score(X, target) == single.score(frame, y)


@pytest.mark.parametrize("sparse_threshold", [0.3, 1.0], ids=["dense", "sparse"])
@pytest.mark.parametrize("kind", ["pandas", "dask-frame"])
def test_column_transformer_on_strings_and_missing_numbers(
    client, on_cluster, kind, sparse_threshold
):
    rng = np.random.default_rng(4)
    n = 300
    city = rng.choice(["paris", "rome", "oslo", None], size=n)
    age = rng.normal(40, 10, n)
    age[::9] = np.nan
    income = rng.normal(3, 1, n)
    y = ((city == "rome") ^ (income > 3)).astype(int)
    frame = pd.DataFrame({"city": city, "age": age, "income": income})
    columns = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
         ("num", StandardScaler(), ["age", "income"])],
        sparse_threshold=sparse_threshold,
    )  # fmt: skip
    pipe = make_pipeline(columns, SimpleImputer(), LogisticRegression(tol=1e-10))
    X, target = frame, y
    if kind == "dask-frame":
        ddf = dd.from_pandas(frame.assign(target=y), npartitions=3, sort=False)
        X, target = ddf[["city", "age", "income"]], ddf["target"]
    clf = FusedClassifier(pipe, fusion="newton", n_partitions=3).fit(X, target)
    single = clone(pipe).fit(frame, y)

    model = clf.fused_estimator_
    assert type(model) is Pipeline
    assert model[0].sparse_output_ == single[0].sparse_output_ == (sparse_threshold == 1.0)
    assert_allclose(model[1].statistics_, single[1].statistics_, rtol=1e-10, atol=1e-12)
    assert_allclose(model[-1].coef_, single[-1].coef_, atol=1e-6)
    predicted = clf.predict(X)
    predicted = predicted.compute() if kind == "dask-frame" else predicted
    assert_array_equal(predicted, single.predict(frame))
    assert clf.score(X, target) == single.score(frame, y)
    assert clf.pipeline_steps_["fusion"].tolist() == [repr(Exact())] * 2 + [repr(Newton())]


def test_numeric_missing_values_imputed_first(client, on_cluster):
    X, y, _ = _data()
    X[::7, 1] = np.nan
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(tol=1e-10))
    clf = FusedClassifier(pipe, fusion="newton", n_partitions=3)
    assert clf.__sklearn_tags__().input_tags.allow_nan  # the imputer's, first
    clf.fit(X, y)
    single = clone(pipe).fit(X, y)
    assert_allclose(clf.fused_estimator_[0].statistics_, single[0].statistics_, rtol=1e-12)
    assert_allclose(clf.fused_estimator_[-1].coef_, single[-1].coef_, atol=1e-6)
    assert_array_equal(clf.predict(X), single.predict(X))


def test_a_fused_pipeline_is_saved_and_loaded(client, on_cluster, tmp_path):
    X, y, _ = _data()
    clf = FusedClassifier(make_pipeline(StandardScaler(), PCA(3), LogisticRegression()))
    clf.set_params(n_partitions=2).fit(X, y)
    daskfuse.save(clf, tmp_path / "pipe.skops")
    loaded = daskfuse.load(tmp_path / "pipe.skops")
    assert type(loaded.fused_estimator_) is Pipeline
    assert_array_equal(loaded.predict(X), clf.predict(X))
    pd.testing.assert_frame_equal(loaded.pipeline_steps_, clf.pipeline_steps_)


def test_transformer_pipeline(client, on_cluster):
    X, _, _ = _data()
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(2)), ("end", "passthrough")])
    fused = FusedTransformer(pipe, n_partitions=3).fit(da.from_array(X, chunks=(100, -1)))
    single = clone(pipe).fit(X)
    assert_allclose(np.abs(fused.transform(X)), np.abs(single.transform(X)), atol=1e-8)
    steps = fused.pipeline_steps_
    assert steps["fusion"].tolist()[:2] == [repr(Exact())] * 2
    assert steps["estimator"].tolist()[2] == "passthrough" and pd.isna(steps["fusion"][2])
    assert fused.fused_estimator_.steps[-1] == ("end", "passthrough")


def test_auto_picks_for_the_final_estimator_as_alone(client, on_cluster):
    X, y, _ = _data()
    idx = np.argsort(y, kind="stable")
    X, y = X[idx], y[idx]  # label-sorted: partitions lack classes
    scaled = StandardScaler().fit_transform(X)
    alone = FusedClassifier(LogisticRegression(), n_partitions=3).fit(scaled, y)
    clf = FusedClassifier(
        make_pipeline(StandardScaler(), LogisticRegression()), n_partitions=3
    ).fit(X, y)
    assert clf.fusion_ == alone.fusion_ == Newton()
    # GaussianNB is fused exactly, a forest by the union of its trees
    nb = FusedClassifier(make_pipeline(MinMaxScaler(), GaussianNB()), n_partitions=3).fit(X, y)
    single = make_pipeline(MinMaxScaler(), GaussianNB()).fit(X, y)
    assert_allclose(nb.fused_estimator_[-1].theta_, single[-1].theta_, rtol=1e-10)
    assert_array_equal(nb.predict(X), single.predict(X))
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=4))
    trees = FusedClassifier(forest, partition="random", n_partitions=3, random_state=0)
    trees.fit(X, y)
    assert trees.fusion_ == Trees()
    assert len(trees.fused_estimator_[-1].estimators_) == 12


def test_a_step_without_exact_fusion_falls_back_to_vote_and_says_which(client, on_cluster):
    X, y, _ = _data()
    pipe = make_pipeline(StandardScaler(), PowerTransformer(), LogisticRegression())
    with pytest.warns(UserWarning, match=r"not step by step: step 'powertransformer'"):
        clf = FusedClassifier(pipe, n_partitions=2).fit(X, y)
    assert isinstance(clf.fusion_, Vote)
    steps = clf.pipeline_steps_.set_index("step")
    assert "PowerTransformer" in steps.loc["powertransformer", "reason"]
    assert steps["reason"].isna().tolist() == [True, False, True]
    assert clf.score(X, y) > 0.7


def test_a_failed_fit_leaves_it_unfitted(client, on_cluster):
    X, y, _ = _data()
    clf = FusedClassifier(make_pipeline(StandardScaler(), LogisticRegression()), n_partitions=2)
    clf.fit(X, y)
    # exact fusion does not apply to the final LogisticRegression
    with pytest.raises(FusionError, match="LogisticRegression"):
        clf.set_params(fusion="exact").fit(X, y)
    assert not hasattr(clf, "fused_estimator_")
    assert not hasattr(clf, "pipeline_steps_")


def test_fit_graph_refuses_a_step_by_step_pipeline():
    X, y, _ = _data()
    clf = FusedClassifier(make_pipeline(StandardScaler(), LogisticRegression()), n_partitions=2)
    with pytest.raises(NotImplementedError, match="fused step by step"):
        clf.fit_graph(X, y)


def test_column_blocks_stack_a_pipeline_as_before(client, on_cluster):
    X, y, _ = _data()
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    clf = FusedClassifier(pipe, partition=Columns(n_blocks=2)).fit(X, y)
    assert type(clf.fusion_).__name__ == "ColumnStack"
    assert not hasattr(clf, "pipeline_steps_")
    assert clf.score(X, y) > 0.7


def _mixed_table(n, seed):
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "rome", "oslo", None], size=n)
    age = rng.normal(40, 10, n)
    age[::9] = np.nan
    income = rng.normal(3, 1, n)
    y = ((city == "rome") ^ (income > 3)).astype(int)
    return pd.DataFrame({"city": city, "age": age, "income": income}), y


def _mixed_pipeline(final):
    columns = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
         ("num", StandardScaler(), ["age", "income"])],
    )  # fmt: skip
    return make_pipeline(columns, SimpleImputer(), final)


@pytest.mark.parametrize("kind", ["pandas", "dask-frame"])
def test_partial_fit_keeps_the_transformers_and_continues_the_final_step(client, kind):
    # the transformer steps stay as the first fit fused them; the final (exact) step
    # equals scikit-learn's fitted on every batch so far, transformed by those steps
    first, y1 = _mixed_table(240, 0)
    second, y2 = _mixed_table(160, 1)
    pipe = _mixed_pipeline(Ridge(alpha=0.5))
    batches = [(first, y1), (second, y2)]
    if kind == "dask-frame":
        batches = [
            (dd.from_pandas(f, npartitions=2, sort=False), dd.from_pandas(pd.Series(t), 2))
            for f, t in batches
        ]
    reg = FusedRegressor(pipe, fusion="exact", n_partitions=2)
    reg.fit(*batches[0])
    transformers = reg.fused_estimator_[:-1]
    reg.partial_fit(*batches[1])

    model = reg.fused_estimator_
    assert type(model) is Pipeline
    assert model[0] is not None and model[:-1].transform(first).shape[1] == 6
    single_front = clone(pipe)[:-1].fit(first)
    assert_allclose(model[1].statistics_, single_front[1].statistics_, rtol=1e-12, atol=1e-12)
    Z = transformers.transform(pd.concat([first, second], ignore_index=True))
    single = Ridge(alpha=0.5).fit(Z, np.concatenate([y1, y2]))
    assert_allclose(model[-1].coef_, single.coef_, rtol=1e-9, atol=1e-12)
    assert_allclose(model[-1].intercept_, single.intercept_, rtol=1e-9)
    assert reg.n_partitions_ == 4
    steps = reg.pipeline_steps_
    assert steps["reason"].iloc[0].startswith("kept as fitted")
    assert steps["fusion"].iloc[-1] == repr(Exact())


def test_partial_fit_of_a_pipeline_with_a_final_step_that_cannot_continue(client):
    table, y = _mixed_table(200, 2)
    clf = FusedClassifier(_mixed_pipeline(LogisticRegression()), fusion="newton")
    clf.set_params(n_partitions=2).fit(table, y)
    before = clf.fused_estimator_
    with pytest.raises(FusionError, match="cannot continue"):
        clf.partial_fit(table, y)
    assert clf.fused_estimator_ is before


def test_sample_weight_weighs_the_final_step(client):
    # scikit-learn's pipeline.fit(X, y, <final>__sample_weight=w): the transformers
    # are fitted unweighted, the final step with the weights
    table, y = _mixed_table(300, 5)
    w = np.random.default_rng(6).uniform(0.1, 4.0, size=len(y))
    pipe = _mixed_pipeline(LogisticRegression(tol=1e-10))
    clf = FusedClassifier(pipe, fusion="newton", n_partitions=3)
    clf.fit(table, y, sample_weight=w)
    single = clone(pipe).fit(table, y, logisticregression__sample_weight=w)
    assert_allclose(clf.fused_estimator_[-1].coef_, single[-1].coef_, atol=1e-6)
    assert_allclose(clf.fused_estimator_[1].statistics_, single[1].statistics_, atol=1e-12)
    ddf = dd.from_pandas(table.assign(w=w, y=y), npartitions=3, sort=False)
    clf.fit(ddf[["city", "age", "income"]], ddf["y"], sample_weight=ddf["w"])
    assert_allclose(clf.fused_estimator_[-1].coef_, single[-1].coef_, atol=1e-6)


def test_a_pipeline_inside_a_column_transformer_falls_back_naming_it(client):
    table, y = _mixed_table(200, 7)
    columns = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
         ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"])],
    )  # fmt: skip
    clf = FusedClassifier(make_pipeline(columns, LogisticRegression()), n_partitions=2)
    with pytest.warns(UserWarning, match="step 'columntransformer' cannot be fitted by exact"):
        clf.fit(table, y)
    assert type(clf.fused_estimator_) is not Pipeline  # one pipeline per partition, voted
    assert clf.pipeline_steps_["reason"].iloc[0] is not None
