"""fusion="newton": exact global-gradient passes equal scikit-learn's fit on all rows."""

from __future__ import annotations

import dataclasses

import dask
import dask.array as da
import numpy as np
import pytest
from dask.utils import key_split
from distributed import get_task_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    GammaRegressor,
    Lasso,
    LogisticRegression,
    PoissonRegressor,
    TweedieRegressor,
)
from sklearn.svm import LinearSVC, LinearSVR

from daskfuse import FusedClassifier, FusedRegressor
from daskfuse.exceptions import FusionError
from daskfuse.fusion import DP, Newton, Secure, Weighted, prefers_newton, resolve_fusion
from daskfuse.fusion._loss import linear_loss, margins
from daskfuse.fusion.newton import MAX_HESSIAN_PARAMS, STEPS, build_model, next_state
from tests.conftest import make_classification_data

TIGHT = {"tol": 1e-10, "max_iter": 1000}


def _rel(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def _assert_same(fused, ref):
    assert _rel(fused.coef_, ref.coef_) < 1e-6
    assert _rel(fused.intercept_, ref.intercept_) < 1e-6 or np.allclose(
        fused.intercept_, ref.intercept_, atol=1e-7
    )


def _sorted(X, y):
    order = np.argsort(y, kind="stable")
    return X[order], y[order]


def test_scikit_learn_private_loss_is_the_objective_it_minimises(multiclass_data):
    # LinearModelLoss is private API: this fails loudly if it stops being the
    # objective LogisticRegression minimises (zero gradient at its solution)
    X, y = multiclass_data
    for labels in (y, (y == 0).astype(int)):
        ref = LogisticRegression(C=0.5, **TIGHT).fit(X, labels)
        classes = np.unique(labels)
        loss = linear_loss(ref, classes)
        if len(classes) == 2:
            w, target = np.append(ref.coef_[0], ref.intercept_), labels.astype(float)
        else:
            w = np.hstack([ref.coef_, ref.intercept_[:, None]]).ravel(order="F")
            target = labels.astype(float)
        _, grad = loss.loss_gradient(w, X, target, None, l2_reg_strength=1 / (0.5 * len(X)))
        assert np.max(np.abs(grad)) < 1e-8


def _unequal(X, y):
    # dask chunks of very different lengths, one partition per chunk
    n = len(X)
    chunks = (n // 40, n // 10, n - n // 40 - n // 10 - n // 20, n // 20)
    return da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,)), "chunks"


PARTITIONINGS = {
    "random": lambda X, y: (X, y, "random"),
    "contiguous": lambda X, y: (X, y, "uniform"),
    "stratified": lambda X, y: (X, y, "stratified"),
    "label-sorted": lambda X, y: (*_sorted(X, y), "uniform"),
    "unequal": _unequal,
}


@pytest.mark.parametrize("how", list(PARTITIONINGS))
@pytest.mark.parametrize(
    "n_classes, params",
    [
        (2, {}),
        (3, {}),
        (3, {"class_weight": "balanced", "C": 0.3}),
        (2, {"class_weight": {0: 1.0, 1: 3.0}, "fit_intercept": False}),
        (2, {"C": np.inf}),
    ],
    ids=["binary", "multinomial", "balanced", "dict-weight-no-intercept", "no-penalty"],
)
def test_logistic_regression_equals_the_fit_on_all_rows(how, n_classes, params):
    X, y = make_classification_data(n=1200, n_features=4, n_classes=n_classes, noise=3.0)
    ref = LogisticRegression(**params, **TIGHT).fit(X, y)
    Xp, yp, strategy = PARTITIONINGS[how](X, y)
    with dask.config.set(scheduler="sync"):
        model = FusedClassifier(
            LogisticRegression(**params, **TIGHT),
            fusion="newton",
            n_partitions=4,
            partition=strategy,
            random_state=0,
        ).fit(Xp, yp)
    assert model.fusion_ == Newton()
    _assert_same(model.fused_estimator_, ref)
    assert model.fused_estimator_.n_iter_[0] >= 1


def _glm_data(positive_target, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(900, 3))
    mu = np.exp(X @ np.array([0.3, -0.2, 0.1]) + 0.5)
    y = rng.gamma(2.0, mu / 2.0) if positive_target else rng.poisson(mu).astype(float)
    return X, y


