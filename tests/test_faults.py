"""Faults: a worker lost mid-fit, partitions that fail, and what a failed fit leaves."""

from __future__ import annotations

import os
import signal
import time
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster
from numpy.testing import assert_allclose
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDRegressor

from daskfuse import FusedClassifier, FusedRegressor, FusionError, PartitionError


def _executing_fit_keys(dask_worker):
    """Keys of the daskfuse fit tasks that a worker is running now (run on a worker)."""
    return [ts.key for ts in dask_worker.state.executing if "daskfuse-fit" in str(ts.key)]


def _wait_for_fit_task(client, timeout=60):
    """The address of a worker running a fit task and that task's partition number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # a worker that does not answer (busy, or gone) is asked again next round
        for address, keys in client.run(_executing_fit_keys, on_error="ignore").items():
            if keys:
                return address, keys[0][1]
        time.sleep(0.05)
    raise AssertionError("no daskfuse fit task started within the timeout")


@pytest.fixture
def slow_regression():
    """Four blocks whose SGD fits take a while each, so that a kill lands mid-fit."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6000, 8))
    y = X @ np.linspace(-2, 2, 8) + 0.5 + 0.1 * rng.normal(size=6000)
    return da.from_array(X, chunks=(1500, -1)), da.from_array(y, chunks=1500)


def test_worker_killed_mid_fit_gives_the_same_model(slow_regression):
    X, y = slow_regression
    # deterministic: a fixed seed per partition, no early stopping
    est = FusedRegressor(
        SGDRegressor(max_iter=1000, tol=None), fusion="average", random_state=0
    )
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            memory_limit="1GiB",
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
        dask.config.set(scheduler=client),
        client.as_current(),
    ):
        pids = client.run(os.getpid)
        future = client.compute(est.fit_graph(X, y))
        killed, partition = _wait_for_fit_task(client)
        os.kill(pids[killed], signal.SIGKILL)
        model, reports = future.result(timeout=120)

        # the nanny started a new worker process (with a new address) in its place
        client.wait_for_workers(2, timeout=60)
        assert killed not in client.scheduler_info()["workers"]
        assert pids[killed] not in client.run(os.getpid).values()
        # the killed worker was running the partition's fit: the scheduler ran it
        # again elsewhere, and that run's report reached the fused model
        rows = {r["partition"]: r for r in reports}
        assert rows[partition]["worker"] != killed
        assert not any(r["skipped"] for r in reports)

        # an undisturbed fit, end to end, on the recovered cluster
        est.fit(X, y)
    assert_allclose(model.coef_, est.fused_estimator_.coef_, rtol=1e-12)
    assert_allclose(model.intercept_, est.fused_estimator_.intercept_, rtol=1e-12)
    assert est.score(X, y) > 0.99


def _blocks_with_nan(block=2):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 1.0 + 0.1 * rng.normal(size=400)
    X[100 * block + 7, 1] = np.nan
    return X, y


def test_skip_fuses_the_other_partitions(on_cluster):
    X, y = _blocks_with_nan(block=2)
    Xd, yd = da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100)
    reg = FusedRegressor(LinearRegression(), fusion="exact", on_error="skip")
    with pytest.warns(UserWarning, match=r"1 of 4 partitions were skipped.*partition 2: X "):
        reg.fit(Xd, yd)
    keep = np.r_[0:200, 300:400]
    single = LinearRegression().fit(X[keep], y[keep])
    assert_allclose(reg.fused_estimator_.coef_, single.coef_, rtol=1e-10)
    assert_allclose(reg.fused_estimator_.intercept_, single.intercept_, rtol=1e-10)
    report = reg.partition_report_
    assert report["skipped"].tolist() == [False, False, True, False]
    assert report["error"].isna().tolist() == [True, True, False, True]
    assert "NaN" in report["error"][2]
    assert report["rows"].tolist() == [100] * 4
    assert reg.n_partitions_ == 4
    assert reg.n_partitions_skipped_ == 1


def test_skip_an_estimator_error():
    # a partition of one class: LogisticRegression cannot be fitted on it
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] > 0).astype(int)
    y[:100] = 1
    Xd, yd = da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100)
    clf = FusedClassifier(LogisticRegression(), on_error="skip", min_partitions=2 / 3)
    with pytest.warns(UserWarning, match=r"partition 0: the partition holds 1 class \(1\)"):
        clf.fit(Xd, yd)
    assert clf.partition_report_["skipped"].tolist() == [True, False, False]
    assert clf.score(X[100:], y[100:]) > 0.9


def test_too_few_partitions_left_names_them(on_cluster):
    X, y = _blocks_with_nan(block=1)
    X[307, 0] = np.inf
    Xd, yd = da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100)
    reg = FusedRegressor(LinearRegression(), on_error="skip", min_partitions=0.75)
    with pytest.raises(
        FusionError,
        match=r"only 2 of 4 partitions could be fitted, and min_partitions=3 are needed.*"
        r"2 skipped \(partition 1: X contains NaN.*partition 3: X contains NaN or inf",
    ):
        reg.fit(Xd, yd)
    assert not [k for k in vars(reg) if k.endswith("_")]


def test_every_partition_skipped():
    X, y = _blocks_with_nan(block=0)
    X[:, 2] = np.nan
    reg = FusedRegressor(LinearRegression(), n_partitions=2, on_error="skip")
    with pytest.raises(ValueError, match="Input X contains NaN"):
        # in-memory data is checked whole before any partition is fitted
        reg.fit(X, y)
    Xd, yd = da.from_array(X, chunks=(200, -1)), da.from_array(y, chunks=200)
    with pytest.raises(FusionError, match=r"only 0 of 2 partitions could be fitted"):
        reg.fit(Xd, yd)


def test_raise_names_the_partition_and_leaves_the_estimator_unfitted(on_cluster):
    X, y = _blocks_with_nan(block=3)
    reg = FusedRegressor(LinearRegression(), n_partitions=4).fit(np.nan_to_num(X), y)
    assert reg.n_partitions_skipped_ == 0
    assert not reg.partition_report_["skipped"].any()
    Xd, yd = da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100)
    with pytest.raises(PartitionError, match="partition 3: X contains NaN") as info:
        reg.fit(Xd, yd)
    assert info.value.index == 3
    assert not [k for k in vars(reg) if k.endswith("_")]
    with pytest.raises(NotFittedError):
        reg.predict(X[:5])


def test_threaded_fits_leave_the_warning_filters_alone():
    # overlapping warnings.catch_warnings in task threads used to leave an "ignore
    # UserWarning" filter installed, hiding every later warning (the skip warning too)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3200, 3))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        before = list(warnings.filters)
        with dask.config.set(scheduler="threads", num_workers=4):
            for _ in range(3):
                FusedClassifier(LogisticRegression(), n_partitions=16).fit(X, y)
        ignored = [f for f in warnings.filters if f[0] == "ignore" and f not in before]
    assert ignored == []
