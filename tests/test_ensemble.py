"""Ensemble fusion: voting, stacking and the forest union."""

from __future__ import annotations

import io
import pickle

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from daskfuse import FusedClassifier, FusedRegressor, FusionError
from daskfuse.fusion.ensemble import Stack, Trees, Vote
from daskfuse.models import (
    FusedStackingClassifier,
    FusedStackingRegressor,
    FusedVotingClassifier,
    FusedVotingRegressor,
    stack_features,
)
from daskfuse.vertical import ColumnStack

LABELS = np.array(["ant", "bee", "cat"])


# ------------------------------------------------------------------ fixtures
@pytest.fixture
def iris_split():
    X, y = load_iris(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


@pytest.fixture
def animals(multiclass_data):
    """1,800 rows, three string labels; the test part is the last 600 rows."""
    X, y = multiclass_data
    X, y = X[:1800], LABELS[y[:1800]]
    return X[:1200], y[:1200], X[1200:], y[1200:]


def _lacking(X, y):
    """Three row blocks: the first lacks the last class, the second the first class."""
    third = len(y) // 3
    first, second = np.arange(third), np.arange(third, 2 * third)
    classes = np.unique(y)
    parts = [
        first[y[first] != classes[-1]],
        second[y[second] != classes[0]],
    ]
    parts.append(np.setdiff1d(np.arange(len(y)), np.concatenate(parts)))
    order = np.concatenate(parts)
    chunks = tuple(len(p) for p in parts)
    Xd = da.from_array(X[order], chunks=(chunks, -1))
    yd = da.from_array(y[order], chunks=(chunks,))
    return Xd, yd, [(X[p], y[p]) for p in parts]


def _modules(obj):
    """Modules of the classes and functions a pickle of ``obj`` refers to."""
    found = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(pickle.dumps(obj))).load()
    return found


def _info(index, n_rows, score=None):
    return {"index": index, "n_rows": n_rows, "holdout_score": score, "classes": None, "seed": None}


def _aligned_proba(model, X, classes):
    out = np.zeros((len(X), len(classes)))
    out[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(X)
    return out


# ------------------------------------------------------------------ the classic scenario
@pytest.mark.parametrize("fusion", [Vote(), Vote(weights="score"), Stack()], ids=repr)
def test_iris_linear_svc_on_four_partitions(scheduler, iris_split, fusion):
    X_train, X_test, y_train, y_test = iris_split
    clf = FusedClassifier(
        SVC(kernel="linear"),
        fusion=fusion,
        n_partitions=4,
        partition="stratified",
        random_state=0,
    ).fit(X_train, y_train)
    assert clf.n_partitions_ == 4
    assert clf.score(X_test, y_test) >= 0.9


# ------------------------------------------------------------------ Vote
@pytest.mark.parametrize("voting", ["soft", "hard"])
def test_vote_is_the_weighted_vote_of_the_partition_models(scheduler, animals, voting):
    X, y, X_test, _ = animals
    Xd, yd, parts = _lacking(X, y)
    estimator = LogisticRegression(C=0.5)
    clf = FusedClassifier(estimator, fusion=Vote(voting=voting)).fit(Xd, yd)
    fused = clf.fused_estimator_
    assert type(fused) is FusedVotingClassifier
    assert_array_equal(fused.classes_, LABELS)
    assert_array_equal(clf.classes_, LABELS)
    assert [list(m.classes_) for m in fused.estimators_] == [
        ["ant", "bee"],
        ["bee", "cat"],
        ["ant", "bee", "cat"],
    ]

    local = [clone(estimator).fit(Xp, yp) for Xp, yp in parts]
    rows = np.array([len(yp) for _, yp in parts], dtype=float)
    assert_array_equal(fused.weights_, rows)
    if voting == "soft":
        expected = sum(w * _aligned_proba(m, X_test, LABELS) for w, m in zip(rows, local))
        expected /= rows.sum()
        assert_allclose(clf.predict_proba(X_test), expected, rtol=1e-10)
        assert_array_equal(clf.predict(X_test), LABELS[expected.argmax(axis=1)])
    else:
        assert not hasattr(fused, "predict_proba")
        votes = np.zeros((len(X_test), 3))
        for w, m in zip(rows, local):
            votes[np.arange(len(X_test)), np.searchsorted(LABELS, m.predict(X_test))] += w
        assert_array_equal(clf.predict(X_test), LABELS[votes.argmax(axis=1)])


def test_vote_weighted_by_held_out_score(animals):
    X, y, X_test, y_test = animals
    clf = FusedClassifier(
        KNeighborsClassifier(5),
        fusion=Vote(voting="soft", weights="score", holdout=0.25),
        n_partitions=3,
        random_state=0,
    ).fit(X, y)
    report = clf.partition_report_
    assert report["holdout_score"].between(0.5, 1).all()
    assert_allclose(clf.fused_estimator_.weights_, report["holdout_score"])
    assert_allclose(report["weight"], report["holdout_score"])
    # each member was fitted on 75% of its 400 rows
    assert [m.n_samples_fit_ for m in clf.fused_estimator_.estimators_] == [300, 300, 300]
    assert clf.score(X_test, y_test) > 0.8


def test_vote_with_given_weights(animals):
    X, y, X_test, _ = animals
    Xd, yd, parts = _lacking(X, y)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0)
    clf = FusedClassifier(tree, fusion=Vote(voting="soft", weights=[0.0, 1.0, 3.0])).fit(Xd, yd)
    local = [clone(tree).fit(Xp, yp) for Xp, yp in parts]
    expected = (
        _aligned_proba(local[1], X_test, LABELS) + 3 * _aligned_proba(local[2], X_test, LABELS)
    ) / 4
    assert_allclose(clf.predict_proba(X_test), expected)
    assert clf.partition_report_["weight"].tolist() == [0.0, 1.0, 3.0]