@pytest.mark.parametrize(
    "estimator, positive",
    [
        (PoissonRegressor(alpha=0.1, **TIGHT), False),
        (GammaRegressor(alpha=0.01, **TIGHT), True),
        (TweedieRegressor(power=1.5, alpha=0.05, **TIGHT), True),
    ],
)
def test_glms_equal_the_fit_on_all_rows(estimator, positive):
    X, y = _glm_data(positive)
    ref = estimator.fit(X, y)
    with dask.config.set(scheduler="sync"):
        model = FusedRegressor(estimator, fusion="newton", n_partitions=3).fit(X, y)
    _assert_same(model.fused_estimator_, ref)
    np.testing.assert_allclose(model.predict(X[:5]), ref.predict(X[:5]), rtol=1e-6)


#: liblinear's primal solver run to a tight tol (the same optimum as the dual's)
LIBLINEAR = {"dual": False, "tol": 1e-12, "max_iter": 100_000}


@pytest.mark.parametrize(
    "n_classes, params",
    [
        (2, {}),
        (3, {}),  # one-vs-rest: 3 problems in every pass
        (2, {"C": 0.3, "intercept_scaling": 3.0}),
        (3, {"class_weight": "balanced"}),
        (3, {"class_weight": {0: 1.0, 1: 3.0, 2: 0.5}}),
        (2, {"class_weight": {0: 1.0, 1: 3.0}, "fit_intercept": False}),
        (2, {"dual": True}),  # the primal objective is the same
    ],
)
def test_squared_hinge_linear_svc_equals_liblinear_on_all_rows(n_classes, params):
    # issue 15: liblinear's objective, C * sum(loss) + |w|^2 / 2 with the intercept a
    # penalised feature of value intercept_scaling; label-sorted partitions (some of
    # one class) cannot fit alone
    X, y = _sorted(*make_classification_data(n=900, n_features=4, n_classes=n_classes, noise=3.0))
    ref = LinearSVC(**{**params, **LIBLINEAR}).fit(X, y)
    with dask.config.set(scheduler="sync"):
        model = FusedClassifier(
            LinearSVC(**params, **TIGHT), fusion="newton", n_partitions=4, partition="uniform"
        ).fit(X, y)
    assert model.fusion_ == Newton()
    fused = model.fused_estimator_
    assert type(fused) is LinearSVC and fused.coef_.shape == ref.coef_.shape
    _assert_same(fused, ref)
    assert np.shape(fused.intercept_) == np.shape(ref.intercept_)
    assert np.array_equal(model.predict(X), ref.predict(X))


@pytest.mark.parametrize(
    "params", [{}, {"epsilon": 0.5, "C": 0.1, "intercept_scaling": 2.0}, {"fit_intercept": False}]
)
def test_squared_epsilon_insensitive_linear_svr_equals_liblinear(params):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 4))
    y = X @ [1.0, -2.0, 0.5, 3.0] + 2.0 + rng.normal(size=800)
    svr = {"loss": "squared_epsilon_insensitive", **params}
    ref = LinearSVR(**{**svr, **LIBLINEAR}).fit(X, y)
    with dask.config.set(scheduler="sync"):
        model = FusedRegressor(LinearSVR(**svr, **TIGHT), fusion="newton", n_partitions=3)
        model.fit(X, y)
    _assert_same(model.fused_estimator_, ref)
    assert np.shape(model.fused_estimator_.intercept_) == np.shape(ref.intercept_)


@pytest.mark.parametrize(
    "estimator, match",
    [
        (LinearSVC(loss="hinge"), "loss='squared_hinge' .* loss='hinge' is not differentiable"),
        (LinearSVC(penalty="l1"), "penalty='l2' for a LinearSVC"),
        (LinearSVC(multi_class="crammer_singer"), "multi_class='ovr'"),
        (LinearSVR(), "loss='squared_epsilon_insensitive' .* not differentiable"),
    ],
)
def test_svms_newton_cannot_minimise_are_refused_with_the_reason(estimator, match):
    assert Newton().unsupported_reason(estimator) is not None
    with pytest.raises(FusionError, match=match):
        resolve_fusion("newton", estimator)
    assert not prefers_newton("auto", estimator, rounds=3)


