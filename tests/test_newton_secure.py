"""Secure(inner="newton"): every pass's sums masked, the model newton's to 1e-9."""

from __future__ import annotations

import dataclasses

import dask
import dask.array as da
import numpy as np
import pytest
from distributed.diagnostics.plugin import WorkerPlugin
from numpy.testing import assert_allclose
from scipy import stats
from sklearn.linear_model import Lasso, LogisticRegression, PoissonRegressor
from sklearn.svm import LinearSVC

from daskfuse import FusedClassifier, FusedRegressor
from daskfuse.exceptions import FusionError
from daskfuse.fusion import DP, Newton, Secure
from daskfuse.fusion.newton import _State, private_optional_fields
from daskfuse.fusion.secure import MaskedSum, _newton_arrays, decode, encode
from tests.conftest import make_classification_data
from tests.test_newton import _wide_data

TIGHT = {"tol": 1e-10, "max_iter": 1000}


def _sorted(X, y):
    order = np.argsort(y, kind="stable")
    return X[order], y[order]


def _assert_same(a, b):
    for name in ("coef_", "intercept_"):
        x, y = np.ravel(getattr(a, name)), np.ravel(getattr(b, name))
        assert_allclose(x, y, rtol=0, atol=1e-9 * max(1.0, np.abs(y).max()))


@pytest.mark.parametrize(
    "n_classes, sort, params, split_every",
    [
        (2, False, {}, 2),
        (3, True, {}, 3),  # label-sorted: single-class partitions, zeros start
        (3, False, {"class_weight": "balanced", "C": 0.3}, 8),
    ],
)
def test_secure_newton_equals_newton(n_classes, sort, params, split_every):
    X, y = make_classification_data(n=900, n_features=4, n_classes=n_classes, noise=3.0)
    if sort:
        X, y = _sorted(X, y)
    kw = dict(n_partitions=5, partition="uniform", split_every=split_every, random_state=0)
    with dask.config.set(scheduler="sync"):
        plain = FusedClassifier(LogisticRegression(**params, **TIGHT), fusion="newton", **kw)
        masked = FusedClassifier(LogisticRegression(**params, **TIGHT), fusion=Secure("newton"))
        plain.fit(X, y)
        masked.set_params(**kw).fit(X, y)
    assert masked.fusion_ == Secure(Newton())
    _assert_same(masked.fused_estimator_, plain.fused_estimator_)
    assert len(masked.history_) == len(plain.history_)
    assert masked.history_["grad_norm"].iloc[-1] <= 1e-10
    assert not hasattr(masked, "privacy_spent_")
    # the report withholds what Secure withholds (rows stay public)
    report = masked.partition_report_
    for column in ("class_counts", "train_score", "weight", "n_iter"):
        assert report[column].isna().all(), column
    assert report["rows"].sum() == len(X)
    assert plain.partition_report_["class_counts"].notna().all()


def test_secure_newton_glm():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    y = rng.poisson(np.exp(X @ [0.5, -0.4, 0.3])).astype(float)
    kw = dict(n_partitions=3, partition="uniform")
    with dask.config.set(scheduler="sync"):
        plain = FusedRegressor(PoissonRegressor(alpha=0.01, **TIGHT), fusion="newton", **kw)
        masked = FusedRegressor(PoissonRegressor(alpha=0.01, **TIGHT), fusion=Secure("newton"))
        plain.fit(X, y)
        masked.set_params(**kw).fit(X, y)
    _assert_same(masked.fused_estimator_, plain.fused_estimator_)
    ref = PoissonRegressor(alpha=0.01, **TIGHT).fit(X, y)
    assert_allclose(masked.fused_estimator_.coef_, ref.coef_, rtol=1e-6)