@pytest.mark.parametrize(
    "estimator, voting",
    [
        (SVC(), "hard"),
        (KNeighborsClassifier(7), "soft"),
        (GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0), "soft"),
        # SVC(probability=True) is deprecated since scikit-learn 1.9 for this
        (make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(), ensemble=False)), "soft"),
    ],
    ids=["SVC", "KNeighbors", "GradientBoosting", "Pipeline"],
)
def test_vote_with_any_classifier(on_cluster, animals, estimator, voting):
    X, y, X_test, y_test = animals
    clf = FusedClassifier(
        estimator, fusion=Vote(voting=voting), n_partitions=3, partition="random", random_state=0
    ).fit(X, y)
    single = clone(estimator).fit(X, y).score(X_test, y_test)
    # three members fitted on a third of the rows each, against one model on all rows
    assert clf.score(X_test, y_test) >= single - 0.05
    assert_array_equal(clf.classes_, LABELS)
    assert set(clf.predict(X_test)) <= set(LABELS)


def test_vote_regressor_is_the_weighted_mean_of_predictions(scheduler, regression_data):
    X, y = regression_data
    chunks = (500, 700, 800)
    Xd, yd = da.from_array(X[:2000], chunks=(chunks, -1)), da.from_array(y[:2000], chunks=(chunks,))
    reg = FusedRegressor(KNeighborsRegressor(10), fusion=Vote()).fit(Xd, yd)
    assert type(reg.fused_estimator_) is FusedVotingRegressor
    edges = np.cumsum((0,) + chunks)
    local = [KNeighborsRegressor(10).fit(X[a:b], y[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    X_test = X[2000:]
    expected = sum(n * m.predict(X_test) for n, m in zip(chunks, local)) / sum(chunks)
    assert_allclose(reg.predict(X_test), expected, rtol=1e-12)
    single = KNeighborsRegressor(10).fit(X[:2000], y[:2000]).score(X_test, y[2000:])
    assert reg.score(X_test, y[2000:]) >= single - 0.05


def test_vote_does_not_depend_on_split_every(animals):
    X, y, X_test, _ = animals
    Xd, yd = da.from_array(X, chunks=(150, -1)), da.from_array(y, chunks=150)
    probas = [
        FusedClassifier(LogisticRegression(), fusion=Vote(voting="soft"), split_every=s)
        .fit(Xd, yd)
        .predict_proba(X_test)
        for s in (2, 3, 8)
    ]
    assert_array_equal(probas[0], probas[1])
    assert_array_equal(probas[0], probas[2])


def test_soft_vote_needs_predict_proba(animals):
    X, y, _, _ = animals
    with pytest.raises(FusionError, match=r"predict_proba.*voting='hard'"):
        FusedClassifier(SVC(), fusion=Vote(voting="soft"), n_partitions=2).fit(X, y)


def test_score_weights_need_held_out_scores():
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(FusionError, match="weights='rows'"):
        Vote(weights="score").summarize(model, None, None, _info(0, 2))


@pytest.mark.parametrize(
    "cls, params, match",
    [
        (Vote, {"voting": "mean"}, "voting"),
        (Vote, {"weights": "size"}, "weights"),
        (Vote, {"weights": [1.0, -1.0]}, "weights"),
        (Vote, {"weights": [0.0, 0.0]}, "weights"),
        (Vote, {"weights": "score", "holdout": 1.0}, "holdout"),
        (Stack, {"holdout": 0}, "holdout"),
        (Stack, {"max_holdout_rows": 0}, "max_holdout_rows"),
        (Stack, {"stack_method": "transform"}, "stack_method"),
        (Stack, {"final_estimator": "ridge"}, "final_estimator"),
    ],
)
def test_ensemble_parameters_are_checked(cls, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**params)


def test_vote_weights_must_match_the_partitions(animals):
    X, y, _, _ = animals
    with pytest.raises(ValueError, match="2 weights but the data has 3 partitions"):
        FusedClassifier(LogisticRegression(), fusion=Vote(weights=[1, 2]), n_partitions=3).fit(X, y)


def test_voting_models_are_usable_alone_with_feature_names(animals):
    X, y, X_test, _ = animals
    columns = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=columns)
    a = LogisticRegression().fit(frame[:600], y[:600])
    b = LogisticRegression().fit(frame[600:], y[600:])
    vote = FusedVotingClassifier([a, b], voting="soft").fit()
    assert_array_equal(vote.feature_names_in_, columns)
    expected = (
        a.predict_proba(pd.DataFrame(X_test, columns=columns))
        + b.predict_proba(pd.DataFrame(X_test, columns=columns))
    ) / 2
    assert_allclose(vote.predict_proba(pd.DataFrame(X_test, columns=columns)), expected)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        assert_allclose(vote.predict_proba(X_test), expected)
    with pytest.raises(ValueError, match="feature names"):
        vote.predict(pd.DataFrame(X_test, columns=[c.upper() for c in columns]))
    with pytest.raises(ValueError, match="not in classes"):
        FusedVotingClassifier([a], classes=["ant", "bee"]).fit()


# ------------------------------------------------------------------ Stack
def test_stack_classifier_with_a_partition_lacking_a_class(scheduler, animals):
    X, y, X_test, y_test = animals
    Xd, yd, _ = _lacking(X, y)
    clf = FusedClassifier(SVC(), fusion=Stack(), random_state=0).fit(Xd, yd)
    fused = clf.fused_estimator_
    assert type(fused) is FusedStackingClassifier
    assert_array_equal(clf.classes_, LABELS)
    # decision_function of every member, laid onto the three classes
    assert fused.stack_method_ == ["decision_function"] * 3
    assert fused.final_estimator_.n_features_in_ == 3 * 3
    assert_array_equal(fused.final_estimator_.classes_, LABELS)
    assert clf.predict_proba(X_test).shape == (len(X_test), 3)
    single = SVC().fit(X, y).score(X_test, y_test)
    assert clf.score(X_test, y_test) >= single - 0.05


def test_stack_holds_out_rows_for_the_meta_learner(animals):
    X, y, X_test, y_test = animals
    stack = Stack(LogisticRegression(C=2.0), holdout=0.25, max_holdout_rows=60)
    clf = FusedClassifier(
        KNeighborsClassifier(5), fusion=stack, n_partitions=4, random_state=0
    ).fit(X, y)
    fused = clf.fused_estimator_
    # members see all 300 rows of their partition; probabilities of 3 classes each
    assert [m.n_samples_fit_ for m in fused.estimators_] == [300] * 4
    assert fused.final_estimator_.n_features_in_ == 4 * 3
    assert fused.final_estimator_.C == 2.0
    assert clf.score(X_test, y_test) > 0.8
    # at most 60 held-out rows per partition travel to the root
    summary = stack.summarize(
        KNeighborsClassifier(5).fit(X[:300], y[:300]), X[:300], y[:300], _info(0, 300)
    )
    held = summary.members[0].extra
    assert len(held["y"]) == 60
    assert held["raw"].shape == (60, 3)


class _CountingSVC(SVC):
    """An SVC that records how many rows each ``decision_function`` call scores."""

    def decision_function(self, X):
        self.__dict__.setdefault("scored_rows_", []).append(len(X))
        return super().decision_function(X)


def test_stack_finalize_predicts_each_members_held_out_rows_once(animals):
    # issue 17: a member's own held-out rows get the cross clone's output (computed
    # in the partition task); finalize must not predict them again with the member
    X, y, _, _ = animals
    stack = Stack(holdout=0.25, stack_method="decision_function")
    parts = np.array_split(np.arange(len(y)), 3)
    summaries = [
        stack.summarize(_CountingSVC().fit(X[r], y[r]), X[r], y[r], _info(i, len(r)))
        for i, r in enumerate(parts)
    ]
    summary = stack.combine(summaries)
    held = [len(s.members[0].extra["y"]) for s in summaries]
    for s in summaries:
        s.members[0].model.scored_rows_ = []
    fused = stack.finalize(summary, SVC(), {"classes": np.unique(y)})
    assert [m.model.scored_rows_ for m in summary.ordered] == [[sum(held) - h] for h in held]
    # the meta-learner's inputs are those of predicting every row and overwriting
    # each partition's own rows with its clone's output (the former computation)
    classes = np.unique(y)
    X_held = np.concatenate([m.extra["X"] for m in summary.ordered])
    edges = np.cumsum([0, *held])
    blocks = []
    for j, m in enumerate(summary.ordered):
        block = stack_features(
            m.model.decision_function(X_held), m.extra["method"], m.classes, classes
        )
        block[edges[j] : edges[j + 1]] = stack_features(
            m.extra["raw"], m.extra["method"], m.extra["raw_classes"], classes
        )
        blocks.append(block)
    y_held = np.concatenate([m.extra["y"] for m in summary.ordered])
    expected = clone(fused.final_estimator_).fit(np.hstack(blocks), y_held)
    assert_array_equal(fused.final_estimator_.coef_, expected.coef_)
    assert_array_equal(fused.final_estimator_.intercept_, expected.intercept_)


def test_stack_partition_task_scores_no_holdout_of_its_own(animals):
    # issue 17: Stack holds out its own rows in summarize; the task's generic holdout
    # scoring stays off, so the held-out rows are predicted once (by the cross clone)
    X, y, _, _ = animals
    clf = FusedClassifier(SVC(), fusion="stack", n_partitions=3, random_state=0).fit(X, y)
    report = clf.partition_report_
    assert report["holdout_score"].isna().all()
    assert report["rows"].tolist() == [400] * 3
    assert (report["task_seconds"] >= report["fit_seconds"]).all()


def test_stack_regressor(on_cluster, regression_data):
    X, y = regression_data
    reg = FusedRegressor(
        KNeighborsRegressor(10), fusion=Stack(), n_partitions=3, random_state=0
    ).fit(X[:2400], y[:2400])
    fused = reg.fused_estimator_
    assert type(fused) is FusedStackingRegressor
    assert fused.final_estimator_.n_features_in_ == 3
    single = KNeighborsRegressor(10).fit(X[:2400], y[:2400]).score(X[2400:], y[2400:])
    assert reg.score(X[2400:], y[2400:]) >= single - 0.02


def test_stack_cannot_fuse_already_fitted_models():
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(FusionError, match="Vote"):
        Stack().summarize(model, None, None, _info(0, 2))


# ------------------------------------------------------------------ Trees
@pytest.mark.parametrize("forest", [RandomForestClassifier, ExtraTreesClassifier])
def test_forest_union_holds_every_partitions_trees(scheduler, animals, forest):
    X, y, X_test, y_test = animals
    clf = FusedClassifier(
        forest(n_estimators=15), fusion=Trees(), n_partitions=4, partition="random", random_state=0
    ).fit(X, y)
    fused = clf.fused_estimator_
    assert type(fused) is forest
    assert len(fused.estimators_) == fused.n_estimators == 4 * 15
    assert_array_equal(fused.classes_, LABELS)
    assert fused.n_classes_ == 3
    # 60 trees on a quarter of the rows each against 60 trees on all rows
    single = forest(n_estimators=60, random_state=0).fit(X, y).score(X_test, y_test)
    assert clf.score(X_test, y_test) >= single - 0.05
    mean = np.mean([tree.predict_proba(X_test) for tree in fused.estimators_], axis=0)
    assert_allclose(fused.predict_proba(X_test), mean)


def test_forest_union_realigns_a_partition_lacking_a_class(scheduler, animals):
    X, y, X_test, y_test = animals
    Xd, yd, parts = _lacking(X, y)
    clf = FusedClassifier(
        RandomForestClassifier(n_estimators=10), fusion=Trees(), random_state=0
    ).fit(Xd, yd)
    fused = clf.fused_estimator_
    assert len(fused.estimators_) == 30
    # a forest's trees learn the class indices of its classes_: all must be 0, 1, 2
    for tree in fused.estimators_:
        assert_array_equal(tree.classes_, [0, 1, 2])
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 3)
    assert_allclose(proba.sum(axis=1), 1)
    # the trees of partition 0 never saw "cat": they give it probability 0
    first = np.mean([t.predict_proba(X_test) for t in fused.estimators_[:10]], axis=0)
    assert_array_equal(first[:, 2], 0)
    assert clf.score(X_test, y_test) > 0.8
    # the report counts the rows fitted on, not the zero-weight label rows
    assert clf.partition_report_["rows"].tolist() == [len(p[1]) for p in parts]


CLASS_WEIGHTS = ["balanced", "balanced_subsample", {"ant": 1.0, "bee": 3.0, "cat": 0.5}, None]


@pytest.mark.parametrize("forest", [RandomForestClassifier, ExtraTreesClassifier])
@pytest.mark.parametrize("class_weight", CLASS_WEIGHTS, ids=repr)
def test_forest_union_realigns_with_every_class_weight(animals, forest, class_weight):
    X, y, X_test, y_test = animals
    Xd, yd, parts = _lacking(X, y)
    template = forest(n_estimators=10, class_weight=class_weight)
    with dask.config.set(scheduler="sync"):
        clf = FusedClassifier(template, fusion=Trees(), random_state=0).fit(Xd, yd)
    fused = clf.fused_estimator_
    assert_array_equal(fused.classes_, LABELS)
    assert fused.get_params()["class_weight"] == class_weight
    for tree in fused.estimators_:
        assert_array_equal(tree.classes_, [0, 1, 2])
    proba = clf.predict_proba(X_test)
    assert np.isfinite(proba).all()
    assert_allclose(proba.sum(axis=1), 1)
    # partition 0 never saw "cat": its trees give it probability 0
    first = np.mean([t.predict_proba(X_test) for t in fused.estimators_[:10]], axis=0)
    assert_array_equal(first[:, 2], 0)
    # as good as the mean of forests fitted on each partition alone with the same weights
    alone = [clone(template).set_params(random_state=i).fit(*part) for i, part in enumerate(parts)]
    mean = np.mean([_aligned_proba(m, X_test, LABELS) for m in alone], axis=0)
    baseline = np.mean(LABELS[mean.argmax(axis=1)] == y_test)
    assert clf.score(X_test, y_test) >= baseline - 0.05


@pytest.mark.parametrize("class_weight", CLASS_WEIGHTS, ids=repr)
def test_realigned_forest_weighs_rows_as_the_partitions_own_fit(animals, class_weight):
    from daskfuse.fusion.ensemble import _refit_with_classes

    X, y, X_test, _ = animals
    keep = y != "cat"
    # extra-trees draw no bootstrap: the realigned forest is the partition's own fit
    own = ExtraTreesClassifier(10, class_weight=class_weight, random_state=0)
    own.fit(X[keep], y[keep])
    realigned = _refit_with_classes(own, X[keep], y[keep], np.array(["cat"]))
    assert_array_equal(realigned.classes_, LABELS)
    assert realigned.get_params()["class_weight"] == class_weight
    proba = realigned.predict_proba(X_test)
    assert_array_equal(proba[:, :2], own.predict_proba(X_test))
    assert_array_equal(proba[:, 2], 0)


def test_forest_class_weight_lacking_a_class_names_partition_and_class(animals):
    X, y, _, _ = animals
    Xd, yd, _ = _lacking(X, y)
    template = RandomForestClassifier(5, class_weight={"ant": 1.0, "bee": 2.0})
    with (
        dask.config.set(scheduler="sync"),
        pytest.raises(ValueError, match=r"partition \d.*\['cat'\].*class_weight"),
    ):
        FusedClassifier(template, fusion=Trees(), random_state=0).fit(Xd, yd)


def test_forest_union_of_regressors(regression_data):
    X, y = regression_data
    reg = FusedRegressor(
        ExtraTreesRegressor(n_estimators=10), fusion=Trees(), n_partitions=3, random_state=0
    ).fit(X[:2400], y[:2400])
    fused = reg.fused_estimator_
    assert type(fused) is ExtraTreesRegressor
    assert len(fused.estimators_) == 30
    single = ExtraTreesRegressor(n_estimators=30, random_state=0).fit(X[:2400], y[:2400])
    assert reg.score(X[2400:], y[2400:]) >= single.score(X[2400:], y[2400:]) - 0.05


def test_trees_of_already_fitted_forests_must_agree_on_classes(animals):
    X, y, _, _ = animals
    fuser = Trees()
    full = RandomForestClassifier(5, random_state=0).fit(X[:400], y[:400])
    keep = y[400:800] != "cat"
    lacking = RandomForestClassifier(5, random_state=1).fit(X[400:800][keep], y[400:800][keep])
    summary = fuser.combine(
        [
            fuser.summarize(full, None, None, _info(0, 400)),
            fuser.summarize(lacking, None, None, _info(1, int(keep.sum()))),
        ]
    )
    with pytest.raises(FusionError, match=r"partition 1 \['ant', 'bee'\]"):
        fuser.finalize(summary, RandomForestClassifier(5), {"n_features_in_": X.shape[1]})
    same = fuser.summarize(
        RandomForestClassifier(5, random_state=2).fit(X[800:], y[800:]), None, None, _info(1, 400)
    )
    fused = fuser.finalize(
        fuser.combine([fuser.summarize(full, None, None, _info(0, 400)), same]),
        RandomForestClassifier(5),
        {"n_features_in_": X.shape[1]},
    )
    assert len(fused.estimators_) == 10


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_trees_reject_other_estimators(animals, kind):
    X, y, _, _ = animals
    if kind == "classifier":
        fused = FusedClassifier(LogisticRegression(), fusion=Trees(), n_partitions=2)
    else:
        fused = FusedRegressor(LinearRegression(), fusion=Trees(), n_partitions=2)
        y = np.arange(len(y), dtype=float)
    with pytest.raises(FusionError, match="random forest or extra-trees"):
        fused.fit(X, y)


# ------------------------------------------------------------------ plain and picklable
@pytest.mark.parametrize(
    "make, fusion, kind",
    [
        (lambda: LogisticRegression(), Vote(voting="soft"), "classifier"),
        (lambda: SVC(), Vote(), "classifier"),
        (lambda: KNeighborsRegressor(), Vote(), "regressor"),
        (lambda: LogisticRegression(), Stack(), "classifier"),
        (lambda: Ridge(), Stack(), "regressor"),
        (lambda: RandomForestClassifier(5), Trees(), "classifier"),
        (lambda: RandomForestRegressor(5), Trees(), "regressor"),
    ],
    ids=["vote-soft", "vote-hard", "vote-reg", "stack", "stack-reg", "trees", "trees-reg"],
)
def test_fused_models_are_plain_and_picklable(
    on_cluster, animals, regression_data, make, fusion, kind
):
    if kind == "classifier":
        X, y, X_test, _ = animals
        model = FusedClassifier(make(), fusion=fusion, n_partitions=3, random_state=0).fit(X, y)
    else:
        X, y = regression_data
        X, y, X_test = X[:1200], y[:1200], X[1200:1400]
        model = FusedRegressor(make(), fusion=fusion, n_partitions=3, random_state=0).fit(X, y)
    fused = model.fused_estimator_
    modules = _modules(fused)
    assert {m.split(".")[0] for m in modules} <= {
        "sklearn",
        "numpy",
        "daskfuse",
        "builtins",
        "copyreg",
        "_codecs",
    }
    # daskfuse's only part: the plain model classes, which import nothing from dask
    assert {m for m in modules if m.startswith("daskfuse")} <= {"daskfuse.models"}
    restored = pickle.loads(pickle.dumps(fused))
    assert_array_equal(restored.predict(X_test), model.predict(X_test))
    if kind == "classifier":
        assert_array_equal(restored.classes_, LABELS)
        assert restored.predict(X_test).dtype.kind == "U"


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Stack(final_estimator="ridge"), TypeError,
         r"Stack\(final_estimator=...\) must be None or an estimator; got str"),
        (lambda: Stack(stack_method="proba"), ValueError,
         r"Stack\(stack_method=...\) must be one of 'auto', .*; got 'proba'"),
        (lambda: ColumnStack(final_estimator=3), TypeError,
         r"ColumnStack\(final_estimator=...\) must be None or an estimator; got int"),
        (lambda: ColumnStack(stack_method=None), ValueError,
         r"ColumnStack\(stack_method=...\) must be one of 'auto', .*; got None"),
    ],
)
def test_stacking_strategies_name_a_bad_meta_learner_or_stack_method(make, error, match):
    with pytest.raises(error, match=match):
        make()