def test_auto_takes_newton_for_a_squared_hinge_svc_on_label_sorted_input(binary_data):
    # the documented rule, for every estimator newton supports
    X, y = _sorted(*binary_data)
    with dask.config.set(scheduler="sync"):
        model = FusedClassifier(LinearSVC(), n_partitions=4).fit(X, y)
        shuffled = FusedClassifier(LinearSVC(), n_partitions=4).fit(*binary_data)
    assert model.fusion_ == Newton() and shuffled.fusion_ == Weighted()
    assert model.score(X, y) == pytest.approx(LinearSVC().fit(X, y).score(X, y), abs=2e-3)


def test_on_the_cluster_with_history(on_cluster):
    X, y = _sorted(*make_classification_data(n=1500, n_classes=3, noise=3.0))
    model = FusedClassifier(
        LogisticRegression(**TIGHT), fusion="newton", n_partitions=6, partition="uniform"
    ).fit(X, y)
    # label-sorted partitions, most holding one class: they cannot fit alone (zeros start)
    assert sum(len(c) == 1 for c in model.partition_report_["class_counts"]) >= 3
    _assert_same(model.fused_estimator_, LogisticRegression(**TIGHT).fit(X, y))
    history = model.history_
    assert {"loss", "grad_norm", "step"} <= set(history.columns)
    assert history["grad_norm"].iloc[-1] <= 1e-10
    losses = history["loss"].dropna().to_numpy()
    assert np.all(np.diff(losses) <= 1e-12)  # every accepted step lowers the loss


@pytest.mark.parametrize("n_classes", [2, 3])
def test_last_pass_scores_the_model_without_a_scoring_pass(on_cluster, n_classes):
    # issue 15: the last pass evaluates the loss at the fused model's point, so it
    # also counts the rows that model classifies right: no separate scoring pass
    X, y = _sorted(*make_classification_data(n=600, n_classes=n_classes, noise=3.0))
    model = FusedClassifier(
        LogisticRegression(**TIGHT), fusion="newton", n_partitions=3, partition="uniform"
    )
    with get_task_stream(client=on_cluster) as stream:
        model.fit(X, y)
    groups = {key_split(rec["key"]) for rec in stream.data}
    assert not any(g.startswith("daskfuse-score") for g in groups)
    assert any(g.startswith("daskfuse-fit") for g in groups)
    scores = model.history_["train_score"]
    assert scores.notna().all()
    assert scores.iloc[-1] == pytest.approx(model.score(X, y), abs=1e-12)


def test_the_first_pass_after_the_start_takes_a_newton_step():
    # issue 15: where every partition fits alone, pass 0's local quadratic models give
    # the first direction, so no pass only evaluates the gradient at the start
    X, y = make_classification_data(n=4000, n_features=5, noise=1.0, seed=3)
    with dask.config.set(scheduler="sync"):
        model = FusedClassifier(
            LogisticRegression(**TIGHT), fusion="newton", n_partitions=8, random_state=0
        ).fit(X, y)
    _assert_same(model.fused_estimator_, LogisticRegression(**TIGHT).fit(X, y))
    history = model.history_
    assert history["step"].iloc[1] > 0
    # every pass after the start took a Newton step
    assert model.fused_estimator_.n_iter_[0] == len(history) - 1


def test_a_guessed_direction_that_does_not_lower_the_loss_falls_back(binary_data):
    # the first direction comes from pass 0's quadratic models; where no step along
    # it lowers the loss, the same pass has evaluated the exact gradient and Hessian
    # at the start too, so the next pass takes an exact Newton step from there
    X, y = binary_data
    template, classes = LogisticRegression(**TIGHT), np.unique(y)
    info = {"template": template, "classes": classes}
    state = next_state(Newton().summarize(None, X, y, info), template, classes)
    assert state.guessed
    # a direction that no step length makes a descent (the start is near the optimum),
    # with a gradient guess that claims a steep descent along it
    away = np.full_like(state.w, 5.0)
    state = dataclasses.replace(state, direction=away, grad=-away)
    for _ in range(20):
        summary = Newton().summarize(state, X, y, info)
        previous, state = state, next_state(summary, template, classes)
        if previous.guessed:
            assert state.record["step"] == 0.0 and state.record["grad_norm"] is not None
            assert np.array_equal(state.w, previous.w)
            assert state.direction is not None and not state.guessed
        if state.done:
            break
    ref = LogisticRegression(**TIGHT).fit(X, y)
    assert state.done and _rel(state.w, np.append(ref.coef_, ref.intercept_)) < 1e-6