def test_secure_newton_one_vs_rest_linear_svc():
    X, y = _sorted(*make_classification_data(n=600, n_features=3, n_classes=3, noise=3.0))
    kw = dict(n_partitions=4, partition="uniform", split_every=3)
    with dask.config.set(scheduler="sync"):
        plain = FusedClassifier(LinearSVC(**TIGHT), fusion="newton", **kw).fit(X, y)
        masked = FusedClassifier(LinearSVC(**TIGHT), fusion=Secure("newton"), **kw).fit(X, y)
    _assert_same(masked.fused_estimator_, plain.fused_estimator_)
    assert masked.partition_report_["class_counts"].isna().all()


def test_secure_newton_over_many_parameters():
    # the L-BFGS passes (no Hessian sums, for anyone) under the masks
    X, y = _wide_data()
    kw = dict(n_partitions=3, random_state=0)
    with dask.config.set(scheduler="sync"):
        plain = FusedClassifier(LogisticRegression(**TIGHT), fusion="newton", **kw).fit(X, y)
        masked = FusedClassifier(LogisticRegression(**TIGHT), fusion=Secure("newton"), **kw)
        masked.fit(X, y)
    _assert_same(masked.fused_estimator_, plain.fused_estimator_)
    assert len(masked.history_) == len(plain.history_)


def _one_pass(fuser, state, parts, template):
    """One pass of the protocol by hand: the feedback (the next state)."""
    secrets = fuser.partition_secrets(len(parts)) or [None] * len(parts)
    summaries = [
        fuser.summarize(
            state, X, y, {"index": i, "template": template, "classes": None, "secret": secrets[i]}
        )
        for i, (X, y) in enumerate(parts)
    ]
    total = fuser.combine(summaries)
    meta = {"n_features_in_": 3, "feature_names_in_": None, "classes": None, "n_partitions": 3}
    return fuser.feedback(fuser.finalize(total, template, meta), total)


def test_an_overflowing_candidate_step_is_rejected_as_newton_rejects_it():
    # a direction so long that the full step overflows the log link: an infinite
    # loss (and gradient) there, which the masked sums cannot encode; the root must
    # see it as infinite and take the same shorter step as newton
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    y = rng.poisson(np.exp(X @ [0.5, -0.4, 0.3])).astype(float)
    parts = [(np.ascontiguousarray(X[i::3]), y[i::3].copy()) for i in range(3)]
    template = PoissonRegressor(alpha=0.01, **TIGHT)
    # the start (pass 0) with its guessed direction made so long that the full step's
    # linear predictor reaches 1000 (exp overflows)
    start = _one_pass(Newton(), None, parts, template)
    long = start.direction * 1000 / np.max(np.abs(X @ start.direction[:-1]))
    far = dataclasses.replace(start, direction=long)
    info = {"template": template, "classes": None}
    losses = Newton().summarize(far, *parts[0], info)["losses"]
    assert not np.all(np.isfinite(losses)) and np.isfinite(losses[-1])
    plain, masked = (_one_pass(f, far, parts, template) for f in (Newton(), Secure("newton")))
    # no candidate lowers the loss: both fall back to the gradient at the start
    assert masked.record["step"] == plain.record["step"] == 0.0
    assert masked.record["loss"] == pytest.approx(plain.record["loss"], rel=1e-12)
    assert_allclose(masked.w, plain.w, rtol=1e-12)


class _Outputs(WorkerPlugin):
    """Keeps every fit, combine and finalize task's output on the worker (the audit)."""

    name = "daskfuse-audit-outputs"

    def setup(self, worker):
        self.worker, self.outputs = worker, []

    def transition(self, key, start, finish, **kwargs):
        # (not key_split: it takes "finalize" for a hex token and drops it)
        group = key[0].rsplit("-", 1)[0] if isinstance(key, tuple) else None
        # computed here (a copy fetched from another worker arrives from "flight")
        computed = start == "executing" and finish == "memory"
        if computed and group in ("daskfuse-fit", "daskfuse-combine", "daskfuse-finalize"):
            self.outputs.append((group, key, self.worker.data[key]))


def _outputs(dask_worker):
    return dask_worker.plugins["daskfuse-audit-outputs"].outputs