def test_after_a_full_newton_step_a_pass_tries_the_full_step_alone(binary_data):
    # quadratic convergence: after a full step the next is full too, so a pass
    # evaluates one candidate; where it fails the Armijo test, the next pass tries
    # every length of STEPS along the same direction from the same point
    X, y = binary_data
    template, classes = LogisticRegression(**TIGHT), np.unique(y)
    info = {"template": template, "classes": classes}
    state = next_state(Newton().summarize(None, X, y, info), template, classes)
    # the guessed direction: the full step alone (falling short, the pass has the
    # exact gradient at the start to step from)
    assert state.guessed and state.steps == (1.0,)
    assert len(Newton().summarize(state, X, y, info)["losses"]) == 2  # and the start's
    # from zeros (as where a partition holds one class): the gradient, then steps
    state = dataclasses.replace(state, w=np.zeros_like(state.w), direction=None, guessed=False)
    state = next_state(Newton().summarize(state, X, y, info), template, classes)
    assert state.record["step"] == 0.0 and state.steps == STEPS
    state = next_state(Newton().summarize(state, X, y, info), template, classes)
    assert state.record["step"] == 1.0 and not state.done and state.steps == (1.0,)
    assert len(Newton().summarize(state, X, y, info)["losses"]) == 1
    away = np.full_like(state.w, 5.0)
    bad = dataclasses.replace(state, direction=away, grad=-away)
    retry = next_state(Newton().summarize(bad, X, y, info), template, classes)
    assert retry.steps == STEPS and retry.record["step"] == 0.0 and not retry.done
    assert np.array_equal(retry.w, bad.w) and np.array_equal(retry.direction, away)
    for _ in range(30):
        retry = next_state(Newton().summarize(retry, X, y, info), template, classes)
        if retry.done:
            break
    ref = LogisticRegression(**TIGHT).fit(X, y)
    assert retry.done and _rel(retry.w, np.append(ref.coef_, ref.intercept_)) < 1e-6


@pytest.mark.parametrize(
    "estimator, n_classes",
    [(LogisticRegression(), 2), (LogisticRegression(), 3), (LinearSVC(), 3)],
    ids=["binary", "multinomial", "svc-ovr"],
)
def test_a_pass_reports_the_previous_models_score_from_its_margins(estimator, n_classes):
    # the report's start_score of a later pass is the previous fused model's accuracy
    # on the partition: newton counts it from the margins it computes anyway, and it
    # equals that model's own score (one predict over the rows fewer per pass)
    X, y = make_classification_data(n=600, n_features=4, n_classes=n_classes, seed=2)
    classes = np.unique(y)
    info = {"template": estimator, "classes": classes}
    state = next_state(Newton().summarize(None, X, y, info), estimator, classes)
    meta = {**_meta(), "classes": classes}
    for _ in range(3):
        summary = Newton().summarize(state, X, y, info)
        model = build_model(estimator, state.w, classes, 0, meta)
        assert summary.report_start_score == model.score(X, y)
        state = next_state(summary, estimator, classes)
        if state.done:
            break


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_margins_at_several_points_equal_scikit_learns_one_by_one(fit_intercept):
    X, y = make_classification_data(n=300, n_features=4, n_classes=3, seed=1)
    for classes in (np.unique(y), np.array([0, 1])):
        loss = linear_loss(LogisticRegression(fit_intercept=fit_intercept), classes)
        k = 1 if len(classes) == 2 else len(classes)
        coefs = [np.random.default_rng(s).normal(size=k * (4 + fit_intercept)) for s in range(2)]
        for got, coef in zip(margins(loss, coefs, X), coefs):
            np.testing.assert_allclose(got, loss.weight_intercept_raw(coef, X)[2], rtol=1e-12)


def test_a_hessian_on_a_sample_of_rows_keeps_the_exact_loss_and_gradient(multiclass_data):
    # issue 15: a large partition takes its Hessian on about sample_rows of its rows;
    # the candidate losses and the gradient, which the stopping test reads, stay exact
    X, y = multiclass_data
    template, classes = LogisticRegression(), np.unique(y)
    info = {"template": template, "classes": classes}
    state = next_state(Newton().summarize(None, X, y, info), template, classes)
    full = Newton(sample_rows=None).summarize(state, X, y, info)
    sampled = Newton(sample_rows=500).summarize(state, X, y, info)
    for key in ("losses", "grad", "start_grad"):
        np.testing.assert_array_equal(sampled[key], full[key])
    # 3000 rows: every 6th row, scaled to the partition's weight (not equal, but close)
    assert not np.allclose(sampled["hess"], full["hess"], rtol=1e-3)
    np.testing.assert_allclose(sampled["hess"], full["hess"], rtol=0.5, atol=0.1 * len(X))
    # the default leaves a partition of at most SAMPLE_ROWS rows untouched
    default = Newton().summarize(state, X, y, info)
    np.testing.assert_array_equal(default["hess"], full["hess"])


def test_a_large_partition_fits_its_start_on_a_sample_of_rows(binary_data):
    # issue 15: the one-shot start only needs to be close; the passes refine it
    X, y = binary_data  # 4000 rows: every 8th row with sample_rows=500
    template, classes = LogisticRegression(), np.unique(y)
    info = {"template": template, "classes": classes}
    first = Newton(sample_rows=500).summarize(None, X, y, info)
    local = LogisticRegression().fit(X[::8], y[::8])
    np.testing.assert_allclose(first["theta"] / len(X), np.append(local.coef_, local.intercept_))
    # a class that the sample misses: the start is fitted on every row
    y_rare = y.copy()
    y_rare[y_rare == 1] = 0
    y_rare[3] = 1  # row 3 is not in the sample (rows 0, 8, 16, ...)
    first = Newton(sample_rows=500).summarize(None, X, y_rare, info)
    local = LogisticRegression().fit(X, y_rare)
    np.testing.assert_allclose(first["theta"] / len(X), np.append(local.coef_, local.intercept_))


@pytest.mark.parametrize("sort", [False, True], ids=["random", "label-sorted"])
def test_a_sampled_hessian_reaches_the_fit_on_all_rows(multiclass_data, sort):
    X, y = _sorted(*multiclass_data) if sort else multiclass_data
    ref = LogisticRegression(**TIGHT).fit(X, y)
    with dask.config.set(scheduler="sync"):
        model = FusedClassifier(
            LogisticRegression(**TIGHT),
            fusion=Newton(sample_rows=300),  # of 750 rows: every 2nd
            n_partitions=4,
            partition="uniform",
        ).fit(X, y)
    _assert_same(model.fused_estimator_, ref)
    assert model.history_["grad_norm"].iloc[-1] <= 1e-10


def test_sample_rows_is_checked_and_shown():
    assert repr(Newton()) == "Newton()"
    assert repr(Newton(sample_rows=None)) == "Newton(sample_rows=None)"
    assert Newton(sample_rows=100) != Newton()
    for bad in (0, -3, 2.5, "many"):
        with pytest.raises(ValueError, match=r"Newton\(sample_rows=\.\.\.\) must be"):
            Newton(sample_rows=bad)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_partitions=st.integers(1, 7),
    split_every=st.integers(2, 5),
    strategy=st.sampled_from(["random", "uniform", "stratified"]),
    sort=st.booleans(),
)
def test_any_partitioning_and_tree_shape_give_the_central_model(
    n_partitions, split_every, strategy, sort
):
    X, y = make_classification_data(n=600, n_features=3, n_classes=3, noise=3.0, seed=4)
    if sort:
        X, y = _sorted(X, y)
    ref = LogisticRegression(**TIGHT).fit(X, y)
    with dask.config.set(scheduler="sync"):
        model = FusedClassifier(
            LogisticRegression(**TIGHT),
            fusion="newton",
            n_partitions=n_partitions,
            partition=strategy,
            split_every=split_every,
            random_state=1,
        ).fit(X, y)
    _assert_same(model.fused_estimator_, ref)