def _truth(state, X, y, classes, optional):
    """One partition's newton summary in clear, flat, as Secure lays it out."""
    info = {"template": LogisticRegression(**TIGHT), "classes": classes}
    summary = Newton().summarize(state, X, y, info)
    arrays, _ = _newton_arrays(summary, optional if summary["first"] else {})
    return np.concatenate([v.reshape(-1) for _, v in arrays])


def test_no_partitions_sums_leave_it_unmasked_in_any_pass(client, on_cluster):
    # issue 15: audit every task output of a real fit (every pass, the one-shot start
    # included): a fit or combine task's output that reaches another task holds only
    # masked words, every pass with fresh masks; only the root's total is in clear
    X, y = _sorted(*make_classification_data(n=800, n_features=3, n_classes=3, noise=3.0))
    n, chunk = 4, 200
    Xd, yd = da.from_array(X, chunks=(chunk, -1)), da.from_array(y, chunks=chunk)
    client.register_plugin(_Outputs())
    try:
        model = FusedClassifier(LogisticRegression(**TIGHT), fusion=Secure("newton"))
        model.set_params(split_every=2).fit(Xd, yd)
        outputs = [o for per in client.run(_outputs).values() for o in per]
    finally:
        client.unregister_worker_plugin(_Outputs.name)
    classes = np.arange(3)
    optional = private_optional_fields(LogisticRegression(), classes, X.shape[1])
    parts = [(X[i * chunk : (i + 1) * chunk], y[i * chunk : (i + 1) * chunk]) for i in range(n)]
    masks, n_passes = {}, len(model.history_)
    leaves = [(k, node) for g, k, node in outputs if g == "daskfuse-fit"]
    assert len(leaves) == n * n_passes
    for key, node in leaves:
        summary, index = node.summary, key[1]
        assert isinstance(summary, MaskedSum) and summary.included == (index,)
        # a pass that needs no gradient at its start says so in clear (None for all)
        shell = {k for k, v in summary.shell.items() if k != "start_grad" or v is not None}
        assert shell <= {"first", "n_features", "state", "correct"}
        state = summary.shell.get("state")
        truth = _truth(state, *parts[index], classes, optional)
        # no value decodes to (or near) the partition's own sums
        assert np.all(np.abs(decode(summary.words.view(np.int64)) - truth) > 1e6)
        mask = summary.words - encode(truth).reshape(-1).view(np.uint64)
        masks.setdefault(index, []).append(mask[:4].tobytes())
        top = (summary.words >> np.uint64(63)).astype(int)
        assert stats.binomtest(int(top.sum()), top.size).pvalue > 1e-6
    for index, streams in masks.items():
        assert len(set(streams)) == n_passes, f"partition {index} reused a mask"
    for group, _, node in outputs:
        if group == "daskfuse-combine" and len(node.summary.included) < n:
            assert isinstance(node.summary, MaskedSum) and node.summary.opened is None
    finals = [node for group, _, node in outputs if group == "daskfuse-finalize"]
    assert len(finals) == n_passes
    for fused, reports, feedback in finals:
        # what reaches the client: the model, the withheld report, the public step
        assert isinstance(fused, LogisticRegression) and isinstance(feedback, _State)
        assert all(r[k] is None for r in reports for k in ("class_counts", "weight"))
    ref = LogisticRegression(**TIGHT).fit(X, y)
    assert_allclose(model.fused_estimator_.coef_, ref.coef_, rtol=1e-6, atol=1e-8)


def test_dp_over_newton_refuses_and_secure_checks_the_estimator(binary_data):
    X, y = binary_data
    for inner in ("newton", Newton()):
        with pytest.raises(ValueError, match="per-pass privacy accounting .* not provided"):
            DP(inner=inner)
    with pytest.raises(FusionError, match="newton needs a LogisticRegression"):
        FusedRegressor(Lasso(), fusion=Secure("newton")).fit(X, y.astype(float))
    with pytest.raises(FusionError, match="liblinear"):
        FusedClassifier(LogisticRegression(solver="liblinear"), fusion=Secure("newton")).fit(X, y)