def test_only_parameter_sized_summaries_leave_a_partition():
    # what a partition sends does not grow with its rows: vectors of the parameters'
    # size, the candidate losses and one parameters x parameters matrix
    fuser, template = Newton(), LogisticRegression()
    classes = np.arange(3)
    sizes = []
    for n in (60, 600):
        X, y = make_classification_data(n=n, n_features=4, n_classes=3)
        info = {"template": template, "classes": classes}
        first = fuser.summarize(None, X, y, info)
        state = fuser.feedback(fuser.finalize(first, template, _meta()), first)
        later = fuser.summarize(fuser.local_fit(template, state, X, y, {}), X, y, info)
        sizes.append([np.size(v) for s in (first, later) for k, v in s.items() if k != "state"])
    assert sizes[0] == sizes[1]
    assert max(sizes[0]) == (3 * 5) ** 2


def _wide_data():
    # 2,000 features, 95% of the entries zero: 2,001 parameters
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 2000)) * (rng.random((600, 2000)) < 0.05)
    w = rng.normal(size=2000) * (rng.random(2000) < 0.1) * 3
    y = (X @ w + 0.5 * rng.logistic(size=600) > 0).astype(int)
    return X, y


def test_many_parameters_take_lbfgs_steps_and_equal_the_fit_on_all_rows():
    # issue 15: above MAX_HESSIAN_PARAMS the passes ship loss and gradient sums only
    X, y = _wide_data()
    assert X.shape[1] + 1 > MAX_HESSIAN_PARAMS
    ref = LogisticRegression(solver="newton-cg", tol=1e-12).fit(X, y)
    with dask.config.set(scheduler="sync"):
        model = FusedClassifier(
            LogisticRegression(**TIGHT), fusion="newton", n_partitions=3, random_state=0
        ).fit(X, y)
    _assert_same(model.fused_estimator_, ref)
    assert model.history_["grad_norm"].iloc[-1] <= 1e-10


def test_many_parameters_no_parameters_x_parameters_matrix_travels():
    X, y = _wide_data()
    p = X.shape[1] + 1
    fuser, template, classes = Newton(), LogisticRegression(), np.array([0, 1])
    parts = [(np.ascontiguousarray(X[i::2]), y[i::2].copy()) for i in range(2)]
    info = {"template": template, "classes": classes}
    meta = {**_meta(), "n_features_in_": X.shape[1], "classes": classes}
    state, sizes = None, []
    for _ in range(4):  # pass 0 and three L-BFGS passes
        summaries = [fuser.summarize(state, Xp, yp, info) for Xp, yp in parts]
        total = fuser.combine(summaries)
        state = fuser.feedback(fuser.finalize(total, template, meta), total)
        for summary in summaries:
            assert summary.get("hess") is None and summary.get("taylor_h") is None
            sizes += [np.size(v) for k, v in summary.items() if k != "state"]
        # what goes back to the partitions: parameter-sized vectors
        vectors = [
            state.w,
            state.direction,
            state.grad,
            *(v for pair in state.memory for v in pair),
        ]
        sizes += [np.size(v) for v in vectors]
    assert len(state.memory) == 2
    assert max(sizes) == p


def _meta():
    return {
        "n_features_in_": 4,
        "feature_names_in_": None,
        "classes": np.arange(3),
        "n_partitions": 1,
    }


def test_unsupported_models_and_wrappers_are_refused_with_the_reason(binary_data):
    X, y = binary_data
    with pytest.raises(FusionError, match="liblinear"):
        FusedClassifier(LogisticRegression(solver="liblinear"), fusion="newton").fit(X, y)
    with pytest.raises(FusionError, match="smooth"):
        FusedClassifier(LogisticRegression(solver="saga", l1_ratio=1.0), fusion="newton").fit(X, y)
    with pytest.raises(FusionError, match="newton needs a LogisticRegression"):
        FusedRegressor(Lasso(), fusion="newton").fit(X, y.astype(float))
    for inner in ("newton", Newton()):
        # Secure masks newton's sums (tests/test_newton_secure.py); DP has no
        # per-pass accounting for them
        assert Secure(inner=inner).inner == Newton()
        with pytest.raises(ValueError, match="per-pass privacy accounting .* not provided"):
            DP(inner=inner)


def test_auto_takes_newton_on_label_sorted_input_with_defaults(binary_data):
    # partitions of one class: the one-shot fusion cannot even fit them
    X, y = _sorted(*binary_data)
    with dask.config.set(scheduler="sync"):
        model = FusedClassifier(LogisticRegression(), n_partitions=4).fit(X, y)
        shuffled = FusedClassifier(LogisticRegression(), n_partitions=4).fit(*binary_data)
        asked = FusedClassifier(LogisticRegression(), n_partitions=4, rounds=3).fit(*binary_data)
    assert model.fusion_ == Newton() and asked.fusion_ == Newton()
    assert shuffled.fusion_ == Weighted()  # "auto" is unchanged where partitions look alike
    central = LogisticRegression().fit(X, y)
    assert model.score(X, y) == pytest.approx(central.score(X, y), abs=1e-3)


@pytest.mark.parametrize(
    "counts, expected",
    [
        ([[50, 50, 50], [48, 52, 50]], False),  # alike
        ([[90, 5, 5], [5, 90, 5], [5, 5, 90]], True),  # 90% one class: TV 0.57
        ([[80, 10, 10], [10, 80, 10], [10, 10, 80]], True),  # TV 0.47
        ([[60, 20, 20], [20, 60, 20], [20, 20, 60]], False),  # TV 0.27
        ([[50, 0], [50, 100]], True),  # a partition lacks a class
    ],
)
def test_the_auto_rule(counts, expected):
    assert prefers_newton("auto", LogisticRegression(), class_counts=counts) is expected
    # only "auto" is switched, and only for the estimators newton fits
    assert not prefers_newton("weighted", LogisticRegression(), class_counts=counts)
    assert not prefers_newton("auto", LogisticRegression(solver="liblinear"), rounds=3)


def test_max_iter_stops_with_a_convergence_warning(binary_data):
    X, y = _sorted(*binary_data)
    with dask.config.set(scheduler="sync"), pytest.warns(ConvergenceWarning, match="max_iter=1"):
        model = FusedClassifier(
            LogisticRegression(tol=1e-12, max_iter=1), fusion="newton", n_partitions=3
        ).fit(X, y)
    assert model.fused_estimator_.n_iter_[0] == 1


def test_a_pass_sends_its_small_state_inside_the_fit_tasks(on_cluster):
    # issue 15 (per-pass overhead): newton's state is parameter-sized, so it travels
    # inside every fit task; no shared daskfuse-global task (and its transfer to every
    # worker) precedes a pass's fits
    X, y = make_classification_data(n=600, n_features=3, noise=3.0)
    model = FusedClassifier(
        LogisticRegression(**TIGHT), fusion="newton", n_partitions=3, partition="uniform"
    )
    with get_task_stream(client=on_cluster) as stream:
        model.fit(X, y)
    groups = {key_split(rec["key"]) for rec in stream.data}
    assert len(model.history_) > 2
    assert any(g.startswith("daskfuse-fit") for g in groups)
    assert not any(g.startswith("daskfuse-global") for g in groups)


def test_a_large_previous_model_is_one_shared_task():
    from daskfuse._graph import INLINE_BYTES, FitSpec, build_fit_graph

    X, y = make_classification_data(n=40, n_features=3)
    partitions = [[(dask.delayed(X[i::2]), dask.delayed(y[i::2]))] for i in range(2)]
    spec = FitSpec(estimator=LogisticRegression(), fuser=Newton(), classifier=True)
    meta = {**_meta(), "n_features_in_": 3}

    def global_keys(previous):
        graph = build_fit_graph(partitions, spec, meta, 2, "t", previous=previous)
        return [k for k in graph.__dask_graph__() if str(k).startswith("daskfuse-global")]

    assert global_keys((None, np.zeros(10), 0.0)) == []
    assert len(global_keys((None, np.zeros(INLINE_BYTES // 8 + 1), 0.0))) == 1


def test_a_local_model_that_overflows_its_link_starts_from_the_gradient():
    # a Poisson problem with wide features whose rows are sorted by y: a partition's
    # local quadratic model at its own start overflows exp(); pass 0 then gives no
    # guessed direction (it used to fail in lstsq on infinite sums) and the passes
    # reach scikit-learn's fit on all rows
    rng = np.random.default_rng(0)
    X = rng.normal(scale=3.0, size=(600, 3))
    y = rng.poisson(np.exp(np.clip(X @ [0.5, -0.4, 0.3], -20, 20))).astype(float)
    order = np.argsort(y)
    X, y = X[order], y[order]
    template = PoissonRegressor(alpha=0.01, tol=1e-8, max_iter=1000)
    with dask.config.set(scheduler="sync"), np.errstate(all="ignore"):
        fused = FusedRegressor(template, fusion="newton", n_partitions=4).fit(X, y)
        single = PoissonRegressor(alpha=0.01, tol=1e-8, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(fused.fused_estimator_.coef_, single.coef_, rtol=1e-6)
    np.testing.assert_allclose(fused.fused_estimator_.intercept_, single.intercept_, rtol=1e-6)


def test_worker_groups_deal_each_workers_partitions_over_its_threads():
    from daskfuse._graph import worker_groups

    reports = [{"partition": i, "worker": "a" if i % 3 else "b", "rows": 10} for i in range(9)]
    # b: 0 3 6 in one task; a: partitions 1 2 4 5 7 8 over 2 threads, by rows
    assert worker_groups(reports, {"a": 2, "b": 1}) == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    reports[1]["rows"] = 50  # as many rows as a's other partitions together
    assert worker_groups(reports, {"a": 2, "b": 1}) == [[0, 3, 6], [1], [2, 4, 5, 7, 8]]
    # not a distributed cluster, or a worker that is gone: a task per partition
    assert worker_groups(reports, None) is None
    assert worker_groups(reports, {"a": 2}) is None
    # as many threads as partitions: nothing to save
    assert worker_groups(reports[:2], {"a": 4, "b": 4}) is None


def test_a_later_pass_fits_a_worker_threads_partitions_in_one_task(on_cluster):
    # issue 15 (per-pass overhead at 64 partitions): after the first pass, the
    # partitions each worker thread holds are summed in one fit task, where their rows
    # are; the report keeps a row per partition and the model is the same
    X, y = _sorted(*make_classification_data(n=2400, n_classes=3, noise=3.0))
    params = {"fusion": "newton", "n_partitions": 16, "partition": "uniform"}
    with get_task_stream(client=on_cluster) as stream:
        model = FusedClassifier(LogisticRegression(**TIGHT), **params).fit(X, y)
    fits = [rec for rec in stream.data if key_split(rec["key"]).startswith("daskfuse-fit")]
    passes = len(model.history_)
    threads = sum(on_cluster.nthreads().values())
    assert passes > 2 and len(fits) <= 16 + (passes - 1) * threads
    assert sorted(model.partition_report_["partition"]) == list(range(16))
    with dask.config.set(scheduler="sync"):  # no cluster: a task per partition
        alone = FusedClassifier(LogisticRegression(**TIGHT), **params).fit(X, y)
    _assert_same(model.fused_estimator_, alone.fused_estimator_)
    _assert_same(model.fused_estimator_, LogisticRegression(**TIGHT).fit(X, y))


def test_grouped_passes_leave_out_a_partition_that_cannot_be_fitted(on_cluster):
    X, y = make_classification_data(n=1600, noise=3.0)
    X = X.copy()
    X[5, 1] = np.nan  # in the first of 8 uniform partitions
    Xd, yd = da.from_array(X, chunks=(200, -1)), da.from_array(y, chunks=200)
    model = FusedClassifier(LogisticRegression(**TIGHT), fusion="newton", on_error="skip")
    with pytest.warns(UserWarning, match="1 of 8 partitions were skipped"):
        model.fit(Xd, yd)  # a partition per block
    assert len(model.history_) > 2
    report = model.partition_report_.set_index("partition")
    assert report.loc[0, "skipped"] and "NaN" in report.loc[0, "error"]
    assert not report.drop(index=0)["skipped"].any()
    _assert_same(model.fused_estimator_, LogisticRegression(**TIGHT).fit(X[200:], y[200:]))
